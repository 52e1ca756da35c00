"""The ``segfit`` command line: each command is a function of the Python API with the same parameter names.

Only light modules are imported here (the factories' name tables, the config dataclasses), so
``segfit --help`` and argument errors answer at once; torch, Lightning and smp are imported by the
commands that need them. Options the user does not type are not passed on (``argparse.SUPPRESS``):
the defaults live in :mod:`segfit.config` and in the API functions' signatures, and ``config.json``
records which options the user set.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from pathlib import Path

from segfit import argtypes
from segfit.config import INFERENCE_PRECISIONS

EPILOG = "Run 'segfit COMMAND --help' for the options of a command."


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors: ``segfit: error: <what>: <how to fix>`` and exit code 2."""

    def error(self, message: str):  # type: ignore[override]
        sys.stderr.write(f"segfit: error: {message} ({self.prog}): see '{self.prog} --help'\n")
        sys.exit(2)


def _default(option: str):
    """The default of a training option: its config dataclass field (the only home of defaults)."""
    from segfit.config import RunConfig
    from segfit.options import fields

    section, name = fields()[option]
    return getattr(getattr(RunConfig(), section), name)


def _h(text: str, option: str, planned: bool = False) -> str:
    from segfit.plans import PLANNED

    if planned and option in PLANNED:  # what a plain `segfit train DATA` gets comes from the plan
        return f"{text} (default: planned; {_default(option)} with --no-plan)"
    return f"{text} (default {_default(option)})"


def _names(table) -> str:
    return ", ".join(table)


def _add_data_args(p: argparse.ArgumentParser, planned: bool = False) -> None:
    g = p.add_argument_group("data")
    g.add_argument("--images", help="image folder inside DATA (default: images/ if present, else a flat folder)")
    g.add_argument("--masks", help="mask folder inside DATA (default: found: segmaps/, masks/, labels/, gt/, "
                                    "annotations/ ... or IMAGES_masks/ beside the images)")
    g.add_argument("--mask-suffix", help=_h("masks are NAME<suffix>.png (tried first; _mask, _label, _gt, ... next)", "mask_suffix", planned))
    g.add_argument("--channels", type=int, choices=(1, 3), help=_h("1 = grayscale, 3 = RGB", "channels", planned))
    g.add_argument("--size", type=argtypes.positive_int, help="resize images to SIZE x SIZE (nearest for masks)")
    g.add_argument("--mask-mode", choices=("auto", "binary", "index"),
                   help="binary: value > 0 is foreground; index: values are class ids (default: binary for 2 classes)")
    g.add_argument("-c", "--classes", type=argtypes.classes, help=_h("number of classes, background included", "classes", planned))
    g.add_argument("--class-names", help="comma-separated class names, background first")
    g.add_argument("--class-values", help="class masks storing class i as the i-th of these values, e.g. 0,128,255 "
                                          "(default: detected; values 0..N-1 are the classes)")
    g.add_argument("--palette", help="take class names and colours from a palette file (or preset: vineyard)")
    g.add_argument("--ignore-value", type=argtypes.mask_value_or_none,
                   help="the mask value of unlabelled pixels, e.g. 255 (Pascal VOC's object borders): no loss or metric "
                        "counts them (default: planned, 255 where class masks mark a few pixels so); 'none': a class")


