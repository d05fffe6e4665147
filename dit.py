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

What lives here and is imported elsewhere:
  DiT, DIT_CONFIGS, build_dit   the model and the paper's named configs (S/B/L/XL × /2 /4 /8)
  forward_gflops                the cost of one forward pass, in the paper's convention
  ddim_sample                   the one sampler of the project (Song et al. 2021, eq. 12)
  predict_x0                    x̂0 from ε̂ (DDIM eq. 9), optionally clipped; the sampler's step
  read_checkpoint, load_dit_checkpoint   a trained model's file, checked; the model rebuilt
  TrainedDiT, DiffusersDiT      the models every sampling script draws from, one interface
  pick_device, autocast, …      where it runs: the device, bf16 where it pays, and Linear,
                                nn.Linear on the faster CPU backend in inference

`python dit.py` prints the configs with their parameters and GFLOPs at 32×32×3 (seconds).
Shapes use one legend: B batch, C channels, H, W height and width, T tokens, D width, p patch.
T inside a shape, and in attention's T × T, counts tokens; everywhere else (t = 0 … T−1, the
schedule, the sampler) T is the number of diffusion steps, as in the papers.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import platform
import tempfile
from typing import Callable, Iterator

# torch.compile keeps what it compiled in an on-disk cache (TORCHINDUCTOR_CACHE_DIR, by default
# <tmp>/torchinductor_<user>) that does not tell kernels compiled under ATEN_CPU_CAPABILITY (the
# AVX2 stand-in of bench/README.md) from those compiled without it.  On the Ice Lake Xeon a
# compiled Mlp under ATEN_CPU_CAPABILITY=avx2, run after a run without it, returned values off
# by 1e12, and a run without it after one with it died in malloc.  So such a run gets a cache of
# its own, unless the user chose one.  Before torch: importing torch._dynamo fixes the folder.
if os.environ.get("ATEN_CPU_CAPABILITY"):
    os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", os.path.join(
        tempfile.gettempdir(), f"torchinductor_aten_{os.environ['ATEN_CPU_CAPABILITY'].lower()}"))

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from forward_process import PatchEmbed, TimestepEmbedder, check_patch_size, unpatchify

