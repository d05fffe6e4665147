"""Benchmark: guided DDIM sampling with our DiT against diffusers' DiTTransformer2DModel of the same
shape, in one run, and both against the matrix-multiply rate at the model's own shapes.

    python bench/bench_sampling.py                 # fp32, and bf16 where the CPU has bf16 units
    python bench/bench_sampling.py --steps 5 --batch 50 --rounds 5
    python bench/bench_sampling.py --precision fp32 bf16     # bf16 even without bf16 units

The shape is the shipped model's: pixel space, 32 px, 3 channels, width 256, depth 6, 4 heads,
patch 2 (256 tokens), 10 classes; ours with QK-norm on, as shipped (diffusers' DiT has none, so
the peer does less work; the row "ours, no QK-norm" does exactly the peer's work).  Every step
is guided (w = 4), so each step runs the doubled batch [x_t, x_t] with labels [y, ∅] through
cfg.guided_eps_fn; all models go through the same function, the same sampler (dit.ddim_sample)
and inference mode.  It prints image-steps/s (one image advanced one DDIM step), the ratios
ours / diffusers, and the share of the matmul rate: the FLOPs a step must do (2 per
multiply-add) over the GFLOP/s that the model's own Linear shapes reach when timed alone in the
same run.  PyTorch has two CPU backends for them, MKL (F.linear in fp32) and oneDNN (F.linear
in bf16, and our dit.Linear in inference); both are timed and the faster is the reference rate.
The row "ours, F.linear" runs our model with every Linear on F.linear, to show what the backend
buys and what the rest of the code does.  Attention is timed alone: by dit.attend, by the two
kernels it chooses between (PyTorch's fused scaled_dot_product_attention, and the written-out
softmax(Q Kᵀ/√d_h) V), and as its two batched products alone (Q Kᵀ and A V, no softmax).
The MLP's GELU is timed both ways a compiled dit.Mlp can apply it: inside fc1's oneDNN kernel
(fc1 with and without it) and as torch.compile's own pass over fc1's output.  Two
ceilings close the table, steps in which every pass but the matrix products is free: in
"ceiling: products only" the Linears run at the reference rate and attention's products at
theirs (or at its kernel's, if that is faster); in "ceiling: with softmax" attention runs at
dit.attend's rate, softmax included.

The machines these run on are shared VMs whose speed drifts by tens of per cent over minutes,
so one model timed after another compares two moments as much as two models.  The script
therefore times in many short rounds (--rounds, default 9, of --steps 2 each): each round runs
the matmul and attention timings and then every model once, in turn, the order reversed every
other round so that no model always runs first; the table gives the median over rounds.  A
model's ratio is the median of its per-round ratios (ours and diffusers timed seconds apart in
the same round), and the last column lists those per-round ratios, so their spread is the
error bar.  Warm-up (and compilation) happens once, before the first round.

Targets: ours ≥ diffusers eager, ≥ 1.2× diffusers compiled, at ≥ 70% of the matmul rate.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))     # the repository's modules
from bench_train import DiffusersDiT                             # the same peer as the training bench
from cfg import guided_eps_fn
import dit
from dit import (attend, attention_logits, attention_written_out, autocast, bf16_is_fast, build_dit, ddim_sample,
                 describe_machine, forward_gflops, keep_freed_memory, onednn_linear)
from forward_process import alpha_bar_from_betas, make_betas

D, DEPTH, HEADS, TOKENS = 256, 6, 4, 256


class Peer(DiffusersDiT):
    """diffusers' DiT with what cfg.guided_eps_fn asks of a model (ε̂ = all 3 channels, 10 classes, ∅ = 10)."""
    eps_channels, num_classes, null_label, learnt_null = 3, 10, 10, True


@torch.inference_mode()
def image_steps_per_s(model, batch: int, steps: int, precision: str) -> float:
    """Guided DDIM steps (w = 4) on `batch` images: (batch · steps) / seconds."""
    g = torch.Generator().manual_seed(0)
    x_T = torch.randn(batch, 3, 32, 32, generator=g)
    y = torch.arange(batch) % 10
    alpha_bar = alpha_bar_from_betas(make_betas("linear", 1000))
    eps_fn = guided_eps_fn(model, y, 4.0)
    device = torch.device("cpu")
    with autocast(device, precision):
        start = time.perf_counter()
        for _ in ddim_sample(eps_fn, x_T, alpha_bar, steps):
            pass
    return batch * steps / (time.perf_counter() - start)


