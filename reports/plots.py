"""Plots for the HTML reports, returned as base64 PNG data URIs so the HTML stays self-contained."""
from __future__ import annotations

import base64
import io
import math
from collections import defaultdict

import matplotlib
import numpy as np

matplotlib.use("Agg")  # before pyplot: no display on CI machines
import matplotlib.pyplot as plt
from matplotlib import ticker

from reports.results import Results, grad_arg
from reports.summary import HIST_LABELS, check_key, dtype_key, group, has_figures

COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf")
#: error-vs-input markers: a filled circle for values; hollow for gradients, a square for the input's
#: and the next shapes, in argument order, for the other arguments' (grad:target, grad:weight, ...)
VALUE_MARKER, INPUT_GRAD_MARKER = "o", "s"
OTHER_GRAD_MARKERS = ("D", "p", "h", "P", "X", "*", "v")
XCLIP = 1e6  # drive values beyond this are drawn at the edge
WIDTH = 11.0  # inches at 100 dpi: fits the report's 1100 px content column


def _quiet(fn):
    """Axes spanning drive values near a format's max make matplotlib's autoscale overflow
    harmlessly while padding the limits: keep numpy's warnings about it out of the terminal."""
    def wrapper(*args, **kwargs):
        with np.errstate(over="ignore", invalid="ignore"):
            return fn(*args, **kwargs)
    wrapper.__name__, wrapper.__doc__ = fn.__name__, fn.__doc__
    return wrapper


def marker(check: str, checks: list[str]) -> str:
    """The marker of ``check`` among the ``checks`` one figure draws (fixed for value and grad:input,
    so the common case looks the same in every report)."""
    if check == "value":
        return VALUE_MARKER
    if grad_arg(check) == "input":
        return INPUT_GRAD_MARKER
    others = [c for c in checks if c != "value" and grad_arg(c) != "input"]
    return OTHER_GRAD_MARKERS[others.index(check) % len(OTHER_GRAD_MARKERS)]


def to_data_uri(fig) -> str:
    buf = io.BytesIO()
    with np.errstate(over="ignore", invalid="ignore"):
        fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _color(backends: list[str], backend: str) -> str:
    return COLORS[backends.index(backend) % len(COLORS)] if backend in backends else "#777777"


def _panels(n: int, height: float = 3.0):
    cols = min(n, 2)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(WIDTH, height * rows), squeeze=False, layout="constrained")
    flat = list(axes.flat)
    for ax in flat[n:]:
        ax.set_visible(False)
    return fig, flat[:n]


def _legend(fig, axes) -> None:
    """One legend for the whole figure (below the panels), built from every panel's artists."""
    seen: dict[str, object] = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            seen.setdefault(label, handle)
    if seen:
        fig.legend(list(seen.values()), list(seen), loc="outside lower center",
                   ncol=min(len(seen), 6), fontsize=8, frameon=False)


def _grouped_bars(ax, backends: list[str], cells: dict, dtype: str, heights) -> None:
    """One bar group per bin, one bar per backend; ``heights(cell)`` gives a backend's bars."""
    width = 0.8 / max(1, len(backends))
    for j, backend in enumerate(backends):
        cell = cells.get((dtype, backend))
        if cell is None:
            continue
        ys = heights(cell)
        xs = [i + (j - (len(backends) - 1) / 2) * width for i in range(len(ys))]
        ax.bar(xs, ys, width=width, color=_color(backends, backend), label=backend)


