"""cfg.py: the guidance rule in closed form, the batched guided pass against two separate passes,
the guided sampler at w = 1 against the plain conditional sampler, the study end to end
(--quick, resumed), and bad input as one-line errors."""

import csv
import json

import pytest
import torch

import cfg
from diffusers_dit import DiffusersDiT
from dit import DiT, TrainedDiT, ddim_sample
from forward_process import alpha_bar_from_betas, make_betas


def random_dit(**kw) -> DiT:
    """A micro DiT with every weight random: adaLN-Zero's init would make ε̂ ≡ 0 and every test
    of the mix trivially pass."""
    torch.manual_seed(0)
    model = DiT(input_size=8, patch_size=2, in_channels=3, hidden_size=32, depth=2, num_heads=2,
                num_classes=10, **kw).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.1)
    return model


X, T, Y = torch.randn(4, 3, 8, 8), torch.tensor([0, 10, 500, 999]), torch.tensor([0, 3, 9, 3])


@torch.no_grad()
def test_guide_is_the_unconditional_plus_w_times_the_difference():
    """w = 0 gives ε̂_∅ and w = 1 gives ε̂_y exactly; ε̃ is affine in w with slope ε̂_y − ε̂_∅."""
    e_y, e_0 = torch.randn(2, 3, 4, 4), torch.randn(2, 3, 4, 4)
    assert torch.equal(cfg.guide(e_y, e_0, 0.0, 3), e_0)
    assert torch.equal(cfg.guide(e_y, e_0, 1.0, 3), e_y)
    g2, g4, g6 = (cfg.guide(e_y, e_0, w, 3) for w in (2.0, 4.0, 6.0))
    torch.testing.assert_close(g4 - g2, g6 - g4)                       # linear in w
    torch.testing.assert_close(g4 - g2, 2 * (e_y - e_0))
    # Ho & Salimans' form with their w′ = w − 1: (1 + w′)·ε̂_y − w′·ε̂_∅
    torch.testing.assert_close(g4, (1 + 3) * e_y - 3 * e_0)


def test_learned_variance_channels_pass_through_from_the_conditional_output():
    out_y, out_0 = torch.randn(2, 6, 4, 4), torch.randn(2, 6, 4, 4)
    mixed = cfg.guide(out_y, out_0, 4.0, eps_channels=3)
    assert torch.equal(mixed[:, 3:], out_y[:, 3:])                    # Σ: untouched
    torch.testing.assert_close(mixed[:, :3], out_0[:, :3] + 4 * (out_y[:, :3] - out_0[:, :3]))


@pytest.mark.parametrize("learn_sigma", [False, True])
@torch.no_grad()
def test_one_doubled_pass_equals_two_separate_passes(learn_sigma):
    """The guided predictor runs [x, x] with labels [y, ∅] once; ∅ is row num_classes (10)."""
    model = random_dit(learn_sigma=learn_sigma)
    assert model.null_label == 10 and model.y_embedder.embedding_table.num_embeddings == 11
    eps_y, eps_0 = model.eps(X, T, Y), model.eps(X, T, torch.full_like(Y, 10))
    assert (eps_y - eps_0).abs().max() > 1e-3                         # the label matters
    for w in (0.0, 1.0, 1.5, 4.0):
        torch.testing.assert_close(cfg.guided_eps_fn(model, Y, w)(X, T), eps_0 + w * (eps_y - eps_0),
                                   rtol=1e-5, atol=1e-5)
    assert torch.equal(cfg.guided_eps_fn(model, Y, 1.0)(X, T), eps_y)   # one pass, exactly


def test_w_0_and_w_1_cost_one_forward_pass_and_guided_one_doubled_pass():
    model = random_dit()
    batches = []
    model.register_forward_hook(lambda m, inputs, out: batches.append(len(inputs[0])))
    with torch.no_grad():
        for w in (0.0, 1.0, 3.0):
            cfg.guided_eps_fn(model, Y, w)(X, T)
    assert batches == [4, 4, 8]


