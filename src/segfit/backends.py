"""Inference backends: a model loaded from a path that turns a prepared image batch into logits.

``load_backend(path)`` reads a torch checkpoint (or a run folder's best one), an exported ``.onnx``
or TorchScript file with its ``FILE.json`` record, or a bioimage.io package that ``segfit export --format bioimageio``
wrote (its ONNX weights and that record, an attachment). Every backend has ``config`` (the run's :class:`RunConfig`: how
images were prepared, the classes), ``path``, ``multiple`` (the network's total stride) and
``logits(batch)``: ``B x C x h x w`` float tensor -> ``B x K x h x w`` float logits, any ``h x w``.
Nothing here imports Lightning.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import torch

from segfit.config import INFERENCE_PRECISIONS as PRECISIONS, ModelConfig, RunConfig
from segfit.errors import SegfitError


class TorchBackend:
    """A PyTorch network (a :class:`~segfit.nets.SegmentationNet`, which pads to its stride itself).

    ``precision``: ``auto`` runs a model trained in bf16 (``--precision bf16-mixed``) in bf16 where the device
    computes it natively (about twice as fast on such a CPU; the model was validated so), else float32;
    ``32`` always float32 (what an export computes); ``bf16`` always bf16."""

    def __init__(self, net: torch.nn.Module, config: RunConfig, device: str | torch.device = "cpu",
                 path: Path | None = None, precision: str = "auto"):
        from segfit.fingerprint import native_bf16

        if precision not in PRECISIONS:
            raise ValueError(f"unknown inference precision {precision!r}; known: {', '.join(PRECISIONS)}")
        self.device = torch.device(device)
        self.net, self.config, self.path = net.eval().to(self.device), config, path
        self.multiple = int(getattr(net, "multiple", 1))
        trained_bf16 = str(config.train.precision).startswith("bf16")
        self.bf16 = precision == "bf16" or (precision == "auto" and trained_bf16 and native_bf16(self.device.type))
        self.precision = "bf16" if self.bf16 else "32"

    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike, device: str | torch.device | None = None,
                        precision: str = "auto") -> TorchBackend:
        """Rebuild the network from the config stored in a checkpoint (or a run folder's best.ckpt)."""
        from segfit.checkpoint import load_checkpoint
        from segfit.models import create_model, unused_keys
        from segfit.rundir import resolve_checkpoint

        path = resolve_checkpoint(path, "best")
        ckpt = load_checkpoint(path, mmap=True)
        config = RunConfig.from_dict(ckpt["segfit"]["config"])
        net = create_model(ModelConfig(**{**vars(config.model), "encoder_weights": None}))
        state = {k.removeprefix("net."): v for k, v in ckpt["state_dict"].items() if k.startswith("net.")}
        for key in unused_keys(state, net.state_dict()):
            del state[key]
        try:
            net.load_state_dict(state)
        except RuntimeError as exc:
            raise SegfitError(f"checkpoint weights do not fit its {config.model.name} model ({str(exc).splitlines()[0]})",
                              path, "the file is damaged or was edited: use another checkpoint") from None
        return cls(net, config, device or ("cuda" if torch.cuda.is_available() else "cpu"), path, precision)

    @torch.inference_mode()
    def logits(self, batch: torch.Tensor) -> torch.Tensor:
        x = batch.to(self.device, non_blocking=True).contiguous(memory_format=torch.channels_last)
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16):
            return self.net(x).float()


CALIBRATIONS = ("instances", "uncertainty", "inputs")  # what a reported run measured of itself (summary.json)


def calibration(backend, key: str):
    """A model's calibration ``key`` (one of :data:`CALIBRATIONS`): from the backend's own record (an
    ensemble's ``ensemble.json``, an export's ``FILE.json``), else from the ``summary.json`` of the run
    its checkpoint lies in; None when neither has it."""
    from segfit.rundir import read_json_if_any, run_dir_of_model

    record = getattr(backend, "record", None) or {}
    if key in record:
        return record[key]
    run_dir = run_dir_of_model(backend.path)
    return ((read_json_if_any(run_dir / "summary.json") if run_dir else None) or {}).get(key)


