"""Train / validation / test splits."""

from __future__ import annotations

import numpy as np
import pytest

from segfit.data.split import make_split, select
from segfit.errors import SegfitError

NAMES = [f"img_{i:02d}" for i in range(20)]


def _check_partition(split: dict, names: list[str]) -> None:
    parts = split["train"] + split["val"] + split["test"]
    assert len(parts) == len(set(parts)) == len(names)
    assert set(parts) == set(names)


@pytest.mark.parametrize("test,val,sizes", [
    (0.2, 0.25, (12, 4, 4)),
    (0.2, 5, (11, 5, 4)),
    (0.5, 0.2, (8, 2, 10)),
    (0.0, 0.2, (16, 4, 0)),
    (0.2, 0.01, (15, 1, 4)),  # a positive fraction keeps at least one validation image
])
def test_random_split_sizes(tmp_path, test, val, sizes):
    split = make_split(NAMES, tmp_path, test=test, val=val, seed=3)
    assert (len(split["train"]), len(split["val"]), len(split["test"])) == sizes
    _check_partition(split, NAMES)
    assert split["seed"] == 3
    assert split["source"] == f"random, test fraction {test}"


def test_random_split_follows_numpy_permutation(tmp_path):
    split = make_split(NAMES, tmp_path, test=0.2, val=3, seed=7)
    order = [NAMES[i] for i in np.random.default_rng(7).permutation(20)]
    assert split["test"] == order[:4]
    trainval = order[4:]
    perm = np.random.default_rng(7).permutation(16)
    assert split["val"] == [trainval[i] for i in perm[:3]]
    assert split["train"] == [trainval[i] for i in perm[3:]]


def test_split_deterministic_with_seed(tmp_path):
    a = make_split(NAMES, tmp_path, test=0.2, val=0.2, seed=11)
    b = make_split(list(NAMES), tmp_path, test=0.2, val=0.2, seed=11)
    c = make_split(NAMES, tmp_path, test=0.2, val=0.2, seed=12)
    assert a == b
    assert (a["train"], a["val"], a["test"]) != (c["train"], c["val"], c["test"])
    _check_partition(c, NAMES)


def test_split_csv_files_honoured(tmp_path):
    train = NAMES[:14]
    test = NAMES[14:18]  # the last two names are listed nowhere and left out
    (tmp_path / "train.csv").write_text("name\n" + "\n".join(f"{n}.png" for n in train) + "\n")
    (tmp_path / "test.csv").write_text("name\n" + "\n".join(test) + "\n")
    split = make_split(NAMES, tmp_path, test=0.5, val=4, seed=0)
    assert split["source"] == "train.csv / test.csv"
    assert split["test"] == test
    assert len(split["val"]) == 4 and len(split["train"]) == 10
    assert set(split["train"] + split["val"]) == set(train)
    assert not set(split["train"]) & set(split["val"])


def test_split_csv_matches_keras_reference(tmp_path):
    names = [f"{i:04d}" for i in range(466)]
    rng = np.random.default_rng(123)
    order = list(rng.permutation(names))
    train, test = order[:366], order[366:]
    (tmp_path / "train.csv").write_text("\n".join(train) + "\n")
    (tmp_path / "test.csv").write_text("\n".join(test) + "\n")
    split = make_split(sorted(names), tmp_path, val=100, seed=0)
    perm = np.random.default_rng(0).permutation(366)
    assert split["val"] == [train[i] for i in perm[:100]]
    assert split["train"] == [train[i] for i in perm[100:]]
    assert split["test"] == test


def test_split_csv_missing_names(tmp_path):
    (tmp_path / "train.csv").write_text("img_00\nghost\nimg_01\n")
    (tmp_path / "test.csv").write_text("img_02\n")
    with pytest.raises(SegfitError) as e:
        make_split(NAMES, tmp_path, val=1)
    assert "1 names listed in train.csv" in e.value.what
    assert "'ghost'" in e.value.what
    assert e.value.file == str(tmp_path / "train.csv")
    (tmp_path / "train.csv").write_text("img_00\nimg_01\n")
    (tmp_path / "test.csv").write_text("phantom\nimg_02\n")
    with pytest.raises(SegfitError, match="test.csv") as e:
        make_split(NAMES, tmp_path, val=1)
    assert "'phantom'" in e.value.what


def test_split_csv_overlap(tmp_path):
    (tmp_path / "train.csv").write_text("img_00\nimg_01\nimg_02\n")
    (tmp_path / "test.csv").write_text("img_02\n")
    with pytest.raises(SegfitError, match="1 names are in both"):
        make_split(NAMES, tmp_path, val=1)


def test_split_only_train_csv_is_random(tmp_path):
    (tmp_path / "train.csv").write_text("img_00\n")
    split = make_split(NAMES, tmp_path, test=0.2, val=0.2)
    assert split["source"].startswith("random")
    _check_partition(split, NAMES)


@pytest.mark.parametrize("val", [16, 20, 0.99])
def test_val_too_large(tmp_path, val):
    with pytest.raises(SegfitError) as e:
        make_split(NAMES, tmp_path, test=0.2, val=val)
    assert "leaves no training images" in e.value.what
    assert "16 images" in e.value.what


def test_val_one_less_than_all(tmp_path):
    split = make_split(NAMES, tmp_path, test=0.2, val=15)
    assert len(split["train"]) == 1 and len(split["val"]) == 15


def test_select(tmp_path):
    split = make_split(NAMES, tmp_path, test=0.2, val=0.25, seed=1)
    assert select(split, "all") == split["train"] + split["val"] + split["test"]
    assert sorted(select(split, "all")) == NAMES
    for which in ("train", "val", "test"):
        assert select(split, which) is split[which]
    with pytest.raises(SegfitError, match="unknown split 'bogus'"):
        select(split, "bogus")


def test_no_validation_images_is_refused_before_training(tmp_path):
    # The best checkpoint is chosen on validation loss: without validation images there is none.
    with pytest.raises(SegfitError) as e:
        make_split(NAMES, tmp_path, test=0.2, val=0)
    assert "leaves no validation images" in e.value.what and "--val" in e.value.fix
    for val in (0.2, 1, 0):  # one image: nothing left to validate on, whatever --val says (no --val to blame)
        with pytest.raises(SegfitError, match="1 labelled image to train on: training needs 2") as e:
            make_split(["a"], tmp_path, test=0.2, val=val)
        assert "tiles" in e.value.fix


def test_a_lone_test_csv_names_the_test_images(tmp_path):
    (tmp_path / "test.csv").write_text("name\n" + "\n".join(f"{n}.png" for n in NAMES[:5]) + "\n")
    split = make_split(NAMES, tmp_path, test=0.5, val=3)
    assert split["test"] == NAMES[:5] and split["source"] == "test.csv (the other images: training)"
    _check_partition(split, NAMES)
    assert len(split["val"]) == 3
    # a test.csv of images that are not in the data set (a download's unlabelled test images) is no split
    (tmp_path / "test.csv").write_text("name\nunlabelled_1.png\n")
    assert make_split(NAMES, tmp_path, test=0.2, val=0.2)["source"].startswith("random")
