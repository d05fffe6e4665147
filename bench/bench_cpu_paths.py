"""What each CPU setting of machine.tune_cpu buys on the default commands, end to end.

The settings: glibc keeping freed memory (`malloc`) and, on CPUs without AMX, bf16 attention
written out instead of PyTorch's fused kernel (`attention`).  Each command runs in a fresh
process with both on, with one off, and with both off; the process applies the switches to
`machine.tune_cpu` and then runs the script as `python <script>` would.  Each command's wall time
is measured from outside, so it holds everything a user waits for (start-up, data, compiling,
writing files).

    python bench/bench_cpu_paths.py              # about 30 minutes on a 2-core CPU
    python bench/bench_cpu_paths.py --only x0    # one command
    python bench/bench_cpu_paths.py --rounds 7   # in-process A/B of the steps alone, interleaved

A shared 2-core VM drifts by ±10% over minutes, as much as a setting may buy, so --rounds also
times the steps alone in one process: a training step of the default model (DiT-Ti/2, batch 64,
bf16) and an eager guided sampling step of the shipped model (batch 2 × 100, bf16), the
attention kernel swapped in turn within every round, the order reversed every other round.
(The allocator setting cannot be undone in a process, so it is measured end to end only.)

The settings were chosen by this measurement: the same script at commit e681cf7 also timed the
CPU paths dit.py then had (a oneDNN Linear for inference, GELU fused into it, GELU as x·σ(2u)
under torch.compile, a separate inductor cache); each bought under 10% end to end and was
deleted (bench/bench_cpu_paths.txt).
"""

from __future__ import annotations

import argparse
import json
import os
import runpy
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PATHS = ["attention", "malloc"]

# The default commands, cut to a size that runs in about a minute: the trainer's default model
# and batch for 30 steps, the x̂0 grid as it is, and one guided cfg.py set of 200 images.
COMMANDS = {
    "train": ["train_one_epoch.py", "--patch", "2", "--max-steps", "30", "--no-samples", "--out", "{tmp}/train"],
    "x0": ["ddim_x0_grid.py", "--out", "{tmp}/x0"],
    "cfg": ["cfg.py", "--w", "4", "--n", "200", "--no-metrics", "--check-w", "--redraw-w", "--out", "{tmp}/cfg"],
}


def switch_off(paths: list[str]) -> None:
    """Make machine.tune_cpu leave the named settings off (before the script imports it)."""
    sys.path.insert(0, str(ROOT))
    import torch.nn.functional as F
    import dit
    import machine
    tune = machine.tune_cpu

    def tune_cpu(device) -> None:
        if "malloc" not in paths:
            tune(device)
        elif device.type == "cpu":                   # the attention setting alone
            dit.Attention.kernel = staticmethod(machine.attention_without_amx)
        if "attention" in paths:
            dit.Attention.kernel = staticmethod(F.scaled_dot_product_attention)
    machine.tune_cpu = tune_cpu


