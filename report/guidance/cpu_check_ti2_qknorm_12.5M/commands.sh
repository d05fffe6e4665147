# Guidance on DiT-Ti/2 + QK-norm at 12.5 M images, checked on 2 CPU cores at small N.
# checkpoints/dit_landscapes.pt below is that model: git show a86cfb2:checkpoints/dit_landscapes.pt
# The w = 1.5 set came from train_one_epoch.py's former --guidance flag (guided sampling now lives
# only in cfg.py); `git checkout e681cf7~1` runs that line as written.
python train_one_epoch.py --init-from checkpoints/dit_landscapes.pt --max-steps 0 --fid 2000 --no-samples --out runs/cpu-12.5M-n2000-w1      # 1,883 s by /usr/bin/time
python train_one_epoch.py --init-from checkpoints/dit_landscapes.pt --max-steps 0 --fid 1000 --guidance 1.5 --no-samples --out runs/cpu-12.5M-n1000-w1.5 # 1,811 s by /usr/bin/time
# Class-balanced subsets (the first k images of each class folder, as links), scored with fid.py:
subset() { src=$1; k=$2; dst=$3; for c in "$src"/*/; do n=$(basename "$c"); mkdir -p "$dst/$n"
  ls "$c" | sort | head -"$k" | while read f; do ln -s "$(realpath "$c/$f")" "$dst/$n/$f"; done; done; }
subset runs/cpu-12.5M-n2000-w1/fid_samples 100 runs/subset-cpu-w1-n1000
subset runs/qk-h100/call2/fid_samples 200 runs/subset-gpu-w1-n2000     # the GPU's 5,000 samples of this model
python fid.py runs/subset-cpu-w1-n1000 data/landscapes-32px-test-seed1-n5000   # fid_w1_n1000_first100perclass.txt
python fid.py runs/subset-gpu-w1-n2000 data/landscapes-32px-test-seed1-n5000   # fid_gpu_samples_w1_n2000_first200perclass.txt