@torch.no_grad()
def test_guided_sampler_at_w_1_is_the_plain_conditional_sampler(checkpoint_file):
    """cfg.sample at w = 1 ends where DDIM with the conditional ε̂ alone ends, and where
    train_one_epoch's sampler (samples.png and --fid, unguided) ends from the same x_T."""
    import train_one_epoch

    model = TrainedDiT(checkpoint_file, torch.device("cpu"))
    plain = list(ddim_sample(lambda x, t: model.net.eps(x, t, Y), X, model.alpha_bar, 5,
                             spacing="trailing", clip_x0=1.0))
    assert torch.equal(cfg.sample(model, Y, X, 1.0, 5), plain[-1][2])
    assert (cfg.sample(model, Y, X, 4.0, 5) - plain[-1][2]).abs().max() > 1e-3      # and w matters
    x_T = torch.randn(X.shape, generator=torch.Generator().manual_seed(7))
    theirs = train_one_epoch.sample_images(model.net, model.alpha_bar, Y, torch.device("cpu"), "fp32", 5,
                                           torch.Generator().manual_seed(7))
    assert torch.equal(cfg.sample(model, Y, x_T, 1.0, 5), theirs)


def test_bad_scales_and_an_untrained_null_label_are_one_line_errors():
    for w in (-1.0, float("inf"), float("nan")):
        with pytest.raises(ValueError, match="use a finite w ≥ 0"):
            cfg.guided_eps_fn(random_dit(), Y, w)
    one_class = DiT(input_size=8, patch_size=2, in_channels=3, hidden_size=32, depth=1, num_heads=2,
                    num_classes=1, class_dropout_prob=0.1)
    with pytest.raises(ValueError, match="knows one class .* nothing to guide towards"):
        cfg.guided_eps_fn(one_class, torch.zeros(4, dtype=torch.long), 4.0)
    cfg.guided_eps_fn(one_class, torch.zeros(4, dtype=torch.long), 1.0)
    unconditional = random_dit(class_dropout_prob=0.0)
    with pytest.raises(ValueError, match="trained without label dropout"):
        cfg.guided_eps_fn(unconditional, Y, 4.0)
    cfg.guided_eps_fn(unconditional, Y, 1.0)                           # w = 1 needs no ∅


def test_diffusers_dit_guides_its_noise_channels_only(hf_folder):
    """DiT-XL/2's adapter (tiny random stand-in): ε̃ from its first 4 of 8 output channels."""
    model = DiffusersDiT(str(hf_folder), torch.device("cpu"))
    x, t, y = torch.randn(2, 4, 8, 8), torch.tensor([10, 900]), torch.tensor([1, 2])
    with torch.no_grad():
        out_y, out_0 = model(x, t, y), model(x, t, torch.full_like(y, model.null_label))
        eps = cfg.guided_eps_fn(model, y, 4.0)(x, t)
    torch.testing.assert_close(eps, out_0[:, :4] + 4 * (out_y[:, :4] - out_0[:, :4]), rtol=1e-4, atol=1e-5)


def test_cli_errors_are_one_line(tmp_path, checkpoint_file):
    with pytest.raises(SystemExit, match="--w: guidance scale w = -1"):
        cfg.main(cfg.parse_args(["--checkpoint", str(checkpoint_file), "--w", "-1", "--out", str(tmp_path)]))
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(SystemExit, match="--checkpoint: .*junk.pt is not a checkpoint"):
        cfg.main(cfg.parse_args(["--checkpoint", str(tmp_path / "junk.pt"), "--out", str(tmp_path)]))
    with pytest.raises(SystemExit, match="precision and recall"):
        cfg.parse_args(["--n", "3"])
    ckpt = ["--checkpoint", str(checkpoint_file), "--out", str(tmp_path)]
    with pytest.raises(SystemExit, match="--w: guidance scale w = inf"):
        cfg.main(cfg.parse_args(ckpt + ["--w", "inf"]))
    with pytest.raises(SystemExit, match="--steps 2000: the model was trained with T = 1000"):
        cfg.main(cfg.parse_args(ckpt + ["--steps", "2000"]))
    with pytest.raises(SystemExit, match="--data: .*nowhere"):
        cfg.main(cfg.parse_args(ckpt + ["--data", str(tmp_path / "nowhere"), "--w", "1"]))


