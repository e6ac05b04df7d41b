"""reports: results files -> HTML / Markdown / JSON / JUnit, and precision-regression comparison.

Reads only the results format (docs/CONTRACTS.md, "Results format"); never imports harness/,
cases/ or reference/, so a results file from any machine or version can be rendered.

- ``load_results(path) -> Results``       (``ResultsError`` for anything that is not a results file)
- ``render(results_path, out_dir)``       index.html, summary.md, summary.json, junit.xml
- ``compare(base, new, out_dir=None, factor=2.0, gate=False) -> Comparison`` (``.exit_code``)
- ``reports.schema.validate_file(path)``  JSON Schema check (schema/results-{1,2}.schema.json, by header)

Reads ``losscheck.results/2`` (checks "value" and "grad:<arg>") and ``/1``, whose "grad" is read as
"grad:input", so both versions render and compare alike.
"""
from __future__ import annotations

from reports.results import Results, ResultsError, ResultsWarning, load_results

__all__ = ["Comparison", "Results", "ResultsError", "ResultsWarning", "compare", "load_results", "render"]


def __getattr__(name: str):
    # render/compare pull in matplotlib: import them on first use, so load_results stays light.
    if name == "render":
        from reports.outputs import render
        return render
    if name in ("compare", "Comparison"):
        from reports import regression
        return getattr(regression, name)
    raise AttributeError(f"module 'reports' has no attribute {name!r}")
