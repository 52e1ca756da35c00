"""Dataset and LightningDataModule: files -> decoded, resized arrays -> augmented tensors."""

from __future__ import annotations

import dataclasses

import lightning.pytorch as pl
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from segfit.config import DataConfig, TrainConfig
from segfit.data.cache import PairCache
from segfit.data.formats import IGNORE_ID
from segfit.data.orientation import orientation
from segfit.data.layouts import Layout, Sample, discover
from segfit.data.preprocess import image_to_tensor, load_pair, numpy_to_tensor, split_target
from segfit.data.split import make_split
from segfit.data.transforms import create_transforms
from segfit.errors import SegfitError
from segfit.io import decode_in_threads


class SegmentationDataset(Dataset):
    """Image/mask pairs as ``(C x H x W float, H x W long)`` tensors.

    Pairs come from a :class:`PairCache` (decoded once: in memory with ``preload``, else on disk);
    without one they are decoded on every access.
    """

    def __init__(self, samples: list[Sample], cfg: DataConfig, transform=None, cache: PairCache | None = None):
        self.samples, self.cfg, self.transform, self.cache = samples, cfg, transform, cache

    def __len__(self) -> int:
        return len(self.samples)

    def pair(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Decoded, resized (image, class-id mask) arrays before augmentation."""
        if self.cache is not None:
            return self.cache.get(self.samples[index])
        return load_pair(self.samples[index], self.cfg)

    def __getitem__(self, index: int | tuple[int, int]):
        seed = None
        if isinstance(index, tuple):  # (index, augmentation seed) from EpochSampler
            index, seed = index
        image, mask = self.pair(index)
        if self.transform is not None:
            if seed is not None:
                self.transform.set_random_seed(seed)
            out = self.transform(image=image, mask=mask)
            image, mask = out["image"], out["mask"]
            if image.ndim == 2:
                image = image[..., None]
        ids, distance = split_target(mask)
        x, y = image_to_tensor(image, self.cfg.mean, self.cfg.std), numpy_to_tensor(ids).long()
        return (x, y) if distance is None else (x, y, numpy_to_tensor(distance))


class EpochSampler(Sampler):
    """Shuffles with a generator seeded by (seed, epoch) and gives each sample an augmentation seed.

    An epoch's order and augmentations are then the same whether or not the run was interrupted
    and resumed before it (Lightning calls ``set_epoch`` at the start of every epoch). With
    ``repeats`` an epoch goes over the samples that many times, each time in a new order with new
    augmentations (few images then still make an epoch of many steps). Under DDP
    each of ``world`` processes takes every ``world``-th sample of the same order, padded by
    wrapping around so that all processes run the same number of steps.
    """

    def __init__(self, n: int, seed: int, rank: int = 0, world: int = 1, repeats: int = 1):
        self.n, self.seed, self.rank, self.world, self.epoch = n, seed, rank, world, 0
        self.repeats = max(1, repeats)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return -(-self.n * self.repeats // self.world)

    def __iter__(self):
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        order = [i for _ in range(self.repeats) for i in torch.randperm(self.n, generator=g).tolist()]
        seeds = torch.randint(0, 2**31 - 1, (len(order),), generator=g).tolist()
        pairs = list(zip(order, seeds))
        pairs += pairs[: len(self) * self.world - len(order)]
        return iter(pairs[self.rank:: self.world])


class ShardSampler(Sampler):
    """Every ``world``-th sample from ``rank``, in order, without padding: under DDP each
    validation image is seen exactly once (the metrics are then summed across processes)."""

    def __init__(self, n: int, rank: int = 0, world: int = 1):
        self.indices = list(range(rank, n, world))

    def __len__(self) -> int:
        return len(self.indices)

    def __iter__(self):
        return iter(self.indices)


class SegmentationDataModule(pl.LightningDataModule):
    """Owns the files, the split and the loaders of a run."""

    def __init__(self, data: DataConfig, train: TrainConfig, split: dict | None = None, layout: Layout | None = None):
        super().__init__()
        self.cfg, self.train_cfg = data, train
        self.layout = layout or discover(data.root, data.images, data.masks, data.mask_suffix)
        names = [s.name for s in self.layout.samples]
        self.split = split or make_split(names, data.root, data.test, data.val, data.seed, self.layout.split)
        self.by_name = {s.name: s for s in self.layout.samples}
        self.cache = PairCache(data, memory=data.preload)
        self._train_names = set(self.split["train"])
        self._sets: dict[str, SegmentationDataset] = {}

    def prepare(self, verbose: bool = True) -> None:
        """Decode every pair of every split once (filling the cache), stopping on the first bad file,
        so a problem surfaces before the first epoch rather than hours into training. Without
        --size or --crop, training batches need one image size: all training images must agree."""
        first = None
        stats = {which: _SplitStats(self.cfg.num_classes) for which in ("train", "val", "test")}
        pairs = self.samples("train") + self.samples("val")
        for sample, (image, mask) in zip(pairs, decode_in_threads(self.cache.get, pairs, "reading data", verbose)):
            stats["train" if sample.name in self._train_names else "val"].add(sample, mask)
            if self.cfg.size is None and self.cfg.crop is None and sample.name in self._train_names:
                if first is None:
                    first = (sample, image.shape[:2])
                elif image.shape[:2] != first[1]:
                    (h, w), (fh, fw) = image.shape[:2], first[1]
                    raise SegfitError(f"training images differ in size ({h}x{w} here, {fh}x{fw} in {first[0].image.name})",
                                      sample.image, "resize them with --size N or train on crops with --crop N")
        ids_only = dataclasses.replace(self.cfg, instances=False)  # the test check needs no instance targets
        tests = self.samples("test")  # only evaluate reads these: check them, keep nothing
        for sample, (_, mask) in zip(tests, decode_in_threads(lambda s: load_pair(s, ids_only), tests, "checking test data", verbose)):
            stats["test"].add(sample, mask)
        self.summary = {"layout": self.layout.description, "split_source": self.split.get("source"),
                        "class_names": list(self.cfg.class_names), "resized_to": self.cfg.size,
                        "splits": {which: st.result() for which, st in stats.items()}}

    def samples(self, which: str) -> list[Sample]:
        return [self.by_name[n] for n in self.split[which]]

    def dataset(self, which: str) -> SegmentationDataset:
        if which not in self._sets:
            train = which == "train"
            pad_label = 0 if self.cfg.ignore_value is None else IGNORE_ID
            tf = create_transforms(self.train_cfg.augment, self.cfg.crop, train=train, pad_label=pad_label)
            self._sets[which] = SegmentationDataset(self.samples(which), self.cfg, tf, cache=self.cache)
        return self._sets[which]

    def _loader(self, which: str, shuffle: bool) -> DataLoader:
        ds = self.dataset(which)
        trainer = getattr(self, "trainer", None)
        rank, world = (trainer.global_rank, trainer.world_size) if trainer is not None else (0, 1)
        sampler = (EpochSampler(len(ds), self.train_cfg.seed, rank, world, self.train_cfg.repeats) if shuffle
                   else ShardSampler(len(ds), rank, world))
        batch = self.train_cfg.batch_size
        if which != "train" and self.cfg.size is None:
            batch = 1  # original sizes may differ between images
        workers = self.train_cfg.num_workers
        return DataLoader(ds, batch_size=batch, sampler=sampler, num_workers=workers,
                          pin_memory=torch.cuda.is_available(), persistent_workers=workers > 0,
                          drop_last=False)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)


class _SplitStats:
    """Image count, original image sizes and class pixel counts of one split (for ``data.json``)."""

    def __init__(self, num_classes: int):
        self.num_classes, self.images = num_classes, 0
        self.sizes: dict[str, int] = {}
        self.pixels = np.zeros(num_classes, dtype=np.int64)

    def add(self, sample: Sample, mask: np.ndarray) -> None:
        mask = split_target(mask)[0]
        self.images += 1
        size = _image_size(sample.image) or mask.shape[:2]
        key = f"{size[0]}x{size[1]}"
        self.sizes[key] = self.sizes.get(key, 0) + 1
        self.pixels += np.bincount(mask.ravel(), minlength=self.num_classes)[: self.num_classes]

    def result(self) -> dict:
        total = int(self.pixels.sum())
        return {"images": self.images, "sizes": dict(sorted(self.sizes.items(), key=lambda kv: -kv[1])),
                "class_pixels": self.pixels.tolist(),
                "class_fractions": [round(float(p) / total, 6) if total else 0.0 for p in self.pixels]}


def _image_size(path) -> tuple[int, int] | None:
    """``(height, width)`` from the file header, without decoding the pixels (None if unknown)."""
    try:
        from PIL import Image

        with Image.open(path) as im:
            turned = orientation(im) in (5, 6, 7, 8)  # read upright: width and height swap
            return (im.size[0], im.size[1]) if turned else (im.size[1], im.size[0])
    except Exception:
        return None
