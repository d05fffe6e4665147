# DiT-Ti/2 + QK-norm at 24.4 M images, on 2 CPU cores: how much FID moves between two draws at
# N = 5,000, and guidance w = 1.5 against w = 1 (unguided) from the *same* noise.
# checkpoints/dit_landscapes.pt below is that model: git show 1865c25:checkpoints/dit_landscapes.pt
# The w = 1.5 set came from train_one_epoch.py's former --guidance flag (guided sampling now lives
# only in cfg.py); `git checkout e681cf7~1` runs that line as written.
#
# 1. A second unguided draw of 5,000 (the first is the training run's own, drawn on the GPU with seed 1):
python train_one_epoch.py --init-from checkpoints/dit_landscapes.pt --max-steps 0 --fid 5000 \
    --batch-size 32 --no-samples --seed 100 --device cpu --out runs/draw2-cpu          # metrics_w1_n5000.json
# 2. 2,000 guided samples with the same seed and batch size: the generator hands out x_T batch by
#    batch, so these 2,000 start from the same x_T (and labels, i % 10) as images 0-1999 of run 1;
#    DDIM with eta = 0 adds no other noise.
python train_one_epoch.py --init-from checkpoints/dit_landscapes.pt --max-steps 0 --fid 2000 --guidance 1.5 \
    --batch-size 32 --no-samples --seed 100 --device cpu --out runs/draw2-cpu-w1.5-n2000  # metrics_w1.5_n2000.json
# 3. Images 0-1999 of run 1 (file names are the image index), scored alone:
python - <<'PY'
from pathlib import Path
import shutil
src, dst = Path("runs/draw2-cpu/fid_samples"), Path("runs/draw2-cpu/first2000")
for f in src.glob("*/*.png"):
    if int(f.stem) < 2000:
        (dst / f.parent.name).mkdir(parents=True, exist_ok=True)
        shutil.copy(f, dst / f.parent.name / f.name)
PY
python fid.py runs/draw2-cpu/first2000 data/landscapes-32px-test-seed1-n5000        # fid_w1_n2000_first2000.txt
