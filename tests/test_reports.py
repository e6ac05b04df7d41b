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


# ------------------------------------------------------------------ the overview grid, expected failures, plots

def _grid_cells(page: str) -> dict[str, tuple[str, str]]:
    """Grid cell -> (colour class, text shown), keyed by the first line of its tooltip:
    "backend · loss · dtype · check"."""
    import html as htmlmod
    import re

    cells = {}
    for block in re.findall(r'<table class="grid">.*?</table>', page, re.DOTALL):
        for cls, title, text in re.findall(r'<td class="([^"]*)" title="([^"]*)">(.*?)</td>', block, re.DOTALL):
            key = htmlmod.unescape(title).splitlines()[0]
            cells[key] = (cls.replace(" first", ""), htmlmod.unescape(re.sub("<[^>]+>", "", text)))
    return cells


EVIL_REASON = "known: <img src=x onerror=alert(1)> & friends"
EVIL_LOSS = "my_<b>loss</b>"


@pytest.fixture(scope="module")
def overview(tmp_path_factory):
    """Every kind of grid cell, two backends, expected failures under two reasons (one hostile)."""
    d = tmp_path_factory.mktemp("overview")
    R = rf.record
    lines = [rf.run_header(backends=["torch", "numpy"]),
             R(cid="a" * 16, dtype="float32", max_ulp=0.5),
             R(cid="b" * 16, dtype="float32", loss="log_softmax", check="grad:input", max_ulp=3.0),
             R(cid="c" * 16, dtype="float16", verdict="xfail", max_ulp=float("inf")),
             R(cid="d" * 16, dtype="float16", verdict="xfail", max_ulp=2048.0),
             R(cid="e" * 16, dtype="bfloat16", max_ulp=0.5),
             R(cid="f" * 16, dtype="bfloat16", verdict="xfail", max_ulp=37.0),
             R(cid="1" * 16, dtype="float64", verdict="warn", max_ulp=9.0),
             R(backend="numpy", cid="2" * 16, dtype="float16", loss="log_softmax", max_ulp=0.5),
             R(backend="numpy", cid="3" * 16, dtype="float32", verdict="fail", max_ulp=37.0),
             R(backend="numpy", cid="4" * 16, dtype="float32", loss="mse_loss", check="grad:target",
               verdict="unsupported"),
             R(backend="numpy", cid="5" * 16, dtype="float32", loss=EVIL_LOSS, max_ulp=0.25)]
    lines[2]["max_ulp"] = 4.49e13  # passes on the stable rung
    lines[2]["worst"].update(ulp=4.49e13, rung="stable")
    lines[8]["max_ulp"] = "inf"  # a pass with an infinite error
    lines[8]["worst"].update(ulp="inf", rung="stable")
    for rec, reason in zip((lines[3], lines[4], lines[6]), ("torch rounds the cliff", "torch rounds the cliff",
                                                           EVIL_REASON)):
        rec["xfail_reason"] = reason
    path = rf.write_results(d / "r.jsonl", lines)
    return lines, reports.render(path, d / "out")["index.html"].read_text()


def test_grid_losses_as_rows_dtype_by_check_columns_one_block_per_backend(overview):
    import re

    _, page = overview
    blocks = re.findall(r'<table class="grid"><caption><b>([^<]*)</b>.*?</table>', page, re.DOTALL)
    assert blocks == ["torch", "numpy"]
    block = re.search(r'<table class="grid">.*?</table>', page, re.DOTALL).group(0)
    dtypes = re.findall(r'<th colspan="(\d)" class="dt" scope="colgroup">([^<]*)</th>', block)
    checks = ["value", "grad:input", "grad:target"]
    assert dtypes == [("3", d) for d in ("float16", "bfloat16", "float32", "float64")]
    assert re.findall(r'<th class="ck[^"]*" title="([^"]*)">', block) == checks * 4
    rows = re.findall(r'<th class="loss" scope="row">(.*?)</th>', block)
    assert rows == ["cross_<wbr>entropy", "log_<wbr>softmax", "mse_<wbr>loss", "my_<wbr>&lt;b&gt;loss&lt;/b&gt;"]
    assert 'class="scroll"' not in page  # no box scrolling inside the page


