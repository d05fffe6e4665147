"""Task 1 — the forward (noising) process and the pieces DiT builds its input from.

What this file teaches, in the order of the idea:

  1. Noise schedules.  A diffusion model destroys an image x0 in T small Gaussian steps
     q(x_t | x_{t−1}) = N(√(1−β_t) x_{t−1}, β_t I).  The schedule β_1..β_T decides how fast.
  2. The closed form.  Composing those steps gives q(x_t | x0) directly (DDPM eq. 4):
         x_t = √ᾱ_t · x0 + √(1−ᾱ_t) · ε,   ε ~ N(0, I),   ᾱ_t = ∏_{s≤t} (1 − β_s)
     so training can jump to any t in one line: `add_noise`.
  3. How the network is told t: a sinusoidal `timestep_embedding` followed by an MLP
     (`TimestepEmbedder`), exactly as DiT does.
  4. How an image becomes a sequence of tokens: `patchify` cuts it into p×p patches,
     `PatchEmbed` maps each patch linearly to a D-dimensional token, `unpatchify` undoes it.
     The patch size p sets the sequence length T_tokens = (H/p)·(W/p), and with it the cost.

Run it to see all of this:

    python forward_process.py --out report/forward
    python tools/patch_study.py --out report/forward        # the patch study needs the whole DiT

writes PNGs (a real image noised at t = 0 … T−1 for each schedule; ᾱ_t and log-SNR curves at
T = 100, 500, 1000; the timestep-embedding heatmap), and tools/patch_study.py the patch study for p = 2, 4, 8
with its table (tokens, GFLOPs of a DiT forward pass).  Seconds on 2 CPU cores.

Notation.  t is 0-based in code (t = 0 … T−1, as in DiT's and diffusers' code); the papers count
1 … T.  `alpha_bar[t]` is ᾱ at the code's step t.  DDIM's paper writes α for DDPM's ᾱ.
Shapes use one legend: B batch, C channels, H, W height and width, T tokens, D width, p patch.
T inside a shape counts tokens; everywhere else (t = 0 … T−1, make_betas(schedule, T)) T is the
number of diffusion steps, as in the papers.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import torch
import torch.nn as nn

# ══ 1. Noise schedules ════════════════════════════════════════════════════════════════════════
#
# Every schedule is computed in float64.  Float32 spaces numbers near 1 only 6e-8 apart, and
# near t = 0 ᾱ_t lies within ~1e-4 of 1, so there 1−ᾱ_t, the noise variance, would carry a
# relative error of 1.7e-4 (linear; 5e-4 cosine).  Near t = T the product itself stays accurate
# in float32 (√ᾱ_t to a relative 3e-7; 7e-6 cosine), but x̂0 = (x_t − √(1−ᾱ_t)·ε̂)/√ᾱ_t divides
# by √ᾱ_t ≈ 6e-3 (linear; 5e-5 cosine), which magnifies any rounding in x_t.  Callers cast to
# the model's dtype last.

SCHEDULES = ("linear", "cosine", "scaled_linear", "sigmoid")

# Linear-family endpoints are quoted for T = 1000.  For other T they are multiplied by 1000/T
# (the rule of improved DDPM's code, improved-diffusion, Nichol & Dhariwal 2021, which ADM's and
# so DiT's code inherit): with fewer, bigger steps each β_t must grow so that the total noise,
# and so ᾱ at the last step, stays about the same.
LINEAR_BETA_RANGE = (1e-4, 2e-2)          # DDPM §4 and DiT §4: β from 1e-4 to 0.02 at T = 1000
SCALED_LINEAR_BETA_RANGE = (8.5e-4, 1.2e-2)  # Latent/Stable Diffusion: linear in √β
COSINE_S = 0.008                          # Nichol & Dhariwal eq. 17: keeps β_1 from being tiny
MAX_BETA = 0.999                          # cap so that the last steps never divide by ~0


def make_betas(schedule: str, T: int) -> torch.Tensor:
    """β_1..β_T (returned as a float64 tensor of shape (T,), index t = 0 … T−1).

    linear         β linear from 1e-4 to 0.02 (× 1000/T)                         DDPM, DiT
    cosine         ᾱ_t = f(t)/f(0), f(t) = cos²(((t/T) + s)/(1 + s) · π/2),
                   β_t = min(1 − ᾱ_t/ᾱ_{t−1}, 0.999)                  Nichol & Dhariwal eq. 17
    scaled_linear  √β linear from √0.00085 to √0.012 (× 1000/T)                 Stable Diffusion
    sigmoid        β = β_min + (β_max − β_min) · sigmoid(linspace(−6, 6)) (× 1000/T)     GeoDiff
                   with β_min, β_max = LINEAR_BETA_RANGE: GeoDiff's shape (Xu et al. 2022), not
                   its endpoints (1e-7 → 2e-3 over 5000 steps), so that it shares linear's scale
    """
    if T < 2:
        raise ValueError(f"T must be at least 2 diffusion steps, got {T}")
    scale = 1000.0 / T
    if schedule == "linear":
        lo, hi = (b * scale for b in LINEAR_BETA_RANGE)
        betas = torch.linspace(lo, hi, T, dtype=torch.float64)
    elif schedule == "scaled_linear":
        lo, hi = (b * scale for b in SCALED_LINEAR_BETA_RANGE)
        betas = torch.linspace(lo**0.5, hi**0.5, T, dtype=torch.float64) ** 2
    elif schedule == "sigmoid":
        lo, hi = (b * scale for b in LINEAR_BETA_RANGE)
        betas = lo + (hi - lo) * torch.sigmoid(torch.linspace(-6, 6, T, dtype=torch.float64))
    elif schedule == "cosine":
        # f is evaluated on the T + 1 grid points 0, 1/T, …, 1; β_t is one minus the ratio of
        # neighbours, so f(0) cancels and ᾱ_t = ∏(1 − β) = f(t+1)/f(0) exactly (until the cap).
        grid = torch.arange(T + 1, dtype=torch.float64) / T
        f = torch.cos((grid + COSINE_S) / (1 + COSINE_S) * math.pi / 2) ** 2
        betas = 1 - f[1:] / f[:-1]
    else:
        raise ValueError(f"unknown schedule {schedule!r}; choose one of {', '.join(SCHEDULES)}")
    return betas.clamp(max=MAX_BETA)


def alpha_bar_from_betas(betas: torch.Tensor) -> torch.Tensor:
    """ᾱ_t = ∏_{s≤t} (1 − β_s)   (DDPM eq. 4), float64, shape (T,)."""
    return torch.cumprod(1.0 - betas.double(), dim=0)


def log_snr(alpha_bar: torch.Tensor) -> torch.Tensor:
    """log SNR(t) = log(ᾱ_t / (1 − ᾱ_t)): signal power over noise power of x_t, in nats.

    The schedules differ most clearly here.  At t/T = 0.1, 0.5, 0.9 (T = 1000):
        linear   2.16, −2.46, −8.2          cosine   3.55, −0.02, −3.7
    Linear destroys the signal too fast: x_t is noise-dominated by half way, and 37% of its
    steps lie below log-SNR −4 (SNR < 2%), where x_t is nearly pure noise and the steps add
    little to samples: a model trained on it loses little FID when the first 20% of the reverse
    process is skipped (improved DDPM §3.2).  Cosine, their fix, lets ᾱ_t fall almost linearly
    through the middle and change little near t = 0 and t = T; 9% of its steps lie below −4.
    """
    return torch.log(alpha_bar) - torch.log1p(-alpha_bar)


# ══ 2. The closed-form forward process ════════════════════════════════════════════════════════


def add_noise(
    x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor, alpha_bar: torch.Tensor
) -> torch.Tensor:
    """Sample q(x_t | x0):  x_t = √ᾱ_t · x0 + √(1−ᾱ_t) · ε   (DDPM eq. 4).

    x0, noise: (B, …) images (any trailing shape); t: (B,) integer steps in 0 … T−1, one per
    sample; alpha_bar: (T,) from `alpha_bar_from_betas`.
    """
    if noise.shape != x0.shape:
        raise ValueError(f"noise {tuple(noise.shape)} must have the shape of x0 {tuple(x0.shape)}")
    if t.ndim != 1 or t.shape[0] != x0.shape[0]:
        raise ValueError(f"t must hold one step per sample, shape ({x0.shape[0]},); got {tuple(t.shape)}")
    a = alpha_bar.to(x0.device)[t]                                   # (B,) float64
    a = a.view(-1, *([1] * (x0.ndim - 1)))                           # (B, 1, 1, 1) broadcasts
    # The square roots are taken in float64 and only then cast to the image dtype.
    return a.sqrt().to(x0.dtype) * x0 + (1 - a).sqrt().to(x0.dtype) * noise


# ══ 3. Telling the network the time step ══════════════════════════════════════════════════════


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal embedding of t, as in DiT (and the Transformer's position encoding).

    For i = 0 … dim/2 − 1:   ω_i = max_period^(−i/(dim/2))
                             emb(t) = [cos(t·ω_0) … cos(t·ω_{dim/2−1}), sin(t·ω_0) … ]
    The frequencies are geometric from 1 down to ~1/max_period, so neighbouring t differ in the
    fast dimensions and distant t in the slow ones.  DiT puts cos first (diffusers calls that
    `flip_sin_to_cos=True`); an odd `dim` gets one zero column at the end.

    t: (B,) (integers or floats) → (B, dim) float32.
    """
    half = dim // 2
    freqs = torch.exp(
        -math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half
    )                                                                # (dim/2,)
    args = t.float()[:, None] * freqs[None, :]                       # (B, dim/2)
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)      # (B, 2·(dim/2))
    if dim % 2:
        emb = torch.cat([emb, torch.zeros_like(emb[:, :1])], dim=-1)  # (B, dim)
    return emb


