"""Precision regression: match two result sets case by case and say what got worse or better.

A case "got worse" when its max ulp error grew beyond ``factor`` times the base error, with the base
taken as at least ``floor`` ulp: going from 0 to 0.5 ulp is noise, not infinite growth. With
``gate`` the comparison fails (exit code 1) on any such case or on a new failure.
"""
from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from statistics import median

from reports import plots
from reports.htmlkit import Td, badge, esc, img, page, table
from reports.markdown import cell as md_cell
from reports.markdown import md_table
from reports.results import FAILING, Results, ResultsError, fmt_number, load_results, run_devices, schema_note
from reports.summary import ulp_key

MAX_LISTED = 50  # cases listed per category; the rest are counted
GOOD = frozenset({"pass", "warn", "xfail"})


@dataclass
class Pair:
    """One case in both sets."""

    base: dict
    new: dict

    @property
    def base_ulp(self) -> float | None:
        return _ulp(self.base)

    @property
    def new_ulp(self) -> float | None:
        return _ulp(self.new)

    def label(self) -> str:
        b, n = self.base, self.new
        who = b["backend"] if b["backend"] == n["backend"] else f"{b['backend']}→{n['backend']}"
        return f"{who} {n['loss']} {n.get('family')} {n.get('dtype')} {n['check']} {n['case_id']}"


@dataclass
class FamilyDelta:
    loss: str
    family: str
    pairs: list[Pair] = field(default_factory=list)
    worse: int = 0
    better: int = 0
    new_failures: int = 0
    fixed_failures: int = 0

    def _stat(self, side: str, name: str, how) -> float | None:
        vals = [_num(getattr(p, side).get(name)) for p in self.pairs]
        vals = [v for v in vals if v is not None and not math.isnan(v)]
        return how(vals) if vals else None

    @property
    def max_base(self):
        return self._stat("base", "max_ulp", max)

    @property
    def max_new(self):
        return self._stat("new", "max_ulp", max)

    @property
    def median_base(self):
        return self._stat("base", "median_ulp", median)

    @property
    def median_new(self):
        return self._stat("new", "median_ulp", median)


@dataclass
class Comparison:
    base: Results
    new: Results
    factor: float
    floor: float
    gate: bool
    mode: str  # "same backends" or "BASE_BACKEND vs NEW_BACKEND"
    pairs: list[Pair]
    worse: list[Pair]
    better: list[Pair]
    new_failures: list[Pair]
    fixed_failures: list[Pair]
    only_base: list[dict]
    only_new: list[dict]
    families: list[FamilyDelta]
    markdown: str = ""
    paths: dict[str, Path] = field(default_factory=dict)
    _html: str | None = field(default=None, repr=False)

    @property
    def html(self) -> str:
        """compare.html's text (rendered on first use: the plot costs a second)."""
        if self._html is None:
            self._html = render_html(self)
        return self._html

    allow_missing: bool = False

    @property
    def missing(self) -> bool:
        """Checks of BASE that NEW lacks count against NEW (a partial run proves nothing about them)."""
        return bool(self.only_base) and not self.allow_missing

    @property
    def regressed(self) -> bool:
        return bool(self.worse or self.new_failures or self.missing)

    @property
    def exit_code(self) -> int:
        return 1 if self.gate and self.regressed else 0


def _num(value) -> float | None:
    return value if isinstance(value, float) else (float(value) if isinstance(value, int) else None)


def _ulp(rec: dict) -> float | None:
    v = _num(rec.get("max_ulp")) if rec.get("status") == "ok" else None
    return None if v is None or math.isnan(v) else v


def grew(old: float, new: float, factor: float, floor: float) -> bool:
    """Did the error grow beyond factor × max(old, floor)?  (inf > inf is not growth.)"""
    return new > factor * max(old, floor)


def _match(base: Results, new: Results) -> tuple[str, dict, dict]:
    """Key both sets alike: by (backend, case_id, check), or by (case_id, check) when each file has
    exactly one backend and they differ (e.g. torch in BASE against a candidate kernel in NEW)."""
    bb, nb = sorted({k[0] for k in base.records}), sorted({k[0] for k in new.records})
    if len(bb) == 1 and len(nb) == 1 and bb != nb:
        return (f"{bb[0]} vs {nb[0]}", {(c, ch): r for (_, c, ch), r in base.records.items()},
                {(c, ch): r for (_, c, ch), r in new.records.items()})
    return "same backends", dict(base.records), dict(new.records)


