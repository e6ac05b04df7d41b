"""index.html: the stability and error report of one results file (self-contained, offline).

The page fits its width at any size from a phone's up: nothing scrolls sideways, in the page or in
a box inside it (tests/test_report_browser.py checks it in Chromium at 1400 and 800 px).
"""
from __future__ import annotations

import hashlib
import json
import math
from collections import Counter, defaultdict

from reports import plots
from reports.htmlkit import Raw, Td, badge, esc, img, page, pre, table
from reports.results import FAILING, Results, fmt_number, run_device, schema_note
from reports.summary import VERDICTS, Cell, by_backend, check_key, dtype_key, headline, is_ok, issues, ulp_key
from reports.summary import table as accuracy_table

#: issues listed in full per category (fail/error, then warn/undetermined); the rest are counted
MAX_LISTED = 50
#: expected failures listed per reason; the rest are counted
MAX_XFAIL_LISTED = 50
#: the accuracy table starts open up to this many rows (the overview grid summarises it)
MAX_OPEN_ROWS = 40
#: passing grid cells whose worst element is off the accurate rung, listed under the grid
MAX_NOTES = 30

#: the rungs of the verdict ladder (docs/design.md), in order, with the grid's mark and meaning
RUNGS = {
    "accurate": ("", "within the dtype's ulp tolerance"),
    "stable": ("s", ("beyond the ulp tolerance, within what a backward-stable algorithm may commit "
                    "(scaled by the condition number)")),
    "flushed": ("z", "a subnormal result returned as ±0: flush-to-zero (warn)"),
    "recursive": ("r", "within the one-after-another (recursive) summation bound, beyond the pairwise one (warn)"),
    "absolute": ("a", "only within a few u of the loss's natural unit (warn)"),
    "magnitude": ("m", "only within a few u × max|x|: accurate relative to the inputs' magnitudes (warn)"),
    "convention": ("c", "the other answer at a special point where torch's is a convention: the limit (warn)"),
    "semantic": ("d", "another library's formula (a clip, a cap): a semantic difference (fail)"),
    "fail": ("f", "beyond every rung"),
    "special": ("x", "a special-value mismatch (NaN or inf against a number)"),
    "undetermined": ("u", "the oracle could not settle the exact value"),
}
NONFINITE_MARK = "!"
#: warning rungs whose grid cells carry their mark (which kind of warning it is)
WARN_MARKED = ("absolute", "flushed", "recursive", "magnitude", "convention")
#: grid and detail-table cell classes (colours in style.css) and what they mean, for the legend
CELL_CLASSES = (
    ("v-pass", "0.5", "pass: every element within the ulp tolerance"),
    ("v-stable", "4.5e13", "pass, but the worst element only on the stable rung (mark s)"),
    ("v-xfail", "inf", "every check an expected failure (xfail)"),
    ("v-xfail-some", "37", "passes and expected failures"),
    ("v-warn", "2.0e3", "warn or undetermined"),
    ("v-fail", "inf", "fail or error"),
    ("v-odd", "inf", "passing, yet an infinite or NaN error (mark !)"),
    ("v-unsupported", "—", "unsupported"),
)


def _pct(frac: float | None) -> str:
    return "—" if frac is None else f"{100 * frac:.1f}"


def compact(value: float | None) -> str:
    """A grid figure in at most 6 characters: 0, 0.75, 37, 512, 2.0e3, 1.6e7, 4.5e13, inf."""
    if value is None or not math.isfinite(value) or value == 0:
        return fmt_number(value)  # "—", "nan", "inf", "-inf", "0"
    if 0.01 <= abs(value) < 1000:
        return f"{value:.3g}"
    mantissa, exp = f"{value:.1e}".split("e")
    return f"{mantissa}e{int(exp)}"


def _wbr(text: object) -> str:
    """Escaped text with a line-break opportunity after each underscore (long loss names wrap)."""
    return esc(text).replace("_", "_<wbr>")


def _anchor(prefix: str, *parts: object) -> str:
    digest = hashlib.sha1("\0".join(map(str, parts)).encode("utf-8", "replace")).hexdigest()[:12]
    return f"{prefix}-{digest}"


def issue_anchor(rec: dict) -> str:
    return _anchor("issue", rec.get("backend"), rec.get("case_id"), rec.get("check"))


