"""BioImage Model Zoo export: `segfit export RUN --format bioimageio` writes a package that bioimageio.spec
validates and bioimageio.core's model test passes with each weight format, without the network; `segfit predict`
runs the package like the run itself; bad packages fail with one line."""

from __future__ import annotations

import subprocess
import sys
import zipfile

import numpy as np
import pytest
import yaml
from PIL import Image

pytest.importorskip("bioimageio.core", reason="bioimageio.core is a dev dependency: pip install -e '.[dev]'")

import segfit  # noqa: E402
from segfit import cli  # noqa: E402
from segfit.errors import SegfitError  # noqa: E402

AUTHORS = ["Ada Lovelace", "Alan Turing"]


@pytest.fixture(scope="module")
def offline():
    """Every HTTP request bioimageio would make is recorded and refused: the round trip must need none."""
    import httpx

    calls = []

    def refuse(self, request, *args, **kwargs):
        calls.append(str(request.url))
        raise httpx.ConnectError("offline test", request=request)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(httpx.Client, "send", refuse)
        patch.setattr(httpx.AsyncClient, "send", refuse)
        yield calls


@pytest.fixture(scope="module")
def package(trained_run, tmp_path_factory, offline):
    """The shared tiny run exported by the command line, with two authors."""
    out = tmp_path_factory.mktemp("bioimageio") / "model.zip"
    argv = ["export", str(trained_run), "--format", "bioimageio", "--out", str(out)]
    assert cli.main(argv + [a for name in AUTHORS for a in ("--author", name)]) == 0
    return out


@pytest.fixture(scope="module")
def instance_package(particles_dir, tmp_path_factory, offline):
    """A bare checkpoint (no run folder) of a tiny U-Net that learns instances (a distance-map channel) at 0.75 x
    the pixel size with its own mean and std, untrained (training adds nothing here), exported with its
    test-time flips."""
    import torch

    from segfit.models import create_model

    config = segfit.build_config(particles_dir, model="unet", encoder="resnet18", encoder_depth=3,
                                 decoder_channels=[16, 8, 4], channels=1, instances=True, scale=0.75, mean=[0.5], std=[0.25])
    torch.manual_seed(0)
    net = create_model(config.model)
    folder = tmp_path_factory.mktemp("instances")
    torch.save({"state_dict": {f"net.{k}": v for k, v in net.state_dict().items()}, "segfit": {"config": config.to_dict()}},
               folder / "objects.ckpt")
    return folder / "objects.ckpt", segfit.export(folder / "objects.ckpt", folder / "objects.zip", "bioimageio", tta=True,
                                                  verbose=False)


def _rdf(package) -> dict:
    with zipfile.ZipFile(package) as archive:
        return yaml.safe_load(archive.read("rdf.yaml"))


def _model_test(package, weight_format: str):
    from segfit.modelzoo import load_spec

    load_spec()  # bioimageio.spec made to work with the installed pydantic, as segfit uses it
    from bioimageio.core import test_model

    return test_model(package, weight_format=weight_format)