# ════════════════════════════════════════════════════════════════════════════════════════════
# 1. Embeddings: positions and class labels  (timesteps and patches live in forward_process.py)
# ════════════════════════════════════════════════════════════════════════════════════════════


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

    The table has num_classes + 1 rows: row `num_classes` is the null class ∅.  In training
    (model.train()) each label is replaced by ∅ with probability `dropout_prob`, so one network
    learns both ε̂(x_t, t, y) and ε̂(x_t, t, ∅); cfg.py mixes the two at sampling time.  In
    model.eval() nothing is dropped — forgetting eval() silently drops 10% of the labels.
    DiT's code adds the ∅ row only when dropout_prob > 0; here it is always there (cfg.py asks
    model.learnt_null instead), so with no dropout the count is D parameters above DiT's.
    """

    def __init__(self, num_classes: int, hidden_size: int, dropout_prob: float):
        super().__init__()
        self.num_classes = num_classes
        self.dropout_prob = dropout_prob
        self.embedding_table = nn.Embedding(num_classes + 1, hidden_size)

    def forward(self, y: torch.Tensor) -> torch.Tensor:                  # y: (B,) int64
        if not torch.compiler.is_compiling() and y.device.type != "meta":
            if y.dtype not in (torch.int32, torch.int64):
                raise ValueError(f"labels must be integers, got {y.dtype}")
            # The range check reads y back to the host.  On a GPU in training that wait would
            # stall every step, so there it is skipped: a training loop's labels are class
            # indices 0 … K−1 by construction (landscapes.load_images numbers the class
            # folders), and a bad one would end in CUDA's device-side assert instead of this
            # message.  On a CPU the check is free, and in sampling it is small beside the
            # forward pass.
            if y.numel() and (y.device.type == "cpu" or not self.training) and (
                    y.min() < 0 or y.max() > self.num_classes):
                raise ValueError(
                    f"labels must lie in 0 … {self.num_classes - 1}, or be {self.num_classes} for "
                    f"the null class; got values from {y.min().item()} to {y.max().item()}")
        if self.training and self.dropout_prob > 0:
            drop = torch.rand(y.shape, device=y.device) < self.dropout_prob
            y = torch.where(drop, torch.full_like(y, self.num_classes), y)
        return self.embedding_table(y)                                   # (B, D)


# ════════════════════════════════════════════════════════════════════════════════════════════
# 2. The Transformer block with adaLN-Zero
# ════════════════════════════════════════════════════════════════════════════════════════════


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """adaLN:  x · (1 + γ) + β  with γ = scale, β = shift regressed from c, per sample.

    x: (B, T, D); shift, scale: (B, D).  "1 +" makes γ = 0 mean "leave the norm alone".
    Under bf16 autocast the LayerNorm hands over fp32 while γ and β come out of a Linear in
    bf16; the result only feeds a bf16 matrix product, so it is computed in γ's dtype: half the
    memory traffic, and no separate cast before the product (same numbers in fp32).
    """
    return x.to(scale.dtype) * (1 + scale[:, None, :]) + shift[:, None, :]


def attention_logits(q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """Q Kᵀ / √d_h: q, k (B, h, T, d_h) → (B, h, T, T), the scores softmax turns into weights."""
    return (q * q.shape[-1] ** -0.5) @ k.transpose(-2, -1)


def attention_written_out(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """softmax(Q Kᵀ / √d_h) V with the (T × T) score matrix made explicit.

    q, k, v: (B, h, T, d_h) → (B, h, T, d_h).  Same maths as F.scaled_dot_product_attention."""
    return attention_logits(q, k).softmax(dim=-1) @ v                    # (B, h, T, d_h)


class Attention(nn.Module):
    """Multi-head self-attention:  softmax(Q Kᵀ / √d_h) V  per head, heads concatenated.

    qk_norm (not in the DiT paper; ViT-22B, Dehghani et al. 2023, normalises q and k with
    LayerNorm, SD3 with RMSNorm, as here): RMS-normalise each head's query and key, with a
    learnt gain g, before their dot product.  Then
    |q·k|/√d_h ≤ √d_h·max|g_q|·max|g_k| whatever the weights do, which bounds the attention
    logits.  Without it they can grow until softmax puts all weight on one token (entropy
    collapse) and training diverges: REPORT.md, "Divergence and QK-norm", shows it in block 0."""

    def __init__(self, dim: int, num_heads: int, qk_norm: bool = False):
        super().__init__()
        self.num_heads = num_heads
        self.qkv = Linear(dim, 3 * dim)          # Q, K and V in one matrix product
        self.proj = Linear(dim, dim)             # (Linear: nn.Linear, fast on CPUs; section 5)
        self.qk_norm = qk_norm
        if qk_norm:              # x / rms(x) · g over each head's d_h channels, g learnt (init 1)
            self.q_norm = nn.RMSNorm(dim // num_heads, eps=1e-6)
            self.k_norm = nn.RMSNorm(dim // num_heads, eps=1e-6)

    def heads(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """x (B, T, D) → q, k, v, each (B, h, T, d_h), q and k normalised when qk_norm."""
        B, T, D = x.shape
        qkv = self.qkv(x).reshape(B, T, 3, self.num_heads, D // self.num_heads)   # (B, T, 3, h, d_h)
        if not self.qk_norm:
            q, k, v = qkv.permute(2, 0, 3, 1, 4)                                   # 3 × (B, h, T, d_h)
            return q, k, v
        # q and k normalised together, before the heads are split off: in this layout a token's
        # q and k lie side by side in memory, so one pass walks it in order (normalising the
        # permuted (B, h, T, d_h) views one by one took ~2× as long on a CPU).  In fp32, the gains'
        # dtype, then back to v's (bf16 under autocast).  The same numbers as q_norm(q), k_norm(k).
        gains = torch.stack([self.q_norm.weight, self.k_norm.weight])[:, None, :]     # (2, 1, d_h)
        qk = F.rms_norm(qkv[:, :, :2].float(), (qkv.shape[-1],), eps=self.q_norm.eps) * gains
        q, k = qk.to(qkv.dtype).permute(2, 0, 3, 1, 4)                             # 2 × (B, h, T, d_h)
        return q, k, qkv[:, :, 2].transpose(1, 2)                                  # v: (B, h, T, d_h)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, D = x.shape
        x = attend(*self.heads(x))                                                 # (B, h, T, d_h)
        return self.proj(x.transpose(1, 2).reshape(B, T, D))                       # (B, T, D)


# Asked once, at import, like _CPU_HAS_BF16_UNITS below: whether this CPU has AMX tile units
# (Intel Sapphire Rapids and later), the matrix units PyTorch's fused CPU attention uses in bf16.
_CPU_HAS_AMX = hasattr(torch.cpu, "_is_amx_tile_supported") and torch.cpu._is_amx_tile_supported()


def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """softmax(Q Kᵀ / √d_h) V, q, k, v (B, h, T, d_h) → (B, h, T, d_h), by the faster kernel."""
    if q.is_cuda or q.dtype == torch.float32 or _CPU_HAS_AMX:
        # The fused (flash) kernel never stores the (T × T) matrix: fast, and O(T) memory.
        return F.scaled_dot_product_attention(q, k, v)
    # On a CPU in bf16 without AMX (AVX-512-BF16 only) the fused kernel is the slower one at our
    # lengths; with AMX it is the faster (bench/README.md).
    return attention_written_out(q, k, v)


def gelu_tanh_as_sigmoid(x: torch.Tensor) -> torch.Tensor:
    """DiT's GELU, tanh approximation:  ½·x·(1 + tanh u),  u = √(2/π)·(x + 0.044715·x³),
    written as  x·σ(2u)  — the same function, because ½(1 + tanh u) = σ(2u)."""
    u = 0.7978845608028654 * (x + 0.044715 * x * x * x)
    return x * torch.sigmoid(2.0 * u)


class Mlp(nn.Module):
    """Pointwise feed-forward: Linear(D → 4D) → GELU (tanh approximation, as DiT) → Linear(4D → D)."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = Linear(dim, hidden)
        self.fc2 = Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # GELU inside fc1's oneDNN kernel saves a pass over the (B, T, 4D) activation; compiled,
        # it stays there only where oneDNN's GELU is cheap (AVX-512; see _ONEDNN_GELU_IS_CHEAP).
        if self.fc1.runs_on_onednn(x) and (_ONEDNN_GELU_IS_CHEAP or not torch.compiler.is_compiling()):
            return self.fc2(self.fc1(x, gelu=True))
        h = self.fc1(x)                                                    # (B, T, 4D)
        if torch.compiler.is_compiling():
            # torch.compile fuses the sigmoid form into one loop that needs one exp per element
            # instead of a tanh: GELU forward + backward on DiT-Ti/2's (16384, 1024) bf16
            # activations took 36 ms against 53 ms here.  Eager PyTorch would run the five
            # operations as five passes over memory, so there F.gelu's single kernel is faster.
            h = gelu_tanh_as_sigmoid(h)
        else:
            h = F.gelu(h, approximate="tanh")
        return self.fc2(h)                                                 # (B, T, D)


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
        self.linear = Linear(hidden_size, patch_size * patch_size * out_channels)
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(hidden_size, 2 * hidden_size))

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        shift, scale = self.adaLN_modulation(c).chunk(2, dim=1)
        return self.linear(modulate(self.norm_final(x), shift, scale))       # (B, T, p·p·C_out)


