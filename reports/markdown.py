"""summary.md: the report as Markdown, sized for a CI step summary (GitHub renders inline HTML,
so every cell is HTML-escaped and pipes are neutralised)."""
from __future__ import annotations

import html
import re
from collections import Counter

from reports.results import Results, fmt_number, printable, run_device, schema_note
from reports.summary import VERDICTS, by_backend, expected_failures, headline, is_ok, issues, symptom_groups
from reports.summary import table as accuracy_table

MAX_LISTED = 30  # failures/warnings listed in the summary; the rest are counted
MAX_REPROS = 5   # repro snippets shown (collapsed)


def cell(value) -> str:
    """One Markdown table cell: escaped, single line, no pipe."""
    text = html.escape(printable("" if value is None else str(value)), quote=False)
    return re.sub(r"\s+", " ", text).replace("|", "&#124;").strip() or " "


def md_table(headers: list, rows: list[list]) -> list[str]:
    out = ["| " + " | ".join(cell(h) for h in headers) + " |",
           "|" + "|".join("---" for _ in headers) + "|"]
    out += ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]
    return out


def fence(text: str, lang: str = "") -> str:
    """A code fence longer than any backtick run in ``text``, so the snippet cannot break out."""
    text = printable(text)
    ticks = "`" * max(3, 1 + max((len(m) for m in re.findall(r"`+", text)), default=0))
    return f"{ticks}{lang}\n{text}\n{ticks}"


def _mark(verdict: str) -> str:
    return {"fail": "❌", "error": "❌", "warn": "⚠️", "undetermined": "❔"}.get(verdict, "")


def render_markdown(results: Results) -> str:
    ok = is_ok(results)
    found = issues(results)
    lines = [f"## losscheck: {'✅' if ok else '❌'} {headline(results)}", ""]
    for run in results.runs:
        strict = " · --strict-dtype" if run.get("strict_dtype") is True else ""
        lines.append(f"run `{cell(run.get('run_id'))}` · suite {cell(run.get('suite'))} · "
                     f"seed {cell(run.get('seed'))} · device {cell(run_device(run))}{strict} · "
                     f"started {cell(run.get('started'))}")
    lines += [f"{len(results)} checks in `{cell(results.path.name)}` ({cell(schema_note(results.schema))})", ""]
    for note in results.warnings:
        lines += [f"> ⚠️ {cell(note)}", ""]

    rows = []
    for backend, c in by_backend(results).items():
        v = c.verdicts
        rows.append([backend, len(c.records), *(v.get(k, 0) for k in VERDICTS), fmt_number(c.max_ulp)])
    lines += md_table(["backend", "checks", *VERDICTS, "max ulp"], rows) + [""]

    backends = results.backends
    matrix: dict[tuple, dict] = {}
    for (loss, check, dtype, backend), c in accuracy_table(results).items():
        matrix.setdefault((loss, check, dtype), {})[backend] = c
    rows = []
    for (loss, check, dtype), by_b in matrix.items():
        row = [loss, check, dtype]
        for b in backends:
            c = by_b.get(b)
            row.append("" if c is None else f"{fmt_number(c.max_ulp)} {_mark(c.worst_verdict)}".strip())
        rows.append(row)
    lines += ["### Maximal ulp error", ""] + md_table(["loss", "check", "dtype", *backends], rows) + [""]

    if found:
        groups = symptom_groups(found)
        lines += [f"### Failures and warnings by family and symptom ({len(groups)} groups, {len(found)} checks)", ""]
        rows = [[f"{_mark(recs[0]['verdict'])} {recs[0]['verdict']}", b, loss, fam, name, len(recs),
                 "/".join(sorted({str(r.get('dtype')) for r in recs})), f"`{recs[0]['case_id']}`",
                 fmt_number(recs[0].get("max_ulp"))] for (b, loss, fam, name), recs in groups[:MAX_LISTED]]
        lines += md_table(["worst", "backend", "loss", "family", "symptom", "checks", "dtypes", "worst case",
                           "max ulp"], rows) + [""]
        lines += [f"### Failures and warnings ({len(found)})", ""]
        rows = [[f"{_mark(r['verdict'])} {r['verdict']}", r["backend"], r["loss"], r.get("family"),
                 r.get("dtype"), r["check"], f"`{r['case_id']}`", fmt_number(r.get("max_ulp")),
                 (r.get("message") or "")[:160]] for r in found[:MAX_LISTED]]
        lines += md_table(["verdict", "backend", "loss", "family", "dtype", "check", "case", "max ulp",
                           "message"], rows)
        if len(found) > MAX_LISTED:
            rest = Counter(r["verdict"] for r in found[MAX_LISTED:])
            lines += ["", f"… and {len(found) - MAX_LISTED} more ("
                      + ", ".join(f"{n} {k}" for k, n in rest.items()) + "); see index.html."]
        lines.append("")
        for r in [r for r in found if r.get("repro")][:MAX_REPROS]:
            lines += [(f"<details><summary>repro {html.escape(r['backend'])} · {html.escape(r['loss'])} · "
                      f"{html.escape(r['case_id'])}</summary>"), "", fence(r["repro"], "python"), "",
                      "</details>", ""]
    xfails = expected_failures(results)
    if xfails:
        total = sum(len(recs) for _, recs in xfails)
        lines += [f"### Expected failures ({total}, known failures with their reasons)", ""]
        rows = [[len(recs), ", ".join(sorted({str(r.get('backend')) for r in recs})),
                 ", ".join(sorted({str(r.get('family')) for r in recs}))[:120], reason[:300]]
                for reason, recs in xfails]
        lines += md_table(["checks", "backends", "families", "reason"], rows) + [""]
    return "\n".join(lines).rstrip() + "\n"
