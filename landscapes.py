"""Training images for the DiT: a folder of pictures, or procedural landscapes made here.

The model is meant to learn the Kaggle "Landscape Pictures" set (arnaud58/landscape-pictures:
about 4,300 JPEGs of mixed sizes in one flat folder, no labels). That set cannot be downloaded
in every environment, so this module serves images from two sources:

  A. a folder of images: flat (Kaggle layout, one class) or one subfolder per class
     (torchvision ImageFolder layout, labels = sorted subfolder names). Every picture is
     converted to RGB, its short side resized to the training size and centre-cropped.
  B. procedural landscapes (the default when no folder is given): ten classes of sky, sun,
     clouds, fractal ridges, water, trees, dunes, stars and snow, drawn with numpy alone.
     Image i of a set with seed K is the same whatever n is and whoever draws it, so train
     and test sets are reproducible bit for bit.

What it teaches: how to get a messy folder of photographs into one clean uint8 tensor
(mode conversion, 16-bit scaling, alpha, EXIF rotation, resize + centre-crop), the single
home of the pixel scaling [0, 255] ↔ [-1, 1], and how 1-D fractal noise compared against a
row-index grid draws a mountain range for every column at once.

Run it:
    python landscapes.py --out data/my-landscapes --n 10000 --size 32 --seed 0   # ~41 s, Ice Lake Xeon
    python landscapes.py --grid landscapes_grid.png        # 10×10 preview, one class per row
    python -m pytest tests/test_landscapes.py -q
Other scripts call `resolve_data(args.data, split, image_size)` then `load_images(...)`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps
from tqdm import tqdm

REPO_ROOT = Path(__file__).resolve().parent

# Lower-case suffixes we try to decode; anything else in the folder is reported and skipped.
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")

# The name a flat (unlabelled) folder gets as its one class.
FLAT_CLASS_NAME = "landscape"

# Written last by generate_procedural; a folder without it is an interrupted run.
DONE_MARKER = "DONE.json"

# Transparent pixels are composited onto white: images with alpha in photo collections are
# mostly cut-outs made for web pages, which show them on white, and black would read as a
# night sky to a model that learns landscapes.
ALPHA_BACKGROUND = (255, 255, 255)


# ══ Pixel scaling (one home) ══════════════════════════════════════════════════════════════════

def to_float(u8: torch.Tensor) -> torch.Tensor:
    """uint8 pixels in 0..255 → float32 in [-1, 1]:  x = u8 / 127.5 − 1."""
    if u8.dtype != torch.uint8:
        raise ValueError(f"to_float expects a uint8 tensor, got {u8.dtype}")
    return u8.float() / 127.5 - 1.0


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    """float in [-1, 1] → uint8:  u8 = round((x + 1) · 127.5), clamped to 0..255.

    The clamp matters for model samples, which overshoot [-1, 1] a little; the round (not a
    truncating cast) makes to_uint8(to_float(u8)) == u8 exactly.
    """
    return ((x.float() + 1.0) * 127.5).round().clamp(0, 255).to(torch.uint8)


# ══ Progress bars that read well in a terminal and in a log file ══════════════════════════════

class LogLines:
    """tqdm's update / set_postfix / close, printed as one plain line every `every` seconds.

    tqdm redraws its bar with carriage returns; in a log file (nohup, CI) those pile up into a
    single line megabytes long.  When stderr is not a terminal the loop reports through this."""

    def __init__(self, total: int, initial: int, every: float = 30.0, label: str = "step"):
        self.n, self.total, self.every, self.postfix, self.label = initial, total, every, {}, label
        self.start = self.last = time.perf_counter()

    def set_postfix(self, refresh=False, **values):
        self.postfix = values

    def update(self, n: int = 1):
        self.n += n
        first = self.last == self.start                  # one line at once: the run has started
        if first or time.perf_counter() - self.last >= self.every or self.n == self.total:
            self.last = time.perf_counter()
            extra = "".join(f", {k}={v}" for k, v in self.postfix.items())
            print(f"{self.label} {self.n}/{self.total} ({100 * self.n / self.total:.0f}%), "
                  f"{self.last - self.start:.0f} s{extra}", file=sys.stderr, flush=True)

    def close(self):
        pass


def progress_bar(total: int, initial: int, enabled: bool, desc: str | None = None, unit: str = "step"):
    if enabled and not sys.stderr.isatty():
        return LogLines(total, initial, label=f"{desc}: {unit}" if desc else unit)
    return tqdm(total=total, initial=initial, disable=not enabled, desc=desc, unit=unit,
                dynamic_ncols=True)


def progress_iter(items, desc: str, unit: str, enabled: bool = True):
    """Iterate over a sized iterable (a list, a range, a DataLoader) with a progress bar: tqdm in
    a terminal, plain lines in a log."""
    bar = progress_bar(len(items), 0, enabled=enabled, desc=desc, unit=unit)
    for item in items:
        yield item
        bar.update()
    bar.close()


# ══ A. Reading a folder of images ═════════════════════════════════════════════════════════════

def _warn(message: str) -> None:
    """One line on stderr; tqdm.write keeps it from tearing a progress bar in half."""
    tqdm.write(f"warning: {message}", file=sys.stderr)


def _sixteen_bit_to_rgb(im: Image.Image) -> Image.Image:
    """16/32-bit grey → 8-bit RGB by scaling, not clipping.

    Pillow's own convert("L") clips 16-bit values at 255, so a mid-grey 32768 would come out
    white. 65535 / 257 = 255 exactly, so dividing by 257 maps the full 16-bit range onto 0..255.
    """
    a = np.asarray(im).astype(np.float64)                   # (H, W)
    if im.mode == "F":
        # Float images have no fixed range: stretch what is there.
        lo, hi = float(a.min()), float(a.max())
        a = (a - lo) / max(hi - lo, 1e-12) * 255.0
    else:
        a = np.clip(a, 0, 65535) / 257.0
    grey = np.round(a).astype(np.uint8)
    return Image.fromarray(np.stack([grey] * 3, axis=-1), mode="RGB")


def _to_rgb(im: Image.Image) -> Image.Image:
    """Any Pillow mode → RGB (L, LA, P, RGBA, CMYK, I;16, I, F, 1, YCbCr, ...)."""
    if im.mode == "RGB":
        return im
    if im.mode.startswith("I") or im.mode == "F":
        return _sixteen_bit_to_rgb(im)
    if im.mode == "P" and "transparency" in im.info:
        im = im.convert("RGBA")                             # palette transparency → real alpha
    if im.mode in ("LA", "La", "PA", "RGBA", "RGBa"):
        rgba = im.convert("RGBA")
        background = Image.new("RGBA", rgba.size, ALPHA_BACKGROUND + (255,))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return im.convert("RGB")                                # L, P, 1, CMYK, YCbCr, LAB, HSV


def _open_rgb(path: Path, min_side: int | None = None) -> Image.Image | None:
    """Decode one file to an upright RGB PIL image, or warn once and return None.

    min_side lets the JPEG decoder shrink big photos by 2, 4 or 8 while decoding (draft mode)
    as long as both sides stay at least min_side: a 4000-px photo headed for 32 px is then
    decoded at 500 px, which is most of the speed of loading the Kaggle set.
    """
    try:
        with Image.open(path) as im:
            if min_side is not None and im.format == "JPEG":
                im.draft("RGB", (min_side, min_side))
            im.load()
            im = ImageOps.exif_transpose(im)                # phone photos store rotation in EXIF
            return _to_rgb(im)
    except Exception as err:  # noqa: BLE001  (Pillow raises many types for broken files)
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        _warn(f"skipping unreadable image {path}: {reason}")
        return None


def read_rgb(path: str | Path) -> np.ndarray | None:
    """(H, W, 3) uint8 RGB at native size, or None (after one warning line) if unreadable."""
    im = _open_rgb(Path(path))
    if im is None:
        return None
    return np.asarray(im, dtype=np.uint8).copy()            # (H, W, 3)


def _is_image(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in IMAGE_EXTENSIONS


def _visible_children(folder: Path) -> list[Path]:
    """Sorted entries of a folder, without hidden files (.DS_Store) and our DONE marker."""
    return sorted(p for p in folder.iterdir() if not p.name.startswith(".") and p.name != DONE_MARKER)


def _no_images_error(folder: Path) -> ValueError:
    exts = "/".join(IMAGE_EXTENSIONS[:4])
    return ValueError(
        f"{folder} contains no images ({exts}/...): point --data at a folder of images "
        f"or omit --data to use the procedural landscapes"
    )


def _check_folder(folder: str | Path) -> Path:
    folder = Path(folder)
    if not folder.exists():
        raise ValueError(f"image folder {folder} does not exist: point --data at a folder of "
                         f"images or omit --data to use the procedural landscapes")
    if not folder.is_dir():
        raise ValueError(f"--data {folder} is a file, not a folder of images")
    return folder


def list_images(folder: str | Path) -> tuple[list[Path], list[int], list[str]]:
    """Image paths, integer labels and class names of a folder, sorted and deterministic.

    Layouts:
      flat       folder/*.jpg              → one class ["landscape"], every label 0
      ImageFolder folder/<class>/**/*.jpg  → labels index the sorted class-folder names
    Non-image files get one warning line each and are skipped (decoding errors are found
    later, by read_rgb / load_images). Raises ValueError for a missing or image-less folder.
    """
    paths, labels, class_names, _ = _scan_folder(folder)
    return paths, labels, class_names


def _scan_folder(folder: str | Path) -> tuple[list[Path], list[int], list[str], bool]:
    """list_images, plus whether the folder had class subfolders (labelled)."""
    folder = _check_folder(folder)
    children = _visible_children(folder)
    class_files = {}                                          # class name → its image paths
    for d in children:
        if d.is_dir():
            found = [p for p in d.rglob("*") if _is_image(p)
                     and not any(part.startswith(".") for part in p.relative_to(d).parts)]
            class_files[d.name] = sorted(found)
    # A subfolder without images is not a class (ImageFolder would stop with an error).
    class_names = [name for name in sorted(class_files) if class_files[name]]

    labelled = bool(class_names)
    if labelled:                                             # ImageFolder layout
        for p in children:
            if p.is_file():
                _warn(f"skipping {p}: not inside a class subfolder of {folder}")
        for name in class_names:
            for p in sorted((folder / name).rglob("*")):
                if p.is_file() and not p.name.startswith(".") and not _is_image(p):
                    _warn(f"skipping {p}: not an image ({', '.join(IMAGE_EXTENSIONS)})")
        paths = [p for name in class_names for p in class_files[name]]
        labels = [i for i, name in enumerate(class_names) for _ in class_files[name]]
    else:                                                    # flat (Kaggle) layout
        paths = []
        for p in children:
            if _is_image(p):
                paths.append(p)
            elif p.is_file():
                _warn(f"skipping {p}: not an image ({', '.join(IMAGE_EXTENSIONS)})")
        labels = [0] * len(paths)
        class_names = [FLAT_CLASS_NAME]

    if not paths:
        raise _no_images_error(folder)
    return paths, labels, class_names, labelled


def resize_center_crop(im: Image.Image, size: int) -> Image.Image:
    """Resize the short side to `size`, then cut the central size × size square.

    Downscaling uses Lanczos with reducing_gap: Pillow first box-averages by an integer factor
    (fast, alias-free) and leaves Lanczos only the last 2–4× step. Upscaling small pictures
    uses bicubic. Cropping (not squashing) keeps hills and horizons at their true slope.
    """
    w, h = im.size
    scale = size / min(w, h)
    new_w, new_h = max(size, round(w * scale)), max(size, round(h * scale))
    if scale < 1:
        im = im.resize((new_w, new_h), Image.Resampling.LANCZOS, reducing_gap=2.0)
    elif scale > 1:
        im = im.resize((new_w, new_h), Image.Resampling.BICUBIC)
    left, top = (new_w - size) // 2, (new_h - size) // 2
    return im.crop((left, top, left + size, top + size))


@dataclass
class LoadedImages:
    images: torch.Tensor        # (N, 3, S, S) uint8: convert with to_float() batch by batch
    labels: torch.Tensor        # (N,) int64, indices into class_names
    class_names: list[str]      # ["landscape"] for a flat folder
    labelled: bool              # False for a flat folder: train unconditionally (or 1 class)


def load_images(folder: str | Path, image_size: int, progress: bool | None = None) -> LoadedImages:
    """Decode every image of a folder once, into memory, at image_size × image_size.

    Why all in memory: at 32 px, 10,000 images are 30 MB, while decoding PNGs every epoch on
    two CPU cores would cost more than the model. progress=None shows a bar for ≥ 500 files.
    """
    if image_size < 1:
        raise ValueError(f"image_size must be positive, got {image_size}")
    paths, labels, class_names, labelled = _scan_folder(folder)
    if progress is None:
        progress = len(paths) >= 500
    pixels = np.empty((len(paths), image_size, image_size, 3), dtype=np.uint8)   # (N, S, S, 3)
    keep = np.zeros(len(paths), dtype=bool)
    # Decoding JPEGs at ≥ 2× the target keeps Lanczos enough pixels to average over.
    for i, path in enumerate(progress_iter(paths, f"loading {Path(folder).name}", "img",
                                           enabled=progress)):
        im = _open_rgb(path, min_side=2 * image_size)
        if im is not None:
            pixels[i] = np.asarray(resize_center_crop(im, image_size), dtype=np.uint8)
            keep[i] = True
    if not keep.any():
        raise _no_images_error(Path(folder))
    images = torch.from_numpy(pixels[keep]).permute(0, 3, 1, 2).contiguous()     # (N, 3, S, S)
    labels_t = torch.tensor(labels, dtype=torch.int64)[torch.from_numpy(keep)]   # (N,)
    return LoadedImages(images, labels_t, class_names, labelled)


# ══ A2. A folder of photographs: a held-out split by content, and scene labels ════════════════
# A photo folder has no test split, and the Kaggle set holds copies: 176 byte-identical files,
# 38 more with identical pixels but other bytes, and bursts of near-identical shots of one
# scene.  A split by file name would put one copy on each side, and "held-out" FID would then
# partly score memorisation.  So the split is made by *content*:
#   1. group images that are copies: equal sha256, or 16×16 RGB thumbnails closer than
#      NEAR_COPY_RMS (same photo at another size or compression, or a burst of one scene);
#   2. keep one image of each exact copy set (thumbnails within EXACT_COPY_RMS);
#   3. send each whole group to one side, by a hash of its content, so the split does not
#      depend on file names, their order, or how many other files the folder holds.
# Scene labels make an unlabelled folder class-conditional (self-guided diffusion, Hu et al.
# 2023; cluster-conditioned diffusion, Adaloglou et al. 2024): k-means on the Inception pool
# features that fid.py computes.  Why those: they were trained to name what is in a picture
# (ImageNet), so they group lakes with lakes rather than blue with blue, and they are the space
# in which FID later judges the samples; the network is already on disk, offline.

HELD_OUT_SHARE = 0.12          # ≈ 12% of the content groups held out for FID (≈ 500 of 4,319)
NEAR_COPY_RMS = 0.07           # RMS thumbnail difference (0–1 scale) under which two photos
                               # count as one scene; chosen by eye on the Kaggle pairs: below
                               # 0.07 nearly all are the same view, above it mostly not
EXACT_COPY_RMS = 0.01          # below this the pixels are the same picture: keep one copy
SCENE_FEATURE_SIZE = 128       # centre crops at 128 px go to Inception for the scene features
SMALL_FOLDER = 200             # fewer images than this: nothing held out (12% would be < 24
                               # images, and some classes none), the folder is its own test set
                               # (FID against it then measures fit only; warned)
AUTO_SCENES_FROM = 500         # "auto" clusters a flat folder into scenes only from this many
                               # images (≈ 50 a scene); a smaller one stays one class
PHOTO_CACHE = Path(os.environ.get("DIT_PHOTO_CACHE", REPO_ROOT / "data" / "photos"))   # tests move it


def _thumbnail(path: Path) -> np.ndarray | None:
    """(16·16·3,) float32 in [0, 1]: the whole picture squashed to 16 × 16 (aspect ignored, so
    a copy at another size or crop-free resize lands on the same thumbnail)."""
    im = _open_rgb(path, min_side=64)
    if im is None:
        return None
    return np.asarray(im.resize((16, 16), Image.Resampling.BOX), np.float32).reshape(-1) / 255


def content_groups(thumbs: np.ndarray, digests: list[str], threshold: float = NEAR_COPY_RMS) -> np.ndarray:
    """(N,) group id per image: union-find over pairs with equal digest or thumbnail RMS
    difference below `threshold`.  Group ids are the index of the group's first member."""
    N = len(digests)
    parent = np.arange(N)

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    def join(i: int, j: int) -> None:
        a, b = root(i), root(j)
        parent[max(a, b)] = min(a, b)

    first = {}
    for i, d in enumerate(digests):
        join(i, first.setdefault(d, i))
    t = torch.from_numpy(thumbs).double()                                 # (N, 768)
    sq = (t * t).sum(1)
    rms = ((sq[:, None] + sq[None, :] - 2 * t @ t.T).clamp_min(0) / t.shape[1]).sqrt()   # (N, N)
    for i, j in torch.nonzero(torch.triu(rms < threshold, diagonal=1)).tolist():
        join(i, j)
    return np.array([root(i) for i in range(N)])


