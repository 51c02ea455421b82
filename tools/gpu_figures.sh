#!/usr/bin/env bash
# Every GPU figure the README is waiting for, measured in one run on a CUDA machine, with a HARD
# limit of 8 minutes overall (HARD_S=480: the whole script runs under `timeout`; each step has its
# own limit, clipped to what is left before the deadline, so a slow step costs only itself and a
# step that no longer fits is recorded as skipped). The steps, most wanted first:
#
#   meta         GPU name, driver, torch, CUDA, the date, whether the data is generated
#   data         a generated full-size CIFAR-10 in the real file format (when data/cifar has none)
#   sync         AdMSGD/AdMAdamW (granularity global/tensor, foreach True/False) stepping under
#                torch.cuda.set_sync_debug_mode("error"): a host sync in step() fails loudly
#                (recorded as skipped on a CPU, where nothing can be checked)
#   optimizers   admtune bench, interleaved, --rounds 5: AdM vs torch foreach and fused SGD/AdamW
#   cifar        2 runs at the cifar spec's default budget (16 epochs), + the study estimate
#   airbench     airbench's 94 % recipe on the same data (needs .peers/: tools/fetch_peers.sh)
#   lm           1 run at the lm spec's default budget, + its study estimate
#   cifar-compile  2 runs with workload.compile = true
#   cifar-workers  2 processes at once on the one GPU (what `admtune study --workers 2` does)
#   train        admtune bench --protocol train (each optimizer training its own ResNet-18)
#   cifar-adm    1 run of the AdM arm
#   estimate     the default `admtune study cifar` wall time, 1 worker and --workers 2/4/8 on one
#                GPU (2 measured, more extrapolated and marked so), admtune vs airbench s/run
#
#   bash tools/fetch_peers.sh                     # once, where PyPI is reachable (airbench)
#   bash tools/gpu_figures.sh [OUT_DIR]           # default OUT_DIR: $OUT, else ./gpu-figures
#
# Needs torch and numpy (PYTHONPATH points at this checkout; nothing is installed); airbench is
# taken from .peers/ when it is there, and torchvision is replaced by a stand-in when missing.
# With the real CIFAR-10 release under data/cifar/cifar-10-batches-py the accuracies are real;
# without it, a generated full-size set in the real file format is written and timed instead: the
# times are real and the accuracies mean nothing (the log says so, and every CIFAR line of the
# results carries "generated_data": true).
# Writes OUT_DIR/gpu-figures.log (everything printed) and OUT_DIR/gpu-figures.jsonl (one JSON object
# per step, optimizer, run, check and estimate; every one with its date and device).
# SMOKE=1 DEVICE=cpu bash tools/gpu_figures.sh checks the script itself on a CPU in about a minute
# (tiny runs, a small generated set, compile switched off): do that before spending GPU time on it.
set -uo pipefail
HARD_S=${HARD_S:-480}
if [ -z "${GPU_FIGURES_INNER:-}" ]; then  # the hard limit: everything below runs under it
  GPU_FIGURES_INNER=1 timeout -k 5 "$HARD_S" bash "$0" "$@"
  rc=$?
  [ "$rc" = 124 ] && echo "gpu_figures.sh: stopped at its hard limit of $HARD_S s" >&2
  exit "$rc"
