"""Attention health of trained DiTs: per block, the largest attention logit and the attention
entropy, on the same noised training images for every checkpoint.

    python tools/inspect_attention.py checkpoints/dit_landscapes.pt runs/<run>/checkpoint.pt ...
    python tools/inspect_attention.py A.pt B.pt C.pt --plot growth.png --labels early middle late
    python tools/inspect_attention.py --replot table.txt --plot growth.png --labels early middle late

Why: a transformer whose attention logits q·k/√d_h keep growing ends with softmax rows that put
all their weight on one token (entropy → 0), and its loss diverges soon after (Dehghani et al.
2023, Zhai et al. 2023).  The loss curve shows that only once it happens; these two numbers show
it coming.  The uniform-attention entropy is ln T (ln 256 = 5.55 for 256 tokens).  REPORT.md
reads the table this prints for the runs that diverged and the shipped model (QK-norm).

For each t in --t, it noises the same --n training images (fixed seed) to x_t = √ᾱ_t·x0 +
√(1−ᾱ_t)·ε with the checkpoint's own schedule and runs the EMA weights once (recording_attention, below).
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path
from typing import Iterator

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))     # the repository's modules
import landscapes
from dit import DiT, Attention, load_dit_checkpoint
from forward_process import add_noise, alpha_bar_from_betas, make_betas


@contextlib.contextmanager
def recording_attention(model: DiT) -> Iterator[list[tuple[float, float]]]:
    """Inside `with recording_attention(model) as found:`, each forward pass appends, per block,
    (the largest |attention logit| q·k/√d_h, the mean entropy of the attention rows in nats) to
    `found`.  Entropy ln T is uniform attention; near 0 every query looks at one token, the
    "entropy collapse" that comes with growing logits before a transformer's loss diverges
    (Zhai et al. 2023).  `python tools/inspect_attention.py` prints these for checkpoints.
    The model must be in eval mode (label dropout would make the numbers random); the logits
    are computed in fp32 even inside an autocast region."""
    if model.training:
        raise ValueError("attention statistics need model.eval(): label dropout makes training-mode numbers random")
    found = []

    @torch.no_grad()                      # a measurement: no graph, whatever pass it rides on
    def record(attn: Attention, inputs: tuple, output: torch.Tensor) -> None:
        q, k, _ = attn.heads(inputs[0])                                     # (B, h, T, d_h)
        with torch.autocast(q.device.type, enabled=False):                # fp32 throughout
            logits = q.float() @ k.float().transpose(-2, -1) / q.shape[-1] ** 0.5   # q·k/√d_h, (B, h, T, T)
            rows = logits.softmax(dim=-1)
            entropy = torch.special.entr(rows).sum(dim=-1)                  # −Σ p ln p, (B, h, T)
        found.append((logits.abs().amax().item(), entropy.mean().item()))

    hooks = [block.attn.register_forward_hook(record) for block in model.blocks]
    try:
        yield found
    finally:
        for hook in hooks:
            hook.remove()


@torch.no_grad()
def attention_stats(model: DiT, x_t: torch.Tensor, t: torch.Tensor, y: torch.Tensor) -> list[tuple[float, float]]:
    """Per block, on one batch: (largest |attention logit|, mean attention entropy), as
    `recording_attention` defines them."""
    with recording_attention(model) as found:
        model(x_t, t, y)
    return found



def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("checkpoints", nargs="*", help="checkpoint.pt files or --export files")
    ap.add_argument("--replot", default=None, metavar="TXT",
                    help="instead, redraw --plot from a table this script printed (the checkpoints' "
                         "files are not needed; the numbers as printed, to 0.1 and 0.01)")
    ap.add_argument("--data", default=None, help="image folder; None: the procedural training landscapes")
    ap.add_argument("--n", type=int, default=64, help="images per timestep")
    ap.add_argument("--t", type=int, nargs="+", default=[50, 500, 950], help="timesteps to probe")
    ap.add_argument("--seed", type=int, default=0, help="picks the images and the noise")
    ap.add_argument("--plot", default=None, metavar="PNG",
                    help="also draw, at the first --t, each block's largest logit and entropy "
                         "across the checkpoints, in the order given")
    ap.add_argument("--labels", nargs="+", default=None,
                    help="names for the checkpoints on the plot, in order (else folder/file)")
    args = ap.parse_args(argv)
    if args.replot is not None:
        if args.checkpoints or args.plot is None or args.labels is None:
            raise SystemExit("--replot TXT takes no checkpoints, and needs --plot PNG and --labels")
        return args
    if not args.checkpoints:
        raise SystemExit("name one or more checkpoints (or --replot a printed table)")
    if args.labels is not None and len(args.labels) != len(args.checkpoints):
        raise SystemExit(f"--labels: {len(args.labels)} names for {len(args.checkpoints)} checkpoints")
    if args.n < 1:
        raise SystemExit("--n must be at least 1")
    return args


def plot(table: list[list[tuple[float, float]]], labels: list[str], t_value: int, path: Path) -> None:
    """table[c][b] = (largest logit, entropy) of block b in checkpoint c: one line per block."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_logit, ax_entropy) = plt.subplots(1, 2, figsize=(12, 4.2))
    x = range(len(labels))
    for b in range(len(table[0])):
        ax_logit.plot(x, [row[b][0] for row in table], marker="o", label=f"block {b}")
        ax_entropy.plot(x, [row[b][1] for row in table], marker="o", label=f"block {b}")
    ax_logit.set(yscale="log", ylabel="largest |q·k|/√d_h", title=f"Largest attention logit (t = {t_value})")
    ax_entropy.set(ylabel="nats", title=f"Mean attention entropy (t = {t_value}; 0 = one token)")
    for ax in (ax_logit, ax_entropy):
        ax.set_xticks(list(x), labels, rotation=30, ha="right", fontsize=8)
        ax.set_xlabel("checkpoint")
        ax.grid(alpha=0.3)
    ax_logit.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def read_printed_table(path: Path) -> tuple[list[list[tuple[float, float]]], int]:
    """The first timestep's rows of a table `main` printed: (table[c][b], t)."""
    table, t_value = [], None
    for line in Path(path).read_text().splitlines():
        if line.endswith("per block: largest |logit| and mean entropy (nats)"):
            table.append(None)                           # a checkpoint: its first t row follows
        elif line.lstrip().startswith("t =") and table and table[-1] is None:
            words = line.split()
            t_value = int(words[2]) if t_value is None else t_value
            blocks = words[5:]                           # b0 logit entropy  b1 …
            table[-1] = [(float(blocks[i + 1]), float(blocks[i + 2])) for i in range(0, len(blocks), 3)]
    if not table or None in table:
        raise SystemExit(f"--replot {path}: no table of this script in it")
    return table, t_value


