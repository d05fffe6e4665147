# The six calls of tools/gpu_run.sh that trained the shipped model (DiT-Ti/2 + QK-norm, 35.9 M
# images) on lent H100s, in three stages of two calls; OUT is the folder the results come back to.
# Each stage's folder here holds what its calls brought back (metrics*.json, train_call*.log).
# to 12.5 M images: from scratch
OUT=… QK_NORM=1 GPU_TESTS=0 EAGER_CHECK=0 BUDGET_S=575 bash tools/gpu_run.sh
OUT=… QK_NORM=1 RESUME=1 GPU_TESTS=0 EXPORT_EVERY=1000 BUDGET_S=235 bash tools/gpu_run.sh
# 12.5 → 24.4 M: from that export, with a fresh AdamW
OUT=… QK_NORM=1 INIT=checkpoints/dit_landscapes.pt WARMUP=500 SEED=1 EAGER_CHECK=0 GUIDED=0 FALLBACK=0 \
    BUDGET_S=575 bash tools/gpu_run.sh
OUT=… QK_NORM=1 RESUME=1 INIT=checkpoints/dit_landscapes.pt WARMUP=500 SEED=1 GPU_TESTS=0 FALLBACK=0 \
    EXPORT_EVERY=1000 BUDGET_S=250 bash tools/gpu_run.sh
# 24.4 → 35.9 M: from that export, with a fresh AdamW; the second call ends in a cooldown (lr → 0)
OUT=… QK_NORM=1 INIT=checkpoints/dit_landscapes.pt WARMUP=500 SEED=2 EAGER_CHECK=0 GUIDED=0 FALLBACK=0 \
    BUDGET_S=575 bash tools/gpu_run.sh
OUT=… QK_NORM=1 INIT=checkpoints/dit_landscapes.pt WARMUP=500 SEED=2 EAGER_CHECK=0 GUIDED=0 FALLBACK=0 \
    RESUME=1 GPU_TESTS=0 COOLDOWN=2500 BUDGET_S=250 bash tools/gpu_run.sh
