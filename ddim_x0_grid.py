"""Task 4b — watch the clean image emerge: DDIM's running guess x̂0, step by step.

    python ddim_x0_grid.py                                   # the shipped landscape DiT, 100 images
    python ddim_x0_grid.py --checkpoint runs/<name>/checkpoint.pt --steps 25 --show-xt
    python ddim_x0_grid.py --model facebook/DiT-XL-2-256 --classes 88 207 279 --n 3 --device cuda

At every DDIM step the network predicts the noise ε̂ in x_t, and with it the clean image

    x̂0 = (x_t − √(1−ᾱ_t) · ε̂) / √ᾱ_t                          (DDPM eq. 15, DDIM eq. 9)

which is where DDIM aims the next step (DDIM eq. 12).  x_t itself is a noisy mixture until the
very end; x̂0 is the model's *current belief* about the image, and watching it shows the order
in which a diffusion model decides things: first the layout and the colours (sky above, ground
below, the class's palette), then shapes, and only in the last steps the fine detail.

What it writes into --out (default report/ddim_x0; for another model runs/ddim_x0_<its name>):
  x0_step<k>_t<t>.png   the 10×10 grid of x̂0 at each shown step (one class per row)
  final.png             the final samples (= x̂0 of the last step, where ᾱ_prev = 1)
  overview.png          one panel per shown step, labelled with t (x_t under x̂0 with --show-xt)
  x0_trajectory.gif     x̂0 grids over all steps
The sampler is dit.ddim_sample, the project's one DDIM implementation.

With --model, the same sampler runs the real pretrained DiT-XL/2 through diffusers (transformer +
Stable Diffusion VAE from the local Hugging Face cache; nothing is downloaded): x̂0 latents are
decoded with the VAE at each shown step, and the learned-Σ channels are split off.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

import landscapes
from dit import SHIPPED, autocast, ddim_sample, load_sampling_model, output_folder
from machine import pick_device, resolve_precision, tune_cpu


# ══ 1. Sampling and recording the trajectory ══════════════════════════════════════════════════


def pick_show_steps(num_steps: int, show: list[int] | None, count: int = 10) -> list[int]:
    """Indices (0-based) of the steps to draw: `count` spread over the run, always the last."""
    if show:
        bad = [k for k in show if not 0 <= k < num_steps]
        if bad:
            raise SystemExit(f"--show-steps {bad}: steps are numbered 0 … {num_steps - 1}")
        return sorted(set(show) | {num_steps - 1})
    return sorted(set(np.linspace(0, num_steps - 1, min(count, num_steps)).round().astype(int).tolist()))


def labels_for(args, model, n: int) -> torch.Tensor:
    if args.classes:
        bad = [c for c in args.classes if not 0 <= c < model.num_classes]
        if bad:
            raise SystemExit(f"--classes {bad}: the model knows classes 0 … {model.num_classes - 1}")
        return torch.tensor(args.classes).repeat_interleave(-(-n // len(args.classes)))[:n]
    rows = args.nrow
    return (torch.arange(n) // rows) % model.num_classes          # one class per row


@torch.no_grad()
def run(args: argparse.Namespace, model, device: torch.device):
    """Sample, keeping x̂0 (uint8 grids) at every step and x_t at the shown ones."""
    n = args.n
    y = labels_for(args, model, n).to(device)
    g = torch.Generator(device).manual_seed(args.seed)
    x_T = torch.randn(n, *model.shape, generator=g, device=device)
    show = pick_show_steps(args.steps, args.show_steps)
    x0_all, shown = [], []                     # per step: uint8 (n, 3, H, W); (k, t, x0, x_t)
    with autocast(device, args.precision):
        C = model.eps_channels                      # ε̂; DiT-XL/2's other C channels are learned Σ
        steps = ddim_sample(lambda x, t: model(x, t, y)[:, :C], x_T, model.alpha_bar, args.steps, eta=args.eta,
                            generator=g, spacing=args.spacing, clip_x0=model.clip_x0)
        for k, (t, x_t, x0_hat) in enumerate(steps):
            # Decoding latents costs a VAE pass: only at the shown steps (all steps for the GIF
            # only in pixel space, where decode is free).
            if k in show or model.in_pixels:
                img = landscapes.to_uint8(model.decode(x0_hat.float()).cpu())
                x0_all.append(img)
            if k in show:
                xt_img = landscapes.to_uint8(model.decode(x_t.float()).cpu()) if args.show_xt else None
                shown.append((k, t, img, xt_img))
    return y.cpu(), x0_all, shown


# ══ 2. Figures ════════════════════════════════════════════════════════════════════════════════


def save_overview(shown, path: Path, nrow: int, show_xt: bool, title: str) -> None:
    """One panel per shown step: the x̂0 grid (and the x_t grid under it with --show-xt)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = len(shown)
    rows = 2 if show_xt else 1
    fig, axes = plt.subplots(rows, cols, figsize=(2.4 * cols, 2.6 * rows), squeeze=False)
    for c, (k, t, x0, xt) in enumerate(shown):
        axes[0, c].imshow(landscapes.tile_images(x0, nrow).numpy(), interpolation="nearest")
        axes[0, c].set_title(f"step {k + 1}, t = {t}", fontsize=9)
        if show_xt:
            axes[1, c].imshow(landscapes.tile_images(xt, nrow).numpy(), interpolation="nearest")
    axes[0, 0].set_ylabel("x̂0 (prediction)")
    if show_xt:
        axes[1, 0].set_ylabel("x_t (state)")
    for ax in axes.flat:
        ax.set_xticks([]), ax.set_yticks([])
    fig.suptitle(title)
    fig.tight_layout(rect=(0, 0, 1, 0.94))
    fig.savefig(path, dpi=110)
    plt.close(fig)