class Calibrated:
    """An attribute of a predictor (with a ``backend``): the setting of its objects of the same name calibrated
    on its run's validation images (:func:`calibration` ``instances``), else ``default`` (a value, or a function
    of the predictor), through ``kind``; read once, then settable like any attribute."""

    def __init__(self, default=None, kind=None):
        self.default, self.kind = default, kind

    def __set_name__(self, owner, name: str) -> None:
        self.name = name

    def __get__(self, predictor, owner=None):
        if predictor is None:
            return self
        default = self.default(predictor) if callable(self.default) else self.default
        value = (calibration(predictor.backend, "instances") or {}).get(self.name, default)
        value = self.kind(value) if self.kind and value is not None else value
        predictor.__dict__[self.name] = value  # the instance's own value hides this (non-data) descriptor from now on
        return value


def _export_record(path: Path, fmt: str) -> dict:
    """The record ``segfit export`` wrote beside an exported network (``FILE.json``), checked."""
    record = Path(f"{path}.json")
    if not path.is_file():
        raise SegfitError("model file not found", path, "check the path")
    if not record.is_file():
        raise SegfitError("the exported model has no preprocessing record beside it", record,
                          f"export it with segfit export, which writes MODEL.{fmt}.json")
    try:
        meta = json.loads(record.read_text())
        RunConfig.from_dict(meta["config"]), int(meta["multiple"])
    except (ValueError, KeyError, TypeError) as exc:
        raise SegfitError(f"cannot read the export record ({type(exc).__name__})", record, "export the model again") from None
    return meta


def _averages(meta: dict) -> tuple[int, tuple[str, ...]]:
    """The models and test-time variants an exported network averages inside it (its record says)."""
    return int(meta.get("members") or 1), tuple(meta.get("tta") or ("identity",))


