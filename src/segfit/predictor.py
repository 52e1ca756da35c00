"""Inference from a model file alone: ``Predictor.from_checkpoint(path).predict(image)``.

The model's config says how images were prepared for training (channels, resize, normalisation);
the predictor prepares new images the same way, asks its backend (:mod:`segfit.backends`: a torch
checkpoint or an exported ``.onnx``) for logits and returns class ids at the image's original size
(logits are resized back with bilinear interpolation before the threshold). ``predict()`` is the
``segfit predict`` command.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from segfit.backends import Calibrated, calibration, load_backend
from segfit.config import RunConfig
from segfit.data.formats import read_image, to_channels
from segfit.data.preprocess import image_to_tensor, resize_image, working_size
from segfit.decoding import Prediction, decode
from segfit.errors import SegfitError
from segfit.objects import SEED_LEVEL, drop_unsure
from segfit.rescaling import (adapts_scale, broken_apart, close_scale, closer_is_surer, closer_scale, coarse_scale,
                              fragment_floor, largest_scale, looks_closer, may_look_coarser, median_diameter, surer)

MAX_WHOLE_SIDE = 1024  # larger images are predicted in tiles, whatever the training size


def predict(checkpoint: str | os.PathLike, inputs: list[str | os.PathLike], out: str | os.PathLike,
            tile: int | None = None, overlap: int = 64, auto_tile: float = 4.0, instances: bool | None = None,
            tta: bool | None = None, uncertainty: bool = False, precision: str = "auto", verbose: bool = True) -> list[Path]:
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
        tta: average the label-preserving flips and rotations (default: as the run's plan says, ``config.model.tta``).
        precision: ``auto`` (bf16 for a model trained bf16-mixed, where the device has native bf16), ``32``, ``bf16``.
    """
    inputs = [inputs] if isinstance(inputs, (str, os.PathLike)) else list(inputs)
    predictor = Predictor.from_checkpoint(checkpoint, precision=precision, tile=tile, overlap=overlap, auto_tile=auto_tile,
                                          tta=tta)
    objects = predictor.learns_instances if instances is None else instances
    if objects:  # averaged outputs (--tta, an ensemble) seed their objects at their own level
        from segfit.seeding import calibrate_averaged

        calibrate_averaged(predictor, print if verbose else lambda *a, **k: None)
    written = predictor.predict_files(inputs, out, objects=objects, uncertainty=uncertainty)
    if verbose:
        extra = ", objects (NAME_instances.png, 16-bit ids)" if objects else ""
        extra += ", uncertainty (NAME_uncertainty.png)" if uncertainty else ""
        how = f" ({predictor.members} models" if predictor.members > 1 else " (1 model"
        how += f", {len(predictor.variants)} test-time variants)" if len(predictor.variants) > 1 else ")"
        print(f"Wrote {len(written)} masks (NAME.png, class ids){extra}, overlays (NAME_overlay.png) and coverage.csv "
              f"to {predictor.out}/{how}")
        if uncertainty:
            calibrated, review = predictor.review_threshold(), predictor.last_review
            measure = calibrated and calibrated.get("measure", "mean_uncertainty").replace("_", " ")
            threshold = calibrated["threshold"] if calibrated else None
            why = [f"above the calibrated threshold of {measure} ({threshold:.4f})" if threshold is not None else None,
                   "unlike the training images" if predictor.input_range() else None]
            if any(why):
                names = ": " + ", ".join(review[:10]) + (" ..." if len(review) > 10 else "") if review else ""
                print(f"Review: {len(review)} of {len(written)} images are {' or '.join(w for w in why if w)}{names} "
                      "(predictions.json: images)")
                if calibrated and threshold is None:
                    print(f"Review threshold: none, {calibrated['how']}")
            else:
                print("Review: no calibrated threshold for this model; per-image uncertainty is in predictions.json")
    if verbose and predictor.unusual and not uncertainty:
        names = ", ".join(predictor.unusual[:10]) + (" ..." if len(predictor.unusual) > 10 else "")
        print(f"Check: {len(predictor.unusual)} of {len(written)} images are unlike the training images, so their "
              f"masks may be wrong with confidence: {names} (predictions.json: unusual)")
    if predictor.unreadable:
        first = predictor.unreadable[0]
        raise SegfitError(f"{len(predictor.unreadable)} of {len(written) + len(predictor.unreadable)} images could not be "
                          f"read (the others were predicted), first: {first.what}", first.file, first.fix)
    return written


