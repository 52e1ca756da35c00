"""The pair cache: decoded once, and rebuilt when a file or the preprocessing changes."""

from __future__ import annotations

import os

import numpy as np
from PIL import Image

from segfit.config import DataConfig
from segfit.data.cache import PairCache, pair_key
from segfit.data.layouts import discover
from segfit.data.synthetic import make_particles
from segfit.options import resolve_data


def _setup(tmp_path, **cfg):
    data = make_particles(tmp_path / "data", n=3, size=32, seed=2)
    config = resolve_data(DataConfig(root=str(data), channels=1, **cfg))
    return data, config, discover(data).samples


def test_disk_cache_hits_after_the_first_read(tmp_path):
    _, cfg, samples = _setup(tmp_path)
    cache = PairCache(cfg, memory=False, directory=tmp_path / "cache")
    first = [cache.get(s) for s in samples]
    assert (cache.misses, cache.hits) == (3, 0)
    again = PairCache(cfg, memory=False, directory=tmp_path / "cache")  # a new process, same disk cache
    second = [again.get(s) for s in samples]
    assert (again.misses, again.hits) == (0, 3)
    for (a, m), (b, n) in zip(first, second):
        assert np.array_equal(a, b) and np.array_equal(m, n)


def test_changed_file_or_size_rebuilds_the_entry(tmp_path):
    data, cfg, samples = _setup(tmp_path)
    cache = PairCache(cfg, memory=False, directory=tmp_path / "cache")
    image, mask = cache.get(samples[0])
    # Rewrite the mask with different content (new size in bytes and mtime): a new key, a new entry.
    Image.fromarray(np.zeros((32, 32), np.uint16)).save(samples[0].mask)
    os.utime(samples[0].mask, ns=(1, 1))
    cache2 = PairCache(cfg, memory=False, directory=tmp_path / "cache")
    _, mask2 = cache2.get(samples[0])
    assert cache2.misses == 1 and mask2.sum() == 0 and mask.sum() > 0
    # A different preprocessing (size) gives another key too.
    resized = resolve_data(DataConfig(root=str(data), channels=1, size=16))
    assert pair_key(samples[1], resized) != pair_key(samples[1], cfg)
    image3, _ = PairCache(resized, memory=False, directory=tmp_path / "cache").get(samples[1])
    assert image3.shape == (16, 16, 1)


def test_damaged_entry_is_decoded_again(tmp_path):
    _, cfg, samples = _setup(tmp_path)
    cache = PairCache(cfg, memory=False, directory=tmp_path / "cache")
    cache.get(samples[0])
    entry = next((tmp_path / "cache").rglob("*.npz"))
    entry.write_bytes(b"broken")
    fresh = PairCache(cfg, memory=False, directory=tmp_path / "cache")
    image, _ = fresh.get(samples[0])
    assert fresh.misses == 1 and image.shape == (32, 32, 1)


def test_memory_cache_decodes_once(tmp_path):
    _, cfg, samples = _setup(tmp_path)
    cache = PairCache(cfg, memory=True)
    a = cache.get(samples[0])
    b = cache.get(samples[0])
    assert a[0] is b[0] and (cache.misses, cache.hits) == (1, 1)