def test_grid_cells_are_coloured_by_verdict_and_marked(overview):
    _, page = overview
    cells = _grid_cells(page)
    assert cells["torch · cross_entropy · float32 · value"] == ("v-pass", "0.5")
    # all pass, yet 4.49e13 ulp: not a bare number in green
    assert cells["torch · log_softmax · float32 · grad:input"] == ("v-stable", "4.5e13s")
    # inf in an all-pass cell and in an all-xfail cell: never green
    assert cells["numpy · log_softmax · float16 · value"] == ("v-odd", "inf!")
    assert cells["torch · cross_entropy · float16 · value"] == ("v-xfail", "inf!")
    assert cells["torch · cross_entropy · bfloat16 · value"] == ("v-xfail-some", "37f")
    # a warn names its rung: absolute-only (a) here; a flushed subnormal would be z
    assert cells["torch · cross_entropy · float64 · value"] == ("v-warn", "9a")
    assert cells["numpy · cross_entropy · float32 · value"] == ("v-fail", "37")
    assert cells["numpy · mse_loss · float32 · grad:target"] == ("v-unsupported", "—")
    # the tooltip names the rung and the worst figure of each rung and verdict
    import html as htmlmod
    import re

    title = htmlmod.unescape(re.search(r'title="(torch · log_softmax · float32 · grad:input[^"]*)"', page).group(1))
    assert "on the 'stable' rung" in title and "stable 4.49e+13 (1 case)" in title and "pass 1" in title
    # and it is spelled out under the grid
    notes = page[page.index("Cells that pass with an error beyond the ulp tolerance"):page.index('id="xfail"')]
    assert "4.49e+13" in notes and "log_softmax" in notes and "an infinite or NaN error" in notes


def test_grid_cells_link_to_their_issue_or_xfail_reason(overview):
    from reports.html_report import xfail_anchor

    lines, page = overview
    fail = lines[9]
    assert f'href="#{reports.html_report.issue_anchor(fail)}"' in page
    assert f'id="{reports.html_report.issue_anchor(fail)}"' in page
    assert page.count(f'href="#{xfail_anchor("torch rounds the cliff")}"') >= 2  # grid cell + reason table


def test_expected_failures_are_listed_by_reason_with_counts(overview):
    _, page = overview
    section = page[page.index('<h2 id="xfail">'):page.index('<h2 id="details">')]
    assert "Expected failures (xfail): 3" in section
    assert "3 checks failed as expected, for 2 reasons" in section
    # the most frequent reason first, with its count; the hostile reason escaped
    first, second = section.index("torch rounds the cliff"), section.index("known: &lt;img src=x")
    assert first < second and "<img src=x" not in page
    assert '<span class="key">2 ×</span> torch rounds the cliff' in section
    assert '<span class="key">1 ×</span> known: &lt;img src=x onerror=alert(1)&gt; &amp; friends' in section
    for cid in ("c" * 16, "d" * 16, "f" * 16):
        assert cid in section
    assert section.count('<span class="badge xfail ">xfail</span>') == 2


def test_no_expected_failures_says_so(rendered):
    _, paths = rendered
    assert "No expected failures (no record is xfail)." in paths["index.html"].read_text()


def test_xfail_has_its_own_colour_everywhere(overview):
    import re

    from reports import plots

    _, page = overview
    css = reports.htmlkit.css()
    var = dict(re.findall(r"--(\w+): (#[0-9a-f]{6})", css))
    assert var["xfail"] not in (var["pass"], var["fail"], var["warn"])
    assert ".badge.xfail { background: var(--xfail); }" in css
    bg = {name: re.search(rf"td\.{name}[^{{]*\{{ background: ([^;]+);", css).group(1)
          for name in ("v-pass", "v-xfail", "v-stable", "v-odd", "v-fail", "v-warn")}
    assert len(set(bg.values())) == len(bg)
    assert '<span class="vc v-xfail">3&nbsp;xfail</span>' in page  # the torch card counts
    assert plots.VERDICT_COLORS["xfail"] == var["xfail"] and plots.VERDICT_COLORS["fail"] == var["fail"]


def test_issue_headers_start_with_their_key_number(rendered):
    import re

    _, paths = rendered
    page = paths["index.html"].read_text()
    heads = re.findall(r'<summary>(<span class="badge [a-z]+ ">[a-z]+</span>) <span class="key">max ulp ([^<]+)</span> · '
                       r"<b>([^<]+)</b>", page)
    assert len(heads) == page.count('<details class="issue"') > 0
    assert ("numpy" in {h[2] for h in heads}) and "inf" in {h[1] for h in heads}


def test_compact_grid_figures():
    from reports.html_report import compact

    assert [compact(v) for v in (None, 0.0, 0.25, 1.5, 37.0, 512.0, 2048.0, 1.6e7, 4.49e13, 1e-5,
                                 math.inf, math.nan)] == \
        ["—", "0", "0.25", "1.5", "37", "512", "2.0e3", "1.6e7", "4.5e13", "1.0e-5", "inf", "nan"]


# ---- plots

@pytest.fixture
def figures(monkeypatch):
    """The matplotlib figures the plot functions make, drawn, instead of PNGs."""
    from reports import plots

    made = []

    def capture(fig):
        fig.canvas.draw()
        made.append(fig)
        return "data:image/png;base64,"

    monkeypatch.setattr(plots, "to_data_uri", capture)
    yield made
    for fig in made:
        plots.plt.close(fig)


