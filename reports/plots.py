"""Plots for the HTML reports, returned as base64 PNG data URIs so the HTML stays self-contained.

Colours: each backend gets a neutral colour of :data:`BACKEND_COLORS` (no red, amber, green or
purple); those four mean a verdict (:data:`VERDICT_COLORS`, the same as the HTML's) and are drawn
only where a point's verdict is one (fail and error red, warn amber, xfail purple).  Every axis in
ulps carries the tolerance (the run header's per dtype, 1 ulp where it names none) as a dashed
line, and symlog axes get their ticks from :func:`symlog_ticks`, so labels never pile up at 0.
"""
from __future__ import annotations

import base64
import io
import math
from collections import defaultdict
from collections.abc import Iterable

import matplotlib
import numpy as np

matplotlib.use("Agg")  # before pyplot: no display on CI machines
import matplotlib.pyplot as plt
from matplotlib import ticker
from matplotlib.lines import Line2D

from reports.results import Results, grad_arg, number
from reports.summary import check_key, dtype_key, group, has_figures

#: per-backend colours: blue, cyan, grey, navy, light blue, slate -- none near a verdict's colour
BACKEND_COLORS = ("#1f77b4", "#17becf", "#7f7f7f", "#393b79", "#9ecae1", "#2f4f4f")
COLORS = BACKEND_COLORS  # the old name
#: verdict colours, the same as reports/style.css
VERDICT_COLORS = {"fail": "#c62828", "error": "#c62828", "warn": "#b26a00", "undetermined": "#b26a00",
                  "xfail": "#6a4fb3", "pass": "#2e7d32"}
#: how a verdict ring is named in a legend (fail and error share red, warn and undetermined amber)
VERDICT_RINGS = (("fail/error", ("fail", "error")), ("warn", ("warn", "undetermined")),
                 ("xfail (expected failure)", ("xfail",)))
TOLERANCE_COLOR = "#333333"
#: the ulp-error histogram's bins, as harness/check.py counts ``ulp_hist``: (label, low, high) is the
#: interval low < ulp <= high, except the first, ulp == 0 (the output is the exact value). A
#: correctly rounded result is within 0.5 ulp, so it is "exact" or "≤1".
HIST_BINS = (("exact", 0.0, 0.0), ("≤1", 0.0, 1.0), ("≤2", 1.0, 2.0), ("≤3", 2.0, 3.0),
             (">3", 3.0, math.inf))
HIST_LABELS = tuple(label for label, _, _ in HIST_BINS)
#: what a driving variable (``meta["drive"]["name"]``) of the case families is
DRIVE_GLOSSARY = {
    "lead": "target logit − largest other logit (cross-entropy's confident-row cliff)",
    "x": "the logit x of binary_cross_entropy_with_logits",
    "classes": "number of classes C (the length softmax runs over)",
}
#: error-vs-input markers: a filled circle for values; hollow for gradients, a square for the input's
#: and the next shapes, in argument order, for the other arguments' (grad:target, grad:weight, ...)
VALUE_MARKER, INPUT_GRAD_MARKER = "o", "s"
OTHER_GRAD_MARKERS = ("D", "p", "h", "P", "X", "*", "v")
XCLIP = 1e6  # drive values beyond this are drawn at the edge
WIDTH = 11.0  # inches at 100 dpi: fits the report's content column
MAX_YTICKS = 6  # labelled y ticks per panel
TICK_FONT = 8.0  # points


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


def hist_bin(ulp: float) -> int:
    """Index of the :data:`HIST_BINS` bin an element's ulp error falls in (inf: the last)."""
    if ulp == 0:
        return 0
    for i, (_, low, high) in enumerate(HIST_BINS[1:], start=1):
        if low < ulp <= high:
            return i
    raise ValueError(f"no histogram bin for ulp error {ulp!r}")


def drive_label(name: str) -> str:
    """The axis label of a driving variable: its name and, for the known ones, what it is."""
    meaning = DRIVE_GLOSSARY.get(name)
    return f"{name}: {meaning}" if meaning else name


def ulp_tolerances(results: Results) -> dict[str, float]:
    """Accurate-rung tolerance in ulps per dtype, from the run header(s) (the last header that names
    one wins: a resumed run repeats the same); dtypes it does not name are absent (use 1 ulp)."""
    out: dict[str, float] = {}
    for run in results.runs:
        tol = run.get("tolerances")
        if not isinstance(tol, dict):
            continue
        for dtype, entry in tol.items():
            value = number(entry.get("ulp")) if isinstance(entry, dict) else None
            if value is not None and math.isfinite(value) and value >= 0:
                out[str(dtype)] = value
    return out


