"""render(): every output of one results file into a directory."""
from __future__ import annotations

import json
from pathlib import Path

from reports.html_report import render_html
from reports.junit import render_junit
from reports.markdown import render_markdown
from reports.results import load_results
from reports.summary import summary


def render(results_path: str | Path, out_dir: str | Path) -> dict[str, Path]:
    """Write index.html, summary.md, summary.json and junit.xml; return {file name: path}.

    Raises reports.ResultsError (one line) when results_path is not a results file.
    """
    results = load_results(results_path)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    texts = {
        "index.html": render_html(results),
        "summary.md": render_markdown(results),
        "summary.json": json.dumps(summary(results), indent=1, allow_nan=False) + "\n",
        "junit.xml": render_junit(results),
    }
    paths = {}
    for name, text in texts.items():
        paths[name] = out / name
        paths[name].write_text(text, encoding="utf-8")
    return paths
