"""Exhaustive sweeps (harness/sweep.py, reports/sweep.py, ``losscheck sweep``): the domain, the
per-loss declarations, chunk files, resume, isolation, the summary in the results format, and the
Dask engine (a LocalCluster of 2 workers, one of them killed mid-sweep)."""
from __future__ import annotations

import json
import os
import signal

import numpy as np
import pytest

from harness import cli
from harness.sweep import (
    Domain,
    SweepError,
    SweepSpec,
    chunk_path,
    finished_chunks,
    parse_chunks,
    read_chunk,
    run_sweep,
)
from reference import registry

#: a small complete sweep: binary_cross_entropy's domain [0, 1] of float16 (15,362 values), one target
SMALL = {"grid": {"target": [0.5]}, "grad": False, "chunk_size": 2048}


def small_spec(**kw) -> SweepSpec:
    return SweepSpec.declared("binary_cross_entropy", "float16", "torch", **{**SMALL, **kw})


# ---------------------------------------------------------------------------------------------------
# what is swept

def test_float16_domain_is_every_value_with_one_nan():
    dom = Domain.of("float16")
    # 2 x (0x7C00 + 1) values from +-0 to +-inf, and one NaN instead of 2046 payloads
    assert dom.size == 2 * (0x7C00 + 1) + 1
    v = dom.values(np.arange(dom.size)).astype(np.float64)
    bits = dom.bits(np.arange(dom.size))
    assert len(np.unique(bits)) == dom.size
    assert np.count_nonzero(np.isnan(v)) == 1
    assert {np.inf, -np.inf} <= set(v[np.isinf(v)].tolist())
    assert 0x0001 in bits and 0x8001 in bits  # the smallest subnormals of both signs
    assert 0x0000 in bits and 0x8000 in bits  # +0 and -0
    finite = v[np.isfinite(v)]
    assert len(finite) == dom.size - 3


def test_bounded_domain_keeps_exactly_the_values_inside():
    dom = Domain.of("bfloat16", (0.0, 1.0))
    v = dom.values(np.arange(dom.size)).astype(np.float64)
    assert np.all((v >= 0) & (v <= 1))
    assert dom.size == 0x3F80 + 1 + 1  # +0 .. 1.0, and -0
    assert np.signbit(v).sum() == 1


def test_every_sweepable_loss_builds_a_valid_call_from_its_declaration():
    """The declarations are data the generic code turns into calls the loss's own validator takes."""
    swept = [d for d in registry.REGISTRY.values() if d.sweep is not None]
    assert {"binary_cross_entropy", "binary_cross_entropy_with_logits", "cross_entropy"} <= {d.name for d in swept}
    for d in swept:
        for dtype in ("float16", "bfloat16"):
            spec = SweepSpec.declared(d.name, dtype, chunk_size=8)
            for point in spec.grid_points:
                args, kwargs = spec.call(np.arange(8), point)
                d.validate(args, kwargs)
                assert kwargs.get("reduction", "none") == "none"
                assert args[0].shape[0] == 8 and str(args[0].dtype) == dtype


def test_grid_values_are_resolved_in_the_format():
    spec = SweepSpec.declared("binary_cross_entropy_with_logits", "float16",
                              grid={"target": [0.1, "min_subnormal", "1-ulp"], "pos_weight": [None, 3]})
    targets = dict(spec.grid)["target"]
    assert targets == (float(np.float16(0.1)), 2.0 ** -24, 1 - 2.0 ** -11)
    assert len(spec.grid_points) == 6
    _args, kwargs = spec.call(np.arange(4), spec.grid_points[-1])
    assert "pos_weight" in kwargs and kwargs["pos_weight"].dtype == np.float16
    assert "pos_weight" not in spec.call(np.arange(4), spec.grid_points[0])[1]


