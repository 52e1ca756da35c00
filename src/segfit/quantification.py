"""Objects in class-index masks: count, size and shape per class, and their size distribution.

``quantify(inputs, out)`` reads masks (as ``segfit predict`` writes them, or predicts them first from a
checkpoint), labels the connected objects of each chosen class (optionally splitting touching ones with a
distance-transform watershed), measures them with scikit-image's region properties and writes
``objects.csv``, ``images.csv``, ``size_distribution.png`` and ``quantify.json``.
"""

from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path

import numpy as np

from segfit.data.formats import (IGNORE_ID, MASK_EXTS, PREDICTED_SUFFIXES, list_inputs, read_class_ids, read_image,
                                 read_mask, unlabelled_value)
from segfit.errors import SegfitError, require
from segfit.options import default_class_names
from segfit.rundir import output_dir
from segfit.objects import LENGTHS, OBJECT_COLUMNS, label_objects, measure_objects, renumber

IMAGE_COLUMNS = ["image", "class", "count", "coverage", "mean_diameter", "median_diameter", "std_diameter"]
FILES = ["objects.csv", "images.csv", "size_distribution.png"]
_MAX_CLASS_VALUES = 64  # more distinct values than this: a photo or an instance map, not class ids


def list_masks(inputs: list[str | os.PathLike]) -> tuple[list[Path], list[Path]]:
    """Mask files named directly or found in folders (``*_overlay.png`` and non-mask files skipped); for a
    data set folder (``images/`` + ``masks/``, one folder per image, split folders), its masks (a folder of
    one mask per object stands for its instance map). Returns the masks and the data set folders among
    the inputs."""
    from segfit.data.layouts import held_samples

    found, data_sets = [], []
    for item in inputs:
        path = Path(item)
        files = list_inputs([path], MASK_EXTS, PREDICTED_SUFFIXES) if path.is_dir() else None
        masks = [s.mask for s in held_samples(path) or [] if s.mask is not None] if files is not None else []
        if masks:  # a folder of image/mask pairs (NAME.tif + NAME_bin.png; images/ + masks/): its masks
            found += masks
            data_sets.append(path)
            continue
        found += files or list_inputs([path], MASK_EXTS, PREDICTED_SUFFIXES, SegfitError(
            "no masks found", fix="give a folder of class-index masks (NAME.png from `segfit predict`), "
                                  "or images with --checkpoint to predict masks first"))
    return found, data_sets


def _data_set_reading(root: Path, class_names: list[str] | None):
    """How a data set's masks read, as ``segfit check`` and ``train`` read them (the plan's reading of the
    data's fingerprint: coded values and colours are classes): a :class:`~segfit.config.DataConfig`, or None
    for instance label maps (each object measured as it is)."""
    from segfit.fingerprint import fingerprint_data, reading_options
    from segfit.options import data_config

    fp = fingerprint_data(root)
    if fp["mask_kind"] == "instance":
        return None
    return data_config(root, **reading_options(fp), **({"class_names": class_names} if class_names else {}))


def read_class_mask(path: Path, instance_maps: bool = False) -> np.ndarray:
    """A mask as integers: class ids (a 0/255 mask becomes 0/1) or, with ``instance_maps``, object ids."""
    try:
        mask = read_mask(path)
    except SegfitError as exc:
        if exc.what == "mask is a colour image" and _many_colours(path):
            raise SegfitError("input looks like a photo, not a class-index mask", path,
                              "give --checkpoint to predict masks first, or pass the masks folder") from None
        raise
    if instance_maps:
        return mask
    values = np.unique(mask)
    if values.size > _MAX_CLASS_VALUES:
        raise SegfitError(f"mask holds {values.size} different values, too many for class ids", path,
                          "for photos give --checkpoint to predict masks first; for instance label maps "
                          "(one id per object) add --instance-maps")
    if values[-1] == 255 and set(values.tolist()) <= {0, 255}:
        return (mask > 0).astype(np.uint8)
    return mask


def _mask_values(masks: list[Path]) -> tuple[int | None, int]:
    """The value that marks unlabelled pixels (None when there is none) and the highest class id."""
    void, values = unlabelled_value(read_class_mask(path) for path in masks)
    return void, int(values[values != void].max(initial=0))


def _coverage(binary: np.ndarray, labelled: np.ndarray | None) -> float:
    """The fraction of an image's labelled pixels that ``binary`` covers."""
    if labelled is None:
        return float(binary.mean())
    return float(np.count_nonzero(binary) / max(np.count_nonzero(labelled), 1))


