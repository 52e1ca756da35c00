"""Flat options -> a resolved :class:`~segfit.config.RunConfig`: the one place where option names,
aliases, derived values and validation live.

``build_config(data, epochs=30, size=128, ...)`` is what ``segfit train`` and ``segfit.train`` do with
their options: every name is a config field (or an alias below), unset values keep the dataclass
defaults, and the names the caller gave are recorded in ``config.user`` (``config.json``). Names of
models, losses, optimisers, schedules, augmentations and loggers are checked against the factories'
own tables here, before anything is written.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

from segfit.config import IMAGENET_MEAN, IMAGENET_STD, DEFAULT_COLORS, DataConfig, RunConfig
from segfit.errors import SegfitError

# Option names that differ from the config field they set: option -> (section, field).
ALIASES = {"model": ("model", "name"), "classes": ("data", "num_classes"), "workers": ("train", "num_workers")}
# Options that only shape the config: palette (class names and colours from a palette file).
EXTRA = ("palette",)
# What a resumed run may change (the rest is the run's own).
RESUMABLE = ("epochs", "save_every", "num_workers", "accelerator", "devices", "num_nodes", "strategy", "precision",
             "logger", "report", "preload")


# Fields that are not options: the data folder is an argument, the model's name is ``model``, and the
# model's channels and classes follow the data's.
NOT_OPTIONS = {"data": ("root",), "model": ("name", "in_channels", "num_classes", "instances"), "train": ()}


def fields() -> dict[str, tuple[str, str]]:
    """Every option name -> ``(section, field)``; ``seed`` sets both the split's and the training's."""
    cfg = RunConfig()
    found = {f.name: (section, f.name) for section in ("data", "model", "train")
             for f in dataclasses.fields(getattr(cfg, section)) if f.name not in NOT_OPTIONS[section]}
    return {**found, **ALIASES, "seed": ("data", "seed")}


def build_config(data: str | os.PathLike | None = None, **options: Any) -> RunConfig:
    """A resolved :class:`RunConfig` from a data folder and flat options.

    Options are config field names (``epochs=30``, ``size=128``, ``lr=1e-3``, ``channels=1``) plus
    ``model`` (the network name), ``classes``, ``workers`` and ``palette`` (a palette file or preset
    naming the classes and their colours); ``class_names`` may be a comma-separated text. ``None``
    means unset. Unknown names raise a ``TypeError`` listing the valid ones.
    """
    cfg = RunConfig()
    table = fields()
    given = {k: v for k, v in options.items() if v is not None}
    unknown = sorted(set(given) - set(table) - set(EXTRA))
    if unknown:
        raise TypeError(f"unknown option {unknown[0]!r}; valid options: {', '.join(sorted(set(table) | set(EXTRA)))}")
    if isinstance(given.get("class_names"), str):
        given["class_names"] = [n.strip() for n in given["class_names"].split(",") if n.strip()]
    if isinstance(given.get("class_values"), str):
        given["class_values"] = [v.strip() if v.strip().startswith("#") else _whole(v) for v in given["class_values"].split(",")
                                 if v.strip()]
    if given.get("class_values") and "classes" not in given and "num_classes" not in given:
        given["classes"] = len(given["class_values"])
    if "palette" in given:
        from segfit.data.palette import load_palette, palette_values

        spec = given.pop("palette")
        palette = load_palette(spec)
        given.setdefault("class_names", palette.names)
        given.setdefault("class_colors", palette.colors)
        if ordered := palette_values(palette, given.get("class_values"), f"palette {spec}"):  # colour masks: in the palette's order
            given["class_values"], given["classes"] = ordered, len(ordered)
    if given.get("class_names") and "classes" not in given and "num_classes" not in given:
        given["classes"] = len(given["class_names"])
    for key, value in given.items():
        section, name = table[key]
        setattr(getattr(cfg, section), name, value)
        if key == "seed":
            cfg.train.seed = value
    cfg.user = sorted(given)
    if data is not None:
        cfg.data.root = str(Path(data).resolve())
    return resolve(cfg)


def resume_config(stored: dict, data: str | os.PathLike | None = None, **options: Any) -> tuple[RunConfig, list[str]]:
    """The config of a run being resumed, with the :data:`RESUMABLE` options changed; returns it and
    the names of the options that were given but cannot change (the run keeps its own)."""
    cfg = RunConfig.from_dict(stored)
    table = fields()
    ignored = []
    for key, value in options.items():
        if value is None:
            continue
        section, name = table.get(key, (None, key))
        if name in RESUMABLE and section is not None:
            setattr(getattr(cfg, section), name, value)
        else:
            ignored.append(key)
    if data is not None:
        cfg.data.root = str(Path(data).resolve())
    return cfg, ignored


def resolve(cfg: RunConfig) -> RunConfig:
    """Fill derived values (mask mode, class names and colours, the model's channels and classes,
    normalisation) and validate every value and name."""
    from segfit.data.transforms import TRANSFORMS
    from segfit.losses import canonical_name
    from segfit.models import check_name, stride
    from segfit.optim import OPTIMIZERS, SCHEDULERS
    from segfit.optim import check_name as check_in
    from segfit.trainer import LOGGERS

    resolve_data(cfg.data)
    cfg.model.in_channels, cfg.model.num_classes = cfg.data.channels, cfg.data.num_classes
    cfg.model.instances = bool(cfg.data.instances)
    if cfg.data.instances and cfg.model.name == "notebook":
        raise SegfitError("the notebook network does not learn instances", fix="drop --instances, or train a planned U-Net (no --model notebook)")
    if cfg.data.mean is None and cfg.model.name != "notebook" and cfg.data.channels == 3:
        cfg.data.mean, cfg.data.std = list(IMAGENET_MEAN), list(IMAGENET_STD)
    t = cfg.train
    if cfg.data.crop is not None and cfg.data.crop < stride(cfg.model):
        raise SegfitError(f"--crop {cfg.data.crop} is smaller than the network's stride ({stride(cfg.model)} px): each crop "
                          "would be mostly padding", fix=f"use --crop {max(64, 4 * stride(cfg.model))} or more")
    if t.epochs < 1 or t.batch_size < 1:
        raise SegfitError("--epochs and --batch-size must be at least 1", fix="use e.g. --epochs 20 --batch-size 16")
    if t.lr <= 0:
        raise SegfitError(f"--lr must be positive, got {t.lr}", fix="use e.g. --lr 1e-3")
    check_name(cfg.model.name)
    canonical_name(t.loss, cfg.data.num_classes)
    check_in(t.optimizer, OPTIMIZERS, "optimizer")
    check_in(t.scheduler, SCHEDULERS, "scheduler")
    check_in(t.augment, TRANSFORMS, "augmentation")
    check_in(t.logger, LOGGERS, "logger")
    return cfg


def default_class_names(n: int) -> list[str]:
    """The names of ``n`` classes nobody named: background and foreground, or background, class1, class2, ..."""
    return ["background", "foreground"] if n == 2 else ["background"] + [f"class{i}" for i in range(1, n)]


def resolve_data(d: DataConfig) -> DataConfig:
    """Fill in the data's derived defaults (mask mode, class names and colours) and validate them."""
    from segfit.data.formats import IGNORE_ID, colour_code

    if d.channels not in (1, 3):
        raise SegfitError(f"--channels must be 1 or 3, got {d.channels}", fix="use --channels 1 (grayscale) or 3 (RGB)")
    if d.num_classes < 2:
        raise SegfitError(f"--classes must be at least 2, got {d.num_classes}", fix="count the background as a class")
    if d.num_classes > IGNORE_ID:
        raise SegfitError(f"--classes {d.num_classes} is more than segfit reads ({IGNORE_ID})", fix="merge classes")
    if d.mask_mode == "auto":
        d.mask_mode = "binary" if d.num_classes == 2 and not d.class_values else "index"
    if d.class_values is not None:
        codes = [colour_code(v) for v in d.class_values]
        if len(codes) != d.num_classes or len(set(codes)) != len(codes) or min(codes) < 0:
            raise SegfitError(f"--class-values {','.join(map(str, d.class_values))} must list {d.num_classes} different "
                              "mask values, one per class", fix="e.g. --class-values 0,128,255 for 3 classes")
        if d.mask_mode != "index":
            raise SegfitError("--class-values reads class masks", fix="use --mask-mode index (or leave it out)")
    if d.ignore_value == "none":  # the user's word that no value is unlabelled (the plan then proposes none)
        d.ignore_value = None
    if d.ignore_value is not None:
        if d.class_values is not None and colour_code(d.ignore_value) in codes:
            raise SegfitError(f"--ignore-value {d.ignore_value} is also one of --class-values",
                              fix="a mask value is a class or unlabelled, not both")
        if d.mask_mode == "index" and d.class_values is None and d.ignore_value < d.num_classes:
            raise SegfitError(f"--ignore-value {d.ignore_value} is one of the class ids 0..{d.num_classes - 1}",
                              fix="give the value that marks unlabelled pixels, e.g. 255")
    if d.mask_mode not in ("binary", "index"):
        raise SegfitError(f"unknown --mask-mode {d.mask_mode!r}", fix="use binary or index")
    if d.mask_mode == "binary" and d.num_classes != 2:
        raise SegfitError("--mask-mode binary makes 2 classes", fix=f"use --mask-mode index for {d.num_classes} classes")
    if d.class_values and all(isinstance(v, str) for v in d.class_values):  # colour masks: classes by their colours
        d.class_colors = d.class_colors or [[(colour_code(v) >> s) & 255 for s in (16, 8, 0)] for v in d.class_values]
        d.class_names = d.class_names or ["background" if colour_code(v) == 0 or (i == 0 and colour_code(v) == 0xFFFFFF)
                                          else v.lower() for i, v in enumerate(d.class_values)]
    if not d.class_names:
        d.class_names = default_class_names(d.num_classes)
    if len(d.class_names) != d.num_classes:
        raise SegfitError(f"{len(d.class_names)} class names given for {d.num_classes} classes",
                          fix="give one name per class, background first")
    if not d.class_colors:
        d.class_colors = [list(DEFAULT_COLORS[i % len(DEFAULT_COLORS)]) for i in range(d.num_classes)]
    for name in ("mean", "std"):
        given = getattr(d, name)
        if given is not None and len(given) not in (d.channels, 3):
            raise SegfitError(f"--{name} gives {len(given)} values for {d.channels}-channel images",
                              fix=f"give one value per channel ({d.channels})")
    if d.std is not None and min(d.std) <= 0:
        raise SegfitError(f"--std must be positive, got {d.std}", fix="e.g. --std 0.25")
    if d.size is not None and d.size < 8:
        raise SegfitError(f"--size must be at least 8, got {d.size}", fix="use e.g. --size 128")
    if d.test < 0 or d.test >= 1:
        raise SegfitError(f"--test must be a fraction in [0, 1), got {d.test}", fix="use e.g. --test 0.2")
    if d.val < 0 or (d.val >= 1 and d.val != int(d.val)):
        raise SegfitError(f"--val must be a fraction below 1 or a whole count, got {d.val}", fix="use e.g. --val 0.2 or --val 100")
    return d


