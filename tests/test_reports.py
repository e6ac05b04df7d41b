"""reports/: loading results files, the schema, and the rendered outputs (HTML, Markdown, JSON, JUnit)."""
from __future__ import annotations

import json
import math
import xml.etree.ElementTree as ET

import pytest
import results_factory as rf

import reports
from reports import ResultsError, ResultsWarning, load_results
from reports.schema import SchemaError, line_errors, load_schema, validate_file

EVIL = "<script>alert('x')</script> & \"quoted\" | pipe"


@pytest.fixture(scope="module")
def small_run():
    """torch + numpy, every family and dtype, 3 cases each; one torch failure carries EVIL text."""
    lines = rf.synthetic_run(per_family=3)
    for rec in lines[1:]:
        if rec["backend"] == "torch" and rec["family"] == "ce.random" and rec["dtype"] == "float32":
            rec.update(verdict="fail", max_ulp=12.0, message=EVIL, repro=f"print({EVIL!r})")
            break
    return lines


@pytest.fixture(scope="module")
def rendered(small_run, tmp_path_factory):
    d = tmp_path_factory.mktemp("report")
    path = rf.write_results(d / "results.jsonl", small_run)
    return small_run, reports.render(path, d / "out")


# ------------------------------------------------------------------ loading

def test_load_keys_records_and_decodes_numbers(tmp_path, small_run):
    res = load_results(rf.write_results(tmp_path / "r.jsonl", small_run))
    assert len(res) == len(small_run) - 1
    assert res.backends == ["torch", "numpy"]
    inf_recs = [r for r in res if r["max_ulp"] == math.inf]
    assert inf_recs and all(r["backend"] == "numpy" and r["family"] == "bcel.extreme_x" for r in inf_recs)
    key = next(iter(res.records))
    assert key == (small_run[1]["backend"], small_run[1]["case_id"], small_run[1]["check"])


def test_resumed_run_keeps_every_header_and_last_record(tmp_path):
    first = rf.record(cid="aaaaaaaaaaaaaaaa", max_ulp=0.5)
    redo = rf.record(cid="aaaaaaaaaaaaaaaa", max_ulp=3.0)
    path = rf.write_results(tmp_path / "r.jsonl", [rf.run_header(run_id="r1"), first,
                                                    rf.run_header(run_id="r2"), redo])
    res = load_results(path)
    assert [r["run_id"] for r in res.runs] == ["r1", "r2"]
    assert len(res) == 1 and res.records[("torch", "aaaaaaaaaaaaaaaa", "value")]["max_ulp"] == 3.0


def test_truncated_last_line_is_dropped_with_a_warning(tmp_path, small_run):
    path = rf.write_results(tmp_path / "r.jsonl", small_run[:10], truncate_last=True)
    with pytest.warns(ResultsWarning, match=r"r\.jsonl:10: skipped truncated last line"):
        res = load_results(path)
    assert len(res) == 8 and len(res.warnings) == 1


@pytest.mark.parametrize("text, problem", [
    ("", "empty file"),
    ("not json\n", r"r\.txt:1: not JSON"),
    ('{"type": "result", "backend": "torch"}\n', "first line is not a run header"),
    ('{"type": "run", "schema": "losscheck.results/9"}\n', r"r\.txt:1: unsupported schema"),
    (('{"type": "run", "schema": "losscheck.results/2"}\n{oops\n{"type": "run", '
     '"schema": "losscheck.results/2"}\n'), r"r\.txt:2: not JSON"),
    ('{"type": "run", "schema": "losscheck.results/2"}\n{"type": "result", "backend": "t"}\n',
     "result record without case_id, check"),
    (('{"type": "run", "schema": "losscheck.results/2"}\n{"type": "result", "backend": "t", '
      '"case_id": "0123456789abcdef", "check": "grad"}\n'), r"r\.txt:2: check 'grad' is not"),
    ("[1, 2]\n", "expected a JSON object"),
])
def test_not_a_results_file_is_one_line_error(tmp_path, text, problem):
    path = tmp_path / "r.txt"
    path.write_text(text)
    with pytest.raises(ResultsError, match=problem) as info:
        load_results(path)
    assert "\n" not in str(info.value) and "r.txt" in str(info.value)


