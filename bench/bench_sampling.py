"""Benchmark: guided DDIM sampling with our DiT against diffusers' DiTTransformer2DModel of the same
shape, in one run, and both against the matrix-multiply rate at the model's own shapes.

    python bench/bench_sampling.py                 # fp32, and bf16 where the CPU has bf16 units
    python bench/bench_sampling.py --steps 5 --batch 50 --rounds 5
    python bench/bench_sampling.py --precision fp32 bf16     # bf16 even without bf16 units

The shape is the shipped model's: pixel space, 32 px, 3 channels, width 256, depth 6, 4 heads,
patch 2 (256 tokens), 10 classes; ours with QK-norm on, as shipped (diffusers' DiT has none, so
the peer does less work; the row "ours, no QK-norm" does exactly the peer's work).  Every step
is guided (w = 4): each step runs the doubled batch [x_t, x_t] with labels [y, ∅] and mixes the
two halves as cfg.py does; all models go through the same sampler (dit.ddim_sample) and
inference mode.  It prints image-steps/s (one image advanced one DDIM step), the ratios ours /
diffusers, and the share of the matmul rate: the FLOPs a step must do (2 per multiply-add) over
the GFLOP/s that the model's own Linear shapes reach through F.linear, timed alone in the same
run.  Attention is timed alone too: by F.scaled_dot_product_attention, and as its two batched
products alone (Q Kᵀ and A V, no softmax).  A ceiling closes the table: the step with every
pass but the matrix products free.

The machines these run on are shared VMs whose speed drifts by tens of per cent over minutes,
so one model timed after another compares two moments as much as two models.  The script
therefore times in many short rounds (--rounds, default 9, of --steps 2 each): each round runs
the matmul and attention timings and then every model once, in turn, the order reversed every
other round so that no model always runs first; the table gives the median over rounds.  A
model's ratio is the median of its per-round ratios (ours and diffusers timed seconds apart in
the same round), and the last column lists those per-round ratios, so their spread is the
error bar.  Warm-up (and compilation) happens once, before the first round.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))     # the repository's modules
import torch.nn.functional as F

from bench_train import DiffusersDiT                             # the same peer as the training bench
from dit import autocast, build_dit, ddim_sample, forward_gflops
from machine import bf16_is_fast, describe_machine, tune_cpu
from forward_process import alpha_bar_from_betas, make_betas

D, DEPTH, HEADS, TOKENS = 256, 6, 4, 256


def guided(model, y: torch.Tensor, w: float):
    """ε̃ = ε̂_∅ + w·(ε̂_y − ε̂_∅) from one pass over the doubled batch (cfg.guided_eps_fn's work;
    the label 10 is ∅ for both models)."""
    def eps_fn(x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        out = model(torch.cat([x_t, x_t]), torch.cat([t, t]), torch.cat([y, torch.full_like(y, 10)]))
        eps_y, eps_null = out[:, :3].float().chunk(2)
        return eps_null + w * (eps_y - eps_null)
    return eps_fn


@torch.inference_mode()
def image_steps_per_s(model, batch: int, steps: int, precision: str) -> float:
    """Guided DDIM steps (w = 4) on `batch` images: (batch · steps) / seconds."""
    g = torch.Generator().manual_seed(0)
    x_T = torch.randn(batch, 3, 32, 32, generator=g)
    y = torch.arange(batch) % 10
    alpha_bar = alpha_bar_from_betas(make_betas("linear", 1000))
    eps_fn = guided(model, y, 4.0)
    device = torch.device("cpu")
    with autocast(device, precision):
        start = time.perf_counter()
        for _ in ddim_sample(eps_fn, x_T, alpha_bar, steps):
            pass
    return batch * steps / (time.perf_counter() - start)


@torch.inference_mode()
def linear_rate(batch: int, precision: str, repeats: int = 5) -> float:
    """GFLOP/s of one block's four Linear layers at the doubled batch's shape, M = 2·batch·T rows:
    qkv (D → 3D), proj (D → D), MLP fc1 (D → 4D) and fc2 (4D → D), timed alone through F.linear."""
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    M = 2 * batch * TOKENS
    layers = [(torch.randn(M, i, dtype=dtype), torch.randn(o, i, dtype=dtype), torch.randn(o, dtype=dtype))
              for i, o in ((D, 3 * D), (D, D), (D, 4 * D), (4 * D, D))]
    flops = sum(2 * M * w.shape[0] * w.shape[1] for _, w, _ in layers)
    best = float("inf")
    for _ in range(repeats + 1):
        start = time.perf_counter()
        for x, w, b in layers:
            F.linear(x, w, b)
        best = min(best, time.perf_counter() - start)
    return flops / best / 1e9


@torch.inference_mode()
def attention_rates(batch: int, precision: str, repeats: int = 5) -> dict[str, float]:
    """GFLOP/s of one block's attention at the doubled batch, on q, k, v laid out as the model
    lays them out (views of one (2·batch, T, 3, h, d_h) tensor): by the fused kernel, and its two
    products alone (Q Kᵀ, then A V with a ready A: the softmax left out)."""
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    qkv = torch.randn(2 * batch, TOKENS, 3, HEADS, D // HEADS, dtype=dtype)
    q, k, v = qkv.permute(2, 0, 3, 1, 4)                                   # 3 × (2·batch, h, T, d_h)
    a = (q @ k.transpose(-2, -1)).softmax(dim=-1)                          # (2·batch, h, T, T)
    kernels = {"SDPA": lambda: F.scaled_dot_product_attention(q, k, v),
               "products": lambda: (q @ k.transpose(-2, -1), a @ v)}
    rates = {}
    for name, kernel in kernels.items():
        best = float("inf")
        for _ in range(repeats + 1):
            start = time.perf_counter()
            kernel()
            best = min(best, time.perf_counter() - start)
        rates[name] = attention_flops(2 * batch) / best / 1e9
    return rates


def attention_flops(batch: int) -> int:
    """FLOPs of one block's Q Kᵀ and A V: 2 products × 2 FLOPs × T² · D multiply-adds per image."""
    return batch * 2 * 2 * TOKENS ** 2 * D