def _add_train(sub) -> None:
    from segfit.data.transforms import TRANSFORMS
    from segfit.losses import DESCRIPTION
    from segfit.models import MODELS
    from segfit.optim import OPTIMIZERS, SCHEDULERS
    from segfit.trainer import LOGGERS

    p = _command(sub, "train", "train a model on a data set",
                 "Example: segfit train data/ --out runs/a --size 128 --channels 1")
    p.add_argument("data", nargs="?", help="data set folder")
    p.add_argument("-d", "--directory", help="data set folder (same as DATA)")
    p.add_argument("-o", "--out", "--output", dest="out", help="run folder (default Training_<date>)")
    p.add_argument("-n", "--name", help="run name: the run folder becomes OUT/NAME")
    _add_plan_args(p)
    _add_data_args(p, planned=True)
    g = p.add_argument_group("split")
    g.add_argument("--test", type=argtypes.fraction, help=_h("held-out test fraction when DATA has no test.csv", "test", True))
    g.add_argument("--val", type=argtypes.val, help=_h("validation fraction (< 1) or count (>= 1) of the rest", "val", True))
    g.add_argument("--seed", type=int, help=_h("seed for the split and the initialisation", "seed", True))
    g.add_argument("-p", "--preload", "--pré-load", "--pre-load", dest="preload", action="store_const", const=True,
                   help="keep decoded images in memory (default: planned, when memory allows)")
    g.add_argument("--no-preload", dest="preload", action="store_const", const=False,
                   help="decode the images again at every epoch (less memory)")
    g = p.add_argument_group("model")
    g.add_argument("-m", "--model", help=f"{_names(MODELS)}; a .ckpt path resumes from that checkpoint "
                                         f"(default: planned, an smp U-Net; {_default('model')} with --no-plan: the seed "
                                         "notebook's network)")
    g.add_argument("--encoder", help=_h("smp encoder name", "encoder", True))
    g.add_argument("--encoder-weights", help="local file of encoder weights (state dict), or 'imagenet' from the local cache")
    g.add_argument("--encoder-depth", type=argtypes.positive_int, help=_h("encoder stages", "encoder_depth", True))
    g.add_argument("--decoder-channels", type=argtypes.int_list, help="e.g. 256,128,64,32,16")
    g.add_argument("--instances", action=argparse.BooleanOptionalAction,
                   help="learn where one object ends and the next begins (a distance map beside the classes; "
                        "default: planned, yes for instance label maps whose objects touch)")
    g.add_argument("--instance-radius", type=argtypes.positive_float,
                   help="pixels: deeper parts of an object are a plateau of its distance map (default: planned)")
    g.add_argument("--min-object-area", type=argtypes.non_negative_int,
                   help="predicted objects smaller than this many pixels are fragments (default: planned)")
    g = p.add_argument_group("training")
    g.add_argument("-e", "--epochs", type=argtypes.positive_int, help=_h("epochs; with --resume: the run's own", "epochs", True))
    g.add_argument("-bs", "--batch-size", "--batch_size", dest="batch_size", type=argtypes.positive_int,
                   help=_h("images per batch", "batch_size", True))
    g.add_argument("-lr", "--lr", "--learning_rate", "--learning-rate", dest="lr", type=argtypes.positive_float, help=_h("learning rate", "lr", True))
    g.add_argument("--optimizer", choices=tuple(OPTIMIZERS), help=_h(_names(OPTIMIZERS), "optimizer", True))
    g.add_argument("-wd", "--weight-decay", "--weight_decay", dest="weight_decay", type=argtypes.non_negative_float,
                   help=_h("weight decay", "weight_decay", True))
    g.add_argument("--scheduler", choices=tuple(SCHEDULERS), help=_h(_names(SCHEDULERS), "scheduler", True))
    g.add_argument("--loss", help=_h(DESCRIPTION, "loss", True))
    g.add_argument("--class-weights", type=argtypes.float_list_or_auto, help="'auto' (inverse pixel frequency; planned only for a class under 2 %% of the pixels, the default for more than 2 classes with --no-plan), 'none', or one value per class")
    g.add_argument("--head-prior", choices=["auto", "none"],
                   help="'auto': the class logits start at the training split's class pixel fractions (planned); 'none': at zero")
    g.add_argument("--augment", choices=tuple(TRANSFORMS), help=_h(_names(TRANSFORMS), "augment", True))
    g.add_argument("--crop", type=argtypes.positive_int, help="random training crops of CROP x CROP")
    g.add_argument("--scale", type=argtypes.scale, help="work at this fraction of the images' size, e.g. 0.5 (default: planned)")
    g.add_argument("--mean", type=argtypes.float_list, help="per-channel normalisation mean of [0, 1] pixels (default: planned)")
    g.add_argument("--std", type=argtypes.float_list, help="per-channel standard deviation (default: planned)")
    g.add_argument("--repeats", type=argtypes.positive_int,
                   help="each epoch goes over the training images this many times, with new crops and augmentations "
                        "(default: planned: enough for 25 steps an epoch)")
    g.add_argument("--workers", type=argtypes.non_negative_int, help=_h("data loading processes", "workers", True))
    g.add_argument("-s", "--save-every", "--save_every", "--save", dest="save_every", type=argtypes.non_negative_int, help="keep epoch_N.ckpt every N epochs")
    g.add_argument("--folds", type=argtypes.positive_int,
                   help="K-fold cross-validation: one run per fold in RUN/fold_i/ and their ensemble (RUN/ensemble.json, "
                        "cv_metrics.json); the test split stays untouched and --time covers all folds (default 1)")
    g.add_argument("-r", "--resume", nargs="?", const=True, help="continue from a checkpoint or run folder (RUN/checkpoints/last.ckpt)")
    g.add_argument("--overwrite", action="store_true", help="replace an existing run folder instead of making a new one")
    g = p.add_argument_group("hardware (passed to Lightning)")
    g.add_argument("--accelerator", help=_h("auto, cpu or gpu", "accelerator", True))
    g.add_argument("--devices", help=_h("number of devices, or auto", "devices", True))
    g.add_argument("--num-nodes", type=argtypes.positive_int, help=_h("machines", "num_nodes", True))
    g.add_argument("--strategy", help=_h("auto or ddp", "strategy", True))
    g.add_argument("--precision", choices=("auto", "32", "16-mixed", "bf16-mixed"),
                   help=_h("numeric precision; auto: bf16-mixed where the device has native bf16, else 32", "precision", True))
    g.add_argument("--deterministic", action="store_true", help="deterministic algorithms (reproducible on CPU)")
    g = p.add_argument_group("records")
    g.add_argument("--logger", choices=tuple(LOGGERS),
                   help=_h("Lightning logger writing to RUN/logs/; history.csv is always written", "logger", True))
    g.add_argument("--no-report", dest="report", action="store_false",
                   help="skip the validation pass and report.html after training")