def test_missing_file_is_results_error(tmp_path):
    with pytest.raises(ResultsError, match="no such results file"):
        load_results(tmp_path / "absent.jsonl")


# ------------------------------------------------------------------ schema

def test_schema_is_draft_2020_12_and_sample_files_validate(tmp_path, small_run):
    for version in (1, 2):
        assert load_schema(version)["$schema"] == "https://json-schema.org/draft/2020-12/schema"
        assert f"losscheck.results/{version}" in load_schema(version)["title"]
    assert load_schema() == load_schema(2)  # the current version is the default
    assert validate_file(rf.write_results(tmp_path / "r.jsonl", small_run)) == len(small_run)
    v1 = rf.synthetic_run(per_family=2, version=1)
    assert validate_file(rf.write_results(tmp_path / "v1.jsonl", v1)) == len(v1)


@pytest.mark.parametrize("mutate, where", [
    (lambda r: r.update(verdict="great"), "verdict"),
    (lambda r: r.update(max_ulp="infinity"), "max_ulp"),
    (lambda r: r.update(case_id="XYZ"), "case_id"),
    (lambda r: r.update(dtype="float8"), "dtype"),
    (lambda r: r.update(ulp_hist=[1, 2, 3]), "ulp_hist"),
    (lambda r: r.update(counts={"accurate": -1}), "counts/accurate"),
    (lambda r: r.pop("backend"), "'backend' is a required property"),
    (lambda r: r.update(frac_le_1ulp=1.5), "frac_le_1ulp"),
    (lambda r: r.update(type="results"), "(line)"),
    (lambda r: r.update(check="grad"), "check"),
    (lambda r: r.update(check="grad:"), "check"),
])
def test_malformed_lines_do_not_validate(tmp_path, mutate, where):
    rec = rf.record(cid="0123456789abcdef")
    assert line_errors(rec) == []
    mutate(rec)
    assert any(where in e for e in line_errors(rec)), line_errors(rec)
    path = rf.write_results(tmp_path / "bad.jsonl", [rf.run_header(), rf.record(), rec])
    with pytest.raises(SchemaError, match=r"bad\.jsonl:3: "):
        validate_file(path)


def test_schema_rejects_bad_header_and_truncation(tmp_path):
    header = rf.run_header()
    del header["run_id"]
    assert any("run_id" in e for e in line_errors(header))
    path = rf.write_results(tmp_path / "t.jsonl", [rf.run_header(), rf.record(), rf.record()],
                            truncate_last=True)
    with pytest.raises(SchemaError, match=r"t\.jsonl:3: not JSON"):
        validate_file(path)


# ------------------------------------------------------------------ outputs

def test_render_writes_the_four_outputs(rendered):
    _, paths = rendered
    assert sorted(paths) == ["index.html", "junit.xml", "summary.json", "summary.md"]
    assert all(p.is_file() and p.stat().st_size > 0 for p in paths.values())


def test_html_has_table_rows_plots_and_escapes(rendered):
    lines, paths = rendered
    html = paths["index.html"].read_text()
    # one detail row per loss × check × dtype × backend and one matrix row per loss × check × dtype
    # (6 losses: 4 with value + grad:input, mse_loss and kl_div with grad:target too; 4 dtypes; 2 backends)
    rows = {(r["loss"], r["check"], r["dtype"], r["backend"]) for r in lines[1:]}
    assert len(rows) == 2 * 4 * (4 * 2 + 2 * 3)
    assert html.count("<tr>") >= len(rows) + len(rows) // 2
    assert "<td>binary_cross_entropy_with_logits</td><td>value</td><td>float64</td><td>numpy</td>" in html
    assert "<td>kl_div</td><td>grad:target</td><td>float16</td><td>torch</td>" in html
    # ulp histogram, bits histogram and one error-vs-input plot per drive (lead, x, classes)
    assert html.count('src="data:image/png;base64,') == 5
    for drive in ("lead", "x", "classes"):
        assert f'alt="max ulp error vs {drive}"' in html
    assert "<script>alert" not in html
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in html
    assert "http://" not in html and "https://" not in html  # nothing fetched: opens offline
    assert "torch 2.13.0" in html and "FAIL" in html


