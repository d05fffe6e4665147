"""FID against the number of training images seen, for the runs that made the shipped model.

    python tools/fid_progress.py             # writes report/fid_progress.png

It reads only committed files: each point pairs a run's metrics.json (its steps, and the steps
of the export it started from) with the FID that fid.py printed for the samples that run drew
at its end, and the floor (5,000 training images against the test set) from the first CPU run.
The batch size comes from each run's recorded command line.  Nothing here is typed in by hand.
Guidance w as in cfg.py: w = 1 is the conditional model, unguided (the runs' own metrics.json
predate that convention and record Ho & Salimans' w′ = w − 1: their 0 is w = 1).
"""
from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

REPORT = Path(__file__).resolve().parents[1] / "report"

# (metrics.json, fid.py output) of each evaluated point, oldest first, per series.
# The shipped run's three stages, each named by the images seen at its end, each two calls.
STAGES = ("shipped/ti2_qknorm_12.5M", "shipped/ti2_qknorm_24.4M", "shipped/ti2_qknorm_35.9M")
QK_NORM_RUN = [(f"{stage}/{metrics}", f"{stage}/{fid}") for stage in STAGES
               for metrics, fid in (("metrics_call1.json", "fid_call1.txt"), ("metrics.json", "fid.txt"))]
# The 24.4M model guided at w = 1.5 (the only stage whose guided samples were scored).
GUIDED = [("shipped/ti2_qknorm_24.4M/metrics.json", "shipped/ti2_qknorm_24.4M/fid_w1.5.txt")]
# The stages that began from the previous one's export with a fresh AdamW.
RESTARTS = {"from 12.5M": "shipped/ti2_qknorm_12.5M/metrics.json",
            "from 24.4M": "shipped/ti2_qknorm_24.4M/metrics.json"}
WITHOUT_QK_NORM = [("ti2_2.4M/metrics.json", "ti2_2.4M/fid.txt"),
                   ("ti2_10.2M/metrics.json", "ti2_10.2M/fid.txt")]
FLOOR = "cpu_ti4/metrics.json"


def images_seen(metrics_file: str) -> float:
    """Millions of training images behind a run's final model: its steps and those behind the
    model it started from (`init_from`'s steps, or the older files' `steps_in_all`), times the
    batch size in its command."""
    m = json.loads((REPORT / metrics_file).read_text())
    steps = m.get("steps_in_all") or m["steps"] + ((m.get("init_from") or {}).get("steps") or 0)
    batch = int(re.search(r"--batch-size (\d+)", m["command"]).group(1))
    return steps * batch / 1e6


def fid_of(fid_file: str) -> float:
    """The last 'FID: x' line that fid.py printed."""
    return float(re.findall(r"^FID: ([\d.]+)$", (REPORT / fid_file).read_text(), re.M)[-1])


def series(pairs: list[tuple[str, str]]) -> tuple[list[float], list[float]]:
    points = [(images_seen(m), fid_of(f)) for m, f in pairs]
    return [x for x, _ in points], [y for _, y in points]


def main(out: Path) -> None:
    floor = json.loads((REPORT / FLOOR).read_text())["fid_floor_train_vs_test"]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    x, y = series(QK_NORM_RUN)
    ax.plot(x, y, "o-", color="C0", label="DiT-Ti/2 + QK-norm, unguided w = 1 (the shipped run)")
    for xi, yi in zip(x, y):
        ax.annotate(f"{yi:.2f}", (xi, yi), textcoords="offset points", xytext=(6, 4), fontsize=8)
    x, y = series(GUIDED)
    ax.plot(x, y, "v", color="C2", label="the 24.4M model, guidance w = 1.5")
    x, y = series(WITHOUT_QK_NORM)
    ax.plot(x, y, "s", color="C3", label="DiT-Ti/2 without QK-norm")
    ax.axhline(2 * floor, color="k", ls="--", lw=1, label=f"target: 2 × floor = {2 * floor:.2f}")
    ax.axhline(floor, color="grey", ls=":", lw=1, label=f"floor (real vs real) = {floor:.2f}")
    for name, metrics_file in RESTARTS.items():
        start = images_seen(metrics_file)
        ax.axvline(start, color="grey", lw=0.5)
        ax.text(start, 0.66 * ax.get_ylim()[1], f" restart {name}\n (fresh AdamW)",
                fontsize=8, va="top")              # below the legend
    # The last stage's last 2,500 steps ran with the lr falling linearly to 0 (--decay-steps).
    x, y = series(QK_NORM_RUN[-2:])
    ax.annotate("lr → 0", ((x[0] + x[1]) / 2, (y[0] + y[1]) / 2), textcoords="offset points",
                xytext=(-10, -18), fontsize=8)
    ax.set_xlabel("training images seen (millions)")
    ax.set_ylabel("FID, N = 5,000, 50 DDIM steps")
    ax.set_ylim(0, None)
    ax.set_title("FID against training on the procedural landscapes (32 px)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper right")
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    print(f"wrote {out}")


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=REPORT / "fid_progress.png", help="the PNG to write")
    main(p.parse_args().out)