class TimestepEmbedder(nn.Module):
    """t → sinusoidal features (256) → Linear → SiLU → Linear → a D-dim vector (DiT §3.2).

    The fixed sinusoid gives a smooth, unambiguous code for t; the MLP learns what the model
    needs from it.  Its output is added to the class embedding to form DiT's conditioning c.
    """

    def __init__(self, hidden_size: int, frequency_embedding_size: int = 256):
        super().__init__()
        self.frequency_embedding_size = frequency_embedding_size
        self.mlp = nn.Sequential(
            nn.Linear(frequency_embedding_size, hidden_size),
            nn.SiLU(),
            nn.Linear(hidden_size, hidden_size),
        )

    def forward(self, t: torch.Tensor) -> torch.Tensor:               # t: (B,)
        t_freq = timestep_embedding(t, self.frequency_embedding_size)  # (B, 256) float32
        return self.mlp(t_freq.to(self.mlp[0].weight.dtype))          # (B, D)


# ══ 4. Images as sequences of patches ═════════════════════════════════════════════════════════


def check_patch_size(image_size: int, p: int) -> None:
    """Raise a clear error when p does not tile the image exactly."""
    if p < 1 or image_size % p:
        good = [d for d in (1, 2, 4, 8, 16) if image_size % d == 0 and d < image_size]
        raise ValueError(
            f"patch size {p} does not divide the image size {image_size}; "
            f"use one of {', '.join(map(str, good))}"
        )


