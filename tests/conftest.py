"""Make the repository root importable, as when a script is run from it, and tools/ and bench/."""
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tools"), str(ROOT / "bench")]

# Photo folders' splits and scene labels are cached in a throw-away folder, never in data/.
os.environ.setdefault("DIT_PHOTO_CACHE", tempfile.mkdtemp(prefix="dit-photos-"))

import dit  # noqa: F401  first: it gives an ATEN_CPU_CAPABILITY run its own torch.compile cache
import pytest
import torch


@pytest.fixture(scope="module")
def hf_folder(tmp_path_factory) -> Path:
    """A diffusers DiT pipeline folder (transformer/, vae/, scheduler/) with tiny random weights."""
    from diffusers import AutoencoderKL, DDIMScheduler, DiTTransformer2DModel

    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("hf")
    DiTTransformer2DModel(num_attention_heads=2, attention_head_dim=8, in_channels=4, out_channels=8,
                          num_layers=1, sample_size=8, patch_size=2, num_embeds_ada_norm=10,
                          norm_num_groups=1).save_pretrained(folder / "transformer")
    AutoencoderKL(in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(8, 8),
                  down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
                  layers_per_block=1, norm_num_groups=4, sample_size=16).save_pretrained(folder / "vae")
    DDIMScheduler(beta_schedule="linear", beta_start=1e-4, beta_end=0.02).save_pretrained(folder / "scheduler")
    return folder


@pytest.fixture(scope="module")
def real_folder(tmp_path_factory):
    """10 classes × 12 images of 8 px, solid colours with noise: the study's stand-in real set."""
    from PIL import Image

    root = tmp_path_factory.mktemp("real")
    g = torch.Generator().manual_seed(0)
    for c in range(10):
        (root / f"c{c}").mkdir()
        for i in range(12):
            img = (torch.rand(8, 8, 3, generator=g) * 60 + c * 19).clamp(0, 255).to(torch.uint8)
            Image.fromarray(img.numpy()).save(root / f"c{c}" / f"{i}.png")
    return root


def pytest_configure(config):
    config.addinivalue_line("markers", "gpu: needs a CUDA GPU (skipped without one)")
    config.addinivalue_line("markers", "slow: takes more than ~20 s on 2 CPU cores")


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