def _same_runs(base: Results, new: Results) -> None:
    """Refuse (ResultsError, one line) runs that cannot be compared: another suite or seed, another
    device, or other backends (except one backend on each side: a candidate against a baseline)."""
    hb, hn = base.runs[0], new.runs[0]
    for key in ("suite", "seed"):
        if hb.get(key) != hn.get(key):
            raise ResultsError(f"BASE is {key} {hb.get(key)!r}, NEW is {key} {hn.get(key)!r}: compare runs "
                               "of one suite and seed")
    db, dn = run_devices(base), run_devices(new)
    if db != dn:
        raise ResultsError(f"BASE ran on device {', '.join(sorted(db))}, NEW on {', '.join(sorted(dn))}: "
                           "compare runs on one device (another device runs other kernels)")
    bb, nb = set(base.backends), set(new.backends)
    if bb != nb and not (len(bb) == 1 and len(nb) == 1):
        raise ResultsError(f"BASE has backends {', '.join(sorted(bb))}, NEW has {', '.join(sorted(nb))}: "
                           "compare runs of the same backends, or one backend against one")


def compare(base_path: str | Path, new_path: str | Path, out_dir: str | Path | None = None,
            factor: float = 2.0, gate: bool = False, floor: float = 1.0,
            allow_missing: bool = False) -> Comparison:
    """Compare two results files; with out_dir write compare.html and compare.md there.  Checks of
    BASE missing from NEW are a regression unless ``allow_missing``."""
    if not (factor >= 1.0 and math.isfinite(factor)):
        raise ResultsError(f"factor must be a finite number >= 1, got {factor!r}")
    base, new = load_results(base_path), load_results(new_path)
    _same_runs(base, new)
    mode, bmap, nmap = _match(base, new)
    pairs = [Pair(bmap[k], nmap[k]) for k in bmap if k in nmap]
    only_base = [bmap[k] for k in bmap if k not in nmap]
    only_new = [nmap[k] for k in nmap if k not in bmap]

    worse, better, new_failures, fixed = [], [], [], []
    fams: dict[tuple[str, str], FamilyDelta] = {}
    for p in pairs:
        fam = fams.setdefault((p.new["loss"], str(p.new.get("family"))),
                              FamilyDelta(p.new["loss"], str(p.new.get("family"))))
        fam.pairs.append(p)
        bv, nv = p.base.get("verdict"), p.new.get("verdict")
        if nv in FAILING and bv not in FAILING:
            new_failures.append(p)
            fam.new_failures += 1
        elif bv in FAILING and nv in GOOD:
            fixed.append(p)
            fam.fixed_failures += 1
        b, n = p.base_ulp, p.new_ulp
        if b is None or n is None:
            continue
        if grew(b, n, factor, floor):
            worse.append(p)
            fam.worse += 1
        elif grew(n, b, factor, floor):
            better.append(p)
            fam.better += 1

    def sev(p: Pair):
        return (-ulp_key(p.new_ulp), p.label())

    worse.sort(key=sev)
    better.sort(key=lambda p: (-ulp_key(p.base_ulp), p.label()))
    new_failures.sort(key=sev)
    families = sorted(fams.values(), key=lambda f: (-(f.worse + f.new_failures), f.loss, f.family))
    cmp = Comparison(base, new, factor, floor, gate, mode, pairs, worse, better, new_failures, fixed,
                     only_base, only_new, families, allow_missing=allow_missing)
    cmp.markdown = render_markdown(cmp)
    if out_dir is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        for name, text in (("compare.md", cmp.markdown), ("compare.html", cmp.html)):
            cmp.paths[name] = out / name
            cmp.paths[name].write_text(text, encoding="utf-8")
    return cmp


# ---------------------------------------------------------------- rendering

def _family_rows(c: Comparison) -> list[list]:
    return [[f.loss, f.family, len(f.pairs), f.worse, f.better, f.new_failures, f.fixed_failures,
             f"{fmt_number(f.max_base)} → {fmt_number(f.max_new)}",
             f"{fmt_number(f.median_base)} → {fmt_number(f.median_new)}"] for f in c.families]


_FAMILY_HEADERS = ["loss", "family", "cases", "worse", "better", "new failures", "fixed failures",
                   "max ulp", "median ulp"]


def _pair_row(p: Pair) -> list:
    n = p.new
    return [n["case_id"], p.base["backend"] if p.base["backend"] == n["backend"]
            else f"{p.base['backend']} → {n['backend']}", n["loss"], n.get("family"), n.get("dtype"),
            n["check"], f"{fmt_number(p.base_ulp)} → {fmt_number(p.new_ulp)}",
            f"{p.base.get('verdict')} → {n.get('verdict')}", (n.get("message") or "")[:200]]


_PAIR_HEADERS = ["case", "backend", "loss", "family", "dtype", "check", "max ulp", "verdict", "message"]


def _only_row(r: dict) -> list:
    return [r["case_id"], r["backend"], r["loss"], r.get("family"), r.get("dtype"), r["check"],
            r.get("verdict")]


_ONLY_HEADERS = ["case", "backend", "loss", "family", "dtype", "check", "verdict"]


