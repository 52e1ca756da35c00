"""Inference from a model file alone: ``Predictor.from_checkpoint(path).predict(image)``.

The model's config says how images were prepared for training (channels, resize, normalisation);
the predictor prepares new images the same way, asks its backend (:mod:`segfit.backends`: a torch
checkpoint or an exported ``.onnx``) for logits and returns class ids at the image's original size
(logits are resized back with bilinear interpolation before the threshold). ``predict()`` is the
``segfit predict`` command.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from segfit.backends import OnnxBackend, TorchBackend, load_backend
from segfit.config import RunConfig
from segfit.data.formats import list_images, read_image, to_channels
from segfit.data.preprocess import image_to_tensor, resize_image, working_size
from segfit.errors import SegfitError
from segfit.nets import logits_to_classes


def predict(checkpoint: str | os.PathLike, inputs: list[str | os.PathLike], out: str | os.PathLike,
            tile: int | None = None, overlap: int = 64, auto_tile: float = 4.0, instances: bool | None = None,
            verbose: bool = True) -> list[Path]:
    """Predict image files or folders into ``out`` (``segfit predict``): ``NAME.png`` class ids,
    ``NAME_overlay.png``, ``coverage.csv`` and ``predictions.json``; ``NAME_instances.png`` (16-bit
    object ids) when the model learned instances or ``instances`` is True. Returns the mask paths.

    Args:
        checkpoint: checkpoint file, run folder or exported ``.onnx`` file.
        inputs: image files or folders.
        out: output folder (never an input folder).
        tile: sliding-window tiles of ``tile x tile`` (default: automatic for large images).
        overlap: pixels shared by neighbouring tiles.
        auto_tile: tile images larger than this many times the training size (0: never).
    """
    inputs = [inputs] if isinstance(inputs, (str, os.PathLike)) else list(inputs)
    predictor = Predictor.from_checkpoint(checkpoint, tile=tile, overlap=overlap, auto_tile=auto_tile)
    objects = predictor.learns_instances if instances is None else instances
    written = predictor.predict_files(inputs, out, objects=objects)
    if verbose:
        extra = ", objects (NAME_instances.png, 16-bit ids)" if objects else ""
        print(f"Wrote {len(written)} masks (NAME.png, class ids){extra}, overlays (NAME_overlay.png) and coverage.csv to {out}/")
    return written


class Predictor:
    """A model backend with the preprocessing it was trained with.

    Args:
        backend: a :class:`~segfit.backends.TorchBackend` or :class:`~segfit.backends.OnnxBackend`.
        tile: sliding-window tile side (None: automatic, see :meth:`tile_for`).
        overlap: pixels shared by neighbouring tiles.
        auto_tile: tile images larger than this many times the training size (0: never).
    """

    def __init__(self, backend: TorchBackend | OnnxBackend, tile: int | None = None, overlap: int = 64,
                 auto_tile: float = 4.0):
        self.backend = backend
        self.tile, self.overlap, self.auto_tile = tile, overlap, auto_tile

    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike, device: str | torch.device | None = None, **options) -> Predictor:
        """A predictor for a checkpoint, a run folder (its best checkpoint) or an exported ``.onnx``
        file; ``options`` as for the constructor."""
        return cls(load_backend(path, device), **options)

    @property
    def config(self) -> RunConfig:
        return self.backend.config

    @property
    def checkpoint(self) -> Path | None:
        return self.backend.path

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
        image = to_channels(np.asarray(image), d.channels)
        return resize_image(image, working_size(image.shape, d))

    @torch.inference_mode()
    def logits(self, batch: torch.Tensor, out_size: tuple[int, int] | None = None) -> torch.Tensor:
        """Network logits for a ``B x C x h x w`` batch, resized to ``out_size`` when given."""
        out = self.backend.logits(batch)
        if out_size is not None and tuple(out.shape[-2:]) != tuple(out_size):
            out = F.interpolate(out, size=out_size, mode="bilinear", align_corners=False)
        return out

    @property
    def learns_instances(self) -> bool:
        """Whether the network predicts objects itself (a distance map beside the classes)."""
        return bool(self.config.model.instances)

    def predict_many(self, images: list[np.ndarray], out_sizes: list[tuple[int, int]] | None = None,
                     batch_size: int = 16) -> list[np.ndarray]:
        """Class-id masks (uint8) for several images, batched when their prepared sizes agree.

        Args:
            images: ``H x W (x C)`` arrays.
            out_sizes: size of each returned mask (default: each image's own size).
            batch_size: images per forward pass.
        """
        return [classes for classes, _ in self._predict(images, out_sizes, batch_size, objects=False)]

    def predict_objects(self, images: list[np.ndarray], out_sizes: list[tuple[int, int]] | None = None,
                        batch_size: int = 16) -> list[tuple[np.ndarray, np.ndarray]]:
        """``(class ids uint8, objects int32)`` per image: the model's own instances when it learned them
        (:func:`segfit.objects.instances_from_distance`), else the connected components of each class."""
        return self._predict(images, out_sizes, batch_size, objects=True)

    def _predict(self, images, out_sizes, batch_size: int, objects: bool) -> list[tuple[np.ndarray, np.ndarray | None]]:
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
                               align=self.backend.multiple)
            results[j] = self._outputs(lg, out_sizes[j], objects)
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
                results[j] = self._outputs(lg, out_sizes[j], objects)
            i += len(group)
        return results  # type: ignore[return-value]

    def _outputs(self, logits: torch.Tensor, size: tuple[int, int], objects: bool) -> tuple[np.ndarray, np.ndarray | None]:
        """``K x h x w`` network outputs -> uint8 class ids of ``size`` (outputs resized bilinearly first)
        and, with ``objects``, the objects as an int32 label image."""
        from segfit.objects import instances_from_distance, true_objects

        lg = logits[None]
        if tuple(lg.shape[-2:]) != tuple(size):
            lg = F.interpolate(lg, size=size, mode="bilinear", align_corners=False)
        k = lg.shape[1] - int(self.learns_instances)  # the class logits; then the distance logit
        classes = logits_to_classes(lg[:, :k])[0].to(torch.uint8).cpu().numpy()
        if not objects:
            return classes, None
        if self.learns_instances:
            return classes, instances_from_distance(classes, torch.sigmoid(lg[0, k]).cpu().numpy(),
                                                    min_area=self.config.model.min_object_area)
        return classes, true_objects(classes, classes, binary=False)

    def predict(self, image: np.ndarray) -> np.ndarray:
        """Class ids (uint8, ``H x W``) for one image at its original size."""
        return self.predict_many([image])[0]

    def predict_files(self, inputs: list[str | os.PathLike], out: str | os.PathLike, alpha: float = 0.5,
                      objects: bool | None = None) -> list[Path]:
        """Predict image files or folders; write ``NAME.png`` (class ids) and ``NAME_overlay.png``
        into ``out``, plus ``coverage.csv`` (image, class, fraction). With ``objects`` (default: when the
        model learned instances) also ``NAME_instances.png``: 16-bit, one integer per object, 0 =
        background; the overlay then outlines each object. Returns the mask paths."""
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
        objects = self.learns_instances if objects is None else objects
        written, rows = [], []
        for path in progress(files, "predict"):
            image = read_image(path, 3 if self.config.data.channels == 3 else 1)
            mask, found = self._predict([image], None, 1, objects)[0]
            target = out / f"{path.stem}.png"
            arrays = [(target, mask), (out / f"{path.stem}_overlay.png", overlay(image, mask, self.class_colors, objects=found))]
            if found is not None:
                arrays.append((out / f"{path.stem}_instances.png", _instance_png(found, path)))
            for dest, array in arrays:
                with atomic_path(dest) as tmp:
                    Image.fromarray(array).save(tmp, format="PNG")
            counts = np.bincount(mask.ravel(), minlength=len(self.class_names))
            rows += [{"image": path.name, "class": name, "fraction": counts[i] / mask.size}
                     for i, name in enumerate(self.class_names)]
            written.append(target)
        write_csv(out / "coverage.csv", pd.DataFrame(rows))
        write_json(out / "predictions.json", self.record(objects))
        return written

    def record(self, objects: bool = False) -> dict:
        """What ``predictions.json`` says about the masks: their classes and where the model came from
        (``quantify`` reads the class names from it, and finds the run whose report it adds to)."""
        from segfit.rundir import run_dir_of_model

        run_dir = run_dir_of_model(self.checkpoint)
        record = {"checkpoint": str(Path(self.checkpoint).resolve()) if self.checkpoint else None,
                  "run_dir": str(run_dir) if run_dir else None,
                  "class_names": list(self.class_names), "class_colors": [list(c) for c in self.class_colors],
                  "masks": "NAME.png: class ids (0 = background); NAME_overlay.png: overlays"}
        if objects:
            source = "the model's instances" if self.learns_instances else "connected components of each class"
            record["instances"] = f"NAME_instances.png: 16-bit, one integer per object, 0 = background ({source})"
        return record


class _Tiles:
    """A ``H x W x C`` image seen as a ``C x H x W`` tensor whose slices are normalised on demand."""

    def __init__(self, image: np.ndarray, mean, std):
        self.image, self.mean, self.std = image, mean, std
        self.shape = (image.shape[2], *image.shape[:2])

    def __getitem__(self, key) -> torch.Tensor:
        _, rows, cols = key
        return image_to_tensor(self.image[rows, cols], self.mean, self.std)





def _instance_png(objects: np.ndarray, path: Path) -> np.ndarray:
    """A label image as 16-bit PNG data (at most 65535 objects)."""
    if objects.max(initial=0) > np.iinfo(np.uint16).max:
        raise SegfitError(f"{int(objects.max())} objects are more than a 16-bit instance map holds", path,
                          "predict the image in parts (crop it), or use segfit.Predictor.predict_objects from Python")
    return objects.astype(np.uint16)
