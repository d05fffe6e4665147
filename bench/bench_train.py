"""Benchmark: training steps of our DiT against diffusers' DiTTransformer2DModel, same config.

    python bench/bench_train.py                      # patch 2, 4, 8; fp32 and bf16; ~5 min on 2 cores
    python bench/bench_train.py --patch 2 --compile  # add torch.compile for our model
    python bench/bench_train.py --patch 4 --accuracy-steps 400   # bf16 and fp32 reach the same loss?
    python bench/bench_train.py --patch 2 --precision bf16 --compile --profile   # where a step's time goes

Both models are built with the same shape (pixel space, 32 px, 3 channels, hidden 256, depth 6,
4 heads, batch 64) and trained with the same step: L_simple under autocast, backward, fused
AdamW.  For each (patch, precision) it prints images/s, the ratio ours / diffusers and the
achieved GFLOP/s against the matrix-multiply peak, which it measures first in the same run
(a 2048³ product; the project's reference notes quote about 190 GFLOP/s fp32 and 900 bf16, but this 2-core
AMD EPYC reaches about 400 in bf16: its AVX-512-BF16 units run at twice fp32, not four times).
A training step costs ≈ 3 forward passes (forward, and a backward that computes gradients for
both activations and weights); "GFLOP/s" counts 2 FLOPs per multiply-add, the hardware
convention, unlike the paper's GFLOPs.  Both models run with the settings of machine.tune_cpu,
as the trainer does; --default-allocator times them without.

Ratios are what to compare: both models run in the same process on the same machine state.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
import torch.nn as nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))     # the repository's modules
import torch.nn.functional as F

from dit import autocast, build_dit, forward_gflops
from machine import describe_machine, tune_cpu
from forward_process import add_noise, alpha_bar_from_betas, make_betas


def training_loss(model: nn.Module, x0: torch.Tensor, y: torch.Tensor, alpha_bar: torch.Tensor) -> torch.Tensor:
    """The trainer's objective, the paper's recipe (DDPM's L_simple; train_one_epoch.training_loss
    adds only its bookkeeping): t ~ U{0 … T−1}, ε ~ N(0, I), ‖ε − ε̂(x_t, t, y)‖²."""
    t = torch.randint(0, alpha_bar.shape[0], (x0.shape[0],))
    eps = torch.randn_like(x0)
    return F.mse_loss(model(add_noise(x0, t, eps, alpha_bar), t, y).float(), eps)


def matmul_peak(dtype: torch.dtype, n: int = 2048, repeats: int = 10) -> float:
    """GFLOP/s of the best of `repeats` n × n × n matrix products: the roofline for the rest."""
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    for _ in range(3):                                    # warm-up: kernel choice, thread pool
        a @ b
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best / 1e9


class DiffusersDiT(nn.Module):
    """diffusers' DiT behind our forward(x_t, t, y) signature."""

    def __init__(self, patch: int, image_size: int, num_classes: int):
        super().__init__()
        from diffusers import DiTTransformer2DModel

        self.net = DiTTransformer2DModel(
            num_attention_heads=4, attention_head_dim=64, in_channels=3, out_channels=3,
            num_layers=6, sample_size=image_size, patch_size=patch, num_embeds_ada_norm=num_classes)

    def forward(self, x_t, t, y):
        return self.net(x_t, timestep=t, class_labels=y).sample


def time_steps(model: nn.Module, precision: str, batch: int, image_size: int, steps: int,
               warmup: int, profiler=None) -> float:
    """Images/s of full training steps (forward, backward, AdamW) after `warmup` steps; with a
    torch.profiler.profile, the timed steps run under it (slower, but where the time goes)."""
    g = torch.Generator().manual_seed(0)
    x0 = torch.rand(batch, 3, image_size, image_size, generator=g) * 2 - 1
    y = torch.randint(0, 10, (batch,), generator=g)
    alpha_bar = alpha_bar_from_betas(make_betas("linear", 1000))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.0, fused=True)
    device = torch.device("cpu")
    model.train()
    for i in range(warmup + steps):
        if i == warmup:
            if profiler is not None:
                profiler.start()
            start = time.perf_counter()
        with autocast(device, precision):
            loss = training_loss(model, x0, y, alpha_bar)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    elapsed = time.perf_counter() - start
    if profiler is not None:
        profiler.stop()
    return batch * steps / elapsed


