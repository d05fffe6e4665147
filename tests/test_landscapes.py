"""Tests for landscapes.py: the folder loader, the pixel scaling and the procedural generator.

Run: python -m pytest tests/test_landscapes.py -q      (about 15 s on two CPU cores)
Every test writes under pytest's tmp_path; none touches the repo's data/ folder.
"""

import argparse
import hashlib
import itertools
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import landscapes as L  # noqa: E402


# --------------------------------------------------------------------------------------------
#                                         helpers
# --------------------------------------------------------------------------------------------

def save(path: Path, im: Image.Image, **kwargs) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    im.save(path, **kwargs)
    return path


def messy_flat_folder(folder: Path) -> int:
    """A Kaggle-like flat folder: many modes and sizes, one corrupt JPEG, one text file.

    Returns the number of files that should load.
    """
    save(folder / "grey.png", Image.new("L", (40, 30), 90))
    save(folder / "grey_alpha.png", Image.new("LA", (30, 50), (200, 128)))
    palette = Image.new("P", (64, 20))
    palette.putpalette([10, 200, 30] * 256)
    save(folder / "palette.gif", palette)
    save(folder / "rgba.png", Image.new("RGBA", (20, 20), (255, 0, 0, 255)))
    save(folder / "cmyk.jpg", Image.new("CMYK", (50, 40), (255, 0, 0, 0)), quality=95)
    save(folder / "sixteen.png", Image.new("I;16", (33, 17), 32768))
    save(folder / "tall_rgb.JPG", Image.new("RGB", (12, 90), (0, 0, 255)), quality=95)
    save(folder / "big_rgb.webp", Image.new("RGB", (300, 200), (250, 250, 0)))
    (folder / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not really a jpeg")
    (folder / "notes.txt").write_text("not an image")
    return 8


def class_means(seed: int, per_class: int = 20, size: int = 32) -> np.ndarray:
    """(classes, 3) mean RGB in [0, 1] over per_class images of each class."""
    means = []
    for c in range(len(L.CLASS_NAMES)):
        images = [L.procedural_image(seed, c + k * len(L.CLASS_NAMES), size)[0] for k in range(per_class)]
        means.append(np.stack(images).mean(axis=(0, 1, 2)) / 255.0)
    return np.array(means)


# --------------------------------------------------------------------------------------------
#                                      pixel scaling
# --------------------------------------------------------------------------------------------

def test_uint8_float_round_trip_is_exact():
    u8 = torch.arange(256, dtype=torch.uint8).reshape(1, 1, 16, 16)
    x = L.to_float(u8)
    assert x.dtype == torch.float32
    assert x.min().item() == -1.0 and x.max().item() == 1.0
    assert torch.equal(L.to_uint8(x), u8)


def test_to_uint8_clamps_and_rounds():
    x = torch.tensor([-3.0, -1.0, 0.0, 1.0, 5.0])
    assert L.to_uint8(x).tolist() == [0, 0, 128, 255, 255]       # (0 + 1)·127.5 = 127.5 → 128


def test_to_float_rejects_float_input():
    with pytest.raises(ValueError, match="uint8"):
        L.to_float(torch.zeros(3))


# --------------------------------------------------------------------------------------------
#                                   reading single images
# --------------------------------------------------------------------------------------------

def test_sixteen_bit_is_scaled_not_clipped(tmp_path):
    im = Image.new("I;16", (4, 3), 0)
    im.putpixel((1, 0), 32768)
    im.putpixel((2, 0), 65535)
    rgb = L.read_rgb(save(tmp_path / "g16.png", im))
    assert rgb.shape == (3, 4, 3) and rgb.dtype == np.uint8
    assert rgb[0, 0].tolist() == [0, 0, 0]
    assert rgb[0, 1].tolist() == [128, 128, 128]                  # 32768 / 257 = 127.5, not 255
    assert rgb[0, 2].tolist() == [255, 255, 255]


def test_mode_conversions(tmp_path):
    rgba = Image.new("RGBA", (4, 4), (255, 0, 0, 255))
    rgba.putpixel((0, 0), (255, 0, 0, 0))                           # fully transparent pixel
    out = L.read_rgb(save(tmp_path / "rgba.png", rgba))
    assert out[0, 0].tolist() == list(L.ALPHA_BACKGROUND)          # composited onto the background
    assert out[1, 1].tolist() == [255, 0, 0]

    la = L.read_rgb(save(tmp_path / "la.png", Image.new("LA", (2, 2), (0, 128))))
    expected = round(255 * (1 - 128 / 255))                          # black at half alpha over white
    assert np.all(np.abs(la.astype(int) - expected) <= 1)

    cmyk = L.read_rgb(save(tmp_path / "cmyk.tif", Image.new("CMYK", (3, 3), (255, 0, 0, 0))))
    assert cmyk[1, 1].tolist() == [0, 255, 255]                      # pure cyan ink

    palette = Image.new("P", (3, 3), 1)
    palette.putpalette([0, 0, 0, 10, 200, 30] + [0] * 762)
    assert L.read_rgb(save(tmp_path / "p.png", palette))[2, 2].tolist() == [10, 200, 30]

    grey = L.read_rgb(save(tmp_path / "l.png", Image.new("L", (5, 2), 77)))
    assert grey.shape == (2, 5, 3) and np.all(grey == 77)


def test_read_rgb_warns_once_and_returns_none_for_corrupt_file(tmp_path, capsys):
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    assert L.read_rgb(bad) is None
    err = capsys.readouterr().err
    assert err.count("broken.png") == 1 and len(err.strip().splitlines()) == 1


def test_center_crop_keeps_the_centre():
    # A wide 30 × 120 image: red | green | blue. The central 30 × 30 square (columns 45..75)
    # is green with 15 columns to spare, more than Lanczos reaches (3 output px = 9 input px).
    wide = np.zeros((30, 120, 3), dtype=np.uint8)
    wide[:, :30] = (255, 0, 0)
    wide[:, 30:90] = (0, 255, 0)
    wide[:, 90:] = (0, 0, 255)
    out = np.asarray(L.resize_center_crop(Image.fromarray(wide), 10)).astype(int)
    assert out.shape == (10, 10, 3)
    assert np.all(np.abs(out - [0, 255, 0]) <= 2)
    # Upscaling too: the crop of the tall image at 60 px is still green only.
    tall = np.transpose(wide, (1, 0, 2)).copy()                      # top / middle / bottom
    out = np.asarray(L.resize_center_crop(Image.fromarray(tall), 60)).astype(int)
    assert out.shape == (60, 60, 3)
    assert np.all(np.abs(out - [0, 255, 0]) <= 2)


# --------------------------------------------------------------------------------------------
#                                      folder loading
# --------------------------------------------------------------------------------------------

def test_flat_messy_folder(tmp_path, capsys):
    n_good = messy_flat_folder(tmp_path / "kaggle")
    data = L.load_images(tmp_path / "kaggle", 16)
    assert data.images.shape == (n_good, 3, 16, 16) and data.images.dtype == torch.uint8
    assert data.labels.dtype == torch.int64 and data.labels.tolist() == [0] * n_good
    assert data.class_names == ["landscape"] and data.labelled is False
    err = capsys.readouterr().err
    assert err.count("corrupt.jpg") == 1                             # warned exactly once ...
    assert err.count("notes.txt") == 1                               # ... and so was the text file
    # The 16-bit mid-grey image loads as mid-grey, the CMYK one as cyan (sorted order).
    names = [p.name for p in L.list_images(tmp_path / "kaggle")[0] if p.name != "corrupt.jpg"]
    sixteen = data.images[names.index("sixteen.png")]
    assert torch.all((sixteen.int() - 128).abs() <= 1)
    cyan = data.images[names.index("cmyk.jpg")].float().mean(dim=(1, 2))
    assert cyan[0] < 20 and cyan[1] > 235 and cyan[2] > 235


def test_class_subfolders_give_labels(tmp_path):
    for name, count, colour in [("b_valley", 3, (0, 200, 0)), ("a_coast", 2, (0, 0, 200))]:
        for i in range(count):
            save(tmp_path / "set" / name / f"{i}.png", Image.new("RGB", (20 + 7 * i, 20), colour))
    save(tmp_path / "set" / "b_valley" / "deeper" / "x.png", Image.new("RGB", (20, 20), (0, 200, 0)))
    paths, labels, class_names = L.list_images(tmp_path / "set")
    assert class_names == ["a_coast", "b_valley"]
    assert labels == [0, 0, 1, 1, 1, 1]
    assert paths == sorted(paths[:2]) + sorted(paths[2:])
    data = L.load_images(tmp_path / "set", 8)
    assert data.labelled is True and data.labels.tolist() == labels
    assert data.images.shape == (6, 3, 8, 8)
    assert data.images[0, 2].float().mean() > 190 and data.images[-1, 1].float().mean() > 190


def test_missing_and_empty_folders_raise(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        L.list_images(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match=r"contains no images \(\.png/\.jpg.*omit --data"):
        L.list_images(tmp_path / "empty")
    (tmp_path / "text_only").mkdir()
    (tmp_path / "text_only" / "a.txt").write_text("x")
    with pytest.raises(ValueError, match="contains no images"):
        L.load_images(tmp_path / "text_only", 8)


def test_folder_of_only_corrupt_images_raises(tmp_path):
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "a.jpg").write_bytes(b"nope")
    with pytest.raises(ValueError, match="contains no images"):
        L.load_images(tmp_path / "bad", 8)


# --------------------------------------------------------------------------------------------
#                                   procedural landscapes
# --------------------------------------------------------------------------------------------

def test_at_least_ten_classes_in_folder_order():
    assert len(L.CLASS_NAMES) >= 10
    assert L.CLASS_NAMES == sorted(L.CLASS_NAMES)                    # so ImageFolder labels == class_id


@pytest.mark.parametrize("size", [8, 32, 48])
def test_render_shape_dtype_and_range(size):
    for index in range(len(L.CLASS_NAMES)):
        image, class_id = L.procedural_image(0, index, size)
        assert class_id == index % len(L.CLASS_NAMES)
        assert image.shape == (size, size, 3) and image.dtype == np.uint8
        assert int(image.max()) - int(image.min()) > 60               # a picture, not a flat colour


def test_generator_is_deterministic_per_seed_and_index():
    a = [L.procedural_image(0, i, 32)[0] for i in (5, 17, 3)]
    b = [L.procedural_image(0, i, 32)[0] for i in (3, 17, 5)][::-1]  # other order
    for x, y in zip(a, b):
        assert x.tobytes() == y.tobytes()


def test_generator_is_identical_in_another_process():
    code = ("import hashlib, landscapes as L; "
            "print(hashlib.sha256(b''.join(L.procedural_image(0, i, 16)[0].tobytes() "
            "for i in range(12))).hexdigest())")
    here = hashlib.sha256(b"".join(L.procedural_image(0, i, 16)[0].tobytes() for i in range(12))).hexdigest()
    there = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                           cwd=Path(L.__file__).parent).stdout.strip()
    assert here == there


