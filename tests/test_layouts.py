"""Layouts a new user brings: split folders (train/ val/ test/), other folder names and mask names."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from segfit.data.layouts import discover
from segfit.data.split import make_split
from segfit.errors import SegfitError


def _png(path: Path, value: int = 0, size: int = 8) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((size, size), value, np.uint8)).save(path)
    return path


def _pairs(folder: Path, names, images="images", masks="masks", mask_name="{}.png"):
    for n in names:
        _png(folder / images / f"{n}.png", 100)
        _png(folder / masks / mask_name.format(n), 1)


def test_split_folders_are_the_split(tmp_path):
    _pairs(tmp_path / "train", "abc")
    _pairs(tmp_path / "test", "xy")
    layout = discover(tmp_path)
    assert [s.name for s in layout.samples] == ["a", "b", "c", "x", "y"]
    assert layout.split == {"train": ["a", "b", "c"], "val": [], "test": ["x", "y"]}
    assert layout.samples[3].image == tmp_path / "test" / "images" / "x.png"
    assert "split folders" in layout.description and "train/ 3" in layout.description
    split = make_split([s.name for s in layout.samples], tmp_path, val=1, folders=layout.split)
    assert split["test"] == ["x", "y"] and sorted(split["train"] + split["val"]) == ["a", "b", "c"]
    assert len(split["val"]) == 1 and split["source"] == "split folders"


def test_val_folder_is_the_validation_set_and_unlabelled_test_is_left_out(tmp_path):
    _pairs(tmp_path / "Training", "abc", images="Images", masks="GT", mask_name="{}_mask.png")
    _pairs(tmp_path / "valid", "de")
    _png(tmp_path / "test" / "images" / "t.png")  # images to predict on, no masks
    layout = discover(tmp_path)
    assert layout.split == {"train": ["a", "b", "c"], "val": ["d", "e"], "test": []}
    assert all(s.mask.name == f"{s.name}_mask.png" for s in layout.samples[:3])
    assert "test/ has no masks: left out" in layout.description
    split = make_split([s.name for s in layout.samples], tmp_path, val=0.5, folders=layout.split)
    assert split["val"] == ["d", "e"] and split["train"] == ["a", "b", "c"] and split["test"] == []


def test_same_name_in_two_split_folders_gets_the_folder_prefix(tmp_path):
    _pairs(tmp_path / "train", "ab")
    _pairs(tmp_path / "test", "ab")
    layout = discover(tmp_path)
    assert layout.split["test"] == ["test_a", "test_b"]
    assert {s.name: s.image for s in layout.samples}["test_a"] == tmp_path / "test" / "images" / "a.png"


def test_split_folder_errors_name_the_file(tmp_path):
    _pairs(tmp_path / "train", "ab")
    _pairs(tmp_path / "test", "c")
    _png(tmp_path / "test" / "images" / "d.png")  # a labelled test folder with one mask missing
    with pytest.raises(SegfitError) as err:
        discover(tmp_path)
    assert err.value.file == str(tmp_path / "test" / "images" / "d.png") and "no mask" in str(err.value)


@pytest.mark.parametrize(("images", "masks", "mask_name"), [
    ("img", "gt", "{}.png"), ("Images", "Masks", "{}.png"), ("images", "annotations", "{}_label.png"),
    ("images", "labels", "mask_{}.png"), ("input", "target", "{}-mask.png")])
def test_folder_names_and_mask_names(tmp_path, images, masks, mask_name):
    _pairs(tmp_path, "ab", images, masks, mask_name)
    layout = discover(tmp_path)
    assert [(s.name, s.image.parent.name, s.mask.name) for s in layout.samples] == \
        [(n, images, mask_name.format(n)) for n in "ab"]
    assert layout.split is None


@pytest.mark.parametrize("mask_name", ["{}_mask.png", "{}_gt.tif", "{}_bin.png", "{}_labels.png"])
def test_flat_folder_with_common_mask_suffixes(tmp_path, mask_name):
    for n in ("p1", "p2"):
        _png(tmp_path / f"{n}.jpg", 100)
        path = tmp_path / mask_name.format(n)
        if path.suffix == ".tif":
            import tifffile

            tifffile.imwrite(path, np.ones((8, 8), np.uint8))
        else:
            _png(path, 1)
    layout = discover(tmp_path)
    assert [(s.name, s.mask.name) for s in layout.samples] == [(n, mask_name.format(n)) for n in ("p1", "p2")]
    suffix = mask_name[2:].split(".")[0]
    assert f"NAME{suffix}" in layout.description


@pytest.mark.parametrize(("image_name", "mask_name", "naming"), [
    ("{}_img.png", "{}_masks.png", "NAME_img.ext + NAME_masks.png"),  # Cellpose's data sets
    ("img_{}.png", "mask_{}.png", "img_NAME.ext + mask_NAME.png"),
    ("{}-image.tif", "{}-label.png", "NAME-image.ext + NAME-label.png")])
def test_images_with_a_name_part_of_their_own_pair_with_their_masks(tmp_path, image_name, mask_name, naming):
    for n in ("001", "002"):
        _png(tmp_path / "flat" / image_name.format(n), 100)
        _png(tmp_path / "flat" / mask_name.format(n), 1)
        _png(tmp_path / "folders" / "images" / image_name.format(n), 100)
        _png(tmp_path / "folders" / "masks" / mask_name.format(n), 1)
    for root in ("flat", "folders"):
        layout = discover(tmp_path / root)
        assert [(s.image.name, s.mask.name) for s in layout.samples] == \
            [(image_name.format(n), mask_name.format(n)) for n in ("001", "002")]
    assert naming in discover(tmp_path / "flat").description


def test_pascal_voc_folders(tmp_path):
    _pairs(tmp_path, ["2007_000032"], "JPEGImages", "SegmentationClass")
    layout = discover(tmp_path)
    assert layout.samples[0].mask.parent.name == "SegmentationClass"
    assert "JPEGImages/ with masks in SegmentationClass/" in layout.description


def test_train_on_split_folders_scores_the_test_folder(tmp_path):
    """`segfit train` on train/ + test/: the test folder's images are the run's test split."""
    import segfit
    from segfit.data.synthetic import make_particles

    for which, n, seed in (("train", 8, 1), ("test", 3, 2)):
        make_particles(tmp_path / "data" / which, n=n, size=32, seed=seed)
    run = tmp_path / "run"
    segfit.train(tmp_path / "data", run, model="notebook", channels=1, epochs=1, batch_size=4, val=2, verbose=False)
    split = json.loads((run / "split.json").read_text())
    test_names = sorted(p.stem for p in (tmp_path / "data" / "test" / "images").iterdir())
    assert sorted(split["test"]) == [f"test_{n}" for n in test_names]  # the synthetic names repeat across folders
    assert len(split["train"]) == 6 and len(split["val"]) == 2
    metrics = segfit.evaluate(run, split="test", overlays=False, verbose=False, report=False)
    assert metrics["images"] == 3
    # predict on the whole data set folder: names that repeat across folders keep apart as training named them
    masks = segfit.predict(run, tmp_path / "data", tmp_path / "pred", verbose=False)
    assert len(masks) == 11 and {f"test_{n}.png" for n in test_names} <= {m.name for m in masks}


def test_jpeg_and_gif_masks(tmp_path):
    """JPEG masks (lossy: in-between values at the edges) read as 0/255; GIF masks as their indices."""
    from segfit.data.formats import read_mask

    truth = np.zeros((32, 32), np.uint8)
    truth[8:24, 6:20] = 255
    _png(tmp_path / "images" / "a.png", 100, 32)
    (tmp_path / "masks").mkdir()
    Image.fromarray(truth).save(tmp_path / "masks" / "a.jpg", quality=60)
    assert len(np.unique(np.asarray(Image.open(tmp_path / "masks" / "a.jpg")))) > 2  # the file itself is not clean
    layout = discover(tmp_path)
    assert layout.samples[0].mask.name == "a.jpg" and "JPEG masks are lossy" in layout.description
    assert np.array_equal(read_mask(layout.samples[0].mask), truth)
    Image.fromarray((truth > 0).astype(np.uint8)).save(tmp_path / "b.gif")
    assert np.array_equal(read_mask(tmp_path / "b.gif"), truth > 0)


def test_two_masks_for_one_image_is_an_error(tmp_path):
    _pairs(tmp_path, "a")
    _png(tmp_path / "masks" / "a_mask.png", 1)
    with pytest.raises(SegfitError) as err:
        discover(tmp_path)
    assert "two masks for image 'a'" in str(err.value)


def _square(path: Path, y: int, x: int, size: int = 16) -> Path:
    mask = np.zeros((size, size), np.uint8)
    mask[y: y + 4, x: x + 4] = 255
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(mask).save(path)
    return path


@pytest.mark.parametrize("where", ["flat", "folders"])
def test_numbered_masks_of_one_image_are_read_into_its_mask(tmp_path, where):
    """BUSI: ``benign (1)_mask.png`` and ``benign (1)_mask_1.png`` are two lesions of ``benign (1).png``."""
    from segfit.data.check import check
    from segfit.data.formats import list_images, read_mask
    from segfit.record import data_fingerprint

    image_dir, mask_dir = (tmp_path, tmp_path) if where == "flat" else (tmp_path / "images", tmp_path / "masks")
    for i in (1, 2, 3):
        _png(image_dir / f"benign ({i}).png", 90, 16)
        _square(mask_dir / f"benign ({i})_mask.png", 2, 2)
    second = _square(mask_dir / "benign (1)_mask_1.png", 10, 10)
    third = _square(mask_dir / "benign (1)_mask_2.png", 2, 10)
    layout = discover(tmp_path)
    assert [s.name for s in layout.samples] == ["benign (1)", "benign (2)", "benign (3)"]  # no image of a mask
    assert "1 with numbered masks" in layout.description
    merged = read_mask(layout.samples[0].mask)
    assert int((merged == 255).sum()) == 48 and merged[11, 11] == 255 and merged[3, 11] == 255
    assert int((read_mask(layout.samples[1].mask) == 255).sum()) == 16
    report = check(tmp_path, verbose=False)
    assert report.ok and not report.masks_without_image  # nor a mask without an image
    if where == "flat":
        assert [p.name for p in list_images([tmp_path])] == ["benign (1).png", "benign (2).png", "benign (3).png"]
    before = data_fingerprint(layout.samples)["sha256"]
    _square(third, 6, 6)  # a changed numbered mask is a changed data set (the cache reads it again)
    import os

    st = third.stat()
    os.utime(third, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    assert data_fingerprint(layout.samples)["sha256"] != before
    Image.fromarray(np.zeros((9, 9), np.uint8)).save(second)
    with pytest.raises(SegfitError, match="mask is 9x9") as err:
        read_mask(layout.samples[0].mask)
    assert "benign (1)_mask_1.png" in str(err.value)


def _nuclei_folders(root: Path, n: int = 6, size: int = 40, seed: int = 0) -> list[np.ndarray]:
    """Kaggle DSB 2018's layout: ID/images/ID.png and one binary mask per nucleus in ID/masks/. The
    second and third discs of each image overlap. Returns each image's true instance map."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    truths = []
    for i in range(n):
        folder = root / f"{i:02x}9f3e"
        truth = np.zeros((size, size), np.uint16)
        image = np.full((size, size, 4), 255, np.uint8)
        image[..., :3] = 20
        centres = [(rng.integers(6, 12), rng.integers(6, 34)), (24, 14), (24, 22)]
        for k, (y, x) in enumerate(centres, 1):
            disc = (yy - y) ** 2 + (xx - x) ** 2 < 25
            truth[disc & (truth == 0)] = k
            image[disc, :3] = 200
            (folder / "masks").mkdir(parents=True, exist_ok=True)
            Image.fromarray((disc * 255).astype(np.uint8)).save(folder / "masks" / f"m{k:03d}.png")
        (folder / "images").mkdir()
        Image.fromarray(image).save(folder / "images" / f"{folder.name}.png")  # RGBA, as DSB's
        truths.append(truth)
    return truths


