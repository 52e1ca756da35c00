"""Bad input never crashes or loses work: one-line errors for a corpus of bad inputs, safe
checkpoints, numerical trouble, and `segfit check`."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from segfit.data.split import make_split
from segfit.data.synthetic import make_particles

from _segfit_cli import run_many


class _Evil:
    """Unpickling this would create a file: a stand-in for code hidden in a checkpoint."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _train_name(data: Path) -> str:
    names = sorted(p.stem for p in (data / "images").glob("*.png"))
    return make_split(names, data, 0.2, 0.2, 0)["train"][0]


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, trained_run):
    """One folder and one command line per bad input; all run in one batch."""
    root = tmp_path_factory.mktemp("corpus")
    cases: dict[str, tuple[Path, list]] = {}

    def data_case(name: str, *extra, n: int = 6) -> Path:
        folder = root / name
        data = make_particles(folder / "data", n=n, size=32, seed=4)
        cases[name] = (folder, ["train", data, "--out", folder / "run", "--channels", "1", "--epochs", "1", *extra])
        return data

    data = data_case("zero_byte_image")
    (data / "images" / f"{_train_name(data)}.png").write_bytes(b"")
    data = data_case("text_as_png")
    (data / "images" / f"{_train_name(data)}.png").write_text("this is a text file, not a picture\n")
    data = data_case("zero_byte_mask")
    (data / "segmaps" / f"{_train_name(data)}.png").write_bytes(b"")
    data = data_case("truncated_png")
    path = data / "images" / f"{_train_name(data)}.png"
    path.write_bytes(path.read_bytes()[:60])
    data = data_case("corrupt_tiff")
    name = _train_name(data)
    (data / "images" / f"{name}.png").unlink()
    (data / "images" / f"{name}.tif").write_bytes(b"II*\x00garbage")
    data = data_case("corrupt_jpg")
    name = _train_name(data)
    (data / "images" / f"{name}.png").unlink()
    (data / "images" / f"{name}.jpg").write_bytes(b"\xff\xd8\xff\xe0 broken")
    data_case("unknown_encoder", "--model", "unet", "--encoder", "resnet4242")
    data_case("unknown_loss", "--loss", "hinge")
    data = data_case("index_255", "--mask-mode", "index", "--classes", "2")
    for p in (data / "segmaps").glob("*.png"):
        Image.fromarray((np.asarray(Image.open(p)) > 0).astype(np.uint8) * 255).save(p)
    data = data_case("values_outside", "--mask-mode", "index", "--classes", "3")
    data = data_case("nan_loss", "--lr", "1e30", "--batch-size", "2")

    folder = root / "pickle"
    folder.mkdir()
    marker = folder / "pwned.txt"
    evil = torch.load(trained_run / "checkpoints" / "best.ckpt", weights_only=True)
    evil["segfit"]["payload"] = _Evil(marker)
    torch.save(evil, folder / "evil.ckpt")
    image = folder / "in.png"
    shutil.copy(sorted((make_particles(folder / "d", n=1, size=32) / "images").glob("*.png"))[0], image)
    cases["pickle_predict"] = (folder, ["predict", folder / "evil.ckpt", image, "--out", folder / "p1"])
    cases["pickle_evaluate"] = (folder, ["evaluate", folder / "evil.ckpt", trained_run.parent, "--out", folder / "e1"])
    cases["pickle_resume"] = (folder, ["train", "--resume", folder / "evil.ckpt"])
    torch.save({"state_dict": {"w": torch.zeros(3)}, "epoch": 1}, folder / "other.ckpt")
    cases["other_checkpoint"] = (folder, ["predict", folder / "other.ckpt", image, "--out", folder / "p2"])
    (folder / "text.ckpt").write_text("not a checkpoint")
    cases["text_checkpoint"] = (folder, ["predict", folder / "text.ckpt", image, "--out", folder / "p3"])
    cases["debug_traceback"] = (folder, ["predict", folder / "text.ckpt", image, "--out", folder / "p4", "--debug"])

    good = make_particles(root / "good", n=8, size=32, seed=6)
    cases["check_good"] = (root, ["check", good, "--channels", "1"])
    bad = make_particles(root / "bad", n=8, size=32, seed=6)
    (bad / "images" / "particles_001.png").write_text("text")
    Image.fromarray(np.zeros((5, 5), np.uint8)).save(bad / "segmaps" / "particles_002.png")
    (bad / "segmaps" / "particles_003.png").unlink()
    cases["check_bad"] = (root, ["check", bad, "--channels", "1"])
    cases["check_instances_as_index"] = (root, ["check", good, "--mask-mode", "index", "--classes", "3"])

    names = list(cases)
    results = run_many([cases[n][1] for n in names], [cases[n][0] for n in names])
    return {n: (cases[n][0], r) for n, r in zip(names, results)}, marker


