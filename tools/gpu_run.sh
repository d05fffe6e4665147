#!/usr/bin/env bash
# Train the shipped model's recipe (DiT-Ti/2, batch 1024, compiled, bf16) on a lent GPU, in calls
# of at most 10 minutes each (REPORT.md lists the calls that made checkpoints/dit_landscapes.pt).
# Run from the repository root with OUT set to a folder for what comes back; the training data
# must be in data/ (the machine has no diffusers and no FID weights, so FID is scored afterwards
# with fid.py on the samples this leaves in $OUT).
#
#   OUT=/tmp/out QK_NORM=1 bash tools/gpu_run.sh                 # a run from scratch
#   OUT=/tmp/out QK_NORM=1 RESUME=1 bash tools/gpu_run.sh        # the next call, same warm machine:
#                                                                # continue that run, AdamW and all
#   OUT=/tmp/out QK_NORM=1 INIT=checkpoints/dit_landscapes.pt SEED=2 WARMUP=500 EAGER_CHECK=0 \
#       bash tools/gpu_run.sh                                    # a new run from the shipped export
#   OUT=/tmp/out QK_NORM=1 INIT=checkpoints/dit_landscapes.pt SEED=2 WARMUP=500 RESUME=1 \
#       bash tools/gpu_run.sh                                    # ... and its next call
#   ... RESUME=1 COOLDOWN=2500 bash tools/gpu_run.sh             # ... or one that ends the run
#                                                                # with the lr falling to 0
#
# COOLDOWN=N makes this call train N more steps (past the resumed step, or from 0) while the lr
# falls linearly to 0 (--max-steps and --decay-steps; --max-minutes still guards the budget, so
# pick N to fit it: an H100 at batch 1024 runs about 18.8 steps/s, after ~30 s of compiling on a
# fresh machine and a few seconds on a warm one).
#
# Other knobs: LR (3e-4), CLIP (1.0), EXPORT_EVERY (3000), PY (python3), SCRATCH (/tmp: the
# folder for the run, the exports and the sample sets; tests/test_gpu_run.py points it
# elsewhere); GPU_TESTS=0, GUIDED=0 and FALLBACK=0 skip the GPU tests, the guided samples of a
# run from INIT (w = 1.5), and its fallback samples (each costs time a short call lacks;
# FALLBACK=0 still brings the fallback snapshot back, unsampled).  The 0/1 knobs take 0 or 1 only.
# Guidance w as in cfg.py: 1 is the conditional model, unguided; w > 1 guided.
#
# Budget: BUDGET_S seconds in all (default 555) for the GPU tests, an optional 20-second eager
# speed check (EAGER_CHECK=1), the compiled training run (its --max-minutes is what is left after
# the time set aside for sampling and packing) and the packing.  If torch.compile fails, the
# same run goes on eager in the time that remains.
#
# A run from INIT (an export) starts from those EMA weights with a fresh AdamW (an export keeps
# no optimiser state: the 118 MB resumable checkpoint cannot come back through the 16 MiB file
# limit), a new SEED for new data order and noise, and an lr warm-up (WARMUP steps).  Since a
# long run can degrade late (REPORT.md), it also samples the 5,000 FID images from the
# second-newest snapshot (the newest is usually just before the end), to fall back on, and from
# the final model at w = 1.5.
#
# RESUME=1 continues the previous call's run instead, from its full checkpoint
# ($SCRATCH/run/checkpoint.pt: model, EMA, AdamW moments, RNG): that file cannot come back through the
# file limit, but a machine stays warm for a short while after a call, and a call made within that
# while finds it still there.  Pass the same training knobs (QK_NORM, INIT, SEED, WARMUP, LR,
# CLIP) as the call that started the run; the others may differ.
set -u
: "${OUT:?set OUT to the folder for the results}"
BUDGET_S=${BUDGET_S:-555}
PY=${PY:-python3}
SCRATCH=${SCRATCH:-/tmp}        # the machine's scratch space: run/, export/, the sample sets
INIT=${INIT:-}
LR=${LR:-3e-4}
WARMUP=${WARMUP:-0}
SEED=${SEED:-0}
EAGER_CHECK=${EAGER_CHECK:-1}
CLIP=${CLIP:-1.0}
GPU_TESTS=${GPU_TESTS:-1}
GUIDED=${GUIDED:-1}
FALLBACK=${FALLBACK:-1}
EXPORT_EVERY=${EXPORT_EVERY:-3000}
QK_NORM=${QK_NORM:-0}
RESUME=${RESUME:-0}
COOLDOWN=${COOLDOWN:-0}
MODEL=(--model DiT-Ti/2)
if [ "$QK_NORM" = 1 ]; then MODEL+=(--qk-norm); fi
LOG="$OUT/train.log"
# A machine stays warm between calls: nothing of an earlier call may pass for this one's.
rm -rf "$SCRATCH"/eager "$SCRATCH"/fid_samples* "$SCRATCH"/compiled.log "$SCRATCH"/export
if [ "$RESUME" = 1 ]; then
    if [ ! -f "$SCRATCH"/run/checkpoint.pt ]; then
        echo "RESUME=1: no $SCRATCH/run/checkpoint.pt here (a fresh machine, not the warm one of the" \
             "last call); run without RESUME to start a new run" | tee -a "$LOG"
        exit 1
    fi
    # The earlier call's outputs go (its exports came back with it): a resumed run that stops at
    # a non-finite loss writes none of its own, and the earlier ones must not pass for them.
    rm -rf "$SCRATCH"/run/fid_samples "$SCRATCH"/run/loss.png "$SCRATCH"/run/samples.png "$SCRATCH"/run/metrics.json "$SCRATCH"/run/train.log