def test_a_model_of_other_images_without_their_folder_draws_grids_only(tmp_path, checkpoint_file, capsys):
    """The photograph model in a clone without the photographs (`cfg.py --checkpoint <it> --w 0 4`):
    the procedural landscapes are no reference for its classes, so it draws the grids, says that FID
    needs --data, and writes into a folder of its own, never into the shipped model's report/cfg."""
    assert cfg.parse_args([]).out == "report/cfg"
    assert cfg.parse_args(["--checkpoint", str(checkpoint_file)]).out == "runs/cfg_model"
    out = tmp_path / "study"
    cfg.main(cfg.parse_args(["--quick", "--checkpoint", str(checkpoint_file), "--w", "0", "4", "--redraw-w",
                             "--check-w", "--out", str(out)]))
    assert "grids only — pass --data DIR for FID" in capsys.readouterr().out
    rows = [r for r in csv.DictReader(open(out / "results.csv")) if r["kind"] == "generated"]
    assert [float(r["w"]) for r in rows] == [0, 4] and all(not r.get("fid") for r in rows)
    assert (out / "grid_w4_steps3_seed0_n20.png").exists()


def test_a_scale_the_model_cannot_do_is_named_by_the_flag_it_came_from(tmp_path):
    """A model trained without label dropout can sample only w = 1: the error names the flag and
    the scale that asked for more, whether the user typed it or it is a flag's default."""
    model = random_dit(class_dropout_prob=0.0)
    path = tmp_path / "nodrop.pt"
    torch.save(dict(config=dict(model=model.config, diffusion=dict(T=1000, schedule="linear")),
                    ema=model.state_dict(), class_names=[f"c{i}" for i in range(10)]), path)
    argv = ["--checkpoint", str(path), "--out", str(tmp_path), "--no-metrics"]
    with pytest.raises(SystemExit, match="^--redraw-w: guidance scale w = 1.5 needs"):
        cfg.main(cfg.parse_args(argv + ["--w", "1"]))
    with pytest.raises(SystemExit, match="^--explain: guidance scale w = 0 needs"):
        cfg.main(cfg.parse_args(argv + ["--explain"]))


def test_metrics_of_a_diffusers_model_need_its_own_real_images(tmp_path, hf_folder):
    with pytest.raises(SystemExit, match="--model: the metrics need real images of its classes"):
        cfg.main(cfg.parse_args(["--model", str(hf_folder), "--w", "1", "--out", str(tmp_path)]))


def test_the_study_and_explain_run_through_a_diffusers_dit(tmp_path, hf_folder, monkeypatch):
    """--model with the tiny random diffusers DiT and VAE, offline: the study draws its grids, and
    --explain leaves latent x̂0 unclamped (latents have no fixed range: clip_x0 is None)."""
    out = tmp_path / "hf_study"
    cfg.main(cfg.parse_args(["--quick", "--model", str(hf_folder), "--no-metrics", "--out", str(out)]))
    rows = [r for r in csv.DictReader(open(out / "results.csv")) if r["kind"] == "generated"]
    assert len(rows) == 5 and (out / "grid_w4_steps3_seed0_n20.png").exists()
    clips = []
    real_predict_x0 = cfg.predict_x0
    monkeypatch.setattr(cfg, "predict_x0", lambda *a: clips.append(a[3]) or real_predict_x0(*a))
    cfg.main(cfg.parse_args(["--explain", "--model", str(hf_folder), "--out", str(out)]))
    assert clips and set(clips) == {None}
    assert (out / "explain.png").exists()


@pytest.fixture(scope="module")
def checkpoint_file(tmp_path_factory):
    """An export-like file of a random micro DiT, as train_one_epoch.py writes it."""
    model = random_dit()
    path = tmp_path_factory.mktemp("ckpt") / "model.pt"
    torch.save(dict(config=dict(model=model.config, diffusion=dict(T=1000, schedule="linear")),
                    ema=model.state_dict(), class_names=[f"c{i}" for i in range(10)]), path)
    return path


