"""``segfit predict``'s files: ``NAME.png`` class ids, ``NAME_overlay.png``, ``NAME_instances.png``,
``NAME_uncertainty.png``, ``coverage.csv`` and ``predictions.json``, one image at a time."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from segfit.data.formats import PREDICTED_SUFFIXES, read_image
from segfit.data.layouts import find_images
from segfit.decoding import UNCERTAIN_PIXEL, image_uncertainty, instance_png, to_uint8
from segfit.errors import SegfitError
from segfit.novelty import file_colour, image_stats, unusual
from segfit.objects import label_counts
from segfit.rundir import output_dir, previous_outputs, remove_stale


def write_predictions(self, inputs: list[str | os.PathLike], out: str | os.PathLike, alpha: float = 0.5,
                      objects: bool | None = None, uncertainty: bool = False) -> list[Path]:
    """:meth:`segfit.predictor.Predictor.predict_files` (``self``: the predictor)."""

    import pandas as pd

    from segfit.io import progress, write_csv, write_json, write_png
    from segfit.viz import overlay

    listed = find_images(inputs)
    out = Path(out)
    names = [name for _, name in listed]
    dupes = {n for n in names if names.count(n) > 1}
    if dupes:
        raise SegfitError(f"two inputs share the name {sorted(dupes)[0]!r}", out, "predict them into separate --out folders")
    # Predictions never go into an input folder, so they can neither overwrite nor mix with inputs.
    input_dirs = {p.resolve().parent for p, _ in listed} | {Path(i).resolve() for i in inputs if Path(i).is_dir()}
    if out.resolve() in input_dirs:
        raise SegfitError("--out is a folder of input images, which predictions could overwrite", out, "choose another --out folder")
    out = self.out = output_dir(out)
    previous = previous_outputs(out, PREDICTED_SUFFIXES)
    objects = self.learns_instances if objects is None else objects
    calibrated = self.review_threshold() if uncertainty else None
    known = self.input_range()
    written, rows, per_image, unreadable, strange, rescaled = [], [], [], [], [], []
    self.last_images = []  # the input images' names of the masks written, in their order
    for path, stem in progress(listed, "predict"):
        shown = f"{stem}{path.suffix}"  # the file's name, or its data set name (test_im0.png beside train's im0.png)
        try:
            image = read_image(path, 3 if self.config.data.channels == 3 else 1)
        except SegfitError as exc:  # one broken file does not stop the others
            unreadable.append(exc)
            print(f"skipped: {exc}")
            continue
        # A grey model's view has no colour: measured on the file, before the prediction's peak memory.
        colour = file_colour(path) if uncertainty and known and self.config.data.channels != 3 else None
        stats = image_stats(image, colour) if known else None
        why = unusual(stats, known) if known else None
        if why:  # said whether or not uncertainty is asked: such a prediction can be confidently wrong
            why += _pixel_hint(image, stats, self.config.data.channels == 3)
            strange.append({"image": shown, "why": why})
            print(f"{shown}: {why}")
        result = self.predict_full([image], None, 1, objects, uncertainty)[0]
        mask, found, unsure, expected = result.classes, result.objects, result.uncertainty, result.expected_iou
        if result.scale is not None:  # small objects: predicted again at a larger scale
            rescaled.append({"image": shown, "scale": result.scale})
        del result  # no distance map kept
        target = out / f"{stem}.png"
        # One output at a time, each written before the next is made: a large image's maps are never
        # all in memory at once.
        write_png(target, mask)
        if found is not None:
            write_png(out / f"{stem}_instances.png", instance_png(found, path))
        if unsure is not None:
            per_image.append(image_uncertainty(shown, unsure, calibrated, why, expected, mask))
            write_png(out / f"{stem}_uncertainty.png", to_uint8(unsure))
            del unsure
        write_png(out / f"{stem}_overlay.png", overlay(image, mask, self.class_colors, alpha, objects=found))
        del image, found
        counts = label_counts(mask, len(self.class_names))
        rows += [{"image": shown, "class": name, "fraction": counts[i] / mask.size}
                 for i, name in enumerate(self.class_names)]
        written.append(target)
        self.last_images.append(shown)
    write_csv(out / "coverage.csv", pd.DataFrame(rows))
    record = self.record(objects)
    if uncertainty:
        record["uncertainty"] = {
            "maps": "NAME_uncertainty.png: predictive entropy of the averaged class probabilities divided by "
                    "its maximum (log of the class count), times 255: 0 = certain, 255 = an even split",
            "scale": 255, "uncertain_pixel": UNCERTAIN_PIXEL,
            "expected_error": "1 - the IoU the model expects of its own mask: the mask scored against the "
                              "model's own probabilities (relative to the objects' size, as the error is); a ranking of "
                              "the images to review, not the error itself (soft probabilities expect more error)",
            "review_threshold": calibrated["threshold"] if calibrated else None,
            "review_measure": calibrated.get("measure", "mean_uncertainty") if calibrated else None,
            "input_range": known,
            "calibration": calibrated["how"] if calibrated else
            "none: this model has no calibrated threshold (train it again with this version of segfit)"}
        record["images"] = per_image
    if unreadable:
        record["unreadable"] = [str(e) for e in unreadable]
    if strange:
        record["unusual"] = strange
    if rescaled:
        record["rescaled"] = {"images": rescaled, "why": RESCALED}
        print(f"{len(rescaled)} image{'s' if len(rescaled) > 1 else ''} with objects far from the training size predicted "
              "at another scale (predictions.json: rescaled)")
    write_json(out / "predictions.json", record)
    stale = remove_stale(previous, written, ("_overlay",) + ("_instances",) * bool(objects) + ("_uncertainty",) * uncertainty)
    if stale:
        print(f"{len(stale)} files of the previous prediction in {out} removed (images not predicted again, "
              "maps this prediction does not make)")
    self.last_review = [r["image"] for r in per_image if r["review"]]
    self.unreadable, self.unusual = unreadable, [r["image"] for r in strange]
    return written


RESCALED = ("their objects came out much smaller than the training objects at the model's working scale, so they were "
            "predicted again at the scale that brings them to the training size (at most the image's own); or, where "
            "the scale is below the model's, objects far larger than the training objects came out in pieces, and the "
            "look from farther away (a third of the working scale) saw them whole")


def _pixel_hint(image: np.ndarray, stats: dict, colour_model: bool) -> str:
    """What may have gone wrong with an unusual image's pixels (``stats``: its :func:`image_stats`): float
    pixels beyond 1 (read as they are), a grey image given to a model of colour images."""
    if image.dtype.kind == "f" and float(image.max(initial=0.0)) > 1.0:
        return ("; its pixels are floats above 1 and are read as they are (1 is full brightness): save it as an "
                "8- or 16-bit image like the training images, or scale it to 0..1")
    if colour_model and stats["colour"] == 0.0:
        return "; it is grey and the model learned colour images"
    return ""
