"""Export a trained network to ONNX, TorchScript or a BioImage Model Zoo package, with its preprocessing recorded.

``segfit export RUN --format onnx --out model.onnx`` writes ``model.onnx`` and ``model.onnx.json``
(the run's config: channels, resize, normalisation, classes and colours, and the multiple of 2 the
network needs). ``Predictor.from_checkpoint("model.onnx")`` runs it with onnxruntime
(:class:`segfit.backends.OnnxBackend`), preparing images exactly as for the PyTorch model.
``--format bioimageio --out model.zip`` packages both networks for the BioImage Model Zoo
(:mod:`segfit.modelzoo`). This module only writes files.
"""

from __future__ import annotations

import os
import shlex
import sys
import warnings
from pathlib import Path

from segfit.errors import SegfitError

FORMATS = ("onnx", "torchscript", "bioimageio")
ONNX_OPSET = 18


def export(checkpoint: str | os.PathLike, out: str | os.PathLike, format: str = FORMATS[0], overwrite: bool = False,
           tta: bool | None = None, author: str | list[str] | None = None, license: str | None = None,
           verbose: bool = True) -> Path:
    """Write the network of ``checkpoint`` (a file, run folder or ensemble folder) to ``out`` and its record
    (preprocessing, classes, stride) to ``out + ".json"`` (``segfit export``); returns ``out``. An ensemble,
    and with ``tta`` (default: the run's plan) its test-time flips and rotations, becomes one network averaging the members'
    probabilities (:class:`segfit.ensemble.AveragedNet`).

    ``format="bioimageio"`` writes a BioImage Model Zoo package instead (``out`` a ``.zip``: both networks,
    test tensors, cover, README; :func:`segfit.modelzoo.write_package`), whose ``rdf.yaml`` names ``author``
    (one name or several; default: git's ``user.name``, else the login name) and ``license`` (an SPDX
    identifier, default CC-BY-4.0)."""
    from segfit.backends import CALIBRATIONS, calibration, is_package, is_torchscript, load_backend

    if format not in FORMATS:
        raise SegfitError(f"unknown export format {format!r}", fix=f"use one of {', '.join(FORMATS)}")
    out = Path(out)
    if out.exists() and not overwrite:
        raise SegfitError("output file exists", out, "choose another --out or add --overwrite")
    if str(checkpoint).endswith(".onnx") or is_package(checkpoint) or is_torchscript(checkpoint):
        raise SegfitError("this is already an exported model", checkpoint, "export a run, checkpoint or ensemble folder")
    if format == "bioimageio" and out.suffix.lower() != ".zip":
        raise SegfitError("a bioimage.io package is a .zip file", out, "give --out NAME.zip")
    if format != "bioimageio" and (author is not None or license is not None):
        raise SegfitError("--author and --license describe a bioimage.io package", out, "add --format bioimageio")
    backend = load_backend(checkpoint, device="cpu", precision="32")  # what the exported graph computes
    tta = backend.config.model.tta if tta is None else tta
    calibrated = {key: value for key in CALIBRATIONS if (value := calibration(backend, key)) is not None}
    net, config, members, variants = _network(backend, tta)
    if config.model.instances and members * len(variants) > 1:  # the averaged network's objects seed at their own level
        calibrated["instances"] = _averaged_seeds(checkpoint, tta, calibrated.get("instances"), verbose)
    if format == "bioimageio":
        from segfit.modelzoo import default_author, write_package

        warn = (lambda text: print(f"segfit: warning: {text}", file=sys.stderr)) if verbose else None
        write_package(backend, lambda fmt, path: _write(net, backend.multiple, config, members, variants, path, fmt, calibrated), out,
                      variants=variants, author=author, license=license, warn=warn)
        if verbose:
            authors = [author] if isinstance(author, str) else list(author or []) or [default_author()]
            print(f"Wrote {out} (bioimage.io model: rdf.yaml, TorchScript and ONNX weights, test tensors, cover, README; "
                  f"authors: {', '.join(authors)}{'' if author else ' (git user.name or login: --author to name them)'}); open it in "
                  f"Fiji (deepImageJ), ilastik or napari, or: segfit predict {shlex.quote(str(out))} IMAGES --out DIR")
        return out
    _write(net, backend.multiple, config, members, variants, out, format, calibrated)
    if verbose:
        print(f"Wrote {out} and {out}.json (preprocessing, classes); predict with: segfit predict {shlex.quote(str(out))} IMAGES --out DIR")
    return out