# ════════════════════════════════════════════════════════════════════════════════════════════
# 3. The model
# ════════════════════════════════════════════════════════════════════════════════════════════


class DiT(nn.Module):
    """Diffusion Transformer.  `forward(x_t, t, y)` returns ε̂ with the shape of x_t, or
    (B, 2C, H, W) = [ε̂, v′] when learn_sigma.  The raw channels v′ set the reverse variance
    between β̃_t (v′ = −1) and β_t (v′ = 1):
        v = (v′ + 1)/2,   Σ = exp(v · log β_t + (1 − v) · log β̃_t)        (improved DDPM eq. 15)
    The paper's models learn Σ, trained only by the L_vlb term of improved DDPM's hybrid loss.
    This project does not implement L_vlb, so here learn_sigma only sets the output width (the
    paper's parameter counts), and the DDIM sampler reads ε̂ alone.

    Arguments are the paper's: input_size I (pixels, or latent size), patch_size p,
    in_channels C, hidden_size D, depth N, num_heads, mlp_ratio, class_dropout_prob (label
    dropout for guidance), num_classes, learn_sigma; and qk_norm (ours, off by default as in the
    paper: see Attention).
    """

    def __init__(
        self,
        input_size: int = 32,
        patch_size: int = 2,
        in_channels: int = 4,
        hidden_size: int = 1152,
        depth: int = 28,
        num_heads: int = 16,
        mlp_ratio: float = 4.0,
        class_dropout_prob: float = 0.1,
        num_classes: int = 1000,
        learn_sigma: bool = False,
        qk_norm: bool = False,
    ):
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



# ════════════════════════════════════════════════════════════════════════════════════════════
# 4. Named configs:  the paper's Table 1, plus small ones a 2-core CPU can train
# ════════════════════════════════════════════════════════════════════════════════════════════

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


