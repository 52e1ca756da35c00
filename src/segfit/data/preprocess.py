"""From files to the arrays and tensors a network sees: read a pair, resize, convert to a tensor.

Training (the data module and its cache) and inference (predict, evaluate) prepare images with these
same functions, so a model sees at prediction what it saw in training. No Lightning here.
"""

from __future__ import annotations

import numpy as np
import torch

from segfit.config import DataConfig
from segfit.data.formats import read_class_ids, read_image
from segfit.data.layouts import Sample
from segfit.errors import SegfitError


def resize_image(image: np.ndarray, size: int | tuple[int, int] | None) -> np.ndarray:
    """Resize ``H x W x C`` to ``size`` (int: square; (h, w)); area for shrinking, linear for growing."""
    if size is None:
        return image
    import cv2

    h, w = (size, size) if isinstance(size, int) else size
    if image.shape[:2] == (h, w):
        return image
    interp = cv2.INTER_AREA if h < image.shape[0] and w < image.shape[1] else cv2.INTER_LINEAR
    out = cv2.resize(image, (w, h), interpolation=interp)
    return out[..., None] if out.ndim == 2 else out


def resize_mask(mask: np.ndarray, size: int | tuple[int, int] | None) -> np.ndarray:
    """Resize a class-id mask with nearest-neighbour sampling."""
    if size is None:
        return mask
    h, w = (size, size) if isinstance(size, int) else size
    if mask.shape == (h, w):
        return mask
    # Sample at pixel centres (as PIL's NEAREST), so masks stay aligned with area-resized images.
    rows = ((np.arange(h) + 0.5) * mask.shape[0] / h).astype(np.int64).clip(0, mask.shape[0] - 1)
    cols = ((np.arange(w) + 0.5) * mask.shape[1] / w).astype(np.int64).clip(0, mask.shape[1] - 1)
    return mask[rows[:, None], cols[None, :]]


def numpy_to_tensor(arr: np.ndarray) -> torch.Tensor:
    """``torch.from_numpy`` of any array: a contiguous copy when needed. ``np.ascontiguousarray`` keeps a flipped
    axis of length 1 (numpy calls it contiguous whatever its stride) and torch refuses negative strides."""
    if not arr.flags.c_contiguous or any(s < 0 for s in arr.strides):
        arr = arr.copy()
    return torch.from_numpy(arr) if arr.flags.writeable else torch.tensor(arr)


def image_to_tensor(image: np.ndarray, mean=None, std=None) -> torch.Tensor:
    """``H x W x C`` array (uint8, uint16 or float) -> ``C x H x W`` float32 in [0, 1], then normalised."""
    if image.dtype == np.uint8:
        scale = 1 / 255.0
    elif image.dtype == np.uint16:
        scale = 1 / 65535.0
    else:
        scale = 1.0
    t = numpy_to_tensor(image.transpose(2, 0, 1)).float()
    if scale != 1.0:  # integer input: .float() made a new tensor, scaled in place
        t.mul_(scale)
    if mean is not None:
        m = torch.tensor(mean, dtype=t.dtype).view(-1, 1, 1)
        s = torch.tensor(std, dtype=t.dtype).view(-1, 1, 1)
        t = (t - m[: t.shape[0]]) / s[: t.shape[0]]
    return t


def read_pair(sample: Sample, cfg: DataConfig, channels: int | None = None, raw: bool = False):
    """Read and check one image/mask pair at its original size; the mask comes back as uint8
    class ids. ``channels`` overrides ``cfg.channels`` (e.g. RGB for display); ``raw`` also returns
    the mask's own values (instance ids, for instance evaluation)."""
    image = read_image(sample.image, channels or cfg.channels)
    ids, mask = read_class_ids(sample.mask, cfg)
    if mask.shape != image.shape[:2]:
        raise SegfitError(f"mask is {mask.shape[0]}x{mask.shape[1]} but its image is {image.shape[0]}x{image.shape[1]}",
                          sample.mask, "masks must have the size of their image")
    return (image, ids, mask) if raw else (image, ids)



def working_size(shape: tuple[int, ...], cfg: DataConfig) -> int | tuple[int, int] | None:
    """The size an image of ``shape`` is resized to: ``size`` (square), the ``scale`` factor, or None."""
    if cfg.size is not None:
        return cfg.size
    if cfg.scale and cfg.scale != 1:
        return max(1, round(shape[0] * cfg.scale)), max(1, round(shape[1] * cfg.scale))
    return None


def load_pair(sample: Sample, cfg: DataConfig) -> tuple[np.ndarray, np.ndarray]:
    """Read, check and resize one image/mask pair, as training sees it. With ``cfg.instances`` the mask
    is ``H x W x 2`` uint8: class ids, then each object's normalised distance map scaled to 0-255
    (computed at the working scale, so augmentations move it with the class ids)."""
    if not cfg.instances:
        image, mask = read_pair(sample, cfg)
        size = working_size(image.shape, cfg)
        return resize_image(image, size), resize_mask(mask, size)
    from segfit.objects import distance_target, true_objects

    image, ids, raw = read_pair(sample, cfg, raw=True)
    size = working_size(image.shape, cfg)
    ids, raw = resize_mask(ids, size), resize_mask(raw, size)
    radius = cfg.instance_radius * (cfg.scale or 1.0) if cfg.instance_radius and cfg.size is None else cfg.instance_radius
    distance = distance_target(true_objects(raw, ids, cfg.mask_mode == "binary"), radius)
    return resize_image(image, size), np.dstack([ids, np.round(distance * 255).astype(np.uint8)])


def split_target(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """Class ids and the distance map in [0, 1] (None without instances) from a :func:`load_pair` mask."""
    if mask.ndim == 2:
        return mask, None
    return mask[..., 0], mask[..., 1].astype(np.float32) / 255
