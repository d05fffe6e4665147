"""Task 2 — the Diffusion Transformer (Peebles & Xie 2022, "Scalable Diffusion Models with
Transformers", §3), and the DDIM sampler every script shares.

The model, in the order the data flows (paper Fig. 3, left; its right half details the block):

    x_t (B, C, H, W) ── PatchEmbed ──► tokens (B, T, D) + fixed 2-D sin-cos positions
    t  (B,)          ── TimestepEmbedder ─┐
    y  (B,)          ── LabelEmbedder ────┴─► c = t_emb + y_emb (B, D)   (the conditioning)
    tokens ── N × DiTBlock(·, c) ── FinalLayer(·, c) ──► (B, T, p·p·C_out) ── unpatchify
         ──► ε̂ (B, C, H, W)  [and the Σ channels when learn_sigma]

Every block is conditioned by adaLN-Zero: a LayerNorm without its own affine parameters whose
shift and scale — and a per-channel gate on the residual branch — are regressed from c.  The
regressing layer starts at zero, so every block starts as the identity (see `DiTBlock`).

Sections: 1 embeddings, 2 the adaLN-Zero block, 3 the model, 4 named configs, 5 FLOP counting,
6 the DDIM sampler (it yields x̂0 at every step), 7 loading a trained model, 8 bf16 autocast.

`python dit.py` prints the configs with their parameters and GFLOPs at 32×32×3 (seconds).
Shapes use one legend: B batch, C channels, H, W height and width, T tokens, D width, p patch.
T inside a shape, and in attention's T × T, counts tokens; everywhere else (t = 0 … T−1, the
schedule, the sampler) T is the number of diffusion steps, as in the papers.
"""

from __future__ import annotations

import argparse
import contextlib
import math
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from forward_process import (PatchEmbed, TimestepEmbedder, alpha_bar_from_betas,
                             check_patch_size, make_betas, unpatchify)

# ══ 1. Embeddings: positions and labels (timesteps and patches: forward_process.py) ════════


