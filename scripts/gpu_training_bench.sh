#!/bin/bash
# On a lent GPU device (command `bash scripts/gpu_training_bench.sh`, carry [".gpu"] as assembled by
# ../shared/gpu/prepare.sh): the carried wheels, then benchmarks/training.py on a random-init Llama (gpu-8b profile).
# STEPS, ROUNDS (default 1: a GPU does not drift like the shared CPU, and device minutes are few), SHAPES, BENCH_ARGS (e.g. "--full-text --repeat 4 --peak-tflops 790"), BENCH_TIMEOUT, OUT.
cd "$(dirname "$0")/.." || exit 2
OUT=${OUT:-/tmp/gpubench-out}; mkdir -p "$OUT"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .gpu/whl/*.whl > "$OUT/pip.log" 2>&1 || { tail -20 "$OUT/pip.log"; exit 3; }
export PYTHONPATH=/tmp/site:$PWD/src:$PWD/.gpu/bnb PYTHONUNBUFFERED=1 TWIN_LLM_MODELS_DIR=/tmp/models
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$OUT/nvidia-smi.txt" 2>&1
for shape in ${SHAPES:-1b}; do
  timeout "${BENCH_TIMEOUT:-420}" python3 benchmarks/training.py --device gpu --shape "$shape" --steps "${STEPS:-12}" --rounds "${ROUNDS:-1}" ${BENCH_ARGS:-} \
    --tokenizer .gpu/tok 2> "$OUT/bench-$shape.err" | tee "$OUT/bench-$shape.json"
  tail -3 "$OUT/bench-$shape.err"
done
