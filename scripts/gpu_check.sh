#!/usr/bin/env bash
# One-shot check of the GPU hardware profiles on a machine with one or more NVIDIA GPUs:
# every GPU path the CPU test suite can only test by mechanism, run for real, in at most
# 8 minutes. Prints one table (command, status, seconds, metric) and exits non-zero when
# any line fails. MNIST comes from ../shared/datasets (DATA_DIR=... to change).
#
#   scripts/gpu_check.sh              # on the GPU machine, from the project root
#   scripts/gpu_check.sh --dry-run    # anywhere: composes every command (--cfg job)
#
# Runs land in outputs/gpu_check/<time>/ (GPU_CHECK_OUT=...), one folder and one log
# per line; the table is also written there as table.md.
set -u
cd "$(dirname "$0")/.."

DRY=0
if [ "${1:-}" = "--dry-run" ]; then DRY=1; fi
DATA_DIR=${DATA_DIR:-../shared/datasets}
BIN=${DLTRAIN_BIN:-}
if [ -z "$BIN" ]; then
  if [ -x .venv/bin/dl-train ]; then BIN=.venv/bin; else BIN=$(dirname "$(command -v dl-train)"); fi
fi
PY=$BIN/python
OUT=${GPU_CHECK_OUT:-outputs/gpu_check/$(date +%Y-%m-%d_%H-%M-%S)}
BUDGET_S=${GPU_CHECK_BUDGET_S:-480}     # the whole script: 8 minutes
STEP_S=${GPU_CHECK_STEP_S:-180}         # one command
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
DATA="data=mnist paths.data_dir=$DATA_DIR"
ONE_EPOCH="model=cnn $DATA trainer.max_epochs=1"
SHORT="trainer.max_epochs=1 trainer.limit_train_batches=100"   # ddp/fsdp/sweep: code paths
ROWS=()
FAILED=0
STARTED=$SECONDS

# ---- helpers ------------------------------------------------------------------------

# metric KIND FILE [FILE]: the metric column of a line, "-" when there is none.
metric() {
  "$PY" - "$@" <<'EOF' 2>/dev/null || echo "-"
import json, math, sys
kind, path = sys.argv[1], sys.argv[2]
if kind == "plain":  # the plain loop's JSON line against mnist_speed's results.json
    plain = json.loads(open(path).read().strip().splitlines()[-1])
    ours = json.load(open(sys.argv[3]))
    print(f"train_s {plain['train_s']:.2f} ({plain['precision']}); "
          f"mnist_speed/plain {ours['train_s'] / plain['train_s']:.3f}")
    sys.exit()
r = json.load(open(path))
if kind == "sweep":
    trials = r["trials"] if isinstance(r, dict) else r
    states = [t["state"] for t in trials]
    print(", ".join(f"{s} {states.count(s)}" for s in sorted(set(states))))
    sys.exit()
m = r.get("metrics", {})
bad = "" if all(math.isfinite(v) for v in m.values()) else " NON-FINITE"
if kind == "acc":
    print(f"test/acc {m['test/acc']:.4f}{bad}")
elif kind == "speed":
    print(f"test/acc {m['test/acc']:.4f}, {r['precision']}, train_s {r['train_s']:.2f}, "
          f"wall {r['wall_s']:.1f}{bad}")
elif kind == "resume":  # steps of the resumed run against the uninterrupted one's
    ref = json.load(open(path.replace("/sigterm/", "/gpu/")))
    print(f"steps {r['steps']} (uninterrupted {ref['steps']}), "
          + ("finite" if not bad else "NON-FINITE"))
EOF
}

row() {  # row LABEL STATUS SECONDS METRIC
  ROWS+=("$1|$2|$3|$4")
  if [ "$2" != "ok" ]; then FAILED=1; fi
}

over_budget() { [ $((SECONDS - STARTED)) -ge "$BUDGET_S" ]; }

