"""Lightning DDP on CPU (2 gloo processes): every validation image counted once, and the epoch's
validation metrics equal a single-process evaluation of the same checkpoint."""

from __future__ import annotations

import json
import subprocess
import sys

import pandas as pd
import pytest

from segfit.data.synthetic import make_particles
from segfit.evaluation import evaluate


@pytest.mark.slow
def test_two_process_ddp_validation_equals_single_process_evaluation(tmp_path):
    data = make_particles(tmp_path / "data", n=15, size=32, seed=8)
    run = tmp_path / "run"
    proc = subprocess.run([sys.executable, "-m", "segfit", "train", str(data), "--out", str(run), "--channels", "1",
                           "--epochs", "2", "--batch-size", "2", "--val", "5", "--test", "0.2", "-p",
                           "--accelerator", "cpu", "--devices", "2", "--strategy", "ddp", "--lr", "3e-3",
                           "--precision", "32"],  # as evaluate infers (a native-bf16 CPU would plan bf16-mixed)
                          capture_output=True, text=True, timeout=400)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert not (tmp_path / "run-2").exists()  # the second process used the same run folder
    env = json.loads((run / "environment.json").read_text())
    assert env["device"]["world_size"] == 2
    history = pd.read_csv(run / "history.csv")
    assert list(history["epoch"]) == [1, 2]
    last = history.iloc[-1]
    # 5 validation images over 2 processes: 3 + 2, none repeated (a padding sampler would count 6).
    metrics = evaluate(run / "checkpoints" / "last.ckpt", split="val", out=tmp_path / "eval", verbose=False,
                       overlays=False)
    assert metrics["images"] == 5
    for key in ("iou", "dice", "accuracy"):
        assert last[f"val_{key}"] == pytest.approx(metrics[key], abs=1e-6)
    for name, scores in metrics["per_class"].items():
        assert last[f"val_iou_{name}"] == pytest.approx(scores["iou"], abs=1e-6)