def test_different_seeds_differ():
    for index in range(len(L.CLASS_NAMES)):
        a, _ = L.procedural_image(0, index, 32)
        b, _ = L.procedural_image(1, index, 32)
        assert np.abs(a.astype(int) - b.astype(int)).mean() > 3


def test_classes_have_distinct_mean_colours():
    # Per-image mean colours inside a class spread by at most ~0.065 per channel, so a mean
    # over 20 images is known to ~0.015 per channel and a difference of two class means to
    # ~0.02 (≈ 0.035 as a 3-D distance). A margin of 0.05 (13 grey levels) therefore asks for
    # clearly separated classes; the closest pair (foggy_valley / green_hills) sits near 0.1.
    means = class_means(seed=0)
    distances = {(L.CLASS_NAMES[a], L.CLASS_NAMES[b]): float(np.linalg.norm(means[a] - means[b]))
                 for a, b in itertools.combinations(range(len(means)), 2)}
    closest = min(distances, key=distances.get)
    assert distances[closest] > 0.05, f"{closest} too alike: {distances[closest]:.3f}"


def test_render_landscape_rejects_unknown_class():
    with pytest.raises(ValueError, match="class_id"):
        L.render_landscape(len(L.CLASS_NAMES), np.random.default_rng(0), 32)