def held_out(key: str, share: float = HELD_OUT_SHARE) -> bool:
    """Whether the group whose smallest member digest is `key` goes to the test side: the
    digest's first 8 hex digits read as a number in [0, 1).  Deterministic and content-only."""
    return int(key[:8], 16) / 16 ** 8 < share


def kmeans(x: torch.Tensor, k: int, seed: int = 0, restarts: int = 8, iters: int = 100):
    """Lloyd's k-means with k-means++ seeding (Arthur & Vassilvitskii 2007), best of `restarts`.

    x: (N, D).  Returns (labels (N,), centres (k, D)) with clusters numbered largest first, so
    the numbering does not depend on which restart won."""
    if not 1 <= k <= len(x):
        raise ValueError(f"k-means needs 1 ≤ k ≤ N, got k = {k} for {len(x)} points")
    g = torch.Generator().manual_seed(seed)
    x = x.double()
    best = None
    for _ in range(restarts):
        centres = x[torch.randint(len(x), (1,), generator=g)]             # (1, D)
        while len(centres) < k:                      # next centre ∝ squared distance (k-means++)
            d2 = torch.cdist(x, centres).min(1).values ** 2               # (N,)
            centres = torch.cat([centres, x[torch.multinomial(d2 + 1e-12, 1, generator=g)]])
        labels = None
        for _ in range(iters):
            new = torch.cdist(x, centres).argmin(1)                       # (N,) nearest centre
            if labels is not None and torch.equal(new, labels):
                break
            labels = new
            for c in range(k):                       # an emptied cluster keeps its old centre
                if (labels == c).any():
                    centres[c] = x[labels == c].mean(0)
        inertia = ((x - centres[labels]) ** 2).sum().item()
        if best is None or inertia < best[0]:
            best = (inertia, labels, centres)
    _, labels, centres = best
    order = torch.argsort(-torch.bincount(labels, minlength=k), stable=True)   # largest first
    rank = torch.empty_like(order)
    rank[order] = torch.arange(k)
    return rank[labels], centres[order]