def patchify(x: torch.Tensor, p: int) -> torch.Tensor:
    """Cut images into non-overlapping p×p patches, row by row.

    (B, C, H, W) → (B, T, p·p·C) with T = (H/p)·(W/p).  Inside a token the features are
    ordered (row in patch, column in patch, channel), DiT's order, which `unpatchify` inverts.
    """
    B, C, H, W = x.shape
    check_patch_size(H, p)
    check_patch_size(W, p)
    h, w = H // p, W // p
    x = x.reshape(B, C, h, p, w, p)                                  # (B, C, h, p, w, p)
    x = x.permute(0, 2, 4, 3, 5, 1)                                  # (B, h, w, p, p, C)
    return x.reshape(B, h * w, p * p * C)                            # (B, T, p·p·C)


def unpatchify(tokens: torch.Tensor, p: int, C: int, H: int, W: int) -> torch.Tensor:
    """The exact inverse of `patchify`:  (B, T, p·p·C) → (B, C, H, W)."""
    B, T, F = tokens.shape
    h, w = H // p, W // p
    if T != h * w or F != p * p * C:
        raise ValueError(
            f"tokens {tuple(tokens.shape)} do not fit p={p}, C={C}, H={H}, W={W}: "
            f"expected (B, {h * w}, {p * p * C})"
        )
    x = tokens.reshape(B, h, w, p, p, C)                             # (B, h, w, p, p, C)
    x = x.permute(0, 5, 1, 3, 2, 4)                                  # (B, C, h, p, w, p)
    return x.reshape(B, C, H, W)                                     # (B, C, H, W)