def ab_rounds(rounds: int, out: Path) -> None:
    """The attention kernel on and off in turn within every round, for a training step and a
    sampling step (both with the allocator setting on, as the scripts run)."""
    import statistics
    import torch
    import torch.nn.functional as F
    sys.path.insert(0, str(ROOT))
    import dit
    import machine
    from forward_process import add_noise, alpha_bar_from_betas, make_betas

    machine.tune_cpu(torch.device("cpu"))
    kernels = {"none": dit.Attention.kernel, "attention": staticmethod(F.scaled_dot_product_attention)}
    alpha_bar = alpha_bar_from_betas(make_betas("linear", 1000))
    g = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    trainee = dit.build_dit("DiT-Ti/2", input_size=32, in_channels=3, num_classes=10)
    opt = torch.optim.AdamW(trainee.parameters(), lr=1e-4, weight_decay=0.0, fused=True)
    x0, y = torch.rand(64, 3, 32, 32, generator=g) * 2 - 1, torch.randint(0, 10, (64,), generator=g)
    sampler = dit.build_dit("DiT-Ti/2", input_size=32, in_channels=3, num_classes=10, qk_norm=True).eval()
    x_t, t = torch.randn(200, 3, 32, 32, generator=g), torch.full((200,), 500)
    y2 = torch.cat([torch.randint(0, 10, (100,), generator=g), torch.full((100,), 10)])

    def train_steps(n: int = 3) -> float:
        start = time.perf_counter()
        for _ in range(n):
            tt = torch.randint(0, 1000, (64,))
            eps = torch.randn_like(x0)
            with torch.autocast("cpu", dtype=torch.bfloat16):
                loss = F.mse_loss(trainee(add_noise(x0, tt, eps, alpha_bar), tt, y).float(), eps)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        return 64 * n / (time.perf_counter() - start)                      # images/s

    @torch.inference_mode()
    def sample_steps(n: int = 3) -> float:
        start = time.perf_counter()
        for _ in range(n):
            with torch.autocast("cpu", dtype=torch.bfloat16):
                sampler(x_t, t, y2)
        return 100 * n / (time.perf_counter() - start)                     # image-steps/s, guided

    results = json.loads(out.read_text()) if out.is_file() else {}
    for name, work in {"train step": train_steps, "sampling step": sample_steps}.items():
        for kernel in kernels.values():                                     # warm-up, untimed
            dit.Attention.kernel = kernel
            work(1)
        found = {key: [] for key in kernels}
        for r in range(rounds):
            for key in kernels if r % 2 == 0 else list(kernels)[::-1]:
                dit.Attention.kernel = kernels[key]
                found[key].append(work())
        base = statistics.median(found["none"])
        for key, rates in found.items():
            m = statistics.median(rates)
            print(f"{name:14s} off: {key:10s} {m:7.1f}/s  ({m / base:.3f}× all on; rounds: "
                  f"{' '.join(f'{x:.1f}' for x in rates)})", flush=True)
        results.setdefault("rounds", {})[name] = {k: round(statistics.median(v), 2) for k, v in found.items()}
    dit.Attention.kernel = kernels["none"]
    out.write_text(json.dumps(results, indent=1) + "\n")


def child(paths: list[str], argv: list[str]) -> None:
    switch_off(paths)
    sys.argv = argv
    os.chdir(ROOT)
    runpy.run_path(str(ROOT / argv[0]), run_name="__main__")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", nargs="+", choices=list(COMMANDS), default=list(COMMANDS))
    ap.add_argument("--out", default=str(ROOT / "bench" / "bench_cpu_paths.json"))
    ap.add_argument("--rounds", type=int, default=0, help="instead, the in-process A/B of the steps, in this many rounds")
    ap.add_argument("--child", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.rounds:
        return ab_rounds(args.rounds, Path(args.out))
    if args.child is not None:
        off, *argv = args.child
        return child([p for p in off.split(",") if p], argv)
    sys.path.insert(0, str(ROOT))
    import torch
    from machine import describe_machine
    machine = describe_machine(torch.device("cpu"))
    results = json.loads(Path(args.out).read_text()) if Path(args.out).is_file() else {}
    results["machine"] = machine
    for name in args.only:
        # a first run, not counted, fills the caches every run then finds (data, compiled kernels)
        for warm_up, off in [(True, []), *[(False, o) for o in [[], *[[p] for p in PATHS], PATHS]]]:
            key = ",".join(off) or "none"
            with tempfile.TemporaryDirectory() as tmp:
                argv = [a.format(tmp=tmp) for a in COMMANDS[name]]
                start = time.perf_counter()
                subprocess.run([sys.executable, __file__, "--child", ",".join(off), *argv], check=True,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                seconds = time.perf_counter() - start
                extra = ""
                if name == "train":
                    rate = json.loads(Path(tmp, "train", "metrics.json").read_text())["images_per_second"]
                    extra = f", {rate:.1f} images/s"
            if warm_up:
                print(f"{name:5s} warm-up run {seconds:6.1f} s{extra}", flush=True)
                continue
            results.setdefault(name, {})[key] = round(seconds, 1)
            print(f"{name:5s} off: {key:20s} {seconds:6.1f} s{extra}", flush=True)
            Path(args.out).write_text(json.dumps(results, indent=1) + "\n")
    print(f"on {machine}")


if __name__ == "__main__":
    main()