def test_one_folder_per_image_with_one_mask_per_object(tmp_path):
    from segfit.data.formats import read_mask
    from segfit.fingerprint import fingerprint_data

    truths = _nuclei_folders(tmp_path / "stage1_train")
    layout = discover(tmp_path / "stage1_train")
    assert [s.name for s in layout.samples] == sorted(p.name for p in (tmp_path / "stage1_train").iterdir())
    assert layout.samples[0].mask == tmp_path / "stage1_train" / layout.samples[0].name / "masks"
    assert "one folder each" in layout.description and "one mask per object" in layout.description
    first = read_mask(layout.samples[0].mask)
    assert first.dtype == np.uint16 and np.array_equal(first, truths[0])  # objects in name order, overlaps to the first
    fp = fingerprint_data(tmp_path / "stage1_train")
    assert fp["mask_kind"] == "instance" and fp["num_classes"] == 2
    # one mask file is the image's mask itself; a folder without masks is an image to predict on
    (tmp_path / "one" / "a" / "images").mkdir(parents=True)
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "one" / "a" / "images" / "a.png")
    assert discover(tmp_path / "one", require_masks=False).samples[0].mask is None
    with pytest.raises(SegfitError, match="image has no mask") as err:
        discover(tmp_path / "one")
    assert "a/masks/" in str(err.value)
    mask = _png(tmp_path / "one" / "a" / "masks" / "a.png", 3)
    assert discover(tmp_path / "one").samples[0].mask == mask
    # an object mask of another size names its file
    Image.fromarray(np.zeros((9, 9), np.uint8)).save(layout.samples[1].mask / "m009.png")
    with pytest.raises(SegfitError, match="object mask is 9x9") as err:
        read_mask(layout.samples[1].mask)
    assert "m009.png" in str(err.value)