@_quiet
def ulp_histogram(results: Results) -> str | None:
    """Share of output elements per ulp-error bin (0, 1, 2, 3, >3), per dtype, bars per backend."""
    cells = group((r for r in results if has_figures(r)), "dtype", "backend")
    dtypes = sorted({k[0] for k in cells}, key=dtype_key)
    if not dtypes:
        return None
    fig, axes = _panels(len(dtypes))
    for ax, dtype in zip(axes, dtypes):
        _grouped_bars(ax, results.backends, cells, dtype,
                      lambda cell: [100.0 * h / (sum(cell.ulp_hist) or 1) for h in cell.ulp_hist])
        ax.set_yscale("log")
        ax.set_ylim(1e-3, 150)
        ax.set_xticks(range(len(HIST_LABELS)), [f"{h} ulp" for h in HIST_LABELS])
        ax.set_ylabel("% of elements")
        ax.set_title(dtype)
        ax.grid(axis="y", alpha=0.3)
    _legend(fig, axes)
    fig.suptitle("ulp error per output element (bins: 0, 1, 2, 3, >3 ulp)")
    return to_data_uri(fig)


@_quiet
def bits_histogram(results: Results) -> str | None:
    """How many cases lose how many bits (per case max bits of error), per dtype, bars per backend."""
    cells = group((r for r in results if has_figures(r) and r.get("max_bits") is not None),
                  "dtype", "backend")
    dtypes = sorted({k[0] for k in cells}, key=dtype_key)
    if not dtypes:
        return None
    fig, axes = _panels(len(dtypes))
    for ax, dtype in zip(axes, dtypes):
        finite = [r["max_bits"] for (d, _), c in cells.items() if d == dtype for r in c.records
                  if math.isfinite(r["max_bits"])]
        top = math.ceil(max(finite, default=0.0))
        labels = [str(b) for b in range(top + 1)] + ["inf"]

        def counts(cell, labels=labels):
            out = [0] * len(labels)
            for r in cell.records:
                bits = r["max_bits"]
                out[-1 if not math.isfinite(bits) else math.ceil(bits)] += 1
            return out

        _grouped_bars(ax, results.backends, cells, dtype, counts)
        step = max(1, math.ceil(len(labels) / 12))
        last = len(labels) - 1
        ticks = [i for i in range(0, last, step) if step == 1 or last - i > step // 2] + [last]
        ax.set_xticks(ticks, [labels[i] for i in ticks])
        ax.set_xlabel("bits of error (max over the case's elements, rounded up)")
        ax.set_ylabel("cases")
        ax.set_title(dtype)
        ax.grid(axis="y", alpha=0.3)
    _legend(fig, axes)
    fig.suptitle("bits of error per case")
    return to_data_uri(fig)


@_quiet
def drive_plots(results: Results) -> list[tuple[str, list[str], str]]:
    """Error-versus-input plots: one figure per driving variable (``meta["drive"]["name"]``).

    Returns (variable name, losses involved, data URI). Max ulp error is on a symlog axis (0 stays
    visible); an infinite error is clipped to the top of the axis and drawn as a triangle.
    """
    by_name: dict[str, list[tuple[float, dict]]] = defaultdict(list)
    for rec in results:
        drive = rec["meta"].get("drive")
        if not (has_figures(rec) and isinstance(drive, dict) and isinstance(drive.get("name"), str)):
            continue
        try:
            x = float(drive.get("value"))
        except (TypeError, ValueError):
            continue
        if math.isfinite(x) and not math.isnan(rec["max_ulp"]):
            by_name[drive["name"]].append((x, rec))
    out = []
    backends = results.backends
    for name in sorted(by_name):
        # a few extreme inputs (a lead of -max) would squeeze the interesting range into a pixel:
        # clip |x| to XCLIP and say so in the title
        points = [(math.copysign(min(abs(x), XCLIP), x), r) for x, r in by_name[name]]
        clipped = any(abs(x) > XCLIP for x, _ in by_name[name])
        dtypes = sorted({r["dtype"] for _, r in points}, key=dtype_key)
        finite = [r["max_ulp"] for _, r in points if math.isfinite(r["max_ulp"])]
        ceiling = max(10.0, max(finite, default=1.0) * 10)
        xs_all = [x for x, _ in points]
        logx = min(xs_all) > 0 and max(xs_all) / min(xs_all) >= 16
        symx = not logx and (max(abs(v) for v in xs_all) > 1000)
        checks = sorted({r["check"] for _, r in points}, key=check_key)
        fig, axes = _panels(len(dtypes), height=3.2)
        for ax, dtype in zip(axes, dtypes):
            for backend in backends:
                for check in checks:
                    sel = [(x, r["max_ulp"]) for x, r in points
                           if r["dtype"] == dtype and r["backend"] == backend and r["check"] == check]
                    if not sel:
                        continue
                    color = _color(backends, backend)
                    fin = [(x, y) for x, y in sel if math.isfinite(y)]
                    inf = [x for x, y in sel if not math.isfinite(y)]
                    face = color if check == "value" else "none"
                    if fin:
                        ax.scatter([x for x, _ in fin], [y for _, y in fin], s=22, marker=marker(check, checks),
                                   facecolors=face, edgecolors=color, label=f"{backend} {check}", alpha=0.8)
                    if inf:
                        ax.scatter(inf, [ceiling] * len(inf), s=60, marker="^", color=color,
                                   label=f"{backend} {check}: inf (clipped)")
            ax.set_yscale("symlog", linthresh=1.0)
            ax.set_ylim(0, ceiling * 3)
            ax.axhline(ceiling, color="#999", lw=0.6, ls=":")
            if logx:
                ax.set_xscale("log", base=2)
                ax.xaxis.set_major_locator(ticker.LogLocator(base=2, numticks=10))
                ax.xaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}"))
                ax.xaxis.set_minor_formatter(ticker.NullFormatter())
            elif symx:
                ax.set_xscale("symlog", linthresh=10.0)
                ax.xaxis.set_major_locator(ticker.SymmetricalLogLocator(linthresh=10.0, base=100.0))
            ax.set_xlabel(name)
            ax.set_ylabel("max ulp error")
            ax.set_title(dtype)
            ax.grid(alpha=0.3)
            ax.margins(x=0.04)
        _legend(fig, axes)
        losses = sorted({r["loss"] for _, r in points})
        note = f"; |{name}| clipped at {XCLIP:g}" if clipped else ""
        fig.suptitle(f"error vs {name} ({', '.join(losses)}){note}")
        out.append((name, losses, to_data_uri(fig)))
    return out


