"""Task 2: the DiT model and the DDIM sampler, against the paper's numbers, closed forms and
diffusers' DDIMScheduler."""

import math
import os

import pytest
import torch
import torch.nn.functional as F
from diffusers import DDIMScheduler
from diffusers.models.embeddings import get_2d_sincos_pos_embed

import dit
from inspect_attention import attention_stats, recording_attention
from dit import DiT, DiTBlock, build_dit, ddim_sample, ddim_timesteps, forward_gflops, predict_x0, sincos_2d_pos_embed
import machine
from machine import bf16_is_fast, describe_machine
from forward_process import add_noise, alpha_bar_from_betas, make_betas


def tiny(**kw) -> DiT:
    torch.manual_seed(0)
    return build_dit("DiT-Mi/4", **{"input_size": 16, "in_channels": 3, "num_classes": 10, **kw})


# ── the model ───────────────────────────────────────────────────────────────────────────────


@pytest.mark.parametrize("learn_sigma", [False, True])
def test_output_shapes(learn_sigma):
    model = tiny(learn_sigma=learn_sigma)
    x = torch.randn(5, 3, 16, 16)
    out = model(x, torch.randint(0, 1000, (5,)), torch.randint(0, 10, (5,)))
    assert out.shape == (5, 6 if learn_sigma else 3, 16, 16)
    assert model.eps(x, torch.zeros(5, dtype=torch.long), torch.zeros(5, dtype=torch.long)).shape == x.shape


def test_xl2_parameter_count_matches_paper():
    with torch.device("meta"):
        model = build_dit("DiT-XL/2", input_size=32, in_channels=4, num_classes=1000, learn_sigma=True)
    params = sum(p.numel() for p in model.parameters())
    assert params == 674_834_720                                   # without the fixed positions
    assert params + model.pos_embed.numel() == 675_129_632          # as the paper counts


@pytest.mark.parametrize("name, paper", [("DiT-S/4", 1.4), ("DiT-B/4", 5.6), ("DiT-L/4", 19.7),
                                         ("DiT-XL/4", 29.1), ("DiT-XL/2", 118.6)])
def test_gflops_match_paper_table(name, paper):
    with torch.device("meta"):
        model = build_dit(name, input_size=32, in_channels=4, num_classes=1000, learn_sigma=True)
    # The paper rounds to one decimal; allow that plus 0.2% for the ops it may count differently.
    assert abs(forward_gflops(model) - paper) <= 0.05 + 0.002 * paper


@pytest.mark.parametrize("qk_norm", [False, True])
def test_attention_is_softmax_of_scaled_dot_products_written_out(qk_norm, monkeypatch):
    """Attention against softmax(Q Kᵀ / √d_h) V written out per head in float64, heads
    concatenated, then the output projection, with either kernel machine.tune_cpu may pick (in
    float64 the one for CPUs without AMX hands over to the fused kernel; in bf16 it is written
    out); and under bf16 autocast (QK-norm in fp32, then back to bf16) close to fp32."""
    torch.manual_seed(0)
    attn = dit.Attention(64, 4, qk_norm).double()
    if qk_norm:
        attn.q_norm.weight.data.uniform_(0.5, 2)
        attn.k_norm.weight.data.uniform_(0.5, 2)
    x = torch.randn(2, 16, 64, dtype=torch.float64)
    q, k, v = attn.qkv(x).reshape(2, 16, 3, 4, 16).permute(2, 0, 3, 1, 4)    # 3 × (B, h, T, d_h)
    if qk_norm:
        rms = lambda a, g: a / a.square().mean(-1, keepdim=True).add(1e-6).sqrt() * g
        q, k = rms(q, attn.q_norm.weight), rms(k, attn.k_norm.weight)
    a = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(16), dim=-1)       # (B, h, T, T)
    expected = attn.proj((a @ v).transpose(1, 2).reshape(2, 16, 64))
    torch.testing.assert_close(attn(x), expected)
    for kernel in (F.scaled_dot_product_attention, machine.attention_without_amx):   # machine.tune_cpu's choice
        monkeypatch.setattr(dit.Attention, "kernel", staticmethod(kernel))
        torch.testing.assert_close(attn(x), expected)
    attn = attn.float()
    for kernel in (F.scaled_dot_product_attention, machine.attention_without_amx):
        monkeypatch.setattr(dit.Attention, "kernel", staticmethod(kernel))
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = attn(x.float())
        torch.testing.assert_close(low.float(), expected.float(), rtol=0.05, atol=0.05)