# --------------------------------------------------------------------------------------------
#                              writing to disk and the cache
# --------------------------------------------------------------------------------------------

def test_generated_folder_loads_back_exactly(tmp_path):
    out = L.generate_procedural(tmp_path / "gen", n=23, size=16, seed=4, progress=False)
    marker = json.loads((out / L.DONE_MARKER).read_text())
    assert marker["n"] == 23 and marker["seed"] == 4 and marker["class_names"] == L.CLASS_NAMES
    assert not list(out.rglob("*.tmp"))
    data = L.load_images(out, 16)                                    # DONE.json is not warned about
    assert data.labelled and data.class_names == L.CLASS_NAMES and len(data.labels) == 23
    paths = L.list_images(out)[0]
    for path, image, label in zip(paths, data.images, data.labels):
        expected, class_id = L.procedural_image(4, int(path.stem), 16)
        assert label.item() == class_id and path.parent.name == L.CLASS_NAMES[class_id]
        assert torch.equal(image, torch.from_numpy(expected).permute(2, 0, 1))  # PNG is lossless


def test_images_do_not_depend_on_n(tmp_path):
    small = L.generate_procedural(tmp_path / "small", n=12, size=16, seed=2, progress=False)
    large = L.generate_procedural(tmp_path / "large", n=25, size=16, seed=2, progress=False)
    for path in small.rglob("*.png"):
        assert path.read_bytes() == (large / path.relative_to(small)).read_bytes()