def _add_plan_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("plan")
    g.add_argument("-t", "--time", type=argtypes.duration, help="time budget: 90s, 10m, 1h or seconds (default 10m unless --epochs is given); "
                                        "the plan sizes the network and the epochs to finish within it")
    g.add_argument("--plan", action=argparse.BooleanOptionalAction,
                   help="fingerprint the data and the machine and plan what you do not give (default: yes, except for "
                        "--model notebook, the teaching network with its own flags)")


def _add_inference(sub) -> None:
    p = _command(sub, "evaluate", "metrics, per-image table, confusion matrix and a prediction grid")
    p.add_argument("run", metavar="RUN_OR_CHECKPOINT", help="run folder, ensemble folder or .ckpt file")
    p.add_argument("data", nargs="?", help="data set folder (default: the run's)")
    p.add_argument("--split", choices=("test", "val", "train", "all"), help="default test")
    p.add_argument("--out", help="output folder (default RUN/eval_<split>)")
    p.add_argument("--size", type=argtypes.positive_int, help="compare at SIZE x SIZE (default: original resolution)")
    p.add_argument("--batch-size", type=argtypes.positive_int, help="default 8")
    p.add_argument("--seed", type=int, help="picks the images of grid.png")
    p.add_argument("--no-overlays", dest="overlays", action="store_false", help="skip overlays/NAME.png")
    p.add_argument("--tta", action=argparse.BooleanOptionalAction, help="test-time augmentation: average the label-preserving flips and rotations (default: as the run's plan says)")
    _add_precision(p)
    g = p.add_argument_group("objects")
    g.add_argument("--instances", action="store_true",
                   help="also match predicted objects to true ones (IoU >= 0.5): instance precision, recall, F1, "
                        "AP, count and diameter errors (the truth's own ids when masks are instance maps; the "
                        "model's own instances when it learned them)")
    _add_object_args(g, "predicted objects (models without instances)")
    g.add_argument("--pixel-size", type=argtypes.positive_float, help="size of one pixel in --unit: diameters also in that unit")
    g.add_argument("--unit", help="unit of --pixel-size, e.g. nm or um")

    p = _command(sub, "predict", "class-index masks and overlays for new images")
    p.add_argument("checkpoint", metavar="CHECKPOINT", help="checkpoint file, run folder, ensemble folder (--folds), exported "
                                                            ".onnx file or bioimage.io package (.zip) from segfit export")
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="image files or folders")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--tile", type=argtypes.positive_int, help="sliding-window tiles of TILE x TILE (default: automatic for large images)")
    p.add_argument("--overlap", type=argtypes.non_negative_int, help="pixels shared by neighbouring tiles (default 64)")
    p.add_argument("--auto-tile", type=argtypes.non_negative_float, help="tile images larger than this many times the training size (default 4; 0: never)")
    p.add_argument("--instances", action=argparse.BooleanOptionalAction,
                   help="write NAME_instances.png (16-bit, one integer per object) and outline objects on the overlay "
                        "(default: when the model learned instances; --instances for another model: the connected "
                        "parts of each class)")
    p.add_argument("--tta", action=argparse.BooleanOptionalAction, help="test-time augmentation: average the flips and "
                   "90-degree rotations that keep this data's labels (default: as the run's plan says; cheap at a small working scale)")
    _add_precision(p)
    p.add_argument("--uncertainty", action="store_true",
                   help="write NAME_uncertainty.png (predictive entropy, 0-255) and per-image uncertainty and review "
                        "flags in predictions.json")

    p = _command(sub, "quantify", "count and measure the objects in class-index masks (sizes, shapes, coverage)",
                 "Example: segfit quantify predictions/ --out measures/ --split-touching --pixel-size 2.5 --unit nm")
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="mask files or folders (images, with --checkpoint)")
    p.add_argument("--out", required=True, help="output folder (never an input folder)")
    p.add_argument("--checkpoint", metavar="CKPT_OR_RUN", help="predict masks from the INPUT images first (into OUT/masks/); "
                                                              "a run, checkpoint or ensemble folder")
    p.add_argument("--tta", action=argparse.BooleanOptionalAction, help="with --checkpoint: average the label-preserving flips and rotations (default: the run's plan)")
    _add_precision(p)
    p.add_argument("--class", dest="classes", action="append", metavar="NAME_OR_ID",
                   help="class to measure, by name or id; repeat for several (default: all but background)")
    p.add_argument("--class-names", help="comma-separated class names, background first "
                                         "(default: the checkpoint's, or predictions.json beside the masks)")
    _add_object_args(p, "objects")
    p.add_argument("--pixel-size", type=argtypes.positive_float, help="size of one pixel in --unit: adds area_UNIT2, *_UNIT columns")
    p.add_argument("--unit", help="unit of --pixel-size, e.g. nm or um")
    p.add_argument("--instance-maps", action="store_true",
                   help="INPUTs are instance label maps (one integer per object, like EMPS segmaps)")


