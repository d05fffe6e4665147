"""A stand-in for `python` in tools/gpu_run.sh and tools/gpu_eval.sh, for tests/test_gpu_run.py
(PY="python THIS").

The script's own `python -c CODE` snippets (the torch version, the minutes left, the step of the
checkpoint a call resumes) run for real.  `python -m pytest …` (the GPU tests) does nothing.
`python train_one_epoch.py ARGS` and `python cfg.py ARGS` are not run: their ARGS are appended
as one JSON line to the file in $STUB_LOG (cfg.py's behind the word "cfg.py"), and they leave
behind the files the script goes on to pack, as the real ones would:
  --out DIR      DIR/metrics.json, loss.png, samples.png and, with --fid, DIR/fid_samples/;
                 for cfg.py, DIR/samples/<set>/batch_000000.npy
  --export PATH  PATH and, with --export-every, two snapshots PATH-step3000.pt, PATH-step6000.pt
With STUB_COMPILE_FAILS=1 a --compile run writes nothing and fails, as a compiler error would;
with STUB_COMPILE_FAILS=nan it prints the training loop's non-finite-loss line and fails.
"""
import json
import os
import sys
from pathlib import Path


def value(args: list[str], flag: str) -> str | None:
    return args[args.index(flag) + 1] if flag in args else None


def train(args: list[str]) -> int:
    with open(os.environ["STUB_LOG"], "a") as log:
        log.write(json.dumps(args) + "\n")
    failure = os.environ.get("STUB_COMPILE_FAILS", "0")
    if "--compile" in args and failure != "0":
        if failure == "nan":
            print("step 120: the loss was nan, not finite; stopped without saving")
        return 1
    out = value(args, "--out")
    if out:
        Path(out).mkdir(parents=True, exist_ok=True)
        for name in ("metrics.json", "loss.png", "samples.png"):
            Path(out, name).write_text("stub")
        if "--fid" in args:
            Path(out, "fid_samples", "alpine_day").mkdir(parents=True, exist_ok=True)
            Path(out, "fid_samples", "alpine_day", "0.png").write_text("stub")
    export = value(args, "--export")
    if export:
        export = Path(export)
        export.parent.mkdir(parents=True, exist_ok=True)
        export.write_text("stub export")
        if "--export-every" in args:
            for step in (3000, 6000):
                export.with_name(f"{export.stem}-step{step}.pt").write_text("stub snapshot")
    return 0


def guided(args: list[str]) -> int:
    with open(os.environ["STUB_LOG"], "a") as log:
        log.write(json.dumps(["cfg.py", *args]) + "\n")
    folder = Path(value(args, "--out"), "samples", "guided")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "batch_000000.npy").write_text("stub")
    return 0


if __name__ == "__main__":
    if sys.argv[1] == "-c":
        exec(compile(sys.argv[2], "<string>", "exec"), {"__name__": "__main__"})
    elif sys.argv[1] == "-m":
        pass
    elif Path(sys.argv[1]).name == "train_one_epoch.py":
        sys.exit(train(sys.argv[2:]))
    elif Path(sys.argv[1]).name == "cfg.py":
        sys.exit(guided(sys.argv[2:]))
    else:
        sys.exit(f"gpu_run_stub.py: unexpected command {sys.argv[1:]}")
