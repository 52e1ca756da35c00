"""The `segfit` command line, run as `python -m segfit`: help, user errors, train, show, summary, demo."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from segfit.data.split import make_split
from segfit.data.synthetic import make_particles

from _segfit_cli import run_many


def cli(*args, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "segfit", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, timeout=timeout)


def assert_user_error(proc: subprocess.CompletedProcess, *words: str) -> str:
    """Exit code 2, one stderr line `segfit: error: ...`, no traceback anywhere."""
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("segfit: error: "), lines[0]
    for word in words:
        assert word in lines[0], (word, lines[0])
    return lines[0]


def a_training_image(data: Path) -> str:
    """The name of an image the training split will read (seed 0, default fractions)."""
    names = sorted(p.stem for p in (data / "images").glob("*.png"))
    return make_split(names, data, 0.2, 0.2, 0)["train"][0]


# ---------------------------------------------------------------------------------------------
# Help and argument errors: answered without importing torch


def test_help_and_argument_errors_do_not_import_torch(tmp_path):
    """Help, bad values and paths that do not exist are answered before torch is imported (about a second)."""
    code = (
        "import sys\n"
        "from segfit.cli import main\n"
        "codes = []\n"
        "for argv in (['--help'], ['train', '--help'], ['predict', '--help'], ['train', 'd', '--channels', '2'],\n"
        "             ['train', 'd', '--time', 'soon'], ['train', 'd', '--time', '-5m'], ['plan', 'd', '--time', '0s'],\n"
        "             ['train', 'd', '--lr', '0'], ['train', 'd', '--test', '1.5'], ['train', 'd', '--classes', '1'],\n"
        "             ['train', 'nowhere'], ['train', '--resume', 'nowhere/last.ckpt'], ['predict', 'nowhere', 'x', '--out', 'o'],\n"
        "             ['evaluate', 'nowhere'], ['export', 'nowhere', '--out', 'm.onnx'], ['quantify', 'nowhere', '--out', 'q'],\n"
        "             ['train', 'd', '--out', 'afile'], ['check', '~/nowhere-segfit']):\n"
        "    try:\n"
        "        codes.append(main(argv))\n"
        "    except SystemExit as exc:\n"
        "        codes.append(exc.code)\n"
        "heavy = [m for m in ('torch', 'lightning', 'segmentation_models_pytorch') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
        "print(codes)\n"
    )
    (tmp_path / "d").mkdir()
    (tmp_path / "afile").write_text("mine")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == str([0, 0, 0] + [2] * 15)
    errors = [line for line in proc.stderr.splitlines() if line.startswith("segfit: error:")]
    assert len(errors) == 15, proc.stderr
    for line, words in zip(errors[1:], (["soon", "10m"], ["-5m", "duration"], ["positive", "0s"], ["--lr", "positive"],
                                        ["--test", "fraction"], ["--classes", "background"], ["data folder not found", "nowhere"],
                                        ["not found", "last.ckpt"], ["not found", "nowhere"], ["not found", "nowhere"],
                                        ["not found", "nowhere"], ["input not found", "nowhere"],
                                        ["output path is a file", "afile"], ["not found", str(Path.home() / "nowhere-segfit")])):
        assert all(w in line for w in words), (line, words)


def test_file_system_errors_are_user_errors(monkeypatch, capsys):
    """A read-only or full disk is the user's to fix: one line naming the place, exit 2, not an internal error."""
    import errno

    from segfit import cli as cli_module

    for code, words in ((errno.EROFS, ["read-only", "locked/run", "--out"]), (errno.ENOSPC, ["space", "locked/run"])):
        def fail(command, opts, code=code):
            raise OSError(code, os.strerror(code), "locked/run")

        monkeypatch.setattr(cli_module, "run_command", fail)
        assert cli_module.main(["train", "d"]) == 2
        line = capsys.readouterr().err.strip()
        assert line.startswith("segfit: error: ") and "internal" not in line, line
        assert all(w in line for w in words), line
    monkeypatch.setattr(cli_module, "run_command", lambda command, opts: 1 / 0)
    assert cli_module.main(["train", "d"]) == 1 and "internal error" in capsys.readouterr().err