def tolerance_of(tolerances: dict[str, float], dtype: str) -> float:
    return tolerances.get(dtype, 1.0)


def to_data_uri(fig) -> str:
    buf = io.BytesIO()
    with np.errstate(over="ignore", invalid="ignore"):
        fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def backend_color(backends: list[str], backend: str) -> str:
    return BACKEND_COLORS[backends.index(backend) % len(BACKEND_COLORS)] if backend in backends else "#777777"


_color = backend_color  # the old name


def _panels(n: int, height: float = 3.0):
    cols = min(n, 2)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(WIDTH, height * rows), squeeze=False, layout="constrained")
    flat = list(axes.flat)
    for ax in flat[n:]:
        ax.set_visible(False)
    for ax in flat[:n]:
        ax.tick_params(labelsize=TICK_FONT)
    return fig, flat[:n]


def _legend(fig, axes, extra: Iterable = ()) -> None:
    """One legend for the whole figure (below the panels), built from every panel's artists."""
    seen: dict[str, object] = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            seen.setdefault(label, handle)
    for handle in extra:
        seen.setdefault(handle.get_label(), handle)
    if seen:
        fig.legend(list(seen.values()), list(seen), loc="outside lower center",
                   ncol=min(len(seen), 5), fontsize=8, frameon=False)


# ------------------------------------------------------------------ ticks

def _sup(k: int) -> str:
    return f"$10^{{{k}}}$"


def _pow10_label(value: float) -> str:
    """0, 1, 10, 100, 1000, then 10^k; negatives with a minus sign."""
    if value == 0:
        return "0"
    sign = "−" if value < 0 else ""
    k = round(math.log10(abs(value)))
    return f"{sign}{10 ** k:d}" if 0 <= k <= 3 else sign + _sup(k)


def _thin(positions: list[float], ticks: list[float], min_gap: float, keep: Iterable[float] = ()) -> list[float]:
    """Drop ticks until neighbours are at least ``min_gap`` apart (positions in axis fractions);
    ticks in ``keep`` win over others."""
    keep = set(keep)
    order = sorted(range(len(ticks)), key=lambda i: (ticks[i] not in keep, i))
    chosen: list[int] = []
    for i in order:
        if all(abs(positions[i] - positions[j]) >= min_gap for j in chosen):
            chosen.append(i)
    return [ticks[i] for i in sorted(chosen)]


def symlog_ticks(lo: float, hi: float, linthresh: float, max_labels: int, scale=None,
                 min_gap: float = 0.0, anchor: str = "low") -> list[float]:
    """Major ticks of a symlog axis over [lo, hi]: 0 and the powers of ten at or beyond
    ``linthresh`` (never inside the linear region, where they would sit on top of 0), every
    ``stride``-th decade so that at most ``max_labels`` remain, counted from the lowest decade
    (``anchor="low"``: an ulp axis keeps its 1) or from the highest ("high": the range's ends show);
    with ``scale`` (the axis' transform) ticks closer than ``min_gap`` (a fraction of the axis)
    are dropped too."""
    first = math.ceil(math.log10(linthresh) - 1e-9)
    top = max(abs(lo), abs(hi))
    last = math.floor(math.log10(top) + 1e-9) if top >= linthresh else first - 1
    decades = list(range(first, last + 1))
    sides = (lo < 0) + (hi > 0)
    has_zero = lo <= 0 <= hi
    stride = 1
    while decades and has_zero + sides * math.ceil(len(decades) / stride) > max_labels:
        stride += 1
    ticks = [0.0] if has_zero else []
    for k in (decades[::stride] if anchor == "low" else decades[::-1][::stride]):
        for sign in (-1.0, 1.0):
            v = sign * 10.0 ** k
            if lo <= v <= hi:
                ticks.append(v)
    ticks.sort()
    if scale is not None and min_gap > 0 and len(ticks) > 1:
        t = scale.transform(np.array([lo, hi, *ticks], dtype=float))
        span = (t[1] - t[0]) or 1.0
        pos = [(x - t[0]) / span for x in t[2:]]
        ticks = _thin(pos, ticks, min_gap, keep=(0.0,))
    return ticks


def _axis_length_pt(ax, axis: str) -> float:
    """The axis' length in points (from the figure size; constrained layout shrinks it a little)."""
    box = ax.get_position()
    w, h = ax.figure.get_size_inches()
    return 72.0 * (box.width * w if axis == "x" else box.height * h) * 0.8


