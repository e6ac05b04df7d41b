"""Synthetic-but-realistic results files (``losscheck.results/2``, or ``/1`` on request) for the
reports/compare tests.

Shaped like the runner's output (docs/CONTRACTS.md, "Results format"): torch passes with small ulp
errors and a float32 "confident-row cliff" warning, the numpy backend fails a few cases. A /2 run
checks the gradient of every differentiable argument (mse_loss and kl_div: input and target); a /1
run, like the old harness, only the input's ("grad") and has no kl_div. Nothing here computes a
loss: the figures are invented, only their shape matters to reports/.
"""
from __future__ import annotations

import copy
import hashlib
import json
import math
import random
from pathlib import Path

DTYPES = ("float16", "bfloat16", "float32", "float64")
PRECISION = {"float16": 11, "bfloat16": 8, "float32": 24, "float64": 53}

# (loss, family, options, reduction, drive name or None)
FAMILIES = (
    ("cross_entropy", "ce.random", "plain", "none", None),
    ("cross_entropy", "ce.confident_cliff", "plain", "none", "lead"),
    ("cross_entropy", "ce.large_c", "weight", "mean", "classes"),
    ("binary_cross_entropy_with_logits", "bcel.extreme_x", "pos_weight", "none", "x"),
    ("binary_cross_entropy", "bce.edges", "plain", "sum", None),
    ("log_softmax", "softmax.dims", "plain", None, None),
    ("mse_loss", "mse.magnitudes", "plain", "mean", None),
    ("kl_div", "kl.log_target", "log_target", "batchmean", None),
)
#: losses with a gradient check per argument beyond the input (in /2 runs)
GRAD_ARGS = {"mse_loss": ("input", "target"), "kl_div": ("input", "target")}
#: losses the /1 harness did not know
V2_ONLY = frozenset({"kl_div"})


def case_id(*parts: object) -> str:
    return hashlib.sha256(repr(parts).encode()).hexdigest()[:16]


def run_header(backends=("torch", "numpy"), run_id="run-0001", suite="gate", seed=0, version=2) -> dict:
    return {"type": "run", "schema": f"losscheck.results/{version}", "run_id": run_id,
            "started": "2025-01-01T00:00:00Z", "suite": suite, "seed": seed,
            "backends": list(backends), "versions": {"torch": "2.13.0", "numpy": "2.1.0"},
            "tolerances": {d: {"ulp": 1.0} for d in DTYPES}}


def record(backend="torch", cid="0123456789abcdef", loss="cross_entropy", family="ce.random",
           options="plain", dtype="float32", check="value", reduction="none", shape=(4, 10),
           meta=None, verdict="pass", max_ulp=0.5, n=None, message=None, repro=None,
           worst_input="row 0", status=None, **extra) -> dict:
    """One result record; figures consistent with ``verdict`` and ``max_ulp``; ``extra`` fields
    (symptom, xfail_reason, delegates...) are added as given."""
    n = n if n is not None else (shape[0] if reduction == "none" and shape else 1)
    status = status or {"unsupported": "unsupported", "error": "error"}.get(verdict, "ok")
    rec = {"type": "result", "backend": backend, "case_id": cid, "loss": loss, "family": family,
           "options": options, "dtype": dtype, "check": check, "reduction": reduction,
           "shape": list(shape), "meta": dict(meta or {}), "status": status, "verdict": verdict,
           "n": n if status == "ok" else 0, "elapsed": 0.01}
    if status != "ok":
        rec.update(message=message or f"{backend} raised NotImplementedError", repro=repro)
        rec.update(extra)
        return rec
    inf = max_ulp == float("inf")
    bad = 1 if verdict in ("fail", "warn") else 0
    hist = [n - bad, 0, 0, 0, bad] if max_ulp > 3 else [n, 0, 0, 0, 0]
    if 0.5 < max_ulp <= 3:
        hist = [n - 1, 0, 0, 0, 0]
        hist[min(int(max_ulp), 3)] += 1
    rec.update(
        counts={"accurate": n - bad, "stable": 0, "absolute": bad if verdict == "warn" else 0,
                "fail": bad if verdict == "fail" else 0, "special": 0, "undetermined": 0},
        max_ulp="inf" if inf else max_ulp, median_ulp=min(max_ulp, 0.25),
        max_bits="inf" if inf else round(max(0.0, math.log2(1 + max_ulp)), 3),
        max_rel_u="inf" if inf else max_ulp,
        frac_correctly_rounded=(n - bad - (1 if 0.5 < max_ulp <= 3 else 0)) / n, frac_le_1ulp=(n - bad) / n,
        ulp_hist=hist,
        worst={"index": [0], "exact": "1.2345678e-08", "observed": "inf" if inf else "0.0",
               "rounded": "1.2345678e-08", "ulp": "inf" if inf else max_ulp,
               "rung": {"pass": "accurate", "warn": "absolute"}.get(verdict, "fail"), "input": worst_input},
        message=message if message is not None else (f"max ulp error {max_ulp}" if bad else ""),
        repro=repro if repro is not None else (
            "import torch\nx = torch.tensor([[1e4, 0.0]])\n"
            "print(torch.nn.functional.cross_entropy(x, torch.tensor([0])))" if bad else None),
    )
    rec.update(extra)
    return rec


