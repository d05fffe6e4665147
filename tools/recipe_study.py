"""Learning speed: FID against training images seen, for one change at a time to the paper's recipe.

    python tools/recipe_study.py --dataset kaggle --data ../shared/data/landscape-pictures
    python tools/recipe_study.py --dataset procedural --precision fp32   # its points are all fp32
    python tools/recipe_study.py --tables-only          # redraw report/recipe/ from results.csv
    python tools/recipe_study.py --dataset kaggle --data ../shared/data/landscape-pictures \
        --score checkpoints/dit_landscapes.pt           # any model, scored like the points
    python tools/recipe_study.py --dataset kaggle --data ../shared/data/landscape-pictures \
        --only lr --seeds 0 --points 200000 400000 700000 1000000   # the photograph model

Every run trains DiT-Ti/4 at 32 px from the same seed and data order with train_one_epoch.py,
in chunks: train to the next point (--max-steps, --resume), export the EMA, measure, go on.  So
a run measured at 25,000 images is exactly the run that later reaches 100,000.  At each point:
N = 1,000 samples (DDIM, 25 trailing steps, w = 1), from the same x_T and labels at every point
and in every run, scored against N real images with the floor beside it (N *other* real images
against the same reference) and improved precision/recall (k = 3):
  procedural  reference: 1,000 held-out test images; floor: 1,000 training images
  kaggle      reference: 1,000 training photographs (fit: the held-out side has ~500, too few
              for N = 1,000); floor: 1,000 other training photographs
The generated labels are the reference images' labels, so the class mix matches.

Why a tool that drives train_one_epoch.py rather than a mode of it: each recipe is nothing but
the trainer's own flags (what a user would type), and the measuring between chunks needs the
FID machinery that the trainer should not carry.  Why patch 4: a step costs a quarter of
patch 2's (64 tokens instead of 256), so nine runs per dataset fit in a few CPU-hours; the
question is which recipe learns faster per image, and the recipes touch the loss and the
optimiser, not the tokenisation.

Resumable: a measured point is a row of report/recipe/results.csv (committed) and is skipped; an
interrupted chunk resumes from its checkpoint in runs/recipe/, and a run whose checkpoint is gone
(a fresh clone) retrains from its seed to its next point, which gives the same model.
report/recipe/ also gets the plots, the speed-up table and the grids.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import fid                                                    # noqa: E402
import landscapes                                             # noqa: E402
from dit import TrainedDiT, conditional_eps, draw_samples    # noqa: E402
from machine import describe_machine, resolve_precision, run_child, tune_cpu  # noqa: E402

# Each arm is one change to the paper's recipe (AdamW lr 1e-4 constant, batch 64, uniform t,
# ε-prediction, L_simple), given as the trainer's flags; `combined` is the three winners at once.
ARMS = {
    "paper": [],
    "lr": ["--lr", "3e-4", "--warmup-steps", "100", "--grad-clip", "1"],   # 3× lr, warm-up, clipping
    "min-snr": ["--min-snr-gamma", "5"],                                   # Hang et al. 2023
    "logit-normal": ["--t-sampling", "logit-normal"],                      # Esser et al. 2024
    "batch256": ["--batch-size", "256"],                                   # the paper's batch
    # The three single winners together (lr + Min-SNR + logit-normal): fastest to 50,000 images,
    # then overtaken by lr alone, which became train_one_epoch.py's --recipe fast.
    "combined": ["--lr", "3e-4", "--warmup-steps", "100", "--grad-clip", "1", "--min-snr-gamma", "5",
                 "--t-sampling", "logit-normal"],
    # The photographs without their scene labels, under --recipe fast: does conditioning on
    # k-means scenes help, as cluster conditioning did on CIFAR-10 (Adaloglou et al. 2024)?
    "one-class": ["--recipe", "fast", "--labels", "none"],
    # The next rung of the learning-rate ladder (1e-4, 3e-4, 1e-3): is `lr` at the optimum?  For
    # 200,000 images, no; by 400,000 one seed leads `lr`, the other hit a loss spike and trails.
    "lr1e-3": ["--recipe", "fast", "--lr", "1e-3"],
}
# The order runs are trained in: single changes first, then the combination and the second seeds
# (the spread), then the larger batch (at equal images it takes a quarter of the steps), then lr 1e-3.
RUNS = [("paper", 0), ("lr", 0), ("min-snr", 0), ("logit-normal", 0), ("combined", 0), ("paper", 1),
        ("combined", 1), ("batch256", 0), ("lr", 1), ("lr1e-3", 0), ("lr1e-3", 1)]
PHOTO_RUNS = [("one-class", 0)]                      # the photographs only: they have no labels of their own
POINTS = [12_500, 25_000, 50_000, 100_000]          # training images seen, log-spaced
MODEL = ["--model", "DiT-Ti/4", "--image-size", "32"]
N, STEPS, SEED = 1000, 25, 0                         # samples per point, DDIM steps, x_T seed
COLUMNS = ["recipe", "dataset", "seed", "images", "steps", "fid", "fid_floor", "fid_ratio", "n",
           "precision", "recall", "cpu_seconds", "machine"]
REPORT = ROOT / "report" / "recipe"


def run_folder(runs: Path, dataset: str, arm: str, seed: int) -> Path:
    return runs / dataset / f"{arm}-s{seed}"


def read_rows(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    with open(path) as f:
        return list(csv.DictReader(f))


def write_rows(path: Path, rows: list[dict], columns: list[str] = COLUMNS) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)

    def write(tmp: Path) -> None:
        with open(tmp, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=columns)
            w.writeheader()
            w.writerows(rows)
    landscapes.atomic_write(path, write)


# ── the reference: N real images, their labels, and the floor (landscapes.fid_reference) ──

def reference(dataset: str, data: str | None, labels: str, runs: Path, inception) -> tuple[fid.Reference, np.ndarray]:
    """The study's fid.Reference and the labels to generate; the features cached in runs/."""
    ref_images, ref_labels, floor_images, _ = landscapes.fid_reference(data, 32, N, labels)
    cache = runs / dataset / f"reference-n{N}.npz"
    feats = None
    if cache.is_file():
        with np.load(cache) as f:
            feats = (f["ref"], f["floor"])
    ref = fid.Reference(ref_images, floor_images, inception, feats)
    if feats is None:
        cache.parent.mkdir(parents=True, exist_ok=True)

        def save(tmp: Path) -> None:
            with open(tmp, "wb") as f:                   # a file object: savez adds no suffix
                np.savez(f, ref=ref.feats, floor=ref.floor_feats)
        landscapes.atomic_write(cache, save)
    return ref, ref_labels.numpy()


