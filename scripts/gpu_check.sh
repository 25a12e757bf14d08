#!/usr/bin/env bash
# The GPU check, one command on a lent CUDA machine (under 8 minutes):
#   1. the offline corpus and a 32,768-token tokenizer (the gpu preset's vocab), cached
#   2. d12 of the gpu preset, bf16 + torch.compile, STEPS steps of 65,536-token batches (the
#      preset's 524,288-token batch would take ~8x longer per step; tokens/s and MFU do not depend
#      on it): prints tokens/s and MFU against the GPU's bf16 peak (miniseries.train.mfu's table)
#   3. resume: the same run killed (SIGKILL) after its first checkpoint and started again must end
#      where an uninterrupted run ends (val bpb within 1e-3: bf16 kernels need not be bitwise)
# Everything lands in ${OUT:-/tmp/gpu_check}; the summary is summary.txt there.
#
#   bash scripts/gpu_check.sh            (uses .venv/bin/python if present, else python3)
#   bash scripts/gpu_check.sh --cpu      the same stages at tiny size on a CPU (tests run this so
#                                        the script is not first executed on a GPU): depth 2,
#                                        bf16 autocast on the CPU, no compile; CORPUS=DIR stages
#                                        the data from that corpus instead of building the
#                                        offline one
#   bash scripts/gpu_check.sh --help
set -euo pipefail
cd "$(dirname "$0")/.."
usage() { sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; }
CPU=0
for arg in "$@"; do
  case "$arg" in
    --cpu) CPU=1 ;;
    -h | --help) usage; exit 0 ;;
    *) echo "gpu_check.sh: unknown argument '$arg' (try --help)" >&2; exit 2 ;;
  esac
done
PY=${PY:-$([ -x .venv/bin/python ] && echo .venv/bin/python || echo python3)}
OUT=${OUT:-/tmp/gpu_check}
if [ "$CPU" = 1 ]; then
  DEPTH=2 STEPS=${STEPS:-4} RESUME_STEPS=${RESUME_STEPS:-4} BATCH=4096 ROWS=1 COMPILE=()
  EXTRA=(--val-tokens 2048)
else
  DEPTH=12 STEPS=${STEPS:-300} RESUME_STEPS=${RESUME_STEPS:-60} BATCH=65536 ROWS=32
  COMPILE=(--compile) EXTRA=()
fi
mkdir -p "$OUT"
: >"$OUT/summary.txt"
START=$(date +%s)
say() { echo "[$(($(date +%s) - START)) s] $*" | tee -a "$OUT/summary.txt"; }

if [ "$CPU" = 1 ]; then
  "$PY" -c "import torch; print(torch.__version__, 'CPU mode (tiny sizes)')" | tee -a "$OUT/summary.txt"
else
  "$PY" -c "import torch, sys; assert torch.cuda.is_available(), 'no CUDA device'; \
print(torch.__version__, torch.cuda.get_device_name(0))" | tee -a "$OUT/summary.txt"
  nvidia-smi --query-gpu=name,memory.total,clocks.max.sm --format=csv | tee -a "$OUT/summary.txt"
fi

say "data: corpus + 32768-token tokenizer"
if [ -n "${CORPUS:-}" ]; then
  DATA_ARGS=(--corpus "$CORPUS")
else
  "$PY" -m miniseries data build --source offline >"$OUT/data.log" 2>&1
  DATA_ARGS=()
fi
"$PY" -m miniseries tokenizer train "${DATA_ARGS[@]}" --preset gpu --out "$OUT/tokenizer" \
  >"$OUT/tokenizer.log" 2>&1
"$PY" -m miniseries data tokenize "${DATA_ARGS[@]}" --tokenizer "$OUT/tokenizer" \
  --out "$OUT/tokens" --workers 8 >"$OUT/tokenize.log" 2>&1
TRAIN=("$PY" -m miniseries train --preset gpu --depth "$DEPTH" "${COMPILE[@]}"
  --batch-tokens "$BATCH" --device-batch-size "$ROWS" --data "$OUT/tokens"
  --tokenizer "$OUT/tokenizer" "${EXTRA[@]}" --quiet)

say "throughput: d$DEPTH, $STEPS steps, bf16${COMPILE:+ + compile}"
"${TRAIN[@]}" --steps "$STEPS" --evals 1 --out "$OUT/d$DEPTH"
"$PY" - "$OUT/d$DEPTH" <<'EOF' | tee -a "$OUT/summary.txt"
import json, statistics, sys
from pathlib import Path
lines = [json.loads(x) for x in (Path(sys.argv[1]) / "log.jsonl").read_text().splitlines()]
timed = [x for x in lines if "tokens_per_s" in x]
steady = timed[20:] or timed[1:] or timed  # after compile and warm-up
s = json.loads((Path(sys.argv[1]) / "summary.json").read_text())
tps = statistics.median(x["tokens_per_s"] for x in steady)
mfus = [x["mfu"] for x in steady if x.get("mfu") is not None]
mfu = f"MFU {statistics.median(mfus):.1%} of {s['peak_flops'] / 1e12:.0f} TFLOP/s ({s['peak_source']})" if mfus else "MFU n/a (no peak for this device)"
print(f"d{s['depth']} gpu preset: median {tps:,.0f} tokens/s over {len(steady)} steady steps, "
      f"{mfu}; val bpb {s['val_bpb']:.4f} after {s['steps']} steps ({s['tokens']:,} tokens), "
      f"wall {s['wall_s']:.0f} s")
EOF

say "resume: $RESUME_STEPS steps uninterrupted vs killed after the first checkpoint"
"${TRAIN[@]}" --steps "$RESUME_STEPS" --evals 3 --out "$OUT/whole"
"${TRAIN[@]}" --steps "$RESUME_STEPS" --evals 3 --out "$OUT/killed" &
PID=$!
while [ ! -f "$OUT/killed/checkpoint.pt" ] && kill -0 $PID 2>/dev/null; do sleep 0.2; done
kill -9 $PID 2>/dev/null || true
wait $PID 2>/dev/null || true
"${TRAIN[@]}" --steps "$RESUME_STEPS" --evals 3 --out "$OUT/killed"
"$PY" - "$OUT" <<'EOF' | tee -a "$OUT/summary.txt"
import json, sys
from pathlib import Path
out = Path(sys.argv[1])
a, b = (json.loads((out / n / "summary.json").read_text())["val_bpb"] for n in ("whole", "killed"))
resumed = any("resumed_from" in json.loads(x) for x in (out / "killed" / "log.jsonl").open())
ok = resumed and abs(a - b) <= 1e-3 * a
print(f"resume: uninterrupted {a:.5f}, killed + resumed {b:.5f} (resumed: {resumed}): "
      f"{'PASS' if ok else 'FAIL'}")
sys.exit(0 if ok else 1)
EOF
say "done"