fi
T0=$(date +%s)
DEVICE=${DEVICE:-cuda}
SMOKE=${SMOKE:-0}
[ "$SMOKE" = 1 ] || SMOKE=0
SLACK=15    # seconds kept after the deadline: the last step's kill (-k 5) and the summary
RESERVE=20  # seconds kept for the estimate step
[ "$SMOKE" = 1 ] && SLACK=5 RESERVE=8
DEADLINE=$((T0 + HARD_S - SLACK))
SHORT=()
LM_SHORT=()
OPT=(--rounds 5)
TRAIN=()
SYNC=()
N_TRAIN=50000
N_TEST=10000
COMPILE_ENV=()
if [ "$SMOKE" = 1 ]; then
  SHORT=(--steps 2 --batch-size 32 --set workload.val_size=50 --set workload.width=0.125)
  LM_SHORT=(--steps 2 --set workload.eval_batches=1 --set workload.max_bytes=100000
            --set workload.n_layer=1 --set workload.d_model=32 --set workload.n_head=2
            --set workload.context=64 --batch-size 8)
  OPT=(--small --rounds 2 --repeats 2 --warmup 1)
  TRAIN=(--repeats 1 --warmup 0 --batch 2 --width 0.125)
  SYNC=(--small)
  N_TRAIN=300
  N_TEST=100
  # Inductor takes minutes on a small CPU: the smoke run checks the path with compilation off.
  COMPILE_ENV=(env TORCHDYNAMO_DISABLE=1)
  export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
fi
OUT_DIR=${1:-${OUT:-gpu-figures}}
mkdir -p "$OUT_DIR"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
export GPU_FIGURES_SMOKE=$SMOKE GIT_COMMIT=${GIT_COMMIT:-$(git rev-parse HEAD 2>/dev/null || echo unknown)}
PY=${PYTHON:-python3}
LOG="$OUT_DIR/gpu-figures.log"
JSON="$OUT_DIR/gpu-figures.jsonl"
: >"$LOG"
: >"$JSON"
SCRATCH=$(mktemp -d "${TMPDIR:-/tmp}/gpu-figures.XXXXXX")
trap 'rm -rf "$SCRATCH"' EXIT
smoke_json=$([ "$SMOKE" = 1 ] && echo true || echo false)

say() { echo "$*" | tee -a "$LOG"; }

step() {  # step NAME SECONDS COMMAND...: run it under its limit (clipped to the deadline), log it
  local name=$1 limit=$2
  shift 2
  local now left status rc t1 t2 ms wall
  now=$(date +%s)
  left=$((DEADLINE - now))
  [ "$name" = estimate ] || left=$((left - RESERVE))
  if [ "$left" -lt 5 ]; then
    say "== [$name] SKIPPED: the ${HARD_S} s deadline leaves ${left} s"
    printf '{"kind":"step","name":"%s","status":"skipped","reason":"deadline","limit_s":%d,"wall_s":0,"date":"%s","smoke":%s}\n' \
      "$name" "$limit" "$(date -u +%FT%TZ)" "$smoke_json" >>"$JSON"
    return
  fi
  [ "$limit" -gt "$left" ] && limit=$left
  say "== [$name] $* (limit ${limit} s; $((DEADLINE - now)) s to the deadline)"
  t1=$(date +%s%N)
  timeout -k 5 "$limit" "$@" 2>&1 | tee -a "$LOG"
  rc=${PIPESTATUS[0]}
  t2=$(date +%s%N)
  ms=$(((t2 - t1) / 1000000))
  wall=$(printf '%d.%03d' $((ms / 1000)) $((ms % 1000)))
  case $rc in 0) status=ok ;; 124|137) status=timeout ;; *) status=failed ;; esac
  say "== [$name] $status (exit $rc) in $wall s"
  printf '{"kind":"step","name":"%s","status":"%s","exit":%d,"limit_s":%d,"wall_s":%s,"date":"%s","smoke":%s}\n' \
    "$name" "$status" "$rc" "$limit" "$wall" "$(date -u +%FT%TZ)" "$smoke_json" >>"$JSON"
}

DATA=data/cifar
GEN=0
if [ ! -d "$DATA/cifar-10-batches-py" ]; then
  DATA=$SCRATCH/cifar
  GEN=1
  say "NOTE: no real CIFAR-10 under data/cifar: timings on a generated full-size set; the times are real, its accuracies mean nothing"
fi
export GPU_FIGURES_GENERATED=$GEN
GEN_JSON=$([ "$GEN" = 1 ] && echo true || echo false)
TAGS=(--tag "generated_data=$GEN_JSON" --tag "smoke=$smoke_json")
[ "$GEN" = 1 ] && TAGS+=(--tag "note=generated data: the times are real, the accuracies mean nothing")

