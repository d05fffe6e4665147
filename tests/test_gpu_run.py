"""tools/gpu_run.sh, the script that trained the shipped model on lent GPUs, and
tools/gpu_eval.sh, its guidance sweep, run here with a stand-in for python
(tests/gpu_run_stub.py) that records each training command instead of training.  What is
checked is the scripts' own logic: the commands they build from their knobs (a resumed call, a
cooldown, a new run from an export, guidance in cfg.py's convention), the refusal to resume on
a fresh machine, the eager rerun when compiling fails (and not after a non-finite loss), and
the files they pack for the trip back."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from gpu_run_stub import value           # a flag's value in a recorded command (None if absent)

REPO = Path(__file__).resolve().parent.parent
STUB = Path(__file__).resolve().parent / "gpu_run_stub.py"

pytestmark = pytest.mark.skipif(shutil.which("bash") is None or shutil.which("tar") is None,
                                reason="tools/gpu_run.sh needs bash and tar")


def gpu_run(tmp_path: Path, **knobs: str) -> tuple[subprocess.CompletedProcess, list[list[str]], Path]:
    """Run the script with these knobs; return the process, the training commands in order
    (each one's arguments after train_one_epoch.py) and OUT."""
    out, scratch = tmp_path / "out", tmp_path / "scratch"
    out.mkdir(exist_ok=True)
    scratch.mkdir(exist_ok=True)
    log = tmp_path / "commands.jsonl"
    log.unlink(missing_ok=True)
    env = {**os.environ, "OUT": str(out), "SCRATCH": str(scratch), "STUB_LOG": str(log),
           "PY": f"{sys.executable} {STUB}", "GPU_TESTS": "0", **knobs}
    proc = subprocess.run(["bash", "tools/gpu_run.sh"], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=120)
    commands = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    return proc, commands, out


def test_a_cooldown_call_resumes_and_trains_n_more_steps_to_lr_0(tmp_path):
    # The warm machine's checkpoint from the call before, at step 8,811.
    (tmp_path / "scratch" / "run").mkdir(parents=True)
    torch.save({"step": 8811}, tmp_path / "scratch" / "run" / "checkpoint.pt")
    proc, commands, out = gpu_run(tmp_path, QK_NORM="1", INIT="checkpoints/dit_landscapes.pt",
                                  WARMUP="500", SEED="2", GUIDED="0", FALLBACK="0", RESUME="1",
                                  COOLDOWN="2500", BUDGET_S="250")
    assert proc.returncode == 0, proc.stderr
    (train,) = commands                       # no eager check on a resumed call, no sample sets
    assert value(train, "--resume") == str(tmp_path / "scratch" / "run" / "checkpoint.pt")
    assert "--init-from" not in train         # the run goes on; INIT only names its start
    assert (value(train, "--max-steps"), value(train, "--decay-steps")) == ("11311", "2500")
    assert ("--qk-norm" in train and "--compile" in train and value(train, "--seed") == "2"
            and value(train, "--warmup-steps") == "500")
    # The budget less 60 s for sampling and packing, less the seconds already spent.
    assert 2.5 < float(value(train, "--max-minutes")) <= (250 - 60) / 60
    # Back come the export, the second-newest snapshot (unsampled: FALLBACK=0), the samples and
    # the run's files.
    assert sorted(p.name for p in out.iterdir()) == [
        "dit_landscapes-step3000.pt", "dit_landscapes.pt", "fid_samples.tgz", "run_files.tgz",
        "train.log"]


def test_a_cooldown_from_scratch_counts_from_step_0(tmp_path):
    proc, commands, _ = gpu_run(tmp_path, COOLDOWN="1000", EAGER_CHECK="0")
    assert proc.returncode == 0, proc.stderr
    (train,) = commands
    assert (value(train, "--max-steps"), value(train, "--decay-steps")) == ("1000", "1000")
    assert "--resume" not in train and "--init-from" not in train


def test_resuming_on_a_fresh_machine_is_refused_in_one_line(tmp_path):
    proc, commands, out = gpu_run(tmp_path, RESUME="1")
    assert proc.returncode == 1 and commands == []
    assert "RESUME=1: no " in (out / "train.log").read_text()


def test_a_new_run_from_an_export_samples_the_final_model_guided_and_its_fallback(tmp_path):
    proc, commands, out = gpu_run(tmp_path, INIT="checkpoints/dit_landscapes.pt", WARMUP="500",
                                  SEED="2")
    assert proc.returncode == 0, proc.stderr
    eager, train, guided, fallback = commands
    assert value(eager, "--max-minutes") == "0.3" and "--compile" not in eager
    assert value(train, "--init-from") == "checkpoints/dit_landscapes.pt"
    assert "--max-steps" not in train and "--decay-steps" not in train   # no COOLDOWN
    scratch_export = tmp_path / "scratch" / "export"
    # The guided set at w = 1.5 by cfg.py (guidance's one home), the fallback unguided by the
    # trainer's evaluation-only call.
    assert guided[0] == "cfg.py" and (value(guided, "--checkpoint"), value(guided, "--w")) == (
        str(scratch_export / "dit_landscapes.pt"), "1.5")
    assert value(fallback, "--init-from") == str(scratch_export / "dit_landscapes-step3000.pt")
    assert value(fallback, "--max-steps") == "0" and "--guidance" not in fallback
    names = {p.name for p in out.iterdir()}
    assert {"fid_samples_w1.5.tgz", "fid_samples_dit_landscapes-step3000.tgz",
            "dit_landscapes.pt", "dit_landscapes-step3000.pt"} <= names


@pytest.mark.parametrize("failure, reruns", [("1", True), ("nan", False)])
def test_an_eager_rerun_only_when_compiling_failed(tmp_path, failure, reruns):
    proc, commands, out = gpu_run(tmp_path, EAGER_CHECK="0", STUB_COMPILE_FAILS=failure)
    assert proc.returncode == 0, proc.stderr
    assert "--compile" in commands[0]
    if reruns:
        compiled, eager = commands
        # The same run without --compile (the last argument is --max-minutes' value) ...
        assert eager[:-1] == [a for a in compiled if a != "--compile"][:-1]
        assert float(eager[-1]) <= float(compiled[-1])     # ... in the minutes that are left
        assert (out / "dit_landscapes.pt").exists()
    else:                         # a non-finite loss would only recur: no rerun, nothing to ship
        assert len(commands) == 1 and not (out / "dit_landscapes.pt").exists()
        assert "no final export" in (out / "train.log").read_text()


def test_gpu_eval_samples_each_guidance_and_step_count_in_cfgs_convention(tmp_path):
    """tools/gpu_eval.sh: one sampling-only cfg.py call per w:steps setting, the default sweep
    from w = 1 (unguided) to w = 5, and one archive of samples per setting."""
    out, scratch, log = tmp_path / "out", tmp_path / "scratch", tmp_path / "commands.jsonl"
    out.mkdir()
    scratch.mkdir()
    env = {**os.environ, "OUT": str(out), "SCRATCH": str(scratch), "STUB_LOG": str(log),
           "PY": f"{sys.executable} {STUB}"}
    proc = subprocess.run(["bash", "tools/gpu_eval.sh"], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    commands = [json.loads(line) for line in log.read_text().splitlines()]
    assert [(value(c, "--w"), value(c, "--steps")) for c in commands] == [
        ("2", "50"), ("1.5", "50"), ("3", "50"), ("5", "50"), ("1", "100")]
    assert all(c[0] == "cfg.py" and value(c, "--checkpoint") == "checkpoints/dit_landscapes.pt"
               and "--no-metrics" in c for c in commands)
    assert sorted(p.name for p in out.glob("*.tgz")) == sorted(
        f"fid_samples_w{w}_s{n}.tgz" for w, n in (("2", 50), ("1.5", 50), ("3", 50), ("5", 50), ("1", 100)))
