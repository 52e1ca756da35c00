"""`segfit predict` and the Predictor: masks at the image's original size, overlays, coverage.csv,
and inputs that are never overwritten."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

import segfit
from segfit.data.formats import read_mask
from segfit.data.synthetic import make_particles, particle_image
from segfit.errors import SegfitError
from segfit.runs import train as segfit_train

from _segfit_cli import run_many


def _snapshot(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


@pytest.fixture(scope="module")
def run32(tmp_path_factory, trained_run) -> Path:
    """A 1-epoch run trained at --size 32 on 40x40 images; its best.ckpt head bias is shifted so
    that it predicts a mix of foreground and background.

    (trained_run is requested first on purpose: conftest builds it with segfit.train(), which stops
    being callable once any training has imported the submodule segfit/train.py; see test_train.py.)"""
    import torch

    root = tmp_path_factory.mktemp("predict")
    data = make_particles(root / "data", n=10, size=40, seed=2)
    result = segfit_train(data, root / "run", size=32, channels=1, epochs=1, batch_size=4, preload=True, verbose=False)
    predictor = segfit.Predictor.from_checkpoint(result.best_checkpoint)
    images = [np.asarray(Image.open(p)) for p in sorted((data / "images").glob("*.png"))[:4]]
    median = float(predictor.logits(torch.stack([predictor.prepare(im) for im in images])).median())
    ckpt = torch.load(result.best_checkpoint, map_location="cpu", weights_only=True)
    key = [k for k in ckpt["state_dict"] if k.endswith(".bias")][-1]
    ckpt["state_dict"][key] = ckpt["state_dict"][key] - median
    torch.save(ckpt, result.best_checkpoint)
    return result.run_dir


def _odd_image(folder: Path) -> Path:
    """An EM-like RGB image of 45 rows x 61 columns (trained size: 32x32)."""
    image, _ = particle_image(np.random.default_rng(5), size=64)
    folder.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.repeat(image[:45, :61, None], 3, axis=-1)).save(folder / "odd.png")
    return folder / "odd.png"


@pytest.fixture()
def odd_image(tmp_path) -> Path:
    return _odd_image(tmp_path / "inputs")


@pytest.fixture(scope="module")
def cli_runs(run32, tmp_path_factory):
    """`segfit predict` twice (one interpreter, see _segfit_cli.py): files + a folder into a new
    folder, and a folder of PNGs into itself. Returns {case: (folder, result, inputs snapshot)}."""
    root = tmp_path_factory.mktemp("predict_cli")
    odd = _odd_image(root / "inputs")
    folder = root / "folder"
    folder.mkdir()
    rng = np.random.default_rng(9)
    for i, size in enumerate((40, 28)):
        image, labels = particle_image(rng, size=size)
        Image.fromarray(image).save(folder / f"img{i}.png")
        Image.fromarray((labels > 0).astype(np.uint8)).save(folder / f"img{i}_bin.png")  # a mask: skipped
    same = root / "same"
    make_particles(same, n=3, size=32, seed=4, layout="flat")
    for p in same.glob("*_bin.png"):
        p.unlink()
    before = {"new": {**_snapshot(folder), **_snapshot(odd.parent)}, "same": _snapshot(same)}
    results = run_many([["predict", run32, odd, folder, "--out", root / "pred"],
                        ["predict", run32, same, "--out", same]], root)
    return {"new": (root, results[0], before["new"]), "same": (same, results[1], before["same"])}


def test_predictor_returns_masks_at_the_original_size(run32, odd_image):
    predictor = segfit.Predictor.from_checkpoint(run32)
    assert predictor.config.data.size == 32 and predictor.class_names == ["background", "foreground"]
    rgb = np.asarray(Image.open(odd_image))
    mask = predictor.predict(rgb)
    assert mask.shape == (45, 61) and mask.dtype == np.uint8
    assert set(np.unique(mask)) == {0, 1}
    # grey input gives the same answer as its RGB version for a grayscale model
    assert np.array_equal(predictor.predict(rgb[..., 0]), mask)
    assert np.array_equal(predictor.predict(odd_image), mask) and np.array_equal(predictor.predict(str(odd_image)), mask)
    with pytest.raises(SegfitError, match=r"shape \(0, 0\)"):
        predictor.predict(np.zeros((0, 0)))
    assert repr(predictor).startswith("Predictor(") and "background, foreground" in repr(predictor)
    # the documented procedure: prepare at 32x32, resize the logits back bilinearly, threshold at 0
    import torch.nn.functional as F

    logits = predictor.logits(predictor.prepare(rgb)[None])
    assert tuple(logits.shape[-2:]) == (32, 32)
    resized = F.interpolate(logits, size=(45, 61), mode="bilinear", align_corners=False)
    assert np.array_equal((resized[0, 0] > 0).numpy().astype(np.uint8), mask)


def test_predictor_from_checkpoint_file_or_run_folder(run32):
    a = segfit.Predictor.from_checkpoint(run32)
    b = segfit.Predictor.from_checkpoint(run32 / "checkpoints" / "best.ckpt")
    c = segfit.Predictor.from_checkpoint(run32 / "checkpoints" / "last.ckpt")
    assert a.checkpoint == b.checkpoint == run32 / "checkpoints" / "best.ckpt"
    assert c.checkpoint.name == "last.ckpt"
    with pytest.raises(SegfitError, match="not found"):
        segfit.Predictor.from_checkpoint(run32 / "checkpoints" / "missing.ckpt")


def test_cli_predict_files_and_folders(cli_runs):
    root, proc, before = cli_runs["new"]
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    assert "Wrote 3 masks" in proc.stdout
    assert {**_snapshot(root / "folder"), **_snapshot(root / "inputs")} == before

    out = root / "pred"
    expected_sizes = {"odd": (61, 45), "img0": (40, 40), "img1": (28, 28)}  # PIL sizes: (width, height)
    # The particles' instance maps have touching objects: the planned model learned instances and writes them.
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [".segfit", "coverage.csv", "predictions.json"] + [f"{n}{kind}.png" for n in expected_sizes for kind in ("", "_overlay", "_instances")])
    record = json.loads((out / "predictions.json").read_text())
    assert record["class_names"] == ["background", "foreground"] and record["checkpoint"].endswith(".ckpt")
    assert "model's instances" in record["instances"]
    coverage = pd.read_csv(out / "coverage.csv")
    assert list(coverage.columns) == ["image", "class", "fraction"]
    assert len(coverage) == 3 * 2
    for name, size in expected_sizes.items():
        with Image.open(out / f"{name}.png") as im:
            assert im.size == size and im.mode == "L"
            mask = np.asarray(im)
        assert set(np.unique(mask)) <= {0, 1}
        objects = read_mask(out / f"{name}_instances.png")  # 16-bit, one id per object, on the foreground only
        # (isolated specks under the planned min_object_area are dropped; fragments join their neighbour)
        assert objects.dtype == np.uint16 and not (objects > 0)[mask == 0].any()
        assert (mask > 0).sum() == 0 or objects.max() >= 1
        with Image.open(out / f"{name}_overlay.png") as im:
            assert im.size == size and im.mode == "RGB"
        rows = coverage[coverage["image"] == f"{name}.png"].set_index("class")["fraction"]
        assert rows.sum() == pytest.approx(1.0)
        assert rows["foreground"] == pytest.approx(mask.mean())
    assert coverage[coverage["class"] == "foreground"]["fraction"].between(0.01, 0.99).any()


def test_cli_predict_into_the_input_folder_fails(cli_runs):
    folder, proc, before = cli_runs["same"]
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("segfit: error: ") and "overwrite" in lines[0]
    assert "Traceback" not in proc.stdout + proc.stderr
    assert _snapshot(folder) == before


def _input_folder(tmp_path: Path, seed: int, names: list[str]) -> Path:
    """A folder of small particle images under the given file names."""
    folder = tmp_path / "inputs"
    folder.mkdir()
    rng = np.random.default_rng(seed)
    for name in names:
        Image.fromarray(particle_image(rng, 32)[0]).save(folder / name)
    return folder


def test_failed_predict_into_the_input_folder_writes_nothing(run32, tmp_path):
    folder = _input_folder(tmp_path, 1, ["a.jpg", "b.png"])
    before = _snapshot(folder)
    with pytest.raises(SegfitError):
        segfit.Predictor.from_checkpoint(run32).predict_files([folder], folder)
    assert _snapshot(folder) == before


def test_overlay_never_overwrites_an_input(run32, tmp_path):
    folder = _input_folder(tmp_path, 2, ["c.jpg", "c_overlay.png"])
    before = _snapshot(folder)["c_overlay.png"]
    try:
        segfit.Predictor.from_checkpoint(run32).predict_files([folder / "c.jpg", folder / "c_overlay.png"], folder)
    except SegfitError:
        pass
    assert _snapshot(folder)["c_overlay.png"] == before


def test_a_users_folder_is_never_written_into_and_segfits_own_is_replaced(run32, tmp_path):
    """--out naming a folder of the user's files: the predictions go to OUT-2 and the user's files stay as
    they were; predicting again into a folder segfit made replaces its own outputs there."""
    inputs = _input_folder(tmp_path, 3, ["s0.png", "s1.png"])
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "s0.png").write_bytes(b"my own file")
    (mine / "coverage.csv").write_text("my,own\n")
    before = _snapshot(mine)
    predictor = segfit.Predictor.from_checkpoint(run32)
    written = predictor.predict_files([inputs], mine)
    assert _snapshot(mine) == before
    assert predictor.out == tmp_path / "mine-2" and {p.parent for p in written} == {tmp_path / "mine-2"}
    (tmp_path / "mine-2" / "s0_uncertainty.png").write_bytes(b"a map of the earlier prediction")
    (tmp_path / "mine-2" / "notes.txt").write_text("mine")
    again = segfit.Predictor.from_checkpoint(run32)
    again.predict_files([inputs / "s1.png"], tmp_path / "mine-2")
    assert again.out == tmp_path / "mine-2" and not (tmp_path / "mine-3").exists()
    # The earlier prediction's outputs go (s0 was not predicted again); what is not a prediction stays.
    assert sorted(p.name for p in (tmp_path / "mine-2").iterdir()) == [
        ".segfit", "coverage.csv", "notes.txt", "predictions.json", "s1.png", "s1_instances.png", "s1_overlay.png"]


def test_the_overlay_blends_as_alpha_says(run32, tmp_path):
    inputs = _input_folder(tmp_path, 3, ["s0.png"])
    predictor = segfit.Predictor.from_checkpoint(run32)
    predictor.predict_files([inputs], tmp_path / "clear", alpha=0.0, objects=False)
    predictor.predict_files([inputs], tmp_path / "half", objects=False)
    image = np.asarray(Image.open(inputs / "s0.png").convert("RGB"))
    clear, half = (np.asarray(Image.open(tmp_path / d / "s0_overlay.png").convert("RGB")) for d in ("clear", "half"))
    assert (np.asarray(Image.open(tmp_path / "half" / "s0.png")) > 0).any()
    assert np.array_equal(clear, image) and not np.array_equal(half, image)


def test_an_unreadable_image_is_skipped_and_named_after_the_others_are_predicted(run32, tmp_path):
    inputs = _input_folder(tmp_path, 4, ["a.png", "b.png", "c.png"])
    (inputs / "b.png").write_bytes((inputs / "b.png").read_bytes()[:60])  # truncated
    with pytest.raises(SegfitError, match=r"1 of 3 images could not be read.*b\.png"):
        segfit.predict(run32, [inputs], tmp_path / "pred", verbose=False)
    out = tmp_path / "pred"
    assert (out / "a.png").is_file() and (out / "c.png").is_file() and not (out / "b.png").exists()
    record = json.loads((out / "predictions.json").read_text())
    assert len(record["unreadable"]) == 1 and "b.png" in record["unreadable"][0]
    assert set(pd.read_csv(out / "coverage.csv")["image"]) == {"a.png", "c.png"}


def test_a_folder_keeps_images_whose_names_only_look_like_masks(tmp_path):
    from PIL import Image

    from segfit.data.formats import list_images

    for name in ("a", "a_mask", "a_overlay", "b_bin", "c_uncertainty", "mask_d"):
        Image.fromarray(np.zeros((4, 4), np.uint8)).save(tmp_path / f"{name}.png")
    assert [p.stem for p in list_images([tmp_path])] == ["a", "b_bin", "c_uncertainty", "mask_d"]
