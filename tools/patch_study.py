"""The patch-size study: one image cut into p = 2, 4 and 8 patches, with the tokens, parameters
and forward GFLOPs of a DiT at each p (REPORT.md, Task 1 and 2).

    python tools/patch_study.py --out report/forward        # seconds; writes patch_study.png

Halving p quadruples the tokens T = (H/p)²; the compute grows at least as fast (attention with
T²), while the parameters barely move (only the patch embedding and the final layer see p).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))     # the repository's modules
import landscapes                                                 # noqa: E402
from dit import build_dit, forward_gflops                         # noqa: E402
from forward_process import patchify                              # noqa: E402


def patch_study(x0: torch.Tensor, out, model_name: str, patch_sizes=(2, 4, 8)):
    """Cut the image into patches for each p, and measure what p costs the DiT forward pass."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    _, C, H, W = x0.shape
    rows = []
    fig, axes = plt.subplots(1, len(patch_sizes), figsize=(4 * len(patch_sizes), 4.4))
    for ax, p in zip(axes, patch_sizes):
        model = build_dit(model_name, input_size=H, patch_size=p, in_channels=C, num_classes=10)
        gflops = forward_gflops(model)
        params = sum(q.numel() for q in model.parameters())
        tokens = (H // p) * (W // p)
        rows.append((p, tokens, p * p * C, params, gflops))
        # Show the patches pulled apart by a 1-pixel gap: each tile is one token.
        tiles = patchify(x0, p)[0].reshape(H // p, W // p, p, p, C)   # (h, w, p, p, C)
        canvas = torch.ones(H // p * (p + 1) - 1, W // p * (p + 1) - 1, C)
        for i in range(H // p):
            for j in range(W // p):
                canvas[i * (p + 1): i * (p + 1) + p, j * (p + 1): j * (p + 1) + p] = tiles[i, j]
        ax.imshow(landscapes.to_uint8(canvas.permute(2, 0, 1)).permute(1, 2, 0).numpy())
        ax.set_title(f"p = {p}: {tokens} tokens of {p * p * C} values\n"
                     f"{model_name} forward: {gflops:.3f} GFLOPs", fontsize=9)
        ax.set_xticks([]), ax.set_yticks([])
    fig.suptitle(f"Patchify a {H}×{W} image: halving p quadruples the tokens and the compute")
    fig.tight_layout(rect=(0, 0, 1, 0.92))  # leave room for the suptitle
    path = Path(out) / "patch_study.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path, rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default="report/forward", help="folder for patch_study.png")
    ap.add_argument("--model", default="DiT-Ti/2", help="the config whose patch size the study varies")
    ap.add_argument("--image-size", type=int, default=32)
    args = ap.parse_args()
    u8, _ = landscapes.procedural_image(seed=0, index=0, size=args.image_size)   # (H, W, 3) uint8
    x0 = landscapes.to_float(torch.from_numpy(u8).permute(2, 0, 1)[None])       # (1, 3, H, W)
    path, rows = patch_study(x0, args.out, args.model)
    print(f"Patch-size study: {args.model} on {args.image_size}×{args.image_size}×3 images")
    print(f"{'p':>3} {'tokens T':>9} {'values/token':>13} {'parameters':>11} {'GFLOPs':>8}")
    for p, tokens, per_token, params, gflops in rows:
        print(f"{p:>3} {tokens:>9} {per_token:>13} {params:>11,} {gflops:>8.3f}")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