def test_html_lists_failures_and_warnings_with_repro(rendered):
    lines, paths = rendered
    html = paths["index.html"].read_text()
    failing = [r for r in lines[1:] if r["verdict"] in ("fail", "warn")]
    for rec in failing:
        assert f"<code>{rec['case_id']}</code>" in html
    assert "Failures and errors: " in html and "Warnings and undetermined: " in html
    assert "print(&#x27;&lt;script&gt;" in html  # the repro snippet, escaped, in a <pre>


def test_large_run_lists_worst_50_and_counts_the_rest(tmp_path):
    lines = [rf.run_header(backends=["torch"])]
    lines += [rf.record(cid=f"{i:016x}", verdict="fail", max_ulp=float(i + 2)) for i in range(120)]
    html = reports.render(rf.write_results(tmp_path / "r.jsonl", lines), tmp_path / "o")["index.html"]
    text = html.read_text()
    assert text.count('<details class="issue"') == 50
    assert "… and 70 more (worst 50 shown)" in text
    assert f"<code>{119:016x}</code>" in text and f"<code>{0:016x}</code>" not in text  # worst first


def test_summary_json(rendered):
    lines, paths = rendered
    data = json.loads(paths["summary.json"].read_text())
    assert data["schema"] == "losscheck.summary/1" and data["ok"] is False
    assert data["records"] == len(lines) - 1
    assert set(data["backends"]) == {"torch", "numpy"}
    assert data["backends"]["numpy"]["max_ulp"] == "inf"
    fails = {(f["backend"], f["case_id"], f["check"]) for f in data["failures"]}
    expected = {(r["backend"], r["case_id"], r["check"]) for r in lines[1:] if r["verdict"] == "fail"}
    assert fails == expected
    row = next(r for r in data["table"] if (r["loss"], r["check"], r["dtype"], r["backend"])
               == ("cross_entropy", "value", "float32", "torch"))
    assert row["records"] == 9 and row["max_ulp"] == 1.6e7 and row["verdicts"]["warn"] >= 1


def test_summary_markdown_is_escaped(rendered):
    _, paths = rendered
    md = paths["summary.md"].read_text()
    assert md.startswith("## losscheck: ❌ FAIL")
    assert "| torch | numpy |" in md
    row = next(line for line in md.splitlines() if "quoted" in line and line.startswith("| ❌"))
    # escaped for GitHub's inline HTML, and the message's pipe cannot split the table cell
    assert "&lt;script&gt;alert('x')&lt;/script&gt; &amp; \"quoted\" &#124; pipe |" in row
    assert row.count(" | ") == 8  # nine cells, like the header


def test_junit_parses_with_a_testcase_per_backend_loss_family(rendered):
    lines, paths = rendered
    root = ET.parse(paths["junit.xml"]).getroot()
    cases = {(tc.get("classname"), tc.get("name")) for tc in root.iter("testcase")}
    expected = {(f"losscheck.{r['backend']}.{r['loss']}", r["family"]) for r in lines[1:]}
    assert cases == expected and len(cases) == 16  # 8 families × 2 backends
    failed = {(tc.get("classname"), tc.get("name")) for tc in root.iter("testcase") if tc.find("failure") is not None}
    assert failed == {("losscheck.numpy.binary_cross_entropy_with_logits", "bcel.extreme_x"),
                      ("losscheck.numpy.binary_cross_entropy", "bce.edges"),
                      ("losscheck.torch.cross_entropy", "ce.random")}
    torch_ce = next(tc for tc in root.iter("testcase")
                    if tc.get("classname") == "losscheck.torch.cross_entropy" and tc.get("name") == "ce.random")
    failure = torch_ce.find("failure")
    assert EVIL in failure.get("message") and "repro:" in failure.text  # escaped by XML, read back intact
    cliff = next(tc for tc in root.iter("testcase") if tc.get("name") == "ce.confident_cliff"
                 and tc.get("classname") == "losscheck.torch.cross_entropy")
    assert cliff.find("failure") is None and cliff.find("system-out") is not None
    assert any(p.get("name").startswith("warn:") for p in cliff.iter("property"))
    assert root.get("failures") == "3"


