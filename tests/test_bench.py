"""bench/bench_train.py --profile on a tiny setting: the ceiling it prints is consistent with what it
measured (the matrix products are part of the step, so the images/s they alone allow can only be
above the profiled rate)."""

import re
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
    assert abs(ceiling - 4 / matmul_s) < 0.01 * ceiling   # batch / (matrix-product seconds per step)
    assert ceiling > profiled
    assert "aten::mm" in out.stdout or "aten::addmm" in out.stdout      # the profiler's table