def test_seed_spellings_of_the_training_flags():
    """The field project's underscores and the hyphens both parse, to the same options."""
    from segfit.cli import _build_parser

    parse = _build_parser().parse_args
    seed = vars(parse(["train", "d", "--batch_size", "4", "--weight_decay", "0.01", "--save_every", "2", "--learning_rate", "1e-3"]))
    plain = vars(parse(["train", "d", "--batch-size", "4", "--weight-decay", "0.01", "--save-every", "2", "--lr", "1e-3"]))
    assert seed == plain and seed["save_every"] == 2 and seed["batch_size"] == 4


def test_help_lists_the_commands(tmp_path):
    proc = cli("--help", cwd=tmp_path)
    assert proc.returncode == 0 and proc.stderr == ""
    for command in ("demo", "train", "evaluate", "predict", "quantify", "report", "show", "summary"):
        assert command in proc.stdout
    bare = cli(cwd=tmp_path)  # no command: the help, exit 0
    assert bare.returncode == 0 and "COMMAND" in bare.stdout
    assert cli("--version", cwd=tmp_path).stdout.startswith("segfit ")
    train_help = " ".join(cli("train", "--help", cwd=tmp_path).stdout.split()).split("options:", 1)[1]  # past the usage
    for option in ("--encoder ENCODER smp encoder name", "--optimizer", "--augment", "--batch-size"):  # the plan's to fill
        rest = train_help.split(option, 1)[1]
        assert "(default: planned;" in rest[: rest.index(")") + 1], option
    assert "--no-preload" in train_help and "--no-plan" in train_help


@pytest.mark.parametrize("args,words", [
    (["train", "data", "--channels", "2"], ["--channels"]),
    (["train", "data", "--val", "abc"], ["--val", "abc"]),
    (["train", "data", "--val", "1.5"], ["--val"]),
    (["train", "data", "--epochs", "0"], ["--epochs"]),
    (["train", "data", "--size", "big"], ["--size"]),
    (["evaluate", "run", "--split", "everything"], ["--split"]),
    (["predict", "model.ckpt", "in.png"], ["--out"]),
    (["fly"], ["fly"]),
    (["plan", "data", "--bogus", "x"], ["--bogus", "segfit plan --help"]),  # the command's own help lists its flags
])
def test_argument_errors(tmp_path, args, words):
    assert_user_error(cli(*args, cwd=tmp_path), *words)


# ---------------------------------------------------------------------------------------------
# Commands that need torch. One true `python -m segfit` subprocess for a user error found after the
# heavy imports; the others run as forked `python -m segfit` children of one interpreter (see
# _segfit_cli.py), which saves an interpreter start and the torch import per command.


def test_missing_data_folder(tmp_path):  # now answered before the heavy imports, through the real entry point
    assert_user_error(cli("train", tmp_path / "nowhere", "--out", tmp_path / "run", cwd=tmp_path), "not found", "nowhere")
    assert not (tmp_path / "run").exists()