def _set_symlog(ax, axis: str, lo: float, hi: float, linthresh: float, max_labels: int,
                anchor: str = "low") -> None:
    """A symlog axis with ticks from :func:`symlog_ticks` and labels 0, 1, 10, 100, 10^k."""
    setter = ax.set_xscale if axis == "x" else ax.set_yscale
    setter("symlog", linthresh=linthresh, linscale=1.0)
    (ax.set_xlim if axis == "x" else ax.set_ylim)(lo, hi)
    target = ax.xaxis if axis == "x" else ax.yaxis
    label_pt = 3.2 * TICK_FONT if axis == "x" else 1.8 * TICK_FONT  # a "−10⁴" wide, a line tall
    ticks = symlog_ticks(lo, hi, linthresh, max_labels, target.get_transform(),
                         label_pt / max(_axis_length_pt(ax, axis), 1.0), anchor)
    target.set_major_locator(ticker.FixedLocator(ticks))
    target.set_major_formatter(ticker.FuncFormatter(lambda v, _: _pow10_label(v)))
    target.set_minor_locator(ticker.NullLocator())


def ulp_axis(ax, top: float, tol: float, max_labels: int = MAX_YTICKS) -> None:
    """Max-ulp-error y axis: symlog from 0 to ``top`` (0 stays visible), at most ``max_labels``
    labels, and the tolerance line labelled in the panel."""
    _set_symlog(ax, "y", 0.0, top, 1.0, max_labels)
    tolerance_line(ax, tol, "y")


def tolerance_line(ax, tol: float, axis: str = "y", at: float | None = None, note: str = "") -> None:
    """The accurate-rung tolerance as a dashed line (at ``at`` in data units, default ``tol``)
    with its value written next to it; gid "tolerance" so tests can find it."""
    pos = tol if at is None else at
    draw = ax.axhline if axis == "y" else ax.axvline
    draw(pos, color=TOLERANCE_COLOR, lw=0.9, ls="--", gid="tolerance", zorder=1)
    text = f"tolerance {tol:g} ulp{note}"
    if axis == "y":
        ax.annotate(text, xy=(1.0, pos), xycoords=("axes fraction", "data"), xytext=(-3, 2),
                    textcoords="offset points", ha="right", va="bottom", fontsize=7, color=TOLERANCE_COLOR)
    else:
        ax.annotate(text, xy=(pos, 1.0), xycoords=("data", "axes fraction"), xytext=(3, -3),
                    textcoords="offset points", ha="left", va="top", fontsize=7, color=TOLERANCE_COLOR)


def _grouped_bars(ax, backends: list[str], cells: dict, dtype: str, heights) -> list[float]:
    """One bar group per bin, one bar per backend; ``heights(cell)`` gives a backend's bars."""
    width = 0.8 / max(1, len(backends))
    drawn: list[float] = []
    for j, backend in enumerate(backends):
        cell = cells.get((dtype, backend))
        if cell is None:
            continue
        ys = heights(cell)
        xs = [i + (j - (len(backends) - 1) / 2) * width for i in range(len(ys))]
        ax.bar(xs, ys, width=width, color=backend_color(backends, backend), label=backend)
        drawn.extend(ys)
    return drawn


# ------------------------------------------------------------------ histograms

def _percent_label(value: float, _pos=None) -> str:
    return f"{value:g}%" if value >= 1e-3 else f"$10^{{{round(math.log10(value))}}}$%"


def _hist_x(tol: float) -> float:
    """Where a tolerance of ``tol`` ulp falls on the histogram's bin axis (bin i at x = i)."""
    if tol <= 0:
        return 0.5
    return min(tol, 3.0) + 0.5  # bin i (1..3) spans (i-1, i] ulp, drawn from i - 0.5 to i + 0.5


