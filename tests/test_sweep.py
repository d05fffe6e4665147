"""sweep.py: the arms it plans (one knob at a time, the base twice), the training commands it
gives train_one_epoch.py, and the whole sweep end to end on tiny data (--quick), resumed."""

import csv
import json

import pytest
import torch

import fid
import sweep
from test_cfg import ColourStats


def test_arms_move_one_knob_at_a_time_and_the_base_runs_with_three_seeds():
    args = sweep.parse_args([])
    arms = sweep.plan_arms(args)
    names = [a["name"] for a in arms]
    assert len(names) == len(set(names)) == 1 + 2 * 4 + 2 + 1      # base, 2 others per axis, seeds 1, 2,
    matched = [a for a in arms if a["axes"] == {"compute"}]          # and patch 2 at the base's FLOPs,
    assert len(matched) == 1 and matched[0]["knobs"] == {**sweep.BASE, "patch": 2}
    i = arms.index(matched[0])                                       # just before patch 2's full arm
    assert arms[i + 1]["knobs"] == matched[0]["knobs"] and arms[i + 1]["seed"] == matched[0]["seed"]
    assert arms[i + 1]["warm_start"] == matched[0]["name"]           # which goes on from its checkpoint
    arms = [a for a in arms if a not in matched]
    for a in arms:
        moved = [axis for axis in sweep.AXES if a["knobs"][axis] != sweep.BASE[axis]]
        assert len(moved) <= 1                                      # never two knobs at once
        if moved:
            assert a["axes"] == set(moved)
    base = [a for a in arms if a["knobs"] == sweep.BASE]
    assert sorted(a["seed"] for a in base) == [0, 1, 2] and base[0]["axes"] == set(sweep.AXES)
    assert [a["seed"] for a in arms[:3]] == [0, 1, 2]                 # the spread comes first


def test_every_arm_gets_the_same_budget_seed_and_data():
    args = sweep.parse_args(["--budget-images", "6400", "--batch-size", "64"])
    commands = [sweep.train_command(a, args) for a in sweep.plan_arms(args) if "budget" not in a]
    value = lambda cmd, flag: cmd[cmd.index(flag) + 1]
    assert {value(c, "--max-steps") for c in commands} == {"100"}
    assert {value(c, "--seed") for c in commands} == {"0", "1", "2"}
    assert {value(c, "--hidden") for c in commands} == {"256"}
    t100 = [c for c in commands if value(c, "--T") == "100"][0]
    assert (value(t100, "--patch"), value(t100, "--depth"), value(t100, "--heads")) == ("4", "6", "4")
    assert value(commands[0], "--recipe") == "fast" and "--lr" not in commands[0] and "--grad-clip" not in commands[0]
    assert sweep.recipe(args) == dict(batch_size=64, recipe="fast", seed=0, data="procedural", image_size=32)
    own = sweep.parse_args(["--recipe", "paper", "--lr", "3e-4", "--grad-clip", "1"])   # a flag given wins
    cmd = sweep.train_command(sweep.plan_arms(own)[0], own)
    assert (value(cmd, "--recipe"), value(cmd, "--lr"), value(cmd, "--grad-clip")) == ("paper", "0.0003", "1.0")
    assert sweep.recipe(own) == dict(batch_size=64, recipe="paper", lr=3e-4, grad_clip=1.0, seed=0,
                                     data="procedural", image_size=32)


def test_bad_values_are_one_line_errors():
    with pytest.raises(SystemExit, match="must divide --image-size 32"):
        sweep.parse_args(["--patch", "3"])
    with pytest.raises(SystemExit, match="must divide the width 256"):
        sweep.parse_args(["--heads", "3"])
    with pytest.raises(SystemExit, match="at least 2"):
        sweep.parse_args(["--base-seeds", "1"])
    with pytest.raises(SystemExit, match="must be positive"):
        sweep.parse_args(["--grad-clip", "0"])


