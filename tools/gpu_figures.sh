#!/usr/bin/env bash
# Every GPU figure the README is waiting for, measured in one run on a CUDA machine
# (about 8 minutes on an H200; each step has its own time limit, so one slow step costs only itself).
#
#   bash tools/gpu_figures.sh [OUT_DIR]          # default OUT_DIR: $OUT, else ./gpu-figures
#
# Needs only torch and numpy (PYTHONPATH points at this checkout; nothing is installed).
# With the real CIFAR-10 release under data/cifar/cifar-10-batches-py the accuracies are real;
# without it, a generated full-size set in the real file format is written and timed instead,
# and its accuracies mean nothing (the log says so on its first lines).
# Writes OUT_DIR/gpu-figures.log (everything printed) and OUT_DIR/gpu-figures.jsonl (one JSON
# object per timed run and per study estimate, from admtune.bench.workloads --json).
# SMOKE=1 DEVICE=cpu bash tools/gpu_figures.sh checks the script itself on a CPU in a minute
# (two steps per run, a small generated set): do that before spending GPU time on it.
set -uo pipefail
DEVICE=${DEVICE:-cuda}
SHORT=()
LM_SHORT=()
BENCH=()
N_TRAIN=50000
N_TEST=10000
if [ "${SMOKE:-0}" = 1 ]; then
  SHORT=(--steps 2 --set workload.val_size=100)
  LM_SHORT=(--steps 2 --set workload.eval_batches=1 --set workload.max_bytes=300000
            --set workload.n_layer=1 --set workload.d_model=64 --set workload.n_head=2)
  BENCH=(--repeats 2 --warmup 1)
  N_TRAIN=600
  N_TEST=200
fi
OUT_DIR=${1:-${OUT:-gpu-figures}}
mkdir -p "$OUT_DIR"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
PY=${PYTHON:-python3}
LOG="$OUT_DIR/gpu-figures.log"
JSON="$OUT_DIR/gpu-figures.jsonl"
: >"$LOG"

step() {  # step SECONDS COMMAND...: run it with a time limit, keep its output, go on either way
  local limit=$1
  shift
  echo "== $* (limit ${limit} s)" | tee -a "$LOG"
  timeout "$limit" "$@" 2>&1 | tee -a "$LOG"
  echo "== exit ${PIPESTATUS[0]}" | tee -a "$LOG"
}

if [ "$DEVICE" != cpu ]; then
  step 30 nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv
fi
step 60 "$PY" -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name() if torch.cuda.is_available() else 'no GPU')"

DATA=data/cifar
if [ ! -d "$DATA/cifar-10-batches-py" ]; then
  DATA=${TMPDIR:-/tmp}/admtune-generated-cifar
  echo "NOTE: no real CIFAR-10 under data/cifar: timings on a generated full-size set; its accuracies mean nothing" | tee -a "$LOG"
  step 180 "$PY" -c "from tests.fake_cifar import write_fake_cifar; write_fake_cifar('$DATA', n_train=$N_TRAIN, n_test=$N_TEST)"
fi

# The optimizers' step time and memory against torch's (ResNet-18 parameter set).
step 120 "$PY" -m admtune.bench --device "$DEVICE" ${BENCH[@]+"${BENCH[@]}"}
# CIFAR-10 at the default spec's budget: seconds per run, accuracy, the default study's wall time.
step 240 "$PY" -m admtune.bench.workloads --workload cifar --data-dir "$DATA" \
  --device "$DEVICE" --repeat 3 --study-estimate --json "$JSON" ${SHORT[@]+"${SHORT[@]}"}
step 240 "$PY" -m admtune.bench.workloads --workload cifar --data-dir "$DATA" \
  --device "$DEVICE" --repeat 2 --compile --json "$JSON" ${SHORT[@]+"${SHORT[@]}"}
step 120 "$PY" -m admtune.bench.workloads --workload cifar --data-dir "$DATA" \
  --device "$DEVICE" --repeat 1 --adm --json "$JSON" ${SHORT[@]+"${SHORT[@]}"}
# The byte-level GPT at the default lm spec's budget.
step 180 "$PY" -m admtune.bench.workloads --workload lm --baseline adamw --device "$DEVICE" \
  --repeat 2 --study-estimate --json "$JSON" ${LM_SHORT[@]+"${LM_SHORT[@]}"}
echo "done: $LOG $JSON"