@pytest.mark.skipif(not os.path.exists("/proc/cpuinfo"), reason="reads the CPU's flags from Linux's /proc/cpuinfo")
def test_bf16_is_fast_exactly_where_the_cpu_has_bf16_units():
    """--precision auto picks bf16 on a CPU only where the kernel lists bf16 dot-product units
    (avx512_bf16, or AMX's amx_bf16).  oneDNN's own check also says yes on AVX-512 CPUs without
    them (Ice Lake), where bf16 sampling runs 2.7x slower than fp32."""
    flags = set()
    for line in open("/proc/cpuinfo"):
        if line.startswith("flags"):
            flags |= set(line.split(":", 1)[1].split())
    has_units = bool(flags & {"avx512_bf16", "amx_bf16"}) and torch.backends.mkldnn.is_available()
    assert bf16_is_fast(torch.device("cpu")) == has_units


@pytest.mark.skipif(not os.path.exists("/proc/cpuinfo"), reason="reads the CPU's model name from Linux's /proc/cpuinfo")
def test_describe_machine_names_the_cpu_model_and_its_bf16_units():
    """The records beside a result name the machine well enough to tell the project's CPUs apart:
    two Xeons of different generations share one model name, and so do a Zen 4 and a Zen 5 EPYC,
    so the family and model numbers (on x86) and the bf16 units are named too."""
    with open("/proc/cpuinfo") as f:
        first_core = f.read().split("\n\n")[0]
    fields = dict((key.strip(), value.strip()) for key, _, value in
                  (line.partition(":") for line in first_core.splitlines()))
    name = fields["model name"]
    if "cpu family" in fields:
        name += f", family {fields['cpu family']} model {fields['model']}"
    text = describe_machine(torch.device("cpu"))
    assert text.startswith(f"cpu ({name}; {torch.backends.cpu.get_cpu_capability()}, ")
    assert ("no bf16 units" in text) == (not bf16_is_fast(torch.device("cpu")))
    assert text.endswith(f"; {torch.get_num_threads()} threads)")


def test_cpu_flop_count_includes_attention():
    """On a real CPU tensor the flash-attention kernel must be counted (torch skips it by default)."""
    model = tiny()
    with torch.device("meta"):
        meta = tiny()
    assert forward_gflops(model) == pytest.approx(forward_gflops(meta), rel=1e-9)


def test_attention_stats_closed_forms():
    """Zero query and key weights give logits 0 everywhere: uniform attention, entropy ln T, in
    every block.  And a block's logits are checked against F.scaled_dot_product_attention's
    weights written out independently from the qkv layer."""
    model = tiny().eval()
    x, t, y = torch.randn(3, 3, 16, 16), torch.tensor([1, 500, 999]), torch.tensor([0, 4, 9])
    with torch.no_grad():
        for block in model.blocks:
            block.attn.qkv.weight[:128].zero_()            # rows of Q and K (D = 64): q = k = 0
            block.attn.qkv.bias.zero_()
            block.adaLN_modulation[-1].bias.normal_()       # open the gates so the blocks differ
    for largest, entropy in attention_stats(model, x, t, y):
        assert largest == 0 and entropy == pytest.approx(torch.log(torch.tensor(16.0)).item(), abs=1e-6)
    model = tiny().eval()
    with torch.no_grad():
        model.blocks[0].attn.qkv.weight.mul_(8)
    tokens = model.x_embedder(x) + model.pos_embed
    c = model.t_embedder(t) + model.y_embedder(y)
    block = model.blocks[0]
    shift, scale = block.adaLN_modulation(c).chunk(6, dim=1)[:2]
    h = (F.layer_norm(tokens, (64,), eps=1e-6) * (1 + scale[:, None]) + shift[:, None])
    q, k, _ = (h @ block.attn.qkv.weight.T + block.attn.qkv.bias).reshape(3, 16, 3, 2, 32).permute(2, 0, 3, 1, 4)
    logits = torch.einsum("bhid,bhjd->bhij", q, k) / 32 ** 0.5
    p = logits.softmax(-1)
    largest, entropy = attention_stats(model, x, t, y)[0]
    assert largest == pytest.approx(logits.abs().max().item(), rel=1e-5)
    assert entropy == pytest.approx(-(p * logits.log_softmax(-1)).sum(-1).mean().item(), rel=1e-5)