class ColourStats(torch.nn.Module):
    """A stand-in for the Inception network (seconds instead of minutes): an image's features
    are its per-channel mean and standard deviation, (B, 3, H, W) uint8 → (B, 6)."""
    weights_name = "colour-stats"

    def __init__(self):
        super().__init__()
        self.unused = torch.nn.Parameter(torch.zeros(1))     # fid.py finds the device from it

    def forward(self, pixels):
        x = pixels.double()
        return torch.cat([x.mean(dim=(2, 3)), x.std(dim=(2, 3))], dim=1)


def test_quick_study_end_to_end_resumes_and_keeps_the_same_noise_for_every_w(tmp_path, checkpoint_file,
                                                                           real_folder, monkeypatch):
    """--quick through every stage (sampling, features, FID, precision/recall, tables, figures),
    with the Inception network replaced by ColourStats so that it takes seconds."""
    import fid

    monkeypatch.setattr(fid, "load_inception", lambda *a, **k: ColourStats())
    out = tmp_path / "study"
    argv = ["--quick", "--checkpoint", str(checkpoint_file), "--data", str(real_folder), "--image-size", "8",
            "--n", "20", "--out", str(out)]
    cfg.main(cfg.parse_args(argv))
    table = list(csv.DictReader(open(out / "results.csv")))
    rows = [r for r in table if r["kind"] == "generated"]
    assert [(r["kind"], r["n"]) for r in table if r not in rows] == [("real-vs-real", "20")]
    assert {(float(r["w"]), int(r["steps"]), int(r["seed"])) for r in rows} == {
        (0, 3, 0), (1, 3, 0), (4, 3, 0), (4, 3, 1), (1, 6, 0)}
    for r in rows:
        assert float(r["w_ho_salimans"]) == float(r["w"]) - 1
        assert 0 <= float(r["precision"]) <= 1 and 0 <= float(r["recall"]) <= 1 and float(r["fid"]) > 0
    for name in ("results.md", "metrics_vs_w.png", "grids.png", "grid_w0_steps3_seed0_n20.png",
                 "grid_w4_steps3_seed0_n20.png", "grid_w4_steps3_seed1_n20.png", "grid_w1_steps6_seed0_n20.png"):
        assert (out / name).exists(), name
    assert all(cfg.load_set(out / "samples" / tag, 20).shape == (20, 3, 8, 8)
               for tag in ("w0_steps3_seed0_n20", "w4_steps3_seed0_n20"))
    # Resume: a deleted batch is redrawn identically, finished sets are skipped.
    first = (out / "samples" / "w4_steps3_seed0_n20" / "batch_000010.npy")
    before = first.read_bytes()
    first.unlink()
    results = json.loads((out / "results.json").read_text())
    del results["w4_steps3_seed0_n20"]
    (out / "results.json").write_text(json.dumps(results))
    cfg.main(cfg.parse_args(argv))
    assert first.read_bytes() == before
    # --tables-only rewrites the tables from results.json alone, samples nothing.
    table = (out / "results.md").read_text()
    (out / "results.md").unlink()
    (out / "samples" / "w4_steps3_seed0_n20" / "batch_000000.npy").unlink()
    cfg.main(cfg.parse_args(argv + ["--tables-only"]))
    assert (out / "results.md").read_text() == table                  # it names the study's command
    assert not (out / "samples" / "w4_steps3_seed0_n20" / "batch_000000.npy").exists()
    # Every set finished and this N's real-vs-real row there: the study needs no network at all.
    monkeypatch.setattr(fid, "load_inception", lambda *a, **k: pytest.fail("features recomputed"))
    cfg.main(cfg.parse_args(argv))
    assert (out / "results.md").read_text() == table


