# Session 10: a second draw of 5,000 unguided samples from the shipped model (leg 3's end), on
# 2 CPU cores, to see how much its FID moves between draws (the first draw, 9.99, is leg 3's own,
# drawn on the H100 with seed 2). Sampling took 3,650 s here, scoring about 10 minutes more.
python train_one_epoch.py --init-from checkpoints/dit_landscapes.pt --max-steps 0 --fid 5000 --guidance 0 \
    --batch-size 32 --no-samples --seed 100 --device cpu --out runs/draw2-cpu-leg3   # metrics_w0_n5000.json
