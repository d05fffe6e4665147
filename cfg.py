"""Task 5 — classifier-free guidance (Ho & Salimans 2022), shown on real numbers, and the
guidance-scale study judged by FID, precision, recall and diversity.

    python cfg.py --explain                  # what guidance does to one sample, step by step
    python cfg.py --w 0 2 4 8                # the study at four scales on the shipped model
    python cfg.py                            # the full study: w = 0, 1, 1.25, … 10, and more
    python cfg.py --quick                    # a tiny version end to end (the tests run it)
    python cfg.py --model facebook/DiT-XL-2-256 --classes 88 207 --w 1 4 --n 8 --no-metrics

One network learns both predictions.  During training the label y is replaced by the null label
∅ with probability 0.1 (dit.LabelEmbedder), so the same DiT predicts the noise with and without
the class: ε̂_y = ε̂(x_t, t, y) and ε̂_∅ = ε̂(x_t, t, ∅).  At sampling time the two are mixed:

    ε̃ = ε̂_∅ + w · (ε̂_y − ε̂_∅)                                  (GLIDE; DiT paper §3 "cfg scale")

w is the guidance scale of GLIDE, the DiT paper and diffusers (`guidance_scale`):
    w = 0   the unconditional model     w = 1   the conditional model
    w > 1   pushed past the conditional prediction, away from the unconditional one.
Ho & Salimans (2022, eq. 6) write ε̃ = (1 + w′)·ε̂_y − w′·ε̂_∅: their w′ is our w − 1, so their
w′ = 0 is our w = 1.  The tables give both.  Why it works: ε̂ ≈ −√(1−ᾱ_t)·∇log p(x_t), so
ε̂_y − ε̂_∅ ≈ −√(1−ᾱ_t)·∇log p(y | x_t), the gradient of an implicit classifier; w > 1 follows
that gradient further, to images that look more like their class (precision up) at the price of
coverage of the real images (recall down).  What the study measures on our model is in
REPORT.md, Task 5: recall falls as w grows, but the within-class feature spread does not.

What the study writes into --out (default report/cfg/; for another model runs/cfg_<its name>/):
  grid_w<w>_steps<S>_seed<s>_n<N>.png
                        a 10×10 grid for each set (one class per row; the same x_T for every w)
  grids.png             every w's grid side by side
  metrics_vs_w.png      FID, precision, recall and diversity against w, real-vs-real dashed
  results.csv, .md      one row per sample set: w, w′, N, DDIM steps, seed, FID, precision,
                        recall, diversity, dtype, seconds, and the command and machine that drew it;
                        and the real-vs-real row at each N
  explain.png           (--explain) x̂0 implied by ε̂_∅, ε̂_y and ε̃ at three t
Samples and features are kept under <out>/samples/ (not committed), so an interrupted study
resumes: a finished set is skipped, a set in progress continues at its next batch.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import math
import time
from pathlib import Path

import numpy as np
import torch

import fid
import landscapes
from dit import SHIPPED, conditional_eps, ddim_sample, draw_samples, load_sampling_model, output_folder, predict_x0
from machine import describe_machine, pick_device, resolve_precision, tune_cpu

FULL_STUDY = [0, 1, 1.25, 1.5, 2, 3, 4, 5, 6, 8, 10]

# ══ 1. The guidance rule: the one home of classifier-free guidance in this project ════════════


def guide(out_y: torch.Tensor, out_null: torch.Tensor, w: float, eps_channels: int) -> torch.Tensor:
    """Combine the network's conditional and unconditional outputs, (B, C_out, H, W) each:

        ε̃ = ε̂_∅ + w · (ε̂_y − ε̂_∅)          on the first eps_channels channels (the noise)

    Only ε is guided.  A model that learns Σ (improved DDPM; DiT-XL/2's channels C … 2C−1)
    outputs variance-interpolation channels too, and those are not a score: they pass through
    from the conditional output, as in DiT's code.  Every ε channel is guided, because the
    rule is about the whole noise prediction: ε̂_y − ε̂_∅ estimates the classifier's gradient
    in every dimension of x_t.  DiT's code guides only 3 of its 4 latent channels, a leftover
    from GLIDE's RGB pixels, where the slice meant "all colour channels"; on SD latents it has
    no justification.  So this rule guides all of ε, for our pixel model and for DiT-XL/2
    (`--model`) alike, as diffusers' DiTPipeline does; the DiT paper's FIDs used the 3-channel rule."""
    eps_y, eps_null = out_y[:, :eps_channels], out_null[:, :eps_channels]
    # torch.lerp(a, b, w) = a + w·(b − a), computed so that w = 0 gives a and w = 1 gives b
    # exactly (for w ≥ ½ it evaluates b − (1 − w)·(b − a): Ho & Salimans' form, same value).
    eps_tilde = torch.lerp(eps_null, eps_y, w)                           # (B, C, H, W)
    return torch.cat([eps_tilde, out_y[:, eps_channels:]], dim=1)        # (B, C_out, H, W)


def check_guidance(model, w: float) -> None:
    """ValueError, in one line, for a scale the model cannot do."""
    if not (math.isfinite(w) and w >= 0):
        raise ValueError(f"guidance scale w = {w:g}: use a finite w ≥ 0 (0 unconditional, 1 conditional, >1 guided)")
    if w != 1 and model.num_classes == 1:
        raise ValueError(f"guidance scale w = {w:g}: this model knows one class (unlabelled data), so ε̂_y and "
                         f"ε̂_∅ predict the same thing and there is nothing to guide towards; use w = 1")
    if w != 1 and not model.learnt_null:
        raise ValueError(f"guidance scale w = {w:g} needs ε̂(x_t, t, ∅), but this model was trained without "
                         f"label dropout (class_dropout_prob 0), so its null label is untrained; use w = 1")


def both_predictions(model, x_t: torch.Tensor, t: torch.Tensor, y: torch.Tensor):
    """The network's outputs for labels y and for ∅ (= row num_classes of the label table), from
    ONE forward pass over the doubled batch [x_t, x_t] with labels [y, ∅]: one call per layer
    instead of two, the same FLOPs.  x_t (B, C, H, W), t and y (B,) → 2 × (B, C_out, H, W)."""
    null = torch.full_like(y, model.null_label)
    out = model(torch.cat([x_t, x_t]), torch.cat([t, t]), torch.cat([y, null]))   # (2B, C_out, H, W)
    return out.chunk(2)                                                  # out_y, out_null


def sigma_of(alpha_bar_t: float) -> float:
    """The noise level σ_t = √((1 − ᾱ_t)/ᾱ_t) of x_t/√ᾱ_t = x0 + σ_t·ε: EDM's σ, in which
    Kynkäänniemi et al. state the guidance interval (the linear schedule spans σ ≈ 0.01 … 157)."""
    return math.sqrt((1 - alpha_bar_t) / alpha_bar_t)


def guided_eps_fn(model, y: torch.Tensor, w: float, interval: tuple[float, float] | None = None):
    """The noise predictor eps_fn(x_t, t) → ε̃ that `dit.ddim_sample` takes, for labels y (B,).

    Both predictions come from one doubled pass (both_predictions).  w = 1 and w = 0 need only
    one of the two, so they cost a single pass.  DDIM needs ε only, so the learned-Σ channels
    that `guide` passes through are sliced off here.

    interval = (σ_lo, σ_hi): guide only at steps with σ_lo < σ_t ≤ σ_hi and sample the
    conditional model (w = 1) elsewhere (Kynkäänniemi et al. 2024, "Applying guidance in a
    limited interval").  Why: at high noise guidance drags every sample of a class towards the
    same few layouts (a loss of variety that no later step undoes), at low noise the class is
    already decided and guidance only sharpens texture; in between it helps.  Their ImageNet-512
    interval is σ ∈ (0.28, 5.42], which lowered EDM2's record FID from 1.81 to 1.40."""
    check_guidance(model, w)
    C = model.eps_channels
    conditional = conditional_eps(model, y)
    if w == 1:
        return conditional
    if w == 0 and interval is None:
        return lambda x_t, t: model(x_t, t, torch.full_like(y, model.null_label))[:, :C]

    def eps_fn(x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        if interval is not None and not interval[0] < sigma_of(model.alpha_bar[t[0]].item()) <= interval[1]:
            return conditional(x_t, t)                                   # outside: w = 1
        out_y, out_null = both_predictions(model, x_t, t, y)            # 2 × (B, C_out, H, W)
        return guide(out_y, out_null, w, C)[:, :C]                       # ε̃: (B, C, H, W)
    return eps_fn


def sample(model, y: torch.Tensor, x_T: torch.Tensor, w: float, num_steps: int,
           precision: str = "fp32", spacing: str = "trailing", interval=None) -> torch.Tensor:
    """Guided DDIM (η = 0) from x_T for labels y → images in [−1, 1], (B, 3, H', W'), on the CPU
    (dit.draw_samples with the guided noise predictor)."""
    return draw_samples(model, guided_eps_fn(model, y, w, interval), x_T, num_steps, precision, spacing)


# ══ 2. --explain: the two predictions and their mix, on one sample ════════════════════════════


@torch.inference_mode()
def explain(model, args, device: torch.device) -> None:
    """Sample one image of one class with guidance w = 4 and, at the steps nearest t = 900, 500
    and 100, print ε̂_y and ε̂_∅ side by side and draw the clean image each of them implies.
    In fp32 whatever --precision says: these are numbers to read, not a throughput run."""
    y = torch.tensor([args.explain_class], device=device)
    g = torch.Generator(device).manual_seed(args.seed)
    x_T = torch.randn(1, *model.shape, generator=g, device=device)
    C, ws = model.eps_channels, (0.0, 1.0, 4.0)
    steps = list(ddim_sample(guided_eps_fn(model, y, 4.0), x_T, model.alpha_bar, 50,
                             spacing="trailing", clip_x0=model.clip_x0))
    panels = []                                   # per t: x_t, x̂0 from ε̂_∅, ε̂_y, ε̃(w = 4)
    print(f"class {model.class_names[args.explain_class]!r}, DDIM 50 steps guided at w = 4, seed {args.seed}, fp32")
    for target in (900, 500, 100):
        t, x_t, _ = min(steps, key=lambda s: abs(s[0] - target))
        out_y, out_null = both_predictions(model, x_t, torch.full((1,), t, device=device), y)
        eps_y, eps_null = out_y[:, :C].float(), out_null[:, :C].float()         # 2 × (1, C, H, W)
        eps_tilde = {w: guide(eps_y, eps_null, w, C) for w in ws}               # the rule itself
        diff = eps_y - eps_null
        cos = torch.nn.functional.cosine_similarity(eps_y.flatten(), eps_null.flatten(), dim=0).item()
        print(f"\nt = {t}:  ‖ε̂_y‖ = {eps_y.norm():.2f}   ‖ε̂_∅‖ = {eps_null.norm():.2f}   "
              f"cos(ε̂_y, ε̂_∅) = {cos:.4f}   ‖ε̂_y − ε̂_∅‖ = {diff.norm():.3f}")
        print(f"  {'pixel (c, h, w)':<16} {'ε̂_y':>8} {'ε̂_∅':>8} {'ε̂_y−ε̂_∅':>9}" +
              "".join(f" {f'ε̃(w={w:g})':>9}" for w in ws))
        for c, h, w_ in ((0, 4, 4), (1, 16, 16), (2, 28, 8)):
            if h >= eps_y.shape[2] or w_ >= eps_y.shape[3] or c >= C:
                continue
            e_y, e_0 = eps_y[0, c, h, w_].item(), eps_null[0, c, h, w_].item()
            print(f"  {str((c, h, w_)):<16} {e_y:>8.4f} {e_0:>8.4f} {e_y - e_0:>9.4f}" +
                  "".join(f" {eps_tilde[w][0, c, h, w_].item():>9.4f}" for w in ws))
        # The clean image each noise prediction implies (DDIM eq. 9, clamped as the sampler does)
        a_t = model.alpha_bar[t].item()
        x0_of = lambda eps: model.decode(predict_x0(x_t, eps, a_t, model.clip_x0)[0])
        panels.append((t, [model.decode(x_t), x0_of(eps_null), x0_of(eps_y), x0_of(eps_tilde[4.0])]))
    _plot_explain(panels, Path(args.out) / "explain.png", model.class_names[args.explain_class])


def _plot_explain(panels, path: Path, class_name: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    titles = ["x_t", "x̂0 from ε̂_∅ (w = 0)", "x̂0 from ε̂_y (w = 1)", "x̂0 from ε̃ (w = 4)"]
    fig, axes = plt.subplots(len(panels), 4, figsize=(9, 2.4 * len(panels)), squeeze=False)
    for r, (t, images) in enumerate(panels):
        for c, img in enumerate(images):
            ax = axes[r][c]
            ax.imshow(landscapes.to_uint8(img.float().cpu())[0].permute(1, 2, 0).numpy())
            ax.set_xticks([]), ax.set_yticks([])
            if r == 0:
                ax.set_title(titles[c], fontsize=9)
            if c == 0:
                ax.set_ylabel(f"t = {t}")
    fig.suptitle(f"What guidance changes: one {class_name} sample, clean-image guesses at three t")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    print(f"\nwrote {path}")


# ══ 3. The study: one sample set per w, all from the same x_T and labels ══════════════════════


def study_labels(n: int, classes: list[int], nrow: int = 10) -> torch.Tensor:
    """Image i has class classes[(i // 10) mod K], K = len(classes): each row of 10 images is one
    class and the rows cycle through the classes, so with 10 classes every block of 100 is a
    10×10 grid with one class per row.  N images are class-balanced when N is a multiple of 10·K."""
    return torch.tensor(classes)[(torch.arange(n) // nrow) % len(classes)]


def photo_labels(ref_labels: torch.Tensor, num_classes: int, nrow: int = 10) -> torch.Tensor:
    """The labels of the reference photographs (their scenes' natural mix, so that FID does not
    score a class mix the data lacks), reordered so that the first 100 are a 10×10 grid with one
    scene per row (study_labels' layout for the first min(K, 10) classes)."""
    rest = ref_labels.tolist()
    head = []
    for c in range(min(num_classes, nrow)):
        if rest.count(c) < nrow:
            raise SystemExit(f"--n: the reference holds {rest.count(c)} images of scene {c}, fewer than a grid "
                             f"row of {nrow}; use a larger --n")
        for _ in range(nrow):
            rest.remove(c)
        head += [c] * nrow
    return torch.tensor(head + rest)


def sample_set(model, tag: str, w: float, steps: int, seed: int, args, device,
               interval=None) -> tuple[Path, float, dict]:
    """Draw N images at scale w into <out>/samples/<tag>/batch_*.npy (uint8), batch by batch, so
    that an interrupted set continues where it stopped.  x_T comes from one generator seeded by
    `seed`, so every w sees the same noise.  Returns the folder, the seconds spent now and what the
    set was begun with (drawn_by.json: dtype, model, source, machine, batch size, command).  A set
    may be finished on another machine, but not in another dtype, with another model, or in
    batches of another size (its files are named by their first image)."""
    folder = Path(args.out) / "samples" / tag
    folder.mkdir(parents=True, exist_ok=True)
    drawn_by = folder / "drawn_by.json"       # a set in progress is finished as it was begun
    if drawn_by.exists():
        begun = json.loads(drawn_by.read_text())
        if (begun["dtype"], begun["model"]) != (args.precision, args.model_id):
            raise SystemExit(f"{folder} was begun with {begun['model']} in {begun['dtype']}; finish it "
                             f"with those (--precision {begun['dtype']}), or delete the folder to draw it anew")
    else:
        begun = dict(dtype=args.precision, model=args.model_id, source=args.source,
                     machine=describe_machine(device), batch_size=args.batch_size, command=args.command)
        landscapes.atomic_write(drawn_by, lambda tmp: tmp.write_text(json.dumps(begun)))
    batches = list(range(0, args.n, args.batch_size))
    saved = {int(p.name[6:12]) for p in folder.glob("batch_*[0-9].npy")}
    if begun.get("batch_size", args.batch_size) != args.batch_size or not saved <= set(batches):
        size = begun.get("batch_size", "another size")
        raise SystemExit(f"{folder} was begun in batches of {size}, not {args.batch_size}; finish it with "
                         f"--batch-size {size}, or delete the folder to draw it anew")
    begun.pop("batch_size", None)            # a property of the files, not of the results
    y_all = args.y_all
    g = torch.Generator().manual_seed(seed)
    x_T_all = torch.randn(args.n, *model.shape, generator=g)                 # (N, C, H, W)
    todo = [b for b in batches if b not in saved]
    if todo:                                 # features of a set that is still being drawn are stale
        (folder / "features.npy").unlink(missing_ok=True)
    start = time.perf_counter()
    bar = landscapes.progress_bar(args.n, args.n - sum(min(args.batch_size, args.n - b) for b in todo),
                                  True, f"w = {w:g}, {steps} steps, seed {seed}", "img")
    for b in todo:
        y = y_all[b:b + args.batch_size].to(device)
        x_T = x_T_all[b:b + args.batch_size].to(device)
        images = landscapes.to_uint8(sample(model, y, x_T, w, steps, args.precision, interval=interval))
        tmp = folder / f"batch_{b:06d}.tmp.npy"
        np.save(tmp, images.numpy())
        tmp.replace(folder / f"batch_{b:06d}.npy")                     # atomic: no half batch
        bar.update(len(y))
    bar.close()
    return folder, time.perf_counter() - start, begun


def load_set(folder: Path, n: int) -> torch.Tensor:
    """The N images of a finished set, (N, 3, H, W) uint8, in the order they were drawn."""
    images = torch.from_numpy(np.concatenate([np.load(p) for p in sorted(folder.glob("batch_*[0-9].npy"))]))
    if len(images) != n:
        raise SystemExit(f"{folder} holds {len(images)} images, not {n}; delete the folder to draw it anew")
    return images


def diversity(feats: np.ndarray, labels: np.ndarray) -> float:
    """Intra-class diversity: the mean pairwise L2 distance between Inception features of images
    of the same class, averaged over classes.  It would fall if guidance narrowed each class to
    a few typical images; recall, not this, is what falls on our model (REPORT.md, Task 5).  At
    w = 0 the labels do not reach the model, so its "classes" are arbitrary tenths of one mix."""
    means = []
    for c in np.unique(labels):
        f = torch.as_tensor(feats[labels == c], dtype=torch.float64)
        if len(f) < 2:
            continue
        d = torch.cdist(f, f)
        means.append((d.sum() / (len(f) * (len(f) - 1))).item())      # off-diagonal mean
    return float(np.mean(means))


class Reference:
    """The real images every set is measured against, and the real-vs-real values beside them
    (what a perfect model would score at this N).
    - The procedural landscapes: FID against the statistics of all their test images of the
      sets' classes (--classes), precision and recall against N test images with the sets' class
      counts; real vs real: N training images with the same counts.
    - Photographs without classes of their own (our DiT trained on a flat --data folder, with
      scene labels): the held-out side (~500 photographs for the Kaggle set) is too small for
      N = 1,000, so the fit is measured, as in sweep.py and tools/recipe_study.py: N training
      photographs (landscapes.fid_reference, read once into args.photo_reference; the sets are
      drawn in their scene mix, args.y_all), N against N (fid.Reference); real vs real: N *other*
      training photographs.
    class_names: the model's, which args.classes index."""

    def __init__(self, args, inception, class_names: list[str]):
        self.inception = inception
        if args.photos:
            ref_images, ref_labels, floor_images, _ = args.photo_reference     # read once, in main
            pair = fid.Reference(ref_images, floor_images, inception)
            self.mu = None
            self.feats = pair.feats
            # Diversity of real photographs: the reference's own, by its scenes.
            self.real = dict(pair.floor, diversity=diversity(pair.feats, ref_labels.numpy()))
            return
        test_dir, train_dir = real_folders(args)
        per_class = fid.folder_class_features(test_dir, inception)          # cached on disk
        train = landscapes.load_images(train_dir, args.image_size, progress=False)
        wanted = [class_names[c] for c in args.classes]                    # the sets' classes, by name
        missing = sorted(set(wanted) - (set(per_class) & set(train.class_names)))
        if missing:
            raise SystemExit(f"--data: the real images have no class {', '.join(missing)}; pass a --data "
                             f"folder with one subfolder per class, or --no-metrics")
        labels = args.y_all.numpy()                                        # the sets' labels
        counts = {class_names[c]: int((labels == c).sum()) for c in args.classes}
        self.mu, self.sigma = fid.feature_statistics(np.concatenate([per_class[n] for n in counts]))
        short = [n for n, k in counts.items() if len(per_class[n]) < k]
        if short:
            raise SystemExit(f"--n {args.n}: the test set has too few images of {', '.join(short)} "
                             f"for {args.n} class-balanced ones")
        self.feats = np.concatenate([per_class[n][:k] for n, k in counts.items()])
        idx = torch.cat([torch.nonzero(train.labels == train.class_names.index(n)).flatten()[:k]
                         for n, k in counts.items()])
        subset = "" if wanted == class_names else "_classes" + "-".join(map(str, args.classes))
        cache = Path(args.out) / "samples" / f"real_train_n{args.n}{subset}_features.npy"
        if cache.exists():
            train_feats = np.load(cache)
        else:
            train_feats = fid.inception_features(train.images[idx], self.inception)
            cache.parent.mkdir(parents=True, exist_ok=True)
            np.save(cache, train_feats)
        self.real = self.measure(train_feats, np.repeat(np.arange(len(counts)), list(counts.values())))

    def measure(self, feats: np.ndarray, labels: np.ndarray) -> dict:
        precision, recall = fid.precision_recall(self.feats, feats, k=3)
        distance = (fid.fid_from_features(feats, self.feats) if self.mu is None
                    else fid.fid_to_statistics(feats, self.mu, self.sigma))
        return dict(fid=distance,
                    precision=precision, recall=recall, diversity=diversity(feats, labels))


def real_folders(args) -> tuple[Path, Path]:
    """The test and train folders of --data (or of the drawn landscapes); a bad --data is one line."""
    try:
        labels = getattr(args, "labels", "auto")
        return tuple(landscapes.resolve_data(args.data, split, args.image_size, labels) for split in ("test", "train"))
    except (FileNotFoundError, ValueError) as e:
        raise SystemExit(f"--data: {e}") from None


def set_tag(w: float, steps: int, seed: int, n: int, interval=None) -> str:
    """A set's name: its key in results.json, its samples folder and its grid_<tag>.png."""
    guided = f"w{w:g}" + (f"_sigma{interval[0]:g}-{interval[1]:g}" if interval else "")
    return f"{guided}_steps{steps}_seed{seed}_n{n}"


def run_study(model, args, device: torch.device) -> list[dict]:
    out = Path(args.out)
    results_file = out / "results.json"
    done = read_results(results_file)
    others = {r["model"] for r in done.values() if r["kind"] == "generated"} - {args.model_id}
    if others:        # a set's tag does not name the model: resuming would mix two models' sets
        raise SystemExit(f"--out {out} holds a study of {', '.join(sorted(others))}, not {args.model_id}; "
                         f"pass another --out")
    model = compiled(model, args)                    # in place: the network is compiled once
    interval = tuple(args.interval)
    sets = [(w, args.steps, args.seed, None) for w in args.w]
    sets += [(w, args.steps, args.seed + 1, None) for w in args.redraw_w]
    sets += [(w, args.check_steps, args.seed, None) for w in args.check_w]
    sets += [(w, args.steps, args.seed, interval) for w in args.interval_w]
    sets = list(dict.fromkeys(sets))                 # a set named twice (e.g. --check-w at --steps) once
    tags = [set_tag(w, steps, seed, args.n, iv) for w, steps, seed, iv in sets]
    finished = {tag for tag in tags if tag in done and (args.no_metrics or "fid" in done[tag])}
    reference = None
    # The real images' features take minutes on a CPU: only when a set still needs its metrics,
    # or this N has no real-vs-real row yet, so a finished study redraws its tables in seconds.
    if not args.no_metrics and (len(finished) < len(tags) or f"real_n{args.n}" not in done):
        inception = fid.load_inception(device=device)
        reference = Reference(args, inception, model.class_names)
        done[f"real_n{args.n}"] = dict(kind="real-vs-real", n=args.n, **reference.real)
    for (w, steps, seed, iv), tag in zip(sets, tags):
        if tag in finished:
            print(f"{tag}: done, skipped")
            continue
        folder, seconds, begun = sample_set(model, tag, w, steps, seed, args, device, iv)
        row = dict(kind="generated", w=w, w_ho_salimans=w - 1, n=args.n, steps=steps, seed=seed,
                   **({"interval": list(iv)} if iv else {}),
                   seconds=round(seconds + done.get(tag, {}).get("seconds", 0), 1),
                   **begun)                        # the dtype, model, source, machine and command it was begun with
        images = load_set(folder, args.n)
        landscapes.save_image_grid(images[:100], out / f"grid_{tag}.png",
                                   nrow=10, row_labels=_row_names(model, args),
                                   title=f"w = {w:g} (Ho & Salimans w′ = {w - 1:g}), DDIM {steps} steps"
                                         + (f", guided for σ in ({iv[0]:g}, {iv[1]:g}]" if iv else ""))
        if reference is not None:
            feats_file = folder / "features.npy"
            if not feats_file.exists():
                np.save(feats_file, fid.inception_features(images, inception))
            row.update(reference.measure(np.load(feats_file), args.y_all.numpy()))
        done[tag] = row
        _write_results(done, args)                          # after every set: nothing is lost
        print(_row_text(row))
    _write_results(done, args)
    return done


def compiled(model, args):
    """The model with its network under torch.compile (faster than eager:
    bench/bench_sampling_epyc_zen4.txt), compiled in place and returned; as it is with --no-compile."""
    if not args.no_compile:
        model.net = torch.compile(model.net)
    return model


def _row_names(model, args) -> list[str]:
    return [model.class_names[c] for c in args.y_all[:100:10].tolist()]


def _row_text(row: dict) -> str:
    metrics = "".join(f"  {k} {row[k]:.4g}" for k in ("fid", "precision", "recall", "diversity") if k in row)
    return f"w = {row['w']:g} (w′ = {row['w_ho_salimans']:g}), {row['steps']} steps, seed {row['seed']}:{metrics}  ({row['seconds']:.0f} s)"


# ══ 4. Results: tables, figures and a short reading ═══════════════════════════════════════════

COLUMNS = ["kind", "w", "w_ho_salimans", "n", "steps", "seed", "fid", "precision", "recall", "diversity", "seconds",
           "dtype", "machine", "command"]


def read_results(path: Path) -> dict:
    """results.json: {set tag: row, real_n<N>: the real-vs-real row}, or {} before the first set."""
    return json.loads(path.read_text()) if path.exists() else {}


def _title(done: dict, args) -> str:
    """The model(s) whose sets the results hold, else this call's."""
    sources = sorted({r["source"] for r in done.values() if r["kind"] == "generated"})
    return ", ".join(sources) or args.source


def _write_results(done: dict, args) -> None:
    out = Path(args.out)
    landscapes.atomic_write(out / "results.json", lambda tmp: tmp.write_text(json.dumps(done, indent=1)))
    rows = sorted((r for r in done.values() if r["kind"] == "generated"),
                  key=lambda r: (r["n"], r["steps"], r["seed"], r["w"]))
    with open(out / "results.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, COLUMNS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)                      # the sets, then the real-vs-real value at each N
        writer.writerows(sorted((r for r in done.values() if r["kind"] == "real-vs-real"), key=lambda r: r["n"]))
    (out / "results.md").write_text(results_markdown(done, args))
    if len(rows) > 1:
        plot_metrics(done, args, out / "metrics_vs_w.png")
        grids_side_by_side(rows, args, out / "grids.png")


def _in_main_series(row: dict, args) -> bool:
    """The sets the reading and figures are about: this call's N, steps and seed, every w."""
    return (row["kind"] == "generated" and row["n"] == args.n and row["steps"] == args.steps
            and row["seed"] == args.seed and "interval" not in row)


def _other_draws(done: dict, args) -> list[dict]:
    """Measured sets of this call's N and steps drawn from other noise: the draw-to-draw spread."""
    return [r for r in done.values() if r["kind"] == "generated" and r["seed"] != args.seed
            and r["steps"] == args.steps and r["n"] == args.n and "fid" in r and "interval" not in r]


def _cell(row: dict, key: str) -> str:
    return f"{row[key]:.3f}" if key in row else "–"


def results_markdown(done: dict, args) -> str:
    """The table of every set in results.json, each row with the N, dtype, command and machine it
    was drawn with (sets drawn by different calls may share one --out), then the reading."""
    rows = sorted((r for r in done.values() if r["kind"] == "generated"),
                  key=lambda r: (r["n"], r["steps"], r["seed"], r["w"]))
    commands = list(dict.fromkeys((r["command"], r["machine"]) for r in rows))      # in the table's order
    lines = [f"# Guidance scale study: {_title(done, args)}", "",
             ("Each set: N images in the scene mix of N training photographs (the first 100 a grid, one scene "
              "per row), DDIM η = 0 with trailing spacing; every w of a seed starts from the same x_T and labels. "
              "FID, precision and recall (Inception pool3 features, k = 3) against those N photographs, N against "
              "N: the held-out side is too small for N, so this is the fit to the training set.  Real vs real: N "
              "*other* training photographs against them." if getattr(args, "photos", False) else
              "Each set: N class-balanced images, DDIM η = 0 with trailing spacing; every w of a seed starts "
              "from the same x_T and labels.  Precision and recall: Inception pool3 features, k = 3, against N "
              "test images; FID against the whole test set.  Real vs real: N training images against the same "
              "test set.")
             + "  That is what a perfect model would score at that N.  Diversity: the mean pairwise "
             "distance of Inception features within a class (at w = 0 the label is ignored, so its \"classes\" "
             "mix them all and it is high).  dtype: the sampler's autocast dtype.  Seconds: wall time as the set "
             "was drawn, including other load on the machine.", "",
             "| w | w′ = w − 1 (Ho & Salimans) | N | steps | seed | FID | precision | recall | diversity | dtype "
             "| seconds | command |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        w_cell = f"{r['w']:g}" + (f", σ ∈ ({r['interval'][0]:g}, {r['interval'][1]:g}]" if "interval" in r else "")
        lines.append(f"| {w_cell} | {r['w_ho_salimans']:g} | {r['n']} | {r['steps']} | {r['seed']} | "
                     f"{_cell(r, 'fid')} | {_cell(r, 'precision')} | {_cell(r, 'recall')} | "
                     f"{_cell(r, 'diversity')} | {r['dtype']} | {r['seconds']:.0f} | "
                     f"{commands.index((r['command'], r['machine'])) + 1} |")
    for r in sorted((r for r in done.values() if r["kind"] == "real-vs-real"), key=lambda r: r["n"]):
        lines.append(f"| real vs real | | {r['n']} | | | {r['fid']:.3f} | {r['precision']:.3f} | "
                     f"{r['recall']:.3f} | {r['diversity']:.3f} | | | |")
    lines += ["", "Commands, and the machine each set was begun on:"]
    lines += [f"{i}. `{c}` on {machine}" for i, (c, machine) in enumerate(commands, 1)]
    lines += ["", "Published anchors (not comparable in level, only in shape): DiT-XL/2, ImageNet 256², "
              "FID-50K 9.62 / 3.22 / 2.27 at w = 1.0 / 1.25 / 1.5, precision 0.67 → 0.76 → 0.83, recall "
              "0.67 → 0.62 → 0.57 (DiT paper, Table 2).  Ho & Salimans, ImageNet 64 (Table 1): FID 1.80 at "
              "w = 1, best 1.55 at w = 1.1, 12.6 at w = 2 and 26.2 at w = 5.", "",
              f"## Reading (N = {args.n}, {args.steps} steps, seed {args.seed})", ""]
    lines += reading(done, args)
    return "\n".join(lines) + "\n"


def reading(done: dict, args) -> list[str]:
    """A few sentences that the numbers support, computed from them."""
    main = {r["w"]: r for r in done.values() if _in_main_series(r, args) and "fid" in r}
    if len(main) < 2:
        return ["(too few measured sets for a reading)"]
    lines = []
    spreads = [abs(main[r["w"]]["fid"] - r["fid"]) for r in _other_draws(done, args) if r["w"] in main]
    spread = max(spreads) if spreads else None
    best = min(main.values(), key=lambda r: r["fid"])
    lines.append(f"- Lowest FID {best['fid']:.2f} at w = {best['w']:g} (w′ = {best['w_ho_salimans']:g}). "
                 + (f"w = 1 (conditional) scores {main[1]['fid']:.2f}. " if 1 in main and best["w"] != 1 else "")
                 + (f"Two draws of other noise differ by up to {spread:.2f} FID, so differences below that "
                    f"are not resolved." if spread is not None else "No second draw yet: the spread is unknown."))
    for key, word in (("precision", "Precision"), ("recall", "Recall"), ("diversity", "Diversity")):
        # Within-class diversity means nothing at w = 0, where no label reaches the model.
        series = {w: r for w, r in main.items() if key != "diversity" or w > 0}
        if len(series) < 2:
            continue
        ws = sorted(series)
        lo, hi = series[ws[0]][key], series[ws[-1]][key]
        peak = max(series.values(), key=lambda r: r[key])
        lines.append(f"- {word} goes {lo:.3f} → {hi:.3f} from w = {ws[0]:g} to w = {ws[-1]:g} "
                     f"(highest {peak[key]:.3f} at w = {peak['w']:g})"
                     + (f"; at w = 0, where no label reaches the model, the 'classes' are arbitrary tenths "
                        f"of one mix ({main[0][key]:.3f})." if key == "diversity" and 0 in main else "."))
    r = done.get(f"real_n{args.n}")
    if r is not None:
        lines.append(f"- Real against real images at the same N: FID {r['fid']:.2f}, precision "
                     f"{r['precision']:.3f}, recall {r['recall']:.3f}, diversity {r['diversity']:.3f}.")
    for r in done.values():
        if "interval" in r and "fid" in r and r["n"] == args.n and r["w"] in main:
            lo, hi = r["interval"]
            lines.append(f"- Guidance interval (Kynkäänniemi et al. 2024): w = {r['w']:g} applied only for "
                         f"σ_t ∈ ({lo:g}, {hi:g}] (w = 1 elsewhere) scores FID {r['fid']:.2f}, precision "
                         f"{r['precision']:.3f}, recall {r['recall']:.3f}, against FID {main[r['w']]['fid']:.2f}, "
                         f"precision {main[r['w']]['precision']:.3f}, recall {main[r['w']]['recall']:.3f} "
                         f"guided at every step.")
    checks = [r for r in done.values() if r["kind"] == "generated" and r["steps"] != args.steps
              and r["seed"] == args.seed and r["n"] == args.n and "fid" in r and "interval" not in r]
    for r in checks:
        if r["w"] in main:
            lines.append(f"- Steps: at w = {r['w']:g}, {r['steps']} DDIM steps score {r['fid']:.2f} against "
                         f"{main[r['w']]['fid']:.2f} with {args.steps}.")
    return lines


def plot_metrics(done: dict, args, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    main = sorted((r for r in done.values() if _in_main_series(r, args) and "fid" in r), key=lambda r: r["w"])
    other = _other_draws(done, args)
    real = done.get(f"real_n{args.n}")
    if not main:
        return
    fig, axes = plt.subplots(1, 4, figsize=(16, 3.6))
    for ax, key in zip(axes, ("fid", "precision", "recall", "diversity")):
        # Within-class diversity at w = 0 (no label reaches the model) is the whole mix's: apart.
        line = [r for r in main if key != "diversity" or r["w"] > 0]
        ax.plot([r["w"] for r in line], [r[key] for r in line], "o-", label=f"seed {args.seed}")
        if key == "diversity" and main[0]["w"] == 0:
            ax.plot([0], [main[0][key]], "x", c="C0", label="w = 0: labels unused")
            ax.legend(fontsize=8)
        if other:
            ax.plot([r["w"] for r in other], [r[key] for r in other], "s", mfc="none", label="another draw")
        if real is not None:
            ax.axhline(real[key], ls="--", c="grey", label="real vs real")
        ax.set_xlabel("guidance scale w  (w = 1: conditional)")
        ax.set_title(key if key != "fid" else "FID (lower is better)")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle(f"Guidance scale study, N = {args.n}, DDIM {args.steps} steps: {_title(done, args)}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def grids_side_by_side(rows: list[dict], args, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from PIL import Image

    main = [r for r in rows if _in_main_series(r, args)]
    if not main:
        return
    cols = min(len(main), 6)
    rows_n = -(-len(main) // cols)
    fig, axes = plt.subplots(rows_n, cols, figsize=(3.2 * cols, 3.4 * rows_n), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, r in zip(axes.flat, main):
        grid = Path(args.out) / f"grid_{set_tag(r['w'], r['steps'], r['seed'], r['n'])}.png"
        if grid.exists():
            ax.imshow(np.asarray(Image.open(grid)))
        ax.set_title(f"w = {r['w']:g}" + (f"   FID {r['fid']:.1f}" if "fid" in r else ""), fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


# ══ 5. Command line ═══════════════════════════════════════════════════════════════════════════


def file_sha256(path) -> str:
    """The checkpoint's content hash: two runs' files share a name (checkpoint.pt), not a hash."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def main(args: argparse.Namespace) -> None:
    device = pick_device(args.device)
    tune_cpu(device)                         # machine.py: what pays on this CPU
    args.precision = resolve_precision(args.precision, device)
    model = load_sampling_model(args.checkpoint, args.model, device)
    args.source = args.model or Path(args.checkpoint).name
    args.model_id = args.model or f"{args.source} sha256:{file_sha256(args.checkpoint)[:12]}"
    # Every scale this call will use, checked before anything runs, under the flag it came from.
    flags = [("--explain", w) for w in (0.0, 4.0)] if args.explain else (
        [("--w", w) for w in args.w] + [("--redraw-w", w) for w in args.redraw_w]
        + [("--check-w", w) for w in args.check_w] + [("--interval-w", w) for w in args.interval_w])
    for flag, w in flags:
        try:
            check_guidance(model, w)
        except ValueError as e:
            raise SystemExit(f"{flag}: {e}") from None
    T = len(model.alpha_bar)
    for flag, steps in (("--steps", args.steps), ("--check-steps", args.check_steps)):
        if steps > T:
            raise SystemExit(f"{flag} {steps}: the model was trained with T = {T} steps; use at most {T}")
    # Photographs with scene labels (or one class), not classes of their own: measured for fit (Reference).
    if args.data is not None:
        real_folders(args)                         # a bad --data fails now, not after the sampling
    elif args.model is None and model.class_names != landscapes.CLASS_NAMES and not args.no_metrics:
        # e.g. the photograph model in a clone without the photographs: the procedural landscapes
        # are no reference for it, so draw the grids and say what the metrics need.
        print(f"note: {args.source} was trained on other images than the procedural landscapes "
              f"(classes {', '.join(model.class_names[:3])} …); grids only — pass --data DIR for FID")
        args.no_metrics = True
    args.photos = args.model is None and landscapes.without_own_classes(args.data, args.labels)
    if args.photos and args.classes is not None:
        raise SystemExit("--classes: a photo study draws every scene, in the mix of its reference photographs")
    if args.classes is None:
        args.classes = list(range(min(model.num_classes, 10)))
    bad = [c for c in args.classes if not 0 <= c < model.num_classes]
    if bad:
        raise SystemExit(f"--classes {bad}: the model knows classes 0 … {model.num_classes - 1}")
    if args.explain:
        if not 0 <= args.explain_class < model.num_classes:
            raise SystemExit(f"--explain-class {args.explain_class}: use 0 … {model.num_classes - 1}")
        return explain(model, args, device)
    args.y_all = study_labels(args.n, args.classes)            # the labels of every set
    if args.photos:               # the reference photographs (and their scene mix) for Reference
        try:
            args.photo_reference = landscapes.fid_reference(args.data, args.image_size, args.n, args.labels)
        except ValueError as e:
            raise SystemExit(f"--n {args.n}: {e}") from None
        args.y_all = photo_labels(args.photo_reference[1], model.num_classes)
    if not args.no_metrics and not args.tables_only:
        if args.model and args.data is None:
            raise SystemExit("--model: the metrics need real images of its classes (--data DIR, one subfolder "
                             "per class), or pass --no-metrics for grids only")
        if args.n % (10 * len(args.classes)) and not args.photos:
            print(f"note: --n {args.n} is not a multiple of 10 × {len(args.classes)} classes, so the classes "
                  f"are not equally represented; precision and recall use the same counts of real images")
    Path(args.out).mkdir(parents=True, exist_ok=True)
    print(f"guidance study in {args.precision} on {describe_machine(device)}: "
          f"w = {' '.join(f'{w:g}' for w in args.w)}, N = {args.n}, {args.steps} DDIM steps")
    if args.tables_only:
        if not (Path(args.out) / "results.json").is_file():
            raise SystemExit(f"--tables-only: no {args.out}/results.json yet; run the study first")
        _write_results(read_results(Path(args.out) / "results.json"), args)
    else:
        run_study(model, args, device)
    print(f"wrote {args.out}/results.md, results.csv, metrics_vs_w.png, grids.png and grid_<set>.png")
    print((Path(args.out) / "results.md").read_text().split("## Reading")[-1].strip())


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    import shlex
    import sys

    ap = argparse.ArgumentParser(description="Classifier-free guidance: --explain, or the guidance-scale study.",
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--w", type=float, nargs="+", default=FULL_STUDY,
                    help="guidance scales (0 unconditional, 1 conditional; Ho & Salimans' w′ = w − 1)")
    ap.add_argument("--n", type=int, default=1000, help="images per w (FID, precision and recall at this N)")
    ap.add_argument("--steps", type=int, default=25,
                    help="DDIM steps (25 fits the study into about 2 hours of a 2-core CPU; it scores a "
                         "worse FID than 50, the --check-steps set shows by how much)")
    ap.add_argument("--redraw-w", type=float, nargs="*", default=[1.5, 4],
                    help="scales drawn a second time from other noise (seed + 1): the spread between draws")
    ap.add_argument("--check-steps", type=int, default=50, help="the step count the --steps choice is checked against")
    ap.add_argument("--check-w", type=float, nargs="*", default=[1], help="scales drawn with --check-steps too")
    ap.add_argument("--interval-w", type=float, nargs="*", default=[],
                    help="scales drawn once more with guidance limited to --interval (w = 1 outside it)")
    ap.add_argument("--interval", type=float, nargs=2, default=[0.28, 5.42], metavar=("SIGMA_LO", "SIGMA_HI"),
                    help="the guidance interval in σ_t = √((1−ᾱ_t)/ᾱ_t) (Kynkäänniemi et al. 2024's ImageNet-512 "
                         "values)")
    ap.add_argument("--seed", type=int, default=0, help="seeds x_T; every w uses the same noise")
    ap.add_argument("--batch-size", type=int, default=100, help="images per sampling batch (×2 when guided)")
    ap.add_argument("--checkpoint", default=str(SHIPPED), help="our DiT: a checkpoint of train_one_epoch.py")
    ap.add_argument("--model", default=None,
                    help="instead, a diffusers DiT pipeline (hub id in the local cache, or a folder); "
                         "None: --checkpoint")
    ap.add_argument("--classes", type=int, nargs="+", default=None,
                    help="one class per grid row (ImageNet ids for DiT-XL/2); None: the first 10")
    ap.add_argument("--data", default=None, help="real images for the metrics; None: the procedural landscapes")
    ap.add_argument("--labels", default="auto", help="with --data: the classes it was trained with (auto, none, kmeans:K)")
    ap.add_argument("--image-size", type=int, default=32, help="size the real images are read at")
    ap.add_argument("--no-metrics", action="store_true", help="grids only: no FID, precision or recall")
    ap.add_argument("--no-compile", action="store_true", help="sample in eager mode (no torch.compile)")
    ap.add_argument("--tables-only", action="store_true",
                    help="rewrite results.md, results.csv and the figures from results.json; sample nothing")
    ap.add_argument("--explain", action="store_true", help="print ε̂_y, ε̂_∅ and ε̃ on one sample, draw explain.png")
    ap.add_argument("--explain-class", type=int, default=0, help="the class --explain samples")
    ap.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"],
                    help="autocast dtype; auto: bf16 where the hardware has fast bf16, else fp32")
    ap.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"], help="auto picks CUDA when present")
    ap.add_argument("--out", default=None,
                    help="output folder; None: report/cfg for the shipped model, else runs/cfg_<checkpoint name>")
    ap.add_argument("--quick", action="store_true",
                    help="tiny end to end: w 0 1 4, N 20, 3 steps, a redraw at 4, a check at 6 steps, eager")
    args = ap.parse_args(argv)
    given = [a for a in (sys.argv[1:] if argv is None else argv) if a != "--tables-only"]   # the study's own
    args.command = "python cfg.py " + " ".join(shlex.quote(a) for a in given)
    if args.quick:                  # tiny settings, for every flag the command line left unset
        explicit = {a.split("=")[0] for a in given if a.startswith("--")}
        quick = {"--w": [0, 1, 4], "--n": 20, "--steps": 3, "--batch-size": 10, "--redraw-w": [4],
                 "--check-w": [1], "--check-steps": 6, "--no-compile": True}
        for flag, value in quick.items():
            if flag not in explicit:
                setattr(args, flag[2:].replace("-", "_"), value)
    args.out = args.out or output_folder("report/cfg", args.checkpoint, args.model)
    if not 0 <= args.interval[0] < args.interval[1]:
        raise SystemExit(f"--interval {args.interval[0]:g} {args.interval[1]:g}: use 0 ≤ SIGMA_LO < SIGMA_HI "
                         f"(e.g. 0.28 5.42)")
    if args.n < 1 or args.steps < 1 or args.batch_size < 1 or args.check_steps < 1:
        raise SystemExit("--n, --steps, --check-steps and --batch-size must be at least 1")
    if not args.no_metrics and args.n <= 3:
        raise SystemExit(f"--n {args.n}: precision and recall (k = 3) need more than 3 images; or pass --no-metrics")
    return args


if __name__ == "__main__":
    main(parse_args())
