"""Task 1 checked against an independent reference (diffusers) and against closed forms."""

import math

import pytest
import torch
from diffusers import DDPMScheduler
from diffusers.models.embeddings import get_timestep_embedding

from forward_process import (
    PatchEmbed,
    add_noise,
    alpha_bar_from_betas,
    log_snr,
    make_betas,
    patchify,
    timestep_embedding,
    unpatchify,
)

# Our schedule name → diffusers' name for the same schedule.
DIFFUSERS_NAME = {"linear": "linear", "cosine": "squaredcos_cap_v2",
                  "scaled_linear": "scaled_linear", "sigmoid": "sigmoid"}


def diffusers_scheduler(schedule: str, T: int) -> DDPMScheduler:
    """diffusers' DDPMScheduler with the endpoints scaled by 1000/T, as ours are."""
    start, end = {"scaled_linear": (8.5e-4, 1.2e-2)}.get(schedule, (1e-4, 2e-2))
    return DDPMScheduler(num_train_timesteps=T, beta_schedule=DIFFUSERS_NAME[schedule],
                         beta_start=start * 1000 / T, beta_end=end * 1000 / T)


@pytest.mark.parametrize("schedule", ["linear", "cosine", "scaled_linear", "sigmoid"])
@pytest.mark.parametrize("T", [100, 1000])
def test_betas_and_alpha_bar_match_diffusers(schedule, T):
    ours = make_betas(schedule, T)
    ref = diffusers_scheduler(schedule, T)
    assert ours.dtype == torch.float64 and ours.shape == (T,)
    # diffusers keeps float32, so agreement is to float32 precision.
    torch.testing.assert_close(ours.float(), ref.betas, rtol=2e-6, atol=1e-9)
    torch.testing.assert_close(alpha_bar_from_betas(ours).float(), ref.alphas_cumprod, rtol=2e-5, atol=1e-9)


def test_cosine_alpha_bar_is_the_closed_form():
    """ᾱ_t = f(t+1)/f(0) with f(u) = cos²((u/T + s)/(1 + s) · π/2), wherever β is below the cap."""
    T, s = 1000, 0.008
    alpha_bar = alpha_bar_from_betas(make_betas("cosine", T))
    f = lambda u: math.cos((u / T + s) / (1 + s) * math.pi / 2) ** 2
    for t in [0, 1, 10, 250, 500, 900, 990]:
        assert alpha_bar[t].item() == pytest.approx(f(t + 1) / f(0), rel=1e-12)
    assert make_betas("cosine", T).max().item() == pytest.approx(0.999)   # the cap bites at the end


def test_linear_endpoints_scale_with_T():
    for T in (100, 250, 1000):
        b = make_betas("linear", T)
        assert b[0].item() == pytest.approx(1e-4 * 1000 / T) and b[-1].item() == pytest.approx(0.02 * 1000 / T)
    # The scaling keeps the end of the chain near pure noise whatever T is.
    for T in (100, 1000):
        assert alpha_bar_from_betas(make_betas("linear", T))[-1] < 1e-3


def test_log_snr_is_monotone_and_matches_definition():
    alpha_bar = alpha_bar_from_betas(make_betas("cosine", 1000))
    snr = log_snr(alpha_bar)
    assert (snr[1:] < snr[:-1]).all()
    torch.testing.assert_close(snr.exp(), alpha_bar / (1 - alpha_bar))


def test_the_schedule_numbers_the_comments_quote():
    """forward_process.py quotes these (section 1 and log_snr): keep them true."""
    betas = {s: make_betas(s, 1000) for s in ("linear", "cosine")}
    linear, cosine = (alpha_bar_from_betas(b) for b in betas.values())
    at = [99, 499, 899]                                   # t/T = 0.1, 0.5, 0.9 (t counted from 1)
    assert log_snr(linear)[at].tolist() == pytest.approx([2.16, -2.46, -8.2], abs=0.005)
    assert log_snr(cosine)[at].tolist() == pytest.approx([3.55, -0.02, -3.7], abs=0.005)
    assert (log_snr(linear) < -4).double().mean().item() == pytest.approx(0.37, abs=0.005)
    assert (log_snr(cosine) < -4).double().mean().item() == pytest.approx(0.09, abs=0.005)
    # In float32 the product loses 1−ᾱ near t = 0, not √ᾱ near t = T; √ᾱ_{T−1} ≈ 6e-3.
    for schedule, alpha_bar, lost in (("linear", linear, 1.7e-4), ("cosine", cosine, 5.3e-4)):
        in_fp32 = torch.cumprod(1 - betas[schedule].float(), dim=0).double()
        assert abs((1 - in_fp32[0]) / (1 - alpha_bar[0]) - 1).item() == pytest.approx(lost, rel=0.05)
        assert ((in_fp32.sqrt() / alpha_bar.sqrt()) - 1).abs().max() < 1e-5
    assert linear[-1].sqrt().item() == pytest.approx(6.35e-3, rel=1e-3)


