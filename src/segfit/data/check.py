"""``segfit check``: validate a data set without training, and say what is wrong and where."""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from segfit.config import DataConfig
from segfit.data.formats import (IGNORE_ID, MASK_EXTS, extra_masks, is_colour_coded, list_files, read_image,
                                 read_mask, to_class_ids)
from segfit.data.layouts import discover
from segfit.data.orientation import file_orientation
from segfit.errors import SegfitError


@dataclass
class CheckReport:
    """What :func:`check_dataset` found. ``ok`` is True when training can proceed."""

    layout: str = ""
    pairs: int = 0
    images_without_mask: list[Path] = field(default_factory=list)
    masks_without_image: list[Path] = field(default_factory=list)
    problems: list[SegfitError] = field(default_factory=list)
    sizes: Counter = field(default_factory=Counter)
    channels: Counter = field(default_factory=Counter)
    class_pixels: np.ndarray | None = None
    class_names: list[str] = field(default_factory=list)
    unlabelled: int = 0  # pixels holding the --ignore-value
    ignore_value: int | None = None
    reading: str = ""  # how the masks were read (instance maps, 0/255, class values), when detected
    turned: int = 0  # images with an EXIF orientation (read as viewers show them)

    @property
    def ok(self) -> bool:
        return self.pairs > 0 and not self.problems and not self.images_without_mask

    def lines(self) -> list[str]:
        out = [f"Data: {self.layout}", f"Pairs: {self.pairs} images with masks"]
        out += [f"Masks read as: {self.reading}"] if self.reading else []
        for label, paths, fix in (("images without a mask", self.images_without_mask, "add the mask or remove the image"),
                                  ("masks without an image", self.masks_without_image, "ignored by training")):
            if paths:
                out.append(f"{len(paths)} {label} ({fix}): " + ", ".join(p.name for p in paths[:5])
                           + (" ..." if len(paths) > 5 else ""))
        if self.sizes:
            top = ", ".join(f"{h}x{w} ({n})" for (h, w), n in self.sizes.most_common(4))
            more = f" and {len(self.sizes) - 4} more" if len(self.sizes) > 4 else ""
            out.append(f"Image sizes (HxW): {top}{more}")
            out.append("Channels in the files: " + ", ".join(f"{c} ({n})" for c, n in sorted(self.channels.items())))
        if self.turned:
            out.append(f"{self.turned} images carry an EXIF orientation: they are read turned as viewers show them, "
                       "and their masks must match that view")
        if self.class_pixels is not None and self.class_pixels.sum():
            total = self.class_pixels.sum()
            out.append("Class pixels: " + ", ".join(f"{name} {100 * n / total:.2f} %"
                                                    for name, n in zip(self.class_names, self.class_pixels)))
        if self.ignore_value is not None:
            share = 100 * self.unlabelled / max(int(self.class_pixels.sum()) + self.unlabelled, 1)
            out.append(f"Unlabelled pixels (value {self.ignore_value}, in no loss or metric): {share:.2f} %")
        kinds: dict[tuple, list[SegfitError]] = {}  # one line for a problem many files share
        for p in self.problems:
            kinds.setdefault((p.what, p.fix), []).append(p)
        for (what, fix), found in list(kinds.items())[:20]:
            many = f"{len(found)} files, first" if len(found) > 1 else ""
            out.append("problem: " + SegfitError(what, f"{many}: {found[0].file}" if many else found[0].file, fix).line())
        if len(kinds) > 20:
            out.append(f"... and {len(kinds) - 20} more kinds of problems")
        out.append("OK: training can proceed." if self.ok else "Not ready: fix the problems above, then run segfit check again.")
        return out


def check(data: str | os.PathLike, verbose: bool = True, **options) -> CheckReport:
    """Validate a data set without training: ``segfit check DATA`` (same options as the data options of
    ``train``: ``images``, ``masks``, ``mask_suffix``, ``mask_mode``, ``classes``, ``class_names`` ...).

    Returns the :class:`CheckReport`; with ``verbose`` its lines are printed.
    """
    from segfit.options import data_config

    reasons: list[str] = []
    report = check_dataset(data_config(data, **with_detected_reading(data, options, reasons)))
    distinct = [r for r in dict.fromkeys(reasons) if not any(o != r and o.startswith(r) for o in reasons)]
    report.reading = "; ".join(distinct)  # each reason once (the classes' is the start of the class values')
    if verbose:
        print("\n".join(report.lines()))
    return report