def accuracy(args: argparse.Namespace) -> None:
    """Does bf16 autocast train as well as fp32?  The same model, data, t and ε for both; the
    loss curves must agree within noise (the noise is what two fp32 seeds differ by)."""
    import landscapes

    data = landscapes.load_images(landscapes.resolve_data(None, "train", args.image_size), args.image_size)
    alpha_bar = alpha_bar_from_betas(make_betas("linear", 1000))
    patch = args.patch[0]
    print(f"accuracy: DiT-Ti/{patch}, {args.accuracy_steps} steps, batch {args.batch_size}, lr 3e-4; "
          f"mean loss over the last half")
    for precision, seed in (("fp32", 0), ("bf16", 0), ("fp32", 1)):
        torch.manual_seed(0)                           # the same initial weights
        model = build_dit("DiT-Ti/2", patch_size=patch, input_size=args.image_size, in_channels=3,
                          num_classes=len(data.class_names))
        opt = torch.optim.AdamW(model.parameters(), lr=3e-4, weight_decay=0.0, fused=True)
        torch.manual_seed(seed)                        # data order, t and ε
        losses = []
        for _ in range(args.accuracy_steps):
            idx = torch.randint(0, len(data.images), (args.batch_size,))
            x0 = landscapes.to_float(data.images[idx])
            with autocast(torch.device("cpu"), precision):
                loss = training_loss(model, x0, data.labels[idx], alpha_bar)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(loss.item())
        half = losses[len(losses) // 2:]
        print(f"  {precision} (data seed {seed}): {sum(half) / len(half):.4f}", flush=True)


# The matrix products of a step: the linear layers (mm, addmm) and attention's two products (bmm).
MATMUL_OPS = ("aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm")


def profile(args: argparse.Namespace) -> None:
    """Where a step's time goes, and what the matrix products alone would allow.

    For each (patch, precision): diffusers' images/s and ours (compiled with --compile), then
    torch.profiler's table of our timed steps (a freshly compiled copy, with inductor's fused
    kernels named).  No rewrite of the rest (element-wise work, casts, the optimizer) removes the
    step's matrix products, so the images/s they alone would give, at the speed oneDNN runs them
    in this step, bounds what such a rewrite can reach.
    """
    from torch.profiler import profile as torch_profile

    def ours(patch: int, kernel_names: bool) -> nn.Module:
        torch.manual_seed(0)
        model = build_dit("DiT-Ti/2", patch_size=patch, input_size=args.image_size, in_channels=3,
                          num_classes=10)
        if not args.compile:
            return model
        import torch._inductor.config as inductor_config

        # One profiler row per fused kernel (a hook around each): for the profiled model only.
        inductor_config.cpp.enable_kernel_profile = kernel_names
        torch._dynamo.reset()                               # compile afresh with this setting
        return torch.compile(model)

    for patch in args.patch:
        for precision in args.precision:
            peer = time_steps(DiffusersDiT(patch, args.image_size, 10), precision, args.batch_size,
                              args.image_size, args.steps, args.warmup)
            name = "ours + compile" if args.compile else "ours"
            ips = time_steps(ours(patch, kernel_names=False), precision, args.batch_size,
                             args.image_size, args.steps, args.warmup)
            prof = torch_profile()                  # started and stopped around the timed steps
            profiled_ips = time_steps(ours(patch, kernel_names=True), precision, args.batch_size,
                                      args.image_size, args.steps, args.warmup, profiler=prof)
            events = prof.key_averages()
            total_s = sum(e.self_cpu_time_total for e in events) / 1e6 / args.steps      # per step
            matmul_s = sum(e.self_cpu_time_total for e in events if e.key in MATMUL_OPS) / 1e6 / args.steps
            ceiling = args.batch_size / matmul_s
            print(f"\npatch {patch}, {precision}, batch {args.batch_size}: diffusers {peer:.1f} images/s, "
                  f"{name} {ips:.1f} ({ips / peer:.2f}x)")
            print(f"{name} under the profiler ({profiled_ips:.1f} images/s), per step: matrix products "
                  f"{matmul_s:.3g} s of {total_s:.3g} s ({100 * matmul_s / total_s:.0f}%), the rest "
                  f"{total_s - matmul_s:.3g} s")
            print(f"ceiling: the matrix products alone allow {ceiling:.1f} images/s = "
                  f"{ceiling / peer:.2f}x diffusers, if everything else took no time")
            print(events.table(sort_by="self_cpu_time_total", row_limit=20), flush=True)


def main(args: argparse.Namespace) -> None:
    if args.accuracy_steps:
        return accuracy(args)
    if not args.default_allocator:
        tune_cpu(torch.device("cpu"))
    if args.profile:
        return profile(args)
    peak = {p: matmul_peak(torch.float32 if p == "fp32" else torch.bfloat16) for p in args.precision}
    print("matrix-multiply peak, measured now: " + ", ".join(f"{p} {g:.0f} GFLOP/s" for p, g in peak.items()))
    torch.manual_seed(0)
    print(f"batch {args.batch_size}, {args.image_size} px, hidden 256, depth 6, 4 heads; "
          f"{describe_machine(torch.device('cpu'))}; {args.steps} timed steps after {args.warmup} warm-up")
    header = f"{'patch':>5} {'precision':>9} {'model':>16} {'img/s':>8} {'ratio':>6} {'GFLOP/s':>8} {'% peak':>7}"
    print(header + "\n" + "-" * len(header))
    for patch in args.patch:
        ours = build_dit("DiT-Ti/2", patch_size=patch, input_size=args.image_size, in_channels=3,
                         num_classes=10)
        # Hardware FLOPs per training step per image: 3 forward passes, 2 FLOPs per multiply-add.
        train_flops = 3 * 2 * forward_gflops(ours)
        for precision in args.precision:
            peer = DiffusersDiT(patch, args.image_size, 10)
            contenders = [("diffusers", peer), ("ours", ours)]
            if args.compile:
                contenders.append(("ours + compile", torch.compile(ours)))
            if args.max_autotune:
                # Inductor also tries its own C++ GEMM templates against oneDNN's and keeps the
                # faster one per matrix shape (minutes of compiling on 2 cores).
                contenders.append(("ours + autotune", torch.compile(ours, mode="max-autotune")))
            base = None
            for name, model in contenders:
                ips = time_steps(model, precision, args.batch_size, args.image_size, args.steps, args.warmup)
                base = base or ips
                achieved = ips * train_flops
                print(f"{patch:>5} {precision:>9} {name:>16} {ips:>8.1f} {ips / base:>6.2f} "
                      f"{achieved:>8.0f} {100 * achieved / peak[precision]:>6.0f}%", flush=True)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description="Training-step speed: our DiT vs diffusers' DiT.")
    ap.add_argument("--patch", type=int, nargs="+", default=[2, 4, 8], help="patch sizes to time")
    ap.add_argument("--precision", nargs="+", default=["fp32", "bf16"], choices=["fp32", "bf16"])
    ap.add_argument("--batch-size", type=int, default=64, help="images per step (issue: 64)")
    ap.add_argument("--image-size", type=int, default=32, help="pixels")
    ap.add_argument("--steps", type=int, default=4, help="timed steps per measurement")
    ap.add_argument("--warmup", type=int, default=2, help="untimed steps first (allocator, caches)")
    ap.add_argument("--compile", action="store_true", help="also time torch.compile(ours)")
    ap.add_argument("--max-autotune", action="store_true",
                    help="also time torch.compile(ours, mode='max-autotune')")
    ap.add_argument("--profile", action="store_true",
                    help="instead of the table, profile our steps (compiled with --compile): where the time "
                         "goes, and the images/s the matrix products alone would allow")
    ap.add_argument("--default-allocator", action="store_true",
                    help="leave the CPU settings of machine.tune_cpu off (glibc's malloc, the attention kernel)")
    ap.add_argument("--accuracy-steps", type=int, default=0,
                    help="instead of timing, train this many steps in fp32 and bf16 and compare losses")
    main(ap.parse_args())
