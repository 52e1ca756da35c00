"""Export a trained network to ONNX or TorchScript, with its preprocessing recorded beside it.

``segfit export RUN --format onnx --out model.onnx`` writes ``model.onnx`` and ``model.onnx.json``
(the run's config: channels, resize, normalisation, classes and colours, and the multiple of 2 the
network needs). ``Predictor.from_checkpoint("model.onnx")`` runs it with onnxruntime, preparing
images exactly as for the PyTorch model.
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from segfit.config import RunConfig
from segfit.errors import SegfitError

FORMATS = ("onnx", "torchscript")


def export(checkpoint: str | os.PathLike, out: str | os.PathLike, format: str = "onnx", overwrite: bool = False) -> Path:
    """Write the network of ``checkpoint`` to ``out`` (and ``out + ".json"``); returns ``out``."""
    from segfit.io import atomic_path, write_json
    from segfit.predict import Predictor

    if format not in FORMATS:
        raise SegfitError(f"unknown export format {format!r}", fix=f"use one of {', '.join(FORMATS)}")
    out = Path(out)
    if out.exists() and not overwrite:
        raise SegfitError("output file exists", out, "choose another --out or add --overwrite")
    predictor = Predictor.from_checkpoint(checkpoint, device="cpu")
    net = predictor.net
    inner, multiple = net.net.eval(), net.multiple
    channels = predictor.config.data.channels
    side = predictor.config.data.size or 2 * multiple * 4
    side = -(-side // multiple) * multiple
    example = torch.zeros(1, channels, side, side)
    with atomic_path(out) as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if format == "onnx":
            torch.onnx.export(inner, (example,), str(tmp), input_names=["image"], output_names=["logits"],
                              dynamic_axes={"image": {0: "batch", 2: "height", 3: "width"},
                                            "logits": {0: "batch", 2: "height", 3: "width"}},
                              opset_version=18, dynamo=False)
        else:
            torch.jit.trace(inner, example).save(str(tmp))
    write_json(Path(f"{out}.json"), {"format": format, "multiple": multiple, "input": "image", "output": "logits",
                                     "config": predictor.config.to_dict()})
    return out


class OnnxNet:
    """Callable like the PyTorch network (``B x C x H x W`` tensor -> logits), run by onnxruntime.
    Pads inputs to the network's multiple (reflect) and crops the logits back."""

    def __init__(self, path: Path, multiple: int):
        try:
            import onnxruntime as ort
        except ImportError:
            raise SegfitError("onnxruntime is not installed", path, "pip install onnxruntime") from None
        options = ort.SessionOptions()
        options.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:
            raise SegfitError(f"cannot load ONNX model ({type(exc).__name__})", path, "export it again with segfit export") from None
        self.multiple = multiple

    def eval(self):
        return self

    def to(self, *args, **kwargs):
        return self

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        ph, pw = (-h) % self.multiple, (-w) % self.multiple
        if ph or pw:
            x = F.pad(x, (0, pw, 0, ph), mode="reflect" if ph < h and pw < w else "replicate")
        arr = np.ascontiguousarray(x.detach().cpu().numpy(), dtype=np.float32)
        out = torch.from_numpy(self.session.run(None, {"image": arr})[0])
        return out[..., :h, :w]


def load_exported(path: str | os.PathLike):
    """A :class:`~segfit.predict.Predictor` for an exported ``.onnx`` file (with its ``.json``)."""
    from segfit.predict import Predictor

    path = Path(path)
    meta_path = Path(f"{path}.json")
    if not path.is_file():
        raise SegfitError("model file not found", path, "check the path")
    if not meta_path.is_file():
        raise SegfitError("the exported model has no preprocessing record beside it", meta_path,
                          "export it with segfit export, which writes MODEL.onnx.json")
    meta = json.loads(meta_path.read_text())
    config = RunConfig.from_dict(meta["config"])
    return Predictor(OnnxNet(path, int(meta["multiple"])), config, "cpu", path)