def parse_labels(spec: str) -> int | None:
    """--labels: "auto" (a folder's own classes, else kmeans:10), "none" (one class), or
    "kmeans:K".  Returns K for k-means, 0 for one class, None for the folder's own classes."""
    if spec == "none":
        return 0
    if spec == "auto":
        return None
    if spec.startswith("kmeans:") and spec[7:].isdigit() and int(spec[7:]) >= 2:
        return int(spec[7:])
    raise ValueError(f"--labels {spec!r}: use auto, none or kmeans:K with K ≥ 2 (e.g. kmeans:10)")


DEFAULT_SCENES = 10            # "auto" on a flat folder: 10 scenes, one per row of a 10×10 grid


def without_own_classes(data: str | Path | None, labels: str = "auto") -> bool:
    """Whether a --data folder trains on labels it does not have: k-means scenes or one class
    (--labels kmeans:K or none, or auto on a flat folder).  Their counts are unequal, so the
    studies draw samples in the data's own mix, not class-balanced."""
    return data is not None and (parse_labels(labels) is not None or list_images(data)[2] == [FLAT_CLASS_NAME])


@dataclass
class PhotoSplit:
    """What `photo_split` found in a folder: each file's group, which files are kept, the split,
    and the folder's own classes (`_scan_folder`'s, read once)."""
    paths: list[Path]
    labels: list[int]           # (N,) the folder's own class of each file (0 for a flat folder)
    class_names: list[str]
    labelled: bool              # class subfolders (their names are the labels) or flat
    groups: np.ndarray          # (N,) group id per file (the index of the group's first file)
    keep: np.ndarray            # (N,) bool: False for extra copies and unreadable files
    test: np.ndarray            # (N,) bool: the held-out side
    cache: Path                 # data/photos/<folder>-<key>/split-<rules>: split, labels, crops

    def summary(self) -> dict:
        sizes = np.bincount(self.groups)
        return dict(files=len(self.paths), copies_dropped=int((~self.keep).sum()),
                    groups=int((sizes > 0).sum()), multi_file_groups=int((sizes > 1).sum()),
                    train=int((self.keep & ~self.test).sum()), test=int((self.keep & self.test).sum()),
                    held_out_share=HELD_OUT_SHARE, near_copy_rms=NEAR_COPY_RMS,
                    content_key=self.cache.parent.name.rsplit("-", 1)[-1])


def photo_split(folder: str | Path, progress: bool = True) -> PhotoSplit:
    """The content split of a folder's images (flat or with class subfolders), cached in
    data/photos/<folder>-<key>/split-<rules>/split.json: the key hashes every file's name and
    bytes, <rules> the constants above."""
    import hashlib

    folder = Path(folder)
    paths, labels, class_names, labelled = _scan_folder(folder)
    own = (paths, labels, class_names, labelled)
    digests = [hashlib.sha256(p.read_bytes()).hexdigest() for p in paths]
    key = hashlib.sha1("".join(f"{p.relative_to(folder)}:{d}|" for p, d in zip(paths, digests))
                       .encode()).hexdigest()[:12]
    rules = f"{HELD_OUT_SHARE}|{NEAR_COPY_RMS}|{EXACT_COPY_RMS}|{SMALL_FOLDER}"   # a new rule, a new split
    cache = PHOTO_CACHE / f"{folder.resolve().name}-{key}" / f"split-{hashlib.sha1(rules.encode()).hexdigest()[:8]}"
    if (cache / "split.json").is_file():
        saved = json.loads((cache / "split.json").read_text())
        return PhotoSplit(*own, *(np.array(saved[k]) for k in ("groups", "keep", "test")), cache)
    thumbs = [_thumbnail(p) for p in progress_iter(paths, "comparing photos", "img", enabled=progress)]
    readable = np.array([t is not None for t in thumbs])
    thumbs = np.stack([t if t is not None else np.full(768, -9.0, np.float32) for t in thumbs])
    groups = content_groups(thumbs, digests)
    exact = content_groups(thumbs, digests, threshold=EXACT_COPY_RMS)
    keep = (exact == np.arange(len(paths))) & readable            # first of each exact-copy set
    group_key = {g: min(digests[i] for i in np.flatnonzero(groups == g)) for g in set(groups.tolist())}
    test = np.array([held_out(group_key[g]) for g in groups.tolist()])
    if keep.sum() < SMALL_FOLDER:
        test[:] = False
    cache.mkdir(parents=True, exist_ok=True)
    record = json.dumps(dict(groups=groups.tolist(), keep=keep.tolist(), test=test.tolist()))
    atomic_write(cache / "split.json", lambda tmp: tmp.write_text(record))
    return PhotoSplit(*own, groups, keep, test, cache)


def scene_features(paths: list[Path], progress: bool = True) -> np.ndarray:
    """(N, 2048) Inception pool features of 128-px centre crops (what the model sees, at 4×)."""
    import fid

    crops = np.zeros((len(paths), SCENE_FEATURE_SIZE, SCENE_FEATURE_SIZE, 3), np.uint8)
    for i, p in enumerate(progress_iter(paths, "cropping photos", "img", enabled=progress)):
        im = _open_rgb(p, min_side=2 * SCENE_FEATURE_SIZE)
        if im is not None:
            crops[i] = np.asarray(resize_center_crop(im, SCENE_FEATURE_SIZE))
    u8 = torch.from_numpy(crops).permute(0, 3, 1, 2)                       # (N, 3, 128, 128)
    return fid.inception_features(u8, fid.load_inception(), progress=progress)


def scene_labels(split: PhotoSplit, k: int, seed: int = 0, progress: bool = True) -> np.ndarray:
    """(N,) scene id per file: k-means (k clusters) on L2-normalised Inception features of the
    kept training images, then every file goes to its nearest centre.  Cosine geometry: the
    features' length tracks contrast more than content.  Cached beside the split."""
    labels_file = split.cache / f"scenes-k{k}-seed{seed}.npy"
    if labels_file.is_file():
        return np.load(labels_file)
    feats_file = split.cache.parent / "scene_features.npy"       # the photos' alone: any split
    if feats_file.is_file():
        feats = np.load(feats_file)
    else:
        feats = scene_features(split.paths, progress)
        _save_npy(feats_file, feats)
    x = torch.nn.functional.normalize(torch.from_numpy(feats).double(), dim=1)   # (N, 2048)
    fit = torch.from_numpy(split.keep & ~split.test)
    _, centres = kmeans(x[fit], k, seed)
    labels = torch.cdist(x, centres).argmin(1).numpy()
    _save_npy(labels_file, labels)
    return labels


def _save_npy(path: Path, array: np.ndarray) -> None:
    def save(tmp: Path) -> None:
        with open(tmp, "wb") as f:                             # a file object: np.save adds no suffix
            np.save(f, array)
    atomic_write(path, save)


def prepared_photos(folder: str | Path, split: str, image_size: int, labels: str = "auto") -> Path:
    """A photo folder's `split` ("train" or "test"), resized and centre-cropped to image_size,
    in class subfolders (its own, scene<k>, or one class), as PNGs under data/photos/.  Every
    script reads these, so training, FID references and floors all see the same pixels."""
    k = parse_labels(labels)
    folder = Path(folder)
    s = photo_split(folder)
    if k is None and not s.labelled:                 # auto on a flat folder: scenes, if it is big
        k = DEFAULT_SCENES if s.keep.sum() >= AUTO_SCENES_FROM else 0
    if k is None:
        names, label_of, tag = s.class_names, np.array(s.labels), "own"
    elif k == 0:
        names, label_of, tag = [FLAT_CLASS_NAME], np.zeros(len(s.paths), int), "none"
    else:
        names, label_of, tag = [f"scene{c}" for c in range(k)], scene_labels(s, k), f"kmeans{k}"
    root = s.cache / f"{image_size}px-{tag}"
    marker = dict(split=s.summary(), labels=tag, class_names=names, image_size=image_size)
    if split == "test" and not (s.keep & s.test).any():
        _warn(f"{folder} has fewer than {SMALL_FOLDER} distinct images: nothing is held out, and "
              f"FID is measured against the training images themselves")
        split = "train"
    out = root / split
    if (out / DONE_MARKER).is_file() and json.loads((out / DONE_MARKER).read_text()) == marker:
        return out
    side = s.test if split == "test" else ~s.test
    chosen = np.flatnonzero(s.keep & side)
    for name in names:
        (out / name).mkdir(parents=True, exist_ok=True)
    for i in progress_iter(chosen, f"preparing {split} photos", "img", enabled=len(chosen) >= 500):
        im = _open_rgb(s.paths[i], min_side=2 * image_size)
        name = s.paths[i].relative_to(folder).with_suffix("").as_posix().replace("/", "__")
        target = out / names[label_of[i]] / f"{name}.png"            # unique: from the relative path
        atomic_write(target, lambda tmp: resize_center_crop(im, image_size).save(tmp, format="PNG"))
    atomic_write(out / DONE_MARKER, lambda tmp: tmp.write_text(json.dumps(marker, indent=2)))
    summary = s.summary()
    print(f"{folder}: {summary['files']} files, {summary['copies_dropped']} copies dropped, "
          f"{summary['multi_file_groups']} groups of copies kept on one side; "
          f"train {summary['train']}, held out {summary['test']} (labels: {tag})")
    return out