def test_junit_skips_unsupported_and_drops_control_characters(tmp_path):
    lines = [rf.run_header(backends=["numpy"]),
             rf.record(backend="numpy", verdict="unsupported"),
             rf.record(backend="numpy", cid="1" * 16, family="ce.other", verdict="fail", max_ulp=9.0,
                       message="bad\x00byte\x1b[31m")]
    out = reports.render(rf.write_results(tmp_path / "r.jsonl", lines), tmp_path / "o")
    root = ET.parse(out["junit.xml"]).getroot()
    by_name = {tc.get("name"): tc for tc in root.iter("testcase")}
    assert by_name["ce.random"].find("skipped") is not None
    assert "bad\ufffdbyte\ufffd[31m" in by_name["ce.other"].find("failure").get("message")


def test_render_rejects_a_non_results_file(tmp_path):
    bad = tmp_path / "notes.txt"
    bad.write_text("hello\n")
    with pytest.raises(ResultsError, match="notes.txt"):
        reports.render(bad, tmp_path / "o")
    assert not (tmp_path / "o").exists()


# ------------------------------------------------------------------ hostile files (issue 10 §5)

def test_deep_nesting_is_a_one_line_error(tmp_path):
    path = tmp_path / "deep.jsonl"
    path.write_text(json.dumps(rf.run_header()) + "\n" + "[" * 100_000 + "]" * 100_000 + "\n")
    with pytest.raises(ResultsError, match="nested too deeply"):
        load_results(path)
    with pytest.raises(ResultsError, match="nested too deeply"):
        reports.render(path, tmp_path / "out")


@pytest.mark.parametrize("field, value", [("loss", ["cross_entropy"]), ("message", {"a": 1}),
                                          ("verdict", 3), ("worst", [1, 2])])
def test_a_field_of_the_wrong_type_is_a_one_line_error(tmp_path, field, value):
    rec = rf.record(cid="a" * 16)
    rec[field] = value
    path = rf.write_results(tmp_path / "r.jsonl", [rf.run_header(), rec])
    with pytest.raises(ResultsError, match=f"wrong type: {field}"):
        load_results(path)


def test_a_raw_line_separator_inside_a_string_reads_correctly(tmp_path):
    """U+2028 is legal raw inside a JSON string; str.splitlines would cut the record there."""
    rec = rf.record(cid="a" * 16, message="before\u2028after \x1b[2J cleared", verdict="fail")
    path = tmp_path / "r.jsonl"
    path.write_text(json.dumps(rf.run_header()) + "\n" + json.dumps(rec, ensure_ascii=False) + "\n",
                    encoding="utf-8")
    res = load_results(path)
    assert res.records[("torch", "a" * 16, "value")]["message"] == "before\u2028after \x1b[2J cleared"
    out = reports.render(path, tmp_path / "out")
    for name in ("summary.md", "index.html"):
        text = out[name].read_text(encoding="utf-8")
        assert "\x1b" not in text and "\u2028" not in text and "\\x1b[2J" in text, name


def test_control_characters_never_reach_the_terminal_summary():
    from harness.backends.base import one_line
    from harness.summary import failure_line

    rec = {"verdict": "fail", "backend": "evil", "loss": "softmax", "message": "bad \x1b]0;pwned\x07 \x1b[2J"}
    line = failure_line(rec)
    assert "\x1b" not in line and "\x07" not in line and "\\x1b]0;pwned\\x07" in line
    assert "\x1b" not in one_line(RuntimeError("\x1b[31mred\x1b[0m"))
