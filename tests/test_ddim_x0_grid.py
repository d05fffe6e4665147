"""ddim_x0_grid.py: the x̂0 trajectory on our DiT, and the diffusers DiT-XL/2 path exercised on a
tiny randomly initialised diffusers DiT + VAE saved to a folder and loaded through the same code."""

import json
from pathlib import Path

import pytest
import torch

import ddim_x0_grid as grid
from dit import build_dit
from diffusers_dit import DiffusersDiT
from dit import TrainedDiT
from machine import bf16_is_fast


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    """A small DiT in the export format of train_one_epoch.py (random weights, non-zero output)."""
    torch.manual_seed(0)
    model = build_dit("DiT-Mi/4", input_size=16, in_channels=3, num_classes=10)
    for p in model.parameters():                         # leave adaLN-Zero's all-zero start
        p.data.add_(0.02 * torch.randn_like(p))
    path = tmp_path_factory.mktemp("ckpt") / "small.pt"
    torch.save(dict(config=dict(model=model.config, diffusion=dict(T=1000, schedule="linear")),
                    class_names=[f"c{i}" for i in range(10)],
                    ema={k: v.to(torch.bfloat16) for k, v in model.state_dict().items()}), path)
    return path


def args_for(tmp_path, *extra):
    return grid.parse_args(["--out", str(tmp_path), "--n", "4", "--nrow", "2", "--steps", "6", *extra])


def test_another_models_grids_never_overwrite_the_shipped_models(checkpoint):
    assert grid.parse_args([]).out == "report/ddim_x0"
    assert grid.parse_args(["--checkpoint", str(checkpoint)]).out == "runs/ddim_x0_small"
    assert grid.parse_args(["--checkpoint", str(checkpoint), "--out", "x"]).out == "x"


def test_show_steps_spread_and_always_include_the_last():
    assert grid.pick_show_steps(50, None) == [0, 5, 11, 16, 22, 27, 33, 38, 44, 49]
    assert grid.pick_show_steps(4, None) == [0, 1, 2, 3]
    assert grid.pick_show_steps(50, [3, 10]) == [3, 10, 49]
    with pytest.raises(SystemExit, match="steps are numbered 0 … 49"):
        grid.pick_show_steps(50, [50])


def test_trajectory_is_seeded_and_ends_at_the_final_sample(checkpoint, tmp_path):
    args = args_for(tmp_path, "--checkpoint", str(checkpoint))
    model = TrainedDiT(checkpoint, torch.device("cpu"))
    y, x0_all, shown = grid.run(args, model, torch.device("cpu"))
    assert y.tolist() == [0, 0, 1, 1]                         # one class per row of 2
    assert len(x0_all) == 6 and x0_all[0].shape == (4, 3, 16, 16) and x0_all[0].dtype == torch.uint8
    assert shown[-1][0] == 5 and torch.equal(shown[-1][2], x0_all[-1])
    assert not torch.equal(x0_all[0], x0_all[-1])             # the guess changes along the way
    _, again, _ = grid.run(args, model, torch.device("cpu"))
    assert all(torch.equal(a, b) for a, b in zip(x0_all, again))
    args.seed = 1
    _, other, _ = grid.run(args, model, torch.device("cpu"))
    assert not torch.equal(other[-1], x0_all[-1])


def test_main_writes_grids_overview_and_gif(checkpoint, tmp_path):
    grid.main(args_for(tmp_path, "--checkpoint", str(checkpoint), "--show-xt"))
    names = {p.name for p in tmp_path.iterdir()}
    assert {"final.png", "overview.png", "x0_trajectory.gif", "run.json"} <= names
    assert sum(n.startswith("x0_step") for n in names) == 6
    from PIL import Image
    gif = Image.open(tmp_path / "x0_trajectory.gif")
    assert 2 <= gif.n_frames <= 6       # PIL merges frames that quantise to the same palette image
    assert gif.size == (384, 384)       # 2×2 grid of 16 px, enlarged 12× to be visible
    # --precision auto (the default) resolves as training's does: bf16 only where it is fast.
    expected = "bf16" if bf16_is_fast(torch.device("cpu")) else "fp32"
    assert json.loads((tmp_path / "run.json").read_text())["precision"] == expected
    grid.main(args_for(tmp_path, "--checkpoint", str(checkpoint), "--precision", "fp32"))
    assert json.loads((tmp_path / "run.json").read_text())["precision"] == "fp32"


def test_diffusers_path_on_a_tiny_saved_pipeline(hf_folder, tmp_path):
    model = DiffusersDiT(str(hf_folder), torch.device("cpu"))
    assert model.shape == (4, 8, 8) and model.num_classes == 10
    x, t, y = torch.randn(2, 4, 8, 8), torch.tensor([10, 900]), torch.tensor([1, 2])
    full = model.net(x, timestep=t, class_labels=y).sample                    # (2, 8, 8, 8): ε̂ and Σ
    torch.testing.assert_close(model(x, t, y), full)
    assert model.eps_channels == 4 and model.null_label == model.num_classes
    args = args_for(tmp_path, "--model", str(hf_folder), "--classes", "3", "7")
    y, x0_all, shown = grid.run(args, model, torch.device("cpu"))
    assert y.tolist() == [3, 3, 7, 7]
    assert shown[-1][2].shape == (4, 3, 16, 16)               # latents decoded by the VAE (8 → 16 px)
    grid.main(args)
    assert (tmp_path / "overview.png").exists()


def test_missing_hub_model_says_how_to_download(tmp_path):
    with pytest.raises(SystemExit, match="huggingface-cli download facebook/DiT-XL-2-256"):
        DiffusersDiT("facebook/DiT-XL-2-256", torch.device("cpu"))


def test_missing_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(SystemExit, match="--checkpoint: no checkpoint at .*train one with"):
        grid.main(args_for(tmp_path, "--checkpoint", str(tmp_path / "none.pt")))
    (tmp_path / "junk.pt").write_text("not a checkpoint")
    with pytest.raises(SystemExit, match="--checkpoint: .*junk.pt is not a checkpoint of train_one_epoch.py"):
        grid.main(args_for(tmp_path, "--checkpoint", str(tmp_path / "junk.pt")))
    with pytest.raises(SystemExit, match="--checkpoint: no checkpoint at"):    # a folder
        grid.main(args_for(tmp_path, "--checkpoint", str(tmp_path)))