class Predictor:
    """A model backend with the preprocessing it was trained with.

    Args:
        backend: a :class:`~segfit.backends.TorchBackend` or :class:`~segfit.backends.OnnxBackend`.
        tile: sliding-window tile side (None: automatic, see :meth:`tile_for`).
        overlap: pixels shared by neighbouring tiles.
        auto_tile: tile images larger than this many times the training size (0: never).
    """

    def __repr__(self) -> str:
        m, d = self.config.model, self.config.data
        return (f"Predictor({m.name} {m.encoder if m.name != 'notebook' else ''}, classes {', '.join(d.class_names)}, "
                f"{d.channels} channel(s){', instances' if self.learns_instances else ''}, {type(self.backend).__name__})")

    def __init__(self, backend, tile: int | None = None, overlap: int = 64, auto_tile: float = 4.0, tta: bool | None = None):
        if tta is None:  # the run's plan (an exported network averages its own variants, in its graph)
            tta = backend.config.model.tta and not getattr(backend, "averages", None)
        if tta:
            from segfit.ensemble import averaged

            backend = averaged(backend, tta=True)
        self.backend = backend
        self.tile, self.overlap, self.auto_tile = tile, overlap, auto_tile
        self.out: Path | None = None  # where predict_files wrote last (the --out folder, or OUT-2 beside a user's folder)
        self.last_review: list[str] = []
        self.unreadable: list[SegfitError] = []  # files predict_files could not read
        self.unusual: list[str] = []  # images predict_files found unlike the training images
        self.last_images: list[str] = []  # the images predict_files wrote masks of (file names, or data set names)

    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike, device: str | torch.device | None = None, precision: str = "auto",
                        **options) -> Predictor:
        """A predictor for a checkpoint, a run folder (its best checkpoint), an ensemble folder (its
        ``ensemble.json``) or an exported ``.onnx`` file; ``precision``: ``auto`` (bf16 for a model trained in
        bf16, where the device has it natively), ``32`` or ``bf16`` (see :class:`~segfit.backends.TorchBackend`);
        ``options`` as for the constructor (``tta=True``: average the label-preserving flips and rotations)."""
        return cls(load_backend(path, device, precision), **options)

    @property
    def variants(self) -> tuple[str, ...]:
        """The test-time variants averaged (``("identity",)`` without TTA; an export's own, inside its graph)."""
        exported = getattr(self.backend, "averages", None)
        return exported[1] if exported else tuple(getattr(self.backend, "variants", ("identity",)))

    @property
    def members(self) -> int:
        """How many models are averaged (an export's own, inside its graph)."""
        exported = getattr(self.backend, "averages", None)
        return exported[0] if exported else len(getattr(self.backend, "members", [self.backend]))

    @property
    def precision(self) -> str:
        """What the networks compute in: ``bf16`` or ``32`` (an export: ``32``)."""
        members = getattr(self.backend, "members", [self.backend])
        return "bf16" if any(getattr(m, "bf16", False) for m in members) else "32"

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
        tiles of twice the training size when the image exceeds ``auto_tile`` times it, or
        :data:`MAX_WHOLE_SIDE` (memory: a 2000 px image whole took 1.6 GB more than in tiles)."""
        if self.tile:
            return self.tile if max(h, w) > self.tile else None
        limit = min(self.auto_tile * self.training_size, MAX_WHOLE_SIDE)
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

    def _array(self, image) -> np.ndarray:
        """An image given as an array (grey, RGB, RGBA, any dtype; a PIL image) or as the path of an image file."""
        if isinstance(image, (str, os.PathLike)):
            return read_image(image, self.config.data.channels)
        image = np.asarray(image)
        if image.ndim not in (2, 3) or 0 in image.shape[:2]:
            raise SegfitError(f"image has shape {image.shape}", fix="give an H x W or H x W x C array of pixels, or an image file's path")
        return image

    def _resized(self, image: np.ndarray, scale: float | None = None) -> np.ndarray:
        """``H x W x C`` array in the training channels and resolution (or at ``scale``), not yet normalised."""
        d = self.config.data
        image = to_channels(np.asarray(image), d.channels)
        return resize_image(image, working_size(image.shape, d if scale is None else dataclasses.replace(d, scale=scale)))

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
        return [p.classes for p in self.predict_full(images, out_sizes, batch_size)]

    def predict_objects(self, images: list[np.ndarray], out_sizes: list[tuple[int, int]] | None = None,
                        batch_size: int = 16) -> list[tuple[np.ndarray, np.ndarray]]:
        """``(class ids uint8, objects int32)`` per image: the model's own instances when it learned them
        (:func:`segfit.objects.instances_from_distance`), else the connected components of each class."""
        return [(p.classes, p.objects) for p in self.predict_full(images, out_sizes, batch_size, objects=True)]

    def predict_full(self, images: list[np.ndarray], out_sizes: list[tuple[int, int]] | None = None,
                     batch_size: int = 16, objects: bool = False, uncertainty: bool = False,
                     distance: bool = False) -> list[Prediction]:
        """A :class:`Prediction` per image: class ids, and on request the objects, the uncertainty map
        (the predictive entropy of the averaged class probabilities, 0 certain .. 1 a 50/50 split) and the
        predicted distance map (models that learn instances). An image whose objects come out much smaller than
        the training objects is predicted again at a larger scale (:meth:`closer_scale`); one whose objects the first
        pass broke into pieces takes the coarse look's prediction (:mod:`segfit.rescaling`)."""
        images = [self._array(im) for im in images]
        out_sizes = out_sizes or [im.shape[:2] for im in images]
        d = self.config.data
        # the model's own objects measure the image's
        probe = (self.adapts_scale or coarse_scale(d) is not None) and self.learns_instances
        # how sure the model is of each look decides between them
        looks = close_scale(d) is not None or any(may_look_coarser(d, im.shape) for im in images)
        results = self._predict_resized(images, [None] * len(images), out_sizes, batch_size, objects or probe,
                                        uncertainty or looks, distance)
        # First the coarse look: objects broken into pieces would otherwise pass for small ones, and be predicted
        # again at a larger scale, in more pieces. Then the closer look, for images the model is unsure of.
        # Pieces of objects the coarse look saw whole are not small objects, whichever look was kept.
        pieces = self._look_coarser(images, results, out_sizes, batch_size, uncertainty, distance)
        self._look_closer(images, results, out_sizes, batch_size, objects or probe, distance, pieces)
        again = {j: s for j, r in enumerate(results) if (r.scale is None or r.scale > d.scale) and j not in pieces
                 and self.adapts_scale and (s := self.closer_scale(r)) is not None}
        redone = self._predict_resized([images[j] for j in again], list(again.values()), [out_sizes[j] for j in again],
                                       batch_size, objects, uncertainty, distance)
        for (j, s), r in zip(again.items(), redone):
            results[j] = r._replace(scale=s)
        # the objects the model is nowhere sure of are dropped last: every look above measured all it saw
        return [r._replace(objects=drop_unsure(r.objects, r.uncertainty, self.unsure_level) if objects else None,
                           uncertainty=r.uncertainty if uncertainty else None,
                           expected_iou=r.expected_iou if uncertainty else None) for r in results]

    @property
    def adapts_scale(self) -> bool:
        """Whether images with small objects may be predicted at a larger scale (:mod:`segfit.rescaling`)."""
        return adapts_scale(self.config.data)

    def closer_scale(self, prediction: Prediction) -> float | None:
        """The larger scale for an image whose objects come out much smaller than the training objects
        (:func:`segfit.rescaling.closer_scale`); None for others."""
        d = self.config.data
        return closer_scale(d, prediction, fragment_floor(self.min_object_area, d, prediction.scale))

    def _look_coarser(self, images, results, out_sizes, batch_size, uncertainty, distance) -> set[int]:
        """Replace, in ``results``, the prediction of each image whose objects the first pass broke into pieces by
        the coarse look, where the model is surer of that look (:func:`segfit.rescaling.broken_apart`,
        :func:`segfit.rescaling.surer`); images with no objects, or too small or too large for a coarse look, keep
        theirs. Returns the indices of the images broken into pieces, taken or not: their pieces are no small
        objects to look at from closer (EMPS: a particle 315 px across, its coarse look less sure, came out in 14
        pieces at the working scale and in 38 from closer)."""
        d, area, c = self.config.data, self.min_object_area, coarse_scale(self.config.data)
        look = [j for j in range(len(results)) if may_look_coarser(d, images[j].shape)]
        first = {j: median_diameter(results[j], area) for j in look}
        look = [j for j in look if first[j]]  # no objects: nothing broken
        seen = self._predict_resized([images[j] for j in look], [c] * len(look), [out_sizes[j] for j in look],
                                     batch_size, True, True, distance)
        pieces = {j for j, r in zip(look, seen) if broken_apart(d, first[j], median_diameter(r, area))}
        for j, r in zip(look, seen):
            if j in pieces and surer(r, results[j]):
                results[j] = r._replace(scale=round(c, 4))
        return pieces

    def _look_closer(self, images, results, out_sizes, batch_size, objects, distance, pieces: set[int]) -> None:
        """Replace, in ``results``, the first pass of each image the model is unsure of
        (:func:`segfit.rescaling.looks_closer`; not those of ``pieces``) by a look from closer, where the model is
        surer of it (measured by the objects it would count)."""
        d = self.config.data
        look = {j: round(min(close_scale(d), largest_scale(images[j].shape)), 4) for j, r in enumerate(results)
                if r.scale is None and j not in pieces and looks_closer(d, r, self.min_object_area, self.unsure_level)}
        seen = self._predict_resized([images[j] for j in look], list(look.values()), [out_sizes[j] for j in look],
                                     batch_size, objects, True, distance)
        for (j, s), r in zip(look.items(), seen):
            if s > d.scale and closer_is_surer(r, results[j]):
                results[j] = r._replace(scale=s)

    def _predict_resized(self, images, scales, out_sizes, batch_size, objects, uncertainty, distance) -> list[Prediction]:
        """Predict each image at its scale in ``scales`` (None: the working scale); its fragment floor scales with it
        (:func:`segfit.rescaling.fragment_floor`)."""
        resized = [self._resized(im, s) for im, s in zip(images, scales)]
        floors = [fragment_floor(self.min_object_area, self.config.data, s) for s in scales]
        results: list[Prediction | None] = [None] * len(images)
        order = sorted(range(len(images)), key=lambda i: tuple(resized[i].shape))
        tiled = [i for i in order if self.tile_for(*resized[i].shape[:2])]
        for j in tiled:
            from segfit.tiling import tiled_rows

            # Tiles are normalised as they are cut (no float copy of the whole image), and the blended
            # logits arrive a band of rows at a time: memory grows with the image's width, not its area.
            source = _Tiles(resized[j], self.config.data.mean, self.config.data.std)
            bands = tiled_rows(source, self.logits, self.tile_for(*resized[j].shape[:2]), self.overlap,
                               align=self.backend.multiple)
            results[j] = self.decode(bands, resized[j].shape[:2], out_sizes[j], objects, uncertainty, distance, floors[j])
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
                results[j] = self.decode([(0, lg)], lg.shape[-2:], out_sizes[j], objects, uncertainty, distance, floors[j])
            i += len(group)
        return results  # type: ignore[return-value]

    def decode(self, bands, in_size: tuple[int, int], size: tuple[int, int], objects: bool,
               uncertainty: bool, keep_distance: bool = False, min_object_area: int | None = None) -> Prediction:
        """Network outputs (``(y0, K x n x w)`` bands of rows) -> a :class:`Prediction` of ``size``
        (:func:`segfit.decoding.decode`, with this model's instance settings; ``min_object_area`` for its own)."""
        uncertainty = uncertainty or (objects and self.learns_instances and self.unsure_level is not None)  # to drop unsure objects
        return decode(bands, in_size, size, instances=self.learns_instances, objects=objects, uncertainty=uncertainty,
                      keep_distance=keep_distance, seed_level=self.seed_level, merge_level=self.merge_level,
                      min_object_area=self.min_object_area if min_object_area is None else min_object_area)

    def predict(self, image: np.ndarray | str | os.PathLike) -> np.ndarray:
        """Class ids (uint8, ``H x W``) for one image (an array or an image file) at its original size."""
        return self.predict_many([image])[0]

    def review_threshold(self) -> dict | None:
        """The calibrated uncertainty above which an image is flagged for review: ``{"threshold", "how"}``
        from the ensemble's record or the run's ``summary.json`` (None for a model without one)."""
        return self._calibration("uncertainty")

    # How the model's objects are made (segfit.objects.instances_from_distance), calibrated on its validation
    # images when the run was reported (summary.json / ensemble.json ``instances``), else the defaults:
    seed_level = Calibrated(SEED_LEVEL)  # the distance-map level whose cores seed the objects
    merge_level = Calibrated(None)  # neighbours with no valley below it between them join (None: never)
    # objects under this many pixels (original resolution) are fragments; else the plan's floor
    min_object_area = Calibrated(lambda predictor: predictor.config.model.min_object_area or 0, int)
    unsure_level = Calibrated(None)  # objects whose every pixel is less sure than this are dropped (None: none)

    def input_range(self) -> dict | None:
        """The range of the training images' statistics (:mod:`segfit.novelty`; None when unrecorded)."""
        return self._calibration("inputs")

    def _calibration(self, key: str):
        return calibration(self.backend, key)

    def predict_files(self, inputs: list[str | os.PathLike], out: str | os.PathLike, alpha: float = 0.5,
                      objects: bool | None = None, uncertainty: bool = False) -> list[Path]:
        """Predict image files or folders; write ``NAME.png`` (class ids) and ``NAME_overlay.png``
        into ``out``, plus ``coverage.csv`` (image, class, fraction). With ``objects`` (default: when the
        model learned instances) also ``NAME_instances.png``: 16-bit, one integer per object, 0 =
        background; the overlay then outlines each object. With ``uncertainty`` also ``NAME_uncertainty.png``
        (the normalised predictive entropy times 255) and, in ``predictions.json``, per image its mean, the
        share of uncertain pixels and the review flag (see :meth:`review_threshold`). Returns the mask paths."""
        from segfit.prediction_files import write_predictions

        return write_predictions(self, inputs, out, alpha, objects, uncertainty)

    def record(self, objects: bool = False) -> dict:
        """What ``predictions.json`` says about the masks: their classes and where the model came from
        (``quantify`` reads the class names from it, and finds the run whose report it adds to)."""
        from segfit.rundir import run_dir_of_model

        run_dir = run_dir_of_model(self.checkpoint)
        record = {"checkpoint": str(Path(self.checkpoint).resolve()) if self.checkpoint else None,
                  "run_dir": str(run_dir) if run_dir else None,
                  "class_names": list(self.class_names), "class_colors": [list(c) for c in self.class_colors],
                  "masks": "NAME.png: class ids (0 = background); NAME_overlay.png: overlays",
                  "members": self.members, "tta": list(self.variants), "precision": self.precision,
                  "min_object_area": self.min_object_area}
        if objects:
            merged = f", neighbours with no valley below {self.merge_level} between them joined" if self.merge_level else ""
            merged += f", objects with no pixel surer than {self.unsure_level} uncertainty dropped" if self.unsure_level is not None else ""
            source = (f"the model's instances, seeded at distance {self.seed_level}{merged}" if self.learns_instances
                      else "connected components of each class")
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
