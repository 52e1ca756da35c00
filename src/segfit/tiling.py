"""Sliding-window inference for images of any size, in bounded memory.

Tiles of ``tile x tile`` pixels overlap by ``overlap``; their logits are blended with a Gaussian
weight that is largest at the tile centre (as nnU-Net does), so seams vanish. Tiles are batched.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Iterator

import torch
import torch.nn.functional as F


BATCH_PIXELS = 1 << 19  # pixels per forward pass of tiles: two 512 x 512 tiles


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
                  batch_size: int | None = None, align: int = 1) -> torch.Tensor:
    """Logits ``K x H x W`` for a ``C x H x W`` image, computed tile by tile (all of :func:`tiled_rows`)."""
    return torch.cat([rows for _, rows in tiled_rows(image, forward, tile, overlap, batch_size, align)], 1)


@torch.inference_mode()
def tiled_rows(image, forward: Callable[[torch.Tensor], torch.Tensor], tile: int, overlap: int = 64,
               batch_size: int | None = None, align: int = 1) -> Iterator[tuple[int, torch.Tensor]]:
    """Blended logits of an image, one band of finished rows at a time: ``(y0, K x n x W)``, top to bottom.

    Only the rows that later tiles may still touch are held, so memory grows with the width of the
    image, not its area.

    Args:
        image: the prepared (normalised) ``C x H x W`` image, or any object with that ``shape`` whose
            ``image[:, y0:y1, x0:x1]`` gives the prepared tile (so large images need no float copy).
        forward: maps a ``B x C x h x w`` batch to ``B x K x h x w`` logits.
        tile: tile side in pixels.
        overlap: pixels shared by neighbouring tiles (clipped to ``tile - 1``).
        batch_size: tiles per forward pass (default: as many as make :data:`BATCH_PIXELS`, at least one;
            the network's activations for a batch are the largest buffer of a prediction).
        align: tile starts are multiples of this (the network's total stride).
    """
    _, h, w = image.shape
    overlap = min(overlap, tile - 1)
    batch_size = batch_size or max(1, BATCH_PIXELS // (tile * tile))
    rows, cols = tile_windows(h, tile, overlap, align), tile_windows(w, tile, overlap, align)
    weights: dict[tuple[int, int], torch.Tensor] = {}
    kept, kept_norm, start = None, None, 0  # blended sums of rows [start, start + kept rows) not yet finished
    for i, (y0, y1) in enumerate(rows):
        total, norm = None, torch.zeros(y1 - y0, w)
        by_width: dict[int, list[tuple[int, int]]] = {}
        for x0, x1 in cols:
            by_width.setdefault(x1 - x0, []).append((x0, x1))
        for width, boxes in by_width.items():
            weight = weights.setdefault((y1 - y0, width), gaussian_weight(y1 - y0, width))
            for j in range(0, len(boxes), batch_size):
                group = boxes[j: j + batch_size]
                logits = forward(torch.stack([image[:, y0:y1, x0:x1] for x0, x1 in group])).float().cpu()
                if total is None:
                    total = torch.zeros(logits.shape[1], y1 - y0, w)
                for (x0, x1), lg in zip(group, logits):
                    total[:, :, x0:x1] += lg * weight
                    norm[:, x0:x1] += weight
        if kept is not None:  # the rows this tile row shares with the one above
            total[:, : kept.shape[1]] += kept
            norm[: kept.shape[1]] += kept_norm
        done = rows[i + 1][0] if i + 1 < len(rows) else h  # rows no later tile touches
        yield start, total[:, : done - y0].div_(norm[: done - y0])
        trim_heap()
        kept, kept_norm, start = total[:, done - y0:], norm[done - y0:], done


def trim_heap() -> None:
    """Give freed heap memory back to the operating system. glibc keeps it for reuse, and with the network's
    threads each in its own arena, a long tiled prediction's footprint would creep up by hundreds of MB."""
    libc = _libc()
    if libc is not None:
        libc.malloc_trim(0)


@functools.cache
def _libc():
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        return libc if hasattr(libc, "malloc_trim") else None
    except OSError:  # not glibc (macOS, Windows, musl): nothing to do
        return None


def resized_rows(bands: Iterable[tuple[int, torch.Tensor]], in_size: tuple[int, int], out_size: tuple[int, int],
                 pixels: int = 1 << 21) -> Iterator[tuple[int, torch.Tensor]]:
    """Bands of ``K x n x W`` maps (top to bottom, as :func:`tiled_rows` yields them) resized bilinearly
    to ``out_size``, as ``(o0, K x m x out_w)`` blocks of about ``pixels`` output pixels: the same values as
    ``F.interpolate(..., mode="bilinear", align_corners=False)`` of the whole map, without the whole map."""
    (h, w), (oh, ow) = in_size, out_size
    step = max(1, pixels // max(ow, 1))
    if (h, w) == (oh, ow):
        for y0, band in bands:
            for a in range(0, band.shape[1], step):
                yield y0 + a, band[:, a: a + step]
        return
    src = ((torch.arange(oh, dtype=torch.float64) + 0.5) * (h / oh) - 0.5).clamp_(min=0)
    top = src.floor().long().clamp_(max=h - 1)
    below = (top + 1).clamp_(max=h - 1)
    frac = (src - top).float()
    pending, first, done = None, 0, 0  # source rows [first, first + pending rows) are held
    for y0, band in bands:
        pending = band if pending is None else torch.cat([pending, band], 1)
        ready = int((below < first + pending.shape[1]).sum())  # output rows whose source rows have all arrived
        for a in range(done, ready, step):
            b = min(a + step, ready)
            upper, lower = pending[:, top[a:b] - first], pending[:, below[a:b] - first]
            block = torch.lerp(upper, lower, frac[a:b, None])
            if w != ow:
                block = F.interpolate(block[None], size=(b - a, ow), mode="bilinear", align_corners=False)[0]
            yield a, block
        done = ready
        if done < oh:  # drop the rows no later output row needs (the next band continues where these end)
            cut = min(int(top[done]) - first, pending.shape[1])
            pending, first = pending[:, cut:], first + cut