def _drive_value(drive: str, i: int, dtype: str) -> float:
    if drive == "lead":
        return [2.0, 22.0, 14.0, 6.0, 18.0, 10.0][i % 6]
    if drive == "classes":
        return float(2 ** (1 + i))
    return [-1e4, 1e4, 0.0, 17.0, -17.0, 88.0][i % 6]


def checks(loss: str) -> tuple[str, ...]:
    """The checks a /2 run writes for ``loss``: its value and each differentiable argument's gradient."""
    return ("value", *(f"grad:{arg}" for arg in GRAD_ARGS.get(loss, ("input",))))


def to_v1(lines: list[dict]) -> list[dict]:
    """What the /1 harness wrote for the same run: no kl_div, no grad:<other>, grad:input as "grad"."""
    out = []
    for line in copy.deepcopy(lines):
        if line["type"] == "run":
            line["schema"] = "losscheck.results/1"
        elif line["loss"] in V2_ONLY or line["check"] not in ("value", "grad:input"):
            continue
        elif line["check"] == "grad:input":
            line["check"] = "grad"
        out.append(line)
    return out


def synthetic_run(backends=("torch", "numpy"), per_family=6, seed=0, numpy_failures=True,
                  version=2) -> list[dict]:
    """A run header and records over every family × dtype × backend × check; ``version=1`` gives
    :func:`to_v1` of the same run, so a /1 and a /2 run of one seed carry identical figures."""
    if version == 1:
        return to_v1(synthetic_run(backends, per_family, seed, numpy_failures))
    rng = random.Random(seed)
    lines = [run_header(backends)]
    for loss, family, options, reduction, drive in FAMILIES:
        for dtype in DTYPES:
            for i in range(per_family):
                meta = {"sigma": 4}
                dval = None
                if drive:
                    dval = _drive_value(drive, i, dtype)
                    meta = {"drive": {"name": drive, "value": dval}}
                cid = case_id(loss, family, dtype, i, seed)
                for backend in backends:
                    for check in checks(loss):
                        if loss == "mse_loss" and check != "value" and backend == "numpy":
                            lines.append(record(backend, cid, loss, family, options, dtype, check,
                                                reduction, meta=meta, verdict="unsupported"))
                            continue
                        ulp = rng.choice([0.0, 0.0, 0.25, 0.5, 0.5, 0.75, 1.0, 1.5])
                        verdict = "pass"
                        # torch's float32 confident-row cliff: 0 returned for a tiny loss -> warn
                        cliff = 16.6 if dtype == "float32" else (7.6 if dtype == "float16" else 99)
                        if drive == "lead" and check == "value" and dval > cliff and backend == "torch":
                            ulp, verdict = 1.6e7 if dtype == "float32" else 2048.0, "warn"
                        if (numpy_failures and backend == "numpy" and drive == "x" and dval == 1e4
                                and check == "value"):
                            ulp, verdict = float("inf"), "fail"
                        if (numpy_failures and backend == "numpy" and loss == "binary_cross_entropy"
                                and dtype == "bfloat16" and i == 0):
                            ulp, verdict = 37.0, "fail"
                        # a target gradient that only a /2 run sees: torch's kl_div in float16
                        if (backend == "torch" and loss == "kl_div" and check == "grad:target"
                                and dtype == "float16" and i == 0):
                            ulp, verdict = 5.0, "warn"
                        lines.append(record(backend, cid, loss, family, options, dtype, check, reduction,
                                            shape=(4, 10), meta=meta, verdict=verdict, max_ulp=ulp,
                                            worst_input=f"{family} sample {i}"))
    return lines


def degrade(lines: list[dict], every=7, factor=10.0, new_failures=1) -> tuple[list[dict], list[str], list[str]]:
    """Copy of ``lines`` with some ulp errors ×factor and some passing cases turned into failures.

    Returns (lines, ids of the cases made worse, ids of the new failures).
    """
    out = copy.deepcopy(lines)
    worse, failed = [], []
    results = [r for r in out if r["type"] == "result" and r["status"] == "ok"]
    for j, rec in enumerate(results):
        if rec["verdict"] == "pass" and len(failed) < new_failures and j % 11 == 5:
            rec.update(verdict="fail", max_ulp="inf", message="returned nan for a finite loss",
                       repro="import torch\n# degraded")
            failed.append(rec["case_id"])
        elif j % every == 3 and isinstance(rec["max_ulp"], float) and rec["max_ulp"] >= 1.0:
            rec["max_ulp"] = rec["max_ulp"] * factor
            worse.append(rec["case_id"])
    return out, worse, failed


def write_results(path: Path, lines: list[dict], truncate_last: bool = False) -> Path:
    text = "".join(json.dumps(line) + "\n" for line in lines)
    if truncate_last:
        text = text[: len(text) - len(json.dumps(lines[-1])) // 2 - 1]
    Path(path).write_text(text, encoding="utf-8")
    return Path(path)