def _whole(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise SegfitError(f"--class-values takes whole numbers or #rrggbb colours, not {text.strip()!r}",
                          fix="e.g. --class-values 0,128,255 or --class-values #000000,#ff0000") from None


def data_config(data: str | os.PathLike, **options: Any) -> DataConfig:
    """The resolved :class:`DataConfig` of a data folder and data options (``segfit check``, ``show``)."""
    return build_config(data, **options).data


def resolve_auto(cfg: RunConfig, summary: dict) -> None:
    """What ``auto`` stands for, from the pixel counts of the data pass just made (no second pass over
    the masks): inverse-frequency class weights (``auto``, and the default with more than two classes),
    the head prior (the training split's class fractions) and the precision (native bf16 or 32)."""
    import numpy as np

    from segfit.losses import inverse_frequency_weights

    pixels = np.asarray(summary["splits"]["train"]["class_pixels"], dtype=np.float64)
    if cfg.train.class_weights == "auto" or (cfg.train.class_weights is None and cfg.data.num_classes > 2):
        cfg.train.class_weights = inverse_frequency_weights(pixels)
    if cfg.train.head_prior == "auto" and pixels.sum() > 0:
        cfg.train.head_prior = [round(float(p), 6) for p in pixels / pixels.sum()]
    if cfg.train.precision == "auto":  # (the plan decides it when it plans; --no-plan: here, the same way)
        from segfit.fingerprint import native_precision

        cfg.train.precision = native_precision(cfg.train.accelerator)
