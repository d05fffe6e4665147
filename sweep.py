"""Task 4a — what each knob of a DiT does, judged by FID: the number of diffusion timesteps T,
DiT blocks (depth), attention heads and patch size, each varied alone around one base config.

    python sweep.py --data ../shared/data/landscape-pictures   # the assignment's sweep: report/sweep/
    python sweep.py --tables-only                 # its tables and figures again, from results.json
    python sweep.py --T 100 1000 --patch 4 8      # any values per axis; an axis left out is not run
    python sweep.py --quick                       # a tiny version end to end, into runs/sweep_quick/
    python sweep.py --budget-images 2000000 --device cuda   # at scale on a GPU, into report/sweep_b2000000/

The base is DiT-Ti/4 at 32 px (width 256, depth 6, 4 heads, patch 4, T = 1000, linear β): the
smallest config whose patch-2 and depth-8 arms still fit a 2-core CPU, so that every arm can
see the same number of images.  The budget, 200,000 images an arm, is where the base arm's
samples are landscapes: on the photographs it scores 2.6× the real-vs-real floor there (the
recipe study's curve, report/recipe/results.csv), where 60,000 images left every arm of the
procedural sweep at 9.8× and more (report/sweep_procedural/).  On 2 cores of an AMD EPYC with
AVX-512-BF16 a patch-4 arm trains at about 110 images/s, half an hour (report/sweep/results.json);
a patch-2 arm four times as long (39 against 156 images/s in report/sweep_procedural/).
Fairness, arm against arm:
  * the same training budget in images seen, the same seed and so the same data order and noise,
    and the same recipe: train_one_epoch.py --recipe fast (lr 3e-4 after 100 warm-up steps,
    clipping 1.0: the fastest per image in REPORT.md, Learning speed);
  * the same measurement: N samples from the EMA weights with DDIM (η = 0, trailing spacing, the
    same step count whatever T is, so arms with another T compare at equal sampling cost), FID,
    precision and recall against N real images with the floor beside them (N other real images
    against the same ones; landscapes.fid_reference: held-out landscapes, or training photos);
  * the same x_T and labels for every arm's 10×10 grid (one class per row);
  * the base arm trained with three seeds (--base-seeds): the range of their FID is the
    seed-to-seed spread, and a difference between arms smaller than it is not resolved.
The patch axis is also read at equal compute: the smallest patch trains on as few images as cost
the base's (patch 4's) training FLOPs (--flops-matched, the "compute" arm); its full arm then goes
on from that checkpoint, which with a constant learning rate is the same run, not a second one.
For the T axis a second grid is drawn by ancestral sampling over all T steps: DDIM with η = 1
visits every t with σ_t² = β̃_t, which is DDPM's sampler (Song et al. 2021, §4.3), and is what T
changes at sampling time.  Training with fewer steps rescales β by 1000/T (forward_process.py).

What it writes into --out (default report/sweep/):
  results.csv, results.md     one row per arm: the knob, FID, floor, parameters, tokens, forward
                              GFLOPs, training compute (3 × GFLOPs × images), images/s, loss, time
  fid_vs_knob.png             one panel per axis, the seed spread shaded around the base
  fid_vs_gflops.png           FID against training compute, every arm (the paper's Fig. 8 view)
  loss_<axis>.png             each axis's smoothed loss curves overlaid
  grids_<axis>.png            the axis's arms' 10×10 grids side by side (grids_T_ddpm.png: DDPM)
  grids/<arm>-b<budget>-n<N>-s<steps>.png    each arm's own grid (…_ddpm.png: its DDPM grid)
  results.json                every arm measured into this --out, keyed by arm, budget, N and
                              steps, with the recipe, data, precision and machine it was trained
                              and measured in, and the command; the tables show the arms of the
                              call's own budget, N and steps (--tables-only: of the one sweep there)
Every arm trains through train_one_epoch.py in runs/sweep/<arm>/ (runs/sweep_b<budget>/<arm>/ at
another budget; open it with `python ddim_x0_grid.py --checkpoint runs/sweep/<arm>/checkpoint.pt`).
A finished arm is skipped, an interrupted one resumes from its checkpoint (--resume), so the
sweep spans sittings; an --out whose arms were trained with other flags (recipe, lr, batch,
seed, data) is refused, since an arm's key does not name them: report/sweep/ holds the
photographs' sweep, so the procedural landscapes' needs its own --out (report/sweep_procedural/).
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import torch

import fid
import landscapes
from dit import (DiT, TrainedDiT, autocast, conditional_eps, ddim_sample, draw_samples, forward_gflops,
                 read_checkpoint)
from machine import describe_machine, pick_device, resolve_precision, run_child, tune_cpu

ROOT = Path(__file__).resolve().parent
BASE = dict(T=1000, depth=6, heads=4, patch=4)          # DiT-Ti/4; width 256 throughout
WIDTH = 256
DEFAULT_BUDGET = 200_000                                  # training images per arm (--budget-images)
AXES = ("T", "depth", "heads", "patch")

# ══ 1. The arms: one knob moved at a time, plus the base again with other seeds ═══════════════


def arm_name(knobs: dict, seed: int) -> str:
    return f"T{knobs['T']}-d{knobs['depth']}-h{knobs['heads']}-p{knobs['patch']}-seed{seed}"


def plan_arms(args) -> list[dict]:
    """The base, the base with seeds seed + 1, …, then each axis's other values, cheapest first;
    each arm once.  The seed spread comes early and the slow arms last, so that a sweep cut short
    by the clock still has the spread and most of the arms."""
    arms = {arm_name(BASE, args.seed + i): dict(knobs=dict(BASE), seed=args.seed + i, axes=set() if i else set(AXES))
            for i in range(args.base_seeds)}
    for axis in AXES:
        for value in getattr(args, axis) or []:
            knobs = {**BASE, axis: value}
            name = arm_name(knobs, args.seed)
            arms.setdefault(name, dict(knobs=knobs, seed=args.seed, axes=set()))["axes"].add(axis)
    cost = lambda k: k["depth"] * (args.image_size // k["patch"]) ** 2          # ∝ training FLOPs
    planned = list(arms.items())
    planned[args.base_seeds:] = sorted(planned[args.base_seeds:], key=lambda kv: cost(kv[1]["knobs"]))
    planned = [dict(name=name, **arm) for name, arm in planned]
    small = min(args.patch or [BASE["patch"]])
    if args.flops_matched and small < BASE["patch"]:
        # The patch axis at equal *compute*: the smallest patch trained on as many fewer images as
        # it costs more FLOPs per image than the base (DiT paper, Fig. 8: compute, not images, is
        # what FID follows across configs).  It runs just before that patch's full arm, which
        # starts from its checkpoint (train_arm), so the reading costs one extra FID, not a run.
        knobs = {**BASE, "patch": small}
        full = next(i for i, arm in enumerate(planned) if arm["knobs"] == knobs and arm["seed"] == args.seed)
        name = f"{arm_name(knobs, args.seed)}-matched-p{BASE['patch']}"
        planned[full]["warm_start"] = name
        planned.insert(full, dict(name=name, knobs=knobs, seed=args.seed, axes={"compute"},
                                  budget=flops_matched_budget(args, small)))
    return planned


def gflops_of(knobs: dict, image_size: int, width: int = WIDTH) -> float:
    """Forward GFLOPs of one image for an arm's shape (built on the meta device: no weights)."""
    with torch.device("meta"):
        model = DiT(input_size=image_size, patch_size=knobs["patch"], hidden_size=width, depth=knobs["depth"],
                    num_heads=knobs["heads"], num_classes=10)
    return forward_gflops(model)


