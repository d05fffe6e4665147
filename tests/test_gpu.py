"""The same code on a CUDA GPU (skipped without one): the model, the sampler and the training
script give the CPU's answers, within the GPU's rounding.

Only torch and the project's own modules are imported here, so that these checks also run on a
GPU machine that has no diffusers or FID weights installed."""
import json

import pytest
import torch

import landscapes
import train_one_epoch as tr
from dit import DiT, autocast, ddim_sample
from forward_process import alpha_bar_from_betas, make_betas

pytestmark = pytest.mark.gpu


def random_dit(qk_norm: bool = False) -> DiT:
    """A small DiT with every weight random: adaLN-Zero's zero init would make ε̂ ≡ 0, and any
    two devices agree on zeros."""
    torch.manual_seed(0)
    model = DiT(input_size=16, patch_size=2, in_channels=3, hidden_size=64, depth=2, num_heads=4,
                num_classes=10, class_dropout_prob=0.0, qk_norm=qk_norm)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.05)
        for block in model.blocks if qk_norm else ():     # the norms' gains near their init, 1:
            for norm in (block.attn.q_norm, block.attn.k_norm):   # logits of order √d_h, not ~0
                norm.weight.add_(1.0)
    return model.eval()


def inputs(n: int = 8):
    g = torch.Generator().manual_seed(1)
    return (torch.randn(n, 3, 16, 16, generator=g), torch.randint(0, 1000, (n,), generator=g),
            torch.randint(0, 10, (n,), generator=g))


def relative_error(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.double() - b.double()).norm() / b.double().norm())


@pytest.mark.parametrize("qk_norm", [False, True])    # the shipped model normalises q and k
@torch.no_grad()
def test_dit_forward_on_cuda_matches_cpu(monkeypatch, qk_norm):
    # TF32 would round the matmuls' and the patch convolution's inputs to 10 mantissa bits.
    monkeypatch.setattr(torch.backends.cuda.matmul, "allow_tf32", False)
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)
    model, (x, t, y) = random_dit(qk_norm), inputs()
    cpu = model(x, t, y)
    gpu = model.cuda()(x.cuda(), t.cuda(), y.cuda()).cpu()
    assert cpu.abs().mean() > 0.01                      # a real output, not adaLN-Zero's zeros
    assert relative_error(gpu, cpu) < 1e-5


@torch.no_grad()
def test_bf16_autocast_on_cuda_stays_close_to_fp32():
    model, (x, t, y) = random_dit().cuda(), inputs()
    x, t, y = x.cuda(), t.cuda(), y.cuda()
    fp32 = model(x, t, y)
    with autocast(torch.device("cuda"), "bf16"):
        bf16 = model(x, t, y)
    assert bf16.dtype == torch.bfloat16
    assert relative_error(bf16.float(), fp32) < 3e-2    # bf16 keeps 8 mantissa bits


def test_ddim_on_cuda_matches_cpu():
    alpha_bar = alpha_bar_from_betas(make_betas("linear", 1000))
    eps_fn = lambda x, t: torch.tanh(x) * t.to(x.dtype).view(-1, 1, 1, 1) / 1000   # t: (B,)
    x_T = torch.randn(4, 3, 8, 8, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    runs = [list(ddim_sample(eps_fn, x_T.to(dev), alpha_bar.to(dev), 20, spacing="trailing"))
            for dev in ("cpu", "cuda")]
    for (t_c, x_c, x0_c), (t_g, x_g, x0_g) in zip(*runs):
        assert t_c == t_g
        torch.testing.assert_close(x_g.cpu(), x_c, rtol=0, atol=1e-10)
        torch.testing.assert_close(x0_g.cpu(), x0_c, rtol=0, atol=1e-10)


def test_training_script_on_cuda(tmp_path):
    """A few bf16 steps on the GPU: the loss is finite, the checkpoint loads on a CPU-only
    machine (weights_only), and --fid leaves its samples whether or not Inception is there."""
    data = landscapes.generate_procedural(tmp_path / "data", n=64, size=16, seed=0, progress=False)
    out = tmp_path / "run"
    tr.main(tr.parse_args(["--data", str(data), "--out", str(out), "--image-size", "16",
                           "--model", "DiT-Mi/4", "--batch-size", "16", "--epochs", "2",
                           "--device", "cuda", "--precision", "bf16", "--fid", "8",
                           "--sample-steps", "3", "--export", str(tmp_path / "small.pt")]))
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["device"].startswith("cuda") and metrics["precision"] == "bf16"
    assert metrics["steps"] == 2 * (64 // 16) and 0 < metrics["final_loss"] < 10
    state = torch.load(out / tr.CHECKPOINT, map_location="cpu", weights_only=True)
    assert all(v.device.type == "cpu" for v in state["ema"].values())
    assert len(landscapes.load_images(out / "fid_samples", 16).images) == 8
    small = torch.load(tmp_path / "small.pt", weights_only=True)    # no map_location: as stored
    assert small["ema"]["final_layer.linear.weight"].dtype == torch.bfloat16
    assert all(v.device.type == "cpu" for v in small["ema"].values())   # loads on CPU-only machines


# The gradient norm clipped (the shipped run's settings) or only measured (the paper's).
@pytest.mark.parametrize("grad_clip, qk_norm", [(1.0, True), (None, False)])
def test_training_step_never_waits_for_the_gpu(grad_clip, qk_norm):
    """train_step queues its work and returns: any host-device sync inside it (an .item(), a
    bincount, a data-dependent check) would make the GPU idle while Python launches the next
    step.  CUDA's sync debug mode turns the waits it detects (most of them; PyTorch calls the
    mode a prototype) into errors."""
    import argparse
    import copy
    torch.manual_seed(0)
    device = torch.device("cuda")
    model = DiT(input_size=16, patch_size=2, in_channels=3, hidden_size=64, depth=2, num_heads=4,
                num_classes=10, class_dropout_prob=0.1, qk_norm=qk_norm).to(device).train()
    ema = copy.deepcopy(model).requires_grad_(False)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.0, fused=True)
    alpha_bar = alpha_bar_from_betas(make_betas("linear", 1000)).to(device)
    args = argparse.Namespace(grad_clip=grad_clip, ema_decay=0.9999)
    u8 = torch.randint(0, 256, (8, 3, 16, 16), dtype=torch.uint8, device=device)
    y = torch.randint(0, 10, (8,), device=device)
    step = lambda n: tr.train_step(model, model, ema, opt, u8, y, alpha_bar, n, args, device, "bf16")
    step(0)                                   # first call: optimiser state, cuBLAS handles
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        losses = [step(n)[0] for n in (1, 2, 3)]
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert all(torch.isfinite(loss) for loss in losses)