def test_every_w_starts_from_the_same_noise(tmp_path):
    """A model whose label table has one row repeated cannot tell y from ∅, so ε̃ = ε̂ at every w:
    its sets at w = 0, 1 and 4 must then be the same images, and the second draw (seed 1) others."""
    model = random_dit()
    with torch.no_grad():
        model.y_embedder.embedding_table.weight[:] = model.y_embedder.embedding_table.weight[0]
    path = tmp_path / "label_blind.pt"
    torch.save(dict(config=dict(model=model.config, diffusion=dict(T=1000, schedule="linear")),
                    ema=model.state_dict(), class_names=[f"c{i}" for i in range(10)]), path)
    out = tmp_path / "study"
    cfg.main(cfg.parse_args(["--quick", "--checkpoint", str(path), "--no-metrics", "--out", str(out)]))
    sets = {tag: cfg.load_set(out / "samples" / tag, 20).int()
            for tag in ("w0_steps3_seed0_n20", "w1_steps3_seed0_n20", "w4_steps3_seed0_n20", "w4_steps3_seed1_n20")}
    # One pass (w = 0, 1) or the doubled one (w = 4) may round the last bit differently: ≤ 1 level.
    assert (sets["w0_steps3_seed0_n20"] - sets["w4_steps3_seed0_n20"]).abs().max() <= 1
    assert (sets["w1_steps3_seed0_n20"] - sets["w4_steps3_seed0_n20"]).abs().max() <= 1
    assert (sets["w4_steps3_seed1_n20"] - sets["w4_steps3_seed0_n20"]).abs().float().mean() > 10


def test_a_set_is_finished_in_the_batches_it_was_begun_in(tmp_path, checkpoint_file):
    """Batch files are named by their first image: finishing a set in batches of another size
    would duplicate or drop images, so it is refused; a finished set must hold exactly N."""
    out = tmp_path / "study"
    argv = ["--checkpoint", str(checkpoint_file), "--no-metrics", "--no-compile", "--out", str(out),
            "--w", "1", "--redraw-w", "--check-w", "--n", "10", "--steps", "2"]
    cfg.main(cfg.parse_args(argv + ["--batch-size", "5"]))
    folder = out / "samples" / "w1_steps2_seed0_n10"
    (folder / "batch_000005.npy").unlink()
    (out / "results.json").unlink()
    with pytest.raises(SystemExit, match="begun in batches of 5, not 4; finish it with --batch-size 5"):
        cfg.main(cfg.parse_args(argv + ["--batch-size", "4"]))
    cfg.main(cfg.parse_args(argv + ["--batch-size", "5"]))
    assert len(cfg.load_set(folder, 10)) == 10
    with pytest.raises(SystemExit, match="holds 10 images, not 12"):
        cfg.load_set(folder, 12)


def _row(w, n, command, dtype="bf16", seed=0, fid_=30.0):
    return dict(kind="generated", w=w, w_ho_salimans=w - 1, n=n, steps=3, seed=seed, seconds=1.0, dtype=dtype,
                source="model.pt", machine="cpu (test)", command=command, fid=fid_ + w, precision=0.5, recall=0.5, diversity=1.0)


def test_results_table_gives_each_set_the_n_dtype_and_command_it_was_drawn_with(tmp_path):
    """Two calls into one --out, at two N and in two dtypes: every row keeps its own, the real
    row of each N is listed, and the reading reads only this call's N."""
    done = {"a": _row(1, 20, "python cfg.py --n 20"), "b": _row(4, 20, "python cfg.py --n 20"),
            "c": _row(1, 40, "python cfg.py --n 40 --precision fp32", dtype="fp32", fid_=10.0),
            "d": _row(4, 40, "python cfg.py --n 40 --precision fp32", dtype="fp32", fid_=10.0),
            "real_n20": dict(kind="real-vs-real", n=20, fid=5.0, precision=0.9, recall=0.9, diversity=1.0),
            "real_n40": dict(kind="real-vs-real", n=40, fid=3.0, precision=0.9, recall=0.9, diversity=1.0)}
    args = cfg.parse_args(["--n", "20", "--steps", "3", "--out", str(tmp_path)])
    args.source = "model.pt"
    table = cfg.results_markdown(done, args)
    assert "| 1 | 0 | 20 | 3 | 0 | 31.000 | 0.500 | 0.500 | 1.000 | bf16 | 1 | 1 |" in table
    assert "| 4 | 3 | 40 | 3 | 0 | 14.000 | 0.500 | 0.500 | 1.000 | fp32 | 1 | 2 |" in table
    assert "| real vs real | | 20 | | | 5.000 |" in table and "| real vs real | | 40 | | | 3.000 |" in table
    assert "1. `python cfg.py --n 20` on cpu (test)" in table
    assert "2. `python cfg.py --n 40 --precision fp32` on cpu (test)" in table
    reading = table.split("## Reading")[1]
    assert "Lowest FID 31.00 at w = 1" in reading and "FID 5.00" in reading      # N = 20's sets and floor