@torch.inference_mode()
def linear_rates(batch: int, precision: str, repeats: int = 5) -> dict[str, float]:
    """GFLOP/s of one block's four Linear layers at the doubled batch's shape, M = 2·batch·T rows:
    qkv (D → 3D), proj (D → D), MLP fc1 (D → 4D) and fc2 (4D → D), timed alone, through
    F.linear and through oneDNN (dit.onednn_linear)."""
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    M = 2 * batch * TOKENS
    layers = [(torch.randn(M, i, dtype=dtype), torch.randn(o, i, dtype=dtype), torch.randn(o, dtype=dtype))
              for i, o in ((D, 3 * D), (D, D), (D, 4 * D), (4 * D, D))]
    flops = sum(2 * M * w.shape[0] * w.shape[1] for _, w, _ in layers)
    backends = {"F.linear": torch.nn.functional.linear}
    if torch.backends.mkldnn.is_available():
        backends["oneDNN"] = lambda x, w, b: onednn_linear(x, w, b, False)
    rates = {}
    for name, linear in backends.items():
        best = float("inf")
        for _ in range(repeats + 1):
            start = time.perf_counter()
            for x, w, b in layers:
                linear(x, w, b)
            best = min(best, time.perf_counter() - start)
        rates[name] = flops / best / 1e9
    return rates