@torch.inference_mode()
def measure(export: Path, ref: fid.Reference, labels: np.ndarray, precision: str, grid: Path, title: str) -> dict:
    """FID, precision and recall of N samples of an exported model against the reference, and
    its 10×10 grid (class c % K in row c); each from x_T of seed SEED, the same at every point."""
    model = TrainedDiT(export, torch.device("cpu"))

    def draw(y: torch.Tensor, x_T: torch.Tensor) -> torch.Tensor:   # w = 1: the conditional model
        return draw_samples(model, conditional_eps(model, y), x_T, STEPS, precision)

    def noise(n: int) -> torch.Tensor:
        return torch.randn(n, *model.shape, generator=torch.Generator().manual_seed(SEED))

    y_all = torch.from_numpy(labels).long() % model.num_classes      # a one-class model: all 0
    found = ref.score_images(torch.cat([landscapes.to_uint8(draw(y, x_T))
                                        for y, x_T in zip(y_all.split(250), noise(len(y_all)).split(250))]))
    y = torch.arange(100) // 10 % model.num_classes
    landscapes.save_image_grid(draw(y, noise(100)), grid, nrow=10, title=f"{title}, FID {found['fid']:.1f}",
                               row_labels=[model.class_names[c] for c in y[::10].tolist()])
    return found


def batch_size(arm: str) -> int:
    flags = ARMS[arm]
    return int(flags[flags.index("--batch-size") + 1]) if "--batch-size" in flags else 64


def train_to(folder: Path, arm: str, seed: int, steps: int, data: str | None, labels: str,
             precision: str) -> dict:
    """Train (or resume) the run to `steps` optimiser steps; returns its metrics.json."""
    cmd = [sys.executable, str(ROOT / "train_one_epoch.py"), *MODEL, *ARMS[arm], "--seed", str(seed),
           "--precision", precision,
           "--epochs", "100000", "--max-steps", str(steps), "--out", str(folder),
           "--export", str(folder / "ema.pt"), "--no-samples", "--ckpt-every", "200"]
    if data:
        cmd += ["--data", data] + ([] if "--labels" in ARMS[arm] else ["--labels", labels])
    if (folder / "checkpoint.pt").is_file():
        cmd += ["--resume"]
    print(" ".join(cmd), flush=True)
    if run_child(cmd, cwd=ROOT) != 0:                   # a Ctrl-C included: its checkpoint is saved
        raise SystemExit(f"{folder.name}: train_one_epoch.py stopped (see above); rerun the same command to resume")
    return json.loads((folder / "metrics.json").read_text())