@pytest.fixture(scope="module")
def batch(tmp_path_factory, particles_dir):
    """Prepare a folder per case, run all the command lines, return {case: (folder, result)}."""
    root = tmp_path_factory.mktemp("cli")
    cases: dict[str, tuple[Path, list]] = {}

    def case(name: str, *argv) -> Path:
        folder = root / name
        folder.mkdir(exist_ok=True)
        cases[name] = (folder, list(argv))
        return folder

    folder = case("empty", "train", root / "empty" / "data", "--out", root / "empty" / "run")
    (folder / "data").mkdir()

    folder = case("no_mask", "train", root / "no_mask" / "data", "--out", root / "no_mask" / "run")
    make_particles(folder / "data", n=4, size=32)
    (folder / "data" / "segmaps" / "particles_002.png").unlink()

    folder = case("bad_model", "train", root / "bad_model" / "data", "--out", root / "bad_model" / "run",
                  "--model", "nonet", "--channels", "1")
    make_particles(folder / "data", n=6, size=32)

    folder = case("corrupt", "train", root / "corrupt" / "data", "--out", root / "corrupt" / "run",
                  "--channels", "1", "--epochs", "1")
    data = make_particles(folder / "data", n=6, size=32)
    (data / "images" / f"{a_training_image(data)}.png").write_bytes(b"\x89PNG\r\n\x1a\n this is not an image")

    folder = case("mask_size", "train", root / "mask_size" / "data", "--out", root / "mask_size" / "run",
                  "--channels", "1", "--epochs", "1")
    data = make_particles(folder / "data", n=6, size=32)
    Image.fromarray(np.zeros((20, 32), np.uint16)).save(data / "segmaps" / f"{a_training_image(data)}.png")

    case("show", "show", particles_dir, "--index", "3", "--out", root / "show" / "pair.png")
    case("show_kept", "show", particles_dir, "--out", root / "show_kept" / "mine.png")
    (root / "show_kept" / "mine.png").write_text("the user's own file")
    case("summary", "summary", "--model", "notebook", "--size", "128", "--channels", "1")

    train_args = ["train", root / "train" / "data", "--out", root / "train" / "runs" / "a", "--channels", "1",
                  "--size", "32", "--batch-size", "4", "--val", "2", "--test", "0.2", "--seed", "1", "--preload"]
    folder = case("train", *train_args, "--epochs", "2")
    data = make_particles(folder / "data", n=10, size=32, seed=2)
    (data / "segmaps").rename(data / "masks")  # images/ + masks/
    cases["train_again"] = (folder, train_args + ["--epochs", "1"])

    names = list(cases)
    results = run_many([cases[n][1] for n in names], [cases[n][0] for n in names])
    return {n: (cases[n][0], r) for n, r in zip(names, results)}


def test_empty_data_folder(batch):
    folder, proc = batch["empty"]
    assert_user_error(proc, "no images")
    assert not (folder / "run").exists()


def test_image_without_mask(batch):
    folder, proc = batch["no_mask"]
    assert "particles_002" in assert_user_error(proc, "no mask")
    assert not (folder / "run").exists()


def test_unknown_model_name(batch):
    _, proc = batch["bad_model"]
    assert "notebook" in assert_user_error(proc, "nonet")  # says which names exist


def test_corrupt_image_file(batch):
    folder, proc = batch["corrupt"]
    assert_user_error(proc, f"{a_training_image(folder / 'data')}.png")


def test_mask_size_differs_from_image_size(batch):
    folder, proc = batch["mask_size"]
    assert_user_error(proc, "20x32", "32x32", a_training_image(folder / "data"))


def test_train_prints_best_epoch(batch):
    folder, proc = batch["train"]
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    out = folder / "runs" / "a"
    summary = json.loads((out / "summary.json").read_text())
    history = pd.read_csv(out / "history.csv")
    assert summary["best_epoch"] == int(history.loc[history["val_loss"].idxmin(), "epoch"])
    lines = proc.stdout.strip().splitlines()
    best_lines = [line for line in lines if line.startswith("Best epoch:")]
    assert len(best_lines) == 1 and re.match(rf"Best epoch: {summary['best_epoch']} of 2\b", best_lines[0])
    assert lines.index(best_lines[0]) >= len(lines) - 4  # reported at the end (then: Wrote, Report x2)
    assert summary["images"] == {"train": 6, "val": 2, "test": 2}
    config = json.loads((out / "config.json").read_text())
    assert config["data"]["size"] == 32 and config["data"]["channels"] == 1 and config["train"]["epochs"] == 2


