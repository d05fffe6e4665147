"""bench/bench_train.py --profile on a tiny setting: the ceiling it prints is consistent with what it
measured (the matrix products are part of the step, so the images/s they alone allow can only be
above the profiled rate)."""

import re
import statistics
import subprocess
import sys
from pathlib import Path


ROOT = Path(__file__).resolve().parents[1]


def test_profile_prints_a_ceiling_above_the_profiled_rate():
    out = subprocess.run([sys.executable, str(ROOT / "bench" / "bench_train.py"), "--patch", "8", "--precision", "fp32",
                          "--profile", "--batch-size", "4", "--steps", "2", "--warmup", "1"],
                         capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    profiled = float(re.search(r"under the profiler \(([\d.]+) images/s\)", out.stdout).group(1))
    matmul_s, total_s = map(float, re.search(r"matrix products ([\d.]+) s of ([\d.]+) s", out.stdout).groups())
    ceiling = float(re.search(r"alone allow ([\d.]+) images/s", out.stdout).group(1))
    assert 0 < matmul_s < total_s
    # batch / (matrix-product seconds per step), to 1% or to the 0.05 of the printed one decimal
    # (on a loaded machine the rate is a few images/s, where that rounding is more than 1%)
    assert abs(ceiling - 4 / matmul_s) <= max(0.01 * ceiling, 0.051)
    assert ceiling > profiled
    assert "aten::mm" in out.stdout or "aten::addmm" in out.stdout      # the profiler's table


def test_sampling_bench_prints_consistent_rates():
    """bench/bench_sampling.py on a tiny setting: every row's GFLOP/s is its image-steps/s times
    the printed GFLOP per image-step, the share is that over the matmul row, the ratio is
    the median of the per-round ratios it lists (the peer's own all 1), and no row beats the
    products-only ceiling."""
    out = subprocess.run([sys.executable, str(ROOT / "bench" / "bench_sampling.py"), "--batch", "2", "--steps", "1",
                          "--rounds", "3", "--no-compile"], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    per_step = float(re.search(r"([\d.]+) GFLOP per image-step", out.stdout).group(1))
    rows = re.findall(r"^(fp32|bf16)\s+(diffusers \(eager\)|ours \(eager\))\s+([\d.]+)\s+([\d.]+)x\s+([\d.]+)\s+"
                      r"([\d.]+)%\s+([\d.]+) ([\d.]+) ([\d.]+)$", out.stdout, re.M)
    assert len(rows) >= 2
    for precision, name, rate, ratio, gflops, share, *rounds in rows:
        # Printed values are rounded (rates to 0.01, GFLOP/s to 0.1, ratios to 0.001, shares to
        # 0.1%): allow that.
        assert abs(float(gflops) - float(rate) * per_step) <= 0.05 + 0.005 * per_step + 0.01 * float(gflops)
        assert float(ratio) == statistics.median(map(float, rounds))
        if name.startswith("diffusers"):
            assert rounds == ["1.000"] * 3
        matmul = max(float(m) for m in re.findall(rf"^{precision}\s+matmul, \S+\s+([\d.]+)", out.stdout, re.M))
        assert abs(float(share) - 100 * float(gflops) / matmul) <= 0.05 + 100 * 0.05 / matmul + 0.01 * float(share)
        # The products-only ceiling leaves out every other pass, so no model row may beat it.
        ceiling = float(re.search(rf"^{precision}\s+ceiling: products only\s+([\d.]+)", out.stdout, re.M).group(1))
        assert float(rate) < ceiling, (name, rate, ceiling)
