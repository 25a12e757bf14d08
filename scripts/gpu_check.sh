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
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-$([ -x .venv/bin/python ] && echo .venv/bin/python || echo python3)}
OUT=${OUT:-/tmp/gpu_check}
STEPS=${STEPS:-300}
RESUME_STEPS=${RESUME_STEPS:-60}
mkdir -p "$OUT"
START=$(date +%s)
say() { echo "[$(($(date +%s) - START)) s] $*" | tee -a "$OUT/summary.txt"; }

"$PY" -c "import torch, sys; assert torch.cuda.is_available(), 'no CUDA device'; \
print(torch.__version__, torch.cuda.get_device_name(0))" | tee "$OUT/summary.txt"
nvidia-smi --query-gpu=name,memory.total,clocks.max.sm --format=csv | tee -a "$OUT/summary.txt"

say "data: offline corpus + 32768-token tokenizer"
"$PY" -m miniseries data build --source offline >"$OUT/data.log" 2>&1
"$PY" -m miniseries data tokenize --preset gpu --workers 8 >"$OUT/tokenize.log" 2>&1
TRAIN=("$PY" -m miniseries train --preset gpu --depth 12 --compile --batch-tokens 65536
  --device-batch-size 32 --quiet)

say "throughput: d12, $STEPS steps, bf16 + compile"
"${TRAIN[@]}" --steps "$STEPS" --evals 1 --out "$OUT/d12"
"$PY" - "$OUT/d12" <<'EOF' | tee -a "$OUT/summary.txt"
import json, statistics, sys
from pathlib import Path
lines = [json.loads(x) for x in (Path(sys.argv[1]) / "log.jsonl").read_text().splitlines()]
steady = [x for x in lines if "tokens_per_s" in x][20:]  # after compile and warm-up
s = json.loads((Path(sys.argv[1]) / "summary.json").read_text())
tps = statistics.median(x["tokens_per_s"] for x in steady)
mfu = statistics.median(x["mfu"] for x in steady if x.get("mfu") is not None)
print(f"d12 gpu preset: median {tps:,.0f} tokens/s over {len(steady)} steady steps, "
      f"MFU {mfu:.1%} of {s['peak_flops'] / 1e12:.0f} TFLOP/s ({s['peak_source']}); "
      f"val bpb {s['val_bpb']:.4f} after {s['steps']} steps, wall {s['wall_s']:.0f} s")
EOF

say "resume: $RESUME_STEPS steps uninterrupted vs killed after the first checkpoint"
"${TRAIN[@]}" --steps "$RESUME_STEPS" --evals 4 --out "$OUT/whole"
"${TRAIN[@]}" --steps "$RESUME_STEPS" --evals 4 --out "$OUT/killed" &
PID=$!
while [ ! -f "$OUT/killed/checkpoint.pt" ] && kill -0 $PID 2>/dev/null; do sleep 0.5; done
kill -9 $PID 2>/dev/null || true
wait $PID 2>/dev/null || true
"${TRAIN[@]}" --steps "$RESUME_STEPS" --evals 4 --out "$OUT/killed"
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
