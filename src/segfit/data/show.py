"""``segfit show``: one image of a data set beside its mask, read exactly as training reads it."""

from __future__ import annotations

import os
from pathlib import Path

from segfit.errors import SegfitError


def show(data: str | os.PathLike, index: int = 0, out: str | os.PathLike | None = None, verbose: bool = True,
         **options) -> Path:
    """Draw image ``index`` (0-based, in name order) and its mask side by side into a PNG.

    Args:
        data: data set folder.
        index: which image.
        out: PNG file to write (default ``NAME_show.png`` in the current folder); an existing file is kept and
            ``NAME-2.png`` written instead.
        verbose: print where the file went.
        **options: the data options of ``train`` (``channels``, ``size``, ``mask_mode``, ``classes`` ...).

    Returns:
        The PNG's path.
    """
    from segfit.data.check import with_detected_reading
    from segfit.data.layouts import discover
    from segfit.data.preprocess import load_pair
    from segfit.options import data_config
    from segfit.rundir import new_file
    from segfit.viz import plot_pair

    cfg = data_config(data, **with_detected_reading(data, options))  # the masks read as check and train read them
    samples = discover(cfg.root, cfg.images, cfg.masks, cfg.mask_suffix).samples
    if not 0 <= index < len(samples):
        raise SegfitError(f"--index {index} is out of range", data, f"use 0 to {len(samples) - 1}")
    sample = samples[index]
    image, mask = load_pair(sample, cfg)
    path = new_file(out or f"{sample.name}_show.png", print if verbose else lambda _: None)  # never overwritten
    plot_pair(image, mask, f"{sample.name} ({image.shape[1]}x{image.shape[0]})", cfg.class_names, cfg.class_colors, path)
    if verbose:
        print(f"Wrote {path}")
    return path