if [ "$DEVICE" != cpu ]; then
  step nvidia-smi 20 nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv
fi
step meta 60 "$PY" -m admtune.bench.gpu_figures meta --device "$DEVICE" --data-dir "$DATA" --json "$JSON"
if [ "$GEN" = 1 ]; then
  step data 90 "$PY" -c "from tests.fake_cifar import write_fake_cifar; write_fake_cifar('$DATA', n_train=$N_TRAIN, n_test=$N_TEST)"
fi
CIFAR=(--workload cifar --data-dir "$DATA" --device "$DEVICE" "${TAGS[@]}")

# No host synchronisation inside the AdM steps (CUDA's sync debug mode set to "error").
step sync 60 "$PY" -m admtune.bench.gpu_figures sync --device "$DEVICE" --json "$JSON" ${SYNC[@]+"${SYNC[@]}"}
# The optimizers' step time and memory against torch's foreach and fused (ResNet-18 parameter set).
step optimizers 90 "$PY" -m admtune.bench.gpu_figures optimizers --device "$DEVICE" --json "$JSON" \
  --protocol interleaved "${OPT[@]}"
# CIFAR-10 at the default spec's budget: seconds per run (the second is the steady state), and the
# default study's wall time estimated from it.
step cifar 150 "$PY" -m admtune.bench.workloads "${CIFAR[@]}" --repeat 2 --study-estimate \
  --json "$JSON" --tag step=cifar ${SHORT[@]+"${SHORT[@]}"}
# The peer on the same GPU and data: airbench's 94 % recipe.
step airbench 120 "$PY" -m admtune.bench.gpu_figures airbench --device "$DEVICE" --data-dir "$DATA" \
  --peers "${PEERS:-.peers}" --work-dir "$SCRATCH" --json "$JSON"
# The byte-level GPT at the default lm spec's budget (one run: it includes loading the sources).
step lm 150 "$PY" -m admtune.bench.workloads --workload lm --baseline adamw --device "$DEVICE" \
  --repeat 1 --study-estimate --json "$JSON" --tag step=lm --tag "smoke=$smoke_json" \
  ${LM_SHORT[@]+"${LM_SHORT[@]}"}
# torch.compile: the first run pays for compilation, the second is the steady state.
step cifar-compile 180 ${COMPILE_ENV[@]+"${COMPILE_ENV[@]}"} "$PY" -m admtune.bench.workloads "${CIFAR[@]}" \
  --repeat 2 --compile --json "$JSON" --tag step=cifar-compile \
  --tag "compile_disabled=$([ "$SMOKE" = 1 ] && echo true || echo false)" ${SHORT[@]+"${SHORT[@]}"}
# Two workers sharing the one GPU: each process's second run is timed while the other runs.
step cifar-workers 120 "$PY" -m admtune.bench.gpu_figures concurrent --n 2 --device "$DEVICE" \
  --json "$JSON" -- "${CIFAR[@]}" --repeat 2 --tag step=cifar-workers ${SHORT[@]+"${SHORT[@]}"}
# The optimizer step inside real training (each optimizer trains its own ResNet-18 copy).
step train 90 "$PY" -m admtune.bench.gpu_figures optimizers --device "$DEVICE" --json "$JSON" \
  --protocol train ${TRAIN[@]+"${TRAIN[@]}"}
# The AdM arm's run (the estimate takes AdM runs to cost what the β = 0.9 run cost).
step cifar-adm 60 "$PY" -m admtune.bench.workloads "${CIFAR[@]}" --repeat 1 --adm --json "$JSON" \
  --tag step=cifar-adm ${SHORT[@]+"${SHORT[@]}"}
step estimate 20 "$PY" -m admtune.bench.gpu_figures estimate --json "$JSON"
say "done in $(($(date +%s) - T0)) s: $LOG $JSON"