@torch.inference_mode()
def attention_rates(batch: int, precision: str, repeats: int = 5) -> dict[str, float]:
    """GFLOP/s of one block's attention at the doubled batch, on q, k, v laid out as the model
    lays them out (views of one (2·batch, T, 3, h, d_h) tensor): by the kernel dit.attend picks,
    by each of the two it picks between (fused, written out), and its two products alone
    (Q Kᵀ, then A V with a ready A: the softmax left out)."""
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    qkv = torch.randn(2 * batch, TOKENS, 3, HEADS, D // HEADS, dtype=dtype)
    q, k, v = qkv.permute(2, 0, 3, 1, 4)                                   # 3 × (2·batch, h, T, d_h)
    a = attention_logits(q, k).softmax(dim=-1)                             # (2·batch, h, T, T)
    kernels = {"dit.attend": lambda: attend(q, k, v),
               "SDPA": lambda: torch.nn.functional.scaled_dot_product_attention(q, k, v),
               "written out": lambda: attention_written_out(q, k, v),
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


@torch.inference_mode()
def gelu_times(batch: int, precision: str, compiled_gelu, repeats: int = 5) -> dict[str, float]:
    """Milliseconds of one block's fc1 (D → 4D) at the doubled batch through oneDNN, alone and
    with oneDNN's GELU inside its kernel, and of torch.compile's GELU pass over fc1's output: the
    two ways dit.Mlp can apply GELU in compiled inference (dit._ONEDNN_GELU_IS_CHEAP picks)."""
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    x, w, b = (torch.randn(2 * batch * TOKENS, D, dtype=dtype), torch.randn(4 * D, D, dtype=dtype),
               torch.randn(4 * D, dtype=dtype))
    h = onednn_linear(x, w, b, False)
    kernels = {"fc1 alone": lambda: onednn_linear(x, w, b, False),
               "fc1 with oneDNN's GELU": lambda: onednn_linear(x, w, b, True)}
    if compiled_gelu is not None:
        kernels["torch.compile's GELU pass"] = lambda: compiled_gelu(h)
    times = {}
    for name, kernel in kernels.items():
        best = float("inf")
        for _ in range(repeats + 1):
            start = time.perf_counter()
            kernel()
            best = min(best, time.perf_counter() - start)
        times[name] = best * 1e3
    return times


def attention_flops(batch: int) -> int:
    """FLOPs of one block's Q Kᵀ and A V: 2 products × 2 FLOPs × T² · D multiply-adds per image."""
    return batch * 2 * 2 * TOKENS ** 2 * D


class FLinearOnly:
    """Within it, every dit.Linear runs F.linear (MKL for fp32 on a CPU), as nn.Linear would."""

    def __enter__(self):
        self.saved = dit.Linear.runs_on_onednn
        dit.Linear.runs_on_onednn = lambda layer, x: False

    def __exit__(self, *exc):
        dit.Linear.runs_on_onednn = self.saved


def main(args: argparse.Namespace) -> None:
    keep_freed_memory()
    torch.manual_seed(0)
    ours = build_dit("DiT-Ti/2", input_size=32, in_channels=3, num_classes=10, qk_norm=True).eval()
    ours_plain = build_dit("DiT-Ti/2", input_size=32, in_channels=3, num_classes=10, qk_norm=False).eval()
    peer = Peer(2, 32, 10).eval()
    gflop_per_image_step = 2 * 2 * forward_gflops(ours)          # 2 passes (guided), 2 FLOPs per MAC
    precisions = args.precision or ["fp32"] + (["bf16"] if bf16_is_fast(torch.device("cpu")) else [])
    print(f"guided DDIM sampling, batch {args.batch} (forward batch {2 * args.batch}), {args.steps} steps "
          f"× {args.rounds} rounds, DiT-Ti/2 shape at 32 px; {describe_machine(torch.device('cpu'))}; "
          f"{gflop_per_image_step:.2f} GFLOP per image-step")
    print(f"{'precision':<9} {'model':<26} {'image-steps/s':>13} {'vs diffusers':>12} {'GFLOP/s':>8} {'of matmul':>9}"
          f"  per round vs diffusers")
    for precision in precisions:
        runs = [("diffusers (eager)", peer), ("ours (eager)", ours), ("ours, no QK-norm (eager)", ours_plain),
                ("ours, F.linear (eager)", ours)]
        compiled_gelu = None
        if not args.no_compile:
            runs += [("ours (torch.compile)", torch.compile(ours))]
            compiled_gelu = torch.compile(dit.gelu_tanh_as_sigmoid)

        def timed(name, model, steps=args.steps):
            with FLinearOnly() if "F.linear" in name else contextlib.nullcontext():
                return image_steps_per_s(model, args.batch, steps, precision)

        for name, model in runs:                  # warm-up (and compilation): two steps, untimed
            timed(name, model, steps=2)
        # Rounds: in each, the kernels alone, then every model once, in turn (in reverse order
        # every other round); medians over rounds.
        per_round = {name: [] for name, _ in runs}
        rates_mm, rates_attn, ms_gelu = {}, {}, {}
        for round_ in range(args.rounds):
            for backend, rate in linear_rates(args.batch, precision).items():
                rates_mm.setdefault(backend, []).append(rate)
            for kernel, rate in attention_rates(args.batch, precision).items():
                rates_attn.setdefault(kernel, []).append(rate)
            if torch.backends.mkldnn.is_available():
                for kernel, ms in gelu_times(args.batch, precision, compiled_gelu).items():
                    ms_gelu.setdefault(kernel, []).append(ms)
            for name, model in runs if round_ % 2 == 0 else runs[::-1]:
                per_round[name].append(timed(name, model))
        rates_mm = {backend: statistics.median(r) for backend, r in rates_mm.items()}
        rates_attn = {kernel: statistics.median(r) for kernel, r in rates_attn.items()}
        rate_mm = max(rates_mm.values())
        peer_rounds = per_round["diffusers (eager)"]
        for name, rounds in per_round.items():
            r = statistics.median(rounds)
            ratios = [a / b for a, b in zip(rounds, peer_rounds)]     # ours and the peer, same round
            achieved = r * gflop_per_image_step
            print(f"{precision:<9} {name:<26} {r:>13.2f} {statistics.median(ratios):>11.3f}x "
                  f"{achieved:>8.1f} {achieved / rate_mm:>8.1%}  {' '.join(f'{x:.3f}' for x in ratios)}")
        for backend, rate in rates_mm.items():
            name = f"matmul, {backend}"
            print(f"{precision:<9} {name:<26} {'':>13} {'':>12} {rate:>8.1f} {rate / rate_mm:>8.1%}")
        for kernel, rate in rates_attn.items():
            name = f"attention, {kernel}"
            print(f"{precision:<9} {name:<26} {'':>13} {'':>12} {rate:>8.1f} {rate / rate_mm:>8.1%}")
        if ms_gelu:
            print(f"{precision:<9} GELU after fc1, ms: " +
                  ", ".join(f"{kernel} {statistics.median(ms):.1f}" for kernel, ms in ms_gelu.items()))
        # Two ceilings, every pass but the matrix products free: the Linears at the reference
        # rate, and attention at its products' rate (or its kernel's, where that is faster: in
        # fp32 the fused kernel outruns MKL's batched products), or by its kernel, softmax and all.
        # Against the peer's median rate.
        peer_rate = statistics.median(peer_rounds)
        attn_gflop = 2 * DEPTH * attention_flops(1) / 1e9               # per image-step (2 passes)
        products = max(rates_attn["products"], rates_attn["dit.attend"])
        for name, rate_attn in (("ceiling: products only", products),
                                ("ceiling: with softmax", rates_attn["dit.attend"])):
            seconds = (gflop_per_image_step - attn_gflop) / rate_mm + attn_gflop / rate_attn
            print(f"{precision:<9} {name:<26} {1 / seconds:>13.2f} {1 / seconds / peer_rate:>11.3f}x "
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