def xfail_reason(rec: dict) -> str:
    reason = rec.get("xfail_reason")
    return reason if isinstance(reason, str) and reason.strip() else "(no reason recorded)"


def xfail_anchor(reason: str) -> str:
    return _anchor("xfail", reason)


def _rung(rec: dict, tol: float) -> str | None:
    """The rung of a record's worst element (harness/check.py: the most severe rung, then the
    largest error; for a pass it is the element of the max ulp error): as written; or, in a file
    without it, the most severe rung its ``counts`` name; or accurate when the max error is within
    the tolerance, stable beyond it."""
    rung = (rec.get("worst") or {}).get("rung")
    if isinstance(rung, str) and rung in RUNGS:
        return rung
    counts = rec.get("counts")
    if isinstance(counts, dict):
        for name in ("special", "fail", "semantic", "convention", "flushed", "magnitude", "absolute", "recursive",
                     "stable", "accurate"):
            if isinstance(counts.get(name), int) and counts[name] > 0:
                return name
    mx = rec.get("max_ulp")
    if mx is None or math.isnan(mx):
        return None
    return "accurate" if mx <= tol else "stable"


def _verdict_spans(counts: Counter, sep: str = " ") -> Raw:
    """'3 pass 1 xfail 2 fail' with each verdict in its colour."""
    return Raw(sep.join(f"<span class=\"vc v-{esc(name)}\">{esc(n)}&nbsp;{esc(name)}</span>"
                        for name in (*VERDICTS, *sorted(set(counts) - set(VERDICTS))) if (n := counts.get(name))))


class CellView:
    """How one loss × check × dtype × backend cell is shown: colour class, figure, mark, tooltip."""

    def __init__(self, key: tuple, cell: Cell, tol: float):
        self.key, self.cell, self.tol = key, cell, tol
        v = cell.verdicts
        self.verdict = cell.worst_verdict
        self.max_ulp = cell.max_ulp
        worst = cell.worst
        self.rung = _rung(worst, tol) if worst is not None else None
        nonfinite = self.max_ulp is not None and not math.isfinite(self.max_ulp)
        if self.verdict in FAILING:
            self.cls = "v-fail"
        elif self.verdict in ("warn", "undetermined"):
            self.cls = "v-warn"
        elif self.verdict == "xfail":
            others = sum(n for k, n in v.items() if k not in ("xfail", "unsupported"))
            self.cls = "v-xfail-some" if others else "v-xfail"
        elif self.verdict == "unsupported":
            self.cls = "v-unsupported"
        elif nonfinite:
            self.cls = "v-odd"
        elif self.rung not in (None, "accurate"):
            self.cls = "v-stable"
        else:
            self.cls = "v-pass"
        self.mark = ""
        if self.verdict in ("pass", "xfail"):
            if nonfinite:
                self.mark = NONFINITE_MARK
            elif self.rung is not None:
                self.mark = RUNGS[self.rung][0]
        elif self.verdict == "warn" and self.rung in WARN_MARKED:
            self.mark = RUNGS[self.rung][0]  # which warning: an absolute-only cliff, a flush, ...
        elif self.verdict in FAILING and self.rung == "semantic":
            self.mark = RUNGS[self.rung][0]
        if self.max_ulp is not None:
            self.text = compact(self.max_ulp)
        else:
            self.text = {"unsupported": "—", "undetermined": "undet"}.get(self.verdict, self.verdict)

    @property
    def flagged(self) -> bool:
        """A passing (or expected-failing) cell whose figure needs a second look."""
        return bool(self.mark)

    def by_verdict(self) -> str:
        out = []
        for name in VERDICTS:
            recs = [r for r in self.cell.records if r.get("verdict") == name]
            if not recs:
                continue
            figs = [r["max_ulp"] for r in recs if r.get("max_ulp") is not None]
            out.append(f"{name} {len(recs)}" + (f" (max {fmt_number(max(figs))} ulp)" if figs else ""))
        return ", ".join(out)

    def by_rung(self) -> str:
        worst: dict[str, tuple[float, int]] = {}
        for r in self.cell.records:
            if r.get("max_ulp") is None or r.get("status") != "ok":
                continue
            rung = _rung(r, self.tol) or "?"
            fig = (r.get("worst") or {}).get("ulp")  # the most severe element's error (decoded)
            fig = fig if isinstance(fig, float) else r["max_ulp"]
            mx, n = worst.get(rung, (-math.inf, 0))
            worst[rung] = (max(mx, fig, key=ulp_key), n + 1)
        order = list(RUNGS) + ["?"]
        return " · ".join(f"{rung} {fmt_number(mx)} ({n} case{'s' if n != 1 else ''})"
                          for rung, (mx, n) in sorted(worst.items(), key=lambda kv: order.index(kv[0])))

    def title(self) -> str:
        loss, check, dtype, backend = self.key
        lines = [f"{backend} · {loss} · {dtype} · {check}"]
        worst = self.cell.worst
        if worst is not None:
            line = (f"worst {fmt_number(self.max_ulp)} ulp (tolerance {self.tol:g} ulp) in case "
                    f"{worst.get('case_id')} ({worst.get('family')})")
            if self.rung:
                line += f"; that element is on the '{self.rung}' rung: {RUNGS[self.rung][1]}"
            lines.append(line)
        if self.mark == NONFINITE_MARK:
            lines.append("an infinite or NaN error although the verdicts pass or are expected: check the case")
        lines.append(f"{len(self.cell.records)} checks: {self.by_verdict()}")
        rungs = self.by_rung()
        if rungs:
            lines.append(f"worst figure per rung (each case's most severe element): {rungs}")
        if self.cell.frac_correctly_rounded is not None:
            lines.append(f"{_pct(self.cell.frac_correctly_rounded)}% of {self.cell.elements} elements correctly "
                         f"rounded, {_pct(self.cell.frac_le_1ulp)}% within 1 ulp")
        return "\n".join(lines)