def test_recording_attention_rides_on_any_forward_pass():
    """recording_attention measures every forward pass inside it (here a grad-enabled one, as
    in training, then a second), gives attention_stats' numbers, and leaves no hook behind."""
    model = tiny().eval()
    x, t, y = torch.randn(3, 3, 16, 16), torch.tensor([1, 500, 999]), torch.tensor([0, 4, 9])
    with recording_attention(model) as found:
        out = model(x, t, y)
        model(x, t, y)
    blocks = len(model.blocks)
    assert out.requires_grad and len(found) == 2 * blocks
    assert found[:blocks] == found[blocks:] == attention_stats(model, x, t, y)
    assert all(not block.attn._forward_hooks for block in model.blocks)


def test_qk_norm_bounds_the_attention_logits():
    """With qk_norm, |q·k|/√d_h ≤ √d_h·max|g_q|·max|g_k| (RMS-normalised rows have norm √d_h):
    scale the Q/K weights 100× (a stand-in for whatever makes q and k grow in long runs) and the
    logits stay under that bound, while without it they grow 10⁴× and the attention collapses."""
    x, t, y = torch.randn(4, 3, 16, 16), torch.randint(0, 1000, (4,)), torch.randint(0, 10, (4,))
    found = {}
    for qk_norm in (False, True):
        model = tiny(qk_norm=qk_norm).eval()
        before = attention_stats(model, x, t, y)
        with torch.no_grad():
            for block in model.blocks:
                block.attn.qkv.weight[:128].mul_(100)
                if qk_norm:
                    block.attn.q_norm.weight.uniform_(0.5, 2.0)
                    block.attn.k_norm.weight.uniform_(0.5, 2.0)
        found[qk_norm] = before, attention_stats(model, x, t, y), model
    (before, after, _) = found[False]
    assert all(a[0] > 5e3 * b[0] for a, b in zip(after, before))   # logits ∝ (100)² without it
    assert all(a[1] < 0.5 for a in after)                           # collapsed rows
    (_, after, model) = found[True]
    for (largest, entropy), block in zip(after, model.blocks):
        bound = 32 ** 0.5 * block.attn.q_norm.weight.abs().max() * block.attn.k_norm.weight.abs().max()
        assert largest <= bound.item() * (1 + 1e-5)
    # Off, the model has no extra parameters: a paper config stays the paper's.
    assert sum(p.numel() for p in tiny(qk_norm=True).parameters()) == \
        sum(p.numel() for p in tiny().parameters()) + 2 * 2 * 32
    with pytest.raises(ValueError, match="need model.eval"):
        attention_stats(tiny().train(), x, t, y)


