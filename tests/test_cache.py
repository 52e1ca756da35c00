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


def test_data_pass_decodes_on_threads_in_order_and_stops_at_the_first_bad_file(tmp_path):
    import threading

    import pytest

    from segfit.data.datamodule import SegmentationDataModule
    from segfit.config import TrainConfig
    from segfit.errors import SegfitError
    from segfit.io import decode_in_threads

    seen = set()

    def decode(i):
        seen.add(threading.current_thread().name)
        if i == 5:
            raise ValueError("bad item 5")
        return i * i

    got = []
    with pytest.raises(ValueError, match="bad item 5"):
        for value in decode_in_threads(decode, list(range(40)), "test", verbose=False):
            got.append(value)
    assert got == [i * i for i in range(5)]  # in order, up to the bad one
    if (os.cpu_count() or 1) > 1:
        assert any(name.startswith("segfit-decode") for name in seen)
    # The data module's pass: the same pairs as decoding one by one, and a damaged file named in its error.
    data, cfg, samples = _setup(tmp_path)
    dm = SegmentationDataModule(cfg, TrainConfig(), split={"train": [s.name for s in samples[:2]], "val": [samples[2].name],
                                                           "test": [], "source": "test"})
    dm.prepare(verbose=False)
    serial = PairCache(cfg, memory=True)
    for s in samples:
        a, b = dm.cache.get(s), serial.get(s)
        assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    samples[1].image.write_bytes(b"not a png")
    broken = SegmentationDataModule(cfg, TrainConfig(), split=dm.split)
    with pytest.raises(SegfitError) as err:
        broken.prepare(verbose=False)
    assert samples[1].image.name in str(err.value)