def _views(results: Results, tols: dict[str, float]) -> dict[tuple, CellView]:
    return {key: CellView(key, cell, plots.tolerance_of(tols, key[2]))
            for key, cell in accuracy_table(results).items()}


def _listed_issues(results: Results) -> list[tuple[str, list[dict]]]:
    """(title, records) per issue category, most severe first; the first MAX_LISTED get a block."""
    found = issues(results)
    out = []
    for title, kinds in (("Failures and errors", FAILING), ("Warnings and undetermined", {"warn", "undetermined"})):
        sel = [r for r in found if r["verdict"] in kinds]
        if sel:
            out.append((title, sel))
    return out


def _run_info(results: Results) -> str:
    parts = []
    for run in results.runs:
        versions = ", ".join(f"{k} {v}" for k, v in (run.get("versions") or {}).items())
        items = [("run", run.get("run_id")), ("schema", schema_note(run.get("schema"))),
                 ("started", run.get("started")), ("suite", run.get("suite")),
                 ("seed", run.get("seed")), ("backends", ", ".join(map(str, run.get("backends") or []))),
                 ("device", run_device(run)),
                 ("output dtype", "must be the input's (--strict-dtype)" if run.get("strict_dtype") is True
                  else None),
                 ("versions", versions)]
        dl = "".join(f"<dt>{esc(k)}</dt><dd>{esc(v)}</dd>" for k, v in items if v not in (None, ""))
        tol = run.get("tolerances")
        if tol:
            dl += ("<dt>tolerances</dt><dd><details><summary>show</summary>"
                   + pre(json.dumps(tol, indent=1, sort_keys=True)) + "</details></dd>")
        parts.append(f"<dl class=\"run\">{dl}</dl>")
    return "".join(parts)


def _cards(results: Results) -> str:
    cards = []
    for backend, cell in by_backend(results).items():
        cards.append(f"<div class=\"card\"><b>{esc(backend)}</b> {badge(cell.worst_verdict)}<br>"
                     f"{esc(len(cell.records))} checks: {esc(_verdict_spans(cell.verdicts, ' · '))}<br>"
                     f"<span class=\"muted\">max ulp error {esc(fmt_number(cell.max_ulp))}</span></div>")
    return f"<div class=\"cards\">{''.join(cards)}</div>"


def _check_label(check: str) -> str:
    """Grid column label: value, or ∂<argument> for the gradient w.r.t. that argument."""
    return check if not check.startswith("grad:") else "∂" + check[5:]


