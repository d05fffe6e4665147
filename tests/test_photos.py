"""Tests for a folder of photographs (landscapes.py, section A2): the split by content, k-means
scene labels, and --labels kmeans:K end to end.  Each test makes its own tiny folder with
planted copies; the ones that read the Kaggle set skip where ../shared is absent.

Run: python -m pytest tests/test_photos.py -q
"""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
import landscapes as L  # noqa: E402

KAGGLE = ROOT.parent / "shared" / "data" / "landscape-pictures"


@pytest.fixture(autouse=True)
def own_cache(tmp_path, monkeypatch):
    """Every test caches its splits under tmp_path, never in the repository's data/."""
    monkeypatch.setattr(L, "PHOTO_CACHE", tmp_path / "cache")
    monkeypatch.setenv("DIT_PHOTO_CACHE", str(tmp_path / "cache"))


def scene(rng: np.random.Generator, kind: int, size=(48, 40)) -> Image.Image:
    """A random picture: a 4 × 4 grid of colours around the kind's tint, smoothly enlarged, plus
    noise; two draws differ by far more than NEAR_COPY_RMS."""
    tint = np.array([(70, 130, 220), (240, 140, 60), (40, 140, 50)][kind], np.float32)
    cells = np.clip(tint + rng.normal(0, 70, (4, 4, 3)), 0, 255).astype(np.uint8)
    im = np.asarray(Image.fromarray(cells).resize(size, Image.Resampling.BICUBIC), np.float32)
    return Image.fromarray(np.clip(im + rng.normal(0, 8, im.shape), 0, 255).astype(np.uint8))