def flops_matched_budget(args, patch: int) -> int:
    """Training images for the patch-`patch` arm to spend the FLOPs that the base arm spends on
    --budget-images, rounded to whole batches."""
    ratio = gflops_of(BASE, args.image_size, args.width) / gflops_of({**BASE, "patch": patch}, args.image_size, args.width)
    return round(args.budget_images * ratio / args.batch_size) * args.batch_size


def train_command(arm: dict, args) -> list[str]:
    """train_one_epoch.py for one arm: the budget in steps of one batch, no samples of its own."""
    k, folder = arm["knobs"], Path(args.runs) / arm["name"]
    budget = arm.get("budget", args.budget_images)
    cmd = [sys.executable, str(ROOT / "train_one_epoch.py"),
           "--patch", str(k["patch"]), "--depth", str(k["depth"]), "--heads", str(k["heads"]),
           "--hidden", str(args.width), "--T", str(k["T"]), "--schedule", "linear",
           "--batch-size", str(args.batch_size), "--epochs", "100000",
           "--max-steps", str(budget // args.batch_size), "--seed", str(arm["seed"]),
           "--recipe", args.recipe, *(["--lr", str(args.lr)] if args.lr is not None else []),
           *(["--grad-clip", str(args.grad_clip)] if args.grad_clip is not None else []),
           "--precision", args.precision, "--device", args.device, "--out", str(folder),
           "--ckpt-every", str(args.ckpt_every), "--no-samples"]
    if args.data:
        cmd += ["--data", args.data, "--labels", args.labels, "--image-size", str(args.image_size)]
    if (folder / "checkpoint.pt").exists():
        cmd += ["--resume", str(folder / "checkpoint.pt")]          # an interrupted arm goes on
    return cmd


def train_arm(arm: dict, args) -> dict:
    """Train (or resume, or skip) one arm; returns its metrics.json."""
    folder = Path(args.runs) / arm["name"]
    metrics = folder / "metrics.json"
    budget = arm.get("budget", args.budget_images)
    steps = budget // args.batch_size
    trained = json.loads(metrics.read_text()).get("steps", 0) if metrics.exists() else 0
    if (folder / "checkpoint.pt").exists():      # the model measured is the checkpoint's
        trained = max(trained, read_checkpoint(folder / "checkpoint.pt", mmap=True)["step"])
    if trained > steps:          # a longer run's model would be measured as this budget's
        raise SystemExit(f"{folder} holds {trained} steps, more than its budget of {budget:,} images "
                         f"allows ({steps}); pass another --runs")
    if trained == steps:
        print(f"{arm['name']}: trained, skipped")
        return json.loads(metrics.read_text())
    warm = Path(args.runs) / arm["warm_start"] / "checkpoint.pt" if "warm_start" in arm else None
    if warm and warm.exists() and not (folder / "checkpoint.pt").exists():
        # The same knobs, seed and data order, stopped early for the compute arm: go on from it.
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(warm, folder / "checkpoint.pt")
    cmd = train_command(arm, args)
    print(f"{arm['name']}: training ({budget:,} images)\n  " + " ".join(cmd[1:]), flush=True)
    if run_child(cmd, cwd=ROOT) != 0:
        raise SystemExit(f"{arm['name']}: train_one_epoch.py failed (see above); rerun sweep.py to resume it")
    return json.loads(metrics.read_text())


# ══ 2. Measuring an arm: grid, FID against the test set, and the DDPM grid for the T axis ═════


@torch.inference_mode()
def sample(model, y: torch.Tensor, x_T: torch.Tensor, steps: int, precision: str) -> torch.Tensor:
    """The conditional model (w = 1, unguided: guidance is cfg.py's study) with DDIM (η = 0,
    trailing spacing), x̂0 clipped to [−1, 1] → uint8 images (B, 3, H, W) on the CPU."""
    return landscapes.to_uint8(draw_samples(model, conditional_eps(model, y), x_T, steps, precision))


@torch.inference_mode()
def evaluate_arm(arm: dict, args, device, reference) -> dict:
    folder = Path(args.runs) / arm["name"]
    model = TrainedDiT(folder / "checkpoint.pt", device)
    # The grid (100 images, fewer with --quick): class c % K in row c; then the FID set, with the
    # reference's labels (its class mix).
    grid_n = min(100, args.n)
    y_all = torch.arange(grid_n) // 10 % model.num_classes
    if reference is not None:
        y_all = torch.cat([y_all, torch.from_numpy(reference.labels).long()])
    x_T_all = torch.randn(len(y_all), *model.shape, generator=torch.Generator().manual_seed(1234))
    images = torch.cat([sample(model, y.to(device), x.to(device), args.steps, args.precision)
                        for y, x in landscapes.progress_iter(list(zip(y_all.split(args.eval_batch), x_T_all.split(args.eval_batch))),
                                                             f"{arm['name']}: sampling", "batch")])
    row_labels = [model.class_names[c] for c in y_all[:grid_n:10].tolist()]
    name = f"{arm['name']}{_suffix(args)}"             # a sweep at another budget keeps its own
    landscapes.save_image_grid(images[:grid_n], Path(args.out) / "grids" / f"{name}.png", nrow=10,
                               row_labels=row_labels, title=f"{arm['name']}: DDIM {args.steps} steps")
    found = dict(grid=f"grids/{name}.png")
    if "T" in arm["axes"]:                      # ancestral DDPM over all T steps: DDIM with η = 1
        g = torch.Generator(device).manual_seed(1234)
        x_T, y = x_T_all[:grid_n].to(device), y_all[:grid_n].to(device)   # the grid's images
        T = model.alpha_bar.shape[0]
        steps = ddim_sample(conditional_eps(model, y), x_T, model.alpha_bar, T,
                            eta=1.0, generator=g, clip_x0=model.clip_x0)
        bar = landscapes.progress_bar(T, 0, True, f"{arm['name']}: DDPM grid", "step")
        with autocast(device, args.precision):  # the network in the arms' precision, the update in fp32
            for _, _, x0 in steps:              # the last x̂0 is the sample
                bar.update()
        bar.close()
        landscapes.save_image_grid(x0.float().cpu(), Path(args.out) / "grids" / f"{name}_ddpm.png", nrow=10,
                                   row_labels=row_labels, title=f"{arm['name']}: DDPM, all {T} steps")
        found["grid_ddpm"] = f"grids/{name}_ddpm.png"
    if reference is not None:
        found.update(reference.score_images(images[grid_n:]))
    state = read_checkpoint(folder / "checkpoint.pt", mmap=True)
    found["loss_curve"] = [float(v) for v in state.get("history", {}).get("loss", [])]
    return found


def real_reference(args, device) -> fid.Reference:
    """The real images every arm is scored against, N of them, and the floor (landscapes.fid_reference:
    held-out test images for the procedural set, training photographs for a folder)."""
    try:
        ref_images, labels, floor_images, description = landscapes.fid_reference(args.data, args.image_size,
                                                                                  args.n, args.labels)
    except ValueError as e:
        raise SystemExit(f"--data: {e}") from None
    reference = fid.Reference(ref_images, floor_images, fid.load_inception(device=device))
    reference.labels, reference.description = labels.numpy(), description
    return reference


def dataset_name(args) -> str:
    return "procedural" if args.data is None else Path(args.data).resolve().name


def arm_row(arm: dict, metrics: dict, measured: dict, args) -> dict:
    k = arm["knobs"]
    gflops = metrics["gflops_forward_per_image"]                  # the trainer counted them
    images = metrics["steps"] * args.batch_size
    return dict(arm=arm["name"], axes=" ".join(sorted(arm["axes"])) or "seed", seed=arm["seed"], **k,
                dataset=dataset_name(args), fid=measured.get("fid"), fid_floor=measured.get("fid_floor"),
                precision=measured.get("precision"), recall=measured.get("recall"),
                parameters=metrics.get("parameters"), tokens=(args.image_size // k["patch"]) ** 2,
                gflops=gflops, train_pflops=3 * gflops * images / 1e6, images=images,
                images_per_s=metrics.get("images_per_second"), smoothed_loss=metrics.get("smoothed_loss"),
                train_s=metrics.get("wall_time_s"))


# ══ 3. The sweep ══════════════════════════════════════════════════════════════════════════════


def main(args: argparse.Namespace) -> None:
    device = pick_device(args.device)
    tune_cpu(device)                         # machine.py: what pays on this CPU
    args.precision = resolve_precision(args.precision, device)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    done_file = out / "results.json"
    done = read_results(done_file)
    if args.tables_only:      # read only: the tables state the recipe and data the arms were trained with
        if not done:
            raise SystemExit(f"--tables-only: no {done_file} yet; run the sweep first")
        if not _entries(done, args) and len(_suffixes(done)) == 1:       # one sweep there: that one
            args.budget_images, args.n, args.steps = _measured_at(_suffixes(done)[0])
        if not _entries(done, args):
            raise SystemExit(f"--tables-only: {done_file} holds no arm at {_suffix(args)}, only at {', '.join(_suffixes(done))} "
                             f"(-b<budget>-n<N>-s<steps>): pass those flags")
        write_outputs(done, args)
        print((out / "results.md").read_text().split("## Reading")[-1].strip())
        return
    ours = recipe(args)
    for e in _entries(done, args):  # an arm's key does not name the recipe: skipping would mislabel it
        differ = [f"{k}={e['recipe'].get(k)} (this call: {ours.get(k)})" for k in {**e["recipe"], **ours}
                  if e["recipe"].get(k) != ours.get(k)]
        if differ:
            raise SystemExit(f"{done_file} holds arms trained with {', '.join(differ)}; pass another --out (and --runs)")
    arms = plan_arms(args)
    machine = describe_machine(device)
    print(f"sweep: {len(arms)} arms × {args.budget_images:,} images each, N = {args.n} for FID, DDIM {args.steps} "
          f"steps; {args.precision} on {machine}")
    reference = None
    for arm in arms:
        key = f"{arm['name']}{_suffix(args)}"
        if key in done:
            print(f"{arm['name']}: measured, skipped")
            continue
        metrics = train_arm(arm, args)
        if reference is None and not args.no_metrics:
            reference = real_reference(args, device)
            done[f"real_n{args.n}"] = dict(n=args.n, against=reference.description, **reference.floor)
        start = time.perf_counter()
        measured = evaluate_arm(arm, args, device, reference)
        if reference is not None:
            measured["fid_floor"] = reference.floor["fid"]
        done[key] = dict(row=arm_row(arm, metrics, measured, args), axes=sorted(arm["axes"]),
                         loss_curve=measured.pop("loss_curve"), grids={k: v for k, v in measured.items() if k.startswith("grid")},
                         eval_s=time.perf_counter() - start, precision=args.precision, machine=machine,
                         trained=trained_in(metrics), command=args.command, recipe=recipe(args))
        landscapes.atomic_write(done_file, lambda tmp: tmp.write_text(json.dumps(done)))   # after every arm
        write_outputs(done, args)
    write_outputs(done, args)
    print((out / "results.md").read_text().split("## Reading")[-1].strip())


# ══ 4. Tables, figures and the reading ════════════════════════════════════════════════════════

COLUMNS = ["arm", "axes", "seed", "T", "depth", "heads", "patch", "dataset", "fid", "fid_floor", "precision", "recall", "parameters",
           "tokens", "gflops", "train_pflops", "images", "images_per_s", "smoothed_loss", "train_s"]


def recipe(args) -> dict:
    """The training flags every arm shares that its key leaves out (the data by its folder's name)."""
    overrides = {k: getattr(args, k) for k in ("lr", "grad_clip") if getattr(args, k) is not None}
    return dict(batch_size=args.batch_size, recipe=args.recipe, **overrides, seed=args.seed, data=dataset_name(args),
                image_size=args.image_size, **({"labels": args.labels} if args.data else {}))


def trained_in(metrics: dict) -> dict:
    """The precision and machine an arm was trained in, from its run's metrics.json: an arm
    trained by an earlier call (or elsewhere, its folder copied) and measured by this one was
    not necessarily trained in this call's."""
    return {k: metrics[k] for k in ("precision", "machine")}


def _suffix(args) -> str:
    """What an arm's key adds to its name: the budget, N and steps it was measured at."""
    return f"-b{args.budget_images}-n{args.n}-s{args.steps}"


def _measured_at(suffix: str) -> tuple[int, int, int]:
    """The budget, N and steps that a suffix names: _suffix read back."""
    budget, n, steps = re.fullmatch(r"-b(\d+)-n(\d+)-s(\d+)", suffix).groups()
    return int(budget), int(n), int(steps)


def _suffixes(done: dict) -> list[str]:
    """Every budget, N and steps that results.json holds arms at."""
    return sorted({k[k.rindex("-b"):] for k in done if not k.startswith("real_n")})


def read_results(path: Path) -> dict:
    """results.json: {arm key: entry, real_n<N>: the floor}, {} before the first arm.  An entry's
    precision and machine are those it was measured in; "trained" holds those it was trained in."""
    return json.loads(path.read_text()) if path.exists() else {}


def _entries(done: dict, args) -> list[dict]:
    """The arms measured at this call's budget, N and steps: one sweep, whatever else results.json
    holds (a sweep at another budget may share the --out)."""
    return [v for k, v in done.items() if k.endswith(_suffix(args))]


def write_outputs(done: dict, args) -> None:
    out = Path(args.out)
    entries = _entries(done, args)
    with open(out / "results.csv", "w", newline="") as f:
        w = csv.DictWriter(f, COLUMNS)
        w.writeheader()
        w.writerows(e["row"] for e in entries)
    (out / "results.md").write_text(results_markdown(done, args))
    plot_fid_vs_knob(done, args, out / "fid_vs_knob.png")
    plot_fid_vs_gflops(entries, out / "fid_vs_gflops.png")
    for axis in AXES:
        members = sorted((e for e in entries if axis in e["axes"]), key=lambda e: e["row"][axis])
        if len(members) > 1:
            plot_losses(members, axis, out / f"loss_{axis}.png")
            compute = [e for e in entries if "compute" in e["axes"]] if axis == "patch" else []   # equal FLOPs
            grids_side_by_side(sorted(members + compute, key=lambda e: (e["row"][axis], e["row"]["images"])),
                               axis, "grid", out / f"grids_{axis}.png", args)
            if axis == "T":
                grids_side_by_side(members, axis, "grid_ddpm", out / "grids_T_ddpm.png", args)


def seed_spread(done: dict, args):
    """The range of the base arm's FID over its seeds (max − min), None before two are measured."""
    base = [e["row"]["fid"] for e in _entries(done, args) if e["row"]["axes"] in ("seed",) or len(e["axes"]) == len(AXES)]
    base = [f for f in base if f is not None]
    return max(base) - min(base) if len(base) >= 2 else None


def _fmt(v, spec=".2f"):
    return "–" if v is None else format(v, spec)


def results_markdown(done: dict, args) -> str:
    entries = _entries(done, args)
    real = done.get(f"real_n{args.n}", {})
    by_machine: dict[str, list[str]] = {}       # where each arm was trained: a sweep may span machines
    for e in entries:
        by_machine.setdefault(f"{e['trained']['precision']} on {e['trained']['machine']}", []).append(e["row"]["arm"])
    most = max(by_machine, key=lambda k: len(by_machine[k]), default=None)
    trained = ", ".join(k if len(by_machine) == 1 else f"{k} ({'the other arms' if k == most else ', '.join(v)})"
                        for k, v in by_machine.items()) or "–"
    measured = ", ".join(dict.fromkeys(f"{e['precision']} on {e['machine']}" for e in entries)) or "–"
    commands = list(dict.fromkeys(e["command"] for e in entries))
    others = [s for s in _suffixes(done) if s != _suffix(args)]
    r = entries[0]["recipe"]                      # the same for every arm (main refuses a mix)
    trainer = f"--recipe {r['recipe']}" + "".join(f" --{k.replace('_', '-')} {r[k]:g}" for k in ("lr", "grad_clip") if k in r)
    lines = [f"# Sweep: T, depth, heads and patch size around DiT-Ti/4 (width {args.width}, 32 px)", "",
             f"Budget {args.budget_images:,} training images per arm (batch {r['batch_size']}, "
             f"train_one_epoch.py {trainer}, seed {r['seed']}, "
             f"the same data order) on {r['data']}; FID of N = {args.n} samples (DDIM {args.steps} steps, "
             f"η = 0, trailing, w = 1) against {real.get('against', 'the test set')}; the floor, real against real at "
             f"that N: {_fmt(real.get('fid'))}.  "
             + (f"Trained and measured in {measured}.  " if trained == measured else
                f"Trained in {trained}; measured in {measured}.  ")
             + f"Command{'s' * (len(commands) > 1)}: "
             + "; ".join(f"`{c}`" for c in commands) + "."
             + (f"  results.json also holds arms measured at {', '.join(others)} (-b<budget>-n<N>-s<steps>): "
                f"rerun with those flags and --tables-only to see them." if others else ""), "",
             "| arm | axis | FID | precision | recall | params | tokens | GFLOPs | train PFLOPs | images/s | loss | train s |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for e in entries:
        r = e["row"]
        lines.append(f"| {r['arm']} | {r['axes']} | {_fmt(r['fid'])} | {_fmt(r['precision'], '.3f')} | "
                     f"{_fmt(r['recall'], '.3f')} | {r['parameters'] or 0:,} | {r['tokens']} | {r['gflops']:.3f} | "
                     f"{r['train_pflops']:.2f} | {_fmt(r['images_per_s'], '.1f')} | {_fmt(r['smoothed_loss'], '.4f')} | "
                     f"{_fmt(r['train_s'], '.0f')} |")
    lines += ["", "## Reading", ""] + reading(done, args)
    return "\n".join(lines) + "\n"


def reading(done: dict, args) -> list[str]:
    spread = seed_spread(done, args)
    lines = [f"- Seed-to-seed spread of the base arm (max − min over its seeds): {_fmt(spread)} FID." if spread is not None
             else "- The base arm's second seed has no measured FID in this sweep: the spread is unknown."]
    measured = [e for e in _entries(done, args) if e["row"]["fid"] is not None]
    for axis in AXES:
        members = sorted((e["row"] for e in measured if axis in e["axes"]), key=lambda r: r[axis])
        if len(members) < 2:
            continue
        best, worst = min(members, key=lambda r: r["fid"]), max(members, key=lambda r: r["fid"])
        gap = worst["fid"] - best["fid"]
        verdict = ("beyond" if spread is not None and gap > spread else "within" if spread is not None else "against an unknown")
        lines.append(f"- {axis}: " + ", ".join(f"{r[axis]} → {r['fid']:.2f}" for r in members) +
                     f"; best {axis} = {best[axis]}, {gap:.2f} FID from the worst, {verdict} the seed spread.")
    matched = [e["row"] for e in measured if "compute" in e["axes"]]
    base = [e["row"] for e in measured if set(AXES) <= set(e["axes"])]
    if matched and base:        # the small patch on the base's FLOPs against the base itself
        m, b = matched[0], base[0]
        lines.append(f"- Equal compute: patch {m['patch']} on {m['images']:,} images ({m['train_pflops']:.3g} PFLOPs) "
                     f"→ {m['fid']:.2f}; patch {b['patch']} on {b['images']:,} images ({b['train_pflops']:.3g} PFLOPs) "
                     f"→ {b['fid']:.2f}: {'the smaller patch' if m['fid'] < b['fid'] else 'the larger patch'} wins "
                     f"by {abs(m['fid'] - b['fid']):.2f} FID at equal training FLOPs.")
    rows = [e["row"] for e in measured if "compute" not in e["axes"]]
    pearson = lambda rs: np.corrcoef(np.log10([r["gflops"] for r in rs]), [r["fid"] for r in rs])[0, 1]
    if len({r["gflops"] for r in rows}) > 2:      # the paper's Fig. 8 reading, at equal images: FID against GFLOPs
        lines.append(f"- FID against log forward GFLOPs over the {len(rows)} arms: Pearson r = {pearson(rows):.2f} "
                     f"(the DiT paper: −0.93 between FID-50K and Gflops over its 12 models at 400K steps).")
        # One far-out arm can make a correlation on its own: the largest patch, the cheapest arm, is left out.
        big = max(r["patch"] for r in rows)
        rest = [r for r in rows if r["patch"] < big]
        if len({r["gflops"] for r in rest}) > 2:
            lines.append(f"- The same without the patch-{big} arm: r = {pearson(rest):.2f} over {len(rest)} arms.")
    return lines


def _plt():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def plot_fid_vs_knob(done: dict, args, path: Path) -> None:
    plt = _plt()
    spread = seed_spread(done, args)
    real = done.get(f"real_n{args.n}")
    twins = [e["row"] for e in _entries(done, args) if not e["axes"] and e["row"]["fid"] is not None]   # base, other seeds
    fig, axes = plt.subplots(1, 4, figsize=(16, 3.8))
    for ax, axis in zip(axes, AXES):
        rows = sorted((e["row"] for e in _entries(done, args) if axis in e["axes"] and e["row"]["fid"] is not None),
                      key=lambda r: r[axis])
        if rows:
            values = [r[axis] for r in rows]
            ax.plot(values, [r["fid"] for r in rows], "o-", label="arms (seed 0)")
            ax.plot([BASE[axis]] * len(twins), [r["fid"] for r in twins], "o", mfc="none", label="base, other seed")
            base = [r for r in rows if r[axis] == BASE[axis]]
            if base and spread is not None:
                ax.fill_between([values[0], values[-1]], base[0]["fid"] - spread, base[0]["fid"] + spread,
                                alpha=0.15, label="base ± seed spread")
            if axis in ("heads", "patch"):
                ax.set_xscale("log", base=2)
            ax.set_xticks(values, [str(v) for v in values])
            ax.minorticks_off()
        if real is not None:
            ax.axhline(real["fid"], ls="--", c="grey", label=f"real vs real, N = {real['n']}")
        ax.set(xlabel=axis, ylabel="FID", title=f"FID against {axis}", ylim=(0, None))
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_fid_vs_gflops(entries: list[dict], path: Path) -> None:
    """Every arm at its training compute; the legend names each arm by the knob it moved."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7.5, 4.2))
    colours = dict(zip(("base",) + AXES, ("black", "tab:blue", "tab:orange", "tab:green", "tab:red")))
    markers = iter("os^vD<>ph*" * 3)
    for e in sorted(entries, key=lambda e: e["row"]["train_pflops"]):
        r = e["row"]
        if r["fid"] is None:
            continue
        moved = [a for a in AXES if r[a] != BASE[a]]
        axis = moved[0] if moved else "base"
        label = (f"{axis} = {r[axis]}, {r['images']:,} images (the base's compute)" if "compute" in e["axes"]
                 else f"{axis} = {r[axis]}" if moved else f"base, seed {r['seed']}")
        ax.scatter(r["train_pflops"], r["fid"], c=colours[axis], marker=next(markers), s=40,
                   label=f"{label}: FID {r['fid']:.1f}")
    ax.set(xscale="log", xlabel="training compute, PFLOPs (3 × forward GFLOPs × images)", ylabel="FID",
           title="FID against training compute, equal images per arm but one")
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110, bbox_inches="tight")     # the legend sits outside the axes
    plt.close(fig)


def plot_losses(members: list[dict], axis: str, path: Path) -> None:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 4))
    for e in members:
        loss = np.asarray(e["loss_curve"])
        if len(loss):
            window = max(1, len(loss) // 20)
            ax.plot(np.convolve(loss, np.ones(window) / window, mode="valid"), label=f"{axis} = {e['row'][axis]}")
    ax.set(yscale="log", xlabel="step", ylabel="loss (moving average)", title=f"Training loss, {axis} axis")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def grids_side_by_side(members: list[dict], axis: str, key: str, path: Path, args) -> None:
    from PIL import Image
    plt = _plt()
    members = [e for e in members if key in e["grids"]]
    if not members:
        return
    fig, axes = plt.subplots(1, len(members), figsize=(4.2 * len(members), 4.6), squeeze=False)
    for ax, e in zip(axes[0], members):
        ax.imshow(np.asarray(Image.open(Path(args.out) / e["grids"][key])))
        images = f", {e['row']['images']:,} images" if "compute" in e["axes"] else ""
        ax.set_title(f"{axis} = {e['row'][axis]}{images}   FID {_fmt(e['row']['fid'])}")
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


# ══ 5. Command line ═══════════════════════════════════════════════════════════════════════════


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    import shlex

    ap = argparse.ArgumentParser(description="Sweep T, depth, heads and patch size around DiT-Ti/4, judged by FID.",
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--T", type=int, nargs="*", default=[100, 500, 1000], help="diffusion timesteps")
    ap.add_argument("--depth", type=int, nargs="*", default=[4, 6, 8], help="DiT blocks")
    ap.add_argument("--heads", type=int, nargs="*", default=[1, 2, 4], help="attention heads (width 256)")
    ap.add_argument("--patch", type=int, nargs="*", default=[2, 4, 8], help="patch size")
    ap.add_argument("--budget-images", type=int, default=DEFAULT_BUDGET,
                    help="training images per arm (a patch-4 arm: about 30 min on 2 bf16 CPU cores)")
    ap.add_argument("--batch-size", type=int, default=64, help="training batch (the trainer's default)")
    ap.add_argument("--recipe", choices=["paper", "fast"], default="fast",
                    help="train_one_epoch.py --recipe for every arm (fast: lr 3e-4, 100 warm-up steps, clipping "
                         "1.0; the paper's constant 1e-4 is meant for 400K steps: REPORT.md, Learning speed)")
    ap.add_argument("--lr", type=float, default=None, help="override the recipe's learning rate for every arm")
    ap.add_argument("--grad-clip", type=float, default=None, help="override the recipe's gradient-norm clipping")
    ap.add_argument("--n", type=int, default=1000, help="samples per arm for FID (≥ 500)")
    ap.add_argument("--steps", type=int, default=25, help="DDIM steps for every arm's samples")
    ap.add_argument("--eval-batch", type=int, default=250, help="images per sampling batch")
    ap.add_argument("--seed", type=int, default=0, help="the arms' seed; the base runs again with seed + 1, …")
    ap.add_argument("--base-seeds", type=int, default=3,
                    help="seeds of the base arm (seed, seed + 1, …): their FID range is the seed spread (≥ 2)")
    ap.add_argument("--ckpt-every", type=int, default=200, help="checkpoint every N steps (resume granularity)")
    ap.add_argument("--data", default=None, help="image folder; None: the procedural landscapes")
    ap.add_argument("--labels", default="auto", help="with --data: auto, none or kmeans:K (train_one_epoch.py --labels)")
    ap.add_argument("--flops-matched", action=argparse.BooleanOptionalAction, default=True,
                    help="also train the smallest patch on the images that cost the base's training FLOPs: "
                         "the patch axis at equal compute, not only equal images")
    ap.add_argument("--image-size", type=int, default=32, help="image size")
    ap.add_argument("--no-metrics", action="store_true", help="grids only: no FID")
    ap.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"])
    ap.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"], help="auto picks CUDA when present")
    ap.add_argument("--runs", default=None,
                    help="where the arms' run folders go; None: runs/sweep (runs/sweep_b<budget> at another "
                         "--budget-images, runs/sweep_quick with --quick)")
    ap.add_argument("--out", default=None,
                    help="output folder; None: report/sweep (report/sweep_b<budget> at another --budget-images, "
                         "runs/sweep_quick/report with --quick)")
    ap.add_argument("--quick", action="store_true",
                    help="tiny end to end: T 100 1000, patch 4 8, width 64, 256 images, N 20, 3 steps")
    ap.add_argument("--tables-only", action="store_true",
                    help="rewrite results.md/csv and the figures from <out>/results.json, without "
                         "training or sampling (with the sweep's own flags, which the tables state)")
    args = ap.parse_args(argv)
    given = [a for a in (sys.argv[1:] if argv is None else argv) if a != "--tables-only"]   # the sweep's own
    args.command = ("python sweep.py " + " ".join(shlex.quote(a) for a in given)).strip()
    if args.quick:
        args.T, args.depth, args.heads, args.patch = [100, 1000], [], [], [4, 8]
        args.budget_images, args.batch_size, args.n, args.steps, args.eval_batch = 256, 32, 20, 3, 20
        args.base_seeds = 2
    args.width = 64 if args.quick else WIDTH        # --quick: a quarter of the width, 4× faster to sample
    # A sweep at another budget keeps its own folders: the committed report/sweep is the default's.
    tail = "_quick" if args.quick else "" if args.budget_images == DEFAULT_BUDGET else f"_b{args.budget_images}"
    args.runs = args.runs or f"runs/sweep{tail}"
    args.out = args.out or (f"runs/sweep{tail}/report" if args.quick else f"report/sweep{tail}")
    for axis in AXES:
        bad = [v for v in getattr(args, axis) if v < 1]
        if bad:
            raise SystemExit(f"--{axis} {bad}: values must be positive")
    if any(args.image_size % p for p in args.patch):
        raise SystemExit(f"--patch {args.patch}: every patch size must divide --image-size {args.image_size}")
    if any(args.width % h for h in args.heads):
        raise SystemExit(f"--heads {args.heads}: every head count must divide the width {args.width}")
    if args.base_seeds < 2:
        raise SystemExit("--base-seeds must be at least 2: the spread needs two seeds of the base")
    if (args.lr is not None and args.lr <= 0) or (args.grad_clip is not None and args.grad_clip <= 0):
        raise SystemExit("--lr and --grad-clip must be positive (leave them out for the recipe's values)")
    if args.budget_images < args.batch_size or args.n < 4 or args.steps < 1:
        raise SystemExit("--budget-images must be at least one batch, --n at least 4, --steps at least 1")
    return args


if __name__ == "__main__":
    main(parse_args())
