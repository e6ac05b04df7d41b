"""The domain report of an exhaustive sweep: error over every value of the format.

Reads a sweep directory (docs/CONTRACTS.md, "Sweep directory": ``manifest.json`` and the npz chunk
files, with NumPy only and ``allow_pickle=False``) -- never harness/, cases/ or reference/ -- and
gives, for each grid point and check: the domain-wide maximum ulp error and its input, the maximum
per binade of the input, and the clusters of bad inputs (runs of neighbouring values of the format
beyond the ulp tolerance or off the ladder's passing rungs) with a representative each; as text
(``losscheck sweep`` prints it) and as an HTML page with the error-vs-input map, in the style of the
ULP maps that mpmath-validated function libraries publish.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

CHUNK_SCHEMA = "losscheck.sweep-chunk/1"
MANIFEST_SCHEMA = "losscheck.sweep/1"

#: the verdict ladder's rungs, in the order chunk files index them (harness/verdict.py's RUNGS;
#: tests/test_sweep.py pins the copy: a stale one misread "fail", index 10, and crashed the summary)
RUNGS = ("undetermined", "special", "accurate", "stable", "flushed", "absolute", "recursive", "magnitude",
         "convention", "semantic", "fail")
#: the rungs that warn or fail (harness/verdict.py's WARN_RUNGS and FAIL_RUNGS)
BAD_RUNGS = ("recursive", "absolute", "magnitude", "flushed", "convention", "special", "semantic", "fail")

#: (exponent bits, mantissa bits) of the formats a sweep may hold
LAYOUT = {"float16": (5, 10), "bfloat16": (8, 7), "float32": (8, 23), "float64": (11, 52)}
UINT = {"float16": np.uint16, "bfloat16": np.uint16, "float32": np.uint32, "float64": np.uint64}


class SweepDataError(ValueError):
    """Not a readable sweep directory: one line, fit for a CLI."""



def read_chunk(path: Path) -> dict[str, np.ndarray]:
    """A chunk file's arrays, the one reader of the format (the sweep's resume and summary use it
    too); no pickle: object arrays are refused."""
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (OSError, ValueError, EOFError) as exc:
        raise SweepDataError(f"{path}: not a readable chunk file ({exc})") from None
    if str(arrays.get("schema")) != CHUNK_SCHEMA:
        raise SweepDataError(f"{path}: not a {CHUNK_SCHEMA} file")
    return arrays

def to_float(bits: np.ndarray, dtype: str) -> np.ndarray:
    """Bit patterns of ``dtype`` -> float64 values (bfloat16 without ml_dtypes: its bits are
    float32's upper half)."""
    bits = np.asarray(bits)
    if dtype == "bfloat16":
        return (bits.astype(np.uint32) << 16).view(np.float32).astype(np.float64)
    view = {"float16": np.float16, "float32": np.float32, "float64": np.float64}[dtype]
    return bits.astype(UINT[dtype]).view(view).astype(np.float64)


def ordinal(bits: np.ndarray, dtype: str) -> np.ndarray:
    """Consecutive integers for consecutive values of the format (-0 and +0 both 0)."""
    width = 8 * np.dtype(UINT[dtype]).itemsize
    b = np.asarray(bits).astype(np.int64) if width < 64 else np.asarray(bits).view(np.int64)
    mag = b & ((1 << (width - 1)) - 1)
    return np.where((b >> (width - 1)) & 1 == 1, -mag, mag)


def binade(bits: np.ndarray, dtype: str) -> tuple[np.ndarray, list[str]]:
    """(a binade code per value, in value order, and its label): ``[2^e, 2^e+1)`` with a sign,
    the subnormals, +-0, +-inf and NaN each their own."""
    ebits, mbits = LAYOUT[dtype]
    width = 1 + ebits + mbits
    b = np.asarray(bits).astype(np.uint64)
    sign = ((b >> np.uint64(width - 1)) & np.uint64(1)).astype(np.int64)
    exp = ((b >> np.uint64(mbits)) & np.uint64((1 << ebits) - 1)).astype(np.int64)
    man = (b & np.uint64((1 << mbits) - 1)).astype(np.int64)
    top = (1 << ebits) - 1
    # field: 0 zero, 1 subnormal, 2.. normal exponents, top+1 inf, top+2 nan
    field = np.where(exp == 0, np.where(man == 0, 0, 1), np.where(exp == top, np.where(man == 0, top + 1, top + 2),
                                                                  exp + 1))
    code = np.where(sign == 1, -field - 1, field)  # negative binades sort before the positive ones
    code = np.where(field == top + 2, top + 3, code)  # one NaN, whatever its sign
    bias = (1 << (ebits - 1)) - 1
    labels = {}
    for cd in np.unique(code):
        f = int(-cd - 1 if cd < 0 else cd)
        s = "-" if cd < 0 else "+"
        if cd == top + 3:
            labels[int(cd)] = "nan"
        elif f == 0:
            labels[int(cd)] = f"{s}0"
        elif f == 1:
            labels[int(cd)] = f"{s}subnormal"
        elif f == top + 1:
            labels[int(cd)] = f"{s}inf"
        else:
            e = f - 1 - bias
            labels[int(cd)] = f"{s}[2^{e}, 2^{e + 1})"
    return code, [labels[int(c)] for c in np.unique(code)]


#: higher is worse (harness/verdict.py's RUNG_SEVERITY)
_SEVERITY = {"undetermined": -1, "accurate": 0, "stable": 1, "absolute": 2, "recursive": 3, "magnitude": 4,
             "flushed": 5, "convention": 6, "semantic": 7, "fail": 8, "special": 9}
_SEV = np.array([_SEVERITY[r] for r in RUNGS])
GAP = 16  # bad inputs within this many values of the format of each other make one cluster
MAP_BINS = 512  # the ULP map's bins over the swept values


@dataclass
class Series:
    """One (grid point, check) over the whole swept domain, accumulated chunk by chunk: the counts,
    the worst element, the maxima per binade, the runs of bad inputs and the ULP map's bins --
    never every element (a float32 sweep holds 2^32 of them per grid point)."""

    point: str
    check: str
    status: str = "ok"
    message: str = ""
    n: int = 0
    undetermined: int = 0
    failing: int = 0  # on a warning or failing rung
    beyond: int = 0  # beyond the ulp tolerance or on a warning or failing rung (bad_count)
    worst: dict | None = None
    worst_key: tuple | None = None
    binades: dict | None = None  # code -> [label, count, max ulp (NaN: none determined)]
    runs: list | None = None  # (from (ord, pos, bits), to (ord, pos, bits), count, rep key, rep)
    top: np.ndarray | None = None  # the ULP map: max ulp per bin
    top_max: float = 0.0


@dataclass
class SweepData:
    root: Path
    manifest: dict
    series: list[Series]
    chunks: int
    map_range: tuple[int, int] | None = None  # (lo, hi) ordinal of the swept first values

    @property
    def dtype(self) -> str:
        return str(self.manifest["spec"]["dtype"])

    @property
    def tol_ulp(self) -> float:
        return float(self.manifest["spec"].get("tolerances", {}).get("ulp", 1.0))


def _point_text(point: dict) -> str:
    return ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in point.items()
                     if v is not None) or "declared defaults"


