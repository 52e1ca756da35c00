"""Unlabelled pixels (``--ignore-value``, Pascal VOC's 255 on object borders): detected and planned,
read as IGNORE_ID, and counted in no loss, metric, class fraction or object."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from segfit.data.formats import IGNORE_ID, to_class_ids
from segfit.errors import SegfitError
from segfit.fingerprint import fingerprint_data
from segfit.planner import make_plan

MACHINE = {"cores": 2, "cpu_bf16": False, "gpu": None}


@pytest.fixture(scope="module")
def voc_scenes(tmp_path_factory) -> Path:
    """The vineyard-like scenes (classes 0..2) as palette PNGs whose class borders are 255, as Pascal VOC's."""
    from skimage.segmentation import find_boundaries

    from segfit.data.synthetic import make_scenes

    out = make_scenes(tmp_path_factory.mktemp("voc"), n=12, size=48, seed=5)
    palette = [0, 0, 0, 128, 0, 0, 0, 128, 0] + [0] * (3 * 252) + [224, 224, 192]
    for path in out.glob("*_bin.png"):
        ids = np.asarray(Image.open(path)).copy()
        ids[find_boundaries(ids, mode="inner") & (ids > 0)] = 255
        mask = Image.fromarray(ids, "P")
        mask.putpalette(palette)
        mask.save(path)
    return out


def test_to_class_ids_marks_the_ignored_value_in_every_mode(tmp_path):
    mask = np.array([[0, 1, 255], [2, 255, 0]], np.uint8)
    assert to_class_ids(mask, "index", 3, ignore=255).tolist() == [[0, 1, IGNORE_ID], [2, IGNORE_ID, 0]]
    assert to_class_ids(mask, "binary", 2, ignore=255).tolist() == [[0, 1, IGNORE_ID], [1, IGNORE_ID, 0]]
    coded = np.array([[0, 128, 7], [7, 0, 128]], np.uint16)
    assert to_class_ids(coded, "index", 2, values=[0, 128], ignore=7).tolist() == [[0, 1, IGNORE_ID], [IGNORE_ID, 0, 1]]
    with pytest.raises(SegfitError) as err:  # without it, 255 is a value of no class, named with the file
        to_class_ids(mask, "index", 3, tmp_path / "m.png")
    assert "[255]" in str(err.value) and "m.png" in str(err.value) and "--ignore-value" in str(err.value)
    with pytest.raises(SegfitError, match=r"\[7\]"):  # another value still is an error
        to_class_ids(np.array([[0, 7, 255]], np.uint8), "index", 3, ignore=255)


def test_fingerprint_and_plan_find_the_unlabelled_pixels(voc_scenes):
    fp = fingerprint_data(voc_scenes)
    assert fp["void_value"] == 255 and fp["mask_kind"] == "index" and fp["num_classes"] == 3
    assert len(fp["class_fractions"]) == 3 and sum(fp["class_fractions"]) == pytest.approx(1, abs=1e-4)
    assert fp["class_colors"] == [[0, 0, 0], [128, 0, 0], [0, 128, 0]]
    plan = make_plan(fp, MACHINE, None, {}, calibrate_steps=0)
    assert plan.values()["ignore_value"] == 255 and plan.values()["classes"] == 3
    assert "unlabelled" in plan.entries["ignore_value"]["reason"]
    user = make_plan(fp, MACHINE, None, {"ignore_value": "none"}, calibrate_steps=0)
    assert user.entries["ignore_value"]["source"] == "user"
    # 0/128/255 masks are three classes, not two and a void
    codes = [np.array([[0, 128], [255, 255]], np.uint8), np.array([[0, 0], [128, 255]], np.uint8)]
    from segfit.data.formats import unlabelled_value

    assert unlabelled_value(codes)[0] is None
    assert unlabelled_value([np.array([[0, 255], [1, 255]], np.uint8)] * 2)[0] is None  # half the pixels: a class
    void, values = unlabelled_value(iter([np.array([[0, 1, 1, 2, 2, 0, 0, 0, 1, 255]], np.uint8)]))  # one at a time
    assert void == 255 and values.tolist() == [0, 1, 2, 255]
    assert unlabelled_value([np.array([[0, 1, 1, 2, 2, 0, 0, 0, 1, 255]], np.uint16)])[0] is None  # 16-bit: no convention


def test_ignore_value_options_are_checked(voc_scenes):
    from segfit.options import build_config

    cfg = build_config(voc_scenes, classes=3, mask_mode="index", ignore_value=255)
    assert cfg.data.ignore_value == 255
    assert build_config(voc_scenes, classes=3, mask_mode="index", ignore_value="none").data.ignore_value is None
    with pytest.raises(SegfitError, match="--ignore-value 2 is one of the class ids"):
        build_config(voc_scenes, classes=3, mask_mode="index", ignore_value=2)
    with pytest.raises(SegfitError, match="also one of --class-values"):
        build_config(voc_scenes, class_values="0,1,255", ignore_value=255)


def test_ignored_pixels_count_in_no_metric():
    from segfit.metrics import confusion_per_image

    truth = torch.tensor([[[0, 1, IGNORE_ID, IGNORE_ID]]])
    pred = torch.tensor([[[0, 1, 1, 0]]])
    cm = confusion_per_image(pred, truth, 2)
    assert cm.tolist() == [[[1, 0], [0, 1]]]


