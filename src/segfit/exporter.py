"""Export a trained network to ONNX or TorchScript, with its preprocessing recorded beside it.

``segfit export RUN --format onnx --out model.onnx`` writes ``model.onnx`` and ``model.onnx.json``
(the run's config: channels, resize, normalisation, classes and colours, and the multiple of 2 the
network needs). ``Predictor.from_checkpoint("model.onnx")`` runs it with onnxruntime
(:class:`segfit.backends.OnnxBackend`), preparing images exactly as for the PyTorch model. This
module only writes files.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

from segfit.errors import SegfitError

FORMATS = ("onnx", "torchscript")


def export(checkpoint: str | os.PathLike, out: str | os.PathLike, format: str = FORMATS[0], overwrite: bool = False,
           tta: bool = False, verbose: bool = True) -> Path:
    """Write the network of ``checkpoint`` (a file, run folder or ensemble folder) to ``out`` and its record
    (preprocessing, classes, stride) to ``out + ".json"`` (``segfit export``); returns ``out``. An ensemble,
    and with ``tta`` its test-time flips and rotations, becomes one network averaging the members'
    probabilities (:class:`segfit.ensemble.AveragedNet`)."""
    import torch

    from segfit.backends import load_backend
    from segfit.ensemble import AveragedBackend, AveragedNet, averaged
    from segfit.io import atomic_path, write_json

    if format not in FORMATS:
        raise SegfitError(f"unknown export format {format!r}", fix=f"use one of {', '.join(FORMATS)}")
    out = Path(out)
    if out.exists() and not overwrite:
        raise SegfitError("output file exists", out, "choose another --out or add --overwrite")
    if str(checkpoint).endswith(".onnx"):
        raise SegfitError("this is already an exported model", checkpoint, "export a run, checkpoint or ensemble folder")
    backend = load_backend(checkpoint, device="cpu")
    if tta or isinstance(backend, AveragedBackend):
        backend = averaged(backend, tta)
        config = backend.config
        inner = AveragedNet([m.net.net.eval() for m in backend.members], backend.variants,
                            config.model.class_channels, backend.weights).eval()
        members, variants = len(backend.members), list(backend.variants)
    else:
        inner, config = backend.net.net.eval(), backend.config
        members, variants = 1, ["identity"]
    multiple = backend.multiple
    channels = config.data.channels
    side = config.data.size or 2 * multiple * 4
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
                                     "members": members, "tta": variants, "config": config.to_dict()})
    if verbose:
        print(f"Wrote {out} and {out}.json (preprocessing, classes); predict with: segfit predict {out} IMAGES --out DIR")
    return out