def read_checkpoint(path, mmap: bool = False) -> dict:
    """The dict that train_one_epoch.py saved (a full checkpoint.pt or an --export file), on the
    CPU.  weights_only: loading runs no code from the file.  mmap: tensors are read only when
    touched, so asking for the config costs no 100 MB read.  A config older than the qk_norm
    option gains qk_norm=False, as it was trained.  FileNotFoundError for no file; ValueError,
    in one line, for a file that is not such a checkpoint."""
    from pathlib import Path

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}: train one with `python train_one_epoch.py` "
                                f"and pass its runs/<name>/checkpoint.pt or its --export file")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
        state["config"]["model"]["qk_norm"] = state["config"]["model"].get("qk_norm", False)
        state["ema"], state["config"]["diffusion"]                 # both needed by every reader
    except Exception as e:                # a torch or pickle error, or a dict without those keys
        raise ValueError(f"{path} is not a checkpoint of train_one_epoch.py ({type(e).__name__}); "
                         f"pass a checkpoint.pt or an --export file") from None
    return state


def load_dit_checkpoint(path, device="cpu") -> tuple[DiT, dict, list[str]]:
    """Rebuild a trained DiT for sampling from a checkpoint of train_one_epoch.py (the full
    training state, or the small file that `--export` writes): its EMA weights, in fp32, in
    eval mode (no label dropout).  Returns (model, config, class_names); config holds the
    model's arguments and the diffusion it was trained with (T, schedule).  Raises as
    `read_checkpoint` does."""
    state = read_checkpoint(path)
    config = state["config"]
    model = DiT(**config["model"])
    model.load_state_dict({k: v.float() for k, v in state["ema"].items()})
    class_names = state.get("class_names") or [str(i) for i in range(model.num_classes)]
    return model.to(device).eval().requires_grad_(False), config, class_names


class TrainedDiT:
    """Our DiT from a checkpoint of train_one_epoch.py, behind the interface every sampling
    script uses (shared with `DiffusersDiT`):
        model(x_t, t, y) → (B, C_out, H, W)   the network's whole output; ε̂ is its first
                                              `eps_channels` channels (the rest: learned Σ)
        null_label, num_classes, class_names, alpha_bar (the schedule it was trained with),
        shape (C, H, W) of x_T, in_pixels, clip_x0 (x̂0's range, or None), decode(x) → pixels:
        here the identity, unclamped (so a decoded x_t keeps its range); DiffusersDiT's VAE
        decode clamps to [−1, 1].
    `net` is the nn.Module, so a script may replace it by torch.compile(net)."""

    in_pixels = True           # x̂0 is an image: decoding it is free
    clip_x0 = 1.0              # pixel-space images live in [−1, 1]: DDPM's clip_denoised

    def __init__(self, path, device: torch.device):
        from forward_process import alpha_bar_from_betas, make_betas

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