def _many_colours(path: Path) -> bool:
    rgb = read_image(path, 3).reshape(-1, 3)
    rgb = rgb[:: max(1, len(rgb) // 65536)]  # a sample is enough to tell a photo from colour-coded classes
    return len(np.unique(rgb, axis=0)) > _MAX_CLASS_VALUES


def quantify(inputs, out, *, checkpoint=None, classes=None, class_names=None, split_touching: bool = False,
             min_distance: int = 5, min_area: int | None = None, pixel_size: float | None = None, unit: str = "px",
             instance_maps: bool = False, tta: bool | None = None, precision: str = "auto", verbose: bool = True) -> dict:
    """Count and measure the objects of class-index masks.

    Args:
        inputs: mask files or folders (images, with ``checkpoint``).
        out: output folder (never an input folder).
        checkpoint: checkpoint, run folder or .onnx file: predict masks into ``out/masks`` first.
        classes: class names or ids to measure (default: every class but background).
        class_names: names (a list or comma-separated text), background first, when neither the checkpoint nor a ``predictions.json`` beside
            the masks names them (default as `segfit train` names them: background, foreground; or background, class1, ...).
        split_touching: split touching objects (see :func:`segfit.objects.label_objects`).
        min_distance: smallest distance between two object centres when splitting, in pixels.
        min_area: drop objects of fewer pixels (default: with ``checkpoint``, or masks that ``segfit predict``
            wrote, the model's fragment floor, ``min_object_area``, calibrated or planned; else 0).
        pixel_size: size of one pixel in ``unit``: adds ``area_<unit>2``, ``*_<unit>`` columns.
        unit: unit of ``pixel_size``, e.g. nm.
        instance_maps: inputs are instance label maps (one integer per object, like EMPS segmaps): each
            value is one object of a single class, with no connected-component labelling.
        tta: with ``checkpoint``, average the label-preserving flips and rotations (default: the run's plan).
        verbose: print a summary line per class.

    Returns:
        What ``quantify.json`` holds: per class the object count, the mean and median equivalent diameter
        in ``unit`` (pixels without a pixel size; ``*_px`` always in pixels) and the mean coverage; the
        options, the run folder when known, and the files written.
    """
    import pandas as pd

    from segfit.io import progress, write_csv, write_json

    inputs = [inputs] if isinstance(inputs, (str, os.PathLike)) else list(inputs)
    if isinstance(class_names, str):
        class_names = [n.strip() for n in class_names.split(",") if n.strip()]
    out = Path(out)
    scale = _check_options(pixel_size, unit, min_distance, min_area, checkpoint, class_names, instance_maps)
    for item in inputs:
        require(item, "input")
    inside = {Path(i).resolve() if Path(i).is_dir() else Path(i).resolve().parent for i in inputs}
    if out.resolve() in inside:
        raise SegfitError("--out is an input folder, which the results could overwrite", out, "choose another --out folder")
    # The folder is made when the results are written (masks that fail to read leave nothing behind);
    # with a checkpoint, the predicted masks go into it first.
    out = output_dir(out, print if verbose else lambda _: None, create=checkpoint is not None)

    run_dir = masks_dir = void = reading = None
    given = min_area or 0  # the model's own objects lost their fragments at their image's scale when predicted
    if checkpoint is not None:
        from segfit.predictor import Predictor
        from segfit.rundir import run_dir_of_model

        predictor = Predictor.from_checkpoint(checkpoint, precision=precision, tta=tta)
        if not split_touching:  # averaged outputs (--tta, an ensemble) seed their objects at their own level
            from segfit.seeding import calibrate_averaged

            calibrate_averaged(predictor, print if verbose else lambda *a, **k: None)
        masks_dir = out / "masks"
        masks = predictor.predict_files(inputs, masks_dir)
        image_names = list(predictor.last_images)  # the tables name the input images (a.jpg), not their masks (a.png)
        names = list(predictor.class_names)
        run_dir = run_dir_of_model(predictor.checkpoint)
        model_objects = predictor.learns_instances
        min_area = predictor.min_object_area if min_area is None else min_area
    else:
        masks, data_sets = list_masks(inputs)
        image_names = _image_names(masks)
        names, run_dir, model_objects, fragments = _recorded(masks)
        min_area = fragments if min_area is None else min_area  # as quantify --checkpoint of the same model
        instance_maps = instance_maps or all(p.is_dir() for p in masks)  # folders of one mask per object
        if not instance_maps and len(data_sets) == len(inputs):
            reading = _data_set_reading(data_sets[0], class_names)
            instance_maps = reading is None
            if verbose:
                print("The masks are instance label maps: each object is measured as it is" if instance_maps else
                      f"The masks read as segfit check and train read them: {', '.join(reading.class_names)}")
        if reading is not None:
            names, void, top = list(reading.class_names), reading.ignore_value, reading.num_classes - 1
        elif instance_maps or names is not None:  # segfit's predictions (predictions.json): class ids, none unlabelled
            void, top = None, 0
        else:
            void, top = _mask_values(masks)
        if instance_maps:
            names = ["background", class_names[1] if class_names and len(class_names) > 1 else default_class_names(2)[1]]
        elif class_names:
            names = list(class_names)
        elif names is None:
            names = default_class_names(max(top, 1) + 1)
        if void is not None and verbose:
            print(f"Pixels of value {void} are unlabelled (ids 0..{top} beside a few {void}s, as Pascal VOC's "
                  "borders): no class counts them")
    chosen = _choose(classes, names)
    min_area = min_area or 0

    object_frames, image_rows = [], []
    unlabelled = IGNORE_ID if reading is not None else void  # a data set's reading turns its void value into IGNORE_ID
    for path, image in progress(list(zip(masks, image_names)), "quantify"):
        mask = read_class_ids(path, reading)[0] if reading is not None else read_class_mask(path, instance_maps)
        labelled = None if void is None else mask != unlabelled
        bad = np.unique(mask[(mask >= len(names)) & (mask != void)]) if not instance_maps and reading is None else []
        if len(bad):
            raise SegfitError(f"mask values {bad[:6].tolist()} are outside the {len(names)} classes ({', '.join(names)})",
                              path, "name every class with --class-names, background first; for instance label maps add --instance-maps")
        found = path.with_name(f"{path.stem}_instances.png") if model_objects else None
        objects_map = read_mask(found) if found is not None and found.is_file() and not split_touching else None
        for cid in chosen:
            if instance_maps:
                labels, coverage = renumber(mask, min_area), float(np.mean(mask > 0))
            elif objects_map is not None:  # the model's own objects (NAME_instances.png from segfit predict)
                binary = mask == cid
                labels, coverage = renumber(np.where(binary, objects_map, 0), given), _coverage(binary, labelled)
            else:
                binary = mask == cid
                labels = label_objects(binary, split_touching, min_distance, min_area)
                coverage = _coverage(binary, labelled)
            frame = measure_objects(labels)
            frame.insert(0, "class", names[cid])
            frame.insert(0, "image", image)
            object_frames.append(frame)
            d = frame["equivalent_diameter"]
            image_rows.append({"image": image, "class": names[cid], "count": len(frame), "coverage": coverage,
                               "mean_diameter": d.mean(), "median_diameter": d.median(), "std_diameter": d.std()})

    object_frames = [f for f in object_frames if len(f)]
    objects = pd.concat(object_frames, ignore_index=True) if object_frames else pd.DataFrame(columns=OBJECT_COLUMNS)
    per_image = pd.DataFrame(image_rows, columns=IMAGE_COLUMNS)
    if scale is not None:
        objects[f"area_{unit}2"] = objects["area"] * scale ** 2
        for col in LENGTHS:
            objects[f"{col}_{unit}"] = objects[col] * scale
        for col in ("mean_diameter", "median_diameter", "std_diameter"):
            per_image[f"{col}_{unit}"] = per_image[col] * scale

    output_dir(out)
    write_csv(out / "objects.csv", objects)
    write_csv(out / "images.csv", per_image)
    shown = [names[c] for c in chosen]
    from segfit.viz import plot_size_distribution

    plot_size_distribution(objects, shown, out / "size_distribution.png", scale, unit if scale else "px")
    summary = {"images": len(masks), "classes": _class_summary(objects, per_image, shown, scale),
               "class_names": names, "unit": unit if scale else "px", "pixel_size": scale,
               "split_touching": bool(split_touching), "min_area": int(min_area), "min_distance": int(min_distance),
               "objects": ("instance maps" if instance_maps else "the model's instances" if model_objects and not split_touching
                           else "watershed split of each class" if split_touching else "connected components of each class"),
               "instance_maps": bool(instance_maps), "unlabelled_value": void, "inputs": [str(Path(i).resolve()) for i in inputs],
               "checkpoint": str(Path(checkpoint).resolve()) if checkpoint is not None else None,
               "run_dir": str(run_dir) if run_dir else None, "masks": str(masks_dir) if masks_dir else None,
               "files": list(FILES)}
    write_json(out / "quantify.json", summary)
    if verbose:
        for name, info in summary["classes"].items():
            print(_summary_line(name, info, len(masks), summary["unit"]))
        print(f"Wrote {out}/: {'masks/, ' if masks_dir else ''}{', '.join(FILES)}, quantify.json")
    if run_dir and (Path(run_dir) / "config.json").is_file():  # a run's predictions: add them to its report
        from segfit.report_page import update_report
        from segfit.rundir import record_output

        record_output(run_dir, "quantifications", out)
        if update_report(run_dir) and verbose:
            print(f"Updated {Path(run_dir) / 'report.html'}")
    return summary


def _check_options(pixel_size, unit, min_distance, min_area, checkpoint, class_names, instance_maps) -> float | None:
    if min_distance < 1:
        raise SegfitError(f"--min-distance must be at least 1 pixel, not {min_distance}", fix="give e.g. --min-distance 5")
    if min_area is not None and min_area < 0:
        raise SegfitError(f"--min-area must be 0 or more pixels, not {min_area}", fix="give e.g. --min-area 10")
    if checkpoint is not None and instance_maps:
        raise SegfitError("--instance-maps cannot be used with --checkpoint", checkpoint,
                          "predicted masks hold class ids: drop --instance-maps")
    if checkpoint is not None and class_names:
        raise SegfitError("--class-names cannot be used with --checkpoint", checkpoint,
                          "the checkpoint names its classes: drop --class-names")
    if pixel_size is None:
        if unit != "px":
            raise SegfitError(f"--unit needs --pixel-size (unit {unit!r} needs a pixel size)", fix=f"give the size of one pixel, e.g. --pixel-size 2.5 --unit {unit}")
        return None
    if not (isinstance(pixel_size, (int, float)) and math.isfinite(pixel_size) and pixel_size > 0):
        raise SegfitError(f"--pixel-size must be a number above 0, not {pixel_size}", fix="give e.g. --pixel-size 2.5 --unit nm")
    if unit == "px" or not re.fullmatch(r"[^\W\d_]+", unit or ""):
        raise SegfitError(f"--pixel-size needs a unit of letters, not {unit!r}", fix="give e.g. --unit nm (or um, mm)")
    return float(pixel_size)


def _recorded(masks: list[Path]) -> tuple[list[str] | None, str | None, bool, int | None]:
    """Class names, run folder, whether the model wrote its own objects (``NAME_instances.png``) and the model's
    fragment size (``min_object_area``: smaller objects are specks) from the first ``predictions.json`` beside the
    masks."""
    for folder in dict.fromkeys(p.parent for p in masks):
        record = folder / "predictions.json"
        if record.is_file():
            try:
                data = json.loads(record.read_text())
                names = [str(n) for n in data["class_names"]]
            except (ValueError, KeyError, TypeError) as exc:
                raise SegfitError(f"cannot read predictions.json ({type(exc).__name__}: {exc})", record,
                                  "remove the damaged file, or predict the masks again") from None
            return names, data.get("run_dir"), "instances" in data, data.get("min_object_area")
    return None, None, False, None


def _choose(classes, names: list[str]) -> list[int]:
    """Class ids from names or ids (default: every class but background)."""
    if not classes:
        return list(range(1, len(names)))
    chosen = []
    for item in classes:
        text = str(item).strip()
        if text in names:
            cid = names.index(text)
        elif text.isdigit() and int(text) < len(names):
            cid = int(text)
        else:
            raise SegfitError(f"unknown class {text!r}",
                              fix=f"choose from {', '.join(names)} (or their ids 0..{len(names) - 1})")
        if cid not in chosen:
            chosen.append(cid)
    return chosen


def _image_names(masks: list[Path]) -> list[str]:
    """File names, with the folder where two folders hold the same name."""
    masks = [p.parent if p.is_dir() else p for p in masks]  # ID/masks/ (one mask per object) is ID's
    names = [p.name for p in masks]
    return [f"{p.parent.name}/{p.name}" if names.count(p.name) > 1 else p.name for p in masks]


def _class_summary(objects, per_image, shown: list[str], scale: float | None) -> dict:
    """Per class: object count, diameters in the output unit (and in pixels), mean coverage."""
    summary = {}
    for name in shown:
        d = objects.loc[objects["class"] == name, "equivalent_diameter"].astype(float)
        s = scale or 1.0
        summary[name] = {"objects": int(len(d)), "mean_diameter": _num(d.mean() * s), "median_diameter": _num(d.median() * s),
                         "mean_diameter_px": _num(d.mean()), "median_diameter_px": _num(d.median()),
                         "mean_coverage": _num(per_image.loc[per_image["class"] == name, "coverage"].mean())}
    return summary


def _num(value) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


def _summary_line(name: str, info: dict, n_images: int, unit: str) -> str:
    line = f"{name}: {info['objects']} objects in {n_images} images"
    if info["objects"]:
        line += f", mean equivalent diameter {info['mean_diameter']:.1f} {unit} (median {info['median_diameter']:.1f})"
    return line
