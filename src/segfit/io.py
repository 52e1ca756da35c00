"""Atomic file writes: a crash mid-write leaves the previous version of a file whole."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

if TYPE_CHECKING:
    import numpy as np


_UMASK = os.umask(0o022)  # read (setting it back at once): what a plain open() would leave others
os.umask(_UMASK)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = ".tmp") -> Iterator[Path]:
    """Yield a temporary path beside ``path`` (ending in ``suffix``); on success it is renamed over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes the file private (0600); the user's umask decides
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def write_png(path: str | os.PathLike, array: np.ndarray) -> None:
    """Write an ``H x W`` (uint8 or uint16) or ``H x W x 3`` (uint8 RGB) array as a PNG file, atomically.

    Pillow reads gray and 16-bit arrays where they are; an RGB image it would first copy at 4 bytes a
    pixel, so RGB goes through OpenCV's encoder, which takes the array as it is once its channels are
    swapped to BGR: in place and back again when the array is writable, so an 8192 x 8192 overlay costs
    no second copy."""
    if array.ndim == 2:
        from PIL import Image

        with atomic_path(path, ".png") as tmp:
            Image.fromarray(array).save(tmp, format="PNG")
        return
    import cv2
    import numpy as np

    swap_in_place = array.flags.writeable and array.flags.c_contiguous and array.dtype == np.uint8
    bgr = _swap_rb(array) if swap_in_place else np.ascontiguousarray(array[..., ::-1])
    try:
        with atomic_path(path, ".png") as tmp:
            if not cv2.imwrite(str(tmp), bgr):
                raise OSError(f"cannot write {path}")
    finally:
        if swap_in_place:
            _swap_rb(array)


def _swap_rb(array: np.ndarray, rows: int = 1024) -> np.ndarray:
    """Swap the first and third channels of ``H x W x 3`` in place, a block of rows at a time."""
    for start in range(0, array.shape[0], rows):
        block = array[start: start + rows]
        block[..., [0, 2]] = block[..., [2, 0]]
    return array


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json(path: str | os.PathLike, data: Any) -> None:
    """Strict JSON: a figure that is not a number (NaN, an infinity) is written as null."""
    write_text(path, json.dumps(_finite(data), indent=2, default=_plain, allow_nan=False) + "\n")


def _finite(data: Any) -> Any:
    if type(data).__module__ == "numpy" and hasattr(data, "tolist"):  # numpy scalars and arrays
        data = data.tolist()
    if isinstance(data, float):
        return data if data == data and data not in (float("inf"), float("-inf")) else None
    if isinstance(data, dict):
        return {k: _finite(v) for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        return [_finite(v) for v in data]
    return data


def write_csv(path: str | os.PathLike, frame) -> None:
    """Write a pandas DataFrame as CSV, atomically."""
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False)


def save_figure(path: str | os.PathLike, fig) -> None:
    """Save a matplotlib figure as PNG, atomically, and close it."""
    import matplotlib.pyplot as plt

    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=fig.dpi, bbox_inches="tight")
    plt.close(fig)


def progress(items, desc: str, minimum: int = 4, total: int | None = None):
    """``items`` wrapped in a tqdm bar when stderr is a terminal and there are ``minimum`` or more (``total``: their
    number, for items without a length, such as results still coming)."""
    import sys

    total = len(items) if total is None else total
    if not sys.stderr.isatty() or total < minimum:
        return items
    from tqdm.auto import tqdm

    return tqdm(items, desc=desc, total=total, leave=False)


def decode_in_threads(decode, items: list, desc: str, verbose: bool = True, minimum: int = 50) -> Iterator:
    """``decode(item)`` for each item, in order, on a few threads (one a core, at most 4): image decoders
    (PNG, JPEG, TIFF) and numpy release the GIL, so on 2 cores a data pass of 366 EMPS pairs takes about half as long.
    The first item that raises stops the pass there (the items after it are not waited for)."""
    from concurrent.futures import ThreadPoolExecutor

    threads = min(4, os.cpu_count() or 1, len(items))
    if threads < 2:
        results = map(decode, items)
        yield from (progress(results, desc, minimum, len(items)) if verbose else results)
        return
    pool = ThreadPoolExecutor(threads, thread_name_prefix="segfit-decode")
    try:
        results = pool.map(decode, items)
        yield from (progress(results, desc, minimum, len(items)) if verbose else results)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _plain(value: Any) -> Any:
    """JSON fallback for numpy scalars/arrays and paths."""
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    raise TypeError(f"cannot write {type(value).__name__} to JSON")