else
    rm -rf "$SCRATCH"/run
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader > "$LOG" 2>&1
$PY -c "import torch; print('torch', torch.__version__)" >> "$LOG" 2>&1

if [ "$GPU_TESTS" = 1 ]; then
    echo "== GPU tests ==" >> "$LOG"
    $PY -m pytest -q -p no:cacheprovider tests/test_gpu.py >> "$LOG" 2>&1
fi

COMMON=("${MODEL[@]}" --epochs 100000 --batch-size 1024 --lr "$LR" --grad-clip "$CLIP" --seed "$SEED")
if [ "$WARMUP" != 0 ]; then COMMON+=(--warmup-steps "$WARMUP"); fi
# A resumed run from INIT keeps INIT for its reserve and fallback samples, but continues the run.
if [ "$RESUME" = 1 ]; then COMMON+=(--resume "$SCRATCH"/run/checkpoint.pt)
elif [ -n "$INIT" ]; then COMMON+=(--init-from "$INIT"); fi
if [ "$COOLDOWN" != 0 ]; then
    START=0
    if [ "$RESUME" = 1 ]; then
        START=$($PY -c "import torch; print(torch.load('$SCRATCH/run/checkpoint.pt', map_location='cpu', mmap=True, weights_only=True)['step'])")
    fi
    COMMON+=(--max-steps $((START + COOLDOWN)) --decay-steps "$COOLDOWN")
fi
if [ "$EAGER_CHECK" = 1 ] && [ "$RESUME" != 1 ]; then
    echo "== eager speed check: batch 1024, 0.3 minutes ==" >> "$LOG"
    $PY train_one_epoch.py "${COMMON[@]}" --max-minutes 0.3 --no-samples --out "$SCRATCH"/eager >> "$LOG" 2>&1
fi