def test_a_changed_object_mask_changes_the_data_stamp(tmp_path):
    import os

    from segfit.record import data_fingerprint

    _nuclei_folders(tmp_path, n=2)
    samples = discover(tmp_path).samples
    before = data_fingerprint(samples)["sha256"]
    target = samples[0].mask / "m002.png"
    st = target.stat()
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    assert data_fingerprint(samples)["sha256"] != before


def test_train_and_predict_on_one_folder_per_image(tmp_path):
    """`segfit train` on DSB-like folders learns the objects; `segfit predict RUN stage1_test/` finds the
    images in their own folders."""
    import segfit

    _nuclei_folders(tmp_path / "stage1_train", n=6)
    for folder in list((tmp_path / "stage1_train").iterdir())[:2]:  # images without masks, as stage1_test
        (tmp_path / "stage1_test" / folder.name / "images").mkdir(parents=True)
        image = next((folder / "images").iterdir())
        (tmp_path / "stage1_test" / folder.name / "images" / image.name).write_bytes(image.read_bytes())
    run = tmp_path / "run"
    segfit.train(tmp_path / "stage1_train", run, epochs=1, batch_size=4, val=2, verbose=False)
    config = json.loads((run / "config.json").read_text())
    assert config["data"]["mask_mode"] == "binary" and config["model"]["instances"]
    masks = segfit.predict(run, tmp_path / "stage1_test", tmp_path / "pred", verbose=False)
    assert sorted(p.stem for p in masks) == sorted(p.name for p in (tmp_path / "stage1_test").iterdir())
    assert all((tmp_path / "pred" / f"{p.stem}_instances.png").is_file() for p in masks)