def test_qk_norm_under_bf16_autocast():
    """Under bf16 autocast the norms run in fp32 and hand q and k back in v's dtype (bf16), so
    both attention paths get one dtype; forward and backward stay close to fp32."""
    model = tiny(qk_norm=True)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))          # off the zero init, so outputs are not 0
    x, t, y = torch.randn(4, 3, 16, 16), torch.randint(0, 1000, (4,)), torch.randint(0, 10, (4,))
    reference = model(x, t, y)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        q, k, v = model.blocks[0].attn.heads(torch.randn(4, 16, 64))
        assert q.dtype == k.dtype == v.dtype == torch.bfloat16
        out = model(x, t, y)
    assert (out.float() - reference).abs().max() < 0.05 * reference.abs().max()
    out.float().pow(2).mean().backward()
    gain = model.blocks[0].attn.q_norm.weight
    assert gain.grad is not None and gain.grad.dtype == torch.float32 and gain.grad.abs().sum() > 0


def test_position_embedding_matches_diffusers():
    ours = sincos_2d_pos_embed(64, 8)
    ref = get_2d_sincos_pos_embed(64, 8, base_size=8, interpolation_scale=1.0, output_type="pt")
    torch.testing.assert_close(ours, ref.float(), rtol=1e-5, atol=1e-6)


def test_adaln_zero_block_is_identity_at_init_and_still_learns():
    model = tiny()
    block: DiTBlock = model.blocks[0]
    x, c = torch.randn(3, 16, 64), torch.randn(3, 64)
    assert torch.equal(block(x, c), x)
    # The whole model predicts ε̂ = 0 at initialisation (final layer zeroed too).
    out = model(torch.randn(2, 3, 16, 16), torch.tensor([1, 500]), torch.tensor([0, 3]))
    assert torch.equal(out, torch.zeros_like(out))
    # In a block alone, gradients reach the zeroed gates: ∂out/∂α = branch output ≠ 0.
    block(x, c).pow(2).sum().backward()
    assert block.adaLN_modulation[-1].weight.grad.abs().sum() > 0


def test_adaln_zero_model_learns_one_layer_at_a_time():
    """In the whole model (DiTBlock's docstring) the zeroed output Linear stands in front of the
    gates: the first backward reaches only that Linear; after one optimiser step the gates get
    a gradient, while the shifts, scales and branches behind them (still α = 0) get none."""
    model = tiny(class_dropout_prob=0.0)
    D = model.config["hidden_size"]
    x_t, t, y = torch.randn(4, 3, 16, 16), torch.tensor([1, 200, 500, 999]), torch.tensor([0, 3, 5, 9])
    eps = torch.randn(4, 3, 16, 16)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)

    def backward() -> set[str]:
        opt.zero_grad(set_to_none=True)
        F.mse_loss(model(x_t, t, y), eps).backward()
        return {name for name, p in model.named_parameters() if p.grad is not None and p.grad.abs().max() > 0}

    assert backward() == {"final_layer.linear.weight", "final_layer.linear.bias"}   # step 1
    opt.step()
    moved = backward()                                                              # step 2
    for i, block in enumerate(model.blocks):
        mod = block.adaLN_modulation[-1]                   # output rows: β1, γ1, α1, β2, γ2, α2
        for chunk, name in enumerate(("β1", "γ1", "α1", "β2", "γ2", "α2")):
            rows = slice(chunk * D, (chunk + 1) * D)
            got = mod.weight.grad[rows].abs().sum() + mod.bias.grad[rows].abs().sum()
            assert (got > 0) == name.startswith("α"), f"block {i}, {name}"
        assert not any(n.startswith((f"blocks.{i}.attn.", f"blocks.{i}.mlp.")) for n in moved)


def test_label_dropout_only_in_training():
    model = tiny(class_dropout_prob=1.0)
    y = torch.arange(10)
    null = model.y_embedder.embedding_table.weight[10]
    model.train()
    assert torch.equal(model.y_embedder(y), null.expand(10, -1))       # every label dropped to ∅
    model.eval()
    assert torch.equal(model.y_embedder(y), model.y_embedder.embedding_table.weight[:10])