# check NAME LABEL KIND -- COMMAND...: run COMMAND and record its line; the metric of KIND
# comes from $OUT/NAME/results.json ("" for none). A dry run composes COMMAND instead
# (--cfg job; -m dropped, Hydra allows only one of them), four at a time, in the background.
check() {
  local name=$1 label=$2 kind=$3
  shift 4
  if [ $DRY = 1 ]; then
    local args=() a
    for a in "$@"; do if [ "$a" != "-m" ]; then args+=("$a"); fi; done
    while [ "$(jobs -rp | wc -l)" -ge 4 ]; do sleep 0.05; done
    ( "${args[@]}" --cfg job > "$OUT/$name.log" 2>&1; echo $? > "$OUT/$name.rc" ) &
    ROWS+=("$label|@$name|-|-")
    return 0
  fi
  if over_budget; then row "$label" "skipped: over ${BUDGET_S}s" "-" "-"; return 1; fi
  local t0=$SECONDS rc
  timeout "$STEP_S" "$@" > "$OUT/$name.log" 2>&1
  rc=$?
  local secs=$((SECONDS - t0)) metric="-"
  if [ -n "$kind" ] && [ -f "$OUT/$name/results.json" ]; then
    metric=$(metric "$kind" "$OUT/$name/results.json")
  fi
  if [ $rc = 0 ]; then row "$label" ok "$secs" "$metric"; else row "$label" "FAILED (exit $rc)" "$secs" "$metric"; fi
  return $rc
}

DLTRAIN=$BIN/dl-train

# ---- single GPU ------------------------------------------------------------------------
check gpu "dl-train model=cnn data=mnist trainer=gpu (1 epoch)" acc -- \
  "$DLTRAIN" $ONE_EPOCH trainer=gpu hydra.run.dir="$OUT/gpu"
check bf16 "  ... trainer=bf16" acc -- \
  "$DLTRAIN" $ONE_EPOCH trainer=bf16 hydra.run.dir="$OUT/bf16"
check fp16 "  ... trainer=gpu trainer.precision=16-mixed" acc -- \
  "$DLTRAIN" $ONE_EPOCH trainer=gpu trainer.precision=16-mixed hydra.run.dir="$OUT/fp16"
check compile "  ... trainer=gpu compile=true" acc -- \
  "$DLTRAIN" $ONE_EPOCH trainer=gpu compile=true hydra.run.dir="$OUT/compile"
check channels_last "  ... trainer=gpu channels_last=true" acc -- \
  "$DLTRAIN" $ONE_EPOCH trainer=gpu channels_last=true hydra.run.dir="$OUT/channels_last"

# ---- the speed recipe and the bench's per-step pair on the GPU --------------------------
check mnist_speed "dl-train experiment=mnist_speed trainer=gpu" speed -- \
  "$DLTRAIN" experiment=mnist_speed trainer=gpu paths.data_dir="$DATA_DIR" hydra.run.dir="$OUT/mnist_speed"
if [ $DRY = 1 ]; then
  check plain_loop "plain_loop.py experiment=mnist_speed trainer=gpu" "" -- \
    "$PY" scripts/plain_loop.py experiment=mnist_speed trainer=gpu paths.data_dir="$DATA_DIR"
elif over_budget; then
  row "plain_loop.py experiment=mnist_speed trainer=gpu" "skipped: over ${BUDGET_S}s" "-" "-"
else
  t0=$SECONDS
  timeout "$STEP_S" "$PY" scripts/plain_loop.py experiment=mnist_speed trainer=gpu \
    paths.data_dir="$DATA_DIR" > "$OUT/plain_loop.log" 2>&1
  rc=$?
  metric=$(metric plain "$OUT/plain_loop.log" "$OUT/mnist_speed/results.json")
  if [ $rc = 0 ]; then row "plain_loop.py experiment=mnist_speed trainer=gpu" ok "$((SECONDS - t0))" "$metric"
  else row "plain_loop.py experiment=mnist_speed trainer=gpu" "FAILED (exit $rc)" "$((SECONDS - t0))" "-"; fi
fi

# ---- SIGTERM in the middle of an epoch, then the printed resume command -----------------
STOP=(callbacks.mid_epoch_checkpoint.train_time_interval=null
      callbacks.mid_epoch_checkpoint.every_n_train_steps=200)
LABEL="SIGTERM mid-epoch (trainer=gpu), then the printed command"
if [ $DRY = 1 ]; then
  check sigterm "$LABEL" "" -- "$DLTRAIN" $ONE_EPOCH trainer=gpu "${STOP[@]}" hydra.run.dir="$OUT/sigterm"
elif over_budget; then
  row "$LABEL" "skipped: over ${BUDGET_S}s" "-" "-"
