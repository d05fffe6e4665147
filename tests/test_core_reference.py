"""The core pieces against independent references and closed forms, set up so that the one-line
bugs a reader is most likely to make fail here.

Why a separate file: at initialisation adaLN-Zero makes the DiT's output exactly zero, so a test
on a fresh model cannot see a wrong shift, a wrong head merge or a wrong gate.  Here every weight
is random and non-zero, and the model is compared with a written-out transcription of the paper.
The other pieces get the same treatment: the training loss with its random draws intercepted,
the EMA in closed form, the FID statistics against numpy and scipy, the folder loader on
solid-colour classes (a label that slips shows as a wrong colour), the checkpoint write with a
failure forced halfway, and the latent decode of the diffusers path against diffusers itself.

Shapes use the project's legend: B batch, C channels, H, W, T tokens (or steps), D width, p patch.
"""

import io
import math
import os
from pathlib import Path

import numpy as np
import pytest
import scipy.linalg
import torch
import torch.nn as nn
import torch.nn.functional as F
from PIL import Image

import fid
import landscapes
import train_one_epoch as tr
from diffusers_dit import DiffusersDiT
from dit import DiT, read_checkpoint
from forward_process import add_noise, alpha_bar_from_betas, make_betas


# ════════════════════════════════════════════════════════════════════════════════════════════
# 1. The DiT against a written-out transcription of the paper
# ════════════════════════════════════════════════════════════════════════════════════════════


def random_dit(qk_norm: bool, seed: int = 0) -> DiT:
    """A small DiT with *every* parameter random and non-zero (adaLN regressors, the final
    layer, the QK-norm gains included), so that no branch is hidden behind a zero gate."""
    torch.manual_seed(seed)
    model = DiT(input_size=8, patch_size=2, in_channels=3, hidden_size=64, depth=2, num_heads=2,
                num_classes=10, learn_sigma=True, qk_norm=qk_norm)   # T = 16 tokens, C_out = 6
    with torch.no_grad():
        for p in model.parameters():
            if p.ndim == 1:
                p.copy_(0.5 * torch.randn_like(p))
            else:                           # ~ unit-variance outputs: std 1/√fan_in
                p.copy_(torch.randn_like(p) / math.sqrt(p[0].numel()))
    return model.eval()                     # eval: no label dropout


def ref_layer_norm(x):
    """LayerNorm without affine parameters, eps 1e-6: (x − mean) / √(var + ε), biased var."""
    mean = x.mean(-1, keepdim=True)
    var = ((x - mean) ** 2).mean(-1, keepdim=True)
    return (x - mean) / torch.sqrt(var + 1e-6)


def ref_modulate(x, beta, gamma):
    """adaLN: x·(1 + γ) + β, one (β, γ) per sample."""
    return x * (1 + gamma[:, None, :]) + beta[:, None, :]


def ref_linear(x, layer):
    return x @ layer.weight.double().T + layer.bias.double()


def ref_attention(x, attn, num_heads):
    """Per head softmax(Q Kᵀ / √d_h) V, heads concatenated, then the output projection.

    The qkv Linear stacks [W_Q; W_K; W_V], each D rows, head i owning rows i·d_h … (i+1)·d_h − 1.
    QK-norm: each head's q and k scaled to unit RMS over its d_h channels (eps 1e-6), times a
    learnt gain of d_h values, one for queries and one for keys."""
    D = x.shape[-1]
    d_h = D // num_heads
    qkv = ref_linear(x, attn.qkv)                                         # (B, T, 3D)
    outputs = []
    for i in range(num_heads):
        q = qkv[..., 0 * D + i * d_h: 0 * D + (i + 1) * d_h]             # (B, T, d_h)
        k = qkv[..., 1 * D + i * d_h: 1 * D + (i + 1) * d_h]
        v = qkv[..., 2 * D + i * d_h: 2 * D + (i + 1) * d_h]
        if attn.qk_norm:
            q = q / torch.sqrt((q ** 2).mean(-1, keepdim=True) + 1e-6) * attn.q_norm.weight.double()
            k = k / torch.sqrt((k ** 2).mean(-1, keepdim=True) + 1e-6) * attn.k_norm.weight.double()
        weights = torch.softmax(q @ k.transpose(1, 2) / math.sqrt(d_h), dim=-1)   # (B, T, T)
        outputs.append(weights @ v)                                        # (B, T, d_h)
    return ref_linear(torch.cat(outputs, dim=-1), attn.proj)               # (B, T, D)


