"""Attention health of trained DiTs: per block, the largest attention logit and the attention
entropy, on the same noised training images for every checkpoint.

    python inspect_attention.py checkpoints/dit_landscapes.pt runs/<run>/checkpoint.pt ...

Why: a transformer whose attention logits q·k/√d_h keep growing ends with softmax rows that put
all their weight on one token (entropy → 0), and its loss diverges soon after (Dehghani et al.
2023, Zhai et al. 2023).  The loss curve shows that only once it happens; these two numbers show
it coming.  The uniform-attention entropy is ln T (ln 256 = 5.55 for 256 tokens).  README,
"What went badly", reads the table this prints for the shipped model and two runs that diverged.

For each t in --t, it noises the same --n training images (fixed seed) to x_t = √ᾱ_t·x0 +
√(1−ᾱ_t)·ε with the checkpoint's own schedule and runs the EMA weights once (dit.attention_stats).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

import landscapes
from dit import attention_stats, load_dit_checkpoint
from forward_process import add_noise, alpha_bar_from_betas, make_betas


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("checkpoints", nargs="+", help="checkpoint.pt files or --export files")
    ap.add_argument("--data", default=None, help="image folder (default: the procedural training landscapes)")
    ap.add_argument("--n", type=int, default=64, help="images per timestep")
    ap.add_argument("--t", type=int, nargs="+", default=[50, 500, 950], help="timesteps to probe")
    ap.add_argument("--seed", type=int, default=0, help="picks the images and the noise")
    args = ap.parse_args(argv)
    if args.n < 1:
        raise SystemExit("--n must be at least 1")
    return args


def main(args: argparse.Namespace) -> None:
    for path in args.checkpoints:
        if not Path(path).is_file():
            raise SystemExit(f"no checkpoint at {path}: pass a checkpoint.pt or an --export file")
    models = [load_dit_checkpoint(path) for path in args.checkpoints]         # (model, config, names)
    size = models[0][0].input_size
    data = landscapes.load_images(landscapes.resolve_data(args.data, "train", size), size)
    g = torch.Generator().manual_seed(args.seed)
    pick = torch.randperm(len(data.labels), generator=g)[:args.n]
    x0 = landscapes.to_float(data.images[pick])                               # (n, 3, H, W)
    y = data.labels[pick]                                                     # (n,)
    eps = torch.randn(x0.shape, generator=g)                                  # the same ε for all

    for path, (model, config, _) in zip(args.checkpoints, models):
        if model.input_size != size:
            raise SystemExit(f"{path} is a {model.input_size} px model; the first is {size} px")
        if max(args.t) >= config["diffusion"]["T"] or min(args.t) < 0:
            raise SystemExit(f"--t must lie in 0 … {config['diffusion']['T'] - 1}")
        alpha_bar = alpha_bar_from_betas(make_betas(config["diffusion"]["schedule"], config["diffusion"]["T"]))
        norm = torch.cat([p.flatten() for p in model.parameters()]).norm().item()
        print(f"\n{path}: ‖θ‖ = {norm:.1f}; per block: largest |logit| and mean entropy (nats)")
        for t_value in args.t:
            t = torch.full((len(y),), t_value)
            x_t = add_noise(x0, t, eps, alpha_bar)                            # (n, 3, H, W)
            stats = attention_stats(model, x_t, t, y)
            with torch.no_grad():
                mse = (model.eps(x_t, t, y) - eps).pow(2).mean().item()       # ‖ε − ε̂‖², this batch
            blocks = "  ".join(f"b{i} {m:9.1f} {h:4.2f}" for i, (m, h) in enumerate(stats))
            print(f"  t = {t_value:3d}  loss {mse:.5f}  {blocks}")


if __name__ == "__main__":
    main(parse_args())