@pytest.mark.parametrize("loss,classes", [("bce", 2), ("bce+dice", 2), ("ce", 3), ("ce+dice", 3), ("focal", 3)])
def test_ignored_pixels_give_no_loss_and_no_gradient(loss, classes):
    from segfit.losses import create_loss

    torch.manual_seed(0)
    channels = 1 if classes == 2 else classes
    target = torch.randint(0, classes, (2, 8, 8))
    target[:, :3] = IGNORE_ID
    fn = create_loss(loss, classes, [1.0, 2.0] if classes == 2 else None, ignore=True)
    logits = torch.randn(2, channels, 8, 8, requires_grad=True)
    value = fn(logits, target)
    value.backward()
    assert torch.isfinite(value) and logits.grad[:, :, :3].abs().max() == 0 and logits.grad[:, :, 3:].abs().max() > 0
    changed = logits.detach().clone()
    changed[:, :, :3] = 50.0  # whatever the network says there
    assert fn(changed, target).item() == pytest.approx(value.item(), rel=1e-5)


def test_train_evaluate_and_report_on_voc_like_masks(voc_scenes, tmp_path):
    run = tmp_path / "run"
    proc = subprocess.run([sys.executable, "-m", "segfit", "train", str(voc_scenes), "--out", str(run), "--epochs", "1",
                           "--batch-size", "4"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    config = json.loads((run / "config.json").read_text())
    assert config["data"]["ignore_value"] == 255 and config["data"]["num_classes"] == 3
    assert json.loads((run / "plan.json").read_text())["entries"]["ignore_value"]["source"] == "plan"
    proc = subprocess.run([sys.executable, "-m", "segfit", "evaluate", str(run), "--split", "val"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    metrics = json.loads((run / "eval_val" / "metrics.json").read_text())
    assert list(metrics["per_class"]) == ["background", "class1", "class2"]
    confusion = np.loadtxt(run / "eval_val" / "confusion.csv", delimiter=",", skiprows=1, usecols=(1, 2, 3))
    masks = {p.stem[:-4]: np.asarray(Image.open(p)) for p in voc_scenes.glob("*_bin.png")}
    val = json.loads((run / "split.json").read_text())["val"]
    labelled = sum(int(np.count_nonzero(masks[n] != 255)) for n in val)
    assert confusion.sum() == labelled  # the borders count nowhere


def test_check_reads_the_unlabelled_pixels_as_train_would(voc_scenes):
    import segfit

    report = segfit.check(voc_scenes, verbose=False)
    masks = [np.asarray(Image.open(p)) for p in voc_scenes.glob("*_bin.png")]
    assert report.ok and report.ignore_value == 255 and len(report.class_pixels) == 3
    assert report.unlabelled == sum(int(np.count_nonzero(m == 255)) for m in masks) > 0
    assert any(line.startswith("Unlabelled pixels (value 255") for line in report.lines())



def test_padding_to_the_crop_adds_unlabelled_pixels_only_where_the_run_has_them():
    from segfit.data.transforms import create_transforms

    image, mask = np.zeros((6, 5, 3), np.uint8), np.ones((6, 5), np.uint8)
    padded = create_transforms("light", crop=8, pad_label=IGNORE_ID)(image=image, mask=mask)["mask"]
    assert np.count_nonzero(padded == IGNORE_ID) == 64 - 30 and np.count_nonzero(padded == 1) == 30
    padded = create_transforms("none", crop=8)(image=image, mask=mask)["mask"]
    assert np.count_nonzero(padded == 0) == 64 - 30
    with_distance = np.dstack([mask, np.full_like(mask, 200)])  # class ids and a distance channel
    padded = create_transforms("photo", crop=8, pad_label=IGNORE_ID)(image=image, mask=with_distance)["mask"]
    assert set(np.unique(padded[..., 0]).tolist()) == {1, IGNORE_ID}
    assert set(np.unique(padded[..., 1]).tolist()) == {0, 200}  # no distance where there is no object


def test_training_crops_larger_than_the_images_pad_with_unlabelled_pixels(voc_scenes):
    from segfit.data.datamodule import SegmentationDataModule
    from segfit.runs import build_config

    cfg = build_config(voc_scenes, crop=64, ignore_value=255, augment="none", preload=False)
    dm = SegmentationDataModule(cfg.data, cfg.train)
    _, y = dm.dataset("train")[0][:2]
    assert y.shape == (64, 64) and int((y == IGNORE_ID).sum()) >= 64 * 64 - 48 * 48


def test_quantify_leaves_the_unlabelled_pixels_out(voc_scenes, tmp_path):
    import shutil

    from segfit.quantification import quantify

    masks = tmp_path / "masks"
    masks.mkdir()
    for path in voc_scenes.glob("*_bin.png"):
        shutil.copy(path, masks)
    summary = quantify(masks, tmp_path / "q", verbose=False)
    assert summary["unlabelled_value"] == 255 and summary["class_names"] == ["background", "class1", "class2"]
    first = sorted(masks.iterdir())[0]
    ids = np.asarray(Image.open(first))
    import pandas as pd

    rows = pd.read_csv(tmp_path / "q" / "images.csv")
    row = rows[(rows["image"] == first.name) & (rows["class"] == "class1")].iloc[0]
    assert row["coverage"] == pytest.approx(np.count_nonzero(ids == 1) / np.count_nonzero(ids != 255))
