"""Train / validation / test splits, saved as ``split.json`` in every run folder."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from segfit.data.formats import read_split_file
from segfit.errors import SegfitError

SPLITS = ("train", "val", "test")


def make_split(names: list[str], root: str | Path, test: float = 0.2, val: float = 0.2, seed: int = 0,
               folders: dict | None = None) -> dict:
    """Split image names into train / val / test.

    Split folders (``folders``: :attr:`segfit.data.layouts.Layout.split`) are the split: ``test/`` the
    test images, ``val/`` the validation images (else a ``val`` share of ``train/``). When ``root``
    holds ``train.csv`` and ``test.csv`` (EMPS), those define train+val vs test (``test.csv`` alone, listing
    images of the data set: the others are train+val); otherwise a ``test``
    fraction is held out at random. ``val`` is a fraction (< 1) of what remains
    or a count (>= 1). Shuffling uses ``numpy.random.default_rng(seed).permutation``, so the EMPS
    split with seed 0 and ``val=100`` is the one the Keras reference uses.

    Returns:
        ``{"train": [...], "val": [...], "test": [...], "source": str, "seed": int}``
    """
    root = Path(root)
    known = set(names)
    if folders:
        if folders["val"]:
            return {"train": list(folders["train"]), "val": list(folders["val"]), "test": list(folders["test"]),
                    "source": "split folders", "seed": seed}
        trainval, test_names = list(folders["train"]), list(folders["test"])
        source = "split folders" + ("" if test_names else " (no test folder: no test images)")
    elif (given := _split_lists(root, known)) is not None:
        test_names = given["test.csv"]
        trainval = given.get("train.csv") or [n for n in names if n not in set(test_names)]  # test.csv alone: the rest
        for fname, listed in given.items():
            missing = [n for n in listed if n not in known]
            if missing:
                raise SegfitError(f"{len(missing)} names listed in {fname} have no image/mask pair (first: {missing[0]!r})",
                                  root / fname, "remove them from the list or add the files")
        overlap = set(trainval) & set(test_names)
        if overlap:
            raise SegfitError(f"{len(overlap)} names are in both train.csv and test.csv", root, "list each name once")
        source = "train.csv / test.csv" if len(given) == 2 else "test.csv (the other images: training)"
    else:
        order = [names[i] for i in np.random.default_rng(seed).permutation(len(names))]
        n_test = test_count(len(order), test)
        test_names, trainval = order[:n_test], order[n_test:]
        source = f"random, test fraction {test}"
    n_val = val_count(len(trainval), val)
    if len(trainval) < 2:
        raise SegfitError(f"{len(trainval)} labelled image{'' if len(trainval) == 1 else 's'} to train on: training needs 2 "
                          "at least (one to learn from, one to choose the best epoch on)", root,
                          "add images, or cut a large image and its mask into tiles (e.g. quarters)")
    if n_val == 0:
        raise SegfitError(f"--val {val} leaves no validation images ({len(trainval)} images to split)", root,
                          "the best checkpoint is chosen on validation loss: use e.g. --val 0.2 or --val 1 or more")
    if n_val >= len(trainval):
        raise SegfitError(f"--val {val} leaves no training images ({len(trainval)} images before the validation split)",
                          root, "use a smaller --val or add images")
    perm = np.random.default_rng(seed).permutation(len(trainval))
    val_names = [trainval[i] for i in perm[:n_val]]
    train_names = [trainval[i] for i in perm[n_val:]]
    return {"train": train_names, "val": val_names, "test": list(test_names), "source": source, "seed": seed}


def test_count(n: int, test: float) -> int:
    """Test images a random split of ``n`` holds out (``--test`` fraction)."""
    return int(round(test * n))


def val_count(n: int, val: float) -> int:
    """Validation images of ``n`` train+val images: a count (>= 1), or a fraction (at least one of two or more)."""
    count = int(val) if val >= 1 else int(round(val * n))
    return 1 if val > 0 and count == 0 and n >= 2 else count


def _split_lists(root: Path, known: set[str]) -> dict[str, list[str]] | None:
    """The split files that define the split, each read once: ``train.csv`` and ``test.csv`` together, or a
    ``test.csv`` alone that lists images of the data set (not, as some downloads do, images without masks);
    None otherwise (a lone ``train.csv`` is no split)."""
    test, train = root / "test.csv", root / "train.csv"
    if not test.is_file():
        return None
    if train.is_file():
        return {"train.csv": read_split_file(train), "test.csv": read_split_file(test)}
    try:
        listed = read_split_file(test)
    except SegfitError:
        return None
    return {"test.csv": listed} if listed and all(n in known for n in listed) else None


def select(split: dict, which: str) -> list[str]:
    """Names of one split, or of all of them (``which="all"``)."""
    if which == "all":
        return split["train"] + split["val"] + split["test"]
    if which not in SPLITS:
        raise SegfitError(f"unknown split {which!r}", fix="use test, val, train or all")
    return split[which]