class PatchEmbed(nn.Module):
    """The learned patch embedding: one linear map from each p×p×C patch to a D-dim token.

    Written as a Conv2d with kernel = stride = p, which visits each patch once and computes
    exactly  token = W · vec(patch) + b  — the same numbers as `nn.Linear` applied to
    `patchify(x, p)` with the weight permuted to DiT's (p, p, C) order (tests/test_forward_process.py
    shows it).  The convolution is used because it skips the copy that patchify makes.

    (B, C, H, W) → (B, T, D).
    """

    def __init__(self, patch_size: int, in_channels: int, embed_dim: int):
        super().__init__()
        self.patch_size = patch_size
        self.proj = nn.Conv2d(in_channels, embed_dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_patch_size(x.shape[-2], self.patch_size)
        check_patch_size(x.shape[-1], self.patch_size)
        x = self.proj(x)                                             # (B, D, H/p, W/p)
        return x.flatten(2).transpose(1, 2)                          # (B, T, D)

    def as_linear_weight(self) -> torch.Tensor:
        """The conv kernel as the (D, p·p·C) matrix that acts on `patchify` tokens."""
        return self.proj.weight.permute(0, 2, 3, 1).flatten(1)       # (D, p, p, C) → (D, p·p·C)


# ══ 5. Figures:  python forward_process.py --out report/forward ═══════════════════════════════


def _first_image(data: str | None, image_size: int) -> torch.Tensor:
    """One real image from the dataset (the first procedural landscape by default), in [−1, 1]."""
    import landscapes

    if data is None:
        u8, _ = landscapes.procedural_image(seed=0, index=0, size=image_size)  # (H, W, 3) uint8
        u8 = torch.from_numpy(u8).permute(2, 0, 1)[None]                       # (1, 3, H, W)
    else:
        u8 = landscapes.load_images(data, image_size).images[:1]               # (1, 3, H, W)
    return landscapes.to_float(u8)


def plot_noising_strip(x0: torch.Tensor, T: int, out: Path, n_cols: int = 10) -> Path:
    """Rows: schedules.  Columns: x_t at t = 0 … T−1, all from the same ε."""
    import matplotlib.pyplot as plt
    import landscapes

    ts = torch.linspace(0, T - 1, n_cols).round().long()
    noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(0))
    fig, axes = plt.subplots(len(SCHEDULES), n_cols, figsize=(1.3 * n_cols, 1.45 * len(SCHEDULES)))
    for row, schedule in enumerate(SCHEDULES):
        alpha_bar = alpha_bar_from_betas(make_betas(schedule, T))
        x_t = add_noise(x0.expand(n_cols, -1, -1, -1), ts, noise.expand(n_cols, -1, -1, -1), alpha_bar)
        for col in range(n_cols):
            ax = axes[row, col]
            ax.imshow(landscapes.to_uint8(x_t[col]).permute(1, 2, 0).numpy())
            ax.set_xticks([]), ax.set_yticks([])
            if row == 0:
                ax.set_title(f"t = {ts[col].item()}", fontsize=8)
            if col == 0:
                ax.set_ylabel(schedule, fontsize=8)
    fig.suptitle(f"x_t = √ᾱ_t·x0 + √(1−ᾱ_t)·ε for each schedule (T = {T}, same ε)")
    fig.tight_layout()
    path = out / "noising_strip.png"
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_schedules(out: Path, Ts=(100, 500, 1000)) -> Path:
    """ᾱ_t and log-SNR against t/T for each schedule and each T."""
    import matplotlib.pyplot as plt

    fig, (ax_a, ax_s) = plt.subplots(1, 2, figsize=(12, 4.5))
    styles = {100: ":", 500: "--", 1000: "-"}
    for color, schedule in zip(plt.rcParams["axes.prop_cycle"].by_key()["color"], SCHEDULES):
        for T in Ts:
            alpha_bar = alpha_bar_from_betas(make_betas(schedule, T))
            frac = (torch.arange(T) + 1) / T
            label = f"{schedule}, T={T}"
            ax_a.plot(frac, alpha_bar, styles.get(T, "-"), color=color, label=label)
            ax_s.plot(frac, log_snr(alpha_bar), styles.get(T, "-"), color=color, label=label)
    ax_a.set(title="ᾱ_t: share of the signal's variance left", xlabel="t / T", ylabel="ᾱ_t")
    ax_s.set(title="log SNR(t) = log(ᾱ_t / (1 − ᾱ_t))", xlabel="t / T", ylabel="log SNR (nats)")
    ax_a.legend(fontsize=7, ncol=2)
    for ax in (ax_a, ax_s):
        ax.grid(alpha=0.3)
    fig.tight_layout()
    path = out / "schedules.png"
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_timestep_embedding(out: Path, T: int = 1000, dim: int = 256) -> Path:
    import matplotlib.pyplot as plt

    emb = timestep_embedding(torch.arange(T), dim)                    # (T, dim)
    fig, ax = plt.subplots(figsize=(9, 4.5))
    im = ax.imshow(emb.T, aspect="auto", cmap="RdBu", interpolation="nearest", vmin=-1, vmax=1)
    ax.set(title=f"Sinusoidal timestep embedding (dim {dim})\n"
                 f"rows 0–{dim // 2 - 1}: cos, {dim // 2}–{dim - 1}: sin; frequency falls down each half",
           xlabel="timestep t", ylabel="embedding dimension")
    fig.colorbar(im, ax=ax)
    fig.tight_layout()
    path = out / "timestep_embedding.png"
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def main(args: argparse.Namespace) -> None:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    x0 = _first_image(args.data, args.image_size)                      # (1, 3, H, W) in [−1, 1]
    written = [
        plot_noising_strip(x0, args.T, out),
        plot_schedules(out),
        plot_timestep_embedding(out),
    ]
    print("wrote " + ", ".join(str(p) for p in written))
    print("(the patch-size study, which needs the whole DiT for its GFLOPs: python tools/patch_study.py)")


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        description="Figures for the forward process: noising strips, schedules and the timestep "
                    "embedding (the patch-size study: python tools/patch_study.py).")
    ap.add_argument("--out", default="report/forward", help="folder for the PNGs")
    ap.add_argument("--data", default=None,
                    help="a folder of images to take the example from (default: the procedural "
                         "landscapes, no download needed)")
    ap.add_argument("--image-size", type=int, default=32, help="example resolution (pixels)")
    ap.add_argument("--T", type=int, default=1000, help="diffusion steps for the noising strip")
    args = ap.parse_args(argv)
    if args.T < 2:
        raise SystemExit(f"--T {args.T}: need at least 2 diffusion steps")
    return args


if __name__ == "__main__":
    main(parse_args())
