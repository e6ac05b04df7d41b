"""index.html: the stability and error report of one results file (self-contained, offline)."""
from __future__ import annotations

import json
from collections import Counter

from reports import plots
from reports.htmlkit import Td, badge, esc, img, page, pre, table
from reports.results import FAILING, Results, fmt_number, schema_note
from reports.summary import VERDICTS, by_backend, is_ok, issues
from reports.summary import table as accuracy_table

#: issues listed in full per category (fail/error, then warn/undetermined); the rest are counted
MAX_LISTED = 50


def _pct(frac: float | None) -> str:
    return "—" if frac is None else f"{100 * frac:.1f}"


def _run_info(results: Results) -> str:
    parts = []
    for run in results.runs:
        versions = ", ".join(f"{k} {v}" for k, v in (run.get("versions") or {}).items())
        items = [("run", run.get("run_id")), ("schema", schema_note(run.get("schema"))),
                 ("started", run.get("started")), ("suite", run.get("suite")),
                 ("seed", run.get("seed")), ("backends", ", ".join(map(str, run.get("backends") or []))),
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
        v = cell.verdicts
        counts = " · ".join(f"{n} {name}" for name in VERDICTS if (n := v.get(name)))
        cards.append(f"<div class=\"card\"><b>{esc(backend)}</b> {badge(cell.worst_verdict)}<br>"
                     f"{esc(len(cell.records))} checks: {esc(counts)}<br>"
                     f"<span class=\"muted\">max ulp error {esc(fmt_number(cell.max_ulp))}</span></div>")
    return f"<div class=\"cards\">{''.join(cards)}</div>"


def _matrix(results: Results) -> str:
    """Zimmermann-style matrix: rows loss × check × dtype, one column of max ulp error per backend."""
    backends = results.backends
    cells = accuracy_table(results)
    rows: dict[tuple, dict] = {}
    for (loss, check, dtype, backend), cell in cells.items():
        rows.setdefault((loss, check, dtype), {})[backend] = cell
    out = []
    for (loss, check, dtype), cells_by_backend in rows.items():
        row = [loss, check, dtype]
        for b in backends:
            cell = cells_by_backend.get(b)
            if cell is None:
                row.append(Td("", "v-unsupported"))
                continue
            verdict = cell.worst_verdict
            text = fmt_number(cell.max_ulp) if cell.max_ulp is not None else verdict
            failing = sum(cell.verdicts.get(k, 0) for k in FAILING)
            if failing and cell.max_ulp is not None:
                text += f" ({failing} failing)"
            row.append(Td(text, f"v-{verdict}", f"{verdict}; {_pct(cell.frac_correctly_rounded)}% "
                                                f"correctly rounded; {len(cell.records)} cases"))
        out.append(row)
    return table(["loss", "check", "dtype", *backends], out, num=range(3, 3 + len(backends)), cls="matrix")


def _detail_table(results: Results) -> str:
    headers = ["loss", "check", "dtype", "backend", "cases", "elements", "max ulp", "% CR", "% ≤1 ulp",
               "max bits", "pass", "warn", "fail", "other", "worst case"]
    rows = []
    for (loss, check, dtype, backend), cell in accuracy_table(results).items():
        v = cell.verdicts
        other = sum(n for k, n in v.items() if k not in ("pass", "warn", "fail"))
        worst = cell.worst
        winput = ""
        if worst is not None:
            w = worst.get("worst") or {}
            winput = f"{worst['case_id']} {w.get('input') or worst.get('family', '')}"
        rows.append([
            loss, check, dtype, backend, len(cell.records), cell.elements,
            Td(fmt_number(cell.max_ulp), f"v-{cell.worst_verdict}"), _pct(cell.frac_correctly_rounded),
            _pct(cell.frac_le_1ulp), fmt_number(cell.max_bits), v.get("pass", 0),
            Td(v.get("warn", 0), "v-warn" if v.get("warn") else ""),
            Td(v.get("fail", 0), "v-fail" if v.get("fail") else ""),
            Td(other, "v-error" if v.get("error") else "", ", ".join(f"{k} {n}" for k, n in v.items()
                                                                        if k not in ("pass", "warn", "fail"))),
            Td(winput, "clip mono", winput),
        ])
    return ("<p class=\"note\">% CR: share of elements correctly rounded; % ≤1 ulp: share within one ulp; "
            "max bits: bits of error of the worst element; hover a worst case for its input.</p>"
            + table(headers, rows, num=range(4, 14)))


def issue_block(rec: dict, open_: bool = False) -> str:
    """One failure/warning: the case, exact vs observed, the message and the repro snippet."""
    w = rec.get("worst") or {}
    summary = (f"{badge(rec['verdict'])} <b>{esc(rec['backend'])}</b> · {esc(rec['loss'])} · "
               f"{esc(rec.get('family'))} · {esc(rec.get('dtype'))} · {esc(rec['check'])} · "
               f"<code>{esc(rec['case_id'])}</code> · max ulp {esc(fmt_number(rec.get('max_ulp')))}")
    fields = [("case id", rec["case_id"]), ("loss", rec.get("loss")), ("family", rec.get("family")),
              ("options", rec.get("options")), ("dtype", rec.get("dtype")), ("check", rec.get("check")),
              ("reduction", rec.get("reduction")), ("shape", rec.get("shape")), ("status", rec.get("status")),
              ("meta", json.dumps(rec.get("meta") or {}, sort_keys=True)), ("worst index", w.get("index")),
              ("input", w.get("input")), ("exact", w.get("exact")), ("correctly rounded", w.get("rounded")),
              ("observed", w.get("observed")), ("ulp error", fmt_number(w.get("ulp"))), ("rung", w.get("rung"))]
    rows = "".join(f"<tr><td class=\"key\">{esc(k)}</td><td class=\"wrap mono\">{esc(v)}</td></tr>"
                   for k, v in fields if v not in (None, "", []))
    body = f"<table>{rows}</table>"
    if rec.get("message"):
        body += "<div>message:</div>" + pre(rec["message"])
    if rec.get("repro"):
        body += "<div>repro:</div>" + pre(rec["repro"])
    return f"<details class=\"issue\"{' open' if open_ else ''}><summary>{summary}</summary>{body}</details>"


def _issues(results: Results) -> str:
    found = issues(results)
    if not found:
        return "<p>No failures, errors or warnings.</p>"
    out = []
    for title, kinds in (("Failures and errors", FAILING), ("Warnings and undetermined", {"warn", "undetermined"})):
        sel = [r for r in found if r["verdict"] in kinds]
        if not sel:
            continue
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


def render_html(results: Results) -> str:
    ok = is_ok(results)
    status = badge("pass" if ok else "fail", "PASS" if ok else "FAIL", "status")
    parts = [f"<h1>losscheck report {status}</h1>",
             (f"<p class=\"muted\">{esc(results.path.name)} · {esc(len(results))} checks · backends: "
             f"{esc(', '.join(results.backends))}</p>"),
             ("<nav><a href=\"#accuracy\">accuracy</a><a href=\"#details\">details</a>"
             "<a href=\"#histograms\">histograms</a><a href=\"#drive\">error vs input</a>"
             "<a href=\"#issues\">failures &amp; warnings</a></nav>"),
             _run_info(results)]
    for note in results.warnings:
        parts.append(f"<p class=\"note\">⚠ {esc(note)}</p>")
    parts += [_cards(results),
              "<h2 id=\"accuracy\">Maximal ulp error (loss × dtype × backend)</h2>",
              ("<p class=\"note\">Worst error over every case of the cell, in ulps of the output format; "
              "the colour is the cell's worst verdict (hover for % correctly rounded).</p>"),
              _matrix(results),
              "<h2 id=\"details\">Accuracy table</h2>", _detail_table(results),
              "<h2 id=\"histograms\">Error distribution</h2>",
              img(plots.ulp_histogram(results), "ulp error histogram"),
              img(plots.bits_histogram(results), "bits of error"),
              "<h2 id=\"drive\">Error versus input</h2>"]
    drives = plots.drive_plots(results)
    if not drives:
        parts.append("<p class=\"note\">No case names a driving variable (meta.drive).</p>")
    for name, losses, uri in drives:
        parts.append(f"<h3>{esc(name)} <span class=\"muted\">({esc(', '.join(losses))})</span></h3>")
        parts.append(img(uri, f"max ulp error vs {name}"))
    parts += ["<h2 id=\"issues\">Failures and warnings</h2>", _issues(results)]
    return page(f"losscheck report — {results.path.name}", parts)

