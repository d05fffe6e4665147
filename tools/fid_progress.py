"""FID against the number of training images seen, for the runs that made the shipped model.

    python report/fid_progress.py            # writes report/fid_progress.png

It reads only committed files: each point pairs a run's metrics.json (its steps, and the steps
of the export it started from) with the FID that fid.py printed for the samples that run drew
at its end, and the floor (5,000 training images against the test set) from the first CPU run.
The batch size comes from each run's recorded command line.  Nothing here is typed in by hand.
"""
from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

REPORT = Path(__file__).resolve().parent

# (metrics.json, fid.py output) of each evaluated point, oldest first, per series.
QK_NORM_RUN = [("shipped/leg1/metrics_call1.json", "shipped/leg1/fid_call1.txt"),
               ("shipped/leg1/metrics.json", "shipped/leg1/fid.txt"),
               ("shipped/leg2/metrics_call1.json", "shipped/leg2/fid_call1.txt"),
               ("shipped/leg2/metrics.json", "shipped/leg2/fid.txt"),
               ("shipped/leg3/metrics_call1.json", "shipped/leg3/fid_call1.txt"),
               ("shipped/leg3/metrics.json", "shipped/leg3/fid.txt")]
# Session 8's model (leg 2's end) at w = 0.5; guidance was not drawn for leg 3 (it did not pay).
GUIDED = [("shipped/leg2/metrics.json", "shipped/leg2/fid_w0.5.txt")]
# The runs that began a leg with a fresh AdamW (their start is the previous leg's end).
LEG_STARTS = {"leg 2": "shipped/leg1/metrics.json", "leg 3": "shipped/leg2/metrics.json"}
WITHOUT_QK_NORM = [("h200_ti2_5min/metrics.json", "h200_ti2_5min/fid.txt"),
                   ("h200_ti2_compiled/metrics.json", "h200_ti2_compiled/fid.txt")]
FLOOR = "cpu_ti4/metrics.json"


def images_seen(metrics_file: str) -> float:
    """Millions of training images behind a run's final model: its steps and those of the legs
    it started from (`steps_in_all`; the files of legs 1 and 2 predate it, and leg 2's own
    init_from is leg 1, which started from nothing), times the batch size in its command."""
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
    ax.plot(x, y, "o-", color="C0", label="DiT-Ti/2 + QK-norm, w = 0 (legs 1-3: the shipped run)")
    for xi, yi in zip(x, y):
        ax.annotate(f"{yi:.2f}", (xi, yi), textcoords="offset points", xytext=(6, 4), fontsize=8)
    x, y = series(GUIDED)
    ax.plot(x, y, "v", color="C2", label="leg 2's end (session 8's model), guidance w = 0.5")
    x, y = series(WITHOUT_QK_NORM)
    ax.plot(x, y, "s", color="C3", label="DiT-Ti/2 without QK-norm (sessions 3 and 4)")
    ax.axhline(2 * floor, color="k", ls="--", lw=1, label=f"target: 2 × floor = {2 * floor:.2f}")
    ax.axhline(floor, color="grey", ls=":", lw=1, label=f"floor (real vs real) = {floor:.2f}")
    for name, metrics_file in LEG_STARTS.items():
        start = images_seen(metrics_file)
        ax.axvline(start, color="grey", lw=0.5)
        ax.text(start, 0.66 * ax.get_ylim()[1], f" {name} starts\n (fresh AdamW)",
                fontsize=8, va="top")              # below the legend
    # Leg 3's last 2,500 steps ran with the lr falling linearly to 0 (--decay-steps).
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