def _tolerance_note(tols: dict[str, float], dtypes: list[str]) -> str:
    named = [d for d in dtypes if d in tols]
    parts = " · ".join(f"{d} {plots.tolerance_of(tols, d):g} ulp" for d in dtypes)
    source = ("from the run header" if len(named) == len(dtypes)
              else "the default 1 ulp where the run header names none")
    return f"<p class=\"note\">Ulp tolerance of the accurate rung ({esc(source)}): {esc(parts)}.</p>"


def _grid_legend() -> str:
    items = "".join(f"<span class=\"key-item\"><span class=\"sw {cls}\">{esc(sample)}</span> {esc(text)}</span>"
                    for cls, sample, text in CELL_CLASSES)
    marks = " · ".join(f"<b>{esc(mark)}</b> {esc(rung)}" for rung, (mark, _) in RUNGS.items() if mark)
    return (f"<div class=\"legend\">{items}</div>"
            f"<p class=\"note\">Marks: the rung of the worst element where it is not 'accurate' — {marks}; "
            f"<b>{NONFINITE_MARK}</b> infinite or NaN. Hover a cell for its worst case, the worst figure of each "
            "rung and of each verdict; a cell with issues links to them.</p>")


def _grid(results: Results, views: dict[tuple, CellView], links: dict[tuple, str]) -> str:
    """The one-screen overview in the style of libm accuracy tables: losses as rows, dtype × check
    as columns, one column group (a block; blocks wrap on a narrow page) per backend, each cell the
    worst ulp error coloured by verdict."""
    if not views:
        return "<p class=\"note\">No checks in this file.</p>"
    losses = sorted({k[0] for k in views}, key=str)
    dtypes = sorted({k[2] for k in views}, key=lambda d: dtype_key(str(d)))
    checks = sorted({k[1] for k in views}, key=lambda c: check_key(str(c)))
    per_backend = by_backend(results)
    blocks = []
    for backend in results.backends:
        head = ("<tr><th rowspan=\"2\" class=\"loss\" scope=\"col\">loss</th>"
                + "".join(f"<th colspan=\"{len(checks)}\" class=\"dt\" scope=\"colgroup\">{esc(d)}</th>"
                          for d in dtypes)
                + "</tr><tr>"
                + "".join(f"<th class=\"ck{' first' if j == 0 else ''}\" title=\"{esc(c)}\">{esc(_check_label(c))}</th>"
                          for _ in dtypes for j, c in enumerate(checks))
                + "</tr>")
        rows = []
        for loss in losses:
            tds = []
            for d in dtypes:
                for j, c in enumerate(checks):
                    first = " first" if j == 0 else ""
                    view = views.get((loss, c, d, backend))
                    if view is None:
                        tds.append(f"<td class=\"g-none{first}\" title=\"no checks\"></td>")
                        continue
                    text = esc(view.text) + (f"<sup>{esc(view.mark)}</sup>" if view.mark else "")
                    href = links.get(view.key)
                    if href:
                        text = f"<a href=\"#{esc(href)}\">{text}</a>"
                    tds.append(f"<td class=\"{esc(view.cls)}{first}\" title=\"{esc(view.title())}\">{text}</td>")
            rows.append(f"<tr><th class=\"loss\" scope=\"row\">{_wbr(loss)}</th>{''.join(tds)}</tr>")
        cell = per_backend.get(backend)
        status = badge(cell.worst_verdict) if cell else ""
        blocks.append(f"<table class=\"grid\"><caption><b>{esc(backend)}</b> {status}</caption>"
                      f"<thead>{head}</thead><tbody>{''.join(rows)}</tbody></table>")
    return f"<div class=\"grid-blocks\">{''.join(blocks)}</div>"