def test_add_noise_matches_diffusers():
    T = 1000
    ref = diffusers_scheduler("linear", T)
    alpha_bar = alpha_bar_from_betas(make_betas("linear", T))
    g = torch.Generator().manual_seed(0)
    x0 = torch.randn(6, 3, 8, 8, generator=g)
    noise = torch.randn(6, 3, 8, 8, generator=g)
    t = torch.tensor([0, 1, 10, 500, 998, 999])
    # diffusers holds ᾱ in float32: near t = 0 its √(1−ᾱ_t) (≈ 0.01) carries a relative error of
    # ~3e-4, i.e. ~4e-6 absolute on x_t.  Ours takes the square roots in float64 first.
    torch.testing.assert_close(add_noise(x0, t, noise, alpha_bar), ref.add_noise(x0, noise, t),
                               rtol=0, atol=2e-5)


def test_add_noise_endpoints_and_variance():
    """x_t at t = 0 is almost x0; var(x_t) = ᾱ_t·var(x0) + (1 − ᾱ_t) for independent ε."""
    alpha_bar = alpha_bar_from_betas(make_betas("linear", 1000))
    g = torch.Generator().manual_seed(1)
    x0 = torch.randn(4000, 64, generator=g) * 0.5
    noise = torch.randn(4000, 64, generator=g)
    x_0 = add_noise(x0, torch.zeros(4000, dtype=torch.long), noise, alpha_bar)
    assert (x_0 - x0).pow(2).mean().item() == pytest.approx(1e-4, rel=0.05)   # 1 − ᾱ_0 = β_1 = 1e-4
    t = torch.full((4000,), 600)
    var = add_noise(x0, t, noise, alpha_bar).var().item()
    a = alpha_bar[600].item()
    assert var == pytest.approx(a * 0.25 + (1 - a), rel=0.02)


def test_add_noise_rejects_mismatched_inputs():
    alpha_bar = alpha_bar_from_betas(make_betas("linear", 10))
    with pytest.raises(ValueError, match="shape of x0"):
        add_noise(torch.zeros(2, 3), torch.zeros(2, dtype=torch.long), torch.zeros(2, 4), alpha_bar)
    with pytest.raises(ValueError, match="one step per sample"):
        add_noise(torch.zeros(2, 3), torch.zeros(3, dtype=torch.long), torch.zeros(2, 3), alpha_bar)


def test_unknown_schedule_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown schedule 'quadratic'; choose one of linear, cosine"):
        make_betas("quadratic", 1000)
    with pytest.raises(ValueError, match="at least 2"):
        make_betas("linear", 1)


def test_timestep_embedding_closed_form_and_diffusers():
    dim, t = 8, torch.tensor([0, 3, 999])
    emb = timestep_embedding(t, dim)
    for row, tt in enumerate(t.tolist()):
        for i in range(dim // 2):
            w = 10000 ** (-i / (dim // 2))
            assert emb[row, i].item() == pytest.approx(math.cos(tt * w), abs=1e-5)
            assert emb[row, dim // 2 + i].item() == pytest.approx(math.sin(tt * w), abs=1e-5)
    t = torch.arange(0, 1000, 37)
    ref = get_timestep_embedding(t, 256, flip_sin_to_cos=True, downscale_freq_shift=0)
    torch.testing.assert_close(timestep_embedding(t, 256), ref, rtol=1e-5, atol=1e-5)


def test_timestep_embedding_separates_far_steps_and_pads_odd_dims():
    emb = timestep_embedding(torch.tensor([0, 1, 999]), 256)
    near = (emb[0] - emb[1]).norm()
    far = (emb[0] - emb[2]).norm()
    assert far > 0.5 * emb[0].norm()     # t = 0 and t = T−1 are far apart …
    assert far > 5 * near                # … much farther than neighbours
    odd = timestep_embedding(torch.tensor([5]), 7)
    assert odd.shape == (1, 7) and odd[0, -1] == 0


@pytest.mark.parametrize("p", [2, 4, 8])
def test_patchify_unpatchify_are_inverses(p):
    x = torch.randn(3, 5, 32, 16)
    tokens = patchify(x, p)
    assert tokens.shape == (3, (32 // p) * (16 // p), p * p * 5)
    assert torch.equal(unpatchify(tokens, p, 5, 32, 16), x)
    # Token 0 is the top-left patch, features ordered (row in patch, column in patch, channel).
    assert torch.equal(tokens[:, 0].reshape(3, p, p, 5), x[:, :, :p, :p].permute(0, 2, 3, 1))
    # Token 1 is the patch to its right (row-major order).
    assert torch.equal(tokens[:, 1].reshape(3, p, p, 5), x[:, :, :p, p:2 * p].permute(0, 2, 3, 1))


def test_conv_patch_embed_equals_linear_on_patches():
    torch.manual_seed(0)
    embed = PatchEmbed(patch_size=4, in_channels=3, embed_dim=16)
    x = torch.randn(2, 3, 32, 32)
    linear = torch.nn.functional.linear(patchify(x, 4), embed.as_linear_weight(), embed.proj.bias)
    torch.testing.assert_close(embed(x), linear, rtol=1e-5, atol=1e-5)


def test_patch_size_must_divide_image():
    with pytest.raises(ValueError, match="patch size 3 does not divide the image size 32; use one of 1, 2, 4, 8, 16"):
        patchify(torch.zeros(1, 3, 32, 32), 3)
    with pytest.raises(ValueError, match="patch size 3"):
        PatchEmbed(3, 3, 8)(torch.zeros(1, 3, 32, 32))