def test_bad_inputs_are_clear_errors():
    with pytest.raises(ValueError, match="hidden size 100 is not divisible by 3 heads"):
        DiT(input_size=16, patch_size=4, in_channels=3, hidden_size=100, depth=1, num_heads=3, num_classes=2)
    with pytest.raises(ValueError, match="patch size 3 does not divide the image size 16"):
        tiny(patch_size=3)
    model = tiny()
    x, t = torch.randn(2, 3, 16, 16), torch.zeros(2, dtype=torch.long)
    with pytest.raises(ValueError, match=r"labels must lie in 0 … 9, or be 10 for the null class; got values from 0 to 11"):
        model(x, t, torch.tensor([0, 11]))
    with pytest.raises(ValueError, match="labels must lie"):
        model(x, t, torch.tensor([-1, 0]))
    with pytest.raises(ValueError, match=r"built for inputs \(3, 16, 16\), got \(3, 32, 32\)"):
        model(torch.randn(2, 3, 32, 32), t, t)
    with pytest.raises(ValueError, match="unknown model 'DiT-Q/2'"):
        build_dit("DiT-Q/2")


def test_tiny_dit_overfits_one_batch():
    """Fixed (x_t, t, y) → ε is a memorisation task: the loss must fall at least 10×."""
    model = tiny(class_dropout_prob=0.0)
    g = torch.Generator().manual_seed(0)
    alpha_bar = alpha_bar_from_betas(make_betas("cosine", 1000))
    x0 = torch.rand(8, 3, 16, 16, generator=g) * 2 - 1
    t = torch.randint(0, 1000, (8,), generator=g)
    y = torch.randint(0, 10, (8,), generator=g)
    eps = torch.randn(x0.shape, generator=g)
    x_t = add_noise(x0, t, eps, alpha_bar)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.0)
    losses = []
    for _ in range(300):
        loss = F.mse_loss(model(x_t, t, y), eps)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[0] == pytest.approx(eps.pow(2).mean().item(), rel=1e-5)   # ε̂ = 0 at init
    assert min(losses[-10:]) < losses[0] / 10


# ── the DDIM sampler ────────────────────────────────────────────────────────────────────────


ALPHA_BAR = alpha_bar_from_betas(make_betas("linear", 1000))


def toy_eps(x, t):
    """A noise predictor with realistic magnitudes to compare two samplers step for step: the
    exact ε̂ for data x0 ~ N(0, 0.25·I), √(1−ᾱ)·x / (0.25·ᾱ + 1 − ᾱ), plus a nonlinear term."""
    a = ALPHA_BAR[t].to(x.dtype).view(-1, 1, 1, 1)
    return (1 - a).sqrt() * x / (0.25 * a + 1 - a) + 0.1 * torch.sin(3 * x)


def test_ddim_timesteps():
    assert ddim_timesteps(1000, 4, "leading") == [750, 500, 250, 0]
    assert ddim_timesteps(1000, 4, "trailing") == [999, 749, 499, 249]
    # n ∤ T: leading starts well below T−1; trailing keeps T−1 with a float stride (Lin et al.).
    assert ddim_timesteps(1000, 7, "leading") == [852, 710, 568, 426, 284, 142, 0]
    assert ddim_timesteps(1000, 7, "trailing") == [999, 856, 713, 570, 428, 285, 142]
    with pytest.raises(ValueError, match="spacing must be"):
        ddim_timesteps(1000, 4, "linspace")
    with pytest.raises(ValueError, match="num_steps must be between 1 and T"):
        ddim_timesteps(10, 11)


@pytest.mark.parametrize("spacing", ["leading", "trailing"])
def test_ddim_timesteps_match_diffusers(spacing):
    """Both spacings list diffusers' steps (steps_offset = 0), also where n does not divide T
    (7, 30, 42), where trailing's float stride meets a tie (48, 96), and where diffusers' own
    list overshoots by one step, a t = −1 (61 at T = 1000), which ours leaves out."""
    for T in (1000, 500):
        sched = DDIMScheduler(num_train_timesteps=T, timestep_spacing=spacing, steps_offset=0)
        for n in (1, 4, 7, 10, 25, 30, 42, 48, 50, 61, 96, 100, 250, 499, 500, 1000):
            if n > T:
                continue
            sched.set_timesteps(n)
            ref = sched.timesteps.tolist()
            assert ddim_timesteps(T, n, spacing) == ref[:n], (T, n)
            assert ref[n:] in ([], [-1]), (T, n)