else
  t0=$SECONDS
  "$DLTRAIN" $ONE_EPOCH trainer=gpu "${STOP[@]}" hydra.run.dir="$OUT/sigterm" \
    > "$OUT/sigterm.log" 2> "$OUT/sigterm.err" &
  pid=$!
  while [ ! -f "$OUT/sigterm/checkpoints/last.ckpt" ] && kill -0 $pid 2>/dev/null \
      && [ $((SECONDS - t0)) -lt "$STEP_S" ]; do sleep 0.05; done
  kill -TERM $pid 2>/dev/null
  wait $pid
  rc=$?
  resume=$(grep -o 'resume with: .*' "$OUT/sigterm.err" | head -1 | sed 's/^resume with: //')
  status="FAILED (stop exit $rc, expected 143)"
  metric="-"
  if [ $rc = 143 ] && [ -n "$resume" ]; then
    # The printed command names dl-train; run the one of this environment.
    eval "timeout $STEP_S $BIN/$resume" >> "$OUT/sigterm.log" 2>&1
    rc=$?
    metric=$(metric resume "$OUT/sigterm/results.json")
    status="FAILED (resume exit $rc)"
    if [ $rc = 0 ] && [[ "$metric" =~ ^steps\ ([0-9]+)\ \(uninterrupted\ ([0-9]+)\),\ finite$ ]] \
        && [ "${BASH_REMATCH[1]}" = "${BASH_REMATCH[2]}" ]; then status=ok; fi
  fi
  row "$LABEL" "$status" "$((SECONDS - t0))" "$metric"
fi

# ---- DDP and FSDP on all visible GPUs, then dl-eval and dl-predict of their checkpoints ---
if [ $DRY = 0 ]; then
  "$PY" scripts/export_samples.py --out "$OUT/samples" -n 8 $DATA > "$OUT/samples.log" 2>&1 \
    || row "scripts/export_samples.py (inputs for dl-predict)" FAILED "-" "-"
fi
for profile in ddp fsdp; do
  for model in resnet vit; do
    run="$profile-$model"
    if check "$run" "dl-train model=$model data=mnist trainer=$profile" acc -- \
        "$DLTRAIN" model=$model $DATA trainer=$profile $SHORT hydra.run.dir="$OUT/$run"; then
      check "$run-eval" "  dl-eval of its last.ckpt" acc -- \
        "$BIN/dl-eval" ckpt_path="$OUT/$run/checkpoints/last.ckpt" paths.data_dir="$DATA_DIR" \
        hydra.run.dir="$OUT/$run-eval"
      check "$run-predict" "  dl-predict of its last.ckpt" "" -- \
        "$BIN/dl-predict" ckpt_path="$OUT/$run/checkpoints/last.ckpt" inputs="$OUT/samples" \
        hydra.run.dir="$OUT/$run-predict"
    fi
  done
done
# Gradient clipping under FSDP (the recipe sets trainer.gradient_clip_val=1.0).
check fsdp-clip "dl-train experiment=mnist1d_gru trainer=fsdp (gradient clipping)" acc -- \
  "$DLTRAIN" experiment=mnist1d_gru trainer=fsdp trainer.max_epochs=1 hydra.run.dir="$OUT/fsdp-clip"

# ---- a 4-trial sweep -----------------------------------------------------------------------
check sweep "dl-train -m hparams_search=mnist_optuna trainer=gpu (4 trials)" "" -- \
  "$DLTRAIN" -m hparams_search=mnist_optuna trainer=gpu paths.data_dir="$DATA_DIR" $SHORT \
  hydra.sweeper.n_trials=4 hydra.sweep.dir="$OUT/sweep"
if [ $DRY = 0 ] && [ -f "$OUT/sweep/sweep_summary.json" ]; then
  last=$((${#ROWS[@]} - 1))
  IFS='|' read -r l st secs _ <<< "${ROWS[$last]}"
  ROWS[$last]="$l|$st|$secs|$(metric sweep "$OUT/sweep/sweep_summary.json")"
fi

# ---- the table ------------------------------------------------------------------------------
if [ $DRY = 1 ]; then  # the compositions running in the background: their exit codes
  wait
  for i in "${!ROWS[@]}"; do
    IFS='|' read -r label status secs metric <<< "${ROWS[$i]}"
    if [[ "$status" == @* ]]; then
      rc=$(cat "$OUT/${status#@}.rc" 2>/dev/null || echo "?")
      if [ "$rc" = 0 ]; then status=ok; else status="FAILED (exit $rc)"; FAILED=1; fi
      ROWS[$i]="$label|$status|$secs|$metric"
    fi
  done
fi
{
  if [ $DRY = 1 ]; then echo "dry run: every command composed with --cfg job, nothing trained"; fi
  echo "| command | status | seconds | metric |"
  echo "|---|---|---|---|"
  for r in "${ROWS[@]}"; do
    IFS='|' read -r label status secs metric <<< "$r"
    echo "| $label | $status | $secs | $metric |"
  done
  echo "total: $((SECONDS - STARTED)) s; runs and logs in $OUT"
} | tee "$OUT/table.md"
exit $FAILED
