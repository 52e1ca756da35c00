"""Inference from a checkpoint alone: ``Predictor.from_checkpoint(path).predict(image)``.

The checkpoint's config says how images were prepared for training (channels, resize, normalisation);
the predictor prepares new images the same way, runs the network and returns class ids at the
image's original size (logits are resized back with bilinear interpolation before the threshold).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from segfit.config import ModelConfig, RunConfig
from segfit.data.datamodule import image_to_tensor, resize_image
from segfit.data.formats import list_images, read_image, to_channels
from segfit.errors import SegfitError


class Predictor:
    """A trained network with the preprocessing it was trained with."""

    def __init__(self, net: torch.nn.Module, config: RunConfig, device: str | torch.device = "cpu",
                 checkpoint: Path | None = None, tile: int | None = None, overlap: int = 64, auto_tile: float = 4.0):
        self.net, self.config, self.device, self.checkpoint = net.eval().to(device), config, torch.device(device), checkpoint
        self.tile, self.overlap, self.auto_tile = tile, overlap, auto_tile

    @property
    def training_size(self) -> int:
        """The side of the images the network saw in training (resize, crop, or 512 when unknown)."""
        d = self.config.data
        return d.size or d.crop or 512

    def tile_for(self, h: int, w: int) -> int | None:
        """The tile size to use for a prepared ``h x w`` image: ``tile`` when set, else automatic
        tiles of twice the training size when the image exceeds ``auto_tile`` times it."""
        if self.tile:
            return self.tile if max(h, w) > self.tile else None
        limit = self.auto_tile * self.training_size
        return 2 * self.training_size if self.auto_tile and max(h, w) > limit else None

    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike, device: str | torch.device | None = None, **options) -> Predictor:
        """Rebuild the network from the config stored in a checkpoint (or a run folder's best.ckpt).

        ``options``: ``tile`` (sliding-window tile side), ``overlap``, ``auto_tile`` (tile images
        larger than this many times the training size; 0 never)."""
        from segfit.checkpoint import load_checkpoint, resolve_checkpoint
        from segfit.models import create_model

        if str(path).endswith(".onnx"):
            from segfit.export import load_exported

            predictor = load_exported(path)
            for key, value in options.items():
                setattr(predictor, key, value)
            return predictor
        path = resolve_checkpoint(path, "best")
        ckpt = load_checkpoint(path)
        config = RunConfig.from_dict(ckpt["segfit"]["config"])
        net = create_model(ModelConfig(**{**vars(config.model), "encoder_weights": None}))
        state = {k.removeprefix("net."): v for k, v in ckpt["state_dict"].items() if k.startswith("net.")}
        try:
            net.load_state_dict(state)
        except RuntimeError as exc:
            raise SegfitError(f"checkpoint weights do not fit its {config.model.name} model ({str(exc).splitlines()[0]})",
                              path, "the file is damaged or was edited: use another checkpoint") from None
        device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        return cls(net, config, device, path, **options)

    @property
    def class_names(self) -> list[str]:
        return self.config.data.class_names

    @property
    def class_colors(self) -> list[list[int]]:
        return self.config.data.class_colors

    def prepare(self, image: np.ndarray) -> torch.Tensor:
        """``H x W (x C)`` array -> normalised ``C x h x w`` tensor at the training resolution."""
        d = self.config.data
        return image_to_tensor(self._resized(image), d.mean, d.std)

    def _resized(self, image: np.ndarray) -> np.ndarray:
        """``H x W x C`` array in the training channels and resolution, not yet normalised."""
        d = self.config.data
        return resize_image(to_channels(np.asarray(image), d.channels), d.size)

    @torch.inference_mode()
    def logits(self, batch: torch.Tensor, out_size: tuple[int, int] | None = None) -> torch.Tensor:
        """Network logits for a ``B x C x h x w`` batch, resized to ``out_size`` when given."""
        x = batch.to(self.device, non_blocking=True).contiguous(memory_format=torch.channels_last)
        out = self.net(x).float()
        if out_size is not None and tuple(out.shape[-2:]) != tuple(out_size):
            out = F.interpolate(out, size=out_size, mode="bilinear", align_corners=False)
        return out

    def predict_many(self, images: list[np.ndarray], out_sizes: list[tuple[int, int]] | None = None,
                     batch_size: int = 16) -> list[np.ndarray]:
        """Class-id masks (uint8) for several images, batched when their prepared sizes agree.

        Args:
            images: ``H x W (x C)`` arrays.
            out_sizes: size of each returned mask (default: each image's own size).
            batch_size: images per forward pass.
        """
        out_sizes = out_sizes or [tuple(np.asarray(im).shape[:2]) for im in images]
        results: list[np.ndarray | None] = [None] * len(images)
        resized = [self._resized(im) for im in images]
        order = sorted(range(len(images)), key=lambda i: tuple(resized[i].shape))
        tiled = [i for i in order if self.tile_for(*resized[i].shape[:2])]
        for j in tiled:
            from segfit.tiling import predict_tiled

            # Tiles are normalised as they are cut: no float copy of the whole (large) image.
            source = _Tiles(resized[j], self.config.data.mean, self.config.data.std)
            lg = predict_tiled(source, self.logits, self.tile_for(*resized[j].shape[:2]), self.overlap,
                               align=getattr(self.net, "multiple", 1))
            results[j] = _to_mask(lg, out_sizes[j])
        skip = set(tiled)
        order = [i for i in order if i not in skip]
        i = 0
        while i < len(order):
            group = [order[i]]
            while (len(group) < batch_size and i + len(group) < len(order)
                   and resized[order[i + len(group)]].shape == resized[order[i]].shape):
                group.append(order[i + len(group)])
            d = self.config.data
            logits = self.logits(torch.stack([image_to_tensor(resized[j], d.mean, d.std) for j in group]))
            for j, lg in zip(group, logits):
                results[j] = _to_mask(lg, out_sizes[j])
            i += len(group)
        return results  # type: ignore[return-value]

    def predict(self, image: np.ndarray) -> np.ndarray:
        """Class ids (uint8, ``H x W``) for one image at its original size."""
        return self.predict_many([image])[0]

    def predict_files(self, inputs: list[str | os.PathLike], out: str | os.PathLike, alpha: float = 0.5) -> list[Path]:
        """Predict image files or folders; write ``NAME.png`` (class ids) and ``NAME_overlay.png``
        into ``out``, plus ``coverage.csv`` (image, class, fraction). Returns the mask paths."""
        import pandas as pd
        from PIL import Image

        from segfit.io import atomic_path, progress, write_csv, write_json
        from segfit.viz import overlay

        files = list_images(inputs)
        out = Path(out)
        names = [p.stem for p in files]
        dupes = {n for n in names if names.count(n) > 1}
        if dupes:
            raise SegfitError(f"two inputs share the name {sorted(dupes)[0]!r}", out, "predict them into separate --out folders")
        # Predictions never go into an input folder, so they can neither overwrite nor mix with inputs.
        input_dirs = {p.resolve().parent for p in files} | {Path(i).resolve() for i in inputs if Path(i).is_dir()}
        if out.resolve() in input_dirs:
            raise SegfitError("--out is a folder of input images, which predictions could overwrite", out, "choose another --out folder")
        out.mkdir(parents=True, exist_ok=True)
        written, rows = [], []
        for path in progress(files, "predict"):
            image = read_image(path, 3 if self.config.data.channels == 3 else 1)
            mask = self.predict(image)
            target = out / f"{path.stem}.png"
            for dest, array in ((target, mask), (out / f"{path.stem}_overlay.png", overlay(image, mask, self.class_colors))):
                with atomic_path(dest) as tmp:
                    Image.fromarray(array).save(tmp, format="PNG")
            counts = np.bincount(mask.ravel(), minlength=len(self.class_names))
            rows += [{"image": path.name, "class": name, "fraction": counts[i] / mask.size}
                     for i, name in enumerate(self.class_names)]
            written.append(target)
        write_csv(out / "coverage.csv", pd.DataFrame(rows))
        write_json(out / "predictions.json", self.record())
        return written

    def record(self) -> dict:
        """What ``predictions.json`` says about the masks: their classes and where the model came from
        (``quantify`` reads the class names from it, and finds the run whose report it adds to)."""
        from segfit.checkpoint import run_dir_of

        run_dir = run_dir_of(self.checkpoint) if self.checkpoint and str(self.checkpoint).endswith(".ckpt") else None
        return {"checkpoint": str(Path(self.checkpoint).resolve()) if self.checkpoint else None,
                "run_dir": str(run_dir) if run_dir else None,
                "class_names": list(self.class_names), "class_colors": [list(c) for c in self.class_colors],
                "masks": "NAME.png: class ids (0 = background); NAME_overlay.png: overlays"}


class _Tiles:
    """A ``H x W x C`` image seen as a ``C x H x W`` tensor whose slices are normalised on demand."""

    def __init__(self, image: np.ndarray, mean, std):
        self.image, self.mean, self.std = image, mean, std
        self.shape = (image.shape[2], *image.shape[:2])

    def __getitem__(self, key) -> torch.Tensor:
        _, rows, cols = key
        return image_to_tensor(self.image[rows, cols], self.mean, self.std)


def _to_mask(logits: torch.Tensor, size: tuple[int, int]) -> np.ndarray:
    """``K x h x w`` logits -> uint8 class ids of ``size`` (logits resized bilinearly first)."""
    from segfit.module import logits_to_classes

    lg = logits[None]
    if tuple(lg.shape[-2:]) != tuple(size):
        lg = F.interpolate(lg, size=size, mode="bilinear", align_corners=False)
    return logits_to_classes(lg)[0].to(torch.uint8).cpu().numpy()

