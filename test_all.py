"""Run the whole test suite:  python test_all.py  [extra pytest arguments]

The tests live in tests/ and check real properties: equalities against diffusers' schedulers and
embeddings, the paper's parameter and GFLOP counts, inverses (patchify ∘ unpatchify), closed forms
(DDIM with the exact denoiser), the FID network against its TorchScript reference, and losses that
must fall.  Tests that need a CUDA GPU are marked `gpu` and skipped without one.  The whole suite
takes a few minutes on 2 CPU cores.
"""

import sys
from pathlib import Path

import pytest

if __name__ == "__main__":
    tests = Path(__file__).resolve().parent / "tests"
    sys.exit(pytest.main([str(tests), "-q", "-rs", "--durations=5", *sys.argv[1:]]))
