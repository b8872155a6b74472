#!/bin/bash
# Issue 22's device checks in one call, on a lent GPU: command `bash scripts/gpu_bench.sh`, carry [".gpu"]
# as ../shared/gpu/prepare.sh assembles it (the wheels the device image lacks, the SmolLM2 tokenizer).
# Each step has its own time limit, so one slow step cannot take the others' results with it, and none runs
# past DEADLINE (570 s after the start; run it with timeout_s 600). Seven files come back in $OUT (OUT defaults
# to /tmp/gpubench-out; a device call returns at most 8):
#   results.jsonl     one JSON line per step, in this order:
#                       train-NAME   item 6: benchmarks/training.py --device gpu, ours vs plain TRL, one per line
#                                    "NAME|ARGS" of TRAIN_RUNS (default below); if ours fails (not a timeout),
#                                    once more: out of GPU memory, as NAME-nofit with fit_memory off; else as
#                                    NAME-unfused with TWIN_TRAINING_FUSED_VARLEN=false (later steps keep it)
#                       llm-bf16, llm-fp32   item 7: benchmarks/local_llm.py, a random-init SmolLM2-shaped model
#                                    placed on the GPU by the product's loader; one at a time vs a batch job;
#                                    llm-fp32 only where llm-bf16's texts differ (rounding or a batching fault?)
#                       profile      where ours' step time goes: gpu-8b at the 1.07 B shape, 4 steps, torch.profiler
#                                    on step 1 and on steps 3-4 (TWIN_TRAINING_TORCH_PROFILE), if time is left
#   report.md         results.jsonl as docs/benchmarks.md's tables, with item 6's verdicts (scripts/gpu_report.py)
#   logs.tar.gz       every step's stderr, nvidia-smi, the pip log (rewritten after each step)
#   profile-ops.txt, profile-trace.json.gz   steps 3-4: the operator table and the timeline (ui.perfetto.dev)
#   profile-first-ops.txt, profile-first-trace.json.gz   the same for step 1 (what it pays once)
# STEPS_LLM=0, TRAIN_RUNS="" or PROFILE=0 skips a part. TRAIN_TIMEOUT (200), LLM_TIMEOUT (80), PROFILE_TIMEOUT
# (150): seconds per step. PROFILE_ARGS: the profile step's data and steps (default below; at least --steps 4).
# PEAK_TFLOPS: the card's bf16 rate for MFU (790: the 8192^3 bf16 product measured on both the H100 and the
# H200 lent here). "fused kernel refused" in train-*.err: the varlen kernel fell back to SDPA per example.
# The dry run here, on the CPU, after prepare.sh (python3 = the project's venv, tiny models, minutes):
#   PATH=$PWD/.venv/bin:$PATH DEVICE=cpu SHAPE=tiny LLM_SHAPE=tiny LLM_REQUESTS=4 PROFILE_ARGS="--steps 4" \
#     TRAIN_RUNS="dry|--steps 2 --set sft.batch_size=4 --set gradient_checkpointing=false" bash scripts/gpu_bench.sh
cd "$(dirname "$0")/.." || exit 2
OUT=${OUT:-/tmp/gpubench-out}; LOGS=${LOGS:-/tmp/gpubench-logs}; mkdir -p "$OUT" "$LOGS"
RESULTS=$OUT/results.jsonl; : > "$RESULTS"  # this call's steps only
pack_logs() { tar czf "$OUT/logs.tar.gz" -C "$LOGS" --exclude=trace.json.gz . 2> /dev/null; }
TRAIN_DEVICE=(--device gpu)
[ "${DEVICE:-gpu}" = cpu ] && TRAIN_DEVICE=(--device cpu --profile gpu-shape)
[ "${DEVICE:-gpu}" = cpu ] || python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .gpu/whl/*.whl > "$LOGS/pip.log" 2>&1 || { tail -20 "$LOGS/pip.log"; pack_logs; exit 3; }
export PYTHONPATH=/tmp/site:$PWD/src:$PWD/.gpu/bnb PYTHONUNBUFFERED=1 TWIN_LLM_MODELS_DIR=/tmp/models
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$LOGS/nvidia-smi.txt" 2>&1
cat "$LOGS/nvidia-smi.txt"

DEADLINE=${DEADLINE:-570}  # seconds since the script began: no step starts or runs past it (the call's limit is 600)
limit() {  # the seconds a step may take: its own limit, cut to what is left before DEADLINE; fails under 30
  local left=$(( DEADLINE - SECONDS ))
  [ "$left" -ge 30 ] || return 1
  echo $(( $1 < left ? $1 : left ))
}

step() {  # NAME: a step's JSON line (stdin), printed and appended to results.jsonl with its name
  local line
  while IFS= read -r line; do
    echo "$line"
    case $line in "{"*) echo "{\"step\": \"$1\", ${line#\{}" >> "$RESULTS" ;; esac
  done
}

run_step() {  # NAME SECONDS COMMAND...: one step under its limit; its JSON line to results.jsonl, stderr to NAME.err
  local name=$1 t rc
  t=$(limit "$2") || { echo "$name skipped: no time left before the deadline"; return 9; }
  shift 2
  timeout "$t" "$@" 2> "$LOGS/$name.err" | step "$name"
  rc=${PIPESTATUS[0]}; [ "$rc" = 0 ] || echo "$name failed or timed out (rc $rc)"
  tail -3 "$LOGS/$name.err"; pack_logs
  return "$rc"
}

run_train() {  # NAME FLAGS...: one benchmarks/training.py run, ours then plain TRL
  local name=$1; shift
  run_step "train-$name" "${TRAIN_TIMEOUT:-200}" python3 benchmarks/training.py "${TRAIN_DEVICE[@]}" \
    --shape "${SHAPE:-1b}" --rounds 1 --peak-tflops "${PEAK_TFLOPS:-790}" --tokenizer .gpu/tok "$@"
}

# Item 6 first (the larger gap). gpu-8b as it is (QLoRA; fit_memory picks ours' micro-batch and recomputation,
# the plain script runs the profile as written), then the same in bf16 LoRA (no 4-bit weights to de-quantize).
DEFAULT_RUNS="gpu8b|--full-text --repeat 4 --steps 8
bf16|--full-text --repeat 4 --steps 8 --set quantization=null"
FIT_OFF=()  # becomes (--set fit_memory=false) once fit_memory's plan ran out of memory
while IFS='|' read -r name args; do
  [ -n "$name" ] || continue
  # shellcheck disable=SC2086  # ARGS is a list of flags
  run_train "$name" $args "${FIT_OFF[@]}"; rc=$?
  # ours failed (not plain TRL, not a timeout): out of memory, fit_memory's plan was short: once more with the
  # profile's own split; else the fused varlen kernel, the other new, untried part: once more without it. The
  # later steps keep the change.
  if [ "$rc" != 0 ] && [ "$rc" != 124 ] && [ "$rc" != 9 ] && ! grep -q -- "'--plain'" "$LOGS/train-$name.err"; then
    if grep -q "ran out of memory" "$LOGS/train-$name.err" && [ ${#FIT_OFF[@]} = 0 ]; then
      FIT_OFF=(--set fit_memory=false)
      echo "train-$name: once more with fit_memory: false"
      # shellcheck disable=SC2086
      run_train "$name-nofit" $args "${FIT_OFF[@]}"
    elif [ "${TWIN_TRAINING_FUSED_VARLEN:-true}" = true ]; then
      export TWIN_TRAINING_FUSED_VARLEN=false
      echo "train-$name: once more with TWIN_TRAINING_FUSED_VARLEN=false"
      # shellcheck disable=SC2086
      run_train "$name-unfused" $args "${FIT_OFF[@]}"
    fi
  fi
done <<< "${TRAIN_RUNS-$DEFAULT_RUNS}"

if [ "${STEPS_LLM:-1}" != "0" ]; then
  for dtype in bf16 fp32; do
    # fp32 only tells bf16 rounding from a batching fault: with every bf16 text the same, its time goes to the profile
    if [ "$dtype" = fp32 ] && grep '^{"step": "llm-bf16", ' "$RESULTS" | tail -1 | grep -q '"first_different": null'; then
      echo "llm-fp32 skipped: llm-bf16 gave the same text batched and alone"; continue
    fi
    flag=$([ "$dtype" = fp32 ] && echo --fp32)
    # shellcheck disable=SC2086  # empty or --fp32
    run_step "llm-$dtype" "${LLM_TIMEOUT:-80}" python3 benchmarks/local_llm.py --random "${LLM_SHAPE:-smollm2}" \
      --tokenizer .gpu/tok --requests "${LLM_REQUESTS:-32}" $flag
  done
fi

# Last, a diagnosis rather than a result: ours alone, under torch.profiler (it slows the steps it records)
if [ "${PROFILE:-1}" != "0" ]; then
  # shellcheck disable=SC2086  # PROFILE_ARGS is a list of flags
  run_step profile "${PROFILE_TIMEOUT:-150}" python3 benchmarks/training.py "${TRAIN_DEVICE[@]}" \
    --shape "${SHAPE:-1b}" --tokenizer .gpu/tok ${PROFILE_ARGS:---full-text --repeat 4 --steps 4} "${FIT_OFF[@]}" \
    --torch-profile "$LOGS/profile"
  for run in "$LOGS"/profile/sft-*; do  # one run: sft-<run id>
    cp "$run/ops.txt" "$OUT/profile-ops.txt" 2> /dev/null
    cp "$run/trace.json.gz" "$OUT/profile-trace.json.gz" 2> /dev/null
    cp "$run/first-step/ops.txt" "$OUT/profile-first-ops.txt" 2> /dev/null
    cp "$run/first-step/trace.json.gz" "$OUT/profile-first-trace.json.gz" 2> /dev/null
  done
fi
# The tables and verdicts, from whatever ran (stdlib only: no step's failure can stop it)
python3 scripts/gpu_report.py "$RESULTS" --device "$(sed -n 2p "$LOGS/nvidia-smi.txt" 2> /dev/null)" \
  --when "$(date -u '+%Y-%m-%d %H:%M UTC')" > "$OUT/report.md" 2>&1
cat "$OUT/report.md"