def photo_folder(folder: Path, n: int = 220) -> dict:
    """n distinct pictures, plus a byte copy of photo 3, a re-encoded copy of photo 5 at
    another size, and photo 7 at another size (near copies).  Returns the planted pairs."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        scene(rng, i % 3).save(folder / f"p{i:03d}.png")
    (folder / "copy_of_3.png").write_bytes((folder / "p003.png").read_bytes())
    Image.open(folder / "p005.png").save(folder / "copy_of_5.jpg", quality=98)
    Image.open(folder / "p007.png").resize((96, 80), Image.Resampling.BICUBIC).save(folder / "big_7.png")
    return {"copy_of_3.png": "p003.png", "copy_of_5.jpg": "p005.png", "big_7.png": "p007.png"}


def test_split_keeps_copies_on_one_side_and_is_stable(tmp_path):
    folder = tmp_path / "photos"
    pairs = photo_folder(folder)
    s = L.photo_split(folder, progress=False)
    name = {p.name: i for i, p in enumerate(s.paths)}
    for a, b in pairs.items():
        assert s.groups[name[a]] == s.groups[name[b]], f"{a} and {b} should be one group"
        assert s.test[name[a]] == s.test[name[b]], f"{a} and {b} landed on both sides"
    # The same picture at another size or compression is still one picture (thumbnails within
    # EXACT_COPY_RMS): one of each pair is kept, the first in file order.
    for a, b in pairs.items():
        assert s.keep[name[a]] != s.keep[name[b]]
    assert s.summary()["copies_dropped"] == 3
    # Distinct pictures stay apart: only the planted groups have more than one member.
    assert (np.bincount(s.groups) > 1).sum() == 3 and s.summary()["groups"] == 220
    # Deterministic: recomputed from scratch, and read back from the cache, it is the same split.
    (s.cache / "split.json").unlink()
    again, cached = L.photo_split(folder, progress=False), L.photo_split(folder, progress=False)
    for other in (again, cached):
        assert np.array_equal(other.test, s.test) and np.array_equal(other.keep, s.keep)
    assert 0 < s.test.sum() < len(s.paths) / 2                          # ≈ 12% held out


def test_held_out_side_depends_on_content_not_names(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    photo_folder(a)
    b.mkdir()
    for p in sorted(a.iterdir()):                                      # same bytes, other names
        (b / f"renamed_{p.name}").write_bytes(p.read_bytes())
    sa, sb = L.photo_split(a, progress=False), L.photo_split(b, progress=False)
    assert np.array_equal(sa.test, sb.test)


def test_kmeans_recovers_planted_clusters():
    g = torch.Generator().manual_seed(1)
    centres = torch.randn(5, 16, generator=g) * 6
    truth = torch.arange(400) % 5
    x = centres[truth] + torch.randn(400, 16, generator=g)
    labels, found = L.kmeans(x, 5, seed=0)
    # One-to-one up to a renaming: every true cluster maps onto exactly one found cluster.
    pairs = {(int(a), int(b)) for a, b in zip(truth, labels)}
    assert len(pairs) == 5 and len({b for _, b in pairs}) == 5
    # Numbered largest first, and each centre is its cluster's mean.
    sizes = torch.bincount(labels)
    assert torch.all(sizes[:-1] >= sizes[1:])
    for c in range(5):
        assert torch.allclose(found[c], x[labels == c].double().mean(0), atol=1e-9)


def test_kmeans_refuses_more_clusters_than_points():
    with pytest.raises(ValueError, match="1 ≤ k ≤ N"):
        L.kmeans(torch.randn(3, 2), 4)


@pytest.mark.parametrize("spec, k", [("auto", None), ("none", 0), ("kmeans:7", 7)])
def test_parse_labels(spec, k):
    assert L.parse_labels(spec) == k


@pytest.mark.parametrize("spec", ["kmeans:1", "kmeans:x", "scenes", "kmeans:"])
def test_parse_labels_refuses_bad_specs(spec):
    with pytest.raises(ValueError, match="kmeans:K"):
        L.parse_labels(spec)


def test_labels_kmeans_trains_and_samples_end_to_end(tmp_path):
    """--labels kmeans:3 on a flat folder: 3 scene classes, a model with 3 classes, a grid.  With
    fewer than SMALL_FOLDER images nothing is held out, and the run says so."""
    folder = tmp_path / "photos"
    photo_folder(folder, n=40)
    out = tmp_path / "run"
    cmd = [sys.executable, str(ROOT / "train_one_epoch.py"), "--data", str(folder), "--labels", "kmeans:3",
           "--image-size", "16", "--patch", "4", "--depth", "1", "--hidden", "32", "--heads", "2",
           "--batch-size", "8", "--max-steps", "3", "--sample-steps", "2", "--out", str(out),
           "--device", "cpu", "--precision", "fp32"]
    subprocess.run(cmd + ["--fid", "8"], check=True, cwd=ROOT, capture_output=True, text=True)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["config"]["model"]["num_classes"] == 3
    split = metrics["data"]["split"]
    assert split["files"] == 43 and split["copies_dropped"] == 3
    assert split["train"] == 40 and split["test"] == 0
    assert metrics["fid_test_folder"] == metrics["data"]["folder"]      # its own test set
    assert (out / "samples.png").is_file()
    # The training folder holds the training side only, in scene0 … scene2, largest first.
    train = Path(metrics["data"]["folder"])
    counts = [len(list((train / f"scene{c}").glob("*.png"))) for c in range(3)]
    assert sum(counts) == split["train"] and counts == sorted(counts, reverse=True)


def test_labelled_folder_keeps_its_own_classes(tmp_path):
    folder = tmp_path / "labelled"
    rng = np.random.default_rng(2)
    for c in ("hills", "sea"):
        (folder / c).mkdir(parents=True)
        for i in range(110):
            scene(rng, 0 if c == "hills" else 2).save(folder / c / f"{i}.png")
    train = L.resolve_data(folder, "train", 16)
    test = L.resolve_data(folder, "test", 16)
    assert {p.name for p in train.iterdir() if p.is_dir()} == {"hills", "sea"}
    names = {p.name for p in train.rglob("*.png")} | {p.name for p in test.rglob("*.png")}
    assert len(names) == 220 and not ({p.name for p in train.rglob("*.png")} & {p.name for p in test.rglob("*.png")})


@pytest.mark.skipif(not KAGGLE.is_dir(), reason="needs ../shared/data/landscape-pictures")
def test_kaggle_split_by_content():
    """The assignment's set: 176 byte copies and 38 more with the same pixels are dropped, and
    no group of copies or near-copies straddles the split."""
    s = L.photo_split(KAGGLE, progress=False)
    summary = s.summary()
    assert summary["files"] == 4319 and summary["copies_dropped"] == 214
    for g in set(s.groups.tolist()):
        assert len(set(s.test[s.groups == g].tolist())) == 1
    assert 0.10 < summary["test"] / (summary["train"] + summary["test"]) < 0.15


def test_photo_labels_keep_the_reference_mix_with_a_grid_first():
    import cfg

    ref = torch.tensor([2] * 15 + [0] * 30 + [1] * 12)
    y = cfg.photo_labels(ref, 3)
    assert torch.equal(torch.bincount(y), torch.bincount(ref))              # the same scene mix
    assert y[:30].tolist() == [0] * 10 + [1] * 10 + [2] * 10                 # one scene per grid row
    with pytest.raises(SystemExit, match="holds 5 images of scene 1, fewer than a grid row of 10"):
        cfg.photo_labels(torch.tensor([0] * 20 + [1] * 5), 2)


def test_guidance_study_on_photographs_measures_the_fit_in_their_scene_mix(tmp_path, monkeypatch):
    """cfg.py on a model of k-means scenes: the sets are drawn in the scene mix of N training
    photographs and scored N against N, real vs real beside them (fid.Reference).  The Inception
    network is ColourStats throughout (k-means included), the model a random micro DiT."""
    import cfg
    import fid
    from dit import DiT
    from test_cfg import ColourStats

    monkeypatch.setattr(fid, "load_inception", lambda *a, **k: ColourStats())
    folder = tmp_path / "photos"
    photo_folder(folder, n=120)
    model = DiT(input_size=8, patch_size=2, in_channels=3, hidden_size=32, depth=2, num_heads=2, num_classes=3)
    path = tmp_path / "model.pt"
    torch.save(dict(config=dict(model=model.config, diffusion=dict(T=1000, schedule="linear")),
                    ema=model.state_dict(), class_names=[f"scene{c}" for c in range(3)]), path)
    out = tmp_path / "study"
    args = cfg.parse_args(["--quick", "--checkpoint", str(path), "--data", str(folder), "--labels", "kmeans:3",
                           "--image-size", "8", "--n", "45", "--w", "1", "--redraw-w", "--check-w", "--out", str(out)])
    cfg.main(args)
    ref_images, ref_labels, floor_images, _ = L.fid_reference(folder, 8, 45, "kmeans:3")
    assert args.photos and torch.equal(torch.bincount(args.y_all), torch.bincount(ref_labels))
    done = json.loads((out / "results.json").read_text())
    pair = fid.Reference(ref_images, floor_images, ColourStats())
    assert done["real_n45"]["fid"] == pytest.approx(pair.floor["fid"])       # N other photographs
    images = cfg.load_set(out / "samples" / "w1_steps3_seed0_n45", 45)
    assert done["w1_steps3_seed0_n45"]["fid"] == pytest.approx(pair.score_images(images)["fid"])
    assert "training photographs" in (out / "results.md").read_text()


def test_a_folder_without_classes_of_its_own_is_told_apart(tmp_path):
    flat, labelled = tmp_path / "flat", tmp_path / "labelled"
    photo_folder(flat, n=8)
    (labelled / "sea").mkdir(parents=True)
    scene(np.random.default_rng(1), 2).save(labelled / "sea" / "a.png")
    assert L.without_own_classes(flat) and L.without_own_classes(labelled, "kmeans:2")
    assert L.without_own_classes(labelled, "none")
    assert not L.without_own_classes(labelled) and not L.without_own_classes(None)
