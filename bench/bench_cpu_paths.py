"""What each CPU-specific path in dit.py buys on the default commands, end to end.

The paths: the oneDNN Linear for CPU inference (`onednn`), the GELU fused into its kernel
(`fused-gelu`), the switch from fused attention to the written-out softmax(QKᵀ)V for bf16 on CPUs
without AMX (`attend`), GELU as x·σ(2u) under torch.compile (`sigmoid-gelu`) and glibc's
mmap/trim thresholds raised (`malloc`).  Each command runs in a fresh process with all paths on,
with one path off, and with all off; the process applies the switches to the `dit` module and
then runs the script as `python <script>` would.  Each command's wall time is measured from
outside, so it holds everything a user waits for (start-up, data, compiling, writing files).

    python bench/bench_cpu_paths.py              # about 25 minutes on a 2-core CPU
    python bench/bench_cpu_paths.py --only x0    # one command
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
PATHS = ["onednn", "fused-gelu", "attend", "sigmoid-gelu", "malloc"]

# The default commands, cut to a size that runs in about a minute: the trainer's default model
# and batch for 30 steps, the x̂0 grid as it is, and one guided cfg.py set of 200 images (sampling only).
COMMANDS = {
    "train": ["train_one_epoch.py", "--patch", "2", "--max-steps", "30", "--no-samples", "--out", "{tmp}/train"],
    "x0": ["ddim_x0_grid.py", "--out", "{tmp}/x0"],
    "cfg": ["cfg.py", "--w", "4", "--n", "200", "--no-metrics", "--check-w", "--redraw-w", "--out", "{tmp}/cfg"],
}


def switch_off(paths: list[str]) -> None:
    """Turn the named paths off in the imported dit module (before the script imports it)."""
    sys.path.insert(0, str(ROOT))
    import torch.nn.functional as F
    import dit
    if "onednn" in paths:
        dit._HAS_ONEDNN = False
    if "fused-gelu" in paths:                    # oneDNN's Linear stays, GELU runs on its own
        def forward(self, x):
            h = self.fc1(x)
            h = dit.gelu_tanh_as_sigmoid(h) if dit.torch.compiler.is_compiling() else F.gelu(h, approximate="tanh")
            return self.fc2(h)
        dit.Mlp.forward = forward
    if "attend" in paths:                        # always the fused kernel
        dit.attend = lambda q, k, v: F.scaled_dot_product_attention(q, k, v)
    if "sigmoid-gelu" in paths:
        dit.gelu_tanh_as_sigmoid = lambda h: F.gelu(h, approximate="tanh")
    if "malloc" in paths:
        dit.keep_freed_memory = lambda: False


def child(paths: list[str], argv: list[str]) -> None:
    switch_off(paths)
    sys.argv = argv
    os.chdir(ROOT)
    runpy.run_path(str(ROOT / argv[0]), run_name="__main__")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", nargs="+", choices=list(COMMANDS), default=list(COMMANDS))
    ap.add_argument("--out", default=str(ROOT / "bench" / "bench_cpu_paths.json"))
    ap.add_argument("--child", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child is not None:
        off, *argv = args.child
        return child([p for p in off.split(",") if p], argv)
    sys.path.insert(0, str(ROOT))
    import torch
    from dit import describe_machine
    machine = describe_machine(torch.device("cpu"))
    results = json.loads(Path(args.out).read_text()) if Path(args.out).is_file() else {}
    results["machine"] = machine
    for name in args.only:
        # a first run, not counted, fills the caches every run then finds (data, Inception features)
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
            print(f"{name:5s} off: {key:45s} {seconds:6.1f} s{extra}", flush=True)
            Path(args.out).write_text(json.dumps(results, indent=1) + "\n")
    print(f"on {machine}")


if __name__ == "__main__":
    main()