def _add_precision(p) -> None:
    p.add_argument("--precision", choices=INFERENCE_PRECISIONS, help="what the network computes in; auto (default): bf16 where "
                   "the model trained bf16-mixed and the device has native bf16, else 32")


def _add_object_args(g, what: str) -> None:
    g.add_argument("--split-touching", action="store_true", help=f"split touching {what} (distance-transform watershed)")
    g.add_argument("--min-distance", type=argtypes.positive_int,
                   help="smallest distance between two object centres when splitting, in pixels (default 5)")
    g.add_argument("--min-area", type=argtypes.non_negative_int, help=f"drop {what} smaller than this many pixels (default: a model's fragment floor, min_object_area, "
                        "as calibrated on its validation images or planned, also for masks segfit predict wrote; 0 for other masks)")


PLAN_FLAGS = ("model", "encoder", "encoder_depth", "decoder_channels", "instances", "epochs", "batch_size", "lr", "loss",
              "augment", "crop", "scale", "precision", "val", "test")


def _add_tools(sub) -> None:
    from segfit.exporter import FORMATS

    p = _command(sub, "check", "validate a data set without training (exit 0: ready, 2: problems)")
    p.add_argument("data", help="data set folder")
    _add_data_args(p)

    p = _command(sub, "plan", "fingerprint a data set and this machine and show the training plan, without training",
                 "Example: segfit plan data/ --time 10m --out plan.json")
    p.add_argument("data", help="data set folder")
    p.add_argument("-t", "--time", type=argtypes.duration, help="time budget: 90s, 10m, 1h or seconds (default 10m)")
    p.add_argument("--out", help="write the plan and the fingerprint to this JSON file")
    _add_data_args(p)
    g = p.add_argument_group("what you fix, as for train (the plan fills the rest)")
    for action in sub.choices["train"]._actions:  # the same flags, defined once (train's)
        if action.dest in PLAN_FLAGS:
            g._add_action(action)

    p = _command(sub, "report", "(re)build RUN/report.html: config, data, curves, metrics, galleries, environment")
    p.add_argument("run", metavar="RUN", help="run folder")
    p.add_argument("--refresh", action="store_true", help="evaluate the validation split again first (best checkpoint)")

    p = _command(sub, "convert-masks", "turn colour-coded annotations into class-index masks (NAME_bin.png)")
    p.add_argument("src", metavar="SRC_DIR", help="folder of colour-coded masks (NAME.png)")
    p.add_argument("dst", metavar="DST_DIR", help="folder for the class-index masks")
    p.add_argument("--palette", required=True, help="palette file (YAML/JSON) or preset: vineyard")
    p.add_argument("--suffix", help="written files are NAME<suffix>.png (default _bin)")
    p.add_argument("--unmatched", choices=("background", "error"), help="pixels no rule matches (default: the palette's, else background)")
    p.add_argument("--dry-run", action="store_true", help="only report, write nothing")
    p.add_argument("--force", action="store_true", help="replace existing files")

    p = _command(sub, "export", "export a model to ONNX, TorchScript (preprocessing recorded in FILE.json) or a "
                                "BioImage Model Zoo package (Fiji/deepImageJ, ilastik, napari)",
                 "Example: segfit export runs/a --format bioimageio --out model.zip --author 'Ada Lovelace'")
    p.add_argument("checkpoint", metavar="CHECKPOINT", help="checkpoint file, run folder or ensemble folder (one averaged graph)")
    p.add_argument("--tta", action=argparse.BooleanOptionalAction, help="include the test-time flips and rotations in the graph (default: the run's plan)")
    p.add_argument("--format", choices=FORMATS, help=f"{', '.join(FORMATS)} (default {FORMATS[0]})")
    p.add_argument("--out", required=True, help="file to write, e.g. model.onnx, or model.zip for bioimageio")
    p.add_argument("--overwrite", action="store_true", help="replace an existing file")
    g = p.add_argument_group("bioimageio")
    g.add_argument("--author", action="append", help="an author of the package; repeat for several "
                                                     "(default: git's user.name, else your login name)")
    g.add_argument("--license", help="SPDX license identifier of the package (default CC-BY-4.0)")

    p = _command(sub, "show", "an image and its mask side by side")
    p.add_argument("data", help="data set folder")
    p.add_argument("--index", type=argtypes.non_negative_int, help="which image (0-based, in name order; default 0)")
    p.add_argument("--out", help="PNG file to write (default NAME_show.png)")
    _add_data_args(p)

    p = _command(sub, "summary", "layer table, output shapes and parameter count of a model")
    p.add_argument("--model", help=_h("network", "model"))
    p.add_argument("--encoder", help=_h("smp encoder", "encoder"))
    p.add_argument("--encoder-depth", type=argtypes.positive_int, help=_h("encoder stages", "encoder_depth"))
    p.add_argument("--decoder-channels", type=argtypes.int_list, help="U-Net decoder widths, one per encoder stage, e.g. 64,32,16")
    p.add_argument("--size", type=argtypes.positive_int, help="input size (default 128)")
    p.add_argument("--channels", type=int, choices=(1, 3), help=_h("1 = grayscale, 3 = RGB", "channels"))
    p.add_argument("-c", "--classes", type=argtypes.classes, help=_h("classes, background included", "classes"))

    p = _command(sub, "demo", "make a synthetic EM data set, train, evaluate and predict on it")
    p.add_argument("--out", help="output folder (default segfit-demo)")
    p.add_argument("--epochs", type=argtypes.positive_int, help="training epochs (default: the demo recipe)")


