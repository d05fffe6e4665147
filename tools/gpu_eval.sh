#!/usr/bin/env bash
# FID samples for a trained model on a lent GPU, for a sweep of guidance weights w and DDIM
# step counts: each setting is `train_one_epoch.py --init-from MODEL --max-steps 0 --fid 5000`
# (evaluation only; the model's shape and options come from MODEL), and its 5,000 samples come
# back as fid_samples_w<w>_s<steps>.tgz, to be scored with `python fid.py <folder>
# data/landscapes-32px-test-seed1-n5000` (the GPU machine has no FID weights).  Sampling 5,000
# images there takes seconds; on 2 CPU cores, an hour.  w as in cfg.py: 1 is the conditional
# model, unguided; w > 1 guided; 0 unconditional.
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
    if $PY train_one_epoch.py --init-from "$MODEL" --max-steps 0 --fid 5000 \
        --guidance "$w" --sample-steps "$steps" --batch-size 1000 --no-samples --out "$run" >> "$LOG" 2>&1; then
        tar czf "$OUT/fid_samples_w${w}_s${steps}.tgz" -C "$run" fid_samples
        echo "   packed after $SECONDS s" >> "$LOG"
    else
        echo "   FAILED (see above); nothing packed" >> "$LOG"
    fi
done
