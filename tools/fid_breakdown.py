"""Where an FID comes from: per-class FID, copies of the training set, and class grids.

One FID number says how far a generated set is from a real one, not why. This tool breaks it
down, with fid.py's network, features and cache (it imports them; nothing here is part of the
metric itself):
  * --per-class: the FID of each class subfolder (and, with --precision-recall, its improved
    precision and recall), then the whole sets' scores, "FID: <value>" last;
  * --grid PNG: with --per-class, each class's first images of both folders side by side, to
    look at what a bad class gets wrong;
  * --copies TRAIN: a memorisation check in pixels, each image's nearest training images, for
    the generated set and, as the baseline, unseen real images; --copies-grid PNG shows the
    closest of each beside their nearest training image. It runs no network.

Run it (from the repository root):
    python tools/fid_breakdown.py runs/exp1/samples data/test --per-class --precision-recall
    python tools/fid_breakdown.py runs/exp1/samples data/test --per-class --grid classes.png
    python tools/fid_breakdown.py runs/exp1/samples data/test --copies data/train --copies-grid c.png
PATH_A is the generated set, PATH_B real images the model never saw; both are folders (flat, or
one subfolder per class, as landscapes.list_images reads them). The plain FID is `python fid.py`.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))     # the repository's modules
import fid
from landscapes import list_images, load_images, read_rgb, save_image_grid


# --------------------------------------------------------------------------------------------
#                                Per-class FID and class grids
# --------------------------------------------------------------------------------------------

GRID_PER_CLASS = 8          # --grid: images of each folder in a class's row


def class_grid_images(folder_a: str | Path, folder_b: str | Path,
                      k: int = GRID_PER_CLASS) -> tuple[torch.Tensor, list[str]]:
    """Rows for `--grid`: for each class, the first k readable images of folder_a, a blank,
    then the first k of folder_b, as uint8 (classes · (2k + 1), 3, H, W), and the class names.
    A class with fewer readable images is padded with blanks.  ValueError if sizes differ."""
    firsts, names = [], None
    for folder in (folder_a, folder_b):
        paths, labels, names = list_images(folder)         # the same classes: checked by the caller
        per_class = [[] for _ in names]
        for path, label in zip(paths, labels):
            if len(per_class[label]) < k and (rgb := read_rgb(path)) is not None:
                per_class[label].append(torch.from_numpy(rgb).permute(2, 0, 1))   # (3, H, W)
        firsts.append(per_class)
    shapes = {im.shape for side in firsts for images in side for im in images}
    if len(shapes) != 1:
        raise ValueError(f"--grid needs readable images of one size in both folders, found "
                         f"{sorted(tuple(s) for s in shapes)}")
    blank = torch.full(shapes.pop(), 255, dtype=torch.uint8)
    rows = []
    for c in range(len(names)):
        a, b = firsts[0][c], firsts[1][c]
        rows += a + [blank] * (k - len(a)) + [blank] + b + [blank] * (k - len(b))
    return torch.stack(rows), names


def per_class_report(args: argparse.Namespace) -> float:
    """--per-class / --precision-recall: a row per class, then the whole sets' precision and
    recall and their FID (the last line).

    Per-class FIDs rest on few images each (500 of 2048 dimensions: biased upward), so compare
    them with the same table for two real sets at the same N, not with the overall FID."""
    try:
        if args.per_class:                                 # before minutes of network time
            classes = [list_images(name)[2] for name in (args.path_a, args.path_b)]
            if classes[0] != classes[1]:
                raise SystemExit(f"--per-class: the class folders differ: {classes[0]} against {classes[1]}")
        if args.grid is not None:
            images, names = class_grid_images(args.path_a, args.path_b)
            save_image_grid(images, args.grid, nrow=2 * GRID_PER_CLASS + 1, row_labels=names,
                            title=f"left: {args.path_a}\nright: {args.path_b}")
            print(f"wrote {args.grid}: per class, the first {GRID_PER_CLASS} images of "
                  f"{args.path_a}, then of {args.path_b}")
    except ValueError as err:                              # missing or empty folder, sizes
        raise SystemExit(str(err))
    a, b = (fid.class_features_of(name, args) for name in (args.path_a, args.path_b))
    if args.per_class:
        header = f"{'class':<24} {'N a':>5} {'N b':>5} {'FID':>8}"
        header += f" {'precision':>9} {'recall':>7}" if args.precision_recall else ""
        print(header + "\n" + "-" * len(header))
        for name in a:
            try:
                line = (f"{name:<24} {len(a[name]):>5} {len(b[name]):>5} "
                        f"{fid.fid_from_features(a[name], b[name]):>8.2f}")
                if args.precision_recall:
                    # precision_recall(real, generated): PATH_B plays the real set.
                    line += " {:>9.3f} {:>7.3f}".format(*fid.precision_recall(b[name], a[name]))
            except ValueError as err:                      # too few images in this class
                raise SystemExit(f"--per-class, class {name}: {err}")
            print(line, flush=True)
    return fid.whole_set_report(a, b, args)


# --------------------------------------------------------------------------------------------
#                    Copies of the training set (a memorisation check)
# --------------------------------------------------------------------------------------------
# FID against held-out images cannot tell a model that generalises from one that reproduces its
# training images, and diffusion models trained long on small sets do reproduce them (Somepalli
# et al. 2023; Carlini et al. 2023).  So: for every generated image, the distance to its nearest
# and second-nearest training image, in pixels, beside the same for unseen real images (PATH_B),
# which show how close two *different* images of this distribution come.
#   d(x, x') = ‖x − x'‖₂ / √(3·H·W)      RMS over RGB values in [0, 1]: comparable across sizes
#   near-copy: d1 < d2 / 3                one training image far closer than every other one
# The second rule is ours, a simple form of Carlini et al.'s, which divide d1 by the mean
# distance to several nearest neighbours: a copy sits at d1 ≈ 0 whatever d2 is, while an image
# merely typical of a crowded region has d1 ≈ d2.

NEAR_COPY_RATIO = 1 / 3


def nearest_training_distances(queries: torch.Tensor, train: torch.Tensor,
                               chunk: int = 1024) -> tuple[torch.Tensor, torch.Tensor]:
    """For each query, the RMS pixel distance to its nearest and second-nearest training image,
    (Q, 2), and the index of the nearest, (Q,).  queries (Q, 3, H, W) and train (N ≥ 2, 3, H, W):
    uint8, the same size.  Both sets go through in chunks: beyond the uint8 inputs, memory is
    O(chunk·3HW + chunk²)."""
    if queries.dtype != torch.uint8 or train.dtype != torch.uint8:
        raise ValueError(f"need uint8 images, got {queries.dtype} and {train.dtype}")
    if len(train) < 2 or queries.shape[1:] != train.shape[1:]:
        raise ValueError(f"need ≥ 2 training images of the queries' shape {tuple(queries.shape[1:])}, "
                         f"got {tuple(train.shape)}")
    scale = 255.0 * math.prod(queries.shape[1:]) ** 0.5             # uint8 → [0, 1], then RMS
    dists, nearest = [torch.empty(0, 2, dtype=torch.float64)], [torch.empty(0, dtype=torch.int64)]
    for i in range(0, len(queries), chunk):
        q = queries[i:i + chunk].flatten(1).double()               # (c, D), fp64: cdist's
        # ‖a‖² + ‖b‖² − 2a·b cancels badly in fp32 when two images nearly coincide; on uint8
        # values every term is an integer below 2⁵³, so in fp64 a copy's distance is exactly 0
        top2 = torch.full((len(q), 2), float("inf"), dtype=torch.float64)   # running best two
        top2_index = torch.zeros(len(q), 2, dtype=torch.int64)
        for j in range(0, len(train), chunk):
            d = torch.cdist(q, train[j:j + chunk].flatten(1).double())   # (c, c')
            index = torch.arange(j, j + d.shape[1]).expand_as(d)         # (c, c') training ids
            top2, pick = torch.cat([top2, d], dim=1).topk(2, dim=1, largest=False)
            top2_index = torch.cat([top2_index, index], dim=1).gather(1, pick)
        dists.append(top2 / scale)
        nearest.append(top2_index[:, 0])
    return torch.cat(dists), torch.cat(nearest)


COPIES_GRID = 8             # --copies-grid: images per row


def copies_report(args: argparse.Namespace) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """--copies TRAIN: nearest-training-image distances of PATH_A and of PATH_B, printed as
    quantiles with the count of near-copies; with --copies-grid, the closest of each set beside
    their nearest training images.  Returns {folder: ((Q, 2) distances, (Q,) nearest index)}."""
    try:
        first = next((im for p in list_images(args.path_a)[0] if (im := read_rgb(p)) is not None), None)
        if first is None:
            raise ValueError(f"{args.path_a}: no readable image")
        size = first.shape[0]                                      # the generated images' size
        train = load_images(args.copies, size).images              # (N, 3, S, S) uint8
        images = {name: load_images(name, size).images for name in (args.path_a, args.path_b)}
        found = {name: nearest_training_distances(images[name], train) for name in images}
    except ValueError as err:                                      # missing folder, too few images
        raise SystemExit(f"--copies: {err}")
    qs = (0.0, 0.01, 0.1, 0.5)
    width = max(len(str(name)) for name in found) + len(" (unseen)")
    print(f"nearest training image ({args.copies}, {len(train)} images at {size} px): d1, the RMS "
          f"pixel distance over [0, 1] RGB, and d1/d2, its ratio to the second nearest's")
    print(f"  {'':<{width}} {'d1: min':>7} {'1%':>6} {'10%':>6} {'median':>6}  {'min d1/d2':>9}  "
          f"near-copies (d1/d2 < {NEAR_COPY_RATIO:.2f})")
    rows, labels = [], []
    for name, (d, nearest) in found.items():
        unseen = "" if name == args.path_a else " (unseen)"
        quantiles = d[:, 0].quantile(torch.tensor(qs, dtype=d.dtype)).tolist()
        ratio = d[:, 0] / d[:, 1].clamp_min(1e-12)    # a copy of an image the training set holds twice: 0
        copies = int((ratio < NEAR_COPY_RATIO).sum())
        print(f"  {str(name) + unseen:<{width}} {quantiles[0]:>7.4f} " + " ".join(f"{v:>6.4f}" for v in quantiles[1:])
              + f"  {ratio.min().item():>9.3f}  {copies} of {len(d)}")
        closest = ratio.argsort()[:COPIES_GRID]                    # the nearest to being copies
        rows += [images[name][closest], train[nearest[closest]]]
        labels += [Path(name).name + unseen, "its nearest train"]
    if args.copies_grid is not None:
        blank = torch.full((COPIES_GRID, *train.shape[1:]), 255, dtype=torch.uint8)
        rows = [torch.cat([r, blank[len(r):]]) for r in rows]      # sets smaller than a row
        save_image_grid(torch.cat(rows), args.copies_grid, nrow=COPIES_GRID, row_labels=labels,
                        title=f"lowest d1/d2 first: each image over its nearest in {args.copies}")
        print(f"wrote {args.copies_grid}")
    return found


# --------------------------------------------------------------------------------------------
#                                     Command line
# --------------------------------------------------------------------------------------------

def main(args: argparse.Namespace) -> float | None:
    """Checks every flag first (the network takes minutes), then the FID breakdown if asked,
    then the copies check. Returns the whole sets' FID, or None for --copies alone."""
    fid.check_network_arguments(args)
    if not (args.per_class or args.precision_recall or args.copies is not None):
        raise SystemExit("nothing to break down: add --per-class, --precision-recall or "
                         "--copies TRAIN (the plain FID is python fid.py PATH_A PATH_B)")
    if args.grid is not None and not args.per_class:
        raise SystemExit("--grid draws one row per class: add --per-class")
    if args.copies_grid is not None and args.copies is None:
        raise SystemExit("--copies-grid draws what --copies finds: add --copies TRAIN")
    if args.per_class or args.precision_recall:
        fid.require_folders(args, "--per-class" if args.per_class else "--precision-recall")
    if args.copies is not None:
        fid.require_folders(args, "--copies")
        try:
            list_images(args.copies)
        except ValueError:                                  # missing, or no image in it
            raise SystemExit(f"--copies: {args.copies} is not a folder of images; give the "
                             f"folder the model was trained on") from None
    score = per_class_report(args) if args.per_class or args.precision_recall else None
    if args.copies is not None:
        copies_report(args)
    return score


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Where an FID comes from: FID per class, copies of "
                                            "the training set, class grids (see fid.py for FID).")
    p.add_argument("path_a", help="folder of images: the generated set")
    p.add_argument("path_b", help="folder of images: real ones the model never saw")
    p.add_argument("--per-class", action="store_true",
                   help="FID per class subfolder (both folders need the same classes)")
    p.add_argument("--precision-recall", action="store_true",
                   help="also improved precision (PATH_A's fidelity to PATH_B) and recall "
                        "(PATH_A's coverage of PATH_B), k = 3; per class with --per-class")
    p.add_argument("--grid", type=Path, default=None, metavar="PNG",
                   help=f"with --per-class: also write a PNG with one row per class, the first "
                        f"{GRID_PER_CLASS} images of PATH_A beside the first {GRID_PER_CLASS} of PATH_B")
    p.add_argument("--copies", type=Path, default=None, metavar="TRAIN",
                   help="a memorisation check: each image's pixel distance to its nearest "
                        "images in the training folder TRAIN, for PATH_A and, as the baseline of "
                        "unseen real images, PATH_B; and the near-copies (nearest < 1/3 of the "
                        "second nearest)")
    p.add_argument("--copies-grid", type=Path, default=None, metavar="PNG",
                   help=f"with --copies: also a PNG of the {COPIES_GRID} images of PATH_A and of "
                        f"PATH_B nearest to being copies (lowest d1/d2), each over its nearest "
                        f"training image")
    fid.add_network_arguments(p)
    return p.parse_args(argv)


if __name__ == "__main__":
    main(parse_args())
