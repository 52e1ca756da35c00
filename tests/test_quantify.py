"""`segfit quantify`: objects labelled, split and measured on masks drawn with known shapes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from skimage.draw import disk, ellipse

from segfit.errors import SegfitError
from segfit.objects import OBJECT_COLUMNS, label_objects, measure_objects
from segfit.quantification import quantify

from _segfit_cli import run_many

UNIT_COLUMNS = ["area_nm2", "equivalent_diameter_nm", "perimeter_nm", "major_axis_nm", "minor_axis_nm",
                "centroid_x_nm", "centroid_y_nm"]


def _disc(mask: np.ndarray, cy: float, cx: float, r: float, value=1) -> np.ndarray:
    mask[disk((cy, cx), r, shape=mask.shape)] = value
    return mask


def _save(path: Path, mask: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".npy":
        np.save(path, mask)
    else:
        Image.fromarray(mask).save(path)
    return path


def _two_class_masks(folder: Path) -> Path:
    """a.png: 3 discs (class 1) and 2 rectangles (class 2); b.png: one disc; empty.png: background only."""
    a = np.zeros((100, 120), np.uint8)
    for cy, cx, r in ((20, 20, 6), (20, 60, 9), (70, 25, 12)):
        _disc(a, cy, cx, r)
    a[60:70, 60:100] = 2
    a[10:22, 90:102] = 2
    b = _disc(np.zeros((100, 120), np.uint8), 50, 50, 10)
    for name, mask in (("a.png", a), ("b.png", b), ("empty.png", np.zeros((100, 120), np.uint8))):
        _save(folder / name, mask)
    return folder


# ---------------------------------------------------------------------------------------------
# Labelling and measuring


def test_known_shapes_are_measured_exactly():
    mask = np.zeros((160, 200), bool)
    discs = [(30, 150, 6), (40, 60, 12), (110, 50, 20)]
    for cy, cx, r in discs:
        _disc(mask, cy, cx, r)
    mask[120:130, 110:150] = True  # 10 x 40 rectangle
    mask[20:45, 95:120] = True     # 25 x 25 square
    labels = label_objects(mask)
    assert labels.dtype == np.int32 and labels.max() == 5
    table = measure_objects(labels)
    assert list(table.columns) == OBJECT_COLUMNS[2:]
    assert table["area"].sum() == mask.sum()
    for obj in table.itertuples():
        drawn = labels == obj.object_id
        assert obj.area == drawn.sum()
        assert obj.equivalent_diameter == pytest.approx(np.sqrt(4 * obj.area / np.pi), abs=1e-6)
        rows, cols = np.nonzero(drawn)
        assert obj.centroid_x == pytest.approx(cols.mean(), abs=1e-9)  # x is the column
        assert obj.centroid_y == pytest.approx(rows.mean(), abs=1e-9)
        assert obj.major_axis >= obj.minor_axis > 0
    for cy, cx, r in discs:
        row = table.loc[(table.centroid_y - cy).abs().lt(0.5) & (table.centroid_x - cx).abs().lt(0.5)]
        assert len(row) == 1, (cy, cx, table)
        assert row.equivalent_diameter.iloc[0] == pytest.approx(2 * r, abs=1.0)
        assert row.eccentricity.iloc[0] < 0.3
    rect = table.loc[table.area == 400].iloc[0]
    assert (rect.centroid_x, rect.centroid_y) == pytest.approx((129.5, 124.5))
    assert rect.solidity == pytest.approx(1.0, abs=1e-6)
    assert rect.major_axis / rect.minor_axis == pytest.approx(4.0, rel=0.05)
    assert measure_objects(np.zeros((8, 8), np.int32)).empty


def test_touching_discs_are_split_only_when_asked():
    two = _disc(_disc(np.zeros((60, 80), bool), 30, 25, 10), 30, 42, 10)  # centres 17 px apart: overlap 3 px
    three = _disc(_disc(_disc(np.zeros((60, 100), bool), 30, 20, 10), 30, 37, 10), 30, 54, 10)
    for mask, n in ((two, 2), (three, 3)):
        assert label_objects(mask).max() == 1
        split = label_objects(mask, split_touching=True)
        assert split.max() == n
        assert np.array_equal(split > 0, mask)  # no pixel lost
        areas = measure_objects(split)["area"]
        assert areas.min() > 0.8 * areas.max()
    apart = _disc(_disc(np.zeros((60, 80), bool), 30, 15, 8), 30, 60, 8)
    assert np.array_equal(label_objects(apart, split_touching=True), label_objects(apart))


@pytest.mark.parametrize("shape", ["disc", "ellipse", "tilted_ellipse", "thin_ellipse", "square", "rectangle"])
def test_single_objects_are_not_over_split(shape):
    mask = np.zeros((120, 120), bool)
    if shape == "disc":
        _disc(mask, 60, 60, 25)
    elif shape == "square":
        mask[30:70, 40:80] = True
    elif shape == "rectangle":
        mask[50:62, 10:100] = True
    else:
        ry, rx, angle = {"ellipse": (15, 35, 0.0), "tilted_ellipse": (12, 30, 0.5), "thin_ellipse": (6, 30, 1.0)}[shape]
        mask[ellipse(60, 60, ry, rx, shape=mask.shape, rotation=angle)] = True
    labels = label_objects(mask, split_touching=True)
    assert labels.max() == 1 and np.array_equal(labels > 0, mask)


def test_min_area_drops_small_objects_and_renumbers():
    mask = np.zeros((40, 40), bool)
    mask[2, 2] = True           # 1 px
    mask[10:13, 10:13] = True   # 9 px
    mask[20:30, 20:30] = True   # 100 px
    assert label_objects(mask).max() == 3
    kept = label_objects(mask, min_area=10)
    assert kept.max() == 1 and (kept == 1).sum() == 100
    assert sorted(measure_objects(label_objects(mask, min_area=9))["area"]) == [9, 100]


# ---------------------------------------------------------------------------------------------
# quantify(): tables, units, classes


def test_quantify_writes_tables_per_image_and_class(tmp_path):
    masks = _two_class_masks(tmp_path / "masks")
    out = tmp_path / "q"
    summary = quantify([masks], out, pixel_size=2.5, unit="nm", verbose=False)
    for name in ("objects.csv", "images.csv", "size_distribution.png", "quantify.json"):
        assert (out / name).stat().st_size > 0, name
    assert json.loads((out / "quantify.json").read_text()) == summary
    objects = pd.read_csv(out / "objects.csv")
    assert list(objects.columns) == OBJECT_COLUMNS + UNIT_COLUMNS
    assert objects.groupby(["image", "class"]).size().to_dict() == {("a.png", "class1"): 3, ("a.png", "class2"): 2,
                                                                    ("b.png", "class1"): 1}
    assert np.allclose(objects["area_nm2"], objects["area"] * 6.25)
    for col in ("equivalent_diameter", "perimeter", "major_axis", "minor_axis", "centroid_x", "centroid_y"):
        assert np.allclose(objects[f"{col}_nm"], objects[col] * 2.5)
    assert sorted(objects.loc[objects["class"] == "class2", "area"]) == [144, 400]

    images = pd.read_csv(out / "images.csv")
    assert list(images.columns)[:7] == ["image", "class", "count", "coverage", "mean_diameter", "median_diameter", "std_diameter"]
    assert {"mean_diameter_nm", "median_diameter_nm", "std_diameter_nm"} <= set(images.columns)
    assert len(images) == 6  # 3 images x 2 classes, empty ones included
    empty = images[images.image == "empty.png"]
    assert empty["count"].tolist() == [0, 0] and empty["coverage"].tolist() == [0.0, 0.0]
    assert empty["mean_diameter"].isna().all()
    a2 = images[(images.image == "a.png") & (images["class"] == "class2")].iloc[0]
    assert a2["coverage"] == pytest.approx(544 / (100 * 120))
    b1 = images[(images.image == "b.png") & (images["class"] == "class1")].iloc[0]
    assert b1["mean_diameter_nm"] == pytest.approx(2.5 * b1["mean_diameter"]) and b1["mean_diameter"] == pytest.approx(20, abs=1)

    assert summary["images"] == 3 and summary["unit"] == "nm" and summary["pixel_size"] == 2.5
    assert summary["classes"]["class1"]["objects"] == 4 and summary["classes"]["class2"]["objects"] == 2
    c1 = objects.loc[objects["class"] == "class1", "equivalent_diameter"]
    assert summary["classes"]["class1"]["mean_diameter_px"] == pytest.approx(c1.mean())
    assert summary["classes"]["class1"]["mean_diameter"] == pytest.approx(2.5 * c1.mean())
    assert summary["run_dir"] is None and summary["files"] == ["objects.csv", "images.csv", "size_distribution.png"]


def test_class_selection_by_name_and_id(tmp_path):
    masks = _two_class_masks(tmp_path / "masks")
    by_name = quantify([masks], tmp_path / "n", classes=["rods"], class_names=["background", "dots", "rods"], verbose=False)
    assert list(by_name["classes"]) == ["rods"]
    assert set(pd.read_csv(tmp_path / "n" / "objects.csv")["class"]) == {"rods"}
    by_id = quantify([masks], tmp_path / "i", classes=["1"], verbose=False)
    assert list(by_id["classes"]) == ["class1"] and by_id["classes"]["class1"]["objects"] == 4
    assert set(pd.read_csv(tmp_path / "i" / "images.csv")["class"]) == {"class1"}
    with pytest.raises(SegfitError, match="unknown class 'leaves'.*class1, class2"):
        quantify([masks], tmp_path / "u", classes=["leaves"], verbose=False)


def test_split_touching_min_area_and_printed_summary(tmp_path, capsys):
    mask = _disc(_disc(np.zeros((60, 80), np.uint8), 30, 25, 10), 30, 42, 10)
    mask[2:4, 70:72] = 1  # a 4-pixel speck
    folder = tmp_path / "m"
    _save(folder / "pair.png", mask)
    assert quantify([folder], tmp_path / "plain", verbose=False)["classes"]["foreground"]["objects"] == 2
    summary = quantify([folder / "pair.png"], tmp_path / "split", split_touching=True, min_area=10)
    assert summary["classes"]["foreground"]["objects"] == 2 and summary["split_touching"] and summary["min_area"] == 10
    out = capsys.readouterr().out
    assert "foreground: 2 objects in 1 images, mean equivalent diameter" in out and " px (median " in out
    assert f"Wrote {tmp_path / 'split'}/: objects.csv, images.csv, size_distribution.png, quantify.json" in out


def test_folder_of_predictions_skips_overlays_and_reads_class_names(tmp_path):
    folder = tmp_path / "pred"
    _save(folder / "x.png", _disc(np.zeros((40, 40), np.uint8), 20, 20, 8))
    _save(folder / "x_overlay.png", np.random.default_rng(0).integers(0, 255, (40, 40, 3), dtype=np.uint8))
    _save(folder / "x_uncertainty.png", np.tile(np.arange(0, 240, 6, dtype=np.uint8), (40, 1)))  # 40 grey levels
    (folder / "coverage.csv").write_text("image,class,fraction\n")
    (folder / "predictions.json").write_text(json.dumps({"class_names": ["background", "particles"],
                                                         "run_dir": "/runs/em", "checkpoint": "/runs/em/checkpoints/best.ckpt"}))
    summary = quantify([folder], tmp_path / "q", verbose=False)
    assert summary["images"] == 1 and list(summary["classes"]) == ["particles"]
    assert summary["classes"]["particles"]["objects"] == 1 and summary["run_dir"] == "/runs/em"
    speck = np.asarray(Image.open(folder / "x.png")).copy()
    speck[2:4, 2:4] = 1  # a 4 px speck: an object of these masks, a fragment for a model whose plan says 48 px
    _save(folder / "x.png", speck)
    assert quantify([folder], tmp_path / "q2", verbose=False)["classes"]["particles"]["objects"] == 2
    record = json.loads((folder / "predictions.json").read_text())
    (folder / "predictions.json").write_text(json.dumps({**record, "min_object_area": 48}))
    summary = quantify([folder], tmp_path / "q3", verbose=False)  # as quantify --checkpoint of that model counts
    assert summary["classes"]["particles"]["objects"] == 1 and summary["min_area"] == 48
    assert quantify([folder], tmp_path / "q4", min_area=0, verbose=False)["classes"]["particles"]["objects"] == 2
    # A model's own objects (NAME_instances.png) lost their fragments when predicted, at their image's scale (an image
    # predicted larger keeps smaller objects): only a floor the user gives drops more.
    objects = np.where(speck > 0, 1, 0).astype(np.uint16)
    objects[2:4, 2:4] = 2
    _save(folder / "x_instances.png", objects)
    (folder / "predictions.json").write_text(json.dumps({**record, "min_object_area": 48, "instances": {}}))
    assert quantify([folder], tmp_path / "q5", verbose=False)["classes"]["particles"]["objects"] == 2
    assert quantify([folder], tmp_path / "q6", min_area=48, verbose=False)["classes"]["particles"]["objects"] == 1


def test_binary_masks_and_instance_maps(tmp_path):
    _save(tmp_path / "bin" / "b.png", _disc(np.zeros((40, 40), np.uint8), 20, 20, 8, value=255))
    summary = quantify([tmp_path / "bin"], tmp_path / "qb", verbose=False)
    assert list(summary["classes"]) == ["foreground"] and summary["classes"]["foreground"]["objects"] == 1

    inst = np.zeros((50, 60), np.uint16)
    inst[10:30, 10:20] = 1
    inst[10:30, 20:30] = 2      # touches instance 1: still its own object
    inst[40:48, 40:48] = 300    # 16-bit ids
    inst[2:4, 50:52] = 7        # 4 px
    _save(tmp_path / "inst" / "i.npy", inst)
    _save(tmp_path / "inst" / "j.png", inst)  # 16-bit PNG
    summary = quantify([tmp_path / "inst"], tmp_path / "qi", instance_maps=True, verbose=False)
    assert summary["classes"]["foreground"]["objects"] == 8
    objects = pd.read_csv(tmp_path / "qi" / "objects.csv")
    assert sorted(objects.loc[objects.image == "i.npy", "area"]) == [4, 64, 200, 200]
    images = pd.read_csv(tmp_path / "qi" / "images.csv")
    assert images.loc[images.image == "i.npy", "coverage"].iloc[0] == pytest.approx(468 / 3000)
    summary = quantify([tmp_path / "inst" / "i.npy"], tmp_path / "qa", instance_maps=True, min_area=5, verbose=False)
    assert summary["classes"]["foreground"]["objects"] == 3


def test_no_objects_at_all_writes_headers_and_an_empty_histogram(tmp_path):
    _save(tmp_path / "m" / "e.png", np.zeros((20, 20), np.uint8))
    summary = quantify([tmp_path / "m"], tmp_path / "q", pixel_size=1.5, unit="um", verbose=False)
    assert summary["classes"] == {"foreground": {"objects": 0, "mean_diameter": None, "median_diameter": None,
                                              "mean_diameter_px": None, "median_diameter_px": None, "mean_coverage": 0.0}}
    objects = pd.read_csv(tmp_path / "q" / "objects.csv")
    assert objects.empty and "area_um2" in objects.columns
    assert pd.read_csv(tmp_path / "q" / "images.csv")["count"].tolist() == [0]
    assert (tmp_path / "q" / "size_distribution.png").stat().st_size > 0


def test_user_errors_name_the_file_and_never_touch_inputs(tmp_path):
    masks = _two_class_masks(tmp_path / "masks")
    before = {p.name: p.read_bytes() for p in masks.iterdir()}
    (tmp_path / "none").mkdir()
    _save(tmp_path / "photo" / "p.png", np.random.default_rng(0).integers(0, 255, (30, 30, 3), dtype=np.uint8))
    _save(tmp_path / "grey" / "g.png", np.random.default_rng(0).integers(0, 255, (30, 30), dtype=np.uint8))
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "broken.png").write_bytes(b"not a png")
    cases = [
        (dict(inputs=[tmp_path / "missing"], out=tmp_path / "q"), "input not found"),
        (dict(inputs=[tmp_path / "none"], out=tmp_path / "q"), "no masks found"),
        (dict(inputs=[tmp_path / "photo"], out=tmp_path / "q"), "looks like a photo.*--checkpoint"),
        (dict(inputs=[tmp_path / "grey"], out=tmp_path / "q"), "too many for class ids.*--instance-maps"),
        (dict(inputs=[tmp_path / "bad"], out=tmp_path / "q"), "cannot read mask.*broken.png"),
        (dict(inputs=[masks], out=tmp_path / "q", min_area=-1), "--min-area must be 0 or more"),
        (dict(inputs=[masks], out=masks), "--out is an input folder"),
        (dict(inputs=[masks / "a.png"], out=masks), "--out is an input folder"),
        (dict(inputs=[masks], out=tmp_path / "q", pixel_size=0, unit="nm"), "--pixel-size must be a number above 0"),
        (dict(inputs=[masks], out=tmp_path / "q", unit="nm"), "needs a pixel size"),
        (dict(inputs=[masks], out=tmp_path / "q", class_names=["background", "dots"]), "outside the 2 classes"),
    ]
    for kwargs, pattern in cases:
        with pytest.raises(SegfitError, match=pattern):
            quantify(kwargs.pop("inputs"), kwargs.pop("out"), verbose=False, **kwargs)
    assert {p.name: p.read_bytes() for p in masks.iterdir()} == before
    assert not (tmp_path / "q").exists()


# ---------------------------------------------------------------------------------------------
# From a checkpoint, and the command line


def test_quantify_predicts_first_with_a_checkpoint(trained_run, particles_dir, tmp_path):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(trained_run, run)  # quantify adds itself to the run's report
    out = tmp_path / "q"
    summary = quantify([particles_dir / "images"], out, checkpoint=run, verbose=False)
    n_images = len(list((particles_dir / "images").glob("*.png")))
    assert len(list((out / "masks").glob("*_overlay.png"))) == n_images
    assert summary["images"] == n_images and (out / "objects.csv").is_file()
    assert Path(summary["run_dir"]).resolve() == run.resolve()
    assert json.loads((out / "quantify.json").read_text())["run_dir"] == summary["run_dir"]
    images = pd.read_csv(out / "images.csv")
    assert len(images) == n_images * len(summary["classes"])
    assert json.loads((run / "outputs.json").read_text())["quantifications"] == [str(out.resolve())]
    # the tables name the input images, also when they are not PNG files like their masks
    jpegs = tmp_path / "jpegs"
    jpegs.mkdir()
    for p in sorted((particles_dir / "images").glob("*.png"))[:2]:
        Image.open(p).convert("RGB").save(jpegs / f"{p.stem}.jpg")
    quantify([jpegs], tmp_path / "qj", checkpoint=run, verbose=False)
    assert set(pd.read_csv(tmp_path / "qj" / "images.csv")["image"]) == {p.name for p in jpegs.iterdir()}
    page = (run / "report.html").read_text()
    assert "<h2>Objects measured</h2>" in page and "Equivalent diameters per class" in page


def test_quantify_drops_what_the_model_plans_as_fragments(trained_run, particles_dir, tmp_path, monkeypatch):
    from segfit.predictor import Predictor

    loaded = Predictor.from_checkpoint

    def planned(*args, **kwargs):  # a planned model's fragment size (the teaching model has none)
        predictor = loaded(*args, **kwargs)
        predictor.config.model.min_object_area = 30
        return predictor

    monkeypatch.setattr(Predictor, "from_checkpoint", planned)
    default = quantify([particles_dir / "images"], tmp_path / "q", checkpoint=trained_run, verbose=False)
    given = quantify([particles_dir / "images"], tmp_path / "given", checkpoint=trained_run, min_area=0, verbose=False)
    assert default["min_area"] == 30 and given["min_area"] == 0  # what the user gives wins
    assert (pd.read_csv(tmp_path / "q" / "objects.csv")["area"] >= 30).all()


def test_cli_quantify_and_its_user_errors(tmp_path, trained_run, particles_dir):
    masks = _two_class_masks(tmp_path / "masks")
    (tmp_path / "empty").mkdir()
    _save(tmp_path / "photos" / "p.png", np.random.default_rng(1).integers(0, 255, (30, 30, 3), dtype=np.uint8))
    good = ["quantify", masks, "--out", tmp_path / "out", "--split-touching", "--pixel-size", "2.5", "--unit", "nm"]
    shutil.copytree(trained_run, tmp_path / "run")
    ckpt = ["quantify", particles_dir / "images", "--checkpoint", tmp_path / "run", "--out", tmp_path / "fromrun", "--min-area", "2"]
    truth = ["quantify", particles_dir / "segmaps", "--instance-maps", "--out", tmp_path / "truth"]
    bad = [
        (["quantify", tmp_path / "missing", "--out", tmp_path / "x"], "input not found"),
        (["quantify", tmp_path / "empty", "--out", tmp_path / "x"], "no masks found"),
        (["quantify", tmp_path / "photos", "--out", tmp_path / "x"], "looks like a photo"),
        (["quantify", masks, "--out", tmp_path / "x", "--unit", "nm"], "--unit needs --pixel-size"),
        (["quantify", masks, "--out", masks], "--out is an input folder"),
        (["quantify", masks, "--out", tmp_path / "x", "--class", "nope"], "unknown class 'nope'"),
    ]
    procs = run_many([good, ckpt, truth] + [argv for argv, _ in bad], tmp_path)
    assert procs[0].returncode == 0, procs[0].stderr
    assert "class1: 4 objects in 3 images" in procs[0].stdout and "quantify.json" in procs[0].stdout
    assert list(pd.read_csv(tmp_path / "out" / "objects.csv").columns) == OBJECT_COLUMNS + UNIT_COLUMNS
    assert (tmp_path / "out" / "size_distribution.png").is_file()
    assert procs[1].returncode == 0, procs[1].stderr
    assert (tmp_path / "fromrun" / "masks").is_dir() and (tmp_path / "fromrun" / "objects.csv").is_file()
    assert procs[2].returncode == 0, procs[2].stderr
    n_true = sum(len(np.unique(np.asarray(Image.open(p)))) - 1 for p in (particles_dir / "segmaps").glob("*.png"))
    assert f"foreground: {n_true} objects in " in procs[2].stdout
    for proc, (_, words) in zip(procs[3:], bad):
        assert proc.returncode == 2, (proc.args, proc.stderr)
        assert "Traceback" not in proc.stdout + proc.stderr
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("segfit: error: ") and words in lines[0], proc.stderr
    assert not (tmp_path / "x").exists()


def _data_set(root: Path, masks: list[np.ndarray]) -> Path:
    """``root/images/`` (grey noise) and ``root/masks/`` with the given masks."""
    rng = np.random.default_rng(0)
    for i, mask in enumerate(masks):
        _save(root / "images" / f"s{i}.png", rng.integers(0, 255, mask.shape[:2], dtype=np.uint8))
        _save(root / "masks" / f"s{i}.png", mask)
    return root


def test_a_data_set_reads_its_masks_as_check_and_train_do(tmp_path):
    """Masks coded 0/50/100 are 3 classes, colour masks their colours, 0/1 masks a foreground, instance maps
    their objects: the plan's reading of the data, not the raw values (which made 100 classes)."""
    coded = []
    for shift in (0, 4, 8):
        m = np.zeros((48, 48), np.uint8)
        _disc(m, 12 + shift, 12, 6, value=50)
        m[30:40, 25 + shift:40 + shift] = 100
        coded.append(m)
    summary = quantify([_data_set(tmp_path / "coded", coded)], tmp_path / "qc", verbose=False)
    assert summary["class_names"] == ["background", "class1", "class2"] and summary["images"] == 3
    assert summary["classes"]["class1"]["objects"] == 3 and summary["classes"]["class2"]["objects"] == 3

    colour = [np.zeros((48, 48, 3), np.uint8) for _ in range(3)]
    for m in colour:
        m[5:15, 5:15] = (0, 255, 0)
        m[30:40, 30:40] = (255, 0, 0)
        m[30:40, 5:15] = (255, 0, 0)
    summary = quantify([_data_set(tmp_path / "colour", colour)], tmp_path / "qco", verbose=False)
    assert len(summary["class_names"]) == 3 and summary["class_names"][0] == "background"
    counts = {name: info["objects"] for name, info in summary["classes"].items()}
    assert sorted(counts.values()) == [3, 6]

    binary = [_disc(np.zeros((48, 48), np.uint8), 24, 24, 8) for _ in range(3)]
    summary = quantify([_data_set(tmp_path / "binary", binary)], tmp_path / "qb", verbose=False)
    assert list(summary["classes"]) == ["foreground"] and summary["classes"]["foreground"]["objects"] == 3

    instances = []
    for _ in range(3):
        m = np.zeros((48, 48), np.uint16)
        m[10:30, 10:20], m[10:30, 20:30], m[35:45, 35:45] = 1, 2, 3  # 1 and 2 touch
        instances.append(m)
    summary = quantify([_data_set(tmp_path / "inst", instances)], tmp_path / "qi", verbose=False)
    assert summary["instance_maps"] and summary["classes"]["foreground"]["objects"] == 9


def test_a_flat_data_set_measures_its_masks_not_its_images(tmp_path):
    """NAME.tif + NAME_bin.png in one folder: the images are not masks (they were read as instance maps
    of a few hundred values, counting thousands of objects)."""
    import tifffile

    rng = np.random.default_rng(1)
    flat = tmp_path / "flat"
    flat.mkdir()
    for i in range(3):
        tifffile.imwrite(flat / f"s{i}.tif", rng.integers(0, 60000, (48, 48), dtype=np.uint16))
        m = np.zeros((48, 48), np.uint16)
        m[10:30, 10:20], m[10:30, 20:30], m[35:45, 35:45] = 1, 2, 3
        _save(flat / f"s{i}_bin.png", m)
    summary = quantify([flat], tmp_path / "q", verbose=False)
    assert summary["images"] == 3 and summary["instance_maps"]
    assert summary["classes"]["foreground"]["objects"] == 9
