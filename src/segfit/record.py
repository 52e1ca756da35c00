"""What a run was made from: package versions, device, seed and a fingerprint of the data set."""

from __future__ import annotations

import hashlib
import platform
import sys
from importlib import metadata

from segfit.data.formats import file_stamp
from segfit.data.layouts import Sample

PACKAGES = ("segfit", "torch", "torchvision", "lightning", "segmentation-models-pytorch", "torchmetrics",
            "albumentations", "numpy", "pillow", "tifffile", "scikit-image", "safetensors")


def data_fingerprint(samples: list[Sample]) -> dict:
    """A hash of the data set's file list, sizes and modification times (contents are not read)."""
    h = hashlib.sha256()
    for s in sorted(samples, key=lambda s: s.name):
        for path in (s.image, s.mask):
            if path is not None:
                h.update(f"{path.name}|{file_stamp(path)}\n".encode())
    return {"files": sum(1 + (s.mask is not None) for s in samples), "sha256": h.hexdigest()}


def versions() -> dict[str, str]:
    out = {"python": sys.version.split()[0]}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return out


def device_description(trainer=None) -> dict:
    import torch

    info = {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "cpu_threads": torch.get_num_threads()}
    if torch.cuda.is_available():
        info["gpus"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    if trainer is not None:
        info.update(accelerator=type(trainer.accelerator).__name__, devices=trainer.num_devices,
                    nodes=trainer.num_nodes, world_size=trainer.world_size, precision=str(trainer.precision))
    return info


def environment(samples: list[Sample], seed: int, trainer=None) -> dict:
    """The content of a run's ``environment.json``."""
    return {"seed": seed, "data": data_fingerprint(samples), "versions": versions(), "device": device_description(trainer)}
