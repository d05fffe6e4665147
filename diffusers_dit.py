"""The paper's own DiT (Peebles & Xie 2022, DiT-XL/2 at 256 px: a transformer on Stable Diffusion
VAE latents) through diffusers, behind the interface of dit.TrainedDiT, so that ddim_x0_grid.py and
cfg.py drive it with `--model facebook/DiT-XL-2-256` as they drive ours.  Nothing is downloaded:
the weights must be in the local Hugging Face cache, or in a folder laid out like the hub's.
"""

from __future__ import annotations

import torch

from forward_process import LINEAR_BETA_RANGE, alpha_bar_from_betas, make_betas


class DiffusersDiT:
    """The pretrained DiT of Peebles & Xie through diffusers (transformer + Stable Diffusion VAE),
    with `TrainedDiT`'s interface.  `source` is a hub id, looked up in the local Hugging Face
    cache only (nothing is downloaded), or a folder laid out like the hub repository:
    transformer/, vae/, scheduler/scheduler_config.json."""

    in_pixels = False                                           # x̂0 is a latent: a VAE pass
    clip_x0 = None                                              # latents have no fixed range

    def __init__(self, source: str, device: torch.device):
        from diffusers import AutoencoderKL, DiTTransformer2DModel

        try:
            self.net = DiTTransformer2DModel.from_pretrained(
                source, subfolder="transformer", local_files_only=True, low_cpu_mem_usage=False).to(device).eval()
            self.vae = AutoencoderKL.from_pretrained(
                source, subfolder="vae", local_files_only=True, low_cpu_mem_usage=False).to(device).eval()
        except (OSError, ValueError) as e:
            raise SystemExit(
                f"--model {source}: not found locally ({type(e).__name__}). This machine is offline; on "
                f"a connected one run `huggingface-cli download {source}` (or "
                f"`python -c \"from diffusers import DiTPipeline; DiTPipeline.from_pretrained('{source}')\"`) "
                f"and copy ~/.cache/huggingface here, or pass the downloaded folder to --model") from None
        self.alpha_bar = self._alpha_bar(source).to(device)
        cfg = self.net.config
        self.shape = (cfg.in_channels, cfg.sample_size, cfg.sample_size)
        self.eps_channels = cfg.in_channels                     # then C channels of learned Σ
        self.num_classes = cfg.num_embeds_ada_norm
        self.null_label = self.num_classes                      # diffusers' row 1000 is ∅ too
        self.learnt_null = True                                 # DiT trained with 10% dropout
        self.class_names = [str(i) for i in range(self.num_classes)]
        self.scaling = self.vae.config.scaling_factor           # 0.18215 for the SD VAE

    @staticmethod
    def _alpha_bar(source: str) -> torch.Tensor:
        """DiT's schedule, DDPM's linear β at T = 1000, checked against the pipeline's scheduler
        config where it has one (a key it leaves out takes diffusers' default, the same)."""
        from diffusers import DDIMScheduler

        try:
            cfg = DDIMScheduler.load_config(source, subfolder="scheduler", local_files_only=True)
        except (OSError, ValueError):
            cfg = {}
        betas = make_betas("linear", cfg.get("num_train_timesteps", 1000))   # β_1, β_T scaled by 1000/T
        found = (cfg.get("beta_schedule", "linear"), cfg.get("beta_start", LINEAR_BETA_RANGE[0]),
                 cfg.get("beta_end", LINEAR_BETA_RANGE[1]))
        if found[0] != "linear" or max(abs(found[1] - betas[0].item()), abs(found[2] - betas[-1].item())) > 1e-9:
            raise SystemExit(f"--model {source}: its scheduler config {cfg} is not DiT's linear schedule")
        return alpha_bar_from_betas(betas)

    def __call__(self, x_t: torch.Tensor, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.net(x_t, timestep=t, class_labels=y).sample          # (B, 2C, h, w)

    @torch.no_grad()
    def decode(self, z0: torch.Tensor) -> torch.Tensor:
        """Latent x̂0 → pixels in [−1, 1] (the VAE works on latents scaled by 1/0.18215)."""
        return self.vae.decode(z0 / self.scaling).sample.clamp(-1, 1)
