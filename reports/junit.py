"""junit.xml: one testcase per backend × loss × family, so CI systems list the gate natively.

A testcase fails when any of its records fails (the worst one's message and repro are attached),
errors when a backend raised, is skipped when every record is unsupported; warnings go to
properties and system-out. ElementTree escapes text; characters XML 1.0 forbids are dropped.
"""
from __future__ import annotations

import re
import xml.etree.ElementTree as ET

from reports.results import Results, fmt_number
from reports.summary import by_backend, group, issues

MAX_DESCRIBED = 20  # warnings described in full per testcase; the rest are counted

_INVALID_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def clean(text) -> str:
    return _INVALID_XML.sub("\ufffd", "" if text is None else str(text))


def _describe(rec: dict) -> str:
    w = rec.get("worst") or {}
    lines = [(f"case {rec['case_id']}: {rec['loss']} {rec.get('family')} options={rec.get('options')} "
             f"dtype={rec.get('dtype')} check={rec['check']} verdict={rec['verdict']} "
             f"max_ulp={fmt_number(rec.get('max_ulp'))}")]
    if w:
        lines.append(f"worst element {w.get('index')}: exact {w.get('exact')} observed {w.get('observed')} "
                     f"({fmt_number(w.get('ulp'))} ulp, {w.get('rung')}) input: {w.get('input')}")
    if rec.get("message"):
        lines.append(f"message: {rec['message']}")
    if rec.get("repro"):
        lines += ["repro:", rec["repro"]]
    return "\n".join(lines)


def render_junit(results: Results) -> str:
    root = ET.Element("testsuites", name="losscheck")
    order = {"fail": 0, "error": 1}
    totals = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    for backend, bcell in by_backend(results).items():
        suite = ET.SubElement(root, "testsuite", name=clean(backend))
        counts = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
        elapsed_suite = 0.0
        for (loss, family), cell in group(bcell.records, "loss", "family").items():
            elapsed = sum(r.get("elapsed") or 0.0 for r in cell.records)
            elapsed_suite += elapsed
            case = ET.SubElement(suite, "testcase", classname=clean(f"losscheck.{backend}.{loss}"),
                                 name=clean(family), time=f"{elapsed:.3f}")
            counts["tests"] += 1
            bad = [r for r in issues(cell.records) if r["verdict"] in order]
            warned = [r for r in issues(cell.records) if r["verdict"] not in order]
            if bad:
                worst = bad[0]
                kind = "failure" if any(r["verdict"] == "fail" for r in bad) else "error"
                if kind == "failure":
                    worst = next(r for r in bad if r["verdict"] == "fail")
                counts["failures" if kind == "failure" else "errors"] += 1
                what = "failed" if kind == "failure" else "raised an error"
                el = ET.SubElement(case, kind, type=clean(worst["verdict"]), message=clean(
                    f"{len(bad)} of {len(cell.records)} checks {what}; worst: {worst['case_id']} "
                    f"{worst.get('dtype')} {worst['check']}: {worst.get('message') or ''}".strip()))
                el.text = clean(_describe(worst))
            elif all(r.get("verdict") == "unsupported" for r in cell.records):
                counts["skipped"] += 1
                ET.SubElement(case, "skipped", message="unsupported by this backend")
            if warned:
                props = ET.SubElement(case, "properties")
                for r in warned[:MAX_DESCRIBED]:
                    ET.SubElement(props, "property", name=clean(f"{r['verdict']}:{r['case_id']}:{r['check']}"),
                                  value=clean(f"{r.get('dtype')} max_ulp={fmt_number(r.get('max_ulp'))} "
                                              f"{r.get('message') or ''}".strip()))
                out = ET.SubElement(case, "system-out")
                text = "\n\n".join(_describe(r) for r in warned[:MAX_DESCRIBED])
                if len(warned) > MAX_DESCRIBED:
                    text += f"\n\n... and {len(warned) - MAX_DESCRIBED} more warnings (see index.html)"
                out.text = clean(text)
        suite.set("time", f"{elapsed_suite:.3f}")
        for k, v in counts.items():
            suite.set(k, str(v))
            totals[k] += v
    for k, v in totals.items():
        root.set(k, str(v))
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"