def save_gif(frames: list[torch.Tensor], path: Path, nrow: int, ms_per_frame: int = 120) -> None:
    from PIL import Image

    tiles = [Image.fromarray(landscapes.tile_images(f, nrow).numpy()) for f in frames]
    scale = max(1, 384 // tiles[0].width)     # enlarge small pixel grids so they are visible
    tiles = [im.resize((im.width * scale, im.height * scale), Image.NEAREST) for im in tiles]
    durations = [ms_per_frame] * (len(tiles) - 1) + [1500]     # linger on the final images
    tiles[0].save(path, save_all=True, append_images=tiles[1:], duration=durations, loop=0)


# ══ 3. main ═══════════════════════════════════════════════════════════════════════════════════


def short_path(path) -> str:
    """A name for titles: relative to the working folder where it can be."""
    try:
        return str(Path(path).resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def main(args: argparse.Namespace) -> None:
    device = pick_device(args.device)
    tune_cpu(device)                         # machine.py: what pays on this CPU
    args.precision = resolve_precision(args.precision, device)   # as the FID samples are drawn
    model = load_sampling_model(args.checkpoint, args.model, device)
    source = args.model or short_path(args.checkpoint)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    y, x0_all, shown = run(args, model, device)
    row_labels = None
    if not args.classes:
        row_labels = [model.class_names[int(y[r * args.nrow])] for r in range(-(-args.n // args.nrow))]
    written = []
    for k, t, x0, _ in shown:
        p = landscapes.save_image_grid(x0, out / f"x0_step{k + 1:03d}_t{t:04d}.png", nrow=args.nrow,
                                       row_labels=row_labels,
                                       title=f"x̂0 at DDIM step {k + 1}/{args.steps} (t = {t})")
        written.append(p)
    written.append(landscapes.save_image_grid(shown[-1][2], out / "final.png", nrow=args.nrow,
                                              row_labels=row_labels,
                                              title=f"Final samples, DDIM {args.steps} steps, η = {args.eta}"))
    save_overview(shown, out / "overview.png", args.nrow, args.show_xt,
                  f"DDIM's running guess x̂0 = (x_t − √(1−ᾱ_t)·ε̂)/√ᾱ_t, {args.steps} steps, {source}")
    written.append(out / "overview.png")
    frames = x0_all if len(x0_all) == args.steps else [s[2] for s in shown]
    save_gif(frames, out / "x0_trajectory.gif", args.nrow)
    written.append(out / "x0_trajectory.gif")
    (out / "run.json").write_text(json.dumps(
        dict(source=source, steps=args.steps, eta=args.eta, spacing=args.spacing, seed=args.seed,
             precision=args.precision,
             n=args.n, shown_steps=[k + 1 for k, *_ in shown], shown_t=[t for _, t, *_ in shown]), indent=2))
    print(f"sampled {args.n} images with {args.steps} DDIM steps from {source} on {device}, {args.precision}")
    print("wrote " + ", ".join(str(p) for p in written))


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description="Grids of DDIM's running prediction x̂0, step by step.",
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--checkpoint", default=str(SHIPPED),
                    help="our DiT: the shipped checkpoint, or runs/<name>/checkpoint.pt")
    ap.add_argument("--model", default=None,
                    help="instead, a diffusers DiT pipeline: hub id (from the local cache) or folder, "
                         "e.g. facebook/DiT-XL-2-256")
    ap.add_argument("--classes", type=int, nargs="+", default=None,
                    help="class ids to sample (ImageNet ids for DiT-XL/2); None: one class per row")
    ap.add_argument("--n", type=int, default=100, help="images (a 10×10 grid)")
    ap.add_argument("--nrow", type=int, default=10, help="images per grid row")
    ap.add_argument("--steps", type=int, default=50, help="DDIM steps")
    ap.add_argument("--eta", type=float, default=0.0, help="η: 0 deterministic, 1 ≈ DDPM")
    ap.add_argument("--spacing", default="trailing", choices=["leading", "trailing"],
                    help="trailing starts at t = T−1, from pure noise (Lin et al. 2023)")
    ap.add_argument("--show-steps", type=int, nargs="+", default=None,
                    help="0-based step indices to draw; None: 10 spread out, with the last")
    ap.add_argument("--show-xt", action="store_true", help="draw x_t under x̂0 in the overview")
    ap.add_argument("--seed", type=int, default=0, help="seeds x_T (and z when η > 0)")
    ap.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"],
                    help="autocast dtype; auto: bf16 where the hardware has fast bf16 (as the FID "
                         "samples are drawn), else fp32")
    ap.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"], help="auto picks CUDA when present")
    ap.add_argument("--out", default=None,
                    help="output folder; None: report/ddim_x0 for the shipped model, else runs/ddim_x0_<model name>")
    args = ap.parse_args(argv)
    args.out = args.out or output_folder("report/ddim_x0", args.checkpoint, args.model)
    if args.n < 1 or args.nrow < 1 or args.steps < 1:
        raise SystemExit("--n, --nrow and --steps must be at least 1")
    if not 0 <= args.eta <= 1:
        raise SystemExit(f"--eta {args.eta}: η lies in [0, 1]")
    return args


if __name__ == "__main__":
    main(parse_args())