def ref_gelu_tanh(x):
    return 0.5 * x * (1 + torch.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))


def ref_block(x, c, block, num_heads):
    """x = x + α1 ⊙ Attn(LN(x)·(1+γ1)+β1);  x = x + α2 ⊙ MLP(LN(x)·(1+γ2)+β2)   (DiT §3.2)."""
    mod = ref_linear(F.silu(c), block.adaLN_modulation[-1])               # (B, 6D)
    shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp = mod.chunk(6, dim=1)
    h = ref_modulate(ref_layer_norm(x), shift_msa, scale_msa)
    x = x + gate_msa[:, None, :] * ref_attention(h, block.attn, num_heads)
    h = ref_modulate(ref_layer_norm(x), shift_mlp, scale_mlp)
    h = ref_linear(ref_gelu_tanh(ref_linear(h, block.mlp.fc1)), block.mlp.fc2)
    return x + gate_mlp[:, None, :] * h


def ref_pos_embed(D, grid):
    """MAE's fixed 2-D sin-cos code: token (row i, column j) gets
    [sin(j·ω), cos(j·ω), sin(i·ω), cos(i·ω)], ω_m = 10000^(−m/(D/4)), m = 0 … D/4 − 1."""
    omega = 10000.0 ** (-torch.arange(D // 4, dtype=torch.float64) / (D // 4))
    rows = []
    for i in range(grid):
        for j in range(grid):
            rows.append(torch.cat([torch.sin(j * omega), torch.cos(j * omega),
                                   torch.sin(i * omega), torch.cos(i * omega)]))
    return torch.stack(rows)                                               # (T, D)


def reference_dit(model: DiT, x_t, t, y):
    """The whole forward pass, written out in float64 from the model's weights."""
    p, C, heads = model.patch_size, model.in_channels, model.blocks[0].attn.num_heads
    B, _, H, W = x_t.shape
    x_t = x_t.double()
    # Patches: F.unfold orders each patch's values (channel, row, column), as the conv weight.
    patches = F.unfold(x_t, kernel_size=p, stride=p).transpose(1, 2)      # (B, T, C·p·p)
    conv = model.x_embedder.proj
    x = patches @ conv.weight.double().flatten(1).T + conv.bias.double()   # (B, T, D)
    D = x.shape[-1]
    x = x + ref_pos_embed(D, H // p)
    # c = t_emb + y_emb; t's 256 sinusoidal features are [cos(t·ω), sin(t·ω)], ω_i = 10⁴^(−i/128).
    omega = torch.exp(-math.log(10000) * torch.arange(128, dtype=torch.float64) / 128)
    t_freq = torch.cat([torch.cos(t.double()[:, None] * omega), torch.sin(t.double()[:, None] * omega)], 1)
    mlp = model.t_embedder.mlp
    c = ref_linear(F.silu(ref_linear(t_freq, mlp[0])), mlp[2])
    c = c + model.y_embedder.embedding_table.weight.double()[y]            # (B, D)
    for block in model.blocks:
        x = ref_block(x, c, block, heads)
    # The final layer: adaLN with (shift, scale), no gate, then Linear(D → p·p·C_out).
    shift, scale = ref_linear(F.silu(c), model.final_layer.adaLN_modulation[-1]).chunk(2, dim=1)
    x = ref_linear(ref_modulate(ref_layer_norm(x), shift, scale), model.final_layer.linear)
    # Unpatchify: each token's values are (row, column, channel); F.fold wants (channel, row, column).
    C_out = model.out_channels
    x = x.reshape(B, -1, p, p, C_out).permute(0, 4, 2, 3, 1).reshape(B, C_out * p * p, -1)
    return F.fold(x, output_size=(H, W), kernel_size=p, stride=p)          # (B, C_out, H, W)


@pytest.mark.parametrize("qk_norm", [False, True])
def test_dit_equals_a_written_out_transcription_of_the_paper(qk_norm):
    """Pins the whole forward pass (patches, positions, t and y embeddings, each block's own
    (β, γ, α) in DiT's order, per-head attention with heads concatenated, QK-norm, gated
    residuals, the final adaLN layer, unpatchify) against the float64 reference above, with
    every weight random and non-zero, to float32 tolerance."""
    model = random_dit(qk_norm)
    g = torch.Generator().manual_seed(1)
    x_t = torch.randn(3, 3, 8, 8, generator=g)
    t, y = torch.tensor([0, 417, 999]), torch.tensor([2, 7, 10])          # 10: the null class
    with torch.no_grad():
        out = model(x_t, t, y)
        ref = reference_dit(model, x_t, t, y)
    assert out.shape == ref.shape == (3, 6, 8, 8)
    assert ref.std() > 0.3                          # a real signal, not adaLN-Zero's zeros
    torch.testing.assert_close(out.double(), ref, rtol=1e-4, atol=1e-4 * ref.abs().max().item())


@pytest.mark.parametrize("qk_norm", [False, True])
def test_blocks_are_equivariant_to_token_permutations(qk_norm):
    """Pins that the blocks treat tokens as a set: permuting the tokens permutes the output of
    every block, and of the whole stack, the same way (positions enter only through pos_embed,
    which is left out here).  A head merge that mixes tokens breaks this."""
    model = random_dit(qk_norm)
    g = torch.Generator().manual_seed(2)
    x, c = torch.randn(2, 16, 64, generator=g), torch.randn(2, 64, generator=g)
    perm = torch.randperm(16, generator=g)
    with torch.no_grad():
        for block in model.blocks:
            torch.testing.assert_close(block(x[:, perm], c), block(x, c)[:, perm], rtol=1e-5, atol=1e-5)
        stack, stack_permuted = x, x[:, perm]
        for block in model.blocks:
            stack, stack_permuted = block(stack, c), block(stack_permuted, c)
    torch.testing.assert_close(stack_permuted, stack[:, perm], rtol=1e-5, atol=1e-5)


# ════════════════════════════════════════════════════════════════════════════════════════════
# 2. The training loss, with its random draws intercepted
# ════════════════════════════════════════════════════════════════════════════════════════════


class RecordingModel:
    """A stand-in for the DiT: a fixed, non-trivial ε̂(x_t, t) that records what it was given."""

    def __call__(self, x_t, t, y):
        self.x_t, self.t, self.y = x_t.clone(), t.clone(), y.clone()
        self.eps_hat = torch.tanh(x_t) * 0.7 + 0.001 * t[:, None, None, None].float()
        return self.eps_hat


def run_training_loss(seed: int, B: int, T: int, C: int = 3, size: int = 4):
    """training_loss on a random batch, the RNG seeded; returns what it returned, what the model
    saw, and the draws replayed from the same seed (t ~ U{0 … T−1} first, then ε ~ N(0, I))."""
    g = torch.Generator().manual_seed(seed + 1)
    x0 = torch.rand(B, C, size, size, generator=g) * 2 - 1
    y = torch.randint(0, 10, (B,), generator=g)
    alpha_bar = alpha_bar_from_betas(make_betas("linear", T))
    model = RecordingModel()
    torch.manual_seed(seed)
    loss, sums, counts = tr.training_loss(model, x0, y, alpha_bar)
    torch.manual_seed(seed)                               # replay the draws
    t = torch.randint(0, T, (B,))
    eps = torch.randn_like(x0)
    return dict(x0=x0, y=y, alpha_bar=alpha_bar, model=model, loss=loss, sums=sums, counts=counts,
                t=t, eps=eps)


def test_training_timesteps_cover_0_to_T_minus_1_and_nothing_else():
    """Pins t ~ U{0 … T−1} (0-based, as add_noise indexes ᾱ): over 4,000 draws with T = 10
    every step 0 … 9 appears and nothing outside; 1 … T or 0 … T−2 fail here."""
    run = run_training_loss(seed=0, B=4000, T=10, C=1, size=1)
    seen = run["model"].t
    assert seen.dtype == torch.int64
    assert seen.min() == 0 and seen.max() == 9
    assert set(seen.tolist()) == set(range(10))


def test_training_loss_is_l_simple_on_the_drawn_noise():
    """Pins the objective: the model sees x_t = add_noise(x0, t, ε) for the t and ε drawn (the
    RNG replayed), and y unchanged; the loss is mean((ε̂ − ε)²), with ε the target, not x0; the
    per-timestep-bucket sums and counts are those of the per-sample losses in the thirds
    0 ≤ 3t < T, T ≤ 3t < 2T, 2T ≤ 3t < 3T."""
    T = 30
    run = run_training_loss(seed=3, B=64, T=T)
    model, t, eps, x0 = run["model"], run["t"], run["eps"], run["x0"]
    assert torch.equal(model.t, t)
    assert torch.equal(model.y, run["y"])
    torch.testing.assert_close(model.x_t, add_noise(x0, t, eps, run["alpha_bar"]), rtol=0, atol=1e-6)
    per_sample = ((model.eps_hat.double() - eps.double()) ** 2).mean(dim=(1, 2, 3))   # (B,)
    torch.testing.assert_close(run["loss"].double(), per_sample.mean(), rtol=1e-5, atol=0)
    for b in range(3):
        inside = (b * T <= 3 * t) & (3 * t < (b + 1) * T)
        assert run["counts"][b].item() == inside.sum().item() > 0
        torch.testing.assert_close(run["sums"][b].double(), per_sample[inside].sum(), rtol=1e-5, atol=0)
    assert run["counts"].sum().item() == 64


def test_min_snr_weighting_in_closed_form():
    """Min-SNR-γ (Hang et al. 2023) with ε-prediction: the loss is the mean of
    min(SNR_t, γ)/SNR_t · ‖ε − ε̂‖², SNR_t = ᾱ_t/(1 − ᾱ_t) computed here from the betas in float64;
    steps noisier than SNR = γ keep weight 1, cleaner ones get γ/SNR < 1."""
    T, gamma = 50, 5.0
    g = torch.Generator().manual_seed(4)
    x0 = torch.rand(256, 3, 4, 4, generator=g) * 2 - 1
    y = torch.zeros(256, dtype=torch.long)
    alpha_bar = alpha_bar_from_betas(make_betas("linear", T))
    model = RecordingModel()
    torch.manual_seed(7)
    loss, sums, counts = tr.training_loss(model, x0, y, alpha_bar, min_snr_gamma=gamma)
    betas = make_betas("linear", T).double()
    a = torch.cumprod(1 - betas, 0)[model.t]
    snr = a / (1 - a)
    w = torch.minimum(snr, torch.full_like(snr, gamma)) / snr
    assert (w[snr <= gamma] == 1).all() and (w[snr > gamma] < 1).all() and (snr > gamma).any()
    torch.manual_seed(7)
    torch.randint(0, T, (256,))
    eps = torch.randn_like(x0)
    per_sample = ((model.eps_hat.double() - eps.double()) ** 2).mean(dim=(1, 2, 3))
    torch.testing.assert_close(loss.double(), (w * per_sample).mean(), rtol=1e-5, atol=0)
    # The bucket sums stay unweighted, so loss curves compare across recipes.
    torch.testing.assert_close(sums.sum().double(), per_sample.sum(), rtol=1e-5, atol=0)


def test_logit_normal_timesteps():
    """t = ⌊sigmoid(n)·T⌋, n ~ N(0, 1) (SD3's logit-normal, m = 0, s = 1): in {0 … T−1}, and the
    share below T/4 matches the closed form P(n < logit(1/4)) = Φ(−ln 3) ≈ 0.1358."""
    torch.manual_seed(0)
    t = tr.sample_timesteps(200_000, 1000, "logit-normal", "cpu")
    assert t.min() >= 0 and t.max() <= 999 and t.dtype == torch.int64
    share = (t < 250).double().mean().item()
    expected = 0.5 * (1 + math.erf(-math.log(3) / math.sqrt(2)))
    assert abs(share - expected) < 0.005
    # Uniform stays uniform: every step of a small T appears.
    assert set(tr.sample_timesteps(4000, 10, "uniform", "cpu").tolist()) == set(range(10))


# ════════════════════════════════════════════════════════════════════════════════════════════
# 3. The EMA in closed form
# ════════════════════════════════════════════════════════════════════════════════════════════


def constant_pair(ema_value: float, model_value: float) -> tuple[nn.Module, nn.Module]:
    ema, model = nn.Linear(3, 2), nn.Linear(3, 2)
    with torch.no_grad():
        for p in ema.parameters():
            p.fill_(ema_value)
        for p in model.parameters():
            p.fill_(model_value)
    return ema, model


def test_ema_update_in_closed_form():
    """Pins θ_ema ← d·θ_ema + (1 − d)·θ with d = min(ceiling, (1 + n)/(10 + n)), d being the
    weight kept on the old EMA: from EMA 0 and model 1 the first update (n = 0, d = 0.1) gives
    0.9; a ceiling below 0.1 caps d (0.05 → 0.95); n updates give 1 − ∏ d_i."""
    ema, model = constant_pair(0.0, 1.0)
    tr.update_ema(ema, model, num_updates=0, max_decay=0.9999)
    for p in ema.parameters():
        torch.testing.assert_close(p, torch.full_like(p, 0.9))

    ema, model = constant_pair(0.0, 1.0)
    tr.update_ema(ema, model, num_updates=0, max_decay=0.05)
    for p in ema.parameters():
        torch.testing.assert_close(p, torch.full_like(p, 0.95))

    ema, model = constant_pair(0.0, 1.0)
    kept = 1.0
    for n in range(50):
        tr.update_ema(ema, model, num_updates=n, max_decay=0.9)    # the ceiling bites from n = 80
        kept *= min(0.9, (1 + n) / (10 + n))
    for p in ema.parameters():
        torch.testing.assert_close(p, torch.full_like(p, 1 - kept), rtol=1e-5, atol=1e-6)
    assert all(torch.equal(p, torch.ones_like(p)) for p in model.parameters())   # model untouched


def test_ema_ceiling_caps_late_updates():
    """Pins the cap: at n = 10⁶ the warm-up (1 + n)/(10 + n) is ≈ 1, so d is the ceiling itself,
    and one update from EMA 0 and model 1 gives exactly 1 − ceiling."""
    ema, model = constant_pair(0.0, 1.0)
    tr.update_ema(ema, model, num_updates=10**6, max_decay=0.75)
    for p in ema.parameters():
        torch.testing.assert_close(p, torch.full_like(p, 0.25))


# ════════════════════════════════════════════════════════════════════════════════════════════
# 4. FID statistics against numpy and scipy
# ════════════════════════════════════════════════════════════════════════════════════════════


def test_fid_statistics_are_numpys_mean_and_unbiased_covariance():
    """Pins feature_statistics: the mean is numpy's, the covariance np.cov(…, ddof=1) (1/(N − 1),
    not 1/N), both in float64."""
    feats = np.random.default_rng(0).normal(size=(20, 6)).astype(np.float32) * 3 + 1
    mu, sigma = fid.feature_statistics(feats)
    assert mu.dtype == sigma.dtype == np.float64
    np.testing.assert_allclose(mu, feats.astype(np.float64).mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(sigma, np.cov(feats.astype(np.float64), rowvar=False, ddof=1), rtol=1e-12)


def test_fid_from_raw_features_matches_an_independent_formula():
    """Pins the FID of two feature sets end to end against
    ‖μ1 − μ2‖² + Tr Σ1 + Tr Σ2 − 2 Tr sqrtm(Σ1 Σ2) (Heusel et al. 2017) with numpy's
    unbiased covariances and scipy.linalg.sqrtm; small N, so 1/N against 1/(N − 1) shows."""
    rng = np.random.default_rng(1)
    a = rng.normal(size=(30, 8))
    b = rng.normal(size=(25, 8)) @ rng.normal(size=(8, 8)) * 0.5 + 0.3
    mu_a, mu_b = a.mean(axis=0), b.mean(axis=0)
    sigma_a, sigma_b = np.cov(a, rowvar=False, ddof=1), np.cov(b, rowvar=False, ddof=1)
    covmean = scipy.linalg.sqrtm(sigma_a @ sigma_b).real
    expected = ((mu_a - mu_b) ** 2).sum() + np.trace(sigma_a) + np.trace(sigma_b) - 2 * np.trace(covmean)
    assert fid.fid_from_features(a, b) == pytest.approx(expected, rel=1e-9)
    assert fid.frechet_distance(mu_a, sigma_a, mu_b, sigma_b) == pytest.approx(expected, rel=1e-9)


# ════════════════════════════════════════════════════════════════════════════════════════════
# 5. The folder loader: a corrupt file must not shift the labels
# ════════════════════════════════════════════════════════════════════════════════════════════

COLOURS = {"a_red": (230, 20, 20), "b_green": (20, 230, 20), "c_blue": (20, 20, 230)}


@pytest.fixture
def colour_folder(tmp_path) -> Path:
    """Three class folders, each image a solid colour of its class; a corrupt PNG sorts first
    in the middle class and another inside the first, and one image lies in a nested folder."""
    for name, rgb in COLOURS.items():
        (tmp_path / name).mkdir()
        for i in range(3):
            Image.new("RGB", (12, 10), rgb).save(tmp_path / name / f"img{i}.png")
    (tmp_path / "a_red" / "deep").mkdir()
    Image.new("RGB", (10, 10), COLOURS["a_red"]).save(tmp_path / "a_red" / "deep" / "img9.png")
    (tmp_path / "b_green" / "000_broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not an image")
    (tmp_path / "a_red" / "img1_broken.png").write_bytes(b"garbage")
    return tmp_path


def class_of_colour(rgb) -> str:
    """The class whose colour is nearest (the resize may blur a value by a level or two)."""
    return min(COLOURS, key=lambda name: sum((int(u) - v) ** 2 for u, v in zip(rgb, COLOURS[name])))


def test_loader_keeps_each_image_with_its_own_label(colour_folder):
    """Pins load_images with corrupt files inside class folders: the unreadable ones are dropped
    and every kept image keeps its own label (its colour names its class)."""
    data = landscapes.load_images(colour_folder, 8, progress=False)
    assert data.class_names == sorted(COLOURS) and data.labelled
    assert len(data.images) == len(data.labels) == 10                      # 4 + 3 + 3 readable
    for image, label in zip(data.images, data.labels.tolist()):
        mean_rgb = image.double().mean(dim=(1, 2)).tolist()
        assert class_of_colour(mean_rgb) == data.class_names[label]
    assert torch.bincount(data.labels).tolist() == [4, 3, 3]


def test_list_images_labels_name_each_files_class_folder(colour_folder):
    """Pins list_images: every path's label is the index of the class folder it lies in (nested
    folders included); corrupt files are listed, with their own folder's label, since decoding
    comes later."""
    paths, labels, class_names = landscapes.list_images(colour_folder)
    assert class_names == sorted(COLOURS)
    assert len(paths) == len(labels) == 12
    for path, label in zip(paths, labels):
        assert path.relative_to(colour_folder).parts[0] == class_names[label]


class MeanColour(nn.Module):
    """A stand-in for Inception: an image's feature is its mean RGB (it reads the same uint8
    batches the real network would)."""

    weights_name = "mean-colour"

    def __init__(self):
        super().__init__()
        self.unused = nn.Parameter(torch.zeros(1))     # fid.py finds the device from a parameter

    def forward(self, pixels):                           # (B, 3, H, W) uint8 → (B, 3)
        return pixels.double().mean(dim=(2, 3))


def test_fid_folder_features_keep_each_image_with_its_class(colour_folder):
    """Pins fid.py's folder readers on the same folder: folder_features skips the two corrupt
    files, and folder_class_features gives each class the features of its own images only."""
    model = MeanColour()
    feats = fid.folder_features(colour_folder, model, batch_size=4, progress=False)
    assert feats.shape == (10, 3)
    assert sorted(class_of_colour(f) for f in feats) == ["a_red"] * 4 + ["b_green"] * 3 + ["c_blue"] * 3
    per_class = fid.folder_class_features(colour_folder, model, batch_size=4, cache_dir=None, progress=False)
    assert sorted(per_class) == sorted(COLOURS)
    for name, f in per_class.items():
        assert len(f) == {"a_red": 4, "b_green": 3, "c_blue": 3}[name]
        assert all(class_of_colour(row) == name for row in f)


# ════════════════════════════════════════════════════════════════════════════════════════════
# 6. Atomic checkpoints
# ════════════════════════════════════════════════════════════════════════════════════════════


def test_a_save_that_fails_halfway_leaves_the_previous_checkpoint(tmp_path, monkeypatch):
    """Pins save_checkpoint's atomicity, deterministically: torch.save is made to write half of
    its bytes and then raise (a full disk, a kill); the previous checkpoint must still be there,
    complete and loadable, and no half-written file may stand in its place."""
    path = tmp_path / tr.CHECKPOINT
    first = dict(config=dict(model={}, diffusion=dict(T=1000, schedule="linear")),
                 ema={"w": torch.arange(1000.0)}, step=1)
    tr.save_checkpoint(path, first)
    real_save = torch.save

    def save_half_then_fail(obj, f, *args, **kwargs):
        buffer = io.BytesIO()
        real_save(obj, buffer, *args, **kwargs)
        half = buffer.getvalue()[: len(buffer.getvalue()) // 2]
        if isinstance(f, (str, os.PathLike)):
            with open(f, "wb") as out:
                out.write(half)
        else:
            f.write(half)
            f.flush()
        raise OSError("No space left on device (simulated halfway through the write)")

    monkeypatch.setattr(torch, "save", save_half_then_fail)
    second = dict(first, ema={"w": -torch.arange(1000.0)}, step=2)
    with pytest.raises(OSError, match="simulated"):
        tr.save_checkpoint(path, second)
    monkeypatch.setattr(torch, "save", real_save)
    state = read_checkpoint(path)
    assert state["step"] == 1 and torch.equal(state["ema"]["w"], torch.arange(1000.0))
    tr.save_checkpoint(path, second)                     # and the next save still works
    assert read_checkpoint(path)["step"] == 2


# ════════════════════════════════════════════════════════════════════════════════════════════
# 7. The diffusers DiT path: the latent decode
# ════════════════════════════════════════════════════════════════════════════════════════════


def test_diffusers_decode_is_the_vaes_decode_of_unscaled_latents(hf_folder):
    """Pins DiffusersDiT.decode: a latent x̂0 (in the DiT's scaled units) is decoded exactly as
    diffusers' own vae.decode(z / scaling_factor), clamped to the image range [−1, 1]."""
    from diffusers import AutoencoderKL

    model = DiffusersDiT(str(hf_folder), torch.device("cpu"))
    vae = AutoencoderKL.from_pretrained(hf_folder, subfolder="vae").eval()
    scaling = vae.config.scaling_factor
    assert scaling == pytest.approx(0.18215)
    z = torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        expected = vae.decode(z / scaling).sample.clamp(-1, 1)          # (2, 3, 16, 16)
        wrong = vae.decode(z * scaling).sample.clamp(-1, 1)
    assert (expected.abs() < 1).float().mean() > 0.5                   # mostly not clamped
    assert (expected - wrong).abs().max() > 1e-2                        # the scaling is visible
    torch.testing.assert_close(model.decode(z), expected, rtol=1e-5, atol=1e-5)
