"""Make the repository root importable, as when a script is run from it, and tools/ and bench/."""
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tools"), str(ROOT / "bench")]

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