def test_the_package_describes_the_run(package, trained_run):
    rdf = _rdf(package)
    assert rdf["type"] == "model" and rdf["format_version"].startswith("0.5")
    assert [a["name"] for a in rdf["authors"]] == AUTHORS and rdf["license"] == "CC-BY-4.0"
    assert {"semantic-segmentation", "pytorch", "2d"} <= set(rdf["tags"])
    assert all(c["doi"] for c in rdf["cite"]) and any("U-Net" in c["text"] or "convolutional" in c["text"] for c in rdf["cite"])
    [image], [output] = rdf["inputs"], rdf["outputs"]
    assert [a.get("id", a["type"]) for a in image["axes"]] == ["batch", "channel", "y", "x"]
    assert image["axes"][1]["channel_names"] == ["grey"] and image["data"]["type"] == "uint8"
    assert image["axes"][2]["size"] == {"min": 4, "step": 4}  # the notebook network's stride
    ops = [p["id"] for p in image["preprocessing"]]
    assert ops == ["ensure_dtype", "scale_linear", "ensure_dtype"]  # the run has no mean/std: [0, 1] only
    assert image["preprocessing"][1]["kwargs"]["gain"] == pytest.approx(1 / 255)
    assert output["id"] == "probabilities" and output["axes"][1]["channel_names"] == ["foreground"]
    assert output["axes"][2]["size"] == {"tensor_id": "input", "axis_id": "y"}
    assert [p["id"] for p in output["postprocessing"]] == ["sigmoid", "ensure_dtype"]
    assert set(rdf["weights"]) == {"torchscript", "onnx"} and rdf["weights"]["onnx"]["parent"] == "torchscript"
    with zipfile.ZipFile(package) as archive:
        names = set(archive.namelist())
        readme = archive.read(rdf["documentation"]["source"]).decode()
        test_input = np.load(archive.open(image["test_tensor"]["source"]))
        cover = Image.open(archive.open(rdf["covers"][0]["source"]))
        cover.load()
    assert {"model.pt", "model.onnx", "model.onnx.json"} <= names and rdf["attachments"][0]["source"] == "model.onnx.json"
    split = yaml.safe_load((trained_run / "split.json").read_text())
    assert rdf["config"]["segfit"]["test_image"] in split["val"] and test_input.shape == (1, 1, 32, 32)
    assert cover.size[0] == 2 * cover.size[1]  # the test input beside its overlay
    metrics = yaml.safe_load((trained_run / "eval_val" / "metrics.json").read_text())
    for section in ("## Training data", "## The plan", "## Validation", "Fiji", "ilastik"):
        assert section in readme
    assert f"{metrics['accuracy']:.4f}" in readme
    assert "- Image type: uint8." in readme and "gain 1/255)" in readme  # the one type it takes, and its scaling


def test_a_run_of_mixed_image_types_is_said_to_take_one(tmp_path):
    """A run that learned from 8- and 16-bit images packages one input type: the export says which, and what the
    others need (the package would read 16-bit images with the 8-bit gain)."""
    from segfit.modelzoo import _other_types

    (tmp_path / "fingerprint.json").write_text('{"data": {"dtype": ["uint16", "uint8"]}}')
    assert _other_types(tmp_path, "uint8") == ["uint16"] and _other_types(tmp_path, "uint16") == ["uint8"]
    (tmp_path / "fingerprint.json").write_text('{"data": {"dtype": "uint8"}}')
    assert _other_types(tmp_path, "uint8") == [] and _other_types(None, "uint8") == []


@pytest.mark.parametrize("weight_format", ["torchscript", "onnx"])
def test_bioimageio_model_test_passes_for_each_weight_format(package, offline, weight_format):
    summary = _model_test(package, weight_format)
    failed = [(d.name, [e.msg for e in d.errors]) for d in summary.details if d.status == "failed"]
    assert summary.status == "passed", failed
    names = [d.name for d in summary.details]
    assert f"Reproduce test outputs from test inputs ({weight_format})" in names
    assert not offline, offline


def test_segfit_predicts_with_the_package_what_it_predicts_with_the_run(package, trained_run, particles_dir, tmp_path):
    images = sorted((particles_dir / "images").glob("*.png"))[:4]
    segfit.predict(package, images, tmp_path / "package", verbose=False)
    segfit.predict(trained_run, images, tmp_path / "run", verbose=False)
    for image in images:
        a, b = (np.array(Image.open(tmp_path / d / f"{image.stem}.png")) for d in ("package", "run"))
        assert np.array_equal(a, b), image.name
    import torch

    x = torch.rand(2, 1, 36, 44)  # not a multiple of the stride: padded as the run pads
    run, exported = (segfit.Predictor.from_checkpoint(p).backend for p in (trained_run, package))
    torch.testing.assert_close(exported.logits(x), run.logits(x), atol=1e-4, rtol=1e-4)
    assert exported.path == package