def _labels(axis) -> list:
    return [t for t in axis.get_majorticklabels() if t.get_visible() and t.get_text()]


def _overlaps(labels) -> list[tuple[str, str]]:
    boxes = [(t.get_text(), t.get_window_extent()) for t in labels]
    return [(a, b) for i, (a, ba) in enumerate(boxes) for b, bb in boxes[i + 1:] if ba.overlaps(bb)]


def _tolerance_lines(ax) -> list:
    return [line for line in ax.get_lines() if line.get_gid() == "tolerance"]


def test_drive_plots_ticks_tolerance_and_defined_variables(figures, tmp_path):
    from reports import plots

    lines = rf.synthetic_run(per_family=6)
    lines[0]["tolerances"]["float32"]["ulp"] = 2.0
    del lines[0]["tolerances"]["float16"]  # the default 1 ulp
    res = load_results(rf.write_results(tmp_path / "r.jsonl", lines))
    drives = plots.drive_plots(res)
    assert [name for name, _, _ in drives] == ["classes", "lead", "x"]
    for fig, (name, _, _) in zip(figures, drives):
        assert plots.DRIVE_GLOSSARY[name] in fig._suptitle.get_text()
        for ax in (a for a in fig.axes if a.get_visible()):
            ys, xs = _labels(ax.yaxis), _labels(ax.xaxis)
            assert 2 <= len(ys) <= plots.MAX_YTICKS, (name, [t.get_text() for t in ys])
            assert not _overlaps(ys) and not _overlaps(xs), (name, ax.get_title(), _overlaps(xs) + _overlaps(ys))
            # no tick inside the linear region next to 0 (the old "−10⁰ 0 10⁰" pile-up)
            assert not [v for v in ax.xaxis.get_majorticklocs() if 0 < abs(v) < 1 and ax.get_xscale() == "symlog"]
            [tol] = _tolerance_lines(ax)
            assert tol.get_ydata()[0] == {"float32": 2.0}.get(ax.get_title(), 1.0)
    x_fig = figures[2]
    texts = [t.get_text() for t in x_fig.axes[0].xaxis.get_majorticklabels() if t.get_text()]
    assert texts[len(texts) // 2] == "0" and "−$10^{4}$" in texts and "$10^{4}$" in texts


def test_drive_plot_palette_is_neutral_and_red_marks_only_failures(figures, tmp_path):
    import colorsys

    from matplotlib.colors import to_hex, to_rgb

    from reports import plots

    for color in plots.BACKEND_COLORS:  # no red, amber, green or purple among the backends' colours
        h, _, s = colorsys.rgb_to_hls(*to_rgb(color))
        assert s <= 0.25 or 0.45 < h < 0.72, color  # grey, or blue to cyan
        assert color not in plots.VERDICT_COLORS.values()
    lines = [rf.run_header(backends=["torch", "numpy"])]
    for i, x in enumerate((1.0, 2.0, 3.0)):
        meta = {"drive": {"name": "x", "value": x}}
        lines.append(rf.record(cid=f"{i:016x}", meta=meta, max_ulp=0.5))
        lines.append(rf.record(backend="numpy", cid=f"{i:016x}", meta=meta, max_ulp=0.25,
                               verdict="fail" if i == 2 else "pass"))
    plots.drive_plots(load_results(rf.write_results(tmp_path / "r.jsonl", lines)))
    [fig] = figures
    ax = fig.axes[0]
    red = plots.VERDICT_COLORS["fail"]
    reds = [c for c in ax.collections if any(to_hex(e) == red for e in c.get_edgecolors())]
    assert [c.get_label() for c in reds] == ["fail/error"] and len(reds[0].get_offsets()) == 1
    backend_edges = {to_hex(e) for c in ax.collections if c not in reds for e in c.get_edgecolors()}
    assert backend_edges == {plots.BACKEND_COLORS[0], plots.BACKEND_COLORS[1]}


def test_ulp_histogram_labels_tolerance_and_ticks(figures, rendered):
    from matplotlib.colors import to_hex

    from reports import plots

    _, paths = rendered
    res = load_results(paths["index.html"].parent.parent / "results.jsonl")
    plots.ulp_histogram(res)
    [fig] = figures
    assert "correctly rounded" in fig._suptitle.get_text()
    for ax in fig.axes:
        assert [t.get_text() for t in ax.get_xticklabels()] == ["exact", "≤1", "≤2", "≤3", ">3"]
        [tol] = _tolerance_lines(ax)
        assert tol.get_xdata()[0] == 1.5  # 1 ulp: between the "≤1" and "≤2" bars
        ys = _labels(ax.yaxis)
        assert len(ys) <= plots.MAX_YTICKS and not _overlaps(ys)
        assert {to_hex(p.get_facecolor()) for p in ax.patches} == set(plots.BACKEND_COLORS[:2])  # torch, numpy
    assert plots.HIST_LABELS == ("exact", "≤1", "≤2", "≤3", ">3")


def test_histogram_bins_match_their_labels_and_the_harness():
    """harness/check.py's ulp_hist and the labels mean the same intervals: exact = 0 ulp, ≤1 = (0, 1]
    (where a correctly rounded, inexact result lands), ≤2 = (1, 2], ≤3 = (2, 3], >3 beyond."""
    import mpmath
    import numpy as np

    from cases.model import make_case
    from harness.check import check_observation
    from harness.tolerances import DtypeTolerance
    from reference import formats
    from reference.exact import Exact
    from reports import plots

    u = mpmath.mpf(2) ** -23  # float32 ulp in [1, 2)
    exact = [1, 1, 1, 1, 1, 1, 1 + u / 3, 1 + 3 * u / 2]
    steps = [0, 1, 2, 3, 4, 100, 0, 0]  # observed = 1 + step ulps
    ulps = [0, 1, 2, 3, 4, 100, 1 / 3, 1.5]
    v = np.empty(8, dtype=object)
    v[:] = [mpmath.mpf(e) for e in exact]
    v = v.reshape(2, 4)
    ex = Exact(values=v, rounded=formats.to_dtype(v, "float32"), undetermined=np.zeros((2, 4), bool),
               cond=np.ones((2, 4)), scale=np.ones((2, 4)), nterms=np.ones((2, 4), np.int64), dtype="float32")
    observed = np.array([1 + s * 2.0 ** -23 for s in steps], np.float32).reshape(2, 4)
    case = make_case("mse_loss", (np.ones((2, 4), np.float32), np.zeros((2, 4), np.float32)),
                     {"reduction": "none"}, family="test.hand", grad=False)
    rec = check_observation(case, "value", ex, observed, DtypeTolerance(ulp=1.0, c0=2.0, c1=1.0, c_abs=4.0))
    bins = [plots.hist_bin(x) for x in ulps]
    assert rec["ulp_hist"] == [bins.count(i) for i in range(5)] == [1, 2, 2, 1, 2]
    assert plots.HIST_LABELS[plots.hist_bin(1 / 3)] == "≤1" and rec["frac_correctly_rounded"] == 2 / 8
    assert [plots.HIST_LABELS[plots.hist_bin(x)] for x in (0, 0.5, 1, 1.0001, 2, 2.5, 3, 3.5, math.inf)] == \
        ["exact", "≤1", "≤1", "≤2", "≤2", "≤3", "≤3", ">3", ">3"]


def test_symlog_ticks_never_crowd_zero():
    from reports import plots

    assert plots.symlog_ticks(0, 3e8, 1.0, 6) == [0.0, 1.0, 100.0, 1e4, 1e6, 1e8]
    assert plots.symlog_ticks(0, 45, 1.0, 6) == [0.0, 1.0, 10.0]
    ticks = plots.symlog_ticks(-1.5e4, 1.5e4, 10.0, 9)
    assert 0.0 in ticks and not [t for t in ticks if 0 < abs(t) < 10] and len(ticks) <= 9
    assert ticks == sorted(ticks) and ticks == [-t for t in reversed(ticks)]


def test_compare_scatter_ticks_and_tolerance(figures):
    from reports import plots

    plots.compare_scatter([(0.0, 0.5), (1.0, 30.0), (2e7, 3e7), (5.0, math.inf)], 2.0, 1.0)
    [fig] = figures
    ax = fig.axes[0]
    for axis in (ax.xaxis, ax.yaxis):
        labels = _labels(axis)
        assert len(labels) <= plots.MAX_YTICKS and not _overlaps(labels)
    [tol] = _tolerance_lines(ax)
    assert tol.get_ydata()[0] == 1.0


def test_html_defines_the_driving_variables(rendered):
    from reports import plots

    _, paths = rendered
    page = paths["index.html"].read_text()
    for name in ("lead", "x", "classes"):
        assert f'<p class="note">{name}: {plots.DRIVE_GLOSSARY[name].replace("&", "&amp;").replace(chr(39), "&#x27;")}.</p>' in page


def test_bits_histogram_ticks_stay_legible(figures, rendered):
    from reports import plots

    _, paths = rendered
    plots.bits_histogram(load_results(paths["index.html"].parent.parent / "results.jsonl"))
    [fig] = figures
    for ax in fig.axes:
        ys, xs = _labels(ax.yaxis), _labels(ax.xaxis)
        assert len(ys) <= plots.MAX_YTICKS and not _overlaps(ys) and not _overlaps(xs)