class DiffusersDiT:
    """The pretrained DiT of Peebles & Xie through diffusers (transformer + Stable Diffusion VAE),
    with `TrainedDiT`'s interface.  `source` is a hub id, looked up in the local Hugging Face
    cache only (nothing is downloaded), or a folder laid out like the hub repository:
    transformer/, vae/, scheduler/scheduler_config.json."""

    in_pixels = False                                           # x̂0 is a latent: a VAE pass
    clip_x0 = None                                              # latents have no fixed range

    def __init__(self, source: str, device: torch.device):
        from diffusers import AutoencoderKL, DiTTransformer2DModel

        try:
            self.net = DiTTransformer2DModel.from_pretrained(
                source, subfolder="transformer", local_files_only=True, low_cpu_mem_usage=False).to(device).eval()
            self.vae = AutoencoderKL.from_pretrained(
                source, subfolder="vae", local_files_only=True, low_cpu_mem_usage=False).to(device).eval()
        except (OSError, ValueError) as e:
            raise SystemExit(
                f"--model {source}: not found locally ({type(e).__name__}). This machine is offline; on "
                f"a connected one run `huggingface-cli download {source}` (or "
                f"`python -c \"from diffusers import DiTPipeline; DiTPipeline.from_pretrained('{source}')\"`) "
                f"and copy ~/.cache/huggingface here, or pass the downloaded folder to --model") from None
        self.alpha_bar = self._alpha_bar(source).to(device)
        cfg = self.net.config
        self.shape = (cfg.in_channels, cfg.sample_size, cfg.sample_size)
        self.eps_channels = cfg.in_channels                     # then C channels of learned Σ
        self.num_classes = cfg.num_embeds_ada_norm
        self.null_label = self.num_classes                      # diffusers' row 1000 is ∅ too
        self.learnt_null = True                                 # DiT trained with 10% dropout
        self.class_names = [str(i) for i in range(self.num_classes)]
        self.scaling = self.vae.config.scaling_factor           # 0.18215 for the SD VAE

    @staticmethod
    def _alpha_bar(source: str) -> torch.Tensor:
        """The DiT pipeline's schedule, DDPM's linear β (`make_betas("linear", T)`), checked
        against the pipeline's scheduler config if it has one."""
        from diffusers import DDIMScheduler
        from forward_process import LINEAR_BETA_RANGE, alpha_bar_from_betas, make_betas

        try:
            cfg = DDIMScheduler.load_config(source, subfolder="scheduler", local_files_only=True)
        except (OSError, ValueError):
            cfg = {}                                            # no config: DiT's schedule
        # A key the config leaves out takes diffusers' default, which is DDPM's schedule at
        # T = 1000.  Our β_1 and β_T at the config's T carry the 1000/T rule of make_betas.
        T = cfg.get("num_train_timesteps", 1000)
        betas = make_betas("linear", T)
        if cfg.get("beta_schedule", "linear") != "linear" or \
                abs(cfg.get("beta_start", LINEAR_BETA_RANGE[0]) - betas[0].item()) > 1e-9 or \
                abs(cfg.get("beta_end", LINEAR_BETA_RANGE[1]) - betas[-1].item()) > 1e-9:
            raise SystemExit(f"--model {source}: its scheduler config {cfg} is not DiT's linear schedule")
        return alpha_bar_from_betas(betas)

    def __call__(self, x_t: torch.Tensor, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.net(x_t, timestep=t, class_labels=y).sample          # (B, 2C, h, w)

    @torch.no_grad()
    def decode(self, z0: torch.Tensor) -> torch.Tensor:
        """Latent x̂0 → pixels in [−1, 1] (the VAE works on latents scaled by 1/0.18215)."""
        return self.vae.decode(z0 / self.scaling).sample.clamp(-1, 1)


def load_sampling_model(checkpoint=None, hub_model: str | None = None, device="cpu"):
    """`DiffusersDiT(hub_model)` when one is named, else `TrainedDiT(checkpoint)`; a missing or
    wrong checkpoint is a one-line SystemExit naming the flag."""
    if hub_model:
        return DiffusersDiT(hub_model, torch.device(device))
    try:
        return TrainedDiT(checkpoint, torch.device(device))
    except (FileNotFoundError, ValueError) as e:      # a folder, or a file that is not a checkpoint
        raise SystemExit(f"--checkpoint: {e}") from None


# ════════════════════════════════════════════════════════════════════════════════════════════
# 5. Where it runs: device and precision
# ════════════════════════════════════════════════════════════════════════════════════════════


def pick_device(choice: str) -> torch.device:
    """--device auto | cpu | cuda → a torch.device; cuda without a GPU is a one-line error."""
    if choice == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA GPU is visible; use --device cpu or auto")
    if choice == "auto":
        choice = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(choice)


# Asked once, at import: torch.compile cannot trace the question, which Linear asks per call.
# Not oneDNN's own _is_mkldnn_bf16_supported(): it says yes on any AVX-512 CPU, where oneDNN
# emulates bf16 with conversions, and on an Ice Lake Xeon (AVX-512, no AVX-512-BF16) bf16
# sampling runs 2.7x slower than fp32 (bench/bench_sampling_xeon_icelake.txt).
_CPU_HAS_BF16_UNITS = torch.backends.mkldnn.is_available() and (
    torch.cpu._is_avx512_bf16_supported() or _CPU_HAS_AMX)


def bf16_is_fast(device: torch.device) -> bool:
    """bf16 pays only with hardware bf16 units: AVX-512-BF16/AMX on CPUs, Ampere+ on GPUs."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return _CPU_HAS_BF16_UNITS


def describe_machine(device: torch.device) -> str:
    """The machine a result was measured on, in words, for the records beside it: the GPU's name,
    or the CPU's model name, its family and model numbers, vector extension and bf16 units.  The
    model name alone is not enough: cloud VMs call several Xeon generations "Intel(R) Xeon(R)
    Processor @ 2.80GHz" and both a Zen 4 and a Zen 5 EPYC "AMD EPYC"; the family and model
    numbers tell them apart (an EPYC of family 25 is Zen 3 or 4, of family 26 Zen 5)."""
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    fields = {}
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:      # Linux names the model here
        for line in f:
            key, _, value = line.partition(":")
            if not key.strip():                                     # a blank line ends the first core
                break
            fields.setdefault(key.strip(), value.strip())
    name = fields.get("model name") or platform.processor() or platform.machine()
    if "cpu family" in fields and "model" in fields:                # x86 numbers; other CPUs lack them
        name += f", family {fields['cpu family']} model {fields['model']}"
    units = "AMX" if _CPU_HAS_AMX else "AVX-512-BF16" if _CPU_HAS_BF16_UNITS else "no bf16 units"
    return f"cpu ({name}; {torch.backends.cpu.get_cpu_capability()}, {units}; {torch.get_num_threads()} threads)"


@torch.library.custom_op("dit::onednn_linear", mutates_args=())
def onednn_linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, gelu: bool) -> torch.Tensor:
    """x Wᵀ + b, then GELU (tanh approximation) when gelu, in one oneDNN kernel.  A custom op so
    that torch.compile treats it as one opaque kernel and fuses the operations around it."""
    if gelu:
        return torch.ops.mkldnn._linear_pointwise(x, weight, bias, "gelu", [], "tanh")
    return torch.ops.mkldnn._linear_pointwise(x, weight, bias, "none", [], "")


@onednn_linear.register_fake
def _(x, weight, bias, gelu):
    return x.new_empty((*x.shape[:-1], weight.shape[0]))


def _onednn_linear_runs() -> bool:
    """Whether this build has oneDNN's Linear kernel (x86 builds do; others may not)."""
    if not torch.backends.mkldnn.is_available():
        return False
    try:
        onednn_linear(torch.ones(1, 2), torch.ones(3, 2), torch.zeros(3), False)
    except (RuntimeError, NotImplementedError):
        return False
    return True


_HAS_ONEDNN = _onednn_linear_runs()                       # once, at import (see above)

# Whether oneDNN applies GELU inside fc1's kernel at little cost.  With AVX-512 it does; held to
# AVX2, its fused GELU costs as much as a pass of its own (bench/README.md), so a compiled Mlp
# leaves GELU to torch.compile's fused loop instead (Mlp.forward).  Eager keeps the fused
# kernel either way: there the alternative, F.linear and then F.gelu, is no faster.
_ONEDNN_GELU_IS_CHEAP = torch.backends.cpu.get_cpu_capability() == "AVX512"


class Linear(nn.Linear):
    """nn.Linear (y = x Wᵀ + b; the same parameters and state dict), whose CPU inference runs on
    oneDNN, with GELU optionally fused into the same kernel.

    Why: PyTorch hands fp32 matrix products on a CPU to MKL, which is known to choose its AVX2
    kernels on non-Intel CPUs; on the AVX-512 EPYC it ran at under half the rate of oneDNN,
    PyTorch's other CPU backend (the one its bf16 products use already; bench/README.md).  oneDNN also applies GELU
    to each output tile while it is still in cache, which saves the MLP a pass over its (B, T, 4D)
    activation.  The oneDNN op has no backward, so training, and every other device, keep
    F.linear.  The results differ from F.linear's only by the order of the sums (~1e-6 in fp32;
    tests/test_dit.py)."""

    def runs_on_onednn(self, x: torch.Tensor) -> bool:
        """CPU inference in fp32, or in bf16 where the CPU has bf16 units (layers with a bias)."""
        if x.device.type != "cpu" or not _HAS_ONEDNN or self.bias is None:
            return False
        if torch.is_grad_enabled() and (x.requires_grad or self.weight.requires_grad):
            return False
        dtype = torch.get_autocast_dtype("cpu") if torch.is_autocast_enabled("cpu") else x.dtype
        return dtype == torch.float32 or (dtype == torch.bfloat16 and bf16_is_fast(x.device))

    def forward(self, x: torch.Tensor, gelu: bool = False) -> torch.Tensor:
        if not self.runs_on_onednn(x):
            y = super().forward(x)
            return F.gelu(y, approximate="tanh") if gelu else y
        w, b = self.weight, self.bias
        if torch.is_autocast_enabled("cpu"):        # autocast does not know the op: cast as it would
            dtype = torch.get_autocast_dtype("cpu")
            x, w, b = x.to(dtype), w.to(dtype), b.to(dtype)
        return onednn_linear(x, w, b, gelu)


def resolve_precision(precision: str, device: torch.device) -> str:
    """--precision auto → bf16 where it is fast on this device, else fp32; others as given."""
    if precision == "auto":
        return "bf16" if bf16_is_fast(device) else "fp32"
    return precision


def autocast(device: torch.device, precision: str):
    """bf16 autocast: matrix products in bf16, reductions (softmax, LayerNorm, the loss) in fp32.
    The weights, the optimiser state and the EMA stay fp32, so nothing is lost between steps."""
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def keep_freed_memory() -> bool:
    """Let the C allocator reuse freed activation memory instead of giving it back to the OS.

    A training step or sampling batch allocates hundreds of large activations and frees them at
    its end; glibc returns chunks above its mmap threshold to the kernel, so the next step
    faults every page in again and the kernel zeroes each one.  Raising the mmap and trim
    thresholds keeps the memory mapped and reused (bench/README.md has the measurement); the
    price is that the process holds its peak memory until it exits.  Host memory only (CUDA has
    its own caching allocator).  Returns False where there is no glibc."""
    try:
        import ctypes
        libc = ctypes.CDLL("libc.so.6")
    except OSError:                       # macOS, Windows, musl: keep the platform's default
        return False
    M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3          # from <malloc.h>
    return bool(libc.mallopt(M_MMAP_THRESHOLD, 1 << 30) and libc.mallopt(M_TRIM_THRESHOLD, (1 << 31) - 1))


# ════════════════════════════════════════════════════════════════════════════════════════════
# 6. Counting compute
# ════════════════════════════════════════════════════════════════════════════════════════════

from torch.utils.flop_counter import FlopCounterMode, register_flop_formula, sdpa_flop_count

# torch's FLOP counter knows the CUDA attention kernels but not the fused CPU one, so on a CPU
# it would count attention as free.  Register the same formula (2·B·h·T²·d_h per matmul).
_cpu_sdpa = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu
if _cpu_sdpa not in torch.utils.flop_counter.flop_registry:
    @register_flop_formula(_cpu_sdpa)
    def _cpu_sdpa_flops(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs):
        return sdpa_flop_count(query_shape, key_shape, value_shape)


# Our oneDNN Linear (section 5) is a custom op the counter cannot see into: the FLOPs of x Wᵀ.
@register_flop_formula(torch.ops.dit.onednn_linear)
def _onednn_linear_flops(x_shape, w_shape, *args, out_shape=None, **kwargs):
    return 2 * math.prod(x_shape[:-1]) * w_shape[0] * w_shape[1]


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


# ════════════════════════════════════════════════════════════════════════════════════════════
# 7. The DDIM sampler (Song et al. 2021)
# ════════════════════════════════════════════════════════════════════════════════════════════
#
# DDIM notation crosswalk: DDIM's α_t is DDPM's ᾱ_t; we write ᾱ throughout.


def ddim_timesteps(T: int, num_steps: int, spacing: str = "leading") -> list[int]:
    """The n = num_steps steps DDIM visits, largest first: Lin et al. 2023, Table 2, the numbers
    of diffusers' DDIMScheduler(timestep_spacing=…, steps_offset=0) exactly.

    leading   t_i = i·k,  i = n−1 … 0,  k = T // n          ends exactly at t = 0 (diffusers'
              default).  When n does not divide T it starts well below T−1, so x_T ~ N(0, I)
              enters at a step whose training inputs held more signal than it (n = 7: t = 852,
              where ᾱ = 6e-4 on the linear schedule and 0.05 on the cosine).
    trailing  t_i = round(T − i·T/n) − 1,  i = 0 … n−1       starts at the last training step
              T−1, whose inputs are nearly pure noise (ᾱ_{T−1} ≈ 4e-5 on the linear schedule),
              like x_T; Lin et al. recommend it.
    When n divides T both are strides of k = T/n, and trailing is leading shifted up by k − 1.

    Where each is used: every script that makes images passes "trailing" (cfg.py, the sample
    grid of train_one_epoch.py, ddim_x0_grid.py's default).  The default stays "leading",
    diffusers' own, so that a bare ddim_sample call visits the steps a bare DDIMScheduler does;
    sweep.py's DDPM grid (all T steps, where the two coincide) and bench/bench_sampling.py (a
    timing, which the spacing does not change) take it.
    """
    if not 1 <= num_steps <= T:
        raise ValueError(f"num_steps must be between 1 and T = {T}, got {num_steps}")
    if spacing == "leading":
        k = T // num_steps
        return [i * k for i in reversed(range(num_steps))]
    if spacing == "trailing":
        # The expression of Lin et al.'s Table 2 and of diffusers, in NumPy on purpose: at a tie
        # (T − i·T/n = j + ½, e.g. n = 48) arange's float steps land a hair above or below it,
        # and that decides the rounding, so only the same expression gives the same steps.
        # arange can also overshoot by one element, a t = −1 (n = 61 at T = 1000): [:n] drops it.
        t = np.round(np.arange(T, 0, -T / num_steps)).astype(np.int64) - 1
        return t[:num_steps].tolist()
    raise ValueError(f"spacing must be 'leading' or 'trailing', got {spacing!r}")


def predict_x0(x_t: torch.Tensor, eps_hat: torch.Tensor, a_t: float | torch.Tensor,
               clip_x0: float | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The clean image that a noise prediction implies, and the noise consistent with it.

        x̂0 = (x_t − √(1−ᾱ_t) · ε̂) / √ᾱ_t                        (DDIM eq. 9, DDPM eq. 15)
    With clip_x0 = c, x̂0 is clamped to [−c, c] (DDPM's clip_denoised) and ε̂ re-derived
    from the clamped x̂0,
        ε̂ = (x_t − √ᾱ_t · x̂0) / √(1−ᾱ_t),
    so that an update built from the pair points at the image that was kept; without
    clipping ε̂ comes back unchanged.
    a_t is ᾱ_t: a float, or a tensor that broadcasts against x_t, (B, 1, 1, 1).
    Returns (x0_hat, eps_hat), each of x_t's shape.
    """
    sqrt = torch.sqrt if isinstance(a_t, torch.Tensor) else math.sqrt
    x0_hat = (x_t - sqrt(1 - a_t) * eps_hat) / sqrt(a_t)
    if clip_x0 is not None:
        x0_hat = x0_hat.clamp(-clip_x0, clip_x0)
        eps_hat = (x_t - sqrt(a_t) * x0_hat) / sqrt(1 - a_t)
    return x0_hat, eps_hat


@torch.no_grad()
def ddim_sample(
    eps_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    x_T: torch.Tensor,
    alpha_bar: torch.Tensor,
    num_steps: int,
    eta: float = 0.0,
    generator: torch.Generator | None = None,
    spacing: str = "leading",
    clip_x0: float | None = None,
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
    On a strided subsequence it is the DDPM sampler of that shorter chain.
    With clip_x0 = c, x̂0 is clamped to [−c, c] and ε̂ re-derived from the clamped x̂0
    (`predict_x0`), so the update stays consistent with the image it points at; with η = 1 that
    is DDPM's clip_denoised.
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

# ════════════════════════════════════════════════════════════════════════════════════════════
# 8. python dit.py — the configs at a glance
# ════════════════════════════════════════════════════════════════════════════════════════════


def patch_study(x0: torch.Tensor, out, model_name: str, patch_sizes=(2, 4, 8)):
    """Cut the image into patches for each p, and measure what p costs the DiT forward pass."""
    from pathlib import Path

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import landscapes
    from forward_process import patchify

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


def main(args: argparse.Namespace) -> None:
    print(f"DiT configs on {args.image_size}×{args.image_size}×{args.channels} inputs, "
          f"{args.num_classes} classes (GFLOPs: multiply-adds per image, the paper's convention)")
    print(f"{'config':<10} {'depth':>5} {'D':>5} {'heads':>5} {'tokens':>6} {'parameters':>13} {'GFLOPs':>9}")
    for name, cfg in DIT_CONFIGS.items():
        if args.image_size % cfg["patch_size"]:
            continue
        with torch.device("meta"):  # no memory, no compute: shapes only
            model = build_dit(name, input_size=args.image_size, in_channels=args.channels,
                              num_classes=args.num_classes)
        params = sum(p.numel() for p in model.parameters())
        tokens = (args.image_size // cfg["patch_size"]) ** 2
        print(f"{name:<10} {cfg['depth']:>5} {cfg['hidden_size']:>5} {cfg['num_heads']:>5} "
              f"{tokens:>6} {params:>13,} {forward_gflops(model):>9.3f}")
    if args.patch_study:
        import landscapes

        u8, _ = landscapes.procedural_image(seed=0, index=0, size=args.image_size)   # (H, W, 3) uint8
        x0 = landscapes.to_float(torch.from_numpy(u8).permute(2, 0, 1)[None])       # (1, 3, H, W)
        path, rows = patch_study(x0, args.patch_study, args.patch_model)
        print(f"\nPatch-size study: {args.patch_model} on {args.image_size}×{args.image_size}×3 images")
        print(f"{'p':>3} {'tokens T':>9} {'values/token':>13} {'parameters':>11} {'GFLOPs':>8}")
        for p, tokens, per_token, params, gflops in rows:
            print(f"{p:>3} {tokens:>9} {per_token:>13} {params:>11,} {gflops:>8.3f}")
        print(f"wrote {path}")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description="Print the DiT configs with parameters and GFLOPs.")
    ap.add_argument("--image-size", type=int, default=32, help="input resolution (pixels or latents)")
    ap.add_argument("--channels", type=int, default=3, help="input channels (3 for RGB, 4 for SD latents)")
    ap.add_argument("--num-classes", type=int, default=10, help="number of class labels")
    ap.add_argument("--patch-study", default=None, metavar="FOLDER",
                    help="also draw patch_study.png there (e.g. report/forward): one image cut into "
                         "p = 2, 4, 8 patches, with the tokens and GFLOPs of each")
    ap.add_argument("--patch-model", default="DiT-Ti/2", help="the config whose patch size the study varies")
    main(ap.parse_args())