@_quiet
def ulp_histogram(results: Results) -> str | None:
    """Share of output elements per ulp-error bin (exact, ≤1, ≤2, ≤3, >3), per dtype, bars per backend."""
    cells = group((r for r in results if has_figures(r)), "dtype", "backend")
    dtypes = sorted({k[0] for k in cells}, key=dtype_key)
    if not dtypes:
        return None
    tols = ulp_tolerances(results)
    fig, axes = _panels(len(dtypes))
    for ax, dtype in zip(axes, dtypes):
        shares = _grouped_bars(ax, results.backends, cells, dtype,
                               lambda cell: [100.0 * h / (sum(cell.ulp_hist) or 1) for h in cell.ulp_hist])
        # the bottom follows the rarest bar, so one bad element in a million still shows
        low = min((s for s in shares if s > 0), default=1.0)
        bottom = 10.0 ** min(-1, math.floor(math.log10(low)) - 1)
        ax.set_yscale("log")
        ax.set_ylim(bottom, 150)
        decades = list(range(round(math.log10(bottom)), 3))
        stride = math.ceil(len(decades) / MAX_YTICKS)
        ax.yaxis.set_major_locator(ticker.FixedLocator([10.0 ** k for k in decades[::-1][::stride]]))
        ax.yaxis.set_major_formatter(ticker.FuncFormatter(_percent_label))
        ax.yaxis.set_minor_locator(ticker.NullLocator())
        ax.set_xticks(range(len(HIST_LABELS)), list(HIST_LABELS))
        ax.set_xlim(-0.6, len(HIST_LABELS) - 0.4)
        tol = tolerance_of(tols, dtype)
        tolerance_line(ax, tol, "x", at=_hist_x(tol), note=" (inside >3)" if tol > 3 else "")
        ax.set_xlabel("ulp error of the element", fontsize=9)
        ax.set_ylabel("% of elements")
        ax.set_title(dtype)
        ax.grid(axis="y", alpha=0.3)
    _legend(fig, axes)
    fig.suptitle("ulp error per output element — exact: 0 ulp; ≤1: (0, 1] ulp, where correctly rounded "
                 "results (≤ 0.5 ulp) fall; ≤2: (1, 2]; ≤3: (2, 3]; >3: above 3 ulp or inf", fontsize=10)
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
        ax.yaxis.set_major_locator(ticker.MaxNLocator(nbins=MAX_YTICKS - 1, integer=True))
        ax.set_xlabel("bits of error (max over the case's elements, rounded up)", fontsize=9)
        ax.set_ylabel("cases")
        ax.set_title(dtype)
        ax.grid(axis="y", alpha=0.3)
    _legend(fig, axes)
    fig.suptitle("bits of error per case", fontsize=10)
    return to_data_uri(fig)


# ------------------------------------------------------------------ error versus input

def _drive_x_axis(ax, xs: list[float]) -> None:
    """Log base 2 for positive values spanning 16x or more; symlog for values reaching 0 or below
    whose magnitudes span 100x or more (the linear region ends at the decade of the smallest); else
    linear. At most about 9 labels, none on top of another."""
    lo, hi = min(xs), max(xs)
    mags = [abs(x) for x in xs if x != 0]
    if lo > 0 and hi / lo >= 16:
        ax.set_xscale("log", base=2)
        first, last = math.floor(math.log2(lo)), math.ceil(math.log2(hi))
        stride = max(1, math.ceil((last - first + 1) / 8))
        ax.xaxis.set_major_locator(ticker.FixedLocator([2.0 ** k for k in range(first, last + 1, stride)]))
        ax.xaxis.set_major_formatter(ticker.FuncFormatter(
            lambda v, _: f"{v:g}" if v < 1e5 else f"$2^{{{round(math.log2(v))}}}$"))
        ax.xaxis.set_minor_locator(ticker.NullLocator())
        ax.set_xlim(2.0 ** first / 1.3, 2.0 ** last * 1.3)
    elif lo <= 0 and mags and max(mags) / min(mags) >= 100:
        linthresh = 10.0 ** math.floor(math.log10(min(mags)))
        edge = 1.5 * max(mags)
        _set_symlog(ax, "x", -edge if lo < 0 else -linthresh / 2, edge if hi > 0 else linthresh / 2,
                    linthresh, 9, anchor="high")
    else:
        ax.xaxis.set_major_locator(ticker.MaxNLocator(nbins=8))
        ax.margins(x=0.04)


