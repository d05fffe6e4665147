#!/usr/bin/env bash
# FID samples for a trained model on a lent GPU, for a sweep of guidance weights w and DDIM
# step counts: each setting is one `cfg.py --no-metrics` set of 5,000 images (w as in cfg.py:
# 1 is the conditional model, unguided; w > 1 guided; 0 unconditional), which comes back as
# fid_samples_w<w>_s<steps>.tgz.  Score it here (the GPU machine has no FID weights) by
# unpacking it into a folder F and running the same cfg.py command with --out F and without
# --no-metrics: the set is drawn already, so cfg.py only measures it.  Sampling 5,000 images
# there takes seconds; on 2 CPU cores, an hour.
#
#   OUT=/tmp/out MODEL=checkpoints/dit_landscapes.pt bash tools/gpu_eval.sh
set -u
: "${OUT:?set OUT to the folder for the results}"
MODEL=${MODEL:-checkpoints/dit_landscapes.pt}
SETTINGS=${SETTINGS:-"2:50 1.5:50 3:50 5:50 1:100"}      # w:steps
PY=${PY:-python3}
SCRATCH=${SCRATCH:-/tmp}        # the machine's scratch space for the sample sets
LOG="$OUT/eval.log"
for setting in $SETTINGS; do
    w=${setting%%:*}; steps=${setting##*:}
    run=$SCRATCH/eval_w${w}_s${steps}
    echo "== guidance w = $w, $steps DDIM steps ==" >> "$LOG"
    rm -rf "$run"                                  # no stale samples from an earlier call
    if $PY cfg.py --checkpoint "$MODEL" --w "$w" --steps "$steps" --n 5000 --batch-size 1000 \
        --no-metrics --check-w --redraw-w --device cuda --out "$run" >> "$LOG" 2>&1; then
        tar czf "$OUT/fid_samples_w${w}_s${steps}.tgz" -C "$run" samples
        echo "   packed after $SECONDS s" >> "$LOG"
    else
        echo "   FAILED (see above); nothing packed" >> "$LOG"
    fi
done
