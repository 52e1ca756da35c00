"""Decoded, preprocessed image/mask pairs, decoded once.

With ``preload`` the pairs stay in memory; otherwise they go to an on-disk cache (``$SEGFIT_CACHE``,
default ``~/.cache/segfit/pairs``), one ``.npz`` per pair, keyed by both files' identity (absolute
path, size, modification time) and by the preprocessing (channels, size, mask mode, classes). A
changed file or setting gives a new key, so a stale entry is never read.
"""

from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path

import numpy as np

from segfit.config import DataConfig
from segfit.data.formats import file_stamp
from segfit.data.layouts import Sample
from segfit.data.preprocess import load_pair
from segfit.io import atomic_path

CACHE_VERSION = 1


def default_cache_dir() -> Path:
    base = os.environ.get("SEGFIT_CACHE")
    if base:
        return Path(base)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "segfit" / "pairs"


def _identity(path: Path | None) -> str:
    if path is None:
        return "-"
    return f"{path.resolve()}|{file_stamp(path)}"


def pair_key(sample: Sample, cfg: DataConfig) -> str:
    """A key that changes when either file or the preprocessing changes."""
    parts = [str(CACHE_VERSION), _identity(sample.image), _identity(sample.mask), str(cfg.channels), str(cfg.size) + (f"@{cfg.scale}" if cfg.scale else ""),
             cfg.mask_mode, str(cfg.num_classes), str(cfg.class_values or "")] + ([f"instances@{cfg.instance_radius}"] if cfg.instances else [])
    return hashlib.sha1("\n".join(parts).encode()).hexdigest()


class PairCache:
    """``get(sample) -> (image, mask)``: from memory, from disk, or decoded (and then stored); safe to call
    from several threads (the data pass decodes on a few)."""

    def __init__(self, cfg: DataConfig, memory: bool, directory: Path | None = None):
        self.cfg, self.memory = cfg, memory
        self.directory = None if memory else Path(directory or default_cache_dir())
        self._store: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self.hits = self.misses = 0
        self._count = threading.Lock()

    def _counted(self, hit: bool) -> None:
        with self._count:
            if hit:
                self.hits += 1
            else:
                self.misses += 1

    def get(self, sample: Sample) -> tuple[np.ndarray, np.ndarray]:
        if self.memory:
            pair = self._store.get(sample.name)
            self._counted(pair is not None)
            if pair is None:
                pair = self._store[sample.name] = load_pair(sample, self.cfg)
            return pair
        key = pair_key(sample, self.cfg)
        path = self.directory / key[:2] / f"{key}.npz"
        if path.is_file():
            try:
                with np.load(path, allow_pickle=False) as z:
                    pair = z["image"], z["mask"]
                self._counted(True)
                return pair
            except (OSError, ValueError, KeyError):
                pass  # a damaged entry is decoded again and replaced
        self._counted(False)
        image, mask = load_pair(sample, self.cfg)
        self._write(path, image, mask)
        return image, mask

    def _write(self, path: Path, image: np.ndarray, mask: np.ndarray) -> None:
        try:
            with atomic_path(path) as tmp, open(tmp, "wb") as f:
                np.savez(f, image=image, mask=mask)
        except OSError:
            pass  # a read-only or full disk only costs speed