def test_two_class_cross_entropy_sweeps_every_pair_in_chunks():
    spec = SweepSpec.declared("cross_entropy", "float16", chunk_size=1 << 20)
    n = Domain.of("float16").size
    assert spec.points == n * n and spec.nchunks == -(-n * n // (1 << 20))
    x = spec.inputs(n - 1, n + 2)  # the row's second logit runs fastest, then the first moves on
    assert x.shape == (3, 2)
    assert np.isnan(x[0, 1]) and x[1, 0] == x[2, 0] and x[1, 1] == 0
    assert spec.checks() == ["value", "grad:input"]  # a class-index target has no gradient


def test_a_declaration_error_is_one_line():
    with pytest.raises(SweepError, match="declares no sweep"):
        SweepSpec.declared("kl_div", "float16")
    with pytest.raises(SweepError, match="no grid axis"):
        SweepSpec.declared("binary_cross_entropy", "float16", grid={"weight": [1.0]})
    with pytest.raises(SweepError, match="unknown sweep point"):
        SweepSpec.declared("binary_cross_entropy", "float16", grid={"target": ["tiny"]})
    assert parse_chunks("2:4", 10) == [2, 3] and parse_chunks(":2", 10) == [0, 1]
    for bad in ("4:2", "0:11", "x", "3"):
        with pytest.raises(SweepError, match="--chunks"):
            parse_chunks(bad, 10)


# ---------------------------------------------------------------------------------------------------
# a small complete sweep, its files and its summary

@pytest.fixture(scope="module")
def pool_sweep(tmp_path_factory):
    """The small sweep by the process pool, in two calls: a slice, then --resume for the rest."""
    root = tmp_path_factory.mktemp("sweep") / "pool"
    spec = small_spec()
    first = run_sweep(spec, root, jobs=2, chunks="0:3")
    assert (first.done, first.complete) == (3, False)
    assert not (root / "summary.jsonl").exists()
    rest = run_sweep(spec, root, jobs=2, resume=True)
    assert (rest.skipped, rest.done, rest.complete) == (3, spec.nchunks - 3, True)
    return spec, root, rest


def test_every_chunk_is_written_once_with_every_point(pool_sweep):
    spec, root, _ = pool_sweep
    assert finished_chunks(root) == set(range(spec.nchunks))
    seen = []
    for k in range(spec.nchunks):
        ch = read_chunk(chunk_path(root, k))
        lo, hi = spec.chunk_range(k)
        assert int(ch["first"]) == lo and len(ch["inputs"]) == hi - lo
        assert ch["c0_ulp"].shape == (1, hi - lo)
        seen.append(ch["inputs"])
    assert len(np.unique(np.concatenate(seen))) == spec.points
    assert not list((root / "chunks").glob(".*.tmp"))


def test_the_oracle_never_runs_where_the_backend_is_loaded(pool_sweep):
    spec, root, _ = pool_sweep
    oracle, backend = set(), set()
    for k in range(spec.nchunks):
        ch = read_chunk(chunk_path(root, k))
        oracle.add(int(ch["oracle_pid"]))
        backend.add(int(ch["backend_pid"]))
        assert not bool(ch["oracle_saw_torch"])  # not even imported where the oracle computes
    assert oracle and backend and not oracle & backend


def test_the_summary_is_a_results_file_report_and_compare_read(pool_sweep, tmp_path, capsys):
    from reports.schema import validate_file

    spec, root, result = pool_sweep
    path = root / "summary.jsonl"
    validate_file(path)
    header, *records = [json.loads(line) for line in path.read_text().splitlines()]
    assert header["type"] == "run" and header["suite"] == "sweep" and header["sweep"]["points"] == spec.points
    (rec,) = records
    assert rec["family"] == "sweep.exhaustive" and rec["check"] == "value" and rec["n"] == spec.points
    assert sum(rec["counts"].values()) == spec.points
    assert rec["worst"]["input"].startswith("input ") and "target 0.5" in rec["worst"]["input"]
    assert rec == result.records[0]
    assert cli.main(["report", str(path), "--out", str(tmp_path / "report")]) == 0
    assert (tmp_path / "report" / "index.html").exists()
    assert cli.main(["compare", str(path), str(path), "--gate"]) == 0
    assert "regression" in capsys.readouterr().out.lower()


def test_the_domain_report_names_the_worst_inputs_and_escapes_what_it_embeds(pool_sweep, tmp_path):
    from reports.sweep import load_sweep, render_sweep, text_summary, worst

    _spec, root, result = pool_sweep
    text = text_summary(root)
    data = load_sweep(root)
    w = worst(data.series[0], "float16")
    assert f"domain-wide max value: {w['ulp']:.6g} ulp" in text
    assert result.records[0]["max_ulp"] == pytest.approx(w["ulp"])
    page = render_sweep(root, tmp_path).read_text()
    assert "ULP map" in page and "data:image/png;base64," in page
    man = json.loads((root / "manifest.json").read_text())
    evil = tmp_path / "evil"
    evil.mkdir()
    (evil / "chunks").symlink_to(root / "chunks")
    man["spec"]["backend"] = "<script>alert(1)</script>"
    (evil / "manifest.json").write_text(json.dumps(man))
    page = render_sweep(evil, tmp_path / "out").read_text()
    assert "<script>alert" not in page and "&lt;script&gt;" in page


def test_a_resume_refuses_another_sweeps_directory(pool_sweep, tmp_path):
    _, root, _ = pool_sweep
    with pytest.raises(SweepError, match="holds a sweep already"):
        run_sweep(small_spec(), root)
    other = tmp_path / "other"
    run_sweep(small_spec(), other, chunks="0:1")
    man = json.loads((other / "manifest.json").read_text())
    man["oracle_version"] = -1
    (other / "manifest.json").write_text(json.dumps(man))
    with pytest.raises(SweepError, match="oracle_version"):
        run_sweep(small_spec(), other, resume=True)
    with pytest.raises(SweepError, match="sweep_id"):
        run_sweep(small_spec(grid={"target": [0.25]}), root, resume=True)


def test_a_chunk_file_is_read_without_pickle(tmp_path):
    path = tmp_path / "chunk-00000000.npz"
    np.savez(path, schema=np.array("losscheck.sweep-chunk/1"), bad=np.array([{"x": 1}], dtype=object))
    with pytest.raises(SweepError, match="not a readable chunk"):
        read_chunk(path)


def test_two_class_cross_entropy_slice(tmp_path):
    """A slice of the 2^32-pair sweep: its gradients have two elements per point."""
    spec = SweepSpec.declared("cross_entropy", "float16", chunk_size=64)
    k = spec.nchunks // 2
    res = run_sweep(spec, tmp_path, jobs=2, chunks=f"{k}:{k + 1}")
    assert res.done == 1 and not res.complete
    ch = read_chunk(chunk_path(tmp_path, k))
    assert ch["inputs"].shape == (64, 2) and ch["c0_ulp"].shape == (1, 64) and ch["c1_ulp"].shape == (1, 128)
    assert set(ch["status"].ravel()) == {"ok"}


# ---------------------------------------------------------------------------------------------------
# the command line

def test_cli_sweep_prints_the_domain_wide_summary(tmp_path, capsys):
    out = tmp_path / "s"
    args = ["sweep", "binary_cross_entropy", "--dtype", "fp16", "--exhaustive", "--target-grid", "0.5", "--no-grad",
            "--chunk-size", "8192", "--jobs", "2", "--out", str(out)]
    assert cli.main([*args, "--chunks", "0:1"]) == 0
    text = capsys.readouterr().out
    assert "partial sweep" in text and "1/2 chunks" in text
    assert cli.main([*args, "--report", str(tmp_path / "r")]) == 2  # a sweep there already
    assert "--resume" in capsys.readouterr().err
    assert cli.main([*args, "--resume", "--report", str(tmp_path / "r")]) == 0
    text = capsys.readouterr().out
    assert "domain-wide max value:" in text and "summary (results format)" in text
    assert (tmp_path / "r" / "sweep.html").exists()


@pytest.mark.parametrize("argv, message", [
    (["kl_div", "--dtype", "float16", "--exhaustive"], "declares no sweep"),
    (["nope", "--dtype", "float16", "--exhaustive"], "unknown loss"),
    (["binary_cross_entropy", "--dtype", "float16"], "--exhaustive"),
    (["binary_cross_entropy", "--dtype", "float16", "--exhaustive", "--grid", "target"], "ARG=V"),
    (["binary_cross_entropy", "--dtype", "float16", "--exhaustive", "--chunks", "9:99"], "--chunks"),
    (["binary_cross_entropy", "--dtype", "float16", "--exhaustive", "--scheduler", "nowhere"], "--scheduler"),
])
def test_cli_sweep_bad_usage_is_one_line_and_exit_2(argv, message, tmp_path, capsys):
    assert cli.main(["sweep", *argv, "--out", str(tmp_path / "x"), "--chunk-size", "8192", "--jobs", "2"]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


# ---------------------------------------------------------------------------------------------------
# Dask

def test_dask_local_cluster_survives_a_killed_worker_with_the_same_summary(pool_sweep, tmp_path):
    """2 workers (one oracle, one backend); the oracle's worker is SIGKILLed after the first chunk:
    its nanny restarts it, Dask reruns what it held, and the sweep ends with every chunk once and
    the process pool's summary."""
    pytest.importorskip("distributed")
    spec, pool_root, pool_result = pool_sweep
    killed = []

    def kill_one(engine, k):
        if killed:
            return
        info = engine.client.scheduler_info()["workers"]
        oracle = [a for a, w in info.items() if w.get("resources", {}).get("oracle")]
        pid = engine.worker_pids()[oracle[0]]
        os.kill(pid, signal.SIGKILL)
        killed.append(pid)

    root = tmp_path / "dask"
    res = run_sweep(spec, root, jobs=2, scheduler="local", on_chunk=kill_one)
    assert killed and res.complete and res.done == spec.nchunks
    assert sorted(p.name for p in (root / "chunks").iterdir()) == [f"chunk-{k:08d}.npz" for k in range(spec.nchunks)]
    assert res.records == pool_result.records
    oracle = {int(read_chunk(chunk_path(root, k))["oracle_pid"]) for k in range(spec.nchunks)}
    backend = {int(read_chunk(chunk_path(root, k))["backend_pid"]) for k in range(spec.nchunks)}
    assert not oracle & backend
    assert not any(bool(read_chunk(chunk_path(root, k))["oracle_saw_torch"]) for k in range(spec.nchunks))
    for k in range(spec.nchunks):
        a, b = read_chunk(chunk_path(root, k)), read_chunk(chunk_path(pool_root, k))
        for key in ("inputs", "c0_ulp", "c0_rung", "c0_observed", "c0_rounded"):
            np.testing.assert_array_equal(a[key], b[key])


def test_the_reports_copy_of_the_ladder_matches_the_harness():
    """Chunk files hold rung indices into harness.verdict.RUNGS; reports/sweep.py (which reads
    only the sweep's files) keeps its own copy.  A stale 7-rung copy read index 10 ("fail") out
    of range and crashed the text summary of the bfloat16 BCE sweep."""
    from harness import verdict
    from reports import sweep as rs

    assert rs.RUNGS == verdict.RUNGS
    assert set(rs.BAD_RUNGS) == set(verdict.WARN_RUNGS) | set(verdict.FAIL_RUNGS)
    assert rs._SEVERITY == verdict.RUNG_SEVERITY


def test_the_domain_report_does_not_depend_on_the_chunking(tmp_path):
    """The report accumulates chunk by chunk (a float32 sweep does not fit in memory at once):
    clusters that continue into the next chunk, the worst element, the binades and the map come
    out the same from 8 chunks of 2048 points, 30 of 512 and one of 16384."""
    from reports.sweep import render_sweep, text_summary

    texts, pages = [], []
    for size in (16384, 2048, 512):
        root = tmp_path / f"c{size}"
        run_sweep(small_spec(chunk_size=size), root, jobs=1)
        text = text_summary(root).splitlines()
        assert "cluster" in "\n".join(text)  # inputs beyond 1 ulp exist, in runs across chunk ends
        texts.append(text[1:])  # the first line counts the chunks
        page = render_sweep(root, tmp_path / f"out{size}").read_text()
        pages.append(page.split("chunks;", 1)[1])
    assert texts[0] == texts[1] == texts[2]
    assert pages[0] == pages[1] == pages[2]