def _headline(c: Comparison) -> str:
    state = "REGRESSION" if c.regressed else "no regression"
    return (f"{state}: {len(c.worse)} worse, {len(c.new_failures)} new failures, {len(c.better)} better, "
            f"{len(c.fixed_failures)} fixed, {len(c.pairs)} matched, {len(c.only_base)} only in BASE"
            f"{' (missing from NEW: a regression unless --allow-missing)' if c.missing else ''}, "
            f"{len(c.only_new)} only in NEW")


def _sections(c: Comparison):
    return [("Worse (error grew beyond the factor)", c.worse, _PAIR_HEADERS, _pair_row),
            ("New failures", c.new_failures, _PAIR_HEADERS, _pair_row),
            ("Better", c.better, _PAIR_HEADERS, _pair_row),
            ("Fixed failures", c.fixed_failures, _PAIR_HEADERS, _pair_row),
            ("Only in BASE", c.only_base, _ONLY_HEADERS, _only_row),
            ("Only in NEW", c.only_new, _ONLY_HEADERS, _only_row)]


def render_markdown(c: Comparison) -> str:
    lines = [f"## losscheck compare: {'❌' if c.regressed else '✅'} {md_cell(_headline(c))}", "",
             (f"BASE `{md_cell(c.base.path)}` ({md_cell(schema_note(c.base.schema))}) · "
              f"NEW `{md_cell(c.new.path)}` ({md_cell(schema_note(c.new.schema))}) · matched by "
             f"{md_cell(c.mode)} · gate: max ulp error > {c.factor:g} × max(BASE, {c.floor:g} ulp) "
             "or a new failure"), ""]
    if c.families:
        lines += ["### Per family", ""] + md_table(_FAMILY_HEADERS, _family_rows(c)) + [""]
    for title, items, headers, row in _sections(c):
        if not items:
            continue
        lines += [f"### {title} ({len(items)})", ""] + md_table(headers, [row(x) for x in items[:MAX_LISTED]])
        if len(items) > MAX_LISTED:
            lines += ["", f"… and {len(items) - MAX_LISTED} more."]
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def render_html(c: Comparison) -> str:
    verdict = "fail" if c.regressed else "pass"
    parts = [f"<h1>losscheck compare {badge(verdict, 'REGRESSION' if c.regressed else 'OK', 'status')}</h1>",
             f"<p>{esc(_headline(c))}</p>",
             (f"<dl class=\"run\"><dt>BASE</dt><dd>{esc(c.base.path)} ({esc(schema_note(c.base.schema))})</dd>"
              f"<dt>NEW</dt><dd>{esc(c.new.path)} ({esc(schema_note(c.new.schema))})</dd>"
             f"<dt>matched by</dt><dd>{esc(c.mode)}</dd><dt>gate</dt><dd>max ulp error &gt; "
             f"{esc(f'{c.factor:g}')} × max(BASE, {esc(f'{c.floor:g}')} ulp), or a new failure</dd></dl>")]
    for note in c.base.warnings + c.new.warnings:
        parts.append(f"<p class=\"note\">⚠ {esc(note)}</p>")
    if c.families:
        rows = []
        for r, f in zip(_family_rows(c), c.families):
            r[3] = Td(r[3], "v-fail" if f.worse else "")
            r[4] = Td(r[4], "v-pass" if f.better else "")
            r[5] = Td(r[5], "v-fail" if f.new_failures else "")
            r[6] = Td(r[6], "v-pass" if f.fixed_failures else "")
            rows.append(r)
        parts += ["<h2>Per family</h2>", table(_FAMILY_HEADERS, rows, num=range(2, 9))]
    pairs = [(p.base_ulp, p.new_ulp) for p in c.pairs if p.base_ulp is not None and p.new_ulp is not None]
    parts += ["<h2>BASE vs NEW</h2>", img(plots.compare_scatter(pairs, c.factor, c.floor),
                                          "max ulp error, BASE vs NEW")]
    for title, items, headers, row in _sections(c):
        parts.append(f"<h2>{esc(title)} ({len(items)})</h2>")
        if not items:
            parts.append("<p class=\"note\">none</p>")
            continue
        rows = [row(x) for x in items[:MAX_LISTED]]
        if headers is _PAIR_HEADERS:  # long messages: clipped, full text on hover
            rows = [[*r[:-1], Td(r[-1], "clip", r[-1])] for r in rows]
        parts.append(table(headers, rows))
        if len(items) > MAX_LISTED:
            more = Counter((x["loss"] if isinstance(x, dict) else x.new["loss"]) for x in items[MAX_LISTED:])
            parts.append(f"<p class=\"note\">… and {len(items) - MAX_LISTED} more: "
                         f"{esc(', '.join(f'{k} {n}' for k, n in more.most_common()))}</p>")
    return page("losscheck compare", parts)
