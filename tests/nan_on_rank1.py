"""train_one_epoch.py with rank 1's loss turned into NaN at its third step, for
test_torchrun_nan_on_one_rank_stops_every_rank (run under torchrun)."""

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import train_one_epoch as tr  # noqa: E402

real = tr.training_loss
calls = {"n": 0}


def poisoned(*args, **kwargs):
    loss, sums, counts = real(*args, **kwargs)
    calls["n"] += 1
    if os.environ["RANK"] == "1" and calls["n"] == 3:
        loss = loss * float("nan")
    return loss, sums, counts


tr.training_loss = poisoned
tr.main(tr.parse_args())