def test_second_train_to_the_same_folder_makes_a_new_one(batch):
    folder, proc = batch["train_again"]
    assert proc.returncode == 0, proc.stderr
    first, second = folder / "runs" / "a", folder / "runs" / "a-2"
    assert (second / "summary.json").is_file() and (second / "checkpoints" / "best.ckpt").is_file()
    assert str(second) in proc.stdout and "holds an earlier run, left as it is" in proc.stdout
    # the first run is whole and was not touched: all its files are older than the second run's
    assert json.loads((first / "config.json").read_text())["train"]["epochs"] == 2
    assert len(pd.read_csv(first / "history.csv")) == 2
    assert json.loads((first / "summary.json").read_text())["epochs"] == 2
    newest_first = max(p.stat().st_mtime_ns for p in first.rglob("*") if p.is_file())
    oldest_second = min(p.stat().st_mtime_ns for p in second.rglob("*") if p.is_file())
    assert newest_first <= oldest_second
    assert sorted(p.name for p in (folder / "runs").iterdir()) == ["a", "a-2"]


def test_show_writes_a_picture(batch):
    folder, proc = batch["show"]
    assert proc.returncode == 0, proc.stderr
    target = folder / "pair.png"
    assert str(target) in proc.stdout
    with Image.open(target) as im:
        assert im.format == "PNG" and im.size[0] > im.size[1] > 100
    assert sorted(p.name for p in folder.iterdir()) == ["pair.png"]
    folder, proc = batch["show_kept"]  # a file already there is the user's: kept, the picture goes beside it
    assert proc.returncode == 0 and "writing to" in proc.stdout and str(folder / "mine-2.png") in proc.stdout
    assert (folder / "mine.png").read_text() == "the user's own file" and (folder / "mine-2.png").is_file()


def test_summary_of_the_notebook_model(batch):
    _, proc = batch["summary"]
    assert proc.returncode == 0, proc.stderr
    assert "Total params: 664,961" in proc.stdout
    assert "Layer (type)" in proc.stdout and "(None, 1, 128, 128)" in proc.stdout


def test_demo_runs_end_to_end(tmp_path):
    out = tmp_path / "demo"
    proc = cli("demo", "--out", out, "--epochs", "2", cwd=tmp_path, timeout=400)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    run, evaluation, predictions = out / "run", out / "run" / "eval_test", out / "predictions"
    for label, path in (("data", out / "data"), ("run", run), ("evaluation", evaluation), ("predictions", predictions)):
        assert re.search(rf"^\s+{label}\s+{re.escape(str(path))}/", proc.stdout, re.M), label
    assert "Demo finished" in proc.stdout and "Test IoU" in proc.stdout
    assert len(list((out / "data" / "images").glob("*.png"))) == 80
    for rel in ("config.json", "split.json", "history.csv", "curves.png", "summary.json",
                "checkpoints/best.ckpt", "checkpoints/last.ckpt"):
        assert (run / rel).is_file(), rel
    assert len(pd.read_csv(run / "history.csv")) == 2
    metrics = json.loads((evaluation / "metrics.json").read_text())
    split = json.loads((run / "split.json").read_text())
    assert metrics["images"] == len(split["test"]) == 16
    assert 0 <= metrics["iou"] <= 1
    masks = sorted(p for p in predictions.glob("*.png") if not p.stem.endswith("_overlay"))
    assert [p.stem for p in masks] == sorted(split["test"])
    for mask in masks:
        assert (predictions / f"{mask.stem}_overlay.png").is_file()
        with Image.open(mask) as im:
            assert im.size == (96, 96)
    assert (predictions / "coverage.csv").is_file()
    # objects: instance scores against the synthetic instance maps, and the predicted objects measured
    assert {"f1", "count_true", "count_pred"} <= set(metrics["instances"])
    quantified = json.loads((out / "objects" / "quantify.json").read_text())
    assert quantified["images"] == 16 and Path(quantified["run_dir"]) == run.resolve()
    for label, path in (("objects", out / "objects"),):
        assert re.search(rf"^\s+{label}\s+{re.escape(str(path))}/", proc.stdout, re.M), label
    page = (run / "report.html").read_text()
    for section in ("Validation (best checkpoint)", "Test set", "Objects measured"):
        assert f"<h2>{section}</h2>" in page, section