def test_quick_sweep_end_to_end_and_resumed(tmp_path, real_folder, monkeypatch):
    """--quick through every stage: 4 trainings (T 100, the base, patch 8, the base's seed 1),
    grids, FID, the DDPM grids of the T axis, tables and figures; a second call skips it all.
    The Inception network is replaced by test_cfg's ColourStats so that it takes seconds."""
    monkeypatch.setattr(fid, "load_inception", lambda *a, **k: ColourStats())
    argv = ["--quick", "--data", str(real_folder), "--image-size", "8", "--runs", str(tmp_path / "runs"),
            "--out", str(tmp_path / "out")]
    sweep.main(sweep.parse_args(argv))
    out = tmp_path / "out"
    rows = list(csv.DictReader(open(out / "results.csv")))
    assert len(rows) == 4
    for r in rows:
        assert float(r["fid"]) > 0 and int(r["images"]) == 256
        assert r["dataset"] == real_folder.name and float(r["fid_floor"]) > 0
        assert float(r["train_pflops"]) == pytest.approx(3 * float(r["gflops"]) * 256 / 1e6)
    for name in ("results.md", "fid_vs_knob.png", "fid_vs_gflops.png", "loss_T.png", "grids_T.png",
                 "grids_T_ddpm.png", "grids_patch.png", "loss_patch.png"):
        assert (out / name).exists(), name
    assert "Seed-to-seed spread of the base arm" in (out / "results.md").read_text()
    before = json.loads((out / "results.json").read_text())
    sweep.main(sweep.parse_args(argv))                              # everything skipped
    assert json.loads((out / "results.json").read_text()) == before
    table = (out / "results.md").read_text()
    (out / "results.md").unlink()
    sweep.main(sweep.parse_args(argv + ["--tables-only"]))           # the tables again, from results.json
    assert (out / "results.md").read_text() == table
    table_rows = lambda text: [line for line in text.splitlines() if line.startswith("| ")]
    sweep.main(sweep.parse_args(argv[1:] + ["--tables-only"]))      # other flags: the one sweep there
    assert table_rows((out / "results.md").read_text()) == table_rows(table)
    # A sweep at another budget shares the --out: each call's tables hold its own arms only.
    bigger = {k.replace("-b256-", "-b512-"): dict(v, row=dict(v["row"], fid=999.0), command="python sweep.py --big")
              for k, v in before.items() if not k.startswith("real_n")}
    (out / "results.json").write_text(json.dumps({**before, **bigger}))
    sweep.main(sweep.parse_args(argv + ["--tables-only"]))
    mixed = (out / "results.md").read_text()
    assert "999.00" not in mixed and "--big" not in mixed and "-b512-n20-s3" in mixed
    assert table_rows(mixed) == table_rows(table)
    # Another recipe at the same budget would be skipped as measured: refused.  So is a table of nothing.
    with pytest.raises(SystemExit, match=r"holds arms trained with lr=None \(this call: 0.0001\)"):
        sweep.main(sweep.parse_args(argv + ["--lr", "1e-4"]))
    with pytest.raises(SystemExit, match="holds no arm at -b640-n20-s3, only at -b256-n20-s3, -b512-n20-s3"):
        sweep.main(sweep.parse_args(argv[1:] + ["--tables-only", "--budget-images", "640", "--batch-size", "32",
                                                "--n", "20", "--steps", "3"]))       # --quick would set 256
    assert all(e["precision"] in ("fp32", "bf16") and e["command"].startswith("python sweep.py --quick")
               for k, e in before.items() if not k.startswith("real_n"))
    # An arm trained elsewhere (its run folder copied here) and measured by this call keeps the
    # training's precision and machine, from its metrics.json, beside this call's.
    (out / "results.json").write_text(json.dumps(before))
    key = next(k for k in before if "-p8-" in k)                   # no DDPM grid: quick to redo
    metrics_file = tmp_path / "runs" / key[:key.rindex("-b")] / "metrics.json"
    metrics = json.loads(metrics_file.read_text())
    assert before[key]["trained"] == {"precision": metrics["precision"], "machine": metrics["machine"]}
    assert metrics["machine"] == before[key]["machine"] == sweep.describe_machine(torch.device("cpu"))
    metrics_file.write_text(json.dumps(dict(metrics, precision="bf16", machine="cuda (NVIDIA H100)")))
    (out / "results.json").write_text(json.dumps({k: v for k, v in before.items() if k != key}))
    sweep.main(sweep.parse_args(argv))                              # measures that arm again
    entry = json.loads((out / "results.json").read_text())[key]
    assert entry["trained"] == {"precision": "bf16", "machine": "cuda (NVIDIA H100)"}
    assert entry["machine"] == before[key]["machine"]
    header = (out / "results.md").read_text().split("Trained in ")[1].split("Command")[0]
    assert "bf16 on cuda (NVIDIA H100)" in header.split("; measured in ")[0]
    assert "cuda" not in header.split("; measured in ")[1]