def run_study(args: argparse.Namespace) -> None:
    # The measured points live in the committed report/recipe/results.csv, not under runs/: a fresh
    # clone skips what is measured, and a run whose checkpoint is gone retrains to its next point.
    runs, results = Path(args.runs), REPORT / "results.csv"
    ref, labels = reference(args.dataset, args.data, args.labels, runs, fid.load_inception())
    floor = ref.floor["fid"]
    precision = resolve_precision(args.precision, torch.device("cpu"))
    for arm, seed in RUNS + (PHOTO_RUNS if args.dataset == "kaggle" else []):
        if args.only and arm not in args.only:
            continue
        if args.seeds is not None and seed not in args.seeds:
            continue
        for images in args.points or POINTS:
            steps = images // batch_size(arm)                 # the point, in the run's own steps
            rows = read_rows(results)
            if any(r["recipe"] == arm and r["dataset"] == args.dataset and int(r["seed"]) == seed
                   and int(r["steps"]) == steps for r in rows):
                continue
            folder = run_folder(runs, args.dataset, arm, seed)
            metrics = train_to(folder, arm, seed, steps, args.data, args.labels, precision)
            if metrics["steps"] != steps:                    # never measure a model as another point
                raise SystemExit(f"{folder} holds step {metrics['steps']}, not {steps}: delete the run to redo it")
            snapshot = folder / f"ema_step{steps}.pt"          # the model of this point, kept
            shutil.copyfile(folder / "ema.pt", snapshot)
            start = time.perf_counter()
            m = measure(snapshot, ref, labels, precision,
                        REPORT / "grids" / f"{args.dataset}-{arm}-s{seed}-{steps * batch_size(arm)}.png",
                        f"{args.dataset}, {arm} recipe, seed {seed}: {steps * batch_size(arm):,} images")
            row = dict(recipe=arm, dataset=args.dataset, seed=seed, images=metrics["steps"] * metrics["recipe"]["batch_size"],
                       steps=metrics["steps"], fid=f"{m['fid']:.2f}", fid_floor=f"{floor:.2f}",
                       fid_ratio=f"{m['fid'] / floor:.2f}", n=N,
                       precision=f"{m['precision']:.3f}", recall=f"{m['recall']:.3f}",
                       cpu_seconds=f"{metrics['wall_time_s']:.0f}", machine=metrics["machine"])
            print(f"{arm} seed {seed} at {images:,} images: FID {m['fid']:.2f} (floor {floor:.2f}), "
                  f"P {m['precision']:.3f} R {m['recall']:.3f}; measured in {time.perf_counter() - start:.0f} s",
                  flush=True)
            write_rows(results, read_rows(results) + [row])
            tables()


def score(args: argparse.Namespace) -> None:
    """--score: a model from outside the study measured exactly as its points are (the same N,
    x_T, labels and reference), a row of report/recipe/scored.csv.  The procedural model, which
    never saw a photograph, is the photographs' "knows nothing" line; the photograph model's
    held-out score is train_one_epoch.py --fid's."""
    path = Path(args.score)
    if not path.is_file():
        raise SystemExit(f"--score: {path} does not exist; give a checkpoint or an --export file")
    ref, labels = reference(args.dataset, args.data, args.labels, Path(args.runs), fid.load_inception())
    precision = resolve_precision(args.precision, torch.device("cpu"))
    m = measure(path, ref, labels, precision, REPORT / "grids" / f"{args.dataset}-score-{path.stem}.png",
                f"{path.name} on {args.dataset}")
    floor = ref.floor["fid"]
    row = dict(model=path.name, dataset=args.dataset, fid=f"{m['fid']:.2f}", fid_floor=f"{floor:.2f}",
               fid_ratio=f"{m['fid'] / floor:.2f}", n=N, precision=f"{m['precision']:.3f}",
               recall=f"{m['recall']:.3f}", machine=describe_machine(torch.device("cpu")))
    out = REPORT / "scored.csv"
    rows = [r for r in read_rows(out) if (r["model"], r["dataset"]) != (row["model"], row["dataset"])]
    write_rows(out, rows + [row], list(row))
    print(f"{path.name} on {args.dataset}: FID {m['fid']:.2f} = {m['fid'] / floor:.2f}× the floor {floor:.2f} "
          f"(N = {N}), P {m['precision']:.3f} R {m['recall']:.3f}; in {out}")