def _command(sub, name: str, help: str, epilog: str | None = None) -> argparse.ArgumentParser:
    p = sub.add_parser(name, help=help, epilog=epilog, argument_default=argparse.SUPPRESS)
    p.add_argument("--debug", action="store_true", help="show full tracebacks")
    return p


def _build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="segfit", description="Train, evaluate and use semantic-segmentation models.", epilog=EPILOG)
    parser.add_argument("--version", action="version", version=f"segfit {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    _add_train(sub)
    _add_inference(sub)
    _add_tools(sub)
    return parser


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("segfit")
    except Exception:
        return "unknown"


# ---------------------------------------------------------------------------------------------
# Commands: the API function each one calls, with the options the user typed.

API = {"train": ("segfit.runs", "train"), "check": ("segfit.data.check", "check"), "plan": ("segfit.planning", "plan"),
       "evaluate": ("segfit.evaluation", "evaluate"), "predict": ("segfit.predictor", "predict"),
       "quantify": ("segfit.quantification", "quantify"), "report": ("segfit.runs", "report"),
       "convert-masks": ("segfit.data.palette", "convert_masks"), "export": ("segfit.exporter", "export"),
       "show": ("segfit.data.show", "show"), "summary": ("segfit.models", "summary"), "demo": ("segfit.demo", "run_demo")}


def _train_options(opts: dict) -> dict:
    """``train``'s command-line spellings: ``-d DATA``, and ``-m CKPT`` (the seed trainer's resume)."""
    from segfit.errors import SegfitError

    directory = opts.pop("directory", None)
    opts.setdefault("data", directory)
    model = opts.get("model")
    if model is not None and (model.endswith((".ckpt", ".pt", ".pth")) or Path(model).is_file()):
        del opts["model"]
        if opts.get("resume") in (None, True):
            opts["resume"] = model
    if opts.get("resume") is True:
        raise SegfitError("--resume needs a checkpoint", fix="give --resume RUN/checkpoints/last.ckpt, or -r -m CKPT")
    if opts.get("resume") is None and opts["data"] is None:
        raise SegfitError("no data set given", fix="segfit train DATA --out RUN (or -d DATA)")
    return opts


def run_command(command: str, opts: dict) -> int:
    if command == "train":
        opts = _train_options(opts)
    argtypes.check_paths(command, opts)
    if command == "convert-masks":
        opts["verbose"] = True
    module, name = API[command]
    result = getattr(importlib.import_module(module), name)(**opts)
    return 2 if command == "check" and not result.ok else 0


def main(argv: list[str] | None = None) -> int:
    parser = _build_parser()
    args, extra = parser.parse_known_args(argtypes.joined_negatives(sys.argv[1:] if argv is None else [str(a) for a in argv]))
    if extra:  # said by the command's own parser: its --help lists what it takes
        commands = parser._subparsers._group_actions[0].choices if args.command else {}
        commands.get(args.command, parser).error(f"unrecognized arguments: {' '.join(extra)}")
    if not args.command:
        parser.print_help()
        return 0
    opts = vars(args)
    command, debug = opts.pop("command"), opts.pop("debug", False)
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    from segfit.errors import Interrupted, SegfitError, from_os_error

    try:
        return run_command(command, opts)
    except Interrupted as exc:
        sys.stderr.write(f"segfit: {exc}\n")
        return exc.code
    except BrokenPipeError:
        return 0
    except SegfitError as exc:
        if debug:
            raise
        sys.stderr.write(f"segfit: error: {exc.line()}\n")
        return 2
    except KeyboardInterrupt:
        sys.stderr.write("segfit: interrupted\n")
        return 130
    except Exception as exc:  # an internal error: say so, keep the traceback behind --debug
        if debug:
            raise
        if (user_error := from_os_error(exc)) is not None:
            sys.stderr.write(f"segfit: error: {user_error.line()}\n")
            return 2
        detail = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
        sys.stderr.write(f"segfit: error: internal error ({type(exc).__name__}: {detail}): "
                         f"rerun with --debug for the traceback and report it\n")
        return 1


def entry() -> int:
    """The ``segfit`` command: :func:`main`, then a quick exit. Freezing the objects left (torch, Lightning,
    a data set in memory) spares the interpreter's final garbage collection: 2-3 s after every command that
    trained or predicted, on 2 cores."""
    import gc

    code = main()
    gc.freeze()
    return code


if __name__ == "__main__":
    sys.exit(entry())