def is_torchscript(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a TorchScript export of segfit (its record beside it says so)."""
    from segfit.rundir import read_json_if_any

    meta = read_json_if_any(f"{path}.json")
    return isinstance(meta, dict) and meta.get("format") == "torchscript" and Path(path).is_file()


class ScriptBackend:
    """An exported TorchScript network (``segfit export --format torchscript``), with the record beside it."""

    def __init__(self, path: str | os.PathLike, device: str | torch.device | None = None):
        import warnings

        path = Path(path)
        meta = _export_record(path, "torchscript")
        self.config, self.multiple = RunConfig.from_dict(meta["config"]), int(meta["multiple"])
        self.record, self.averages = meta.get("calibration") or {}, _averages(meta)
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # torch.jit.load's deprecation notice
                self.net = torch.jit.load(str(path), map_location=self.device).eval()
        except Exception as exc:
            raise SegfitError(f"cannot load TorchScript model ({type(exc).__name__})", path, "export it again with segfit export") from None
        self.path = path

    @torch.inference_mode()
    def logits(self, batch: torch.Tensor) -> torch.Tensor:
        from segfit.nets import run_padded

        return run_padded(lambda x: self.net(x).float(), batch.to(self.device), self.multiple)


class OnnxBackend:
    """An exported ``.onnx`` network run by onnxruntime on the CPU, with the record written beside it."""

    def __init__(self, path: str | os.PathLike):
        path = Path(path)
        meta = _export_record(path, "onnx")
        self.config, self.multiple = RunConfig.from_dict(meta["config"]), int(meta["multiple"])
        self.record, self.averages = meta.get("calibration") or {}, _averages(meta)
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
        self.path, self.device = path, torch.device("cpu")

    def _run(self, x: torch.Tensor) -> torch.Tensor:
        arr = np.ascontiguousarray(x.detach().cpu().numpy(), dtype=np.float32)
        return torch.from_numpy(self.session.run(None, {"image": arr})[0])

    def logits(self, batch: torch.Tensor) -> torch.Tensor:
        from segfit.nets import run_padded

        return run_padded(self._run, batch, self.multiple)


ENSEMBLE_FILE = "ensemble.json"


def load_backend(path: str | os.PathLike, device: str | torch.device | None = None, precision: str = "auto"):
    """The backend for a checkpoint, a run folder (its best checkpoint), an ensemble folder (its
    ``ensemble.json``: the members' probabilities averaged), an exported ``.onnx`` file or a bioimage.io
    package written by segfit (``.zip``, or its unpacked folder). ``precision``: of a PyTorch network
    (:class:`TorchBackend`); an export computes in float32."""
    if str(path).endswith(".onnx"):
        return OnnxBackend(path)
    if is_torchscript(path):
        return ScriptBackend(path, device)
    if is_package(path):
        return load_package(path)
    if (Path(path) / ENSEMBLE_FILE).is_file():
        return load_ensemble(path, device, precision)
    return TorchBackend.from_checkpoint(path, device, precision)


def load_ensemble(folder: str | os.PathLike, device: str | torch.device | None = None, precision: str = "auto"):
    """An :class:`~segfit.ensemble.AveragedBackend` of the members an ``ensemble.json`` lists."""
    from segfit.ensemble import AveragedBackend

    folder = Path(folder)
    record_path = folder / ENSEMBLE_FILE
    try:
        record = json.loads(record_path.read_text())
        members, weights = list(record["members"]), record.get("weights")
    except (ValueError, KeyError, TypeError) as exc:
        raise SegfitError(f"cannot read the ensemble record ({type(exc).__name__})", record_path,
                          "restore it, or train the folds again") from None
    backends = [TorchBackend.from_checkpoint(folder / m, device, precision) for m in members]
    return AveragedBackend(backends, weights=weights, path=record_path, record=record)


PACKAGE_RDF = ("rdf.yaml", "bioimageio.yaml")  # a bioimage.io package's description, by the names the spec allows
PACKAGE_FIX = "give a package written by segfit export --format bioimageio (run others in bioimageio.core, deepImageJ or ilastik)"


def is_package(path: str | os.PathLike) -> bool:
    """Whether ``path`` names a bioimage.io package: a ``.zip`` file, or a folder with an ``rdf.yaml`` (or that file)."""
    path = Path(path)
    return path.suffix.lower() == ".zip" or path.name in PACKAGE_RDF or any((path / n).is_file() for n in PACKAGE_RDF)


def load_package(path: str | os.PathLike) -> OnnxBackend:
    """The ONNX weights of a bioimage.io package that segfit wrote, run with segfit's own record of the run
    (``weights.onnx.source`` + ``.json``, an attachment of the package), so predictions match the exported run."""
    import tempfile
    import zipfile

    path = Path(path)
    if not path.exists():
        raise SegfitError("model file not found", path, "check the path")
    if path.name in PACKAGE_RDF:
        path = path.parent
    if path.is_dir():
        names = {p.name for p in path.iterdir() if p.is_file()}
        onnx = _package_onnx(path, names, lambda name: (path / name).read_bytes())
        backend = OnnxBackend(path / onnx)
    else:
        try:
            with zipfile.ZipFile(path) as archive, tempfile.TemporaryDirectory(prefix="segfit-package-") as tmp:
                onnx = _package_onnx(path, set(archive.namelist()), archive.read)
                for name in (onnx, f"{onnx}.json"):
                    (Path(tmp) / name).write_bytes(archive.read(name))
                backend = OnnxBackend(Path(tmp) / onnx)  # the session holds the network: the files may go
        except (zipfile.BadZipFile, OSError) as exc:
            raise SegfitError(f"cannot read the bioimage.io package ({type(exc).__name__})", path, PACKAGE_FIX) from None
        except SegfitError as exc:  # name the package, not the temporary copy of its files
            raise SegfitError(exc.what, path, exc.fix) from None
    backend.path = path
    return backend


def _package_onnx(path: Path, names: set[str], read) -> str:
    """The file name of a package's ONNX weights, checked to have segfit's record beside them."""
    import yaml

    rdf = next((n for n in PACKAGE_RDF if n in names), None)
    if rdf is None:
        raise SegfitError("not a bioimage.io package (no rdf.yaml)", path, PACKAGE_FIX)
    try:
        description = yaml.safe_load(read(rdf))
    except yaml.YAMLError:
        raise SegfitError("the package's rdf.yaml is not valid YAML", path, PACKAGE_FIX) from None
    weights = description.get("weights") if isinstance(description, dict) else None
    entry = weights.get("onnx") if isinstance(weights, dict) else None
    onnx = str(entry.get("source", "")) if isinstance(entry, dict) else ""
    if not onnx or Path(onnx).name != onnx or onnx not in names or f"{onnx}.json" not in names:
        raise SegfitError("the bioimage.io package has no ONNX weights with segfit's record (NAME.onnx.json) beside them",
                          path, PACKAGE_FIX)
    return onnx