def fid_reference(data: str | Path | None, image_size: int, n: int, labels: str = "auto",
                  seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, str]:
    """The real images a study scores its samples against: (reference (n, 3, S, S) uint8, their
    labels, n floor images, a one-line description).  Generated sets take the reference's labels,
    so the class mix matches.
      procedural  reference: n held-out test images; floor: n training images (generalisation)
      a folder    reference and floor: 2·n distinct *training* images (fit).  Its held-out side
                  (~500 photographs for the Kaggle set) is too small for N = 1,000."""
    g = torch.Generator().manual_seed(seed)
    train = load_images(resolve_data(data, "train", image_size, labels), image_size, progress=False)
    if data is None:
        test = load_images(resolve_data(None, "test", image_size), image_size, progress=False)
        ref = torch.randperm(len(test.images), generator=g)[:n]
        floor = torch.randperm(len(train.images), generator=g)[:n]
        return (test.images[ref], test.labels[ref], train.images[floor],
                f"{n} held-out test images; floor: {n} training images")
    order = torch.randperm(len(train.images), generator=g)
    if len(order) < 2 * n:
        raise ValueError(f"{data}: {len(order)} training images, {2 * n} needed for a reference and a "
                         f"floor of {n} each; use a smaller N")
    return (train.images[order[:n]], train.labels[order[:n]], train.images[order[n:2 * n]],
            f"{n} training images; floor: {n} other training images")


# ══ B. Procedural landscapes: drawing primitives (numpy only) ═════════════════════════════════
# Everything is drawn on a float canvas (R, R, 3) with values in [0, 1] at R = 2 × size, then
# box-downsampled 2× for anti-aliasing. Rows grow downwards: row 0 is the top of the sky.
# A "ridge" is one number per column (the row where the ground starts); comparing it against
# a row-index grid fills a whole mountain range with a few array operations, no pixel loops.

SUPERSAMPLE = 2          # render at 2× and average 2 × 2 blocks: smooth edges, cheap


def _jitter(rng: np.random.Generator, colour, amount: float = 0.04) -> np.ndarray:
    """A palette colour with a little random hue/brightness shift, so no two skies match."""
    return np.clip(np.asarray(colour, dtype=np.float64) + rng.normal(0.0, amount, 3), 0.0, 1.0)


def _mix(a, b, t):
    """Linear interpolation a + t·(b − a); t broadcasts (0 → a, 1 → b)."""
    return a + t * (np.asarray(b) - a)


