"""Interrupted runs: SIGTERM/SIGKILL keep a whole last.ckpt, and a resumed run equals an uninterrupted one."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pandas as pd
import pytest
import torch

from segfit.data.synthetic import make_particles
from segfit.runs import train

OPTIONS = dict(channels=1, batch_size=4, val=4, test=0.2, seed=3, preload=True, deterministic=True,
               augment="light", accelerator="cpu", verbose=False, plan=False)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_particles(tmp_path_factory.mktemp("interrupt-data"), n=16, size=32, seed=5)


def test_resumed_run_equals_uninterrupted_run(data, tmp_path):
    whole = train(data, tmp_path / "whole", epochs=4, **OPTIONS)
    train(data, tmp_path / "parts", epochs=2, **OPTIONS)
    resumed = train(resume=tmp_path / "parts", epochs=4, verbose=False)
    a, b = whole.history, resumed.history
    assert list(b["epoch"]) == [1, 2, 3, 4]
    numeric = [c for c in a.columns if c not in ("seconds", "data_seconds")]
    pd.testing.assert_frame_equal(a[numeric], b[numeric], rtol=0, atol=1e-5)
    wa = torch.load(tmp_path / "whole" / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    wb = torch.load(tmp_path / "parts" / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    assert wa.keys() == wb.keys()
    for k in wa:
        assert torch.allclose(wa[k].float(), wb[k].float(), atol=1e-6), k


def _start(data, out):
    return subprocess.Popen([sys.executable, "-m", "segfit", "train", str(data), "--out", str(out), "--channels", "1",
                             "--epochs", "200", "--batch-size", "4", "-p", "--val", "4"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for_epochs(out, proc, n, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        history = out / "history.csv"
        if history.is_file() and len(history.read_text().strip().splitlines()) > n:
            return
        if proc.poll() is not None:
            raise AssertionError(proc.stderr.read())
        time.sleep(0.2)
    raise AssertionError("training did not reach the epoch in time")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
def test_stopped_run_keeps_last_checkpoint_and_resumes(data, tmp_path, sig):
    out = tmp_path / "run"
    proc = _start(data, out)
    _wait_for_epochs(out, proc, 3)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    if sig == signal.SIGTERM:
        assert proc.returncode == 143  # 128 + SIGTERM, as a shell or a scheduler expects
        assert "Resume with: segfit train --resume" in err and "Traceback" not in err
    else:
        assert proc.returncode == -signal.SIGKILL
    ckpt = torch.load(out / "checkpoints" / "last.ckpt", weights_only=True)
    done = len(ckpt["segfit"]["history"])
    # history.csv is written just before the epoch's checkpoint: a kill in between loses that epoch only.
    assert done >= 2 and ckpt["epoch"] == done - 1
    result = subprocess.run([sys.executable, "-m", "segfit", "train", "--resume", str(out), "--epochs", str(done + 1)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    history = pd.read_csv(out / "history.csv")
    assert list(history["epoch"]) == list(range(1, done + 2))
    assert not list(out.rglob("*.tmp"))  # a SIGKILL mid-write leaves a temporary file; resume removes it
