"""The machine a run runs on: the device (`pick_device`), its name for the records, whether bf16
pays on it, the two CPU settings that measurably pay, and how a driver runs the trainer as a
child process (`run_child`).  Not teaching material: each script imports it in one line.

Every timing, results table and metrics file carries `describe_machine`'s line, because the same
command runs several times faster on one CPU than on another:

    cpu (AMD EPYC, family 25 model 17; AVX512, AVX-512-BF16; 2 threads)
    cuda (NVIDIA H100 80GB HBM3)
"""

from __future__ import annotations

import contextlib
import ctypes
import platform
import subprocess

import torch
import torch.nn.functional as F


def pick_device(choice: str) -> torch.device:
    """--device auto | cpu | cuda → a torch.device; cuda without a GPU is a one-line error."""
    if choice == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA GPU is visible; use --device cpu or auto")
    if choice == "auto":
        choice = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(choice)


def describe_machine(device: torch.device) -> str:
    """The GPU's name, or the CPU's model name, its family and model numbers, vector extension
    and bf16 units.  The model name alone is not enough: cloud VMs call several Xeon generations
    "Intel(R) Xeon(R) Processor @ 2.80GHz" and both a Zen 4 and a Zen 5 EPYC "AMD EPYC"; the
    family and model numbers tell them apart (an EPYC of family 25 is Zen 3 or 4, of 26 Zen 5)."""
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    fields = {}
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:      # Linux names the model here
        for line in f:
            key, _, value = line.partition(":")
            if not key.strip():                                     # a blank line ends the first core
                break
            fields.setdefault(key.strip(), value.strip())
    name = fields.get("model name") or platform.processor() or platform.machine()
    if "cpu family" in fields and "model" in fields:                # x86 numbers; other CPUs lack them
        name += f", family {fields['cpu family']} model {fields['model']}"
    units = cpu_bf16_units() or "no bf16 units"
    return f"cpu ({name}; {torch.backends.cpu.get_cpu_capability()}, {units}; {torch.get_num_threads()} threads)"


def cpu_bf16_units() -> str | None:
    """The CPU's bf16 matrix units: "AMX" (Sapphire Rapids and later), "AVX-512-BF16", or None."""
    if torch.cpu._is_amx_tile_supported():
        return "AMX"
    return "AVX-512-BF16" if torch.cpu._is_avx512_bf16_supported() else None


def bf16_is_fast(device: torch.device) -> bool:
    """bf16 pays only with hardware bf16 units: Ampere or later on GPUs; AVX-512-BF16 or AMX on
    CPUs (without them a CPU emulates bf16 with conversions, and sampling ran 2.7× slower than
    fp32 on an Ice Lake Xeon)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return torch.backends.mkldnn.is_available() and cpu_bf16_units() is not None


def resolve_precision(precision: str, device: torch.device) -> str:
    """--precision auto → bf16 where it is fast on this device, else fp32; others as given."""
    if precision == "auto":
        return "bf16" if bf16_is_fast(device) else "fp32"
    return precision


# ── the two CPU settings that pay (bench/bench_cpu_paths.py; REPORT.md, "Speed") ──

def attention_without_amx(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """softmax(Q Kᵀ / √d_h) V, q, k, v (B, h, T, d_h) → (B, h, T, d_h): in bf16 on a CPU as three
    plain operations with the (T × T) scores in memory, otherwise by PyTorch's fused kernel.
    The same numbers either way, to rounding (tests/test_dit.py)."""
    if q.device.type != "cpu" or q.dtype != torch.bfloat16:
        return F.scaled_dot_product_attention(q, k, v)
    scores = (q * q.shape[-1] ** -0.5) @ k.transpose(-2, -1)                # (B, h, T, T)
    return scores.softmax(dim=-1) @ v


def tune_cpu(device: torch.device) -> None:
    """On a CPU, for this process:
    - glibc keeps freed memory instead of returning it to the kernel.  A training step or a
      sampling batch frees hundreds of large activations and allocates them again; by default
      glibc unmaps chunks above its mmap threshold, so every step faults its pages in anew and
      the kernel zeroes each one.  Raised thresholds keep them mapped (the price: the process
      holds its peak memory until it exits).  Measured on the Zen 4 EPYC, end to end, without
      it: ddim_x0_grid.py 35% and a guided cfg.py set 27% slower.
    - on a CPU without AMX units (AVX-512-BF16 at most), bf16 attention written out instead of
      PyTorch's fused kernel (dit.Attention.kernel), the slower of the two there: with the fused
      kernel a training step of DiT-Ti/2 ran 0.84× as fast and a guided cfg.py set took 17%
      longer.  With AMX (Sapphire Rapids and later) the fused kernel is the faster.
    A no-op on a GPU, or without glibc."""
    import dit                                         # here, so machine.py stays importable alone

    if device.type != "cpu":
        return
    if cpu_bf16_units() != "AMX":
        dit.Attention.kernel = staticmethod(attention_without_amx)
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:                              # macOS, Windows, musl: the platform's default
        return
    M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3          # from <malloc.h>
    libc.mallopt(M_MMAP_THRESHOLD, 1 << 30)
    libc.mallopt(M_TRIM_THRESHOLD, (1 << 31) - 1)


def run_child(cmd: list[str], cwd: str) -> int:
    """Run `cmd` (sweep.py and tools/recipe_study.py start train_one_epoch.py so) to its end and
    return its exit status.  A Ctrl-C at the terminal reaches the child too, which finishes its
    step and saves its checkpoint: wait for that.  subprocess.run would kill the child 0.25 s
    after the Ctrl-C and lose the steps since its last checkpoint."""
    child = subprocess.Popen(cmd, cwd=cwd)
    try:
        return child.wait()
    except KeyboardInterrupt:
        return child.wait()                       # a second Ctrl-C stops the child at once
