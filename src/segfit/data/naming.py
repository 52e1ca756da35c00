"""How an image's and its mask's names pair: ``NAME.png`` + ``NAME_mask.png``, ``mask_NAME.png``, an image
with a name part of its own (``000_img.png`` + ``000_masks.png``), numbered masks of one image
(``NAME_mask_1.png``). The folders they are in: :mod:`segfit.data.layouts`."""

from __future__ import annotations

import os
from pathlib import Path

from segfit.data.formats import LOSSY_MASK_EXTS, MASK_EXTS, is_extra_mask
from segfit.errors import SegfitError

MASK_PREFIXES = ("mask_", "label_", "gt_", "seg_")
# Images may carry a suffix or prefix of their own, their masks another (Cellpose: 000_img.png + 000_masks.png).
IMAGE_SUFFIXES = ("_img", "_image", "_im", "_raw", "_input", "-img", "-image", "_leftImg8bit", "_training", "_test")
IMAGE_PREFIXES = ("img_", "image_", "im_", "raw_")


def without_extras(files: list[Path]) -> list[Path]:
    """``files`` but the numbered siblings of masks (``NAME_mask_1.png``), which are read with their mask."""
    stems = {p.stem for p in files}
    return [p for p in files if not is_extra_mask(p, stems)]


def one_mask_each(pairs) -> dict[str, Path]:
    """``{image stem: mask}`` from ``(mask, image stem)`` pairs; two masks for one image are an error."""
    return _unique(pairs, lambda stem: f"two masks for image {stem!r}")


def by_stem(paths: list[Path], kind: str) -> dict[str, Path]:
    """``{stem: path}``; two ``kind`` files of one stem (``a.png``, ``a.tif``) are an error."""
    return _unique(((p, p.stem) for p in paths), lambda stem: f"two {kind}s named {stem!r}")


def _unique(pairs, clash) -> dict[str, Path]:
    """``{key: path}`` from ``(path, key)`` pairs; a key met twice is an error that ``clash(key)`` words."""
    found: dict[str, Path] = {}
    for path, key in pairs:
        if key in found:
            raise SegfitError(clash(key), path, f"keep one of {found[key].name} and {path.name}")
        found[key] = path
    return found


def flat_mask_of(path: Path, mask_suffix: str, suffixes: tuple[str, ...], stems: set[str]) -> str | None:
    """In a flat folder: the image stem whose mask ``path`` is (None: ``path`` is an image). A name
    ending in ``mask_suffix`` is a mask even without its image."""
    if path.suffix.lower() not in MASK_EXTS + LOSSY_MASK_EXTS:
        return None
    if mask_suffix and path.stem.endswith(mask_suffix) and len(path.stem) > len(mask_suffix):
        return path.stem[: -len(mask_suffix)]
    base = image_stem(path.stem, suffixes, stems, itself=False)
    return base if base != path.stem else None


def image_stem(stem: str, suffixes: tuple[str, ...], images, itself: bool = True) -> str:
    """The image stem a mask named ``stem`` belongs to (``stem`` itself when none matches;
    ``itself``: an image of the very same stem matches first)."""
    if itself and stem in images:
        return stem
    bases = [stem[: -len(s)] for s in suffixes if stem.endswith(s) and len(stem) > len(s)]
    bases += [stem[len(p):] for p in MASK_PREFIXES if stem.startswith(p) and len(stem) > len(p)]
    for base in bases:  # NAME + mask suffix, mask prefix + NAME
        if base in images:
            return base
    for base in bases:  # the image with a suffix or prefix of its own: 000_img + 000_masks, img_1 + mask_1
        found = [base + s for s in IMAGE_SUFFIXES if base + s in images] + [p + base for p in IMAGE_PREFIXES if p + base in images]
        if found:
            return found[0]
    return stem


def naming(image: str, mask: str, ext: str = ".png") -> str:
    """How an image's and its mask's names differ: ``NAME.ext + NAME_mask.png``, ``NAME_img.ext +
    NAME_masks.png``, ``img_NAME.ext + mask_NAME.png`` (``ext``: the mask's extension)."""
    head = len(os.path.commonprefix([image, mask]))
    tail = len(os.path.commonprefix([image[::-1], mask[::-1]]))
    head -= head > 0 and image[head - 1] in "_-. "  # the separator belongs to the suffix: NAME_img, not NAMEimg
    tail -= tail > 0 and image[len(image) - tail] in "_-. "
    if head >= tail:
        return f"NAME{image[head:]}.ext + NAME{mask[head:]}{ext}"
    return f"{image[: len(image) - tail]}NAME.ext + {mask[: len(mask) - tail]}NAME{ext}"