def test_quantify_measures_the_objects_of_one_folder_per_image(tmp_path):
    import pandas as pd

    from segfit.quantification import quantify

    truths = _nuclei_folders(tmp_path / "data", n=3)
    summary = quantify(tmp_path / "data", tmp_path / "q", verbose=False)
    assert summary["instance_maps"] and summary["classes"]["foreground"]["objects"] == 9
    rows = pd.read_csv(tmp_path / "q" / "objects.csv")
    assert sorted(set(rows["image"])) == sorted(p.name for p in (tmp_path / "data").iterdir())
    first = sorted((tmp_path / "data").iterdir())[0].name
    areas = sorted(rows.loc[rows["image"] == first, "area"])
    assert areas == sorted(int(np.count_nonzero(truths[0] == k)) for k in (1, 2, 3))


def test_data_sets_in_subfolders_are_gathered_else_pointed_to(tmp_path):
    """BUSI's benign/ malignant/ normal/, LGG's patient folders, batches: each a data set of its own, gathered
    into one; images alone in subfolders are pointed to."""
    for batch in ("batch1", "batch2"):
        _pairs(tmp_path / "data" / batch, "ab", images=".", masks=".", mask_name="{}_mask.png")
    layout = discover(tmp_path / "data")
    assert [s.name for s in layout.samples] == ["a", "b", "batch2_a", "batch2_b"]  # a name met before: the folder's prefix
    assert layout.samples[2].mask == tmp_path / "data" / "batch2" / "a_mask.png"
    assert "gathered from 2 folders (batch1/, batch2/), each a flat folder of NAME.ext + NAME_mask.png" in layout.description
    _png(tmp_path / "data" / "batch3" / "c.png")  # a folder among them that is not a data set names its problem
    with pytest.raises(SegfitError, match="image has no mask") as e:
        discover(tmp_path / "data")
    assert e.value.file.endswith("c.png")
    for patient in ("TCGA_1", "TCGA_2"):  # LGG's download: kaggle_3m/ of patient folders, in a wrapper
        _pairs(tmp_path / "lgg" / "kaggle_3m" / patient, [f"{patient}_1", f"{patient}_2"], ".", ".", "{}_mask.png")
    with pytest.raises(SegfitError, match="one folder down") as e:
        discover(tmp_path / "lgg")
    assert e.value.file.endswith("kaggle_3m")
    assert len(discover(tmp_path / "lgg" / "kaggle_3m").samples) == 4
    for batch in ("batch1", "batch2"):
        _png(tmp_path / "images_only" / batch / "a.png")
    with pytest.raises(SegfitError, match="its subfolders batch1, batch2 hold some") as e:
        discover(tmp_path / "images_only")
    assert "--images batch1" in e.value.fix


