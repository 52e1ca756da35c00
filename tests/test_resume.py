"""`segfit train --resume`: a run continues in its own folder, keeping its history and split."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from segfit.cli import main as cli
from segfit.data.synthetic import make_scenes
from segfit.runs import train as segfit_train


def read_json(path: Path) -> dict:
    return json.loads(Path(path).read_text())


def history(run: Path) -> pd.DataFrame:
    return pd.read_csv(run / "history.csv")


def train_cli(*args) -> None:
    assert cli(["train", *map(str, args)]) == 0


@pytest.fixture(scope="module")
def scenes(tmp_path_factory) -> Path:
    return make_scenes(tmp_path_factory.mktemp("scenes") / "scenes", n=10, size=32, seed=2)


def check_continued(run: Path, before: pd.DataFrame, epochs: int) -> pd.DataFrame:
    """history.csv holds epochs 1..epochs once each, with the earlier rows exactly as they were."""
    after = history(run)
    assert after["epoch"].tolist() == list(range(1, epochs + 1))
    pd.testing.assert_frame_equal(after.iloc[: len(before)].reset_index(drop=True), before, check_exact=True)
    assert np.isfinite(after[["train_loss", "val_loss"]].to_numpy()).all()
    assert read_json(run / "summary.json")["epochs"] == epochs
    last = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    assert last["epoch"] == epochs - 1
    assert [r["epoch"] for r in last["segfit"]["history"]] == list(range(1, epochs + 1))
    return after


def test_resume_from_checkpoint_run_folder_and_model_option(scenes, tmp_path, capsys):
    run = tmp_path / "run"
    segfit_train(scenes, run, classes=3, class_names=["background", "leaves", "wood"], size=32, epochs=2,
                 batch_size=4, preload=True, verbose=False)
    split = read_json(run / "split.json")
    h2 = history(run)
    assert h2["epoch"].tolist() == [1, 2]

    train_cli("--resume", run / "checkpoints" / "last.ckpt", "--epochs", "4")
    h4 = check_continued(run, h2, 4)
    train_cli("--resume", run, "--epochs", "5")
    h5 = check_continued(run, h4, 5)
    train_cli("-r", "-m", run / "checkpoints" / "last.ckpt", "--epochs", "6")
    h6 = check_continued(run, h5, 6)
    config = (run / "config.json").read_text()
    assert cli(["train", "--resume", str(run), "--epochs", "8", "--out", str(tmp_path / "other")]) == 2  # not elsewhere
    assert "goes on in its own folder" in capsys.readouterr().err and not (tmp_path / "other").exists()
    assert cli(["train", "--resume", str(run)]) == 2  # all its epochs done: said, and nothing changes
    assert (run / "config.json").read_text() == config and history(run).equals(h6)

    assert read_json(run / "split.json") == split  # same split, same folder, no run-2
    assert not list(tmp_path.glob("run-*"))
    last = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    assert last["segfit"]["config"]["data"]["class_names"] == ["background", "leaves", "wood"]
    assert "val_iou_leaves" in history(run).columns


def test_adamw_onecycle_then_resume_with_more_epochs(scenes, tmp_path):
    run = tmp_path / "run"
    train_cli(scenes, "-o", run, "-c", "3", "--optimizer", "adamw", "--weight-decay", "1e-4", "--scheduler", "onecycle",
              "--size", "32", "-e", "2", "-bs", "2", "-p")  # 6 training images: 3 steps per epoch
    cfg = read_json(run / "config.json")["train"]
    assert (cfg["optimizer"], cfg["weight_decay"], cfg["scheduler"]) == ("adamw", 1e-4, "onecycle")
    h2 = history(run)
    assert h2["epoch"].tolist() == [1, 2]
    lr = h2["lr"].to_numpy()
    assert np.isfinite(lr).all() and (lr > 0).all() and (lr <= cfg["lr"] + 1e-12).all()
    assert lr[0] != pytest.approx(lr[1], rel=1e-6)  # the one-cycle schedule moves the learning rate
    # extend the finished cycle: the schedule is stretched to the new number of epochs
    train_cli("--resume", run, "--epochs", "3")
    h3 = check_continued(run, h2, 3)
    lr = h3["lr"].to_numpy()
    assert np.isfinite(lr).all() and (lr > 0).all() and (lr <= cfg["lr"] + 1e-12).all()


# BUG (src/segfit/runs.py build_trainer, the ModelCheckpoint(filename="best", monitor="val_loss", save_top_k=1,
# save_last=True) at ~line 246): since Lightning 2.6 save_last only writes last.ckpt when a top-k checkpoint is
# written at the same step, so last.ckpt stays at the best epoch whenever the final epoch does not lower
# val_loss. Resuming from it repeats epochs and rewrites history rows. lr=1e-12 leaves the weights unchanged,
# so epoch 2's val_loss equals epoch 1's exactly and epoch 2 is deterministically "not better".
def test_last_checkpoint_is_the_last_epoch_even_when_it_is_not_the_best(scenes, tmp_path):
    run = tmp_path / "run"
    train_cli(scenes, "-o", run, "-c", "3", "--size", "32", "--lr", "1e-12", "-e", "2", "-bs", "4", "-p", "--no-plan")
    h2 = history(run)
    assert h2["val_loss"].iloc[1] >= h2["val_loss"].iloc[0]  # epoch 2 is not an improvement
    last = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    assert last["epoch"] == 1, "last.ckpt holds epoch 1, not the last epoch (2)"
    assert [r["epoch"] for r in last["segfit"]["history"]] == [1, 2]
    train_cli("--resume", run, "--epochs", "3")
    check_continued(run, h2, 3)


def test_resume_without_a_checkpoint_is_an_error(tmp_path, capsys):
    assert cli(["train", "-r"]) == 2
    assert "--resume" in capsys.readouterr().err
    assert cli(["train", "--resume", str(tmp_path / "missing.ckpt")]) == 2
    stopped = tmp_path / "stopped"  # stopped before its first epoch ended: no checkpoint to go on from
    (stopped / "checkpoints").mkdir(parents=True)
    (stopped / "config.json").write_text("{}")
    capsys.readouterr()
    assert cli(["train", "--resume", str(stopped)]) == 2
    assert "stopped before its first epoch ended" in capsys.readouterr().err


def test_a_run_stopped_before_its_first_epoch_is_replaced_by_the_next(tmp_path):
    """Ctrl-C before the first checkpoint leaves nothing to resume: the next run with that --out takes the
    folder (not OUT-2); one still in its first epoch (unmarked) or holding the user's files is left alone."""
    from segfit.rundir import make_run_dir

    def stopped(folder, marked=True):
        (folder / "checkpoints").mkdir(parents=True)
        (folder / "config.json").write_text("{}")
        if marked:
            (folder / "summary.json").write_text(json.dumps({"interrupted": "before the first epoch ended"}))
        return folder

    said = []
    assert make_run_dir(stopped(tmp_path / "a"), say=said.append) == tmp_path / "a"
    assert not any((tmp_path / "a").iterdir()) and "replaced" in said[0]
    assert make_run_dir(stopped(tmp_path / "b", marked=False), say=said.append) == tmp_path / "b-2"
    (stopped(tmp_path / "c") / "notes.txt").write_text("mine")
    assert make_run_dir(tmp_path / "c", say=said.append) == tmp_path / "c-2"
    assert (tmp_path / "c" / "notes.txt").read_text() == "mine"