def _grid_notes(views: dict[tuple, CellView]) -> str:
    """Passing or expected-failing cells whose worst figure is off the accurate rung, spelled out."""
    flagged = [v for v in views.values() if v.flagged and v.verdict == "pass"]
    if not flagged:
        return ""
    flagged.sort(key=lambda v: (-ulp_key(v.max_ulp), v.key))
    items = []
    for v in flagged[:MAX_NOTES]:
        loss, check, dtype, backend = v.key
        worst = v.cell.worst or {}
        why = (RUNGS[v.rung][1] if v.rung else "")
        if v.mark == NONFINITE_MARK:
            why = "an infinite or NaN error although no check of the cell fails"
        items.append(f"<li><span class=\"sw {esc(v.cls)}\">{esc(v.text)}<sup>{esc(v.mark)}</sup></span> "
                     f"<b>{esc(backend)}</b> · {esc(loss)} · {esc(dtype)} · {esc(check)}: worst "
                     f"{esc(fmt_number(v.max_ulp))} ulp (tolerance {esc(f'{v.tol:g}')}) in "
                     f"<code>{esc(worst.get('case_id'))}</code> ({esc(worst.get('family'))}) — {esc(why)}; "
                     f"{esc(v.cell.verdicts.get('pass', 0))} pass, {esc(v.cell.verdicts.get('xfail', 0))} xfail. "
                     f"<span class=\"muted\">Worst per rung: {esc(v.by_rung())}</span></li>")
    more = (f"<p class=\"note\">… and {len(flagged) - MAX_NOTES} more.</p>" if len(flagged) > MAX_NOTES else "")
    return ("<h3>Cells that pass with an error beyond the ulp tolerance</h3><ul class=\"notes\">"
            + "".join(items) + "</ul>" + more)


def _detail_table(views: dict[tuple, CellView]) -> str:
    headers = ["loss", "check", "dtype", "backend", "cases", "elements", "max ulp", "% CR", "% ≤1 ulp",
               "max bits", "verdicts", "worst case"]
    rows = []
    for (loss, check, dtype, backend), view in views.items():
        cell = view.cell
        worst = cell.worst
        winput = ""
        if worst is not None:
            w = worst.get("worst") or {}
            winput = Raw(f"<code>{esc(worst['case_id'])}</code> {esc(w.get('input') or worst.get('family', ''))}")
        mx = esc(fmt_number(cell.max_ulp)) + (f"<sup>{esc(view.mark)}</sup>" if view.mark else "")
        rows.append([
            loss, check, dtype, backend, len(cell.records), cell.elements,
            Td(Raw(mx), view.cls, view.title()), _pct(cell.frac_correctly_rounded),
            _pct(cell.frac_le_1ulp), fmt_number(cell.max_bits),
            Td(_verdict_spans(cell.verdicts), "verdicts"),
            Td(winput, "wrap worst"),
        ])
    open_ = " open" if len(rows) <= MAX_OPEN_ROWS else ""
    return (f"<details class=\"section\"{open_}><summary>{esc(len(rows))} rows: loss × check × dtype × backend"
            "</summary><p class=\"note\">% CR: share of elements correctly rounded; % ≤1 ulp: share within one "
            "ulp; max bits: bits of error of the worst element; the max ulp cell is coloured as in the overview "
            "(hover it for the worst figure of each rung).</p>"
            + table(headers, rows, num=range(4, 10), cls="details", bare=range(4)) + "</details>")


def issue_block(rec: dict, open_: bool = False) -> str:
    """One failure/warning: the case, exact vs observed, the message and the repro snippet."""
    w = rec.get("worst") or {}
    summary = (f"{badge(rec['verdict'])} <span class=\"key\">max ulp {esc(fmt_number(rec.get('max_ulp')))}</span>"
               f" · <b>{esc(rec['backend'])}</b> · {esc(rec['loss'])} · "
               f"{esc(rec.get('family'))} · {esc(rec.get('dtype'))} · {esc(rec['check'])} · "
               f"<code>{esc(rec['case_id'])}</code>")
    fields = [("case id", rec["case_id"]), ("loss", rec.get("loss")), ("family", rec.get("family")),
              ("options", rec.get("options")), ("dtype", rec.get("dtype")), ("check", rec.get("check")),
              ("reduction", rec.get("reduction")), ("shape", rec.get("shape")), ("status", rec.get("status")),
              ("meta", json.dumps(rec.get("meta") or {}, sort_keys=True)), ("worst index", w.get("index")),
              ("input", w.get("input")), ("exact", w.get("exact")), ("correctly rounded", w.get("rounded")),
              ("observed", w.get("observed")), ("ulp error", fmt_number(w.get("ulp"))), ("rung", w.get("rung")),
              ("xfail reason", rec.get("xfail_reason"))]
    rows = "".join(f"<tr><td class=\"key\">{esc(k)}</td><td class=\"wrap mono\">{esc(v)}</td></tr>"
                   for k, v in fields if v not in (None, "", []))
    body = f"<table class=\"fields\">{rows}</table>"
    if rec.get("message"):
        body += "<div>message:</div>" + pre(rec["message"])
    if rec.get("repro"):
        body += "<div>repro:</div>" + pre(rec["repro"])
    return (f"<details class=\"issue\" id=\"{esc(issue_anchor(rec))}\"{' open' if open_ else ''}>"
            f"<summary>{summary}</summary>{body}</details>")