def test_image_groups_mirrored_in_the_mask_folder_are_gathered(tmp_path):
    """images/CITY/ beside masks/CITY/ (a folder per city, patient or slide): gathered, each image with the
    mask of its own group (a name met twice gets its folder's prefix); a group without masks is named."""
    for city in ("aachen", "bonn"):
        for n in ("x", f"{city}_1"):
            _png(tmp_path / "d" / "images" / city / f"{n}.png", 100)
            _png(tmp_path / "d" / "masks" / city / f"{n}.png", 1 if city == "aachen" else 0)
    layout = discover(tmp_path / "d")
    assert [s.name for s in layout.samples] == ["aachen_1", "x", "bonn_1", "bonn_x"]
    assert [s.mask.parent.name for s in layout.samples] == ["aachen", "aachen", "bonn", "bonn"]
    assert all(s.image.stem == s.mask.stem for s in layout.samples)
    assert "gathered from 2 folders (aachen/, bonn/)" in layout.description
    _png(tmp_path / "d" / "images" / "koeln" / "k.png")
    with pytest.raises(SegfitError, match="no mask folder masks/koeln/") as e:
        discover(tmp_path / "d")
    assert e.value.file.endswith("koeln")


# ---------------------------------------------------------------------------------------------
# Public data sets as their downloads are laid out (in miniature)