# ── the tables and plots ──

def tables() -> None:
    rows = read_rows(REPORT / "results.csv")
    if not rows:
        raise SystemExit(f"{REPORT / 'results.csv'} holds no rows yet: run the study first")
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    datasets = sorted({r["dataset"] for r in rows})
    fig, axes = plt.subplots(len(datasets), 2, figsize=(13, 4.5 * len(datasets)), squeeze=False)
    lines = ["# Learning speed: images needed to reach the paper recipe's final FID", "",
             f"DiT-Ti/4, 32 px, N = {N}, DDIM {STEPS} trailing steps, w = 1. "
             "Written by `python tools/recipe_study.py`; one row per point in results.csv.", ""]
    for (ax_img, ax_sec), ds in zip(axes, datasets):
        sub = [r for r in rows if r["dataset"] == ds]
        floor = float(sub[0]["fid_floor"])
        runs = sorted({(r["recipe"], int(r["seed"])) for r in sub}, key=lambda k: (list(ARMS).index(k[0]), k[1]))
        curves = {}
        for arm, seed in runs:
            pts = sorted((int(r["images"]), float(r["fid"]), float(r["cpu_seconds"]))
                         for r in sub if r["recipe"] == arm and int(r["seed"]) == seed)
            curves[arm, seed] = pts
            style = dict(marker="o", ls="-" if seed == 0 else "--", label=f"{arm} (seed {seed})",
                         color=f"C{list(ARMS).index(arm)}")             # one colour a recipe, in both rows
            ax_img.plot([p[0] for p in pts], [p[1] for p in pts], **style)
            ax_sec.plot([p[2] / 60 for p in pts], [p[1] for p in pts], **style)
        machines = "\n".join(sorted({r["machine"] for r in sub}))     # minutes depend on the CPU
        for ax, xlabel, what in ((ax_img, "training images seen", "images"),
                                 (ax_sec, f"training CPU-minutes\n{machines}", "CPU-minutes")):
            ax.axhline(floor, color="k", ls=":", label=f"floor ({floor:.1f})")
            ax.set(xscale="log", yscale="log", xlabel=xlabel, ylabel=f"FID (N = {N})",
                   title=f"{ds}: FID against {what}")
            ax.grid(alpha=0.3, which="both")
        ax_img.legend(fontsize=8)
        lines += speedup_table(ds, curves, floor)
        lines += side_by_side(ds, sub)
    fig.tight_layout()
    fig.savefig(REPORT / "fid_vs_images.png", dpi=110)
    plt.close(fig)
    (REPORT / "speedup.md").write_text("\n".join(lines) + "\n")


def images_to_reach(pts: list[tuple], target: float) -> float | None:
    """Images at which a curve first reaches `target` FID, interpolated in log-log between points."""
    for (i0, f0, _), (i1, f1, _) in zip(pts, pts[1:]):
        if f0 <= target:
            return i0
        if f1 <= target:
            a = (np.log(target) - np.log(f0)) / (np.log(f1) - np.log(f0))
            return float(np.exp(np.log(i0) + a * (np.log(i1) - np.log(i0))))
    return pts[0][0] if pts and pts[0][1] <= target else None


def speedup_table(ds: str, curves: dict, floor: float) -> list[str]:
    paper = curves.get(("paper", 0))
    if not paper:
        return [f"## {ds}", "", "(the paper recipe's run has no points yet)", ""]
    target, budget = paper[-1][1], paper[-1][0]
    out = [f"## {ds}", "", f"The paper recipe (seed 0) reaches FID {target:.2f} at {budget:,} images "
           f"(floor {floor:.2f}).", "",
           "| recipe | seed | FID at the last point | images to reach the paper's final FID | speed-up |",
           "| --- | --- | --- | --- | --- |"]
    for (arm, seed), pts in curves.items():
        need = images_to_reach(pts, target)
        last = f"{pts[-1][1]:.2f} at {pts[-1][0]:,}"
        if need is None and pts[-1][0] < 0.99 * budget:             # a run still under way (batch
            # 256's last point, 99,840 images, is the paper's 99,968 in whole batches of 256)
            out.append(f"| {arm} | {seed} | {last} | not yet reached | – |")
        elif need is None:
            out.append(f"| {arm} | {seed} | {last} | not reached | < 1× |")
        elif need == pts[0][0] and pts[0][1] < target:            # below it at its first point
            out.append(f"| {arm} | {seed} | {last} | ≤ {need:,} (its first point) | ≥ {budget / need:.2f}× |")
        else:
            out.append(f"| {arm} | {seed} | {last} | {need:,.0f} | {budget / need:.2f}× |")
    return out + [""]