def sincos_1d(dim: int, pos: torch.Tensor) -> torch.Tensor:
    """1-D sin-cos code of positions: ω_i = 10000^(−i/(dim/2)),  [sin(pos·ω), cos(pos·ω)].

    pos: (M,) → (M, dim).  Computed in float64 (it is a constant, so precision is free).
    """
    omega = 1.0 / 10000 ** (torch.arange(dim // 2, dtype=torch.float64) / (dim / 2))  # (dim/2,)
    out = pos.double()[:, None] * omega[None, :]                       # (M, dim/2)
    return torch.cat([torch.sin(out), torch.cos(out)], dim=1)          # (M, dim)


def sincos_2d_pos_embed(dim: int, grid_size: int) -> torch.Tensor:
    """DiT's fixed position embedding (from MAE): half the channels code the column, half the row.

    Token k = i·grid + j (row i, column j) gets [sincos_1d(dim/2, j), sincos_1d(dim/2, i)].
    Fixed rather than learned, as in the paper; (T, dim) float32 with T = grid².
    """
    if dim % 4:
        raise ValueError(f"the 2-D sin-cos embedding needs a width divisible by 4, got {dim}")
    rows, cols = torch.meshgrid(torch.arange(grid_size), torch.arange(grid_size), indexing="ij")
    emb = torch.cat([sincos_1d(dim // 2, cols.flatten()), sincos_1d(dim // 2, rows.flatten())], 1)
    return emb.float()                                                 # (T, dim)


class LabelEmbedder(nn.Module):
    """Class label → D-dim vector, with label dropout for classifier-free guidance.

    The table has num_classes + 1 rows: row `num_classes` is the null class ∅ (always there;
    DiT's code adds it only when dropout_prob > 0).  In model.train() each label becomes ∅ with
    probability `dropout_prob`, so one network learns both ε̂(x_t, t, y) and ε̂(x_t, t, ∅), which
    cfg.py mixes at sampling time.  In model.eval() nothing is dropped.
    """

    def __init__(self, num_classes: int, hidden_size: int, dropout_prob: float):
        super().__init__()
        self.num_classes = num_classes
        self.dropout_prob = dropout_prob
        self.embedding_table = nn.Embedding(num_classes + 1, hidden_size)

    def forward(self, y: torch.Tensor) -> torch.Tensor:                  # y: (B,) int64
        if y.dtype not in (torch.int32, torch.int64):
            raise ValueError(f"labels must be integers, got {y.dtype}")
        # The range is checked on the CPU and in eval() only: reading y back would stall every GPU step.
        if not torch.compiler.is_compiling() and y.numel() and (y.device.type == "cpu" or not self.training) \
                and y.device.type != "meta" and (y.min() < 0 or y.max() > self.num_classes):
            raise ValueError(f"labels must lie in 0 … {self.num_classes - 1}, or be {self.num_classes} for "
                             f"the null class; got values from {y.min().item()} to {y.max().item()}")
        if self.training and self.dropout_prob > 0:
            drop = torch.rand(y.shape, device=y.device) < self.dropout_prob
            y = torch.where(drop, torch.full_like(y, self.num_classes), y)
        return self.embedding_table(y)                                   # (B, D)


# ══ 2. The Transformer block with adaLN-Zero ══════════════════════════════════════════════════


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """adaLN:  x · (1 + γ) + β  with γ = scale, β = shift regressed from c, per sample.

    x: (B, T, D); shift, scale: (B, D).  "1 +" makes γ = 0 mean "leave the norm alone".
    In γ's dtype: under bf16 autocast the LayerNorm hands over fp32, and the result only feeds a
    bf16 matrix product."""
    return x.to(scale.dtype) * (1 + scale[:, None, :]) + shift[:, None, :]


class Attention(nn.Module):
    """Multi-head self-attention:  softmax(Q Kᵀ / √d_h) V  per head, heads concatenated.

    qk_norm (not in the DiT paper; ViT-22B, Dehghani et al. 2023, normalises q and k with
    LayerNorm, SD3 with RMSNorm, as here): RMS-normalise each head's query and key, with a
    learnt gain g, before their dot product.  Then
    |q·k|/√d_h ≤ √d_h·max|g_q|·max|g_k| whatever the weights do, which bounds the attention
    logits.  Without it they can grow until softmax puts all weight on one token (entropy
    collapse) and training diverges: REPORT.md, "Divergence and QK-norm", shows it in block 0."""

    # softmax(Q Kᵀ / √d_h) V by PyTorch's fused kernel, which never stores the (T × T) scores
    # (machine.tune_cpu swaps in a written-out one on CPUs where that is faster; same numbers).
    kernel = staticmethod(F.scaled_dot_product_attention)

    def __init__(self, dim: int, num_heads: int, qk_norm: bool = False):
        super().__init__()
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, 3 * dim)       # Q, K and V in one matrix product
        self.proj = nn.Linear(dim, dim)
        self.qk_norm = qk_norm
        if qk_norm:              # x / rms(x) · g over each head's d_h channels, g learnt (init 1)
            self.q_norm = nn.RMSNorm(dim // num_heads, eps=1e-6)
            self.k_norm = nn.RMSNorm(dim // num_heads, eps=1e-6)

    def heads(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """x (B, T, D) → q, k, v, each (B, h, T, d_h), q and k normalised when qk_norm."""
        B, T, D = x.shape
        qkv = self.qkv(x).reshape(B, T, 3, self.num_heads, D // self.num_heads)   # (B, T, 3, h, d_h)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)                                       # 3 × (B, h, T, d_h)
        if self.qk_norm:        # over d_h, in the gains' dtype (fp32 under autocast), then v's
            g = self.q_norm.weight.dtype
            q, k = self.q_norm(q.to(g)).to(v.dtype), self.k_norm(k.to(g)).to(v.dtype)
        return q, k, v

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, D = x.shape
        x = self.kernel(*self.heads(x))                                            # (B, h, T, d_h)
        return self.proj(x.transpose(1, 2).reshape(B, T, D))                       # (B, T, D)


class Mlp(nn.Module):
    """Pointwise feed-forward: Linear(D → 4D) → GELU (tanh approximation, as DiT) → Linear(4D → D)."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x), approximate="tanh"))          # (B, T, 4D) → (B, T, D)


class DiTBlock(nn.Module):
    """One DiT block with adaLN-Zero conditioning (paper §3.2, Fig. 3).

        β1, γ1, α1, β2, γ2, α2 = Linear(SiLU(c))                 six (B, D) vectors
        x = x + α1 ⊙ Attention(LN(x) · (1 + γ1) + β1)
        x = x + α2 ⊙ MLP(LN(x) · (1 + γ2) + β2)

    Why "Zero": the Linear that produces β, γ, α is initialised to zero, so at the start α = 0
    and the block is exactly the identity — a deep stack starts as a shallow network, which
    trains stably (the same reason ResNets zero the last BN γ of each residual block).
    Gradients still flow, one layer at a time.  The model's output Linear starts at zero too
    (`DiT.initialize_weights`), so at the first step ∂L/∂(block output) = 0 and only that
    Linear gets a gradient.  From the second step the gates do:
        ∂L/∂α1 = Σ_tokens ∂L/∂out ⊙ Attention(…) ≠ 0,  and ∂L/∂α2 likewise with the MLP.
    β, γ and the branch's own weights still see α = 0, so they get nothing until the gates have
    moved off zero, from the third step (tests/test_dit.py follows the model through it).
    """

    def __init__(self, hidden_size: int, num_heads: int, mlp_ratio: float = 4.0, qk_norm: bool = False):
        super().__init__()
        # No affine parameters: adaLN supplies a per-sample scale and shift instead.
        self.norm1 = nn.LayerNorm(hidden_size, elementwise_affine=False, eps=1e-6)
        self.attn = Attention(hidden_size, num_heads, qk_norm)
        self.norm2 = nn.LayerNorm(hidden_size, elementwise_affine=False, eps=1e-6)
        self.mlp = Mlp(hidden_size, int(hidden_size * mlp_ratio))
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(hidden_size, 6 * hidden_size))

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:   # x: (B, T, D), c: (B, D)
        shift1, scale1, gate1, shift2, scale2, gate2 = self.adaLN_modulation(c).chunk(6, dim=1)
        x = x + gate1[:, None, :] * self.attn(modulate(self.norm1(x), shift1, scale1))
        x = x + gate2[:, None, :] * self.mlp(modulate(self.norm2(x), shift2, scale2))
        return x                                                              # (B, T, D)


class FinalLayer(nn.Module):
    """adaLN (shift and scale, no gate) then Linear(D → p·p·C_out): each token back to a patch."""

    def __init__(self, hidden_size: int, patch_size: int, out_channels: int):
        super().__init__()
        self.norm_final = nn.LayerNorm(hidden_size, elementwise_affine=False, eps=1e-6)
        self.linear = nn.Linear(hidden_size, patch_size * patch_size * out_channels)
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(hidden_size, 2 * hidden_size))

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        shift, scale = self.adaLN_modulation(c).chunk(2, dim=1)
        return self.linear(modulate(self.norm_final(x), shift, scale))       # (B, T, p·p·C_out)


# ══ 3. The model ══════════════════════════════════════════════════════════════════════════════


class DiT(nn.Module):
    """Diffusion Transformer.  `forward(x_t, t, y)` returns ε̂ with the shape of x_t, or
    (B, 2C, H, W) when learn_sigma: ε̂ and improved DDPM's variance channels, which only set the
    output width here (the paper's parameter counts; no L_vlb, and DDIM reads ε̂ alone).
    Arguments are the paper's, plus qk_norm (ours, off by default: see Attention).
    """

    def __init__(self, input_size: int = 32, patch_size: int = 2, in_channels: int = 4,
                 hidden_size: int = 1152, depth: int = 28, num_heads: int = 16, mlp_ratio: float = 4.0,
                 class_dropout_prob: float = 0.1, num_classes: int = 1000, learn_sigma: bool = False,
                 qk_norm: bool = False):
        super().__init__()
        check_patch_size(input_size, patch_size)
        if hidden_size % num_heads:
            raise ValueError(f"hidden size {hidden_size} is not divisible by {num_heads} heads; "
                             f"pick heads that divide it (e.g. {hidden_size // 64 or 1})")
        if num_classes < 1:
            raise ValueError(f"num_classes must be at least 1 (1 for unlabelled data), got {num_classes}")
        # Everything needed to rebuild the model, saved in checkpoints.
        self.config = dict(input_size=input_size, patch_size=patch_size, in_channels=in_channels,
                           hidden_size=hidden_size, depth=depth, num_heads=num_heads,
                           mlp_ratio=mlp_ratio, class_dropout_prob=class_dropout_prob,
                           num_classes=num_classes, learn_sigma=learn_sigma, qk_norm=qk_norm)
        self.input_size, self.patch_size, self.in_channels = input_size, patch_size, in_channels
        self.out_channels = 2 * in_channels if learn_sigma else in_channels
        self.num_classes = num_classes
        # What cfg.guided_eps_fn asks of any model it guides: ε̂ is the first eps_channels output
        # channels, ∅ is label num_classes, and ∅ was learnt only if labels were dropped.
        self.eps_channels, self.null_label = in_channels, num_classes
        self.learnt_null = class_dropout_prob > 0

        self.x_embedder = PatchEmbed(patch_size, in_channels, hidden_size)
        self.t_embedder = TimestepEmbedder(hidden_size)
        self.y_embedder = LabelEmbedder(num_classes, hidden_size, class_dropout_prob)
        # A buffer, not a parameter: it is fixed, and rebuilt from the config on load.
        grid = input_size // patch_size
        self.register_buffer("pos_embed", sincos_2d_pos_embed(hidden_size, grid)[None], persistent=False)
        self.blocks = nn.ModuleList(DiTBlock(hidden_size, num_heads, mlp_ratio, qk_norm) for _ in range(depth))
        self.final_layer = FinalLayer(hidden_size, patch_size, self.out_channels)
        self.initialize_weights()

    def initialize_weights(self) -> None:
        """DiT's initialisation (paper §3.2 and its code)."""
        # Transformer layers: Xavier-uniform weights, zero biases (as ViT).
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)
        # The patch embedding is a linear map on flattened patches: initialise it as one.
        w = self.x_embedder.proj.weight
        nn.init.xavier_uniform_(w.view(w.shape[0], -1))
        nn.init.zeros_(self.x_embedder.proj.bias)
        # Embedding tables and the timestep MLP: small normal (std 0.02).
        nn.init.normal_(self.y_embedder.embedding_table.weight, std=0.02)
        nn.init.normal_(self.t_embedder.mlp[0].weight, std=0.02)
        nn.init.normal_(self.t_embedder.mlp[2].weight, std=0.02)
        # adaLN-Zero: every modulation regressor outputs zeros, so each block is the identity…
        for block in self.blocks:
            nn.init.zeros_(block.adaLN_modulation[-1].weight)
            nn.init.zeros_(block.adaLN_modulation[-1].bias)
        # …and the output layer predicts ε̂ = 0 at the start.
        nn.init.zeros_(self.final_layer.adaLN_modulation[-1].weight)
        nn.init.zeros_(self.final_layer.adaLN_modulation[-1].bias)
        nn.init.zeros_(self.final_layer.linear.weight)
        nn.init.zeros_(self.final_layer.linear.bias)

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """x_t: (B, C, H, W) noisy images; t: (B,) steps in 0 … T−1; y: (B,) class labels
        (num_classes for ∅).  Returns (B, C_out, H, W)."""
        B, C, H, W = x_t.shape
        if (C, H, W) != (self.in_channels, self.input_size, self.input_size):
            raise ValueError(f"DiT was built for inputs ({self.in_channels}, {self.input_size}, "
                             f"{self.input_size}), got {tuple(x_t.shape[1:])}")
        x = self.x_embedder(x_t) + self.pos_embed.to(x_t.dtype)      # (B, T, D), T = H·W/p²
        c = self.t_embedder(t) + self.y_embedder(y)                   # (B, D)
        for block in self.blocks:
            x = block(x, c)                                           # (B, T, D)
        x = self.final_layer(x, c)                                    # (B, T, p·p·C_out)
        return unpatchify(x, self.patch_size, self.out_channels, H, W)  # (B, C_out, H, W)

    def eps(self, x_t: torch.Tensor, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Only the noise prediction ε̂ (the first C channels), whatever learn_sigma is."""
        return self(x_t, t, y)[:, : self.in_channels]


# ══ 4. Named configs:  the paper's Table 1, plus small ones a 2-core CPU can train ════════════

_SIZES = {
    # name: (depth N, hidden D, heads)                          Gflops at 256² / p = 4 (paper)
    "S": (12, 384, 6),                                          # 1.4
    "B": (12, 768, 12),                                         # 5.6
    "L": (24, 1024, 16),                                        # 19.7
    "XL": (28, 1152, 16),                                       # 29.1
    # CPU sizes (ours, not the paper's):
    "Ti": (6, 256, 4),    # "tiny": the benchmark config, trains one 32 px epoch in minutes
    "Mi": (2, 64, 2),     # "micro": for tests, a forward pass in milliseconds
}
DIT_CONFIGS = {
    f"DiT-{size}/{p}": dict(depth=depth, hidden_size=hidden, num_heads=heads, patch_size=p)
    for size, (depth, hidden, heads) in _SIZES.items()
    for p in (2, 4, 8)
}


def build_dit(name: str, **overrides) -> DiT:
    """`build_dit("DiT-S/4", input_size=32, in_channels=3, num_classes=10)`; any keyword of
    `DiT` overrides the named config (e.g. patch_size)."""
    if name not in DIT_CONFIGS:
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join(DIT_CONFIGS)}")
    return DiT(**{**DIT_CONFIGS[name], **overrides})


# ══ 5. Counting compute ═══════════════════════════════════════════════════════════════════════

from torch.utils.flop_counter import FlopCounterMode, register_flop_formula, sdpa_flop_count

# torch's FLOP counter knows the CUDA attention kernels but not the fused CPU one, so on a CPU
# it would count attention as free.  Register the same formula (2·B·h·T²·d_h per matmul).
_cpu_sdpa = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu
if _cpu_sdpa not in torch.utils.flop_counter.flop_registry:
    @register_flop_formula(_cpu_sdpa)
    def _cpu_sdpa_flops(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs):
        return sdpa_flop_count(query_shape, key_shape, value_shape)


def forward_gflops(model: DiT, batch_size: int = 1) -> float:
    """GFLOPs of one forward pass per image, in the DiT paper's convention: one multiply-add
    counts once (torch counts 2, so we halve).  The paper's DiT-XL/2 at 32×32×4 is 118.6."""
    cfg = model.config
    dev = next(model.parameters()).device
    x = torch.zeros(batch_size, cfg["in_channels"], cfg["input_size"], cfg["input_size"], device=dev)
    t = torch.zeros(batch_size, dtype=torch.long, device=dev)
    y = torch.zeros(batch_size, dtype=torch.long, device=dev)
    was_training = model.training
    model.eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(x, t, y)
    model.train(was_training)
    return counter.get_total_flops() / 2 / batch_size / 1e9


# ══ 6. The DDIM sampler (Song et al. 2021) ════════════════════════════════════════════════════
#
# DDIM notation crosswalk: DDIM's α_t is DDPM's ᾱ_t; we write ᾱ throughout.


def ddim_timesteps(T: int, num_steps: int, spacing: str = "leading") -> list[int]:
    """The n = num_steps steps DDIM visits, largest first (Lin et al. 2023, Table 2; diffusers'
    DDIMScheduler with steps_offset=0, exactly):
    leading   t_i = i·k, i = n−1 … 0, k = T // n: ends at t = 0 (diffusers' default), but may start
              well below T−1, where training inputs held more signal than x_T ~ N(0, I) has;
    trailing  t_i = round(T − i·T/n) − 1, i = 0 … n−1: starts at T−1, nearly pure noise like x_T
              (ᾱ_{T−1} ≈ 4e-5 on the linear schedule); Lin et al. recommend it."""
    if not 1 <= num_steps <= T:
        raise ValueError(f"num_steps must be between 1 and T = {T}, got {num_steps}")
    if spacing == "leading":
        k = T // num_steps
        return [i * k for i in reversed(range(num_steps))]
    if spacing == "trailing":
        # Lin et al.'s and diffusers' expression, in NumPy on purpose: at a tie (e.g. n = 48)
        # arange's float error decides the rounding.  [:n] drops arange's overshoot (n = 61).
        t = np.round(np.arange(T, 0, -T / num_steps)).astype(np.int64) - 1
        return t[:num_steps].tolist()
    raise ValueError(f"spacing must be 'leading' or 'trailing', got {spacing!r}")


def predict_x0(x_t: torch.Tensor, eps_hat: torch.Tensor, a_t: float | torch.Tensor,
               clip_x0: float | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The clean image a noise prediction implies, and the noise consistent with it:
        x̂0 = (x_t − √(1−ᾱ_t) · ε̂) / √ᾱ_t                        (DDIM eq. 9, DDPM eq. 15)
    With clip_x0 = c, x̂0 is clamped to [−c, c] (DDPM's clip_denoised) and ε̂ re-derived from it,
    ε̂ = (x_t − √ᾱ_t · x̂0) / √(1−ᾱ_t), so an update built from the pair points at the image kept.
    a_t is ᾱ_t: a float, or a tensor that broadcasts against x_t.  Returns (x0_hat, eps_hat)."""
    sqrt = torch.sqrt if isinstance(a_t, torch.Tensor) else math.sqrt
    x0_hat = (x_t - sqrt(1 - a_t) * eps_hat) / sqrt(a_t)
    if clip_x0 is not None:
        x0_hat = x0_hat.clamp(-clip_x0, clip_x0)
        eps_hat = (x_t - sqrt(a_t) * x0_hat) / sqrt(1 - a_t)
    return x0_hat, eps_hat


@torch.no_grad()
def ddim_sample(eps_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], x_T: torch.Tensor,
                alpha_bar: torch.Tensor, num_steps: int, eta: float = 0.0, generator: torch.Generator | None = None,
                spacing: str = "leading", clip_x0: float | None = None,
                ) -> Iterator[tuple[int, torch.Tensor, torch.Tensor]]:
    """Run DDIM from x_T, yielding (t, x_t, x0_hat) at every step, largest t first.

    eps_fn(x_t, t) is any noise predictor — `lambda x, t: model.eps(x, t, y)`, or a guided one.
    x0_hat is the model's current guess of the clean image; after the last step ᾱ_prev = 1 and
    σ = 0, so the final sample *is* the last x0_hat:  `*_, (_, _, x0) = ddim_sample(...)`.

    At each t, with t' the next step in the list (ᾱ_t' = 1 after the last):
        x̂0   = (x_t − √(1−ᾱ_t) · ε̂) / √ᾱ_t                       (DDIM eq. 9, DDPM eq. 15)
        σ    = η · √((1−ᾱ_t')/(1−ᾱ_t)) · √(1 − ᾱ_t/ᾱ_t')          (DDIM eq. 16)
        x_t' = √ᾱ_t' · x̂0 + √(1 − ᾱ_t' − σ²) · ε̂ + σ · z           (DDIM eq. 12)
    η = 0 is deterministic (an ODE solver).  η = 1 over all T steps is exactly DDPM's ancestral
    sampler with σ_t² = β̃_t = (1−ᾱ_{t−1})/(1−ᾱ_t) · β_t (DDPM §3.2): with ᾱ_t/ᾱ_t' = 1 − β_t
    eq. 16 gives β̃_t, and eq. 12's mean is DDPM's posterior mean μ̃_t(x_t, x̂0) (DDPM eq. 7).
    clip_x0 clamps x̂0 (`predict_x0`); with η = 1 that is DDPM's clip_denoised.
    """
    T = alpha_bar.shape[0]
    steps = ddim_timesteps(T, num_steps, spacing)
    x_t = x_T
    for i, t in enumerate(steps):
        a_t = alpha_bar[t].item()                                    # float64 scalars
        a_prev = alpha_bar[steps[i + 1]].item() if i + 1 < len(steps) else 1.0
        t_batch = torch.full((x_t.shape[0],), t, device=x_t.device, dtype=torch.long)
        eps_hat = eps_fn(x_t, t_batch).to(x_t.dtype)                # (B, C, H, W)

        x0_hat, eps_hat = predict_x0(x_t, eps_hat, a_t, clip_x0)   # eq. 9 (and clipping)
        yield t, x_t, x0_hat

        sigma = eta * math.sqrt((1 - a_prev) / (1 - a_t)) * math.sqrt(1 - a_t / a_prev)
        x_t = math.sqrt(a_prev) * x0_hat + math.sqrt(max(1 - a_prev - sigma**2, 0.0)) * eps_hat
        if eta > 0:
            z = torch.randn(x_t.shape, generator=generator, device=x_t.device, dtype=x_t.dtype)
            x_t = x_t + sigma * z


def conditional_eps(model, y: torch.Tensor) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """eps_fn(x_t, t) = ε̂(x_t, t, y) of a sampling model for labels y (B,), unguided: the first
    eps_channels of its output (the rest are learned-Σ channels, which DDIM does not use)."""
    return lambda x_t, t: model(x_t, t, y)[:, :model.eps_channels]


@torch.inference_mode()
def draw_samples(model, eps_fn, x_T: torch.Tensor, num_steps: int, precision: str = "fp32",
                 spacing: str = "trailing") -> torch.Tensor:
    """Images from a sampling model (`TrainedDiT`, `DiffusersDiT`) with DDIM (η = 0) from x_T and
    any noise predictor eps_fn(x_t, t) — the conditional model, or cfg.guided_eps_fn — clipping
    x̂0 to the model's range, decoded, in [−1, 1] on the CPU: (B, 3, H', W').  Trailing spacing
    starts at t = T−1, nearly pure noise as in training (Lin et al. 2023)."""
    with autocast(x_T.device, precision):
        *_, (_, _, x0) = ddim_sample(eps_fn, x_T, model.alpha_bar, num_steps, spacing=spacing,
                                     clip_x0=model.clip_x0)
    return model.decode(x0.float()).float().cpu()

# ══ 7. Loading a trained model ════════════════════════════════════════════════════════════════


def read_checkpoint(path, mmap: bool = False) -> dict:
    """The dict that train_one_epoch.py saved (a checkpoint.pt or an --export file), on the CPU;
    weights_only (loading runs no code from the file), mmap (the config alone costs no 100 MB
    read).  FileNotFoundError for no file; a one-line ValueError for a file that is not one."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}: train one with `python train_one_epoch.py` "
                                f"and pass its runs/<name>/checkpoint.pt or its --export file")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
        state["config"]["model"].setdefault("qk_norm", False)        # files from before the option
        state["ema"], state["config"]["diffusion"]                 # both needed by every reader
    except Exception as e:                # a torch or pickle error, or a dict without those keys
        raise ValueError(f"{path} is not a checkpoint of train_one_epoch.py ({type(e).__name__}); "
                         f"pass a checkpoint.pt or an --export file") from None
    return state


def load_dit_checkpoint(path, device="cpu") -> tuple[DiT, dict, list[str]]:
    """A trained DiT from a checkpoint of train_one_epoch.py: its EMA weights, in fp32, in eval
    mode (no label dropout).  Returns (model, config, class_names); config holds the model's
    arguments and the diffusion it was trained with (T, schedule)."""
    state = read_checkpoint(path)
    config = state["config"]
    model = DiT(**config["model"])
    model.load_state_dict({k: v.float() for k, v in state["ema"].items()})
    class_names = state.get("class_names") or [str(i) for i in range(model.num_classes)]
    return model.to(device).eval().requires_grad_(False), config, class_names


class TrainedDiT:
    """Our DiT from a checkpoint of train_one_epoch.py, behind the interface every sampling script
    uses (shared with diffusers_dit.DiffusersDiT): model(x_t, t, y) → output whose first
    eps_channels are ε̂, null_label, num_classes, class_names, alpha_bar, shape (C, H, W) of x_T,
    clip_x0 and decode(x0) → pixels.  `net` may be replaced by torch.compile(net)."""

    in_pixels = True           # x̂0 is an image: decoding it is free
    clip_x0 = 1.0              # pixel-space images live in [−1, 1]: DDPM's clip_denoised

    def __init__(self, path, device: torch.device):
        self.net, self.config, self.class_names = load_dit_checkpoint(path, device)
        diffusion = self.config["diffusion"]
        self.alpha_bar = alpha_bar_from_betas(make_betas(diffusion["schedule"], diffusion["T"])).to(device)
        self.shape = (self.net.in_channels, self.net.input_size, self.net.input_size)
        self.eps_channels, self.num_classes = self.net.eps_channels, self.net.num_classes
        self.null_label, self.learnt_null = self.net.null_label, self.net.learnt_null

    def __call__(self, x_t: torch.Tensor, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.net(x_t, t, y)

    def decode(self, x0: torch.Tensor) -> torch.Tensor:
        return x0                                               # pixel space already; no clamp


def load_sampling_model(checkpoint=None, hub_model: str | None = None, device="cpu"):
    """`DiffusersDiT(hub_model)` (the paper's own DiT-XL/2, diffusers_dit.py) when one is named,
    else `TrainedDiT(checkpoint)`; a missing or wrong checkpoint is a one-line SystemExit."""
    if hub_model:
        from diffusers_dit import DiffusersDiT

        return DiffusersDiT(hub_model, torch.device(device))
    try:
        return TrainedDiT(checkpoint, torch.device(device))
    except (FileNotFoundError, ValueError) as e:      # a folder, or a file that is not a checkpoint
        raise SystemExit(f"--checkpoint: {e}") from None


SHIPPED = Path(__file__).resolve().parent / "checkpoints" / "dit_landscapes.pt"    # the shipped model


def output_folder(report: str, checkpoint, hub_model: str | None) -> str:
    """Where a sampling script writes when --out is not given: its committed `report` folder for
    the shipped model, runs/<that folder's name>_<model name> for any other, so that another
    model's outputs never overwrite the shipped model's."""
    if hub_model is None and Path(checkpoint).resolve() == SHIPPED:
        return report
    return f"runs/{Path(report).name}_{Path(hub_model or checkpoint).stem}"


# ══ 8. bf16 autocast ══════════════════════════════════════════════════════════════════════════


def autocast(device: torch.device, precision: str):
    """bf16 autocast: matrix products in bf16, reductions (softmax, LayerNorm, the loss) in fp32.
    The weights, the optimiser state and the EMA stay fp32, so nothing is lost between steps."""
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


# ══ 9. python dit.py — the configs at a glance ════════════════════════════════════════════════


def main(args: argparse.Namespace) -> None:
    print(f"{'config':<10} {'depth':>5} {'D':>5} {'heads':>5} {'tokens':>6} {'parameters':>13} {'GFLOPs':>9}"
          f"   at {args.image_size}×{args.image_size}×{args.channels}, {args.num_classes} classes")
    for name, cfg in DIT_CONFIGS.items():
        if args.image_size % cfg["patch_size"] == 0:
            with torch.device("meta"):                  # no memory, no compute: shapes only
                model = build_dit(name, input_size=args.image_size, in_channels=args.channels,
                                  num_classes=args.num_classes)
            print(f"{name:<10} {cfg['depth']:>5} {cfg['hidden_size']:>5} {cfg['num_heads']:>5} "
                  f"{(args.image_size // cfg['patch_size']) ** 2:>6} "
                  f"{sum(p.numel() for p in model.parameters()):>13,} {forward_gflops(model):>9.3f}")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description="Print the DiT configs with parameters and GFLOPs "
                                 "(multiply-adds per image, the paper's convention).")
    ap.add_argument("--image-size", type=int, default=32, help="input resolution (pixels or latents)")
    ap.add_argument("--channels", type=int, default=3, help="input channels (3 for RGB, 4 for SD latents)")
    ap.add_argument("--num-classes", type=int, default=10, help="number of class labels")
    main(ap.parse_args())