def test_masks_in_a_sibling_folder_named_after_the_images(tmp_path):
    """Carvana's train/ + train_masks/ (NAME_mask.gif), CamVid's train/ + train_labels/ (NAME_L.png) and val/ +
    val_labels/: each split folder's masks are beside it; a test/ without masks is left out."""
    for n in "abc":
        _png(tmp_path / "carvana" / "train" / f"{n}.png", 100)
        _png(tmp_path / "carvana" / "train_masks" / f"{n}_mask.png", 1)
        _png(tmp_path / "camvid" / "train" / f"{n}.png", 100)
        _png(tmp_path / "camvid" / "train_labels" / f"{n}_L.png", 1)
    _png(tmp_path / "carvana" / "test" / "t.png", 100)
    _pairs(tmp_path / "camvid", "xy", images="val", masks="val_labels", mask_name="{}_L.png")
    carvana = discover(tmp_path / "carvana")
    assert [(s.name, s.mask.name) for s in carvana.samples] == [("a", "a_mask.png"), ("b", "b_mask.png"), ("c", "c_mask.png")]
    assert "train_masks/" in carvana.description and "test/ has no masks" in carvana.description
    camvid = discover(tmp_path / "camvid")
    assert camvid.split["train"] == ["a", "b", "c"] and camvid.split["val"] == ["x", "y"]
    assert all(s.mask.name == f"{s.name}_L.png" for s in camvid.samples)
    _pairs(tmp_path / "photos", "pq", images="shots", masks="shots_masks")  # any folder name, masks beside it
    assert [s.name for s in discover(tmp_path / "photos").samples] == ["p", "q"]


def test_the_mask_folder_is_the_one_holding_masks(tmp_path):
    """Pascal VOC: Annotations/ holds XML (detection), SegmentationClass/ the masks; most JPEGImages/ have no mask
    (detection only): the labelled ones are the data set, and the others are said to be left out."""
    voc = tmp_path / "VOC2012"
    for i in range(7):
        _png(voc / "JPEGImages" / f"im{i}.png", 100)
        (voc / "Annotations").mkdir(parents=True, exist_ok=True)
        (voc / "Annotations" / f"im{i}.xml").write_text("<annotation/>")
    for i in range(3):
        _png(voc / "SegmentationClass" / f"im{i}.png", 1)
    layout = discover(voc)
    assert [s.name for s in layout.samples] == ["im0", "im1", "im2"]
    assert "SegmentationClass/" in layout.description and "4 images without a mask left out" in layout.description
    _png(voc / "SegmentationClass" / "im3.png", 1)
    _png(voc / "SegmentationClass" / "im4.png", 1)  # most have masks now: the two without are the user's to fix
    with pytest.raises(SegfitError, match="image has no mask"):
        discover(voc)


def test_drive_and_ade20k_layouts(tmp_path):
    """DRIVE: training/images/21_training.tif with its vessels in 1st_manual/21_manual1.gif, beside mask/ (the
    field of view, not the truth). ADE20K: images/training/ + annotations/training/ (and validation/)."""
    drive = tmp_path / "DRIVE"
    for which, n in (("training", 21), ("training", 22), ("test", 1)):
        _png(drive / which / "images" / f"{n:02d}_{which}.png", 100)
        _png(drive / which / "1st_manual" / f"{n:02d}_manual1.png", 1)
        _png(drive / which / "mask" / f"{n:02d}_{which}_mask.png", 1)
    layout = discover(drive)
    assert {s.name: s.mask.parent.name for s in layout.samples} == {"21_training": "1st_manual", "22_training": "1st_manual",
                                                                   "01_test": "1st_manual"}
    assert layout.split["test"] == ["01_test"]
    ade = tmp_path / "ADE"
    _pairs(ade, "ab", images="images/training", masks="annotations/training")
    _pairs(ade, "c", images="images/validation", masks="annotations/validation")
    layout = discover(ade)
    assert layout.split["train"] == ["a", "b"] and layout.split["val"] == ["c"]


def test_a_download_wrapper_folder_is_pointed_through(tmp_path):
    _pairs(tmp_path / "kvasir" / "Kvasir-SEG", "abc")
    with pytest.raises(SegfitError, match="one folder down") as err:
        discover(tmp_path / "kvasir")
    assert "Kvasir-SEG" in str(err.value)
    assert len(discover(tmp_path / "kvasir" / "Kvasir-SEG").samples) == 3


