"""losscheck.results/2 (checks "value" and "grad:<arg>") next to /1 (whose "grad" reads as grad:input)."""
from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import pytest
import results_factory as rf

import reports
from reports import ResultsError, load_results, plots
from reports.schema import SCHEMA_PATHS, SchemaError, line_errors, load_schema, validate_file
from reports.summary import check_key

V1_NOTE = "losscheck.results/1 (grad read as grad:input)"


@pytest.fixture(scope="module")
def v2_report(tmp_path_factory):
    d = tmp_path_factory.mktemp("v2")
    lines = rf.synthetic_run(per_family=2)
    path = rf.write_results(d / "results.jsonl", lines)
    return lines, path, reports.render(path, d / "out")


@pytest.fixture(scope="module")
def v1_report(tmp_path_factory):
    d = tmp_path_factory.mktemp("v1")
    lines = rf.synthetic_run(per_family=2, version=1)
    path = rf.write_results(d / "results.jsonl", lines)
    return lines, path, reports.render(path, d / "out")


# ------------------------------------------------------------------ v2 files

def test_v2_file_with_input_and_target_gradients_validates_and_loads(v2_report):
    lines, path, _ = v2_report
    assert validate_file(path) == len(lines)
    res = load_results(path)
    assert res.schema == "losscheck.results/2" and res.version == 2
    kl = {r["check"] for r in res if r["loss"] == "kl_div"}
    assert kl == {"value", "grad:input", "grad:target"}
    assert {r["check"] for r in res} == {"value", "grad:input", "grad:target"}


def test_v2_html_shows_each_gradient_in_its_own_row(v2_report):
    _, _, paths = v2_report
    html = paths["index.html"].read_text()
    for check in ("value", "grad:input", "grad:target"):
        assert f"<td>mse_loss</td><td>{check}</td><td>float32</td><td>torch</td>" in html
    # the matrix lists value, then the input's gradient, then the target's
    at = [html.index(f"<td>kl_div</td><td>{c}</td><td>float16</td>") for c in ("value", "grad:input",
                                                                                 "grad:target")]
    assert at == sorted(at)
    # the planted kl_div target-gradient warning is listed with its check
    assert "kl_div · kl.log_target · float16 · grad:target" in html
    assert "<dd>losscheck.results/2</dd>" in html


def test_v2_markdown_summary_json_and_junit_carry_the_argument(v2_report):
    lines, _, paths = v2_report
    md = paths["summary.md"].read_text()
    assert "| kl_div | grad:target | float16 | 5 ⚠️ |" in md
    assert "| ⚠️ warn | torch | kl_div | kl.log_target | float16 | grad:target |" in md
    data = json.loads(paths["summary.json"].read_text())
    assert data["results_schema"] == "losscheck.results/2"
    assert {(r["loss"], r["check"]) for r in data["table"] if r["loss"] == "mse_loss"} == {
        ("mse_loss", "value"), ("mse_loss", "grad:input"), ("mse_loss", "grad:target")}
    assert any(w["check"] == "grad:target" and w["loss"] == "kl_div" for w in data["warnings"])
    root = ET.parse(paths["junit.xml"]).getroot()
    kl = next(tc for tc in root.iter("testcase") if tc.get("classname") == "losscheck.torch.kl_div")
    warned = next(r for r in lines[1:] if r["check"] == "grad:target" and r["verdict"] == "warn")
    assert [p.get("name") for p in kl.iter("property")] == [f"warn:{warned['case_id']}:grad:target"]
    assert "check=grad:target verdict=warn" in kl.find("system-out").text


# ------------------------------------------------------------------ v1 files still read

def test_v1_file_loads_with_grad_as_grad_input(v1_report):
    lines, path, _ = v1_report
    assert {r["check"] for r in lines[1:]} == {"value", "grad"}
    res = load_results(path)
    assert res.schema == "losscheck.results/1" and res.version == 1
    assert res.runs[0]["schema"] == "losscheck.results/1"
    assert {r["check"] for r in res} == {"value", "grad:input"}
    assert all(k[2] == r["check"] for k, r in res.records.items())
    assert len(res) == len(lines) - 1