# Seconds set aside after training: the final samples and packing (60 s), plus up to two more
# sets of 5,000 samples (about 35 s each: start-up, data, sampling) on a run from INIT.
RESERVE=60
if [ -n "$INIT" ]; then RESERVE=$((60 + 35 * GUIDED + 35 * FALLBACK)); fi
minutes_left() { $PY -c "print(max(0.5, round(($BUDGET_S - $SECONDS - $RESERVE) / 60, 2)))"; }
RUN=(--ckpt-every 2000 --out "$SCRATCH"/run --export "$SCRATCH"/export/dit_landscapes.pt --export-every "$EXPORT_EVERY" --fid 5000)
MINUTES=$(minutes_left)
echo "== training, torch.compile, --max-minutes $MINUTES ==" >> "$LOG"
$PY train_one_epoch.py "${COMMON[@]}" "${RUN[@]}" --compile --max-minutes "$MINUTES" 2>&1 | tee "$SCRATCH"/compiled.log >> "$LOG"
# Compiling failed: no export was written, and not because training stopped at a non-finite loss
# (then an eager rerun of the same seed would only diverge again).
if [ ! -f "$SCRATCH"/export/dit_landscapes.pt ] && ! grep -q "not finite" "$SCRATCH"/compiled.log; then
    MINUTES=$(minutes_left)
    echo "== the compiled run left no export: eager for the $MINUTES minutes left ==" >> "$LOG"
    rm -rf "$SCRATCH"/export
    if [ "$RESUME" != 1 ]; then rm -rf "$SCRATCH"/run; fi   # a resumed run's checkpoint stays
    $PY train_one_epoch.py "${COMMON[@]}" "${RUN[@]}" --max-minutes "$MINUTES" >> "$LOG" 2>&1
fi

# The --export-every snapshots written so far, oldest first.
snapshots() { ls -v "$SCRATCH"/export/dit_landscapes-step*.pt 2>/dev/null; }

# FID samples of an export, evaluation only: sample_set NAME MODEL W.  Unguided (W = 1) by the
# trainer's --fid, guided by cfg.py (guidance has its one home there; tools/gpu_eval.sh says how
# such a set is scored).
sample_set() {
    echo "== FID samples: $2, guidance w = $3 ==" >> "$LOG"
    rm -rf "$SCRATCH/$1"
    if [ "$3" = 1 ]; then
        $PY train_one_epoch.py --init-from "$2" --max-steps 0 --fid 5000 \
            --batch-size 1000 --no-samples --out "$SCRATCH/$1" >> "$LOG" 2>&1 \
            && tar czf "$OUT/$1.tgz" -C "$SCRATCH/$1" fid_samples
    else
        $PY cfg.py --checkpoint "$2" --w "$3" --steps 50 --n 5000 --batch-size 1000 --no-metrics \
            --check-w --redraw-w --device cuda --out "$SCRATCH/$1" >> "$LOG" 2>&1 \
            && tar czf "$OUT/$1.tgz" -C "$SCRATCH/$1" samples
    fi
}

# What comes back (at most 8 files of 16 MiB): the export, snapshots, the samples for FID and,
# in one archive, the plots and the metrics.
FINAL="$SCRATCH"/export/dit_landscapes.pt
if [ ! -f "$FINAL" ]; then                 # stopped at a non-finite loss: the latest snapshot
    FINAL=$(snapshots | tail -n 1)
    echo "== no final export: the latest snapshot ${FINAL:-(none: nothing to sample)} stands in ==" >> "$LOG"
    if [ -n "$FINAL" ]; then sample_set fid_samples "$FINAL" 1; fi
else
    tar czf "$OUT/fid_samples.tgz" -C "$SCRATCH"/run fid_samples
fi
if [ -n "$FINAL" ]; then cp "$FINAL" "$OUT"/; fi
if [ -n "$INIT" ] && [ -n "$FINAL" ]; then
    if [ "$GUIDED" = 1 ]; then sample_set fid_samples_w1.5 "$FINAL" 1.5; fi
    SECOND_NEWEST=$(snapshots | tail -n 2 | head -n 1)
    if [ -n "$SECOND_NEWEST" ] && [ "$SECOND_NEWEST" != "$FINAL" ]; then
        cp "$SECOND_NEWEST" "$OUT"/
        if [ "$FALLBACK" = 1 ]; then
            sample_set "fid_samples_$(basename "$SECOND_NEWEST" .pt)" "$SECOND_NEWEST" 1
        fi
    fi
else
    for f in $(snapshots | tail -n 2); do
        if [ "$f" != "$FINAL" ]; then cp "$f" "$OUT"/; fi
    done
fi
echo "== done after $SECONDS s ==" >> "$LOG"
ls -la "$OUT" >> "$LOG"
mkdir -p "$SCRATCH"/run                   # absent when no training run got as far as its first file
cp "$LOG" "$SCRATCH"/run/
tar czf "$OUT/run_files.tgz" -C "$SCRATCH"/run --ignore-failed-read loss.png samples.png metrics.json train.log