def test_an_out_folder_of_another_model_is_refused(tmp_path, checkpoint_file):
    """A set's tag does not name the model, so resuming into another model's study would skip
    its finished sets as if they were this model's."""
    other = dict(_row(1, 20, "python cfg.py"), source="other.pt", model="other.pt sha256:0123456789ab")
    (tmp_path / "results.json").write_text(json.dumps({"w1_steps3_seed0_n20": other}))
    with pytest.raises(SystemExit, match="holds a study of other.pt sha256:0123456789ab, not model.pt sha256:"):
        cfg.main(cfg.parse_args(["--quick", "--checkpoint", str(checkpoint_file), "--no-metrics",
                                 "--out", str(tmp_path)]))


def test_a_set_keeps_the_dtype_and_command_it_was_begun_with(tmp_path, checkpoint_file, real_folder, monkeypatch):
    """Drawn without metrics by one call and measured by another, a set keeps the first call's
    command; a set in progress cannot be finished in another dtype."""
    import fid

    monkeypatch.setattr(fid, "load_inception", lambda *a, **k: ColourStats())
    out = tmp_path / "study"
    argv = ["--quick", "--checkpoint", str(checkpoint_file), "--data", str(real_folder), "--image-size", "8",
            "--out", str(out), "--precision", "fp32"]
    cfg.main(cfg.parse_args(argv + ["--no-metrics"]))
    cfg.main(cfg.parse_args(argv))
    rows = json.loads((out / "results.json").read_text())
    first = "python cfg.py " + " ".join(argv + ["--no-metrics"])
    assert {r["command"] for r in rows.values() if r["kind"] == "generated"} == {first}
    assert {r["machine"] for r in rows.values() if r["kind"] == "generated"} == {cfg.describe_machine(torch.device("cpu"))}
    assert all("fid" in r for r in rows.values())
    del rows["w4_steps3_seed0_n20"]
    (out / "results.json").write_text(json.dumps(rows))
    (out / "samples" / "w4_steps3_seed0_n20" / "batch_000010.npy").unlink()
    with pytest.raises(SystemExit, match="begun with .* in fp32; finish it with those"):
        cfg.main(cfg.parse_args(argv[:-1] + ["bf16"]))


def test_labels_are_class_balanced_with_one_class_per_grid_row():
    y = cfg.study_labels(1000, list(range(10)))
    assert torch.bincount(y).tolist() == [100] * 10
    assert y[:100].reshape(10, 10).unique(dim=1).flatten().tolist() == list(range(10))   # row r: class r
    assert cfg.study_labels(20, [88, 207]).tolist()[:20] == [88] * 10 + [207] * 10
    y3 = cfg.study_labels(300, [5, 6, 7])                  # 3 classes: balanced at every 30 images
    assert torch.bincount(y3)[5:].tolist() == [100] * 3
    assert y3[:30].tolist() == [5] * 10 + [6] * 10 + [7] * 10 and y3[30:40].tolist() == [5] * 10


