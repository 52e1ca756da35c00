"""A photo's EXIF orientation: cameras and phones store pixels as the sensor saw them and say, in the header,
how to turn them for viewing. Images and masks are read turned (:func:`upright`), as viewers and annotation
tools show them."""

from __future__ import annotations

import os
from pathlib import Path

EXIF_ORIENTATION = 0x0112  # 1: as stored; 2-8: mirrored and/or turned (cameras and phones write it)


def orientation(im) -> int:
    """A Pillow image's EXIF orientation (1 when it has none)."""
    try:
        return int(im.getexif().get(EXIF_ORIENTATION, 1) or 1)
    except Exception:
        return 1


def file_orientation(path: str | os.PathLike) -> int:
    """The EXIF orientation of an image file, from its header (1 when it has none or is not a photo format)."""
    if Path(path).suffix.lower() not in (".jpg", ".jpeg", ".png", ".webp", ".tif", ".tiff"):
        return 1
    try:
        from PIL import Image

        with Image.open(path) as im:
            return orientation(im)
    except Exception:
        return 1


def upright(im):
    """A Pillow image as viewers show it (and as annotation tools and OpenCV read it): turned by its EXIF
    orientation; the image itself when it has none."""
    if orientation(im) == 1:
        return im
    from PIL import ImageOps

    return ImageOps.exif_transpose(im)
