#!/usr/bin/env bash
# The one command that trained the shipped model on a lent GPU (one call of at most 10 minutes,
# see README "The shipped model").  Run from the repository root with OUT set to a folder for
# what comes back; the training data must be in data/ (the machine has no diffusers and no FID
# weights, so FID is scored afterwards with fid.py on the samples this leaves in $OUT).
#
#   OUT=/tmp/out bash report/gpu_run.sh
#
# Budget: BUDGET_S seconds in all (default 555) for the GPU tests, a 20-second eager speed
# check, the compiled training run (its --max-minutes is what is left after ~60 s of sampling,
# FID samples and packing are set aside) and the packing.  If torch.compile fails, the same run
# goes on eager in the time that remains.
set -u
: "${OUT:?set OUT to the folder for the results}"
BUDGET_S=${BUDGET_S:-555}
PY=${PY:-python3}
LOG="$OUT/train.log"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader > "$LOG" 2>&1
$PY -c "import torch; print('torch', torch.__version__)" >> "$LOG" 2>&1

echo "== GPU tests ==" >> "$LOG"
$PY -m pytest -q -p no:cacheprovider tests/test_gpu.py >> "$LOG" 2>&1

COMMON=(--model DiT-Ti/2 --epochs 100000 --batch-size 1024 --lr 3e-4 --grad-clip 1.0)
echo "== eager speed check: batch 1024, 0.3 minutes ==" >> "$LOG"
$PY train_one_epoch.py "${COMMON[@]}" --max-minutes 0.3 --no-samples --out /tmp/eager >> "$LOG" 2>&1

# What is left of the budget after 60 s set aside for sampling and packing, at least 0.5 min.
minutes_left() { $PY -c "print(max(0.5, round(($BUDGET_S - $SECONDS - 60) / 60, 2)))"; }
RUN=(--ckpt-every 2000 --out /tmp/run --export /tmp/export/dit_landscapes.pt --export-every 3000 --fid 5000)
MINUTES=$(minutes_left)
echo "== training, torch.compile, --max-minutes $MINUTES ==" >> "$LOG"
$PY train_one_epoch.py "${COMMON[@]}" "${RUN[@]}" --compile --max-minutes "$MINUTES" >> "$LOG" 2>&1
if [ ! -f /tmp/export/dit_landscapes.pt ]; then        # compiling failed: no export was written
    MINUTES=$(minutes_left)
    echo "== the compiled run left no export: eager for the $MINUTES minutes left ==" >> "$LOG"
    rm -rf /tmp/run /tmp/export
    $PY train_one_epoch.py "${COMMON[@]}" "${RUN[@]}" --max-minutes "$MINUTES" >> "$LOG" 2>&1
fi

# What comes back (at most 8 files of 16 MiB): the export, the two latest snapshots, the
# samples for FID, the plots and the metrics.
cp /tmp/run/loss.png /tmp/run/samples.png /tmp/run/metrics.json /tmp/export/dit_landscapes.pt "$OUT"/
for f in $(ls -v /tmp/export/dit_landscapes-step*.pt | tail -n 2); do cp "$f" "$OUT"/; done
tar czf "$OUT/fid_samples.tgz" -C /tmp/run fid_samples
echo "== done after $SECONDS s ==" >> "$LOG"
ls -la "$OUT" >> "$LOG"