def test_v1_file_renders_with_grad_input(v1_report):
    _, _, paths = v1_report
    html = paths["index.html"].read_text()
    assert "<td>cross_entropy</td><td>grad:input</td><td>float32</td><td>torch</td>" in html
    assert "<td>grad</td>" not in html and "grad:target" not in html
    assert f"<dd>{V1_NOTE}</dd>" in html
    md = paths["summary.md"].read_text()
    assert "| cross_entropy | grad:input | float32 |" in md and "| grad |" not in md
    assert f"({V1_NOTE})" in md
    data = json.loads(paths["summary.json"].read_text())
    assert data["results_schema"] == "losscheck.results/1"
    assert {r["check"] for r in data["table"]} == {"value", "grad:input"}
    ET.parse(paths["junit.xml"])  # well-formed


def test_v1_file_resumed_by_a_v2_writer_reads_as_one_run(tmp_path):
    cid = "a" * 16
    lines = [rf.run_header(run_id="r1", version=1), rf.record(cid=cid, check="grad", max_ulp=0.5),
             rf.run_header(run_id="r1", version=2), rf.record(cid=cid, check="grad:input", max_ulp=3.0),
             rf.record(cid=cid, check="grad:target", max_ulp=0.0)]
    path = rf.write_results(tmp_path / "r.jsonl", lines)
    assert validate_file(path) == 5  # each line against the header above it
    res = load_results(path)
    assert res.schema == "losscheck.results/1" and [r["schema"] for r in res.runs] == [
        "losscheck.results/1", "losscheck.results/2"]
    assert sorted(res.records) == [("torch", cid, "grad:input"), ("torch", cid, "grad:target")]
    assert res.records[("torch", cid, "grad:input")]["max_ulp"] == 3.0  # the resumed record wins


# ------------------------------------------------------------------ unknown versions