def _element(dtype: str, inputs: np.ndarray, ulp, rung, observed, rounded, exact) -> dict:
    return {"input": [float(v) for v in to_float(inputs, dtype)], "ulp": float(ulp), "rung": RUNGS[int(rung)],
            "observed": float(to_float(observed, dtype)), "rounded": float(to_float(rounded, dtype)),
            "exact": float(exact)}


def _chunk_inputs(path: Path) -> np.ndarray:
    try:
        with np.load(path, allow_pickle=False) as z:
            return np.asarray(z["inputs"])
    except (OSError, ValueError, EOFError, KeyError) as exc:
        raise SweepDataError(f"{path}: not a readable chunk file ({exc})") from None


def load_sweep(root: str | Path) -> SweepData:
    """The manifest and every chunk file present, accumulated per (grid point, check) one chunk at
    a time (memory: one chunk plus the runs of bad inputs)."""
    root = Path(root)
    try:
        manifest = json.loads((root / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise SweepDataError(f"{root}: not a sweep directory (manifest.json: {exc})") from None
    if not isinstance(manifest, dict) or manifest.get("schema") != MANIFEST_SCHEMA:
        raise SweepDataError(f"{root}: manifest.json is not a {MANIFEST_SCHEMA} manifest")
    dtype = str(manifest["spec"]["dtype"])
    tol = float(manifest["spec"].get("tolerances", {}).get("ulp", 1.0))
    points, checks = manifest["grid_points"], manifest["checks"]
    paths = sorted((root / "chunks").glob("chunk-*.npz"))
    lo = hi = None  # the ULP map's range: a first pass over the inputs alone
    for path in paths:
        inp = _chunk_inputs(path)
        o = ordinal(inp.reshape(len(inp), -1)[:, 0], dtype)
        if o.size:
            lo = int(o.min()) if lo is None else min(lo, int(o.min()))
            hi = int(o.max()) if hi is None else max(hi, int(o.max()))
    edges = None if lo is None else np.linspace(lo, hi + 1, MAP_BINS + 1)
    series = {(g, c): Series(_point_text(point), check) for g, point in enumerate(points)
              for c, check in enumerate(checks)}
    for k, path in enumerate(paths):
        ch = read_chunk(path)
        inputs = ch["inputs"].reshape(len(ch["inputs"]), -1)
        for (g, c), s in series.items():
            st = str(ch["status"][g, c])
            if st != "ok":
                if s.status == "ok":
                    s.status, s.message = st, str(ch["message"][g, c])
                continue
            _add(s, k, ch, g, c, inputs, dtype, tol, edges)
    out = [series[(g, c)] for g in range(len(points)) for c in range(len(checks))]
    for s in out:
        _close_runs(s)
    return SweepData(root, manifest, out, len(paths), None if lo is None else (lo, hi))


def _add(s: Series, k: int, ch: dict, g: int, c: int, inputs: np.ndarray, dtype: str, tol: float, edges) -> None:
    ulp = ch[f"c{c}_ulp"][g].astype(np.float64)
    if not ulp.size:
        return
    rung = ch[f"c{c}_rung"][g].astype(np.int64)
    per = ulp.size // len(inputs)
    where = np.arange(ulp.size) // per
    first = inputs[where, 0]
    obs, rnd = ch[f"c{c}_observed"][g], ch[f"c{c}_rounded"][g]
    s.n += ulp.size
    s.undetermined += int(np.count_nonzero(rung == RUNGS.index("undetermined")))
    failing = np.isin(rung, [RUNGS.index(r) for r in BAD_RUNGS])
    s.failing += int(np.count_nonzero(failing))
    with np.errstate(invalid="ignore"):
        bad = failing | (ulp > tol)
    s.beyond += int(np.count_nonzero(bad))
    sev = _SEV[rung]
    un = np.nan_to_num(ulp, nan=-1.0)
    i = int(np.lexsort((-un, -sev))[0])  # the worst rung first, then the largest ulp; the first of ties
    key = (int(sev[i]), float(un[i]))
    if s.worst_key is None or key > s.worst_key:
        s.worst_key = key
        s.worst = _element(dtype, inputs[where[i]], ulp[i], rung[i], obs[i], rnd[i],
                           ch[f"c{c}_hi"][g][i] + ch[f"c{c}_lo"][g][i])
    code, labels = binade(first, dtype)
    s.binades = {} if s.binades is None else s.binades
    for cd, label in zip(np.unique(code), labels):
        sel = code == cd
        u = ulp[sel]
        u = u[~np.isnan(u)]
        got = s.binades.setdefault(int(cd), [label, 0, math.nan])
        got[1] += int(sel.sum())
        if u.size:
            got[2] = float(u.max()) if math.isnan(got[2]) else max(got[2], float(u.max()))
    s.runs = [] if s.runs is None else s.runs
    if bad.any():
        sel = np.flatnonzero(bad)
        ordn = ordinal(first[sel], dtype)
        order = np.argsort(ordn, kind="stable")
        sel, ordn = sel[order], ordn[order]
        breaks = np.flatnonzero(np.diff(ordn) > GAP) + 1
        for run in np.split(np.arange(len(sel)), breaks):
            members = sel[run]
            j = members[int(np.lexsort((-un[members], -sev[members]))[0])]
            rep_key = (int(sev[j]), float(un[j]))
            a, b = members[0], members[-1]
            s.runs.append(((int(ordn[run[0]]), (k, int(a)), first[a]), (int(ordn[run[-1]]), (k, int(b)), first[b]),
                           len(members), rep_key, (int(ordinal(first[j:j + 1], dtype)[0]), (k, int(j))),
                           _element(dtype, inputs[where[j]], ulp[j], rung[j], obs[j], rnd[j],
                                    ch[f"c{c}_hi"][g][j] + ch[f"c{c}_lo"][g][j])))
    if edges is not None:
        if s.top is None:
            s.top = np.zeros(MAP_BINS)
        u = np.nan_to_num(ulp, nan=0.0, posinf=1e6)
        bins = np.clip(np.searchsorted(edges, ordinal(first, dtype), side="right") - 1, 0, MAP_BINS - 1)
        np.maximum.at(s.top, bins, u)
        s.top_max = max(s.top_max, float(u.max()))


def _close_runs(s: Series) -> None:
    """Join the chunks' runs into the clusters a sort of every bad input by value would give:
    runs in value order, neighbours within GAP values merged (a run can continue in the next
    chunk, and the two halves of the format meet at 0)."""
    if not s.runs:
        s.runs = []
        return
    runs = sorted(s.runs, key=lambda r: (r[0][0], r[0][1]))
    out = []
    for r in runs:
        if out and r[0][0] - out[-1][1][0] <= GAP:
            f, t, n, key, where, rep = out[-1]
            t = max(t, r[1], key=lambda e: (e[0], e[1]))
            if r[3] > key or (r[3] == key and r[4] < where):  # the worst; of ties, the first by value
                key, where, rep = r[3], r[4], r[5]
            out[-1] = (f, t, n + r[2], key, where, rep)
        else:
            out.append(r)
    s.runs = out


def bad_count(s: Series) -> int:
    """The elements beyond the ulp tolerance or off the ladder's passing rungs: what the map and
    the clusters show (a stable element more than the tolerance off passes the gate, and is
    still worth a look)."""
    return s.beyond


def per_binade(s: Series, dtype: str) -> list[tuple[str, int, float, int]]:
    """(binade of the first swept value, elements, max ulp, 0) in value order."""
    return [(lab, n, u, 0) for _, (lab, n, u) in sorted((s.binades or {}).items())]


def clusters(s: Series, dtype: str, tol_ulp: float, gap: int = GAP, limit: int = 12) -> list[dict]:
    """Runs of bad elements whose first swept values lie within GAP values of the format of each
    other, worst first (by the cluster's worst rung, then its max ulp), with the worst element of
    each as its representative.  At most ``limit``."""
    out = []
    for f, t, n, _key, _where, rep in s.runs or []:
        out.append({"from": float(to_float(np.array([f[2]]), dtype)[0]),
                    "to": float(to_float(np.array([t[2]]), dtype)[0]), "count": n, "max_ulp": rep["ulp"],
                    "rung": rep["rung"], "input": rep["input"], "observed": rep["observed"],
                    "rounded": rep["rounded"], "exact": rep["exact"]})
    out.sort(key=lambda c: (-_SEVERITY[c["rung"]], -c["max_ulp"] if not math.isnan(c["max_ulp"]) else 0))
    return out[:limit]


def worst(s: Series, dtype: str) -> dict | None:
    """The worst element (rung, then ulp) with its input."""
    return s.worst


def _g(x: float) -> str:
    return "nan" if math.isnan(x) else f"{x:.6g}"


def _failing(s: Series) -> int:
    return s.failing


def domain_worst(data: SweepData) -> list[tuple[str, Series, dict]]:
    """Per check, the worst element over every grid point: (check, its series, the element)."""
    out = []
    for check in data.manifest["checks"]:
        best = None
        for s in data.series:
            w = worst(s, data.dtype) if s.check == check and s.status == "ok" else None
            if w is None:
                continue
            key = (_SEVERITY[w["rung"]], w["ulp"] if not math.isnan(w["ulp"]) else -1.0)
            if best is None or key > best[0]:
                best = (key, s, w)
        if best is not None:
            out.append((check, best[1], best[2]))
    return out


def text_summary(root: str | Path, top_binades: int = 4, top_clusters: int = 3) -> str:
    """What ``losscheck sweep`` prints: per check the domain-wide max ulp and its input; then per
    grid point and check the max ulp, how many inputs are beyond the tolerance and how many are on
    a warning or failing rung (flushed, absolute; special, fail),
    the worst binades and the clusters of inputs beyond the tolerance."""
    data = load_sweep(root)
    spec, dtype = data.manifest["spec"], data.dtype
    tol = data.tol_ulp
    lines = [(f"{spec['loss']} {dtype} vs {spec['backend']}: {data.manifest['points']:,} points x "
              f"{len(data.manifest['grid_points'])} grid points, {data.chunks}/{data.manifest['nchunks']} chunks "
              f"(tolerance {tol:g} ulp)")]
    for check, s, w in domain_worst(data):
        inp = ", ".join(_g(v) for v in w["input"])
        lines.append(f"  domain-wide max {check}: {_g(w['ulp'])} ulp ({w['rung']}) at input {inp}, {s.point}: "
                     f"observed {_g(w['observed'])}, exact {w['exact']:.17g}")
    for s in data.series:
        head = f"  {s.check:12} {s.point}: "
        if s.status != "ok":
            lines.append(head + f"{s.status}: {s.message}")
            continue
        w = worst(s, dtype)
        if w is None:
            lines.append(head + "no points yet")
            continue
        und = s.undetermined
        beyond = bad_count(s)
        inp = ", ".join(_g(v) for v in w["input"])
        lines.append(head + f"max {_g(w['ulp'])} ulp ({w['rung']}) at {inp}; {beyond:,} of {s.n:,} beyond "
                            f"{tol:g} ulp, {_failing(s):,} warn or fail" + (f", {und:,} undetermined" if und else ""))
        if beyond:
            rows = sorted(per_binade(s, dtype), key=lambda r: -(r[2] if not math.isnan(r[2]) else -1))
            lines.append("      worst binades: " + "; ".join(f"{b} {_g(u)}" for b, _, u, _ in rows[:top_binades]))
            for cl in clusters(s, dtype, tol, limit=top_clusters):
                lines.append(f"      cluster {_g(cl['from'])} .. {_g(cl['to'])} ({cl['count']:,} inputs): max "
                             f"{_g(cl['max_ulp'])} ulp {cl['rung']} at {', '.join(_g(v) for v in cl['input'])}")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------------
# the HTML page

def _ulp_map(data: SweepData, check: str) -> str | None:
    """Max ulp error vs the input's position in the format (ordinal), one line per grid point,
    log scale; the tolerance as a dashed line.  A data URI (matplotlib), or None."""
    import matplotlib

    from reports.plots import to_data_uri

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ser = [s for s in data.series if s.check == check and s.status == "ok" and s.top is not None]
    if not ser or data.map_range is None:
        return None
    fig, ax = plt.subplots(figsize=(9, 3.2))
    dtype = data.dtype
    lo, hi = data.map_range
    edges = np.linspace(lo, hi + 1, MAP_BINS + 1)
    for s in ser:
        ax.plot(edges[:-1], np.maximum(s.top, 1e-3), drawstyle="steps-post", lw=0.9, label=s.point)
    ax.set_yscale("log")
    ax.set_ylim(1e-3, max(10.0, max(s.top_max for s in ser) * 2))
    ax.axhline(data.tol_ulp, ls="--", lw=0.8, color="k")
    mags = (1e-4, 1e-2, 1.0, 1e2, 1e4, 1e8, 1e16, 1e32, np.inf)
    ticks = [-m for m in reversed(mags)] + [0.0, *mags]
    pos, lab = [], []
    for v in ticks:
        bits = _bits_of(v, dtype)
        o = int(ordinal(np.array([bits]), dtype)[0])
        held = to_float(np.array([bits]), dtype)[0]
        if lo <= o <= hi and (held == v or np.isclose(held, v, rtol=0.01)):  # about a value the format holds
            pos.append(o)
            lab.append(f"{v:g}")
    ax.set_xticks(pos, lab)
    ax.set_xlabel("input (position in the format)")
    ax.set_ylabel("max ulp error")
    ax.set_title(f"{data.manifest['spec']['loss']} {check} ({dtype})", fontsize=9)
    if len(ser) <= 16:
        ax.legend(fontsize=6, ncol=4, loc="upper center", bbox_to_anchor=(0.5, -0.28))
    uri = to_data_uri(fig)
    plt.close(fig)
    return uri


def _bits_of(v: float, dtype: str) -> int:
    """The bit pattern of ``v`` in ``dtype`` (bfloat16 truncated from float32: ticks only)."""
    with np.errstate(over="ignore"):
        return _bits(v, dtype)


def _bits(v: float, dtype: str) -> int:
    if dtype == "bfloat16":
        return int(np.array(v, np.float32).view(np.uint32)) >> 16
    view = {"float16": np.float16, "float32": np.float32, "float64": np.float64}[dtype]
    return int(np.array(v, view).view(UINT[dtype]))


def render_sweep(root: str | Path, out_dir: str | Path) -> Path:
    """``out_dir/sweep.html``: per check the ULP map; per grid point and check the max ulp and
    its input, the per-binade maxima and the clusters of bad inputs.  Everything from the files
    is escaped."""
    from reports.htmlkit import esc, img, page, table

    data = load_sweep(root)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    spec, dtype = data.manifest["spec"], data.dtype
    title = f"Exhaustive sweep: {spec['loss']} {dtype} vs {spec['backend']}"
    parts = [f"<h1>{esc(title)}</h1>",
             (f"<p>{esc(format(data.manifest['points'], ','))} points of the format x "
             f"{esc(len(data.manifest['grid_points']))} grid points, checks {esc(', '.join(data.manifest['checks']))}; "
             f"{esc(data.chunks)}/{esc(data.manifest['nchunks'])} chunks; oracle version "
             f"{esc(data.manifest.get('oracle_version'))}; tolerance {esc(data.tol_ulp)} ulp.</p>")]
    rows = []
    for s in data.series:
        w = worst(s, dtype) if s.status == "ok" else None
        bad = bad_count(s) if s.status == "ok" else 0
        rows.append([s.check, s.point, s.status if s.status != "ok" else (w and w["rung"]),
                     _g(w["ulp"]) if w else "", ", ".join(_g(v) for v in w["input"]) if w else s.message,
                     _g(w["observed"]) if w else "", f"{w['exact']:.17g}" if w else "", f"{bad:,}"])
    parts.append("<h2>Worst input per grid point</h2>")
    parts.append(table(["check", "grid point", "worst rung", "max ulp", "input", "observed", "exact", "bad inputs"],
                       rows, num=(3, 7)))
    for check in data.manifest["checks"]:
        uri = _ulp_map(data, check)
        if uri:
            parts.append(f"<h2>ULP map: {esc(check)}</h2>")
            parts.append(img(uri, f"max ulp error vs input, {check}"))
    for s in data.series:
        if s.status != "ok" or not bad_count(s):
            continue
        parts.append(f"<h3>{esc(s.check)}, {esc(s.point)}</h3>")
        parts.append(table(["binade", "inputs", "max ulp"],
                           [[b, f"{n:,}", _g(u)] for b, n, u, _ in per_binade(s, dtype)], num=(1, 2)))
        parts.append(table(["from", "to", "inputs", "max ulp", "rung", "representative input", "observed", "exact"],
                           [[_g(c["from"]), _g(c["to"]), f"{c['count']:,}", _g(c["max_ulp"]), c["rung"],
                             ", ".join(_g(v) for v in c["input"]), _g(c["observed"]), f"{c['exact']:.17g}"]
                            for c in clusters(s, dtype, data.tol_ulp)], num=(2, 3)))
    path = out / "sweep.html"
    path.write_text(page(title, parts), encoding="utf-8")
    return path


def summary_dict(root: str | Path) -> dict[str, Any]:
    """The domain-wide figures as JSON-able data (max ulp and worst input per grid point and check)."""
    data = load_sweep(root)
    return {"loss": data.manifest["spec"]["loss"], "dtype": data.dtype,
            "series": [{"check": s.check, "point": s.point, "status": s.status, "worst": worst(s, data.dtype)}
                       for s in data.series]}