def main(args: argparse.Namespace) -> None:
    tune_cpu(torch.device("cpu"))                   # as the sampling scripts run
    torch.manual_seed(0)
    ours = build_dit("DiT-Ti/2", input_size=32, in_channels=3, num_classes=10, qk_norm=True).eval()
    ours_plain = build_dit("DiT-Ti/2", input_size=32, in_channels=3, num_classes=10, qk_norm=False).eval()
    peer = DiffusersDiT(2, 32, 10).eval()
    gflop_per_image_step = 2 * 2 * forward_gflops(ours)          # 2 passes (guided), 2 FLOPs per MAC
    precisions = args.precision or ["fp32"] + (["bf16"] if bf16_is_fast(torch.device("cpu")) else [])
    print(f"guided DDIM sampling, batch {args.batch} (forward batch {2 * args.batch}), {args.steps} steps "
          f"× {args.rounds} rounds, DiT-Ti/2 shape at 32 px; {describe_machine(torch.device('cpu'))}; "
          f"{gflop_per_image_step:.2f} GFLOP per image-step")
    print(f"{'precision':<9} {'model':<26} {'image-steps/s':>13} {'vs diffusers':>12} {'GFLOP/s':>8} {'of matmul':>9}"
          f"  per round vs diffusers")
    for precision in precisions:
        runs = [("diffusers (eager)", peer), ("ours (eager)", ours), ("ours, no QK-norm (eager)", ours_plain)]
        if not args.no_compile:
            runs += [("ours (torch.compile)", torch.compile(ours))]
        for name, model in runs:                  # warm-up (and compilation): two steps, untimed
            image_steps_per_s(model, args.batch, 2, precision)
        # Rounds: in each, the kernels alone, then every model once, in turn (in reverse order
        # every other round); medians over rounds.
        per_round = {name: [] for name, _ in runs}
        rates_mm, rates_attn = [], {}
        for round_ in range(args.rounds):
            rates_mm.append(linear_rate(args.batch, precision))
            for kernel, rate in attention_rates(args.batch, precision).items():
                rates_attn.setdefault(kernel, []).append(rate)
            for name, model in runs if round_ % 2 == 0 else runs[::-1]:
                per_round[name].append(image_steps_per_s(model, args.batch, args.steps, precision))
        rate_mm = statistics.median(rates_mm)
        rates_attn = {kernel: statistics.median(r) for kernel, r in rates_attn.items()}
        peer_rounds = per_round["diffusers (eager)"]
        for name, rounds in per_round.items():
            r = statistics.median(rounds)
            ratios = [a / b for a, b in zip(rounds, peer_rounds)]     # ours and the peer, same round
            achieved = r * gflop_per_image_step
            print(f"{precision:<9} {name:<26} {r:>13.2f} {statistics.median(ratios):>11.3f}x "
                  f"{achieved:>8.1f} {achieved / rate_mm:>8.1%}  {' '.join(f'{x:.3f}' for x in ratios)}")
        print(f"{precision:<9} {'matmul, F.linear':<26} {'':>13} {'':>12} {rate_mm:>8.1f} {1:>8.1%}")
        for kernel, rate in rates_attn.items():
            name = f"attention, {kernel}"
            print(f"{precision:<9} {name:<26} {'':>13} {'':>12} {rate:>8.1f} {rate / rate_mm:>8.1%}")
        # The ceiling, every pass but the matrix products free: the Linears at the F.linear rate,
        # attention at the faster of its products and its fused kernel.  Against the peer's rate.
        peer_rate = statistics.median(peer_rounds)
        attn_gflop = 2 * DEPTH * attention_flops(1) / 1e9               # per image-step (2 passes)
        seconds = (gflop_per_image_step - attn_gflop) / rate_mm + attn_gflop / max(rates_attn.values())
        print(f"{precision:<9} {'ceiling: products only':<26} {1 / seconds:>13.2f} {1 / seconds / peer_rate:>11.3f}x "
              f"{gflop_per_image_step / seconds:>8.1f} {gflop_per_image_step / seconds / rate_mm:>8.1%}")


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description="Guided DDIM sampling: ours against diffusers' DiT, same shape.",
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--batch", type=int, default=100, help="images per batch (the forward pass sees twice this)")
    ap.add_argument("--steps", type=int, default=2, help="timed DDIM steps per model and round")
    ap.add_argument("--rounds", type=int, default=9,
                    help="rounds, each timing every model once in turn; the table gives medians over rounds")
    ap.add_argument("--precision", nargs="+", choices=["fp32", "bf16"],
                    help="precisions to time (default: fp32, and bf16 where the CPU has bf16 units; "
                         "bf16 on a CPU without them shows what emulated bf16 costs)")
    ap.add_argument("--no-compile", action="store_true", help="skip the torch.compile row")
    args = ap.parse_args(argv)
    if args.batch < 1 or args.steps < 1 or args.rounds < 1:
        ap.error("--batch, --steps and --rounds must be at least 1")
    return args


if __name__ == "__main__":
    main(parse_args())
