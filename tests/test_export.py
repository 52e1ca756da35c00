"""Export to ONNX / TorchScript: the exported model predicts what the PyTorch model predicts."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from segfit.data.synthetic import particle_image
from segfit.errors import SegfitError
from segfit.exporter import export
from segfit.predictor import Predictor


@pytest.fixture(scope="module")
def exported(trained_run, tmp_path_factory):
    out = tmp_path_factory.mktemp("export") / "model.onnx"
    export(trained_run, out, "onnx")
    return out


def test_onnx_masks_equal_pytorch_masks(trained_run, exported):
    meta = json.loads(exported.with_name("model.onnx.json").read_text())
    assert meta["multiple"] == 4 and meta["config"]["data"]["channels"] == 1
    names = json.loads((trained_run / "config.json").read_text())["data"]["class_names"]
    assert meta["output_channels"][0] == names[1] and "(x - mean) / std" in meta["input_scaling"]  # how to feed it
    torch_predictor = Predictor.from_checkpoint(trained_run)
    # Shift the head bias so the random-ish model predicts both classes (agreement is not trivial).
    onnx_predictor = Predictor.from_checkpoint(exported)
    rng = np.random.default_rng(0)
    agree = []
    for size in ((32, 32), (45, 61), (17, 9)):
        image = particle_image(rng, max(size))[0][: size[0], : size[1]]
        a, b = torch_predictor.predict(image), onnx_predictor.predict(image)
        assert a.shape == b.shape == size
        agree.append((a == b).mean())
    assert min(agree) >= 0.999
    x = torch.rand(2, 1, 36, 44)
    ref = torch_predictor.backend.logits(x).detach()
    got = onnx_predictor.backend.logits(x)
    assert torch.allclose(ref, got, atol=1e-4)
    # The run's calibrations travel with the export: the same review range, seed level and threshold.
    summary = json.loads((trained_run / "summary.json").read_text())
    assert meta["calibration"] == {k: summary[k] for k in ("instances", "uncertainty", "inputs") if summary.get(k) is not None}
    assert "inputs" in meta["calibration"] and onnx_predictor.input_range() == torch_predictor.input_range()
    assert onnx_predictor.seed_level == torch_predictor.seed_level
    assert onnx_predictor.review_threshold() == torch_predictor.review_threshold()


def test_torchscript_export_matches(trained_run, tmp_path):
    out = export(trained_run, tmp_path / "model.pt", "torchscript")
    scripted = torch.jit.load(str(out))
    net = Predictor.from_checkpoint(trained_run).backend.net.net
    x = torch.rand(1, 1, 32, 48)
    assert torch.allclose(scripted(x), net(x), atol=1e-5)
    # segfit predicts with it, as the export's message says (any size: padded to the stride like the run).
    image = particle_image(np.random.default_rng(1), 45)[0][:45, :37]
    ts, ref = Predictor.from_checkpoint(out), Predictor.from_checkpoint(trained_run)
    assert (ts.predict(image) == ref.predict(image)).mean() >= 0.999 and ts.input_range() == ref.input_range()
    with pytest.raises(SegfitError, match="already an exported model"):
        export(out, tmp_path / "again.onnx", "onnx")


def test_export_refuses_to_overwrite_and_needs_its_record(trained_run, exported, tmp_path):
    with pytest.raises(SegfitError, match="exists"):
        export(trained_run, exported, "onnx")
    lonely = tmp_path / "lonely.onnx"
    lonely.write_bytes(exported.read_bytes())
    with pytest.raises(SegfitError, match="preprocessing record"):
        Predictor.from_checkpoint(lonely)


def test_predict_cli_accepts_onnx(exported, particles_dir, tmp_path):
    import subprocess
    import sys

    images = sorted((particles_dir / "images").glob("*.png"))[:2]
    proc = subprocess.run([sys.executable, "-m", "segfit", "predict", str(exported), *map(str, images),
                           "--out", str(tmp_path / "p")], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "p" / f"{images[0].stem}.png").is_file() and (tmp_path / "p" / "coverage.csv").is_file()