def main(args: argparse.Namespace) -> list[list[list[tuple[float, float]]]]:
    """Prints the table; returns stats[checkpoint][t][block] = (largest logit, entropy)."""
    if args.replot is not None:
        table, t_value = read_printed_table(args.replot)
        if len(args.labels) != len(table):
            raise SystemExit(f"--labels: {len(args.labels)} names for the {len(table)} checkpoints in {args.replot}")
        plot(table, args.labels, t_value, Path(args.plot))
        print(f"wrote {args.plot}")
        return [[row] for row in table]
    try:
        models = [load_dit_checkpoint(path) for path in args.checkpoints]     # (model, config, names)
    except (FileNotFoundError, ValueError) as e:      # no file, or not a checkpoint
        raise SystemExit(str(e))
    size = models[0][0].input_size
    data = landscapes.load_images(landscapes.resolve_data(args.data, "train", size), size)
    g = torch.Generator().manual_seed(args.seed)
    pick = torch.randperm(len(data.labels), generator=g)[:args.n]
    x0 = landscapes.to_float(data.images[pick])                               # (n, 3, H, W)
    y = data.labels[pick]                                                     # (n,)
    eps = torch.randn(x0.shape, generator=g)                                  # the same ε for all

    found = []
    for path, (model, config, _) in zip(args.checkpoints, models):
        if model.input_size != size:
            raise SystemExit(f"{path} is a {model.input_size} px model; the first is {size} px")
        if max(args.t) >= config["diffusion"]["T"] or min(args.t) < 0:
            raise SystemExit(f"--t must lie in 0 … {config['diffusion']['T'] - 1}")
        alpha_bar = alpha_bar_from_betas(make_betas(config["diffusion"]["schedule"], config["diffusion"]["T"]))
        norm = torch.cat([p.flatten() for p in model.parameters()]).norm().item()
        print(f"\n{path}: ‖θ‖ = {norm:.1f}; per block: largest |logit| and mean entropy (nats)")
        found.append([])
        for t_value in args.t:
            t = torch.full((len(y),), t_value)
            x_t = add_noise(x0, t, eps, alpha_bar)                            # (n, 3, H, W)
            with torch.no_grad(), recording_attention(model) as stats:      # one forward pass
                mse = (model.eps(x_t, t, y) - eps).pow(2).mean().item()       # ‖ε − ε̂‖², this batch
            found[-1].append(stats)
            blocks = "  ".join(f"b{i} {m:9.1f} {h:4.2f}" for i, (m, h) in enumerate(stats))
            print(f"  t = {t_value:3d}  loss {mse:.5f}  {blocks}")
    if args.plot:
        labels = args.labels or [f"{Path(p).parent.name}/{Path(p).stem}" for p in args.checkpoints]
        plot([per_t[0] for per_t in found], labels, args.t[0], Path(args.plot))
        print(f"\nwrote {args.plot}")
    return found


if __name__ == "__main__":
    main(parse_args())
