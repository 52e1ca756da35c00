"""Augmentation pipelines by name (albumentations). Validation and test data are never augmented."""

from __future__ import annotations

from segfit.errors import SegfitError


def _none(crop: int | None, pad_label: int = 0):
    import albumentations as A

    # a mask may carry a distance channel beside the class ids: padding is 0 there
    return [A.PadIfNeeded(crop, crop, border_mode=0, fill_mask=(pad_label, 0)),
            A.RandomCrop(crop, crop)] if crop else []


def _light(crop: int | None, pad_label: int = 0):
    import albumentations as A

    return _none(crop, pad_label) + [
        A.HorizontalFlip(p=0.5),
        A.VerticalFlip(p=0.5),
        A.RandomRotate90(p=0.5),
        A.RandomBrightnessContrast(brightness_limit=0.1, contrast_limit=0.1, p=0.3),
    ]


def _vineyard(crop: int | None, pad_label: int = 0):
    """The vineyard seed trainer's pipeline."""
    import albumentations as A

    return _none(crop, pad_label) + [
        A.CLAHE(p=0.3),
        A.RandomGamma(p=0.3),
        A.HorizontalFlip(p=0.5),
        A.GridDistortion(p=0.2),
        A.RandomBrightnessContrast(p=0.3),
    ]


def _photo(crop: int | None, pad_label: int = 0):
    """Photos of scenes: up stays up (horizontal flips only); light, colour and contrast vary."""
    import albumentations as A

    return _none(crop, pad_label) + [
        A.HorizontalFlip(p=0.5),
        A.ColorJitter(brightness=0.2, contrast=0.2, saturation=0.2, hue=0.02, p=0.5),
        A.RandomGamma(p=0.2),
    ]


TRANSFORMS = {"none": _none, "light": _light, "photo": _photo, "vineyard": _vineyard}


def create_transforms(name: str, crop: int | None = None, train: bool = True, pad_label: int = 0):
    """Return an albumentations ``Compose`` for training, or None when there is nothing to do.

    Args:
        name: one of :data:`TRANSFORMS`.
        crop: random crop size for training (None: whole images).
        train: validation/test pipelines are always empty.
        pad_label: class id of the pixels that padding adds when an image is smaller than ``crop``
            (:data:`~segfit.data.formats.IGNORE_ID` where the run has unlabelled pixels: padding is no class).
    """
    if name not in TRANSFORMS:
        raise SegfitError(f"unknown augmentation {name!r}", fix=f"use one of {', '.join(TRANSFORMS)}")
    if not train:
        return None
    steps = TRANSFORMS[name](crop, pad_label)
    if not steps:
        return None
    import albumentations as A

    return A.Compose(steps)