def with_detected_reading(data, options: dict, reasons: list[str] | None = None) -> dict:
    """The data options given (None dropped) and, when they say nothing of the classes, how the masks read as
    `segfit train` would read them (``check``, ``show``); the reasons of that reading go into ``reasons``."""
    options = {k: v for k, v in options.items() if v is not None}
    reasons = [] if reasons is None else reasons
    if not {"classes", "num_classes", "class_values", "mask_mode"} & set(options):
        detected = _detected_reading(data, options, reasons)
        if "palette" in options or "class_names" in options:  # the user's names (a palette orders colour masks' colours)
            detected.pop("class_names", None)
        if "palette" in options and "class_values" in detected:
            from segfit.data.palette import load_palette, palette_values

            palette = load_palette(options["palette"])
            if ordered := palette_values(palette, detected["class_values"], f"palette {options['palette']}"):
                detected["class_values"], detected["classes"] = ordered, len(ordered)
                reasons[:] = [r.split("; each class is named")[0].replace(", in that order", "") for r in reasons]
                reasons.append(f"the palette {options['palette']} names them: "
                               + ", ".join(f"{n} {v}" for n, v in zip(palette.names, ordered)))
        options.update(detected)
    return options


def _detected_reading(data, options: dict, reasons: list[str]) -> dict:
    """Classes, mask mode and class values from the data's fingerprint (what the plan would choose);
    nothing when the sample cannot be read (the check itself then reports the problem)."""
    from segfit.fingerprint import fingerprint_data, mask_reading

    try:
        fp = fingerprint_data(data, options.get("images"), options.get("masks"), options.get("mask_suffix") or "_bin",
                              require_masks=False)
    except SegfitError as exc:  # the check reports the files' problems; this says why no reading was made
        reasons.append(f"not read as classes: {exc.what}")
        return {}
    reading = mask_reading(fp)
    reasons += [why for _, why in reading.values()]
    return {option: value for option, (value, _) in reading.items()}


def check_dataset(cfg: DataConfig) -> CheckReport:
    """Read every image and mask once and collect every problem (not only the first)."""
    from segfit.options import resolve_data

    resolve_data(cfg)
    report = CheckReport(class_names=list(cfg.class_names), ignore_value=cfg.ignore_value)
    layout = discover(cfg.root, cfg.images, cfg.masks, cfg.mask_suffix, require_masks=False)
    report.layout = layout.description
    report.images_without_mask = [s.image for s in layout.samples if s.mask is None]
    report.masks_without_image = _orphan_masks(layout, cfg)
    report.class_pixels = np.zeros(cfg.num_classes, np.int64)
    for s in layout.samples:
        if s.mask is None:
            continue
        report.pairs += 1
        try:
            raw_image = read_image(s.image, 3)
            image_channels = _file_channels(s.image)
            mask = read_mask(s.mask, colour=is_colour_coded(cfg.class_values))
            report.sizes[raw_image.shape[:2]] += 1
            report.channels[image_channels] += 1
            turned = file_orientation(s.image) != 1
            report.turned += turned
            if mask.shape != raw_image.shape[:2]:
                fix = ("its image is turned by its EXIF orientation, as viewers show it: draw the mask on the image as "
                       "viewers show it" if turned and mask.shape == raw_image.shape[1::-1]
                       else "masks must have the size of their image")
                raise SegfitError(f"mask is {mask.shape[0]}x{mask.shape[1]} but its image is "
                                  f"{raw_image.shape[0]}x{raw_image.shape[1]}", s.mask, fix)
            ids = to_class_ids(mask, cfg.mask_mode, cfg.num_classes, s.mask, cfg.class_values, cfg.ignore_value)  # the readers' own rules
        except SegfitError as exc:
            report.problems.append(exc)
            continue
        counts = np.bincount(ids.ravel(), minlength=cfg.num_classes)
        report.class_pixels += counts[: cfg.num_classes]
        report.unlabelled += int(counts[IGNORE_ID]) if len(counts) > IGNORE_ID else 0
    return report


def _file_channels(path: Path) -> str:
    """How the file stores colour: 'grey', 'RGB', 'RGBA', ... (read from the header)."""
    if path.suffix.lower() in (".tif", ".tiff"):
        import tifffile

        with tifffile.TiffFile(path) as tif:
            page = tif.pages[0]
            shape, bits = page.shape, page.dtype.itemsize * 8
        depth = "" if bits == 8 else f" {bits}-bit"  # named as Pillow's modes are, for the same table
        if len(shape) == 2:
            return f"grey{depth}"
        channels = shape[-1] if shape[-1] in (3, 4) else shape[0] if shape[0] in (3, 4) else min(shape)  # last or first axis
        return {3: "RGB", 4: "RGBA"}.get(channels, f"{channels} channels") + depth
    from PIL import Image

    with Image.open(path) as im:
        return {"L": "grey", "I;16": "grey 16-bit", "I": "grey 32-bit", "P": "palette"}.get(im.mode, im.mode)


def _orphan_masks(layout, cfg: DataConfig) -> list[Path]:
    used = {p.resolve() for s in layout.samples if s.mask is not None for p in (s.mask, *extra_masks(s.mask))}
    folders = {s.mask.parent for s in layout.samples if s.mask is not None}
    image_folders = {s.image.parent for s in layout.samples}
    orphans = []
    for folder in folders:
        for p in list_files(folder, MASK_EXTS):
            if p.resolve() not in used:
                # In a flat folder, files without the mask suffix are images, not masks.
                if folder in image_folders and not p.stem.endswith(cfg.mask_suffix):
                    continue
                orphans.append(p)
    return orphans