def _one_line(proc, *words):
    assert proc.returncode == 2, (proc.returncode, proc.stdout[-500:], proc.stderr[-2000:])
    out = proc.stdout + proc.stderr
    assert "Traceback" not in out
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("segfit: error: "), proc.stderr
    for w in words:
        assert w in lines[0], (w, lines[0])
    return lines[0]


@pytest.mark.parametrize("case, words", [
    ("zero_byte_image", ["empty (0 bytes)", ".png", "replace or remove"]),
    ("text_as_png", ["cannot read image", ".png"]),
    ("zero_byte_mask", ["empty (0 bytes)", "segmaps"]),
    ("truncated_png", ["cannot read image", ".png"]),
    ("corrupt_tiff", ["cannot read image", ".tif"]),
    ("corrupt_jpg", ["cannot read image", ".jpg"]),
    ("unknown_encoder", ["unknown encoder 'resnet4242'", "resnet34"]),
    ("unknown_loss", ["unknown loss 'hinge'", "ce+dice"]),
    ("index_255", ["0/255", "--mask-mode binary"]),
    ("values_outside", ["outside the 3 classes", "--classes"]),
    ("nan_loss", ["loss became", "epoch 1, batch", "lower the learning rate"]),
])
def test_bad_training_input_is_one_line_and_leaves_no_run(corpus, case, words):
    results, _ = corpus
    folder, proc = results[case]
    _one_line(proc, *words)
    run = folder / "run"
    if case == "nan_loss":  # the run folder exists (training had started) but holds no checkpoint
        assert not list(run.glob("checkpoints/*.ckpt"))
    else:
        assert not run.exists()
    assert not list(folder.rglob("*.tmp"))


@pytest.mark.parametrize("case", ["pickle_predict", "pickle_evaluate", "pickle_resume"])
def test_checkpoint_with_pickled_object_is_refused_and_never_runs(corpus, case):
    results, marker = corpus
    _one_line(results[case][1], "refused for safety")
    assert not marker.exists()


def test_foreign_and_damaged_checkpoints(corpus):
    results, _ = corpus
    _one_line(results["other_checkpoint"][1], "not a segfit checkpoint")
    _one_line(results["text_checkpoint"][1], "cannot read checkpoint")


def test_debug_shows_the_traceback(corpus):
    results, _ = corpus
    proc = results["debug_traceback"][1]
    assert proc.returncode != 0 and "Traceback" in proc.stderr


def test_check_reports(corpus):
    results, _ = corpus
    good, bad, index = results["check_good"][1], results["check_bad"][1], results["check_instances_as_index"][1]
    assert good.returncode == 0 and "OK: training can proceed" in good.stdout
    assert "Class pixels: background" in good.stdout and "Image sizes (HxW): 32x32 (8)" in good.stdout
    assert bad.returncode == 2
    assert "1 images without a mask" in bad.stdout and "particles_003.png" in bad.stdout
    assert "cannot read image" in bad.stdout and "particles_001.png" in bad.stdout
    assert "mask is 5x5 but its image is 32x32" in bad.stdout
    assert index.returncode == 2 and "outside the 3 classes" in index.stdout and " px" in index.stdout


def test_safe_loader_accepts_segfit_checkpoints(trained_run):
    from segfit.checkpoint import load_checkpoint

    ckpt = load_checkpoint(trained_run / "checkpoints" / "last.ckpt")
    assert ckpt["segfit"]["config"]["model"]["name"] == "notebook"