def test_procedural_dataset_is_cached(tmp_path, monkeypatch, capsys):
    calls = []
    real = L.generate_procedural

    def counting(*args, **kwargs):
        calls.append(args)
        return real(*args, **{**kwargs, "progress": False})

    monkeypatch.setattr(L, "generate_procedural", counting)
    first = L.procedural_dataset("train", size=8, n=12, root=tmp_path)
    assert first.name == "landscapes-8px-train-seed0-n12" and len(calls) == 1
    png = next(first.rglob("*.png"))
    stamp = png.stat().st_mtime_ns
    second = L.procedural_dataset("train", size=8, n=12, root=tmp_path)
    assert second == first and len(calls) == 1 and png.stat().st_mtime_ns == stamp
    assert "cached" in capsys.readouterr().out

    test_split = L.procedural_dataset("test", size=8, n=12, root=tmp_path)
    assert test_split.name == "landscapes-8px-test-seed1-n12" and len(calls) == 2
    assert png.read_bytes() != (test_split / png.relative_to(first)).read_bytes()


def test_incomplete_or_stale_folder_is_regenerated(tmp_path, monkeypatch):
    calls = []
    real = L.generate_procedural
    monkeypatch.setattr(L, "generate_procedural",
                        lambda *a, **k: calls.append(a) or real(*a, **{**k, "progress": False}))
    folder = L.procedural_dataset("train", size=8, n=11, root=tmp_path)
    (folder / L.DONE_MARKER).unlink()                                # as if the run was killed
    L.procedural_dataset("train", size=8, n=11, root=tmp_path)
    assert len(calls) == 2 and (folder / L.DONE_MARKER).exists()

    marker = json.loads((folder / L.DONE_MARKER).read_text())
    marker["generator_version"] = -1                                 # made by an older generator
    (folder / L.DONE_MARKER).write_text(json.dumps(marker))
    L.procedural_dataset("train", size=8, n=11, root=tmp_path)
    assert len(calls) == 3


