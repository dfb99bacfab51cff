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
# per line; the table is also written there as table.md. GPU_CHECK_ONLY=name,name runs
# only the named lines (the names of their folders and logs, e.g.
# GPU_CHECK_ONLY=gpu,fsdp-resnet,fsdp-resume,fsdp-compile,fsdp-channels-last,ddp-multirun,ddp-sweep,sigusr1,parallel,global-batch
# for issue 24's paths; a resume line compares with its reference line, so name both).
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
STEP_S=${GPU_CHECK_STEP_S:-180}         # one command (then SIGTERM; SIGKILL 20 s later)
ONLY=",${GPU_CHECK_ONLY:-},"
NGPU=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU')
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
    ref = json.load(open(sys.argv[3]))
    print(f"steps {r['steps']} (uninterrupted {ref['steps']}), "
          + ("finite" if not bad else "NON-FINITE"))
EOF
}

row() {  # row LABEL STATUS SECONDS METRIC ("n/a: why" is a line this machine cannot run)
  ROWS+=("$1|$2|$3|$4")
  if [ "$2" != "ok" ] && [[ "$2" != n/a:* ]]; then FAILED=1; fi
}

wanted() { [ "$ONLY" = ",," ] || [[ "$ONLY" == *",$1,"* ]]; }  # wanted NAME (GPU_CHECK_ONLY)

over_budget() { [ $((SECONDS - STARTED)) -ge "$BUDGET_S" ]; }