def test_unknown_schema_version_is_a_clean_error(tmp_path):
    lines = [rf.run_header(version=3), rf.record()]
    path = rf.write_results(tmp_path / "r3.jsonl", lines)
    with pytest.raises(ResultsError, match=r"r3\.jsonl:1: unsupported schema 'losscheck.results/3' "
                                           r"\(expected one of 'losscheck.results/1', 'losscheck.results/2'\)"):
        load_results(path)
    with pytest.raises(SchemaError, match=r"r3\.jsonl:1: unsupported schema 'losscheck.results/3'"):
        validate_file(path)
    with pytest.raises(ResultsError, match=r"r3\.jsonl:1"):
        reports.render(path, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    good = rf.write_results(tmp_path / "r2.jsonl", [rf.run_header(), rf.record()])
    with pytest.raises(ResultsError, match=r"r3\.jsonl:1: unsupported schema"):
        reports.compare(good, path)


def test_unknown_version_in_a_resume_header_names_its_line(tmp_path):
    lines = [rf.run_header(), rf.record(), rf.run_header(version=3), rf.record(check="grad:input")]
    with pytest.raises(ResultsError, match=r"r\.jsonl:3: unsupported schema 'losscheck.results/3'"):
        load_results(rf.write_results(tmp_path / "r.jsonl", lines))


# ------------------------------------------------------------------ the JSON Schemas

def test_both_schema_files_are_kept_and_loaded_by_version():
    assert sorted(SCHEMA_PATHS) == [1, 2]
    assert all(p.is_file() for p in SCHEMA_PATHS.values())
    v1, v2 = load_schema(1), load_schema(2)
    assert v1["$defs"]["run"]["properties"]["schema"] == {"const": "losscheck.results/1"}
    assert v2["$defs"]["run"]["properties"]["schema"] == {"const": "losscheck.results/2"}
    assert v1["$defs"]["result"]["properties"]["check"] == {"enum": ["value", "grad"]}
    with pytest.raises(ResultsError, match="no results schema version 3"):
        load_schema(3)


@pytest.mark.parametrize("check, v1_ok, v2_ok", [
    ("value", True, True),
    ("grad", True, False),
    ("grad:input", False, True),
    ("grad:target", False, True),
    ("grad:hidden_0", False, True),
    ("grad:", False, False),
    ("grad:0x", False, False),
    ("grad:input ", False, False),
    ("Value", False, False),
])
def test_check_field_per_version(check, v1_ok, v2_ok):
    rec = rf.record(check=check)
    assert (line_errors(rec, 1) == []) is v1_ok, line_errors(rec, 1)
    assert (line_errors(rec, 2) == []) is v2_ok, line_errors(rec, 2)
    assert line_errors(rec) == line_errors(rec, 2)  # a lone record is read as the current version
    if not v2_ok:
        assert any(e.startswith("check: ") for e in line_errors(rec, 2))


def test_v2_accepts_new_losses_and_kl_div_reduction():
    rec = rf.record(loss="kl_div", family="kl.log_target", check="grad:target", reduction="batchmean")
    assert line_errors(rec, 2) == []
    assert any(e.startswith("reduction: ") for e in line_errors(rec, 1))
    assert line_errors(rf.record(loss="some_future_loss", check="grad:weight"), 2) == []


def test_header_lines_validate_against_the_version_they_name():
    assert line_errors(rf.run_header(version=1)) == [] and line_errors(rf.run_header(version=2)) == []
    assert any("losscheck.results/2" in e for e in line_errors(rf.run_header(version=1), 2))


def test_validate_file_uses_the_header_version(tmp_path):
    v1_with_v2_check = [rf.run_header(version=1), rf.record(check="value"), rf.record(check="grad:target")]
    with pytest.raises(SchemaError, match=r"a\.jsonl:3: check: 'grad:target' is not one of"):
        validate_file(rf.write_results(tmp_path / "a.jsonl", v1_with_v2_check))
    v2_with_v1_check = [rf.run_header(version=2), rf.record(check="grad")]
    with pytest.raises(SchemaError, match=r"b\.jsonl:2: check: 'grad' does not match"):
        validate_file(rf.write_results(tmp_path / "b.jsonl", v2_with_v1_check))


# ------------------------------------------------------------------ generic gradients in reports

def test_checks_sort_value_input_then_other_arguments():
    checks = ["grad:target", "other", "grad:input", "value", "grad:bias"]
    assert sorted(checks, key=check_key) == ["value", "grad:input", "grad:bias", "grad:target", "other"]


def test_markers_value_circle_gradients_distinct():
    checks = ["value", "grad:input", "grad:target", "grad:weight"]
    marks = [plots.marker(c, checks) for c in checks]
    assert marks[:2] == ["o", "s"] and len(set(marks)) == 4
    assert plots.marker("grad:input", ["grad:input"]) == "s"


def test_drive_plot_draws_every_gradient_with_its_argument_in_the_legend(tmp_path, monkeypatch):
    lines = [rf.run_header(backends=["torch"])]
    for i, x in enumerate((-10.0, 0.0, 10.0)):
        meta = {"drive": {"name": "x", "value": x}}
        for check in ("value", "grad:input", "grad:target"):
            lines.append(rf.record(cid=f"{i:016x}", loss="kl_div", check=check, meta=meta, max_ulp=0.5))
    res = load_results(rf.write_results(tmp_path / "r.jsonl", lines))
    legends = []

    def capture(fig):
        legends.append([t.get_text() for leg in fig.legends for t in leg.get_texts()])
        plots.plt.close(fig)
        return "data:image/png;base64,"

    monkeypatch.setattr(plots, "to_data_uri", capture)
    [(name, losses, _)] = plots.drive_plots(res)
    assert (name, losses) == ("x", ["kl_div"])
    assert legends == [["torch value", "torch grad:input", "torch grad:target"]]