def side_by_side(ds: str, rows: list[dict]) -> list[str]:
    """The paper recipe's grid beside `lr` (what --recipe fast trains), `combined` and, if another
    recipe scores lower, that one too (seed 0), at the largest number of images they have all
    reached: report/recipe/grids_<dataset>.png."""
    import matplotlib.pyplot as plt
    from PIL import Image

    seed0 = [r for r in rows if int(r["seed"]) == 0]
    paper = {int(r["images"]): r for r in seed0 if r["recipe"] == "paper"}
    others = [r for r in seed0 if r["recipe"] != "paper" and int(r["images"]) in paper]
    for images in sorted({int(r["images"]) for r in others}, reverse=True):
        at = {r["recipe"]: r for r in others if int(r["images"]) == images}
        best = min(at.values(), key=lambda r: float(r["fid"]))
        shown = [paper[images]] + [r for r in (at.get("lr"), at.get("combined"), best) if r is not None]
        shown = list({r["recipe"]: r for r in shown}.values())                 # best may be lr
        paths = [REPORT / "grids" / f"{ds}-{r['recipe']}-s0-{images}.png" for r in shown]
        if not all(p.is_file() for p in paths):
            continue
        fig, axes = plt.subplots(1, len(shown), figsize=(8 * len(shown), 8))
        for ax, path in zip(axes, paths):
            ax.imshow(np.asarray(Image.open(path)))
            ax.axis("off")
        names = [r["recipe"] for r in shown]
        names = ", ".join(names[:-1]) + " and " + names[-1]
        fig.suptitle(f"{ds}: the {names} recipes after {images:,} training images, from the same x_T")
        fig.tight_layout()
        out = REPORT / f"grids_{ds}.png"
        fig.savefig(out, dpi=90)
        plt.close(fig)
        return [f"Grids side by side: [{out.name}]({out.name}) ({', '.join(r['recipe'] for r in shown)} at "
                f"{images:,} images).", ""]
    return []


def main() -> None:
    global POINTS, N, REPORT
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--dataset", choices=["procedural", "kaggle"], default="procedural")
    ap.add_argument("--data", default=None, help="the photo folder for --dataset kaggle")
    ap.add_argument("--labels", default="auto", help="scene labels of the photo folder (train_one_epoch.py --labels)")
    ap.add_argument("--runs", default=str(ROOT / "runs" / "recipe"), help="the runs' checkpoints and EMA snapshots (results go to report/recipe/)")
    ap.add_argument("--only", nargs="+", choices=list(ARMS), default=None, metavar="RECIPE",
                    help=f"train and measure only these recipes (of {', '.join(ARMS)})")
    ap.add_argument("--seeds", type=int, nargs="+", default=None, help="train and measure only these seeds")
    ap.add_argument("--points", type=int, nargs="+", default=None, metavar="IMAGES",
                    help=f"measure at these numbers of training images instead of {POINTS} "
                         "(a run is continued to further points: the photograph model of REPORT.md)")
    ap.add_argument("--precision", choices=["auto", "fp32", "bf16"], default="auto",
                    help="training and sampling precision (auto: bf16 where the CPU has bf16 units); "
                         "a dataset's runs should share one: the procedural ones are fp32")
    ap.add_argument("--tables-only", action="store_true", help="redraw report/recipe/ from its results.csv")
    ap.add_argument("--score", default=None, metavar="CKPT",
                    help="instead, score this model like the study's points (a row of report/recipe/scored.csv)")
    ap.add_argument("--quick", action="store_true",
                    help="smoke test: 256 and 512 images, N = 64, into --runs (use another --runs)")
    args = ap.parse_args()
    if args.quick:                          # a smoke test: two tiny points, nothing in report/
        POINTS, N, REPORT = [256, 512], 64, Path(args.runs) / "report"
    if args.tables_only:
        return tables()
    if (args.dataset == "kaggle") != (args.data is not None):
        raise SystemExit("--dataset kaggle needs --data <the photo folder>; --dataset procedural takes none")
    torch.set_num_threads(os.cpu_count() or 1)
    tune_cpu(torch.device("cpu"))
    score(args) if args.score else run_study(args)


if __name__ == "__main__":
    main()