@_quiet
def compare_scatter(pairs: list[tuple[float, float]], factor: float, floor: float) -> str | None:
    """Base vs new max ulp per matched case (symlog both axes), with the gate's threshold drawn."""
    pairs = [(b, n) for b, n in pairs if not (math.isnan(b) or math.isnan(n))]
    if not pairs:
        return None
    finite = [v for p in pairs for v in p if math.isfinite(v)]
    ceiling = max(10.0, max(finite, default=1.0) * 10)
    clip = [(min(b, ceiling), min(n, ceiling)) for b, n in pairs]
    fig, ax = plt.subplots(figsize=(6.5, 5), layout="constrained")
    ax.scatter([b for b, _ in clip], [n for _, n in clip], s=14, alpha=0.6, color=COLORS[0])
    grid = [0.0] + [10 ** (k / 4) for k in range(-4, int(4 * math.log10(ceiling)) + 1)]
    ax.plot(grid, grid, color="#999", lw=0.8, label="unchanged")
    ax.plot(grid, [factor * max(g, floor) for g in grid], color=COLORS[1], lw=0.8, ls="--",
            label=f"gate: {factor:g}× (floor {floor:g} ulp)")
    for setter in (ax.set_xscale, ax.set_yscale):
        setter("symlog", linthresh=1.0)
    ax.set_xlim(0, ceiling * 2)
    ax.set_ylim(0, ceiling * 2)
    ax.set_xlabel("BASE max ulp error")
    ax.set_ylabel("NEW max ulp error")
    ax.set_title("per case (inf clipped to the top)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return to_data_uri(fig)