def test_precision_and_recall_are_measured_against_the_real_images_of_the_classes_drawn(
        tmp_path, checkpoint_file, real_folder, monkeypatch):
    """With --classes 2 7 the real images of the reference are classes 2 and 7 alone, in the
    sets' counts, and the FID statistics are theirs."""
    import fid

    monkeypatch.setattr(fid, "load_inception", lambda *a, **k: ColourStats())
    args = cfg.parse_args(["--checkpoint", str(checkpoint_file), "--data", str(real_folder), "--image-size", "8",
                           "--n", "20", "--classes", "2", "7", "--out", str(tmp_path)])
    per_class = fid.folder_class_features(real_folder, ColourStats(), cache_dir=None, progress=False)
    args.photos, args.y_all = False, cfg.study_labels(args.n, args.classes)     # as cfg.main sets them
    ref = cfg.Reference(args, ColourStats(), [f"c{i}" for i in range(10)])
    np = pytest.importorskip("numpy")
    assert np.array_equal(ref.feats, np.concatenate([per_class["c2"][:10], per_class["c7"][:10]]))
    mu, _ = fid.feature_statistics(np.concatenate([per_class["c2"], per_class["c7"]]))
    assert np.allclose(ref.mu, mu)


def test_diversity_in_closed_form():
    """Two classes of two points each at distances 3 and 5: mean within-class distance 4."""
    import numpy as np

    feats = np.array([[0.0, 0], [3, 0], [10, 0], [10, 5]])
    assert cfg.diversity(feats, np.array([0, 0, 1, 1])) == pytest.approx(4.0)


def test_explain_prints_both_predictions_and_writes_the_figure(tmp_path, checkpoint_file, capsys):
    cfg.main(cfg.parse_args(["--explain", "--checkpoint", str(checkpoint_file), "--out", str(tmp_path)]))
    printed = capsys.readouterr().out
    for t in ("t = 899", "t = 499", "t = 99"):
        assert t in printed
    assert "cos(ε̂_y, ε̂_∅)" in printed and "ε̃(w=4)" in printed
    # Each pixel row: ε̂_y, ε̂_∅, their difference, then ε̃ at w = 0, 1, 4 from the rule itself.
    rows = [[float(v) for v in line.split(")")[1].split()] for line in printed.splitlines()
            if line.startswith("  (")]
    assert len(rows) == 3                                               # one pixel at each of 3 t
    for e_y, e_0, diff, w0, w1, w4 in rows:
        assert (w0, w1) == (e_0, e_y) and w4 == pytest.approx(e_0 + 4 * diff, abs=3e-4)
    assert (tmp_path / "explain.png").exists()


def test_explicit_flags_win_over_quick():
    """--quick fills in only what the command line left unset: an explicit --w stays, so a bad
    one is still refused."""
    args = cfg.parse_args(["--quick", "--w", "2", "--n", "30"])
    assert args.w == [2.0] and args.n == 30 and args.steps == 3 and args.no_compile
    with pytest.raises(SystemExit, match="w ≥ 0"):
        cfg.main(cfg.parse_args(["--quick", "--w", "-1", "--no-metrics", "--out", "/nonexistent"]))


def test_guidance_interval_guides_only_inside_it():
    """Inside (σ_lo, σ_hi] ε̃ is the guided mix; outside it is ε̂_y exactly (w = 1)."""
    from forward_process import alpha_bar_from_betas, make_betas

    model = random_dit()
    model.alpha_bar = alpha_bar_from_betas(make_betas("linear", 1000))
    sigma = lambda t: cfg.sigma_of(model.alpha_bar[t].item())
    lo, hi = sigma(100), sigma(600)
    fn = cfg.guided_eps_fn(model, Y, 4.0, interval=(lo, hi))
    with torch.no_grad():
        for t, inside in ((50, False), (100, False), (101, True), (600, True), (601, False), (999, False)):
            tt = torch.full((len(Y),), t)
            eps_y = model(X, tt, Y)[:, :3]
            eps_0 = model(X, tt, torch.full_like(Y, model.null_label))[:, :3]
            want = eps_0 + 4.0 * (eps_y - eps_0) if inside else eps_y
            torch.testing.assert_close(fn(X, tt), want, rtol=1e-5, atol=1e-5)


def test_interval_flag_is_checked():
    with pytest.raises(SystemExit, match="SIGMA_LO < SIGMA_HI"):
        cfg.parse_args(["--interval", "5", "1"])