def _issues(listed: list[tuple[str, list[dict]]]) -> str:
    if not listed:
        return "<p>No failures, errors or warnings.</p>"
    out = []
    for title, sel in listed:
        counts = Counter(r["verdict"] for r in sel)
        out.append(f"<h3>{esc(title)}: {esc(', '.join(f'{n} {k}' for k, n in counts.items()))}</h3>")
        out.extend(issue_block(r, open_=(i == 0)) for i, r in enumerate(sel[:MAX_LISTED]))
        if len(sel) > MAX_LISTED:
            rest = Counter((r["backend"], r["loss"], r.get("family")) for r in sel[MAX_LISTED:])
            out.append(f"<p class=\"note\">… and {len(sel) - MAX_LISTED} more (worst {MAX_LISTED} shown); "
                       "remaining by backend · loss · family:</p>")
            out.append(table(["backend", "loss", "family", "count"],
                             [[b, lo, f, n] for (b, lo, f), n in rest.most_common()], num=[3]))
    return "".join(out)


def _xfail_groups(results: Results) -> list[tuple[str, list[dict]]]:
    """Expected failures grouped by reason: most frequent reason first, worst error first within."""
    groups: dict[str, list[dict]] = defaultdict(list)
    for rec in results:
        if rec.get("verdict") == "xfail":
            groups[xfail_reason(rec)].append(rec)
    for recs in groups.values():
        recs.sort(key=lambda r: (-ulp_key(r.get("max_ulp")), r["backend"], r["loss"], r["case_id"], r["check"]))
    return sorted(groups.items(), key=lambda kv: (-len(kv[1]), kv[0]))


def _counted(recs: list[dict], field: str) -> str:
    return ", ".join(f"{k} {n}" for k, n in Counter(str(r.get(field)) for r in recs).most_common())


def _xfails(groups: list[tuple[str, list[dict]]]) -> str:
    if not groups:
        return "<p>No expected failures (no record is xfail).</p>"
    total = sum(len(recs) for _, recs in groups)
    out = [(f"<p>{esc(total)} checks failed as expected, for {esc(len(groups))} "
           f"reason{'s' if len(groups) != 1 else ''} (a known-failures entry matched each; docs/calibration.md "
           "explains torch's). They do not fail the gate.</p>")]
    summary_rows = []
    for reason, recs in groups:
        worst = max((r["max_ulp"] for r in recs if r.get("max_ulp") is not None), default=None)
        summary_rows.append([Td(Raw(f"<a href=\"#{esc(xfail_anchor(reason))}\">{esc(reason)}</a>"), "wrap"),
                             len(recs), Td(_counted(recs, "backend"), "wrap"), Td(_counted(recs, "loss"), "wrap"),
                             fmt_number(worst)])
    out.append(table(["reason", "count", "backends", "losses", "worst ulp"], summary_rows, num=[1, 4],
                     cls="xfail-summary"))
    for reason, recs in groups:
        rows = [[r["backend"], r["loss"], r.get("family"), r.get("dtype"), r["check"],
                 Td(r["case_id"], "mono"), fmt_number(r.get("max_ulp")), Td(r.get("message") or "", "wrap")]
                for r in recs[:MAX_XFAIL_LISTED]]
        more = (f"<p class=\"note\">… and {len(recs) - MAX_XFAIL_LISTED} more with this reason.</p>"
                if len(recs) > MAX_XFAIL_LISTED else "")
        facts = (f"backends: {_counted(recs, 'backend')} · losses: {_counted(recs, 'loss')} · "
                 f"dtypes: {_counted(recs, 'dtype')} · checks: {_counted(recs, 'check')}")
        out.append(f"<details class=\"xfail\" id=\"{esc(xfail_anchor(reason))}\"><summary>{badge('xfail')} "
                   f"<span class=\"key\">{esc(len(recs))} ×</span> {esc(reason)}</summary>"
                   f"<p class=\"muted\">{esc(facts)}</p>"
                   + table(["backend", "loss", "family", "dtype", "check", "case", "max ulp", "message"], rows,
                           num=[6])
                   + more + "</details>")
    return "".join(out)


