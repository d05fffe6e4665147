# Session 8 note: written in session 7, when checkpoints/dit_landscapes.pt was session 7's model (git show a86cfb2:checkpoints/dit_landscapes.pt); renamed from the "shipped" names then.
# Session 7: guidance on the shipped model, checked on the 2-core CPU at small N (no GPU time left).
python train_one_epoch.py --init-from checkpoints/dit_landscapes.pt --max-steps 0 --fid 2000 --guidance 0 --no-samples --out runs/s7-cpu-n2000-w0      # 1,883 s by /usr/bin/time
python train_one_epoch.py --init-from checkpoints/dit_landscapes.pt --max-steps 0 --fid 1000 --guidance 0.5 --no-samples --out runs/s7-cpu-n1000-w0.5 # 1,811 s by /usr/bin/time
# Class-balanced subsets (the first k images of each class folder, as links), scored with fid.py:
subset() { src=$1; k=$2; dst=$3; for c in "$src"/*/; do n=$(basename "$c"); mkdir -p "$dst/$n"
  ls "$c" | sort | head -"$k" | while read f; do ln -s "$(realpath "$c/$f")" "$dst/$n/$f"; done; done; }
subset runs/s7-cpu-n2000-w0/fid_samples 100 runs/subset-cpu-w0-n1000
subset runs/qk-h100/call2/fid_samples 200 runs/subset-gpu-w0-n2000     # the GPU's 5,000 samples
python fid.py runs/subset-cpu-w0-n1000 data/landscapes-32px-test-seed1-n5000   # fid_w0_n1000_first100perclass.txt
python fid.py runs/subset-gpu-w0-n2000 data/landscapes-32px-test-seed1-n5000   # fid_gpu_samples_w0_n2000_first200perclass.txt