def test_predict_x0_inverts_the_forward_process_and_clips_consistently():
    """x̂0 undoes x_t = √ᾱ·x0 + √(1−ᾱ)·ε; with clipping the returned pair (x̂0, ε̂) still
    rebuilds x_t, and a per-sample tensor ᾱ gives the numbers of a float one."""
    g = torch.Generator().manual_seed(0)
    x0 = torch.rand(2, 3, 4, 4, generator=g, dtype=torch.float64) * 2 - 1
    eps = torch.randn(2, 3, 4, 4, generator=g, dtype=torch.float64)
    a = ALPHA_BAR[300].item()
    x_t = math.sqrt(a) * x0 + math.sqrt(1 - a) * eps
    x0_hat, eps_hat = predict_x0(x_t, eps, a)
    torch.testing.assert_close(x0_hat, x0, rtol=0, atol=1e-12)
    assert eps_hat is eps                                              # unclipped: ε̂ as given
    x0_c, eps_c = predict_x0(x_t, 3 * eps, a, clip_x0=1.0)   # a wrong ε̂ whose x̂0 leaves [−1, 1]
    assert x0_c.abs().max() == 1.0
    torch.testing.assert_close(math.sqrt(a) * x0_c + math.sqrt(1 - a) * eps_c, x_t, rtol=0, atol=1e-12)
    per_sample = ALPHA_BAR[torch.tensor([300, 300])].view(-1, 1, 1, 1)
    torch.testing.assert_close(predict_x0(x_t, 3 * eps, per_sample, clip_x0=1.0), (x0_c, eps_c))


@pytest.mark.parametrize("spacing, eta, clip", [("leading", 0.0, None), ("trailing", 0.0, None),
                                                ("leading", 1.0, None), ("trailing", 0.5, 1.0)])
def test_ddim_matches_diffusers_step_for_step(spacing, eta, clip):
    T, n = 1000, 50
    sched = DDIMScheduler(num_train_timesteps=T, beta_schedule="linear", set_alpha_to_one=True,
                          steps_offset=0, timestep_spacing=spacing, clip_sample=clip is not None,
                          clip_sample_range=clip or 1.0, prediction_type="epsilon")
    # Both samplers run in float64 on the same ᾱ, so what is compared is the algorithm, not
    # float32 rounding: at t = 999, x̂0 divides by √ᾱ ≈ 6e-3, which magnifies float32 error ~160×.
    sched.alphas_cumprod = ALPHA_BAR
    sched.final_alpha_cumprod = torch.tensor(1.0, dtype=torch.float64)
    sched.set_timesteps(n)
    assert sched.timesteps.tolist() == ddim_timesteps(T, n, spacing)

    x_T = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    ours = list(ddim_sample(toy_eps, x_T, ALPHA_BAR, n, eta=eta,
                            generator=torch.Generator().manual_seed(1), spacing=spacing, clip_x0=clip))
    assert len(ours) == n
    g = torch.Generator().manual_seed(1)      # the same stream of z for diffusers
    x = x_T
    for (t, x_t, x0_hat), t_ref in zip(ours, sched.timesteps):
        assert t == t_ref.item()
        assert (x_t - x).abs().max() < 1e-5
        z = torch.randn(x.shape, generator=g, dtype=x.dtype) if eta > 0 else None
        out = sched.step(toy_eps(x, torch.full((2,), t)), t_ref, x, eta=eta, variance_noise=z,
                         use_clipped_model_output=clip is not None)
        assert (x0_hat - out.pred_original_sample).abs().max() < 1e-5
        x = out.prev_sample
    assert (ours[-1][2] - x).abs().max() < 1e-5        # the last x̂0 is the final sample