def test_json_annotations_are_named_as_unread(tmp_path):
    """COCO's images/ + annotations/instances.json (polygons): no mask image, and the error says why and what to do."""
    for n in "ab":
        _png(tmp_path / "coco" / "images" / f"{n}.png", 100)
    (tmp_path / "coco" / "annotations").mkdir()
    (tmp_path / "coco" / "annotations" / "instances_default.json").write_text('{"images": [], "annotations": []}')
    with pytest.raises(SegfitError, match=r"annotations/instances_default.json holds annotations segfit does not read"):
        discover(tmp_path / "coco")
    (tmp_path / "flat").mkdir()
    _png(tmp_path / "flat" / "a.png", 100)
    (tmp_path / "flat" / "_annotations.coco.json").write_text("{}")  # Roboflow's export: beside the images
    with pytest.raises(SegfitError, match=r"_annotations.coco.json holds annotations"):
        discover(tmp_path / "flat")


def test_masks_one_folder_down_and_images_deeper_are_found_or_named(tmp_path):
    """Oxford pets: images/ + annotations/trimaps/ (beside annotations/xmls/): the masks are found. Cityscapes:
    leftImg8bit/train/CITY/ holds the images: the error names that folder."""
    pets = tmp_path / "pets"
    _pairs(pets, "ab", masks="annotations/trimaps")
    (pets / "annotations" / "xmls").mkdir()
    (pets / "annotations" / "xmls" / "a.xml").write_text("<annotation/>")
    layout = discover(pets)
    assert [s.mask.parent.name for s in layout.samples] == ["trimaps", "trimaps"]
    city = tmp_path / "cityscapes"
    _png(city / "gtFine" / "train" / "aachen" / "a_gtFine_color.png", 1)
    _png(city / "leftImg8bit" / "train" / "aachen" / "a_leftImg8bit.png", 100)
    with pytest.raises(SegfitError, match=r"leftImg8bit/train/aachen/ holds some"):
        discover(city)


def test_folders_named_for_images_and_masks_pair(tmp_path):
    """ISIC's ..._Input/ + ..._GroundTruth/ (NAME_segmentation.png), CVC's Original/ + 'Ground Truth/', and
    train_images/ + train_masks/ beside test_images/: the folder whose name says masks holds the other's masks."""
    _pairs(tmp_path / "isic", "ab", images="Task1_Training_Input", masks="Task1_Training_GroundTruth",
           mask_name="{}_segmentation.png")
    _pairs(tmp_path / "cvc", "ab", images="Original", masks="Ground Truth")
    _pairs(tmp_path / "sev", "ab", images="train_images", masks="train_masks")
    _png(tmp_path / "sev" / "test_images" / "t.png", 100)
    for name, images in (("isic", "Task1_Training_Input"), ("cvc", "Original"), ("sev", "train_images")):
        layout = discover(tmp_path / name)
        assert [s.name for s in layout.samples] == ["a", "b"] and all(s.image.parent.name == images for s in layout.samples)


def test_images_named_alone_pair_with_masks_beside_them(tmp_path):
    """LGG's patient folders: --images PATIENT reads PATIENT/NAME.tif with PATIENT/NAME_mask.tif."""
    for n in "ab":
        _png(tmp_path / "kaggle_3m" / "P1" / f"{n}.png", 100)
        _png(tmp_path / "kaggle_3m" / "P1" / f"{n}_mask.png", 1)
    layout = discover(tmp_path / "kaggle_3m", images="P1")
    assert [(s.name, s.mask.name) for s in layout.samples] == [("a", "a_mask.png"), ("b", "b_mask.png")]


def test_yolo_labels_are_named_as_unread(tmp_path):
    _png(tmp_path / "images" / "a.png", 100)
    (tmp_path / "labels").mkdir()
    (tmp_path / "labels" / "a.txt").write_text("0 0.1 0.1 0.5 0.5 0.2 0.8\n")
    with pytest.raises(SegfitError, match=r"labels/a.txt holds annotations segfit does not read"):
        discover(tmp_path)