def _links(views: dict[tuple, CellView], listed: list[tuple[str, list[dict]]]) -> dict[tuple, str]:
    """Grid cell -> the anchor of its most severe listed issue, or of its worst xfail's reason."""
    out: dict[tuple, str] = {}
    for _, sel in listed:  # most severe category first, worst error first within
        for r in sel[:MAX_LISTED]:
            out.setdefault((r["loss"], r["check"], r.get("dtype"), r["backend"]), issue_anchor(r))
    for key, view in views.items():
        if key not in out:
            xf = [r for r in view.cell.records if r.get("verdict") == "xfail"]
            if xf:
                out[key] = xfail_anchor(xfail_reason(max(xf, key=lambda r: ulp_key(r.get("max_ulp")))))
    return out


def render_html(results: Results) -> str:
    ok = is_ok(results)
    warns = any(r.get("verdict") == "warn" for r in results)
    # one wording with the terminal and summary.md: a PASS never hides its warnings
    status = badge("fail" if not ok else ("warn" if warns else "pass"), headline(results), "status")
    tols = plots.ulp_tolerances(results)
    views = _views(results, tols)
    listed = _listed_issues(results)
    groups = _xfail_groups(results)
    parts = [f"<h1>losscheck report {status}</h1>",
             (f"<p class=\"muted\">{esc(results.path.name)} · {esc(len(results))} checks · backends: "
              f"{esc(', '.join(results.backends))}</p>"),
             ("<nav><a href=\"#accuracy\">overview</a><a href=\"#xfail\">expected failures</a>"
              "<a href=\"#details\">details</a><a href=\"#histograms\">histograms</a>"
              "<a href=\"#drive\">error vs input</a><a href=\"#issues\">failures &amp; warnings</a></nav>"),
             _run_info(results)]
    for note in results.warnings:
        parts.append(f"<p class=\"note\">⚠ {esc(note)}</p>")
    dtypes = sorted({str(k[2]) for k in views}, key=dtype_key)
    parts += [_cards(results),
              "<h2 id=\"accuracy\">Worst ulp error (loss × dtype × check, per backend)</h2>",
              ("<p class=\"note\">Each cell: the worst error over every case of that loss, dtype and check, in ulps "
               "of the output format, coloured by the cell's worst verdict.</p>"),
              _tolerance_note(tols, dtypes),
              _grid(results, views, _links(views, listed)),
              _grid_legend(),
              _grid_notes(views),
              f"<h2 id=\"xfail\">Expected failures (xfail){esc(f': {sum(len(r) for _, r in groups)}' if groups else '')}</h2>",
              _xfails(groups),
              "<h2 id=\"details\">Accuracy table</h2>", _detail_table(views),
              "<h2 id=\"histograms\">Error distribution</h2>",
              img(plots.ulp_histogram(results), "ulp error histogram"),
              img(plots.bits_histogram(results), "bits of error"),
              "<h2 id=\"drive\">Error versus input</h2>"]
    drives = plots.drive_plots(results)
    if not drives:
        parts.append("<p class=\"note\">No case names a driving variable (meta.drive).</p>")
    for name, losses, uri in drives:
        meaning = plots.DRIVE_GLOSSARY.get(name)
        parts.append(f"<h3>{esc(name)} <span class=\"muted\">({esc(', '.join(losses))})</span></h3>")
        if meaning:
            parts.append(f"<p class=\"note\">{esc(name)}: {esc(meaning)}.</p>")
        parts.append(img(uri, f"max ulp error vs {name}"))
    parts += ["<h2 id=\"issues\">Failures and warnings</h2>", _issues(listed)]
    return page(f"losscheck report — {results.path.name}", parts)
