"""The parameters of each layer of DiT-Ti/2 + QK-norm (the shipped config) and of the paper's
DiT-XL/2, as in REPORT.md's table "The DiT as built".  Built on the meta device: no memory.

    python tools/layer_counts.py
"""

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))     # the repository's modules
from dit import build_dit                                         # noqa: E402

CONFIGS = [("DiT-Ti/2 + QK-norm, 32×32×3, 10 classes", "DiT-Ti/2", dict(input_size=32, in_channels=3, num_classes=10, qk_norm=True)),
           ("DiT-XL/2, 32×32×4, 1000 classes, learned Σ", "DiT-XL/2", dict(input_size=32, in_channels=4, num_classes=1000, learn_sigma=True))]

for title, name, kw in CONFIGS:
    with torch.device("meta"):
        m = build_dit(name, **kw)
    n = lambda module: sum(p.numel() for p in module.parameters())        # noqa: E731
    b = m.blocks[0]
    print(title)
    for layer, count in [("PatchEmbed", n(m.x_embedder)), ("pos_embed (fixed, not learnt)", m.pos_embed.numel()),
                         ("TimestepEmbedder", n(m.t_embedder)), ("LabelEmbedder", n(m.y_embedder)),
                         ("DiTBlock, each", n(b)), ("  adaLN_modulation", n(b.adaLN_modulation)),
                         ("  attn.qkv", n(b.attn.qkv)), ("  attn.proj", n(b.attn.proj)), ("  mlp", n(b.mlp)),
                         ("FinalLayer", n(m.final_layer)), ("total (learnt)", n(m))]:
        print(f"  {layer:<30} {count:>13,}")