def test_resolve_data(tmp_path, monkeypatch):
    seen = []
    monkeypatch.setattr(L, "procedural_dataset", lambda split, size: seen.append((split, size)) or tmp_path)
    assert L.resolve_data(None, "test", 32) == tmp_path and seen == [("test", 32)]
    expected = messy_flat_folder(tmp_path / "mine")
    # A folder is served through its content split, prepared once at the training size: too small
    # to hold anything out, so "test" is its training side, and too small for scenes: one class.
    monkeypatch.setattr(L, "PHOTO_CACHE", tmp_path / "cache")
    train = L.resolve_data(str(tmp_path / "mine"), "train", 32)
    assert train.is_relative_to(tmp_path / "cache") and train.name == "train"
    assert L.resolve_data(str(tmp_path / "mine"), "test", 32) == train
    prepared = L.load_images(train, 32)
    assert prepared.class_names == [L.FLAT_CLASS_NAME] and len(prepared.images) == expected
    with pytest.raises(ValueError, match="--labels 'kmeans:1'"):
        L.resolve_data(str(tmp_path / "mine"), "train", 32, labels="kmeans:1")
    with pytest.raises(ValueError, match="does not exist"):
        L.resolve_data(str(tmp_path / "missing"), "train", 32)


def test_cli_rejects_bad_input_and_writes_grid(tmp_path):
    def args(**kw):
        return argparse.Namespace(**{"out": None, "n": 10, "size": 32, "seed": 0, "grid": None,
                                      "data": None, "labels": "auto", **kw})

    for bad in (args(n=0, out=tmp_path), args(size=4, out=tmp_path), args()):
        with pytest.raises(SystemExit) as exc:
            L.main(bad)
        assert isinstance(exc.value.code, str) and "\n" not in exc.value.code
    L.main(args(grid=tmp_path / "grid.png", size=8))
    with Image.open(tmp_path / "grid.png") as grid:
        assert grid.width > 200 and grid.height > 200


def test_tile_images_places_image_r_nrow_plus_c_at_block_r_c(tmp_path):
    images = torch.arange(5, dtype=torch.uint8).mul(40).reshape(5, 1, 1, 1).expand(5, 3, 4, 6).contiguous()
    grid = L.tile_images(images, nrow=3)                           # 2 rows × 3 columns, 1 blank
    assert grid.shape == (8, 18, 3) and grid.dtype == torch.uint8
    for i in range(5):
        r, c = divmod(i, 3)
        assert torch.all(grid[4 * r:4 * r + 4, 6 * c:6 * c + 6] == 40 * i)
    assert torch.all(grid[4:, 12:] == 255)                           # padding is white
    floats = L.tile_images(torch.full((2, 3, 4, 4), 1.7), nrow=2)  # model samples overshoot
    assert torch.all(floats == 255)
    L.save_image_grid(torch.zeros(4, 3, 8, 8), tmp_path / "g.png", nrow=2, title="t")
    assert (tmp_path / "g.png").stat().st_size > 0
    with pytest.raises(ValueError, match="shape"):
        L.save_image_grid(torch.zeros(4, 8, 8), tmp_path / "bad.png")


def test_progress_in_a_log_is_plain_lines(capsys):
    """stderr that is not a terminal (nohup, CI, pytest) gets whole lines, no carriage returns:
    the first update at once, the last always."""
    assert list(L.progress_iter(range(5), "drawing x", "img")) == [0, 1, 2, 3, 4]
    err = capsys.readouterr().err
    assert "\r" not in err
    lines = err.splitlines()
    assert lines[0].startswith("drawing x: img 1/5 (20%)") and lines[-1].startswith("drawing x: img 5/5 (100%)")
    assert list(L.progress_iter([1, 2], "quiet", "img", enabled=False)) == [1, 2]
    assert capsys.readouterr().err == ""