# check NAME LABEL KIND -- COMMAND...: run COMMAND and record its line; the metric of KIND
# comes from $OUT/NAME/results.json ("" for none). A dry run composes COMMAND instead
# (--cfg job; -m dropped, Hydra allows only one of them, and of a multirun's a,b list the
# first value), four at a time, in the background.
check() {
  local name=$1 label=$2 kind=$3
  shift 4
  wanted "$name" || return 0
  if [ $DRY = 1 ]; then
    local args=() a multi=0
    for a in "$@"; do if [ "$a" = "-m" ]; then multi=1; fi; done
    for a in "$@"; do
      if [ "$a" = "-m" ]; then continue; fi
      if [ $multi = 1 ] && [[ "$a" =~ ^[^=]+=[^][{}()\'\"]*,.*$ ]]; then a=${a%%,*}; fi
      args+=("$a")
    done
    while [ "$(jobs -rp | wc -l)" -ge 4 ]; do sleep 0.05; done
    ( "${args[@]}" --cfg job > "$OUT/$name.log" 2>&1; echo $? > "$OUT/$name.rc" ) &
    ROWS+=("$label|@$name|-|-")
    return 0
  fi
  if over_budget; then row "$label" "skipped: over ${BUDGET_S}s" "-" "-"; return 1; fi
  local t0=$SECONDS rc
  timeout -k 20 "$STEP_S" "$@" > "$OUT/$name.log" 2>&1
  rc=$?
  local secs=$((SECONDS - t0)) metric="-"
  if [ -n "$kind" ] && [ -f "$OUT/$name/results.json" ]; then
    metric=$(metric "$kind" "$OUT/$name/results.json")
  fi
  if [ $rc = 0 ]; then row "$label" ok "$secs" "$metric"; else row "$label" "FAILED (exit $rc)" "$secs" "$metric"; fi
  return $rc
}

# stop_resume NAME LABEL SIGNAL REF -- COMMAND...: run COMMAND; once its first last.ckpt is
# written, send SIGNAL (TERM or USR1) and expect exit 128 + signal with one checkpoint; then
# continue it: TERM runs the resume command it printed, USR1 (SLURM) expects "requeued" and
# the fake scontrol called, and runs COMMAND again as the requeued job would (resume=auto).
# ok when the continued run ends with REF/results.json's step count and finite metrics.
stop_resume() {
  local name=$1 label=$2 sig=$3 ref=$4
  shift 5
  wanted "$name" || return 0
  if [ $DRY = 1 ]; then check "$name" "$label" "" -- "$@"; return; fi
  if over_budget; then row "$label" "skipped: over ${BUDGET_S}s" "-" "-"; return 1; fi
  local t0=$SECONDS pid rc resume metric="-" want=$((128 + $(kill -l "$sig")))
  "$@" > "$OUT/$name.log" 2> "$OUT/$name.err" &
  pid=$!
  while [ ! -f "$OUT/$name/checkpoints/last.ckpt" ] && kill -0 $pid 2>/dev/null \
      && [ $((SECONDS - t0)) -lt "$STEP_S" ]; do sleep 0.05; done
  kill -"$sig" $pid 2>/dev/null
  local t1=$SECONDS
  while kill -0 $pid 2>/dev/null && [ $((SECONDS - t1)) -lt 120 ]; do sleep 0.2; done
  if kill -0 $pid 2>/dev/null; then  # a hang after the signal: the line's failure
    pkill -9 -P $pid 2>/dev/null
    kill -9 $pid 2>/dev/null
  fi
  wait $pid
  rc=$?
  local status="FAILED (stop exit $rc, expected $want)"
  if [ $((SECONDS - t1)) -ge 120 ]; then status="FAILED (still running 120 s after SIG$sig)"; fi
  if [ $rc = "$want" ] && [ "$sig" = USR1 ]; then
    status="FAILED (no requeue: see $name.err and scontrol.calls)"
    if grep -q "requeued SLURM job" "$OUT/$name.err" && grep -q "^requeue " "$OUT/scontrol.calls"; then
      timeout -k 20 "$STEP_S" "$@" >> "$OUT/$name.log" 2>&1
      rc=$?
      status="FAILED (requeued run exit $rc)"
    fi
  elif [ $rc = "$want" ]; then
    resume=$(grep -o 'resume with: .*' "$OUT/$name.err" | head -1 | sed 's/^resume with: //')
    status="FAILED (no resume command printed)"
    if [ -n "$resume" ]; then  # the printed command names dl-train: run this environment's
      eval "timeout -k 20 $STEP_S $BIN/$resume" >> "$OUT/$name.log" 2>&1
      rc=$?
      status="FAILED (resume exit $rc)"
    fi
  fi
  if [[ "$status" == "FAILED (re"* ]] && [ $rc = 0 ]; then
    metric=$(metric resume "$OUT/$name/results.json" "$ref/results.json")
    if [[ "$metric" =~ ^steps\ ([0-9]+)\ \(uninterrupted\ ([0-9]+)\),\ finite$ ]] \
        && [ "${BASH_REMATCH[1]}" = "${BASH_REMATCH[2]}" ]; then status=ok; fi
  fi
  row "$label" "$status" "$((SECONDS - t0))" "$metric"
}

# count_results N: a multirun's line (the last row) fails unless N results.json were written.
count_results() {
  local dir=$1 want=$2 last=$((${#ROWS[@]} - 1)) found
  [ $DRY = 0 ] && wanted "$3" || return 0
  found=$(find "$dir" -name results.json 2>/dev/null | wc -l)
  IFS='|' read -r l st secs _ <<< "${ROWS[$last]}"
  if [ "$st" = ok ] && [ "$found" != "$want" ]; then st="FAILED ($found results.json, expected $want)"; FAILED=1; fi
  ROWS[$last]="$l|$st|$secs|$found results.json"
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
if ! wanted plain_loop; then :
elif [ $DRY = 1 ]; then
  check plain_loop "plain_loop.py experiment=mnist_speed trainer=gpu" "" -- \
    "$PY" scripts/plain_loop.py experiment=mnist_speed trainer=gpu paths.data_dir="$DATA_DIR"
elif over_budget; then
  row "plain_loop.py experiment=mnist_speed trainer=gpu" "skipped: over ${BUDGET_S}s" "-" "-"
else
  t0=$SECONDS
  timeout -k 20 "$STEP_S" "$PY" scripts/plain_loop.py experiment=mnist_speed trainer=gpu \
    paths.data_dir="$DATA_DIR" > "$OUT/plain_loop.log" 2>&1
  rc=$?
  metric=$(metric plain "$OUT/plain_loop.log" "$OUT/mnist_speed/results.json")
  if [ $rc = 0 ]; then row "plain_loop.py experiment=mnist_speed trainer=gpu" ok "$((SECONDS - t0))" "$metric"
  else row "plain_loop.py experiment=mnist_speed trainer=gpu" "FAILED (exit $rc)" "$((SECONDS - t0))" "-"; fi
fi

# ---- SIGTERM in the middle of an epoch, then the printed resume command -----------------
STOP=(callbacks.mid_epoch_checkpoint.train_time_interval=null
      callbacks.mid_epoch_checkpoint.every_n_train_steps=200)
stop_resume sigterm "SIGTERM mid-epoch (trainer=gpu), then the printed command" TERM "$OUT/gpu" -- \
  "$DLTRAIN" $ONE_EPOCH trainer=gpu "${STOP[@]}" hydra.run.dir="$OUT/sigterm"

# ---- DDP and FSDP on all visible GPUs, then dl-eval and dl-predict of their checkpoints ---
if [ $DRY = 0 ] && { [ "$ONLY" = ",," ] || [[ "$ONLY" == *-predict,* ]]; }; then
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

# FSDP2 order and layout (checkpointing/fsdp.py): compile per unit after sharding (the CPU
# suite only checks the order), channels-last activations with contiguous sharded weights
# and SyncBatchNorm (GPU-only kernels).
check fsdp-compile "dl-train model=vit data=mnist trainer=fsdp compile=true" acc -- \
  "$DLTRAIN" model=vit $DATA trainer=fsdp compile=true $SHORT hydra.run.dir="$OUT/fsdp-compile"
check fsdp-channels-last \
  "dl-train model=resnet data=mnist trainer=fsdp channels_last=true +trainer.sync_batchnorm=true" \
  acc -- "$DLTRAIN" model=resnet $DATA trainer=fsdp channels_last=true \
  +trainer.sync_batchnorm=true $SHORT hydra.run.dir="$OUT/fsdp-channels-last"

# FSDP's mid-epoch resume: Lightning restores after placing the module (module/base.py).
stop_resume fsdp-resume "SIGTERM mid-epoch under trainer=fsdp (model=resnet), then the printed command" \
  TERM "$OUT/fsdp-resnet" -- "$DLTRAIN" model=resnet $DATA trainer=fsdp $SHORT \
  callbacks.mid_epoch_checkpoint.train_time_interval=null \
  callbacks.mid_epoch_checkpoint.every_n_train_steps=40 hydra.run.dir="$OUT/fsdp-resume"
# The global batch on all visible GPUs (devices: -1, resolved by Lightning).
check global-batch "dl-train trainer=ddp data.global_batch_size=128 debug=fast" "" -- \
  "$DLTRAIN" trainer=ddp data.global_batch_size=128 debug=fast hydra.run.dir="$OUT/global-batch"
if [ $DRY = 0 ] && wanted global-batch; then  # the split's line, over every visible GPU
  split=$(grep -o 'global batch 128 = [0-9]* process[^—]*step[s]*' "$OUT/global-batch.log" | head -1)
  last=$((${#ROWS[@]} - 1))
  IFS='|' read -r l st secs _ <<< "${ROWS[$last]}"
  if [ "$st" = ok ] && { [ -z "$split" ] || { [ "$NGPU" -gt 0 ] && [[ "$split" != *"= $NGPU process"* ]]; }; }; then
    st="FAILED (no split over $NGPU GPUs)"; FAILED=1
  fi
  ROWS[$last]="$l|$st|$secs|${split:--}"
fi

# ---- -m with DDP: each job or trial one multi-process run -----------------------------------
check ddp-multirun "dl-train -m trainer=ddp data=digits optimizer.lr=0.01,0.001 (2 jobs)" "" -- \
  "$DLTRAIN" -m trainer=ddp data=digits optimizer.lr=0.01,0.001 trainer.max_epochs=2 \
  hydra.sweep.dir="$OUT/ddp-multirun"
count_results "$OUT/ddp-multirun" 2 ddp-multirun
check ddp-sweep "dl-train -m hparams_search=digits_optuna trainer=ddp (4 trials)" "" -- \
  "$DLTRAIN" -m hparams_search=digits_optuna trainer=ddp hydra.sweeper.n_trials=4 \
  hydra.sweep.dir="$OUT/ddp-sweep"
if [ $DRY = 0 ] && [ -f "$OUT/ddp-sweep/sweep_summary.json" ]; then
  last=$((${#ROWS[@]} - 1))
  IFS='|' read -r l st secs _ <<< "${ROWS[$last]}"
  ROWS[$last]="$l|$st|$secs|$(metric sweep "$OUT/ddp-sweep/sweep_summary.json")"
fi

# ---- SLURM requeue: SIGUSR1 works like SIGTERM (one checkpoint, requeue) ---------------------
# SLURM's variables for one task and a fake scontrol that records its arguments.
mkdir -p "$OUT/fake-slurm"
printf '#!/bin/sh\necho "$@" >> "%s/scontrol.calls"\n' "$OUT" > "$OUT/fake-slurm/scontrol"
chmod +x "$OUT/fake-slurm/scontrol"
SLURM=(env PATH="$OUT/fake-slurm:$PATH" SLURM_JOB_ID=4242 SLURM_JOB_NAME=gpu_check SLURM_NTASKS=1
       SLURM_PROCID=0 SLURM_LOCALID=0 SLURM_NODEID=0)
stop_resume sigusr1 "SIGUSR1 mid-epoch on SLURM (trainer=gpu): requeue, then the requeued job" \
  USR1 "$OUT/gpu" -- "${SLURM[@]}" "$DLTRAIN" $ONE_EPOCH trainer=gpu "${STOP[@]}" \
  hydra.run.dir="$OUT/sigusr1"

# ---- parallel trials: one GPU each ----------------------------------------------------------
LABEL="dl-train -m hparams_search=mnist_optuna hydra/launcher=joblib hydra.sweeper.n_jobs=2 trainer=gpu (2 trials on 2 GPUs)"
PARALLEL=("$DLTRAIN" -m hparams_search=mnist_optuna hydra/launcher=joblib hydra.sweeper.n_jobs=2
          trainer=gpu paths.data_dir="$DATA_DIR" $SHORT hydra.sweeper.n_trials=2
          hydra.sweep.dir="$OUT/parallel")
if [ $DRY = 1 ]; then
  check parallel "$LABEL" "" -- "${PARALLEL[@]}"
elif ! wanted parallel; then :
elif [ "$NGPU" -lt 2 ]; then
  row "$LABEL" "n/a: $NGPU GPU here, needs 2" "-" "-"
elif over_budget; then
  row "$LABEL" "skipped: over ${BUDGET_S}s" "-" "-"
else  # ok when both trials finish and two GPUs held a trial's process at the same time
  t0=$SECONDS
  timeout -k 20 "$STEP_S" "${PARALLEL[@]}" > "$OUT/parallel.log" 2>&1 &
  pid=$!
  while kill -0 $pid 2>/dev/null; do
    nvidia-smi --query-compute-apps=gpu_uuid --format=csv,noheader 2>/dev/null | sort -u | wc -l
    sleep 0.5
  done > "$OUT/parallel.gpus"
  wait $pid
  rc=$?
  most=$(sort -n "$OUT/parallel.gpus" | tail -1)
  metric="GPUs busy at once: ${most:-0}; $(metric sweep "$OUT/parallel/sweep_summary.json")"
  if [ $rc != 0 ]; then row "$LABEL" "FAILED (exit $rc)" "$((SECONDS - t0))" "$metric"
  elif [ "${most:-0}" -lt 2 ]; then row "$LABEL" "FAILED (one GPU for both trials)" "$((SECONDS - t0))" "$metric"
  else row "$LABEL" ok "$((SECONDS - t0))" "$metric"; fi
fi

# ---- a 4-trial sweep -----------------------------------------------------------------------
check sweep "dl-train -m hparams_search=mnist_optuna trainer=gpu (4 trials)" "" -- \
  "$DLTRAIN" -m hparams_search=mnist_optuna trainer=gpu paths.data_dir="$DATA_DIR" $SHORT \
  hydra.sweeper.n_trials=4 hydra.sweep.dir="$OUT/sweep"
if [ $DRY = 0 ] && wanted sweep && [ -f "$OUT/sweep/sweep_summary.json" ]; then
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
