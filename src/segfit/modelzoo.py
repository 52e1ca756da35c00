"""BioImage Model Zoo packages: ``segfit export RUN --format bioimageio --out model.zip``.

A package is a zip that Fiji (deepImageJ), ilastik, napari and ``bioimageio.core`` open: ``rdf.yaml`` (the
bioimage.io model specification 0.5, built with ``bioimageio.spec``'s own classes), the network as TorchScript
and ONNX (written by :mod:`segfit.exporter`: logits), a test input (one of the run's validation images at the
working scale) with the output the network gives it, a cover (its overlay) and a README (the training data, the
plan, the validation metrics). The description maps segfit's preprocessing onto the specification's operations
(``scale_linear`` to [0, 1], the run's mean/std as ``fixed_zero_mean_unit_variance``) and turns logits into
probabilities with its ``sigmoid`` / ``softmax``; resizing to the working scale is no operation there, so the
description states the scale. segfit's record of the run (``model.onnx.json``) is an attachment, so
``segfit predict model.zip`` runs the ONNX weights exactly like the exported run
(:func:`segfit.backends.load_package`). Nothing here reaches the network: citations are DOIs, never URLs, which
the specification would look up.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from segfit.errors import SegfitError

DEFAULT_LICENSE = "CC-BY-4.0"
TEST_SIDE = 256  # the test input's side at most (pixels at the working scale, rounded down to the stride)
COVER_HEIGHT = 256  # covers are image | overlay, 2:1, at least this high (small test inputs are enlarged)
# What a run may use -> the work to cite (by DOI only: the specification would look a URL up when validating).
CITATIONS = {
    "pytorch": ("Paszke et al.: PyTorch: an imperative style, high-performance deep learning library. NeurIPS 2019",
                "10.48550/arXiv.1912.01703"),
    "notebook": ("Long, Shelhamer, Darrell: Fully convolutional networks for semantic segmentation. CVPR 2015",
                 "10.1109/CVPR.2015.7298965"),
    "unet": ("Ronneberger, Fischer, Brox: U-Net: convolutional networks for biomedical image segmentation. MICCAI 2015",
             "10.1007/978-3-319-24574-4_28"),
    "unetplusplus": ("Zhou et al.: UNet++: a nested U-Net architecture for medical image segmentation. DLMIA 2018",
                     "10.1007/978-3-030-00889-5_1"),
    "fpn": ("Lin et al.: Feature pyramid networks for object detection. CVPR 2017", "10.1109/CVPR.2017.106"),
    "deeplabv3plus": ("Chen et al.: Encoder-decoder with atrous separable convolution for semantic image segmentation. "
                      "ECCV 2018", "10.1007/978-3-030-01234-2_49"),
    "resnet": ("He, Zhang, Ren, Sun: Deep residual learning for image recognition. CVPR 2016", "10.1109/CVPR.2016.90"),
    "adam": ("Kingma, Ba: Adam: a method for stochastic optimization. ICLR 2015", "10.48550/arXiv.1412.6980"),
    "adamw": ("Loshchilov, Hutter: Decoupled weight decay regularization. ICLR 2019", "10.48550/arXiv.1711.05101"),
    "onecycle": ("Smith, Topin: Super-convergence: very fast training of neural networks using large learning rates. "
                 "Proc. SPIE 11006, 2019", "10.1117/12.2520589"),
    "dice": ("Milletari, Navab, Ahmadi: V-Net: fully convolutional neural networks for volumetric medical image "
             "segmentation. 3DV 2016", "10.1109/3DV.2016.79"),
    "focal": ("Lin et al.: Focal loss for dense object detection. ICCV 2017", "10.1109/ICCV.2017.324"),
    "instances": ("Naylor et al.: Segmentation of nuclei in histopathology images by deep regression of the distance "
                  "map. IEEE TMI 2019", "10.1109/TMI.2018.2865709"),
    "emps": ("Yildirim, Cole: Bayesian particle instance segmentation for electron microscopy image quantification. "
             "J. Chem. Inf. Model. 2021 (the EMPS data set and the seed notebook's task)", "10.1021/acs.jcim.0c01455"),
}
NETWORK_FILES = {"torchscript": "model.pt", "onnx": "model.onnx"}  # the package's weights (records: FILE.json)
GAINS = {"uint8": 1 / 255, "uint16": 1 / 65535}  # segfit scales integer images to [0, 1] by their type's maximum


def write_package(backend, write_network, out: str | os.PathLike, variants=("identity",),
                  author: str | list[str] | None = None, license: str | None = None, warn=None) -> Path:
    """Package ``backend`` (a run, checkpoint or ensemble as :func:`segfit.backends.load_backend` loads it) as a
    bioimage.io model at ``out`` (a ``.zip``), checked by ``bioimageio.spec`` as it is written.
    ``write_network(format, path)`` writes its network (``torchscript`` or ``onnx``, logits) with segfit's record
    beside it (:mod:`segfit.exporter`); ``variants``: the test-time variants that network averages; ``warn`` takes
    what a user of the package must know (the one image type it takes when the run learned from several)."""
    import shutil
    import tempfile

    from segfit.data.preprocess import image_to_tensor
    from segfit.io import atomic_path
    from segfit.modelzoo_docs import readme

    spec = load_spec()
    authors = [author] if isinstance(author, str) else list(author or []) or [default_author()]
    license = license or DEFAULT_LICENSE
    try:
        spec.LicenseId(license)
    except ValueError:
        raise SegfitError(f"unknown license {license!r}", out, "give an SPDX identifier, e.g. CC-BY-4.0, MIT or BSD-3-Clause") from None
    config, multiple = backend.config, int(backend.multiple)
    run_dir = _run_dir(backend)
    sample, image = _sample(config, run_dir)
    image = _fit(image, multiple)
    ensemble = Path(backend.path).parent if getattr(backend, "record", None) else None
    from segfit.backends import calibration
    from segfit.objects import SEED_LEVEL

    objects = calibration(backend, "instances") or {}
    facts = {"run": run_dir, "sample": sample, "variants": list(variants), "members": len(getattr(backend, "members", [1])),
             "seed_level": objects.get("seed_level", SEED_LEVEL), "merge_level": objects.get("merge_level"),
             "min_object_area": objects.get("min_object_area", config.model.min_object_area),
             "unsure_level": objects.get("unsure_level"),
             "seed_calibrated": "seed_level" in objects, "dtype": str(_stored(image).dtype),
             "other_types": _other_types(run_dir, str(_stored(image).dtype)),
             "ensemble": ensemble, "source": f"{'ensemble' if ensemble else 'run' if run_dir else 'checkpoint'} "
                                            f"`{(ensemble or run_dir or Path(backend.path)).name}`"}
    with tempfile.TemporaryDirectory(prefix="segfit-bioimageio-") as tmp:
        folder = Path(tmp)
        networks = {fmt: write_network(fmt, folder / name) for fmt, name in NETWORK_FILES.items()}
        logits = _torchscript(networks["torchscript"], image_to_tensor(image, config.data.mean, config.data.std)[None])
        expected = _activate(logits, config).numpy().astype(np.float32)
        np.save(folder / "test_input.npy", _stored(image).transpose(2, 0, 1)[None])
        np.save(folder / "test_output.npy", expected)
        _samples(_stored(image), expected[0], folder)
        _cover(image, backend, logits, config, folder / "cover.png")
        (folder / "README.md").write_text(readme(config, multiple, _name(config), authors, _citations(config), facts))
        descr = _describe(spec, config, multiple, str(_stored(image).dtype), folder, networks, authors, license, facts)
        with atomic_path(out) as dest:
            shutil.move(str(spec.save_bioimageio_package(descr, output_path=folder / "package.zip")), dest)
    if facts["other_types"] and warn:
        warn(f"the package takes {facts['dtype']} images only (one input type, its test image's); the run also learned "
             f"from {' and '.join(facts['other_types'])} images: convert those to {facts['dtype']} before giving them to it "
             f"(Fiji: Image > Type), or predict them with segfit predict, which reads every type")
    return Path(out)


def _other_types(run_dir: Path | None, dtype: str) -> list[str]:
    """The integer image types the run's training images had besides ``dtype`` (its fingerprint's)."""
    from segfit.rundir import read_json_if_any

    seen = ((read_json_if_any(run_dir / "fingerprint.json") or {}).get("data") or {}).get("dtype") if run_dir else None
    seen = [seen] if isinstance(seen, str) else list(seen or [])
    return [t for t in seen if t != dtype and t in GAINS]


def load_spec():
    """``bioimageio.spec``'s model classes (``model.v0_5``, with ``save_bioimageio_package``), or a clear error
    when it is not installed."""
    try:
        import bioimageio.spec as bio
        from bioimageio.spec.model import v0_5
    except ImportError:
        raise SegfitError("bioimageio.spec is not installed", fix='pip install "bioimageio.spec==0.5.12.0" '
                          '(or pip install -e ".[dev]"), then export again') from None
    v0_5.save_bioimageio_package = bio.save_bioimageio_package
    return v0_5


def default_author() -> str:
    """The author when none is given: git's ``user.name``, else the login name."""
    import getpass
    import subprocess

    try:
        name = subprocess.run(["git", "config", "user.name"], capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        name = ""
    if not name:
        try:
            name = getpass.getuser()
        except (KeyError, OSError):
            name = "segfit user"
    return name.replace("/", "-")


def _run_dir(backend) -> Path | None:
    """The run folder of the (first) model: where the split, the metrics and the plan are."""
    from segfit.rundir import run_dir_of

    first = getattr(backend, "members", [backend])[0]
    return run_dir_of(Path(first.path)) if getattr(first, "path", None) else None


def _sample(config, run_dir: Path | None) -> tuple[str, np.ndarray]:
    """``(name, image)``: the run's first validation image (any image of its data when the split is gone) in the
    network's channels at the working scale, not yet normalised."""
    from segfit.data.formats import read_image, to_channels
    from segfit.data.layouts import discover
    from segfit.data.preprocess import resize_image, working_size
    from segfit.rundir import read_json_if_any

    d = config.data
    if not d.root or not Path(d.root).is_dir():
        raise SegfitError("the run's data set is not found: the package's test input is one of its validation images",
                          d.root or run_dir, "put the data set back where the run found it (config.json: data.root)")
    samples = discover(d.root, d.images, d.masks, d.mask_suffix, require_masks=False).samples
    split = read_json_if_any(run_dir / "split.json") if run_dir else None
    wanted = list((split or {}).get("val", []))
    sample = next((s for name in wanted for s in samples if s.name == name), samples[0])
    image = to_channels(read_image(sample.image, 3 if d.channels == 3 else 1), d.channels)
    return sample.name, resize_image(image, working_size(image.shape, d))


def _fit(image: np.ndarray, multiple: int) -> np.ndarray:
    """The centre of ``image`` cut to a square whose side is a multiple of the stride (at most :data:`TEST_SIDE`);
    images smaller than the stride are padded by reflection, as segfit pads them."""
    side = max(multiple, min(image.shape[0], image.shape[1], TEST_SIDE) // multiple * multiple)
    pad = [(0, max(0, side - image.shape[0])), (0, max(0, side - image.shape[1])), (0, 0)]
    if pad[0][1] or pad[1][1]:
        image = np.pad(image, pad, mode="reflect" if max(pad[0][1], pad[1][1]) < min(image.shape[:2]) else "edge")
    top, left = (image.shape[0] - side) // 2, (image.shape[1] - side) // 2
    return np.ascontiguousarray(image[top:top + side, left:left + side])


def _stored(image: np.ndarray) -> np.ndarray:
    """The test input in a data type the specification names (float images as float32)."""
    return image.astype(np.float32) if image.dtype.kind == "f" else image


def _samples(image: np.ndarray, output: np.ndarray, folder: Path) -> None:
    """The test tensors as TIFF images for people (the specification's sample tensors): the input (grey or RGB),
    the output's channels as a stack."""
    import tifffile

    rgb = image.shape[-1] == 3
    tifffile.imwrite(folder / "sample_input.tif", image if rgb else image[..., 0], photometric="rgb" if rgb else "minisblack")
    tifffile.imwrite(folder / "sample_output.tif", output if len(output) > 1 else output[0], photometric="minisblack")


def _torchscript(path: Path, x):
    """The exported TorchScript network's output for ``x`` (the expected output is the package's own network's)."""
    import warnings

    import torch

    with torch.inference_mode(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit is deprecated, but the specification's weights format
        return torch.jit.load(str(path), map_location="cpu")(x).float()


def _activate(logits, config):
    import torch

    from segfit.modelzoo_docs import activation

    kind = activation(config)
    return torch.sigmoid(logits) if kind == "sigmoid" else torch.softmax(logits, 1) if kind == "softmax" else logits


def _cover(image: np.ndarray, backend, logits, config, path: Path) -> None:
    """The test input beside its overlay (2:1), objects outlined for a model that learned instances."""
    from PIL import Image

    from segfit.predictor import Predictor
    from segfit.viz import overlay, to_rgb8

    size = image.shape[:2]
    decoded = Predictor(backend).decode([(0, logits[0])], size, size, bool(config.model.instances), False)
    classes, objects = decoded.classes, decoded.objects
    pair = np.concatenate([to_rgb8(image), overlay(image, classes, config.data.class_colors, objects=objects)], axis=1)
    factor = max(1, -(-COVER_HEIGHT // pair.shape[0]))
    Image.fromarray(pair.repeat(factor, 0).repeat(factor, 1)).save(path)


def _name(config) -> str:
    """A name the specification allows (letters, digits, ``_+- ()``; 5 to 64 characters)."""
    import re

    net = "teaching encoder-decoder" if config.model.name == "notebook" else f"{config.model.name} {config.model.encoder}"
    classes = config.data.class_names[1:] if len(config.data.class_names) > 1 else ["foreground"]
    text = f"segfit {net} ({' '.join(classes)})"
    text = re.sub(r"\s+", " ", re.sub(r"[^A-Za-z0-9_+\-() ]", "-", text)).strip()
    return text if len(text) <= 64 else text[:63].rstrip() + ")"


def _citations(config) -> list[tuple[str, str]]:
    """The works behind this run's methods: the network, the encoder, the optimiser, schedule and loss, the
    distance map of learned instances; the seed notebook's EMPS paper for its network or the EMPS data."""
    m, t = config.model, config.train
    keys = ["pytorch", m.name]
    if m.name != "notebook" and m.encoder.startswith(("resnet", "resnext")):
        keys.append("resnet")
    keys += [t.optimizer, t.scheduler] + [loss for loss in ("dice", "focal") if loss in t.loss]
    if m.instances:
        keys.append("instances")
    if m.name == "notebook" or "emps" in Path(config.data.root or ".").name.lower():
        keys.append("emps")
    return [CITATIONS[k] for k in dict.fromkeys(keys) if k in CITATIONS]


def _describe(spec, config, multiple: int, dtype: str, folder: Path, networks: dict[str, Path], authors: list[str],
              license: str, facts: dict):
    """The :class:`ModelDescr` of the package (bioimage.io model specification 0.5)."""
    import torch

    from segfit.modelzoo_docs import activation, description, input_text, loss_name, output_channels, output_text

    d, m = config.data, config.model
    size = spec.ParameterizedSize(min=multiple, step=multiple)
    image = spec.InputTensorDescr(
        id=spec.TensorId("input"), description=input_text(config, dtype, multiple)[:128],
        axes=[spec.BatchAxis(), spec.ChannelAxis(channel_names=["grey"] if d.channels == 1 else ["red", "green", "blue"]),
              spec.SpaceInputAxis(id=spec.AxisId("y"), size=size), spec.SpaceInputAxis(id=spec.AxisId("x"), size=size)],
        test_tensor=spec.FileDescr(source=folder / "test_input.npy"), data=spec.IntervalOrRatioDataDescr(type=dtype),
        sample_tensor=spec.FileDescr(source=folder / "sample_input.tif"),
        preprocessing=_preprocessing(spec, config, dtype))
    kind = activation(config)
    post = {"sigmoid": [spec.SigmoidDescr()], "softmax": [spec.SoftmaxDescr(kwargs=spec.SoftmaxKwargs(axis="channel"))],
            None: []}[kind]
    same = [spec.SpaceOutputAxis(id=spec.AxisId(a), size=spec.SizeReference(tensor_id=spec.TensorId("input"),
                                                                             axis_id=spec.AxisId(a))) for a in "yx"]
    result = spec.OutputTensorDescr(
        id=spec.TensorId("probabilities" if kind else "logits"), description=output_text(config, kind)[:128],
        axes=[spec.BatchAxis(), spec.ChannelAxis(channel_names=output_channels(config)), *same],
        test_tensor=spec.FileDescr(source=folder / "test_output.npy"),
        sample_tensor=spec.FileDescr(source=folder / "sample_output.tif"),
        data=spec.IntervalOrRatioDataDescr(type="float32", range=(0.0, 1.0) if kind else (None, None)),
        postprocessing=post)
    version = spec.Version(torch.__version__.split("+")[0])
    weights = spec.WeightsDescr(
        torchscript=spec.TorchscriptWeightsDescr(source=networks["torchscript"], pytorch_version=version),
        onnx=spec.OnnxWeightsDescr(source=networks["onnx"], opset_version=_opset(networks["onnx"]), parent="torchscript"))
    t = config.train
    training = {"training_epochs": t.epochs, "training_batch_size": t.batch_size, "initial_learning_rate": t.lr,
                "learning_rate_schedule": t.scheduler, "loss_function": loss_name(config), "optimizer": t.optimizer}
    segfit_config = {"version": _version(), "record": f"{networks['onnx'].name}.json", "channels": d.channels,
                     "size": d.size, "scale": d.scale, "mean": d.mean, "std": d.std, "multiple": multiple,
                     "class_names": list(d.class_names), "class_colors": [list(c) for c in d.class_colors],
                     "instances": bool(m.instances), "members": facts["members"], "tta": facts["variants"],
                     "test_image": facts["sample"]}
    tags = ["2d", "pytorch", "onnx", "torchscript", "semantic-segmentation", "segfit", "deepimagej", "ilastik", "fiji"]
    tags += ["instance-segmentation"] if m.instances else []
    tags += ["unet"] if "unet" in m.name else []
    tags += ["resnet"] if m.name != "notebook" and m.encoder.startswith("resnet") else []
    tags += ["electron-microscopy"] if "emps" in Path(d.root or ".").name.lower() else []
    return spec.ModelDescr(
        name=_name(config), description=description(config, facts)[:1024],
        authors=[spec.Author(name=a) for a in authors], license=spec.LicenseId(license), tags=tags,
        cite=[spec.CiteEntry(text=text, doi=spec.Doi(doi)) for text, doi in _citations(config)],
        documentation=spec.FileDescr(source=folder / "README.md"), covers=[spec.FileDescr(source=folder / "cover.png")],
        attachments=[spec.FileDescr(source=Path(f"{networks['onnx']}.json"))],
        inputs=[image], outputs=[result], weights=weights, version="0.1.0",
        config={"bioimageio": {"training": training, "architecture_type": m.name[:32]}, "segfit": segfit_config})


def _preprocessing(spec, config, dtype: str) -> list:
    """segfit's preparation as the specification's operations: to float, to [0, 1] by the type's maximum, the
    run's mean/std; float32 again at the end (else the specification casts back to the input's type)."""
    d = config.data
    ops = [spec.EnsureDtypeDescr(kwargs=spec.EnsureDtypeKwargs(dtype="float32"))]
    if dtype in GAINS:
        ops.append(spec.ScaleLinearDescr(kwargs=spec.ScaleLinearKwargs(gain=GAINS[dtype])))
    if d.mean is not None:
        mean, std = [float(v) for v in d.mean[: d.channels]], [float(v) for v in d.std[: d.channels]]
        kwargs = (spec.FixedZeroMeanUnitVarianceKwargs(mean=mean[0], std=std[0]) if d.channels == 1 else
                  spec.FixedZeroMeanUnitVarianceAlongAxisKwargs(mean=mean, std=std, axis="channel"))
        ops.append(spec.FixedZeroMeanUnitVarianceDescr(kwargs=kwargs))
    return ops + [spec.EnsureDtypeDescr(kwargs=spec.EnsureDtypeKwargs(dtype="float32"))]


def _opset(path: Path) -> int:
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    return max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))


def _version() -> str:
    import segfit

    return segfit.__version__