def _averaged_seeds(checkpoint, tta: bool, current: dict | None, verbose: bool) -> dict | None:
    """The seed and merge levels of the averaged network (:mod:`segfit.seeding`), else the run's ``current`` ones."""
    from segfit.predictor import Predictor
    from segfit.seeding import calibrate_averaged

    predictor = Predictor.from_checkpoint(checkpoint, device="cpu", precision="32", tta=tta)
    best = calibrate_averaged(predictor, print if verbose else lambda *a, **k: None)
    keys = ("seed_level", "merge_level", "min_object_area", "unsure_level", "f1", "how", "members", "variants")
    return current if best is None else {k: best[k] for k in keys}


def _network(backend, tta: bool):
    """``(network, config, members, variants)``: the module to export (logits of inputs already padded to the
    stride) and what it averages."""
    from segfit.ensemble import AveragedBackend, AveragedNet, averaged

    if tta or isinstance(backend, AveragedBackend):
        backend = averaged(backend, tta)
        config = backend.config
        net = AveragedNet([m.net.net.eval() for m in backend.members], backend.variants,
                          config.model.class_channels, backend.weights).eval()
        return net, config, len(backend.members), list(backend.variants)
    return backend.net.net.eval(), backend.config, 1, ["identity"]


def _write(net, multiple: int, config, members: int, variants: list[str], out: Path, format: str,
           calibrated: dict | None = None) -> Path:
    """``net`` to ``out`` (ONNX or a traced TorchScript module) and its record to ``out + ".json"``, with the
    run's calibrations (``calibrated``: seed and merge levels of its objects, review threshold, input range), so
    the exported model's objects and review flags are the run's."""
    import torch

    from segfit.io import atomic_path, write_json

    side = config.data.size or 2 * multiple * 4
    side = -(-side // multiple) * multiple
    example = torch.zeros(1, config.data.channels, side, side)
    with atomic_path(out) as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if format == "onnx":
            torch.onnx.export(net, (example,), str(tmp), input_names=["image"], output_names=["logits"],
                              dynamic_axes={"image": {0: "batch", 2: "height", 3: "width"},
                                            "logits": {0: "batch", 2: "height", 3: "width"}},
                              opset_version=ONNX_OPSET, dynamo=False)
        else:
            torch.jit.trace(net, example, check_trace=False).save(str(tmp))  # the package test or test_export checks it
    from segfit.modelzoo_docs import output_channels

    d = config.data
    write_json(Path(f"{out}.json"), {
        "format": format, "multiple": multiple, "input": "image", "output": "logits",
        "input_layout": f"float32 N x {d.channels} x H x W, H and W multiples of {multiple} (pad by reflection)",
        "input_scaling": "integer images divided by their type's maximum (8-bit 255, 16-bit 65535), float images as they "
                         "are; then per channel (x - mean) / std with config.data.mean and config.data.std"
                         + (f"; {'resized to %d px' % d.size if d.size else 'resized by %.4g' % d.scale} first"
                            if d.size or (d.scale and d.scale != 1) else ""),
        "output_channels": output_channels(config),
        "output_meaning": "logits: a sigmoid of the one class channel (foreground above 0.5), or the argmax of the "
                          "class channels; a 'distance' channel is the logit of each object's distance map (its sigmoid "
                          "seeded at calibration.instances.seed_level splits touching objects)",
        "members": members, "tta": variants, "config": config.to_dict(), "calibration": calibrated or {}})
    return out