def test_ddim_on_gaussian_data_is_the_closed_form_product():
    """For data x0 ~ N(0, s²·I) the ideal noise predictor is linear in x_t,
        ε̂(x_t, t) = √(1−ᾱ_t) · x_t / (s²ᾱ_t + 1 − ᾱ_t),
    so each deterministic DDIM step (η = 0) multiplies x_t by a number:
        x_t' = x_t · (s²·√(ᾱ_t ᾱ_t') + √((1−ᾱ_t)(1−ᾱ_t'))) / (s²ᾱ_t + 1 − ᾱ_t).
    Their product pins both coefficients of eq. 12, each ᾱ_t' and the step list; the last
    factor, with ᾱ_t' = 1, turns x_t into x̂0, the sample.  A single data point would not pin
    them: its exact ε̂ gives x̂0 = x0* from any x_t, whatever the update does in between."""
    s2 = 0.25
    def exact_eps(x_t, t):
        a = ALPHA_BAR[t].view(-1, 1, 1, 1)
        return (1 - a).sqrt() * x_t / (s2 * a + 1 - a)
    for spacing in ("leading", "trailing"):
        for n in (1, 7, 50):
            # float64 throughout: at t = 999, x̂0 divides by √ᾱ ≈ 6e-3 and magnifies rounding.
            x_T = torch.randn(2, 3, 4, 4, generator=torch.Generator().manual_seed(n), dtype=torch.float64)
            *_, (_, _, x0) = ddim_sample(exact_eps, x_T, ALPHA_BAR, n, spacing=spacing)
            steps = ddim_timesteps(1000, n, spacing)
            factor = 1.0
            for i, t in enumerate(steps):
                a, a_next = ALPHA_BAR[t].item(), (ALPHA_BAR[steps[i + 1]].item() if i + 1 < n else 1.0)
                factor *= (s2 * math.sqrt(a * a_next) + math.sqrt((1 - a) * (1 - a_next))) / (s2 * a + 1 - a)
            torch.testing.assert_close(x0, factor * x_T, rtol=1e-9, atol=0)


def test_patch_study_quadruples_tokens_and_compute_per_halving(tmp_path):
    """tools/patch_study.py: T = (32/p)², halving p multiplies the
    tokens by exactly 4 and the GFLOPs by more than 4 (attention grows with T²), parameters
    within 2% (only the patch embedding and the final layer depend on p)."""
    from patch_study import patch_study

    x0 = torch.rand(1, 3, 32, 32) * 2 - 1
    path, rows = patch_study(x0, tmp_path, "DiT-Ti/2")
    assert path.exists()
    (p2, t2, _, n2, g2), (p4, t4, _, n4, g4), (p8, t8, _, n8, g8) = rows
    assert (p2, p4, p8) == (2, 4, 8) and (t2, t4, t8) == (256, 64, 16)
    assert g2 / g4 > 4 and g4 / g8 > 3.9
    assert abs(n2 - n8) / n8 < 0.02


@pytest.mark.parametrize("amx", [False, True])
def test_tune_cpu_writes_attention_out_only_without_amx(amx, monkeypatch):
    """machine.tune_cpu: on a CPU without AMX units bf16 attention is written out (the fused
    kernel is slower there: bench/bench_cpu_paths.py), with AMX and on a GPU it stays fused."""
    monkeypatch.setattr(dit.Attention, "kernel", staticmethod(F.scaled_dot_product_attention))   # dit's own
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx)
    machine.tune_cpu(torch.device("meta"))                                  # not a CPU: nothing
    assert dit.Attention.kernel is F.scaled_dot_product_attention
    machine.tune_cpu(torch.device("cpu"))
    assert (dit.Attention.kernel is machine.attention_without_amx) == (not amx)