@_quiet
def drive_plots(results: Results) -> list[tuple[str, list[str], str]]:
    """Error-versus-input plots: one figure per driving variable (``meta["drive"]["name"]``).

    Returns (variable name, losses involved, data URI). Max ulp error is on a symlog axis (0 stays
    visible) with the tolerance drawn; an infinite error is clipped to the top of the axis and drawn
    as a triangle; a point whose verdict is fail/error, warn or xfail gets a ring of that colour.
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
    tols = ulp_tolerances(results)
    for name in sorted(by_name):
        # a few extreme inputs (a lead of -max) would squeeze the interesting range into a pixel:
        # clip |x| to XCLIP and say so in the title
        points = [(math.copysign(min(abs(x), XCLIP), x), r) for x, r in by_name[name]]
        clipped = any(abs(x) > XCLIP for x, _ in by_name[name])
        dtypes = sorted({r["dtype"] for _, r in points}, key=dtype_key)
        finite = [r["max_ulp"] for _, r in points if math.isfinite(r["max_ulp"])]
        ceiling = max(10.0, max(finite, default=1.0) * 10)
        any_inf = any(not math.isfinite(r["max_ulp"]) for _, r in points)
        checks = sorted({r["check"] for _, r in points}, key=check_key)
        fig, axes = _panels(len(dtypes), height=3.2)
        extra: dict[str, Line2D] = {}
        for ax, dtype in zip(axes, dtypes):
            rings: dict[str, list[tuple[float, float]]] = defaultdict(list)
            for backend in backends:
                for check in checks:
                    sel = [(x, r) for x, r in points
                           if r["dtype"] == dtype and r["backend"] == backend and r["check"] == check]
                    if not sel:
                        continue
                    color = backend_color(backends, backend)
                    fin = [(x, r["max_ulp"]) for x, r in sel if math.isfinite(r["max_ulp"])]
                    inf = [x for x, r in sel if not math.isfinite(r["max_ulp"])]
                    face = color if check == "value" else "none"
                    mark = marker(check, checks)
                    if fin:
                        ax.scatter([x for x, _ in fin], [y for _, y in fin], s=22, marker=mark,
                                   facecolors=face, edgecolors=color, label=f"{backend} {check}", alpha=0.85,
                                   zorder=3)
                    if inf:
                        ax.scatter(inf, [ceiling] * len(inf), s=60, marker="^", color=color, zorder=3,
                                   **({} if fin else {"label": f"{backend} {check}"}))
                    for x, r in sel:
                        y = r["max_ulp"] if math.isfinite(r["max_ulp"]) else ceiling
                        for ring, verdicts in VERDICT_RINGS:
                            if r.get("verdict") in verdicts:
                                rings[ring].append((x, y))
            for ring, verdicts in VERDICT_RINGS:
                if rings[ring]:
                    ax.scatter([x for x, _ in rings[ring]], [y for _, y in rings[ring]], s=110, marker="o",
                               facecolors="none", edgecolors=VERDICT_COLORS[verdicts[0]], linewidths=1.4,
                               label=ring, zorder=4)
            ulp_axis(ax, ceiling * 3, tolerance_of(tols, dtype))
            if any_inf:
                ax.axhline(ceiling, color="#999", lw=0.6, ls=":")
                extra["inf"] = Line2D([], [], marker="^", ls="none", color="#555",
                                      label="inf ulp (drawn at the top)")
            _drive_x_axis(ax, [x for x, _ in points])
            ax.set_xlabel(name)
            ax.set_ylabel("max ulp error")
            ax.set_title(dtype)
            ax.grid(alpha=0.3)
        _legend(fig, axes, extra.values())
        losses = sorted({r["loss"] for _, r in points})
        note = f"; |{name}| clipped at {XCLIP:g}" if clipped else ""
        fig.suptitle(f"max ulp error per case vs {drive_label(name)} — {', '.join(losses)}{note}", fontsize=10)
        out.append((name, losses, to_data_uri(fig)))
    return out


@_quiet
def compare_scatter(pairs: list[tuple[float, float]], factor: float, floor: float,
                    tolerance: float = 1.0) -> str | None:
    """Base vs new max ulp per matched case (symlog both axes), with the gate's threshold and the
    tolerance (1 ulp unless given) drawn."""
    pairs = [(b, n) for b, n in pairs if not (math.isnan(b) or math.isnan(n))]
    if not pairs:
        return None
    finite = [v for p in pairs for v in p if math.isfinite(v)]
    ceiling = max(10.0, max(finite, default=1.0) * 10)
    clip = [(min(b, ceiling), min(n, ceiling)) for b, n in pairs]
    fig, ax = plt.subplots(figsize=(6.5, 5), layout="constrained")
    ax.tick_params(labelsize=TICK_FONT)
    ax.scatter([b for b, _ in clip], [n for _, n in clip], s=14, alpha=0.6, color=BACKEND_COLORS[0])
    grid = [0.0] + [10 ** (k / 4) for k in range(-4, int(4 * math.log10(ceiling)) + 1)]
    ax.plot(grid, grid, color="#999", lw=0.8, label="unchanged")
    ax.plot(grid, [factor * max(g, floor) for g in grid], color=VERDICT_COLORS["fail"], lw=0.8, ls="--",
            label=f"gate: {factor:g}× (floor {floor:g} ulp)")
    _set_symlog(ax, "x", 0.0, ceiling * 2, 1.0, MAX_YTICKS)
    _set_symlog(ax, "y", 0.0, ceiling * 2, 1.0, MAX_YTICKS)
    tolerance_line(ax, tolerance, "y")
    ax.set_xlabel("BASE max ulp error")
    ax.set_ylabel("NEW max ulp error")
    ax.set_title("per case (inf clipped to the top)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left")
    return to_data_uri(fig)
