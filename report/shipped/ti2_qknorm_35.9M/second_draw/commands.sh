# A second draw of 5,000 unguided samples from the shipped model (DiT-Ti/2 + QK-norm, 35.9 M
# images), on 2 CPU cores, to see how much its FID moves between draws (the first draw, 9.99, is
# the training run's own, drawn on the GPU with seed 2). Sampling took 3,650 s here, scoring about
# 10 minutes more. is the conditional model (unguided).
python train_one_epoch.py --init-from checkpoints/dit_landscapes.pt --max-steps 0 --fid 5000 \
    --batch-size 32 --no-samples --seed 100 --device cpu --out runs/draw2-cpu-35.9M   # metrics_w1_n5000.json
