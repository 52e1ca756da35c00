"""Sliding-window inference for images of any size, in bounded memory.

Tiles of ``tile x tile`` pixels overlap by ``overlap``; their logits are blended with a Gaussian
weight that is largest at the tile centre (as nnU-Net does), so seams vanish. Tiles are batched.
"""

from __future__ import annotations

from collections.abc import Callable

import torch


def tile_windows(length: int, tile: int, overlap: int, align: int = 1) -> list[tuple[int, int]]:
    """``(start, stop)`` windows covering ``[0, length)``: ``tile`` long, overlapping by at least
    ``overlap``, starting at multiples of ``align`` (the network's total stride, so every tile sees
    the same pixel grid as the whole image); the last window runs to ``length``."""
    if length <= tile:
        return [(0, length)]
    stride = max(align, (tile - overlap) // align * align)
    last = (length - tile) // align * align
    starts = list(range(0, last + 1, stride))
    if starts[-1] != last:
        starts.append(last)
    return [(s, s + tile) for s in starts[:-1]] + [(starts[-1], length)]


def tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Start offsets of :func:`tile_windows` (no alignment)."""
    return [s for s, _ in tile_windows(length, tile, overlap)]


def gaussian_weight(h: int, w: int, sigma_scale: float = 1 / 8) -> torch.Tensor:
    """``h x w`` weights, 1 at the centre, never below 1e-3 (edges of the image still count)."""
    def axis(n: int) -> torch.Tensor:
        x = torch.arange(n, dtype=torch.float32) - (n - 1) / 2
        return torch.exp(-0.5 * (x / max(n * sigma_scale, 1e-6)) ** 2)

    return (axis(h)[:, None] * axis(w)[None, :]).clamp_(min=1e-3)


@torch.inference_mode()
def predict_tiled(image: torch.Tensor, forward: Callable[[torch.Tensor], torch.Tensor], tile: int, overlap: int = 64,
                  batch_size: int = 4, align: int = 1) -> torch.Tensor:
    """Logits ``K x H x W`` for a ``C x H x W`` image, computed tile by tile.

    Args:
        image: the prepared (normalised) ``C x H x W`` image, or any object with that ``shape`` whose
            ``image[:, y0:y1, x0:x1]`` gives the prepared tile (so large images need no float copy).
        forward: maps a ``B x C x h x w`` batch to ``B x K x h x w`` logits.
        tile: tile side in pixels.
        overlap: pixels shared by neighbouring tiles (clipped to ``tile - 1``).
        batch_size: tiles per forward pass.
        align: tile starts are multiples of this (the network's total stride).
    """
    _, h, w = image.shape
    overlap = min(overlap, tile - 1)
    boxes = [(y0, y1, x0, x1) for y0, y1 in tile_windows(h, tile, overlap, align)
             for x0, x1 in tile_windows(w, tile, overlap, align)]
    by_shape: dict[tuple[int, int], list] = {}
    for box in boxes:
        by_shape.setdefault((box[1] - box[0], box[3] - box[2]), []).append(box)
    total = None
    norm = torch.zeros(h, w)
    for shape, group_boxes in by_shape.items():
        weight = gaussian_weight(*shape)
        for i in range(0, len(group_boxes), batch_size):
            group = group_boxes[i: i + batch_size]
            batch = torch.stack([image[:, y0:y1, x0:x1] for y0, y1, x0, x1 in group])
            logits = forward(batch).float().cpu()
            if total is None:
                total = torch.zeros(logits.shape[1], h, w)
            for (y0, y1, x0, x1), lg in zip(group, logits):
                total[:, y0:y1, x0:x1] += lg * weight
                norm[y0:y1, x0:x1] += weight
    return total.div_(norm)  # in place: no second K x H x W buffer
