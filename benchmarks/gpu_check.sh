#!/usr/bin/env bash
# One GPU check of the kernel backends (issue 13 §5): torch (eager CUDA), liger, cce, cce-compile
# and inductor with --device cuda on the gate suite's relevant losses, each run under its own
# wall-clock budget (about 6 minutes in all), so that one backend failing or hanging stops none of
# the others.  Run from the repository root on a machine with a CUDA GPU:
#
#     OUT=/some/dir bash benchmarks/gpu_check.sh
#
# Wheels for packages the machine lacks (liger-kernel, cut-cross-entropy) may wait in .whl/; they
# are installed with --target /tmp/site (no index, no dependencies: torch and triton must be there).
# What comes back, in $OUT: summary.txt (every run's summary table and the worst failing records),
# env.txt (versions, the GPU, available()), gpu_check.tar.gz (results, logs, HTML/Markdown reports).
# Exit 0 whatever the verdicts: this records findings, it is not a gate.
set -u

OUT=${OUT:-$PWD/gpu-check-out}
WORK=$(mktemp -d /tmp/gpu-check.XXXXXX)
mkdir -p "$OUT" "$WORK/runs" "$WORK/reports"
export PYTHONUNBUFFERED=1
export LOSSCHECK_CACHE_DIR=${LOSSCHECK_CACHE_DIR:-/tmp/losscheck-oracle}
JOBS=${JOBS:-8}
DEVICE=${DEVICE-cuda}  # DEVICE= (empty) leaves --device out: a dry run of this script on a CPU
SUMMARY="$OUT/summary.txt"
: > "$SUMMARY"

if compgen -G ".whl/*.whl" > /dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
        && export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH} \
        || echo "gpu_check: installing .whl/*.whl failed; liger/cce will say unavailable" | tee -a "$SUMMARY"
fi

python3 - > "$OUT/env.txt" 2>&1 <<'EOF'
import platform, sys
from importlib import metadata
print("python", sys.version.split()[0], platform.machine())
for dist in ("torch", "triton", "liger-kernel", "cut-cross-entropy", "jax", "numpy", "mpmath"):
    try:
        print(dist, metadata.version(dist))
    except metadata.PackageNotFoundError:
        print(dist, "not installed")
import torch
print("cuda available", torch.cuda.is_available(), "devices", torch.cuda.device_count())
if torch.cuda.is_available():
    print("device 0", torch.cuda.get_device_name(0), "capability", torch.cuda.get_device_capability(0))
from harness.backends import available
for name, line in available().items():
    print(f"backend {name}: {line}")
EOF
cat "$OUT/env.txt"

# run NAME SECONDS SPEC ARGS...: one `losscheck run`, stopped with SIGINT (results kept) at SECONDS
run() {
    local name=$1 budget=$2 spec=$3
    shift 3
    local log="$WORK/runs/$name.log" results="$WORK/runs/$name.jsonl"
    local t0=$SECONDS
    timeout -s INT -k 20 "$budget" python3 -m harness run ${DEVICE:+--device "$DEVICE"} --backend "$spec" \
        --jobs "$JOBS" --results "$results" --overwrite "$@" > "$log" 2>&1
    local code=$?
    local what="finished"
    [ "$code" -eq 124 ] || [ "$code" -eq 130 ] && what="stopped at its ${budget} s budget (records so far kept)"
    {
        echo "=== $name ($spec $*): exit $code, $((SECONDS - t0)) s, $what"
        if grep -q "losscheck summary" "$log"; then
            sed -n '/losscheck summary/,$p' "$log"
        else
            tail -n 15 "$log"
        fi
        echo
    } | tee -a "$SUMMARY"
    if [ -n "${REPORT-1}" ] && [ -s "$results" ]; then
        timeout 20 python3 -m harness report "$results" --out "$WORK/reports/$name" > /dev/null 2>&1 \
            || echo "($name: report failed)" >> "$SUMMARY"
    fi
}

# float64 is left out of the kernel runs: the kernels compute in float32 (and without
# numpy-quaddtype the float64 oracle is slow); torch itself runs every loss and dtype
DTYPES=(--dtype bfloat16 --dtype float16 --dtype float32)
# the device tests (placement of every tensor, bit round trips) with CUDA present
{ echo "=== pytest tests/test_device.py on this machine"; timeout 45 python3 -m pytest -q -x -p no:cacheprovider \
    tests/test_device.py 2>&1 | tail -n 5; echo; } | tee -a "$SUMMARY"
# the oracle first, on every core, through the numpy backend (fast, no GPU): the runs after it only
# read the cache, so their budgets go to the backends
JOBS=${ORACLE_JOBS:-16} DEVICE= REPORT= run oracle 75 numpy
run torch 80 torch
run liger 45 liger --loss cross_entropy --loss kl_div --loss softmax "${DTYPES[@]}"
run liger-lce 35 liger --loss linear_cross_entropy "${DTYPES[@]}"
run cce 25 cce --loss linear_cross_entropy "${DTYPES[@]}"
run cce-compile 25 cce-compile --loss linear_cross_entropy "${DTYPES[@]}"
run inductor 40 inductor --loss cross_entropy --loss softmax --dtype bfloat16 --dtype float32

# the worst failing records of every run: where to start reading
python3 - "$WORK/runs" >> "$SUMMARY" 2>&1 <<'EOF'
import collections, json, sys
from pathlib import Path
print("=== worst failing records (backend loss dtype check: verdict, max_ulp, case, message)")
for path in sorted(Path(sys.argv[1]).glob("*.jsonl")):
    recs = []
    for line in path.read_text().splitlines():
        try:
            r = json.loads(line)
        except ValueError:
            continue  # a line cut by the budget's SIGINT
        if r.get("type") == "result":
            recs.append(r)
    counts = collections.Counter((r["backend"], r["loss"], r["dtype"], r["verdict"]) for r in recs)
    print(f"-- {path.stem}: {len(recs)} records")
    for key, n in sorted(counts.items()):
        print("  ", *key, n)
    bad = [r for r in recs if r["verdict"] in ("fail", "error")]
    bad.sort(key=lambda r: -(r.get("max_ulp") if isinstance(r.get("max_ulp"), (int, float)) else float("inf")))
    for r in bad[:12]:
        print(f"   {r['backend']} {r['loss']} {r['dtype']} {r['check']}: {r['verdict']}, "
              f"{r.get('max_ulp')}, {r['case_id']} {r['family']}, {str(r.get('message', ''))[:160]}")
EOF

tar -czf "$OUT/gpu_check.tar.gz" -C "$WORK" runs reports
echo "gpu_check: wrote $SUMMARY, $OUT/env.txt, $OUT/gpu_check.tar.gz ($(du -h "$OUT/gpu_check.tar.gz" | cut -f1))"
exit 0