def test_a_budget_other_than_the_default_gets_its_own_folders():
    assert (sweep.parse_args([]).out, sweep.parse_args([]).runs) == ("report/sweep", "runs/sweep")
    big = sweep.parse_args(["--budget-images", "2000000"])
    assert (big.out, big.runs) == ("report/sweep_b2000000", "runs/sweep_b2000000")
    assert sweep.parse_args(["--quick"]).out == "runs/sweep_quick/report"


def test_a_run_longer_than_the_budget_is_refused_not_measured_as_it(tmp_path):
    args = sweep.parse_args(["--quick", "--runs", str(tmp_path)])
    arm = sweep.plan_arms(args)[0]
    (tmp_path / arm["name"]).mkdir()
    (tmp_path / arm["name"] / "metrics.json").write_text(json.dumps(dict(steps=args.budget_images // args.batch_size + 1)))
    with pytest.raises(SystemExit, match="more than its budget of 256 images allows"):
        sweep.train_arm(arm, args)


def test_tables_only_without_results_is_a_one_line_error(tmp_path):
    with pytest.raises(SystemExit, match="run the sweep first"):
        sweep.main(sweep.parse_args(["--tables-only", "--out", str(tmp_path)]))


def test_the_compute_matched_arm_spends_the_base_arms_flops():
    """Patch 2 trained on budget × GFLOPs(p4)/GFLOPs(p2) images: the patch axis at equal training
    compute (3 × forward GFLOPs × images), to within one batch."""
    args = sweep.parse_args(["--budget-images", "64000"])
    matched = [a for a in sweep.plan_arms(args) if a["axes"] == {"compute"}][0]
    g2, g4 = (sweep.gflops_of({**sweep.BASE, "patch": p}, 32) for p in (2, 4))
    assert g2 / g4 == pytest.approx(1.413 / 0.319, rel=0.01)
    assert abs(matched["budget"] * g2 - 64000 * g4) <= 64 * g2
    assert sweep.train_command(matched, args)[sweep.train_command(matched, args).index("--max-steps") + 1] == \
        str(matched["budget"] // 64)
    assert not [a for a in sweep.plan_arms(sweep.parse_args(["--no-flops-matched"])) if a["axes"] == {"compute"}]


def test_the_seed_spread_is_the_range_over_the_base_seeds():
    args = sweep.parse_args([])
    entry = lambda fid, axes: dict(row=dict(fid=fid, axes=" ".join(axes) or "seed"), axes=list(axes))
    sfx = sweep._suffix(args)
    done = {f"s0{sfx}": entry(97.77, sweep.AXES), f"s1{sfx}": entry(96.24, ()),
            f"p8{sfx}": entry(177.44, ("patch",))}
    assert sweep.seed_spread(done, args) == pytest.approx(97.77 - 96.24)
    done[f"s2{sfx}"] = entry(99.5, ())
    assert sweep.seed_spread(done, args) == pytest.approx(99.5 - 96.24)


def test_a_keys_suffix_reads_back_as_the_budget_n_and_steps_it_was_made_from():
    args = sweep.parse_args(["--budget-images", "64000", "--n", "500", "--steps", "50"])
    assert sweep._measured_at(sweep._suffix(args)) == (64000, 500, 50)


def test_the_small_patchs_full_arm_goes_on_from_its_compute_arm(tmp_path, monkeypatch):
    """The compute arm is the full arm stopped early (same knobs, seed, data order): the full arm
    resumes from its checkpoint instead of training those steps again."""
    args = sweep.parse_args(["--runs", str(tmp_path)])
    arms = sweep.plan_arms(args)
    matched = next(a for a in arms if a["axes"] == {"compute"})
    full = arms[arms.index(matched) + 1]
    (tmp_path / matched["name"]).mkdir()
    (tmp_path / matched["name"] / "checkpoint.pt").write_bytes(b"the compute arm's weights")
    seen = []

    def fake_run(cmd, cwd):
        seen.append(cmd)
        (tmp_path / full["name"] / "metrics.json").write_text("{}")
        return 0
    monkeypatch.setattr(sweep, "run_child", fake_run)
    sweep.train_arm(full, args)
    assert (tmp_path / full["name"] / "checkpoint.pt").read_bytes() == b"the compute arm's weights"
    assert seen[0][seen[0].index("--resume") + 1] == str(tmp_path / full["name"] / "checkpoint.pt")