def _rows_cols(R: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates: rows (R, 1) and cols (1, R), in pixels."""
    centres = np.arange(R, dtype=np.float64) + 0.5
    return centres[:, None], centres[None, :]


def _fractal_1d(rng, n: int, octaves: int = 5, roughness: float = 0.5, base_cells: int = 2,
                smooth: bool = False) -> np.ndarray:
    """1-D summed-octave value noise, (n,) in about [-1, 1].

    Octave k has base_cells·2^k random knots and weight roughness^k: small roughness gives
    rolling hills, large roughness jagged peaks. Linear interpolation between knots leaves
    sharp summits (mountains); smoothstep interpolation rounds them (hills, dunes).
    """
    x = np.linspace(0.0, 1.0, n)
    total, weight, amp = np.zeros(n), 0.0, 1.0
    for k in range(octaves):
        cells = base_cells * 2 ** k
        knots = rng.uniform(-1.0, 1.0, cells + 1)
        u = x * cells
        i0 = np.minimum(u.astype(np.int64), cells - 1)
        t = u - i0
        if smooth:
            t = t * t * (3.0 - 2.0 * t)                     # smoothstep: zero slope at knots
        total += amp * (knots[i0] + t * (knots[i0 + 1] - knots[i0]))
        weight += amp
        amp *= roughness
    return total / weight


def _noise_2d(rng, R: int, cells_y: int, cells_x: int, octaves: int = 3) -> np.ndarray:
    """2-D value noise (R, R) in [0, 1]; cells_x < cells_y stretches blobs sideways (clouds)."""
    centres = (np.arange(R) + 0.5) / R
    total, weight, amp = np.zeros((R, R)), 0.0, 1.0
    for k in range(octaves):
        cy, cx = cells_y * 2 ** k, cells_x * 2 ** k
        grid = rng.uniform(0.0, 1.0, (cy + 1, cx + 1))
        uy, ux = centres * cy, centres * cx
        iy, ix = uy.astype(np.int64), ux.astype(np.int64)
        ty, tx = uy - iy, ux - ix
        ty, tx = (ty * ty * (3 - 2 * ty))[:, None], (tx * tx * (3 - 2 * tx))[None, :]
        top = grid[iy][:, ix] + tx * (grid[iy][:, ix + 1] - grid[iy][:, ix])          # (R, R)
        bottom = grid[iy + 1][:, ix] + tx * (grid[iy + 1][:, ix + 1] - grid[iy + 1][:, ix])
        total += amp * (top + ty * (bottom - top))
        weight += amp
        amp *= 0.5
    return total / weight


def _paint(canvas: np.ndarray, alpha: np.ndarray, colour) -> None:
    """Alpha-blend a colour (3,) or (R, R, 3) over the canvas in place; alpha is (R, R)."""
    canvas += alpha[..., None] * (colour - canvas)


def _sky(R: int, horizon_row: float, top, horizon, mid=None, gamma: float = 1.0) -> np.ndarray:
    """Vertical gradient, top colour at row 0 → horizon colour at horizon_row (and below).

    gamma < 1 keeps the pale horizon band narrow; an optional mid colour (sunsets) sits at
    60 % of the way down.
    """
    rows, _ = _rows_cols(R)
    t = np.clip(rows / horizon_row, 0.0, 1.0) ** gamma                   # (R, 1)
    if mid is None:
        column = _mix(np.asarray(top), horizon, t)                        # (R, 3)
    else:
        lower = np.clip((t - 0.6) / 0.4, 0.0, 1.0)
        column = np.where(t < 0.6, _mix(np.asarray(top), mid, t / 0.6), _mix(np.asarray(mid), horizon, lower))
    return np.repeat(column[:, None, :], R, axis=1).copy()                 # (R, R, 3)


def _glow_disc(canvas, cy: float, cx: float, radius: float, colour, glow_colour,
               glow_radius: float, glow_strength: float) -> None:
    """A sun or moon: an additive Gaussian glow, then a disc with a one-pixel soft edge."""
    rows, cols = _rows_cols(canvas.shape[0])
    d = np.sqrt((rows - cy) ** 2 + (cols - cx) ** 2)                      # (R, R)
    canvas += (glow_strength * np.exp(-(d / glow_radius) ** 2))[..., None] * np.asarray(glow_colour)
    np.clip(canvas, 0.0, 1.0, out=canvas)
    _paint(canvas, np.clip(radius - d + 0.5, 0.0, 1.0), colour)


def _clouds(rng, canvas, horizon_row: float, colour, cover: float, stretch: int = 3,
            shade: float = 0.25) -> None:
    """Soft clouds: thresholded 2-D noise, stretched sideways, fading out toward the horizon.

    cover in [0, 1] moves the threshold; each cloud is darker at its base (shade), which is
    what makes a white blob read as a cumulus rather than a smear.
    """
    R = canvas.shape[0]
    n = _noise_2d(rng, R, cells_y=2 * stretch, cells_x=2, octaves=3)       # (R, R) in [0, 1]
    alpha = np.clip((n - (0.62 - 0.3 * cover)) * 5.0, 0.0, 1.0)
    rows, _ = _rows_cols(R)
    alpha *= np.clip(1.2 - rows / horizon_row, 0.0, 1.0)                   # thin out near horizon
    base_shadow = shade * np.clip((0.75 - n) * 4.0, 0.0, 1.0)[..., None]   # thin edges = darker
    _paint(canvas, alpha, np.asarray(colour) * (1.0 - base_shadow))


def _ridge(rng, R: int, base: float, amplitude: float, roughness: float = 0.5,
           octaves: int = 5, smooth: bool = False, base_cells: int = 2) -> np.ndarray:
    """Top row of a mountain or hill range for every column, (R,), in pixels.

    base and amplitude are fractions of the image height: base is the mean ground line,
    amplitude how far peaks rise above (and dips fall below) it.
    """
    h = _fractal_1d(rng, R, octaves, roughness, base_cells, smooth)
    return (base - amplitude * h) * R


def _slope_shade(top_row: np.ndarray, depth: np.ndarray, light: float) -> np.ndarray:
    """Brightness change (R, R) from the slope of the ridge, measured over a widening window.

    Just under the crest the slope is taken between close neighbours; deeper down between
    columns farther apart, so a lit face spreads out below its summit like a real mountain
    face instead of hanging down as a one-column stripe. light > 0: light comes from the left.
    """
    R = top_row.shape[0]
    cols = np.arange(R)[None, :]
    w = 1 + np.round(0.7 * np.maximum(depth, 0)).astype(np.int64)           # (R, R) half-window
    rise = top_row[np.clip(cols - w, 0, R - 1)] - top_row[np.clip(cols + w, 0, R - 1)]
    slope = rise / (2 * w)                                                   # > 0: ground rises to the right
    return np.clip(slope * light, -0.45, 0.35)


def _fill_ridge(canvas, top_row: np.ndarray, colour, *, haze_colour=None, fade: float = 0.0,
                fade_depth: float = 0.15, light: float = 0.0, shade_depth: float = 0.12,
                texture: np.ndarray | None = None) -> np.ndarray:
    """Fill everything below top_row with a layer; return its alpha (R, R).

    light: slope shading. Faces whose ground rises toward the light are brightened, the
      others darkened, most strongly near the crest (a cheap stand-in for normals).
    fade: how much the layer melts into haze_colour going down from its crest, the look of
      mist lying in the valleys between ridges.
    """
    R = canvas.shape[0]
    rows, _ = _rows_cols(R)
    depth = rows - top_row[None, :]                                        # (R, R) px below crest
    alpha = np.clip(depth + 0.5, 0.0, 1.0)
    colour = np.broadcast_to(np.asarray(colour, dtype=np.float64), (R, R, 3))
    if light:
        shade = _slope_shade(top_row, depth, light) * np.exp(-np.maximum(depth, 0) / (shade_depth * R))
        colour = colour * (1.0 + shade[..., None])
    if texture is not None:
        colour = colour * texture[..., None]
    if fade:
        t = fade * np.clip(depth / (fade_depth * R), 0.0, 1.0)
        colour = _mix(colour, haze_colour, t[..., None])
    _paint(canvas, alpha, np.clip(colour, 0.0, 1.0))
    return alpha


def _snow_caps(rng, canvas, top_row, layer_alpha, snowline: float, colour=(0.96, 0.97, 1.0),
               light: float = 0.0) -> None:
    """Whiten a mountain layer above a ragged snow line (fraction of height)."""
    R = canvas.shape[0]
    rows, _ = _rows_cols(R)
    line = (snowline + 0.04 * _fractal_1d(rng, R, 4, 0.7, 4)) * R           # (R,) ragged line
    alpha = layer_alpha * np.clip(line[None, :] - rows + 0.5, 0.0, 1.0)
    snow = np.broadcast_to(np.asarray(colour), (R, R, 3))
    if light:
        shadow = np.clip(_slope_shade(top_row, rows - top_row[None, :], light), -0.3, 0.0)   # (R, R)
        snow = snow * (1.0 + shadow[..., None])
    _paint(canvas, alpha, snow)


def _conifers(rng, canvas, ground_row: np.ndarray, count: int, height: tuple[float, float],
              colours) -> None:
    """A row of conifer silhouettes standing on ground_row, drawn as one per-column profile.

    Each tree is a triangle that lifts the top of the layer above its own columns, so a
    whole forest edge is one (n_trees, R) array and one _fill_ridge. The tallest tree in a
    column also decides that column's colour.
    """
    if count == 0:
        return
    R = canvas.shape[0]
    cols = np.arange(R) + 0.5
    xs = rng.uniform(-0.05, 1.05, count) * R                                # (n,) tree centres
    hs = rng.uniform(*height, count) * R                                    # (n,) tree heights
    base = np.interp(xs, cols, ground_row)                                   # (n,) foot of each tree
    dx = np.abs(cols[None, :] - xs[:, None])                                 # (n, R)
    lift = hs[:, None] * (1.0 - dx / (0.22 * hs[:, None]))                   # triangle, 0 at the edges
    top = np.where(lift > 0, base[:, None] - lift, np.inf)                   # (n, R)
    owner = top.argmin(axis=0)                                               # (R,) front-most tree
    tree_top = np.minimum(top.min(axis=0), ground_row + 1.0)
    palette = np.asarray(colours, dtype=np.float64).reshape(-1, 3)
    tree_colour = palette[rng.integers(0, len(palette), count)] * rng.uniform(0.85, 1.15, (count, 1))
    colour = np.broadcast_to(tree_colour[owner][None, :, :], (R, R, 3))
    _fill_ridge(canvas, tree_top, np.clip(colour, 0, 1))


def _round_trees(rng, canvas, ground_row: np.ndarray, count: int, height: tuple[float, float],
                 colours, light: float = 1.0, texture: np.ndarray | None = None) -> None:
    """Broadleaf trees: a lumpy round crown on a trunk, each drawn in its own bounding box.

    Trees are drawn far to near (by foot row), so nearer crowns overlap farther ones. The
    crown radius wobbles with angle (r·(1 + 0.07·sin 7θ)) and is lit from one side, which
    is what turns a disc into foliage.
    """
    R = canvas.shape[0]
    cols = np.arange(R) + 0.5
    xs = rng.uniform(-0.05, 1.05, count) * R
    hs = rng.uniform(*height, count) * R
    feet = np.interp(xs, cols, ground_row) + rng.uniform(0.0, 0.03, count) * R
    palette = np.asarray(colours, dtype=np.float64).reshape(-1, 3)
    tints = palette[rng.integers(0, len(palette), count)] * rng.uniform(0.85, 1.15, (count, 1))
    wobble = rng.uniform(0, 2 * np.pi, count)
    for i in np.argsort(feet):
        r = 0.42 * hs[i]
        cy = feet[i] - hs[i] + r                                                # crown centre row
        y0, y1 = max(0, int(cy - 1.2 * r)), min(R, int(feet[i]) + 2)
        x0, x1 = max(0, int(xs[i] - 1.2 * r)), min(R, int(xs[i] + 1.2 * r) + 2)
        if y0 >= y1 or x0 >= x1:
            continue
        rows = (np.arange(y0, y1) + 0.5)[:, None]
        dy, dx = rows - cy, cols[None, x0:x1] - xs[i]                           # (h, w) box
        d = np.sqrt(dy ** 2 + dx ** 2)
        edge = r * (1.0 + 0.07 * np.sin(7.0 * np.arctan2(dy, dx) + wobble[i]))
        crown = np.clip(edge - d + 0.5, 0.0, 1.0)
        trunk = np.clip(0.08 * r - np.abs(dx) + 0.5, 0.0, 1.0) * (rows > cy) * (rows < feet[i])
        lit = 1.0 + 0.3 * np.clip((-dy - light * dx) / r, -1.0, 1.0)           # bright top, one side
        colour = tints[i] * lit[..., None]
        if texture is not None:
            colour = colour * texture[y0:y1, x0:x1, None]
        box = canvas[y0:y1, x0:x1]
        _paint(box, trunk, (0.25, 0.16, 0.1))
        _paint(box, crown, np.clip(colour, 0.0, 1.0))


def _reflect(rng, canvas, water_row: float, tint, strength: float, ripple: float) -> None:
    """Turn everything below water_row into a rippled, darkened mirror image of what is above.

    Row r below the waterline shows row 2·water_row − r; each row is shifted sideways by a
    small sine (ripples), and the mirror fades into the water colour toward the viewer
    (Fresnel: water reflects most at grazing angles, near the horizon).
    """
    R = canvas.shape[0]
    w = int(round(water_row))
    rows = np.arange(w, R)                                                   # (Rw,)
    src_rows = np.clip(2 * w - 1 - rows, 0, R - 1)
    phase = rng.uniform(0, 2 * np.pi)
    shift = np.round(ripple * R * np.sin(rows * rng.uniform(0.8, 1.6) + phase)).astype(np.int64)
    src_cols = np.clip(np.arange(R)[None, :] + shift[:, None], 0, R - 1)    # (Rw, R)
    mirror = canvas[src_rows[:, None], src_cols]                             # (Rw, R, 3)
    toward_viewer = ((rows - w) / max(R - w, 1))[:, None, None]
    canvas[w:] = _mix(mirror * strength, tint, 0.25 + 0.55 * toward_viewer)
    # A few bright horizontal streaks: wind lines on the surface.
    streaks = rng.integers(w + 1, R, max(1, R // 16))
    canvas[streaks] = np.clip(canvas[streaks] * 1.25 + 0.04, 0.0, 1.0)


def _stars(rng, canvas, count: int, limit_row: float) -> None:
    """Stars as single output pixels (2 × 2 blocks at SUPERSAMPLE) so the downsample keeps them."""
    R = canvas.shape[0]
    S = R // SUPERSAMPLE
    ys = rng.integers(0, max(1, int(limit_row / SUPERSAMPLE)), count) * SUPERSAMPLE
    xs = rng.integers(0, S, count) * SUPERSAMPLE
    bright = rng.uniform(0.35, 1.0, count)[:, None] * np.array([0.95, 0.95, 1.0])
    for dy in range(SUPERSAMPLE):
        for dx in range(SUPERSAMPLE):
            canvas[ys + dy, xs + dx] = np.maximum(canvas[ys + dy, xs + dx], bright)


# ══ B. Procedural landscapes: the ten classes ═════════════════════════════════════════════════
# Each recipe draws back to front: sky, sun or moon, clouds, far ridges (hazy: atmospheric
# perspective makes distant land lighter and bluer, closer to the sky colour), near ridges,
# water, trees. Random horizon height, roughness, sun position and colour jitter give a
# generative model variety to learn inside a class; the palettes keep classes apart.

def _alpine_day(rng, R):
    horizon = rng.uniform(0.55, 0.7)
    sky_h = _jitter(rng, (0.72, 0.84, 0.96))
    canvas = _sky(R, horizon * R, _jitter(rng, (0.16, 0.38, 0.78)), sky_h, gamma=0.8)
    _clouds(rng, canvas, horizon * R, (1.0, 1.0, 1.0), cover=rng.uniform(0.0, 0.6))
    light = rng.choice([-1.0, 1.0]) * rng.uniform(1.0, 2.0)
    snowline = horizon - rng.uniform(0.16, 0.26)
    for k, (haze, base, rise) in enumerate([(0.55, 0.14, 0.6), (0.25, 0.04, 0.4)]):
        top = _ridge(rng, R, horizon - base, rng.uniform(0.8, 1.0) * rise, rng.uniform(0.45, 0.6))
        rock = _mix(_jitter(rng, (0.38, 0.38, 0.44)), sky_h, haze)
        alpha = _fill_ridge(canvas, top, rock, light=light)
        _snow_caps(rng, canvas, top, alpha, snowline=snowline + 0.04 * k, light=light)
    meadow = _ridge(rng, R, rng.uniform(0.74, 0.84), 0.08, 0.4, smooth=True)
    _fill_ridge(canvas, meadow, _jitter(rng, (0.3, 0.55, 0.2)), light=light * 0.5)
    _conifers(rng, canvas, meadow + 0.02 * R, rng.integers(0, 6), (0.06, 0.14), [(0.08, 0.25, 0.12)])
    return canvas


def _autumn_forest(rng, R):
    horizon = rng.uniform(0.4, 0.55)
    sky_h = _jitter(rng, (0.92, 0.85, 0.72))
    canvas = _sky(R, horizon * R, _jitter(rng, (0.5, 0.66, 0.85)), sky_h)
    _clouds(rng, canvas, horizon * R, (1.0, 0.97, 0.92), cover=rng.uniform(0.0, 0.4))
    hills = _ridge(rng, R, horizon, 0.08, 0.5, smooth=True)
    _fill_ridge(canvas, hills, _mix(_jitter(rng, (0.6, 0.4, 0.25)), sky_h, 0.5))
    leaves = [(0.85, 0.35, 0.08), (0.75, 0.18, 0.08), (0.92, 0.62, 0.12), (0.55, 0.32, 0.1)]
    leaf_texture = 0.75 + 0.5 * _noise_2d(rng, R, 8, 8, octaves=2)
    light = rng.choice([-1.0, 1.0])
    floor = _ridge(rng, R, horizon + 0.12, 0.02, 0.4, smooth=True)
    _fill_ridge(canvas, floor, _jitter(rng, (0.5, 0.3, 0.12)), texture=leaf_texture)
    for k, (haze, size, count) in enumerate([(0.45, (0.12, 0.2), 18), (0.2, (0.2, 0.3), 12),
                                             (0.0, (0.3, 0.45), 6)]):
        ground = floor + (0.08 + 0.14 * k) * R
        palette = [_mix(np.asarray(c), sky_h, haze) for c in leaves]
        _round_trees(rng, canvas, ground, count, size, palette, light, texture=leaf_texture)
    return canvas


def _desert_dunes(rng, R):
    horizon = rng.uniform(0.45, 0.62)
    sky_h = _jitter(rng, (0.96, 0.9, 0.78), 0.03)
    canvas = _sky(R, horizon * R, _jitter(rng, (0.35, 0.6, 0.88)), sky_h, gamma=0.7)
    _glow_disc(canvas, rng.uniform(0.08, 0.3) * R, rng.uniform(0.1, 0.9) * R, 0.05 * R,
               (1.0, 1.0, 0.92), (1.0, 0.9, 0.6), 0.25 * R, 0.5)
    light = rng.choice([-1.0, 1.0]) * rng.uniform(2.0, 3.5)
    sand = _jitter(rng, (0.88, 0.6, 0.3), 0.03)
    for k, haze in enumerate([0.45, 0.25, 0.0]):
        top = _ridge(rng, R, horizon + 0.13 * k, 0.07 + 0.03 * k, 0.35, octaves=3, smooth=True,
                     base_cells=1 + k)
        _fill_ridge(canvas, top, _mix(sand * (1 - 0.06 * k), sky_h, haze), light=light, shade_depth=0.3)
    return canvas


def _foggy_valley(rng, R):
    horizon = rng.uniform(0.3, 0.45)
    fog = _jitter(rng, (0.82, 0.85, 0.86), 0.03)
    canvas = _sky(R, horizon * R, _jitter(rng, (0.66, 0.7, 0.74), 0.03), fog)
    _glow_disc(canvas, rng.uniform(0.1, 0.3) * R, rng.uniform(0.2, 0.8) * R, 0.045 * R,
               (0.95, 0.95, 0.9), fog, 0.2 * R, 0.15)
    green = _jitter(rng, (0.13, 0.24, 0.2), 0.03)
    layers = rng.integers(4, 6)
    for k in range(layers):
        near = k / (layers - 1)                                               # 0 far → 1 near
        top = _ridge(rng, R, horizon + 0.14 * k, 0.06 + 0.03 * near, rng.uniform(0.4, 0.55))
        colour = _mix(green, fog, 0.75 * (1 - near))
        _fill_ridge(canvas, top, colour, haze_colour=fog, fade=0.85, fade_depth=0.12 + 0.05 * near)
        if k >= layers - 2:
            _conifers(rng, canvas, top + 0.01 * R, 10, (0.04, 0.1), [colour])
    return canvas


def _green_hills(rng, R):
    horizon = rng.uniform(0.45, 0.62)
    sky_h = _jitter(rng, (0.78, 0.9, 0.98))
    canvas = _sky(R, horizon * R, _jitter(rng, (0.25, 0.52, 0.9)), sky_h, gamma=0.8)
    if rng.random() < 0.5:
        _glow_disc(canvas, rng.uniform(0.08, 0.25) * R, rng.uniform(0.1, 0.9) * R, 0.045 * R,
                   (1.0, 1.0, 0.9), (1.0, 1.0, 0.8), 0.2 * R, 0.35)
    _clouds(rng, canvas, horizon * R, (1.0, 1.0, 1.0), cover=rng.uniform(0.3, 0.9), stretch=2)
    light = rng.choice([-1.0, 1.0]) * rng.uniform(1.5, 2.5)
    greens = [(0.45, 0.65, 0.35), (0.4, 0.66, 0.22), (0.3, 0.58, 0.16), (0.22, 0.48, 0.12)]
    for k, g in enumerate(greens):
        top = _ridge(rng, R, horizon + 0.12 * k, 0.06 + 0.02 * k, 0.35, octaves=3, smooth=True)
        colour = _mix(_jitter(rng, g, 0.03), sky_h, 0.35 * (3 - k) / 3)
        _fill_ridge(canvas, top, colour, light=light, shade_depth=0.2)
        if k == 2 and rng.random() < 0.6:
            _round_trees(rng, canvas, top + 0.03 * R, rng.integers(1, 5), (0.08, 0.16),
                         [(0.12, 0.35, 0.1)], light / 2.0)
    return canvas


def _mountain_lake(rng, R):
    water = rng.uniform(0.55, 0.68)
    sky_h = _jitter(rng, (0.75, 0.85, 0.95))
    canvas = _sky(R, water * R, _jitter(rng, (0.2, 0.42, 0.78)), sky_h, gamma=0.8)
    _clouds(rng, canvas, water * R, (1.0, 1.0, 1.0), cover=rng.uniform(0.0, 0.5))
    light = rng.choice([-1.0, 1.0]) * rng.uniform(1.0, 2.0)
    top = _ridge(rng, R, water - 0.15, rng.uniform(0.45, 0.6), rng.uniform(0.45, 0.6))
    alpha = _fill_ridge(canvas, top, _mix(_jitter(rng, (0.35, 0.37, 0.45)), sky_h, 0.4), light=light)
    _snow_caps(rng, canvas, top, alpha, snowline=water - rng.uniform(0.25, 0.33), light=light)
    # Forested slopes come down to the shore: they make a lake greener and darker than an alpine view.
    shore = _ridge(rng, R, water - 0.07, rng.uniform(0.15, 0.3), 0.5, smooth=True)
    forest = _jitter(rng, (0.08, 0.26, 0.15), 0.03)
    _fill_ridge(canvas, shore, forest, light=light)
    _conifers(rng, canvas, shore + 0.02 * R, 25, (0.05, 0.12), [forest * 0.8, forest])
    _reflect(rng, canvas, water * R, _jitter(rng, (0.04, 0.18, 0.2), 0.03), 0.8, 0.006)
    return canvas


def _seaside(rng, R):
    horizon = rng.uniform(0.38, 0.52)
    sky_h = _jitter(rng, (0.8, 0.9, 0.97))
    canvas = _sky(R, horizon * R, _jitter(rng, (0.22, 0.5, 0.88)), sky_h, gamma=0.8)
    sun_x = rng.uniform(0.15, 0.85) * R
    _glow_disc(canvas, rng.uniform(0.08, 0.25) * R, sun_x, 0.045 * R, (1.0, 1.0, 0.92),
               (1.0, 1.0, 0.85), 0.2 * R, 0.35)
    _clouds(rng, canvas, horizon * R, (1.0, 1.0, 1.0), cover=rng.uniform(0.0, 0.5))
    if rng.random() < 0.6:                                                    # a headland on one side
        side = np.linspace(0, 1, R) if rng.random() < 0.5 else np.linspace(1, 0, R)
        height = (0.08 + 0.1 * (_fractal_1d(rng, R, 4, 0.5) + 1)) * R
        cape = horizon * R - np.clip(side * 1.6 - 0.7, 0, None) * height
        _fill_ridge(canvas, cape, _mix(_jitter(rng, (0.25, 0.45, 0.3)), sky_h, 0.45), light=1.0)
    rows, cols = _rows_cols(R)
    sea_t = np.clip((rows - horizon * R) / ((1 - horizon) * R), 0, 1)[..., None]   # (R, 1, 1)
    sea = _mix(_jitter(rng, (0.35, 0.6, 0.78), 0.03), _jitter(rng, (0.05, 0.3, 0.5), 0.03), sea_t)
    sea = sea * (0.92 + 0.16 * _noise_2d(rng, R, 16, 3, octaves=1))[..., None]     # swell
    glitter = np.exp(-((cols - sun_x) / (0.08 * R)) ** 2) * (rng.random((R, R)) < 0.25)
    sea = np.clip(sea + 0.5 * glitter[..., None], 0, 1)
    _paint(canvas, np.clip(rows - horizon * R + 0.5, 0, 1) * np.ones((1, R)), sea)
    shore = _ridge(rng, R, rng.uniform(0.74, 0.86), 0.05, 0.4, octaves=3, smooth=True)
    foam = _ridge(rng, R, 0.0, 0.0) + shore - 0.012 * R
    _fill_ridge(canvas, foam, (0.95, 0.97, 0.98))
    _fill_ridge(canvas, shore, _jitter(rng, (0.9, 0.8, 0.6), 0.03), light=1.5)
    return canvas


def _snowfield(rng, R):
    horizon = rng.uniform(0.4, 0.6)
    overcast = rng.random() < 0.5
    top_colour = (0.7, 0.74, 0.8) if overcast else (0.45, 0.62, 0.88)
    sky_h = _jitter(rng, (0.88, 0.9, 0.93), 0.02)
    canvas = _sky(R, horizon * R, _jitter(rng, top_colour, 0.03), sky_h)
    light = rng.choice([-1.0, 1.0]) * rng.uniform(1.5, 3.0)
    snow = np.array([0.95, 0.96, 1.0])
    for k in range(3):
        top = _ridge(rng, R, horizon + 0.14 * k, 0.07 - 0.015 * k, 0.45, octaves=4, smooth=k > 0)
        _fill_ridge(canvas, top, _mix(snow * (1 - 0.02 * k), sky_h, 0.4 * (2 - k) / 2), light=light,
                    shade_depth=0.15)
        if k == 1 and rng.random() < 0.8:
            _conifers(rng, canvas, top + 0.03 * R, rng.integers(3, 14), (0.08, 0.2),
                       [(0.08, 0.16, 0.14), (0.12, 0.2, 0.18)])
    flakes = rng.random((R, R)) < rng.uniform(0.0, 0.02)
    _paint(canvas, flakes * 0.8, snow)
    return canvas


def _starry_night(rng, R):
    horizon = rng.uniform(0.55, 0.75)
    sky_h = _jitter(rng, (0.1, 0.15, 0.32), 0.03)
    canvas = _sky(R, horizon * R, _jitter(rng, (0.01, 0.02, 0.07), 0.01), sky_h)
    if rng.random() < 0.5:                                                    # a faint Milky Way
        band = _noise_2d(rng, R, 6, 6, octaves=3)
        rows, cols = _rows_cols(R)
        tilt = rng.uniform(-0.8, 0.8)
        d = np.abs(rows - (0.3 * R + tilt * (cols - R / 2))) / (0.12 * R)
        canvas += (0.18 * np.exp(-d ** 2) * band)[..., None] * np.array([0.8, 0.8, 1.0])
    _stars(rng, canvas, rng.integers(15, 45) * R // 64, horizon * R)
    _glow_disc(canvas, rng.uniform(0.1, 0.35) * R, rng.uniform(0.15, 0.85) * R, rng.uniform(0.04, 0.07) * R,
               (0.96, 0.95, 0.85), (0.5, 0.55, 0.7), 0.2 * R, 0.3)
    night = _jitter(rng, (0.04, 0.05, 0.1), 0.01)
    for k, haze in enumerate([0.45, 0.0]):
        top = _ridge(rng, R, horizon - 0.06 + 0.1 * k, rng.uniform(0.2, 0.4), rng.uniform(0.45, 0.6))
        _fill_ridge(canvas, top, _mix(night, sky_h, haze))
    return np.clip(canvas, 0, 1)


def _sunset(rng, R):
    horizon = rng.uniform(0.55, 0.72)
    sky_h = _jitter(rng, (1.0, 0.78, 0.4), 0.03)
    canvas = _sky(R, horizon * R, _jitter(rng, (0.22, 0.14, 0.38), 0.03), sky_h,
                  mid=_jitter(rng, (0.92, 0.42, 0.32), 0.04))
    _glow_disc(canvas, horizon * R - rng.uniform(0.0, 0.12) * R, rng.uniform(0.2, 0.8) * R,
               rng.uniform(0.06, 0.1) * R, (1.0, 0.92, 0.65), (1.0, 0.55, 0.2), 0.3 * R, 0.45)
    _clouds(rng, canvas, horizon * R, _jitter(rng, (0.85, 0.42, 0.42), 0.04), cover=rng.uniform(0.0, 0.5),
            stretch=5, shade=0.4)
    dusk = _jitter(rng, (0.2, 0.08, 0.18), 0.02)
    layers = rng.integers(2, 4)
    for k in range(layers):
        near = k / max(layers - 1, 1)
        top = _ridge(rng, R, horizon + 0.1 * k, 0.08 + 0.04 * near, rng.uniform(0.4, 0.55),
                     smooth=rng.random() < 0.5)
        _fill_ridge(canvas, top, _mix(dusk * (1 - 0.5 * near), sky_h, 0.5 * (1 - near)))
    return canvas


# Alphabetical on purpose: ImageFolder labels are sorted folder names, so a generated folder
# loads back with label == class_id of procedural_image.
_RECIPES = {
    "alpine_day": _alpine_day,
    "autumn_forest": _autumn_forest,
    "desert_dunes": _desert_dunes,
    "foggy_valley": _foggy_valley,
    "green_hills": _green_hills,
    "mountain_lake": _mountain_lake,
    "seaside": _seaside,
    "snowfield": _snowfield,
    "starry_night": _starry_night,
    "sunset": _sunset,
}
CLASS_NAMES = list(_RECIPES)
assert CLASS_NAMES == sorted(CLASS_NAMES), "class order must match sorted folder names"


def render_landscape(class_id: int, rng: np.random.Generator, size: int) -> np.ndarray:
    """One landscape of class class_id as (size, size, 3) uint8, drawn at 2× and box-averaged."""
    if not 0 <= class_id < len(CLASS_NAMES):
        raise ValueError(f"class_id {class_id} out of range 0..{len(CLASS_NAMES) - 1}")
    R = SUPERSAMPLE * size
    canvas = _RECIPES[CLASS_NAMES[class_id]](rng, R)                       # (R, R, 3) in [0, 1]
    small = canvas.reshape(size, SUPERSAMPLE, size, SUPERSAMPLE, 3).mean(axis=(1, 3))  # (S, S, 3)
    return np.round(np.clip(small, 0.0, 1.0) * 255.0).astype(np.uint8)


def procedural_image(seed: int, index: int, size: int) -> tuple[np.ndarray, int]:
    """Image `index` of the set with `seed`: ((size, size, 3) uint8, class_id).

    The RNG is seeded by the pair (seed, index), so an image never depends on n, on the order
    images are drawn in, or on which process draws it. Classes go round-robin: index % 10.
    """
    class_id = index % len(CLASS_NAMES)
    rng = np.random.default_rng([seed, index])
    return render_landscape(class_id, rng, size), class_id


# ══ Writing procedural sets to disk, and the on-disk cache ════════════════════════════════════

# Bump when a recipe changes: cached folders made by an older generator then no longer match
# their DONE marker and are redrawn, instead of silently training on stale pictures.
GENERATOR_VERSION = 2

# Train and test sets come from different seeds, so FID against the test set measures
# generalisation, not memorisation of the training images.
SPLIT_SEEDS = {"train": 0, "test": 1}
SPLIT_SIZES = {"train": 10_000, "test": 5_000}


def _marker(n: int, size: int, seed: int) -> dict:
    return {"n": n, "size": size, "seed": seed, "class_names": CLASS_NAMES,
            "generator_version": GENERATOR_VERSION}


def atomic_write(path: Path, write) -> None:
    """Write through a temp file and rename: a killed run never leaves a half-written file.

    The pid in the temp name lets two processes fill the same cache at once without
    clobbering each other's temp files; both renames then put identical bytes in place.
    """
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    write(tmp)
    os.replace(tmp, path)


def generate_procedural(out_dir: str | Path, n: int, size: int, seed: int, progress: bool = True) -> Path:
    """Draw n landscapes into out_dir/<class_name>/<index:05d>.png, then write DONE.json last."""
    if n <= 0:
        raise ValueError(f"n must be positive, got {n}")
    if size < 8:
        raise ValueError(f"size must be at least 8 pixels, got {size}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / DONE_MARKER).unlink(missing_ok=True)           # from now on the folder is incomplete
    for name in CLASS_NAMES[:min(n, len(CLASS_NAMES))]:
        (out_dir / name).mkdir(exist_ok=True)
    start = time.perf_counter()
    for index in progress_iter(range(n), f"drawing {out_dir.name}", "img", enabled=progress):
        image, class_id = procedural_image(seed, index, size)
        path = out_dir / CLASS_NAMES[class_id] / f"{index:05d}.png"
        atomic_write(path, lambda tmp: Image.fromarray(image).save(tmp, format="PNG"))
    seconds = time.perf_counter() - start
    marker = json.dumps(_marker(n, size, seed), indent=2)
    atomic_write(out_dir / DONE_MARKER, lambda tmp: tmp.write_text(marker))
    print(f"drew {n} landscapes of {size}×{size} px in {seconds:.1f} s "
          f"({n / seconds:.0f} images/s, {1000 * seconds / n:.2f} ms each) into {out_dir}")
    return out_dir


def is_complete(folder: str | Path, n: int, size: int, seed: int) -> bool:
    """True if folder holds a finished procedural set with exactly these settings."""
    marker = Path(folder) / DONE_MARKER
    try:
        return json.loads(marker.read_text()) == _marker(n, size, seed)
    except (OSError, ValueError):
        return False


def procedural_dataset(split: str = "train", size: int = 32, n: int | None = None,
                       root: str | Path = REPO_ROOT / "data") -> Path:
    """The cached folder of procedural landscapes for a split, drawn on first use.

    Example: data/landscapes-32px-train-seed0-n10000. A folder whose DONE marker matches is
    returned as is; one without it (a killed run) or with another generator version is redrawn.
    """
    if split not in SPLIT_SEEDS:
        raise ValueError(f"split must be one of {sorted(SPLIT_SEEDS)}, got {split!r}")
    n = SPLIT_SIZES[split] if n is None else n
    seed = SPLIT_SEEDS[split]
    folder = Path(root) / f"landscapes-{size}px-{split}-seed{seed}-n{n}"
    if is_complete(folder, n, size, seed):
        print(f"using cached procedural landscapes in {folder}")
        return folder
    print(f"drawing {n} procedural landscapes ({split}, {size} px, seed {seed}) into {folder} ...")
    return generate_procedural(folder, n, size, seed)


def resolve_data(data: str | Path | None, split: str, image_size: int, labels: str = "auto") -> Path:
    """What scripts call with their --data and --labels flags: None → the procedural cache;
    a folder → its content split ("train" or "test"), with its own classes, k-means scenes or
    one class (`prepared_photos`), resized to image_size.  Raises ValueError with a clear line."""
    if data is None:
        if labels != "auto":
            raise ValueError(f"--labels {labels} applies to a --data folder; the procedural "
                             f"landscapes have their own 10 classes")
        return procedural_dataset(split, image_size)
    parse_labels(labels)                             # a bad spec fails before any work
    return prepared_photos(_check_folder(data), split, image_size, labels)   # scanning raises for no images


# ══ Preview grid and CLI ══════════════════════════════════════════════════════════════════════

def tile_images(images: torch.Tensor, nrow: int) -> torch.Tensor:
    """(B, 3, H, W) uint8 or [-1, 1] float → one (rows·H, nrow·W, 3) uint8 picture, white-padded."""
    u8 = images if images.dtype == torch.uint8 else to_uint8(images.detach().cpu())
    B, _, H, W = u8.shape
    rows = -(-B // nrow)                                        # ceil(B / nrow)
    canvas = torch.full((rows * nrow, 3, H, W), 255, dtype=torch.uint8)
    canvas[:B] = u8.cpu()
    # (rows, nrow, 3, H, W) → (rows, H, nrow, W, 3): image r·nrow + c lands at block (r, c).
    return canvas.reshape(rows, nrow, 3, H, W).permute(0, 3, 1, 4, 2).reshape(rows * H, nrow * W, 3)


def save_image_grid(images: torch.Tensor, path: str | Path, nrow: int = 10, title: str | None = None,
                    row_labels: list[str] | None = None) -> Path:
    """Save a batch as one titled PNG grid, nrow images per row.

    images: (B, 3, H, W), either uint8 or float in [-1, 1] (model samples; converted with
    to_uint8, which also clamps overshoot). row_labels name the rows (e.g. class names).
    """
    import matplotlib
    matplotlib.use("Agg")                                       # files only, no window
    import matplotlib.pyplot as plt

    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"expected images of shape (B, 3, H, W), got {tuple(images.shape)}")
    grid = tile_images(images, nrow)
    rows, H = -(-images.shape[0] // nrow), images.shape[2]
    fig, ax = plt.subplots(figsize=(1.5 + 0.9 * nrow, 0.5 + 0.9 * rows), dpi=120)
    ax.imshow(grid.numpy(), interpolation="nearest")            # (rows·H, nrow·W, 3)
    ax.set_xticks([])
    if row_labels is not None:
        ax.set_yticks([(r + 0.5) * H for r in range(len(row_labels))], row_labels)
    else:
        ax.set_yticks([])
    if title:
        ax.set_title(title)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, bbox_inches="tight")                      # keeps the row labels on the page
    plt.close(fig)
    return path


def save_grid(path: str | Path, size: int = 32, seed: int = 0, per_class: int = 10) -> Path:
    """A preview of the procedural classes: one row per class, per_class images per row."""
    images = [procedural_image(seed, c + k * len(CLASS_NAMES), size)[0]
              for c in range(len(CLASS_NAMES)) for k in range(per_class)]
    u8 = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2)          # (classes·per_class, 3, S, S)
    return save_image_grid(u8, path, nrow=per_class, row_labels=CLASS_NAMES,
                           title=f"Procedural landscapes, {size}×{size} px, seed {seed}: one class per row")


def save_folder_grid(folder: str | Path, path: str | Path, size: int, labels: str = "auto",
                     per_class: int = 10) -> Path:
    """Real training images of a --data folder, one class (or scene) per row, with each class's
    share of the training side in its label: how to see what k-means found."""
    data = load_images(resolve_data(folder, "train", size, labels), size)
    rows, names = [], []
    g = torch.Generator().manual_seed(0)
    for c, name in enumerate(data.class_names):
        members = torch.nonzero(data.labels == c).flatten()
        pick = members[torch.randperm(len(members), generator=g)[:per_class]]
        pad = torch.full((per_class - len(pick), 3, size, size), 255, dtype=torch.uint8)
        rows.append(torch.cat([data.images[pick], pad]))
        names.append(f"{name} ({len(members)})")
    return save_image_grid(torch.cat(rows), path, nrow=per_class, row_labels=names,
                           title=f"{Path(folder).name}: {per_class} random training images per class "
                                 f"(size in brackets), {size} px")


def main(args: argparse.Namespace) -> None:
    if args.data is not None:
        if args.grid is None:
            raise SystemExit("--data needs --grid PATH.png: a grid of the folder's classes or scenes")
        try:
            print(f"wrote {save_folder_grid(args.data, args.grid, args.size, args.labels)}")
        except ValueError as e:
            raise SystemExit(f"--data: {e}")
        return
    if args.n <= 0:
        raise SystemExit(f"--n {args.n}: the number of images must be at least 1")
    if args.size < 8:
        raise SystemExit(f"--size {args.size}: images must be at least 8 pixels wide (try 32)")
    if args.out is None and args.grid is None:
        raise SystemExit("nothing to do: pass --out DIR to write images and/or --grid PATH.png for a preview")
    if args.out is not None:
        generate_procedural(args.out, args.n, args.size, args.seed)
    if args.grid is not None:
        print(f"wrote a {len(CLASS_NAMES)}×10 preview grid to {save_grid(args.grid, args.size, args.seed)}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description="Draw procedural landscapes into one subfolder per class (loadable as an\n"
                    "ImageFolder by load_images) and/or a preview grid with one class per row.",
        epilog="examples:\n"
               "  python landscapes.py --out data/my-landscapes --n 10000 --size 32 --seed 0\n"
               "  python landscapes.py --grid landscapes_grid.png\n"
               "  python landscapes.py --data ~/landscape-pictures --grid scenes.png --size 64\n"
               "Training scripts draw and cache these sets themselves under data/ when --data is omitted.",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=None, help="folder to write <class>/<index>.png into")
    parser.add_argument("--n", type=int, default=SPLIT_SIZES["train"],
                        help="number of images (classes take turns: image i has class i %% 10)")
    parser.add_argument("--size", type=int, default=32, help="image side in pixels (the DiT trains at 32)")
    parser.add_argument("--seed", type=int, default=0, help="set seed; image i depends only on (seed, i)")
    parser.add_argument("--grid", type=Path, default=None, help="write a 10×10 preview PNG here")
    parser.add_argument("--data", default=None,
                        help="with --grid: show this photo folder's training side instead, one class "
                             "or k-means scene per row (it is split and labelled as for training)")
    parser.add_argument("--labels", default="auto", help="with --data: auto, none or kmeans:K")
    main(parser.parse_args())