def test_a_model_that_learned_instances_packages_its_distance_map(instance_package, particles_dir, tmp_path, offline):
    checkpoint, package = instance_package
    rdf = _rdf(package)
    [image], [output] = rdf["inputs"], rdf["outputs"]
    assert image["axes"][2]["size"] == {"min": 8, "step": 8} and "0.75" in rdf["description"]
    assert [p["id"] for p in image["preprocessing"]][1:3] == ["scale_linear", "fixed_zero_mean_unit_variance"]
    assert image["preprocessing"][2]["kwargs"] == {"mean": 0.5, "std": 0.25}
    assert output["axes"][1]["channel_names"] == ["foreground", "distance"]
    assert [p["id"] for p in output["postprocessing"]] == ["sigmoid", "ensure_dtype"]
    assert rdf["config"]["segfit"]["tta"] == ["identity", "hflip"] and "instance-segmentation" in rdf["tags"]
    import zipfile

    with zipfile.ZipFile(package) as archive:  # the README states the seed level segfit predicts with (no calibration here)
        assert "cores where it exceeds 0.5 over the class map" in archive.read("README.md").decode()
    # TorchScript: the traced U-Net at the test's other sizes too; the ONNX weights are what segfit predicts with below.
    summary = _model_test(package, "torchscript")
    assert summary.status == "passed", [(d.name, [e.msg for e in d.errors]) for d in summary.details if d.errors]
    images = sorted((particles_dir / "images").glob("*.png"))[:3]
    segfit.predict(package, images, tmp_path / "package", verbose=False)
    segfit.predict(checkpoint, images, tmp_path / "run", tta=True, verbose=False)
    for image in images:
        for suffix in ("", "_instances"):
            a, b = (np.array(Image.open(tmp_path / d / f"{image.stem}{suffix}.png")) for d in ("package", "run"))
            assert np.array_equal(a, b), (image.name, suffix)
    assert not offline, offline


def _user_error(capsys, argv: list[str], *words: str) -> str:
    """``segfit ARGV`` exits 2 with one line naming what, the file and the fix."""
    assert cli.main(argv) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("segfit: error: "), lines
    for word in words:
        assert word in lines[0], (word, lines[0])
    return lines[0]


def test_bad_packages_and_options_fail_with_one_line(package, trained_run, particles_dir, tmp_path, capsys):
    image = str(sorted((particles_dir / "images").glob("*.png"))[0])
    junk = tmp_path / "junk.zip"
    junk.write_text("not a zip")
    _user_error(capsys, ["predict", str(junk), image, "--out", str(tmp_path / "p1")], "junk.zip", "segfit export --format bioimageio")
    other = tmp_path / "other.zip"
    with zipfile.ZipFile(other, "w") as archive:
        archive.writestr("notes.txt", "hello")
    _user_error(capsys, ["predict", str(other), image, "--out", str(tmp_path / "p2")], "no rdf.yaml", "other.zip")
    foreign = tmp_path / "foreign.zip"  # a valid package without segfit's record: other tools run it
    with zipfile.ZipFile(package) as src, zipfile.ZipFile(foreign, "w") as dst:
        for name in src.namelist():
            if name != "model.onnx.json":
                dst.writestr(name, src.read(name))
    _user_error(capsys, ["predict", str(foreign), image, "--out", str(tmp_path / "p3")], "segfit's record", "bioimageio.core")
    run = str(trained_run)
    _user_error(capsys, ["export", run, "--format", "bioimageio", "--out", str(tmp_path / "m.onnx")], ".zip")
    _user_error(capsys, ["export", run, "--out", str(tmp_path / "m.onnx"), "--author", "X"], "--format bioimageio")
    _user_error(capsys, ["export", str(package), "--format", "bioimageio", "--out", str(tmp_path / "again.zip")],
                "already an exported model")
    with pytest.raises(SegfitError, match="unknown license"):
        segfit.export(trained_run, tmp_path / "l.zip", "bioimageio", license="Beerware-ish", verbose=False)
    assert not (tmp_path / "l.zip").exists()


def test_export_help_imports_neither_torch_nor_bioimageio():
    code = ("import sys\nfrom segfit import cli\ntry:\n    cli.main(['export', '--help'])\nexcept SystemExit:\n    pass\n"
            "print([m for m in ('torch', 'bioimageio', 'bioimageio.spec') if m in sys.modules])")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.stdout.strip().splitlines()[-1] == "[]", proc.stdout + proc.stderr
    assert "--author" in proc.stdout and "bioimageio" in proc.stdout
