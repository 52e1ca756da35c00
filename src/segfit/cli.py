"""The ``segfit`` command line: parse, build options, call the Python API.

Only the standard library is imported here, so ``segfit --help`` and argument errors answer at
once; torch, Lightning and smp are imported inside the commands that need them.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

EPILOG = "Run 'segfit COMMAND --help' for the options of a command."


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors: ``segfit: error: <what>: <how to fix>`` and exit code 2."""

    def error(self, message: str):  # type: ignore[override]
        sys.stderr.write(f"segfit: error: {message} ({self.prog}): see '{self.prog} --help'\n")
        sys.exit(2)


def _val(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--val takes a fraction or a count, not {text!r}") from None
    if value < 0 or (value >= 1 and value != int(value)):
        raise argparse.ArgumentTypeError(f"--val takes a fraction below 1 or a whole count, not {text!r}")
    return value


def _int_at_least(lowest: int):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, not {text!r}") from None
        if value < lowest:
            raise argparse.ArgumentTypeError(f"expected a number of at least {lowest}, not {text!r}")
        return value

    return parse


_positive_int, _non_negative_int = _int_at_least(1), _int_at_least(0)


def _int_list(text: str) -> list[int]:
    try:
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated whole numbers, not {text!r}") from None


def _float_list_or_auto(text: str):
    if text == "auto":
        return "auto"
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected 'auto' or comma-separated numbers, not {text!r}") from None


def _add_data_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("data")
    g.add_argument("--images", help="image folder inside DATA (default: images/ if present, else a flat folder)")
    g.add_argument("--masks", help="mask folder inside DATA (default: segmaps/, masks/, labels/ or label/)")
    g.add_argument("--mask-suffix", default="_bin", help="flat layout: masks are NAME<suffix>.png (default _bin)")
    g.add_argument("--channels", type=int, choices=(1, 3), default=3, help="1 = grayscale, 3 = RGB (default 3)")
    g.add_argument("--size", type=_positive_int, help="resize images to SIZE x SIZE (nearest for masks)")
    g.add_argument("--mask-mode", choices=("auto", "binary", "index"), default="auto",
                   help="binary: value > 0 is foreground; index: values are class ids (default: binary for 2 classes)")
    g.add_argument("-c", "--classes", type=int, default=None, help="number of classes, background included (default 2)")
    g.add_argument("--class-names", help="comma-separated class names, background first")
    g.add_argument("--palette", help="take class names and colours from a palette file (or preset: vineyard)")


def _build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="segfit", description="Train, evaluate and use semantic-segmentation models.", epilog=EPILOG)
    parser.add_argument("--version", action="version", version=f"segfit {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    p = sub.add_parser("demo", help="make a synthetic EM data set, train, evaluate and predict on it")
    p.add_argument("--out", default="segfit-demo", help="output folder (default segfit-demo)")
    p.add_argument("--epochs", type=_positive_int, default=None, help="training epochs (default: the demo recipe)")
    _add_common(p)

    p = sub.add_parser("train", help="train a model on a data set", epilog="Example: segfit train data/ --out runs/a --size 128 --channels 1")
    p.add_argument("data", nargs="?", help="data set folder")
    p.add_argument("-d", "--directory", dest="directory", help="data set folder (same as DATA)")
    p.add_argument("-o", "--out", "--output", dest="out", help="run folder (default Training_<date>)")
    p.add_argument("-n", "--name", help="run name: the run folder becomes OUT/NAME")
    _add_data_args(p)
    g = p.add_argument_group("split")
    g.add_argument("--test", type=float, default=0.2, help="held-out test fraction when DATA has no test.csv (default 0.2)")
    g.add_argument("--val", type=_val, default=0.2, help="validation fraction (< 1) or count (>= 1) of the rest (default 0.2)")
    g.add_argument("--seed", type=int, default=0, help="seed for the split and the initialisation (default 0)")
    g.add_argument("-p", "--preload", "--pré-load", "--pre-load", dest="preload", action="store_true",
                   help="keep decoded images in memory")
    g = p.add_argument_group("model")
    g.add_argument("-m", "--model", default="notebook",
                   help="notebook (the seed notebook's net), unet, unetplusplus, fpn, deeplabv3plus, ...; "
                        "a .ckpt path resumes from that checkpoint")
    g.add_argument("--encoder", default="resnet34", help="smp encoder name (default resnet34)")
    g.add_argument("--encoder-weights", help="local file of encoder weights (state dict), or 'imagenet' from the local cache")
    g.add_argument("--encoder-depth", type=int, default=5, help="encoder stages (default 5)")
    g.add_argument("--decoder-channels", type=_int_list, help="e.g. 256,128,64,32,16")
    g = p.add_argument_group("training")
    g.add_argument("-e", "--epochs", type=_positive_int, default=None, help="epochs (default 20; with --resume: the run's own)")
    g.add_argument("-bs", "--batch-size", "--batch_size", dest="batch_size", type=_positive_int, default=16,
                   help="images per batch (default 16)")
    g.add_argument("-lr", "--lr", "--learning_rate", "--learning-rate", dest="lr", type=float, default=1e-3,
                   help="learning rate (default 1e-3)")
    g.add_argument("--optimizer", choices=("adam", "adamw", "sgd"), default="adam", help="default adam")
    g.add_argument("-wd", "--weight-decay", "--weight_decay", dest="weight_decay", type=float, default=0.0)
    g.add_argument("--scheduler", choices=("none", "onecycle", "cosine"), default="none", help="default none")
    g.add_argument("--loss", default="auto", help="auto (bce for 2 classes, ce otherwise), bce, ce, dice, focal, ce+dice")
    g.add_argument("--class-weights", type=_float_list_or_auto, help="'auto' (inverse pixel frequency) or one value per class")
    g.add_argument("--augment", choices=("none", "light", "vineyard"), default="none", help="default none")
    g.add_argument("--crop", type=_positive_int, help="random training crops of CROP x CROP")
    g.add_argument("--workers", type=int, default=0, help="data loading processes (default 0)")
    g.add_argument("-s", "--save-every", "--save", dest="save_every", type=int, default=None, help="keep epoch_N.ckpt every N epochs")
    g.add_argument("-r", "--resume", nargs="?", const=True, help="continue from a checkpoint or run folder (RUN/checkpoints/last.ckpt)")
    g.add_argument("--overwrite", action="store_true", help="replace an existing run folder instead of making a new one")
    g = p.add_argument_group("hardware (passed to Lightning)")
    g.add_argument("--accelerator", default="auto", help="auto, cpu or gpu")
    g.add_argument("--devices", default="auto", help="number of devices, or auto")
    g.add_argument("--num-nodes", type=_positive_int, default=1)
    g.add_argument("--strategy", default="auto", help="auto or ddp")
    g.add_argument("--precision", default="32", choices=("32", "16-mixed", "bf16-mixed"))
    g.add_argument("--deterministic", action="store_true", help="deterministic algorithms (reproducible on CPU)")
    g = p.add_argument_group("records")
    g.add_argument("--logger", choices=("csv", "tensorboard", "none"), default=None,
                   help="Lightning logger writing to RUN/logs/ (default csv; history.csv is always written)")
    g.add_argument("--no-report", dest="report", action="store_false", default=None,
                   help="skip the validation pass and report.html after training")
    _add_common(p)

    p = sub.add_parser("check", help="validate a data set without training (exit 0: ready, 2: problems)")
    p.add_argument("data", help="data set folder")
    _add_data_args(p)
    _add_common(p)

    p = sub.add_parser("evaluate", help="metrics, per-image table, confusion matrix and a prediction grid")
    p.add_argument("run", metavar="RUN_OR_CHECKPOINT")
    p.add_argument("data", nargs="?", help="data set folder (default: the run's)")
    p.add_argument("--split", choices=("test", "val", "train", "all"), default="test")
    p.add_argument("--out", help="output folder (default RUN/eval_<split>)")
    p.add_argument("--size", type=_positive_int, help="compare at SIZE x SIZE (default: original resolution)")
    p.add_argument("--batch-size", type=_positive_int, default=8)
    p.add_argument("--seed", type=int, default=0, help="picks the images of grid.png")
    p.add_argument("--no-overlays", action="store_true", help="skip overlays/NAME.png")
    g = p.add_argument_group("objects")
    g.add_argument("--instances", action="store_true",
                   help="also match predicted objects to true ones (IoU >= 0.5): instance precision, recall, F1, "
                        "count and diameter errors (the truth's own ids when masks are instance maps)")
    g.add_argument("--split-touching", action="store_true", help="split touching predicted objects (watershed)")
    g.add_argument("--min-distance", type=_positive_int, default=5, help="pixels between object centres for --split-touching (default 5)")
    g.add_argument("--min-area", type=_non_negative_int, default=0, help="drop predicted objects smaller than this many pixels (default 0)")
    _add_common(p)

    p = sub.add_parser("predict", help="class-index masks and overlays for new images")
    p.add_argument("checkpoint", metavar="CHECKPOINT", help="checkpoint file, run folder or exported .onnx file")
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="image files or folders")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--tile", type=_positive_int, help="sliding-window tiles of TILE x TILE (default: automatic for large images)")
    p.add_argument("--overlap", type=int, default=64, help="pixels shared by neighbouring tiles (default 64)")
    p.add_argument("--auto-tile", type=float, default=4.0,
                   help="tile images larger than this many times the training size (default 4; 0: never)")
    _add_common(p)

    p = sub.add_parser("report", help="(re)build RUN/report.html: config, data, curves, metrics, galleries, environment")
    p.add_argument("run", metavar="RUN", help="run folder")
    p.add_argument("--refresh", action="store_true", help="evaluate the validation split again first (best checkpoint)")
    _add_common(p)

    p = sub.add_parser("quantify", help="count and measure the objects in class-index masks (sizes, shapes, coverage)",
                       epilog="Example: segfit quantify predictions/ --out measures/ --split-touching --pixel-size 2.5 --unit nm")
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="mask files or folders (images, with --checkpoint)")
    p.add_argument("--out", required=True, help="output folder (never an input folder)")
    p.add_argument("--checkpoint", metavar="CKPT_OR_RUN", help="predict masks from the INPUT images first (into OUT/masks/)")
    p.add_argument("--class", dest="classes", action="append", metavar="NAME_OR_ID",
                   help="class to measure, by name or id; repeat for several (default: all but background)")
    p.add_argument("--class-names", help="comma-separated class names, background first "
                                         "(default: the checkpoint's, or predictions.json beside the masks)")
    p.add_argument("--split-touching", action="store_true", help="split touching objects (distance-transform watershed)")
    p.add_argument("--min-distance", type=_positive_int, default=5, help="smallest distance between two object centres "
                                                                         "when splitting, in pixels (default 5)")
    p.add_argument("--min-area", type=_non_negative_int, default=0, help="drop objects smaller than this many pixels (default 0: keep all)")
    p.add_argument("--pixel-size", type=float, help="size of one pixel in --unit: adds area_UNIT2, *_UNIT columns")
    p.add_argument("--unit", help="unit of --pixel-size, e.g. nm or um")
    p.add_argument("--instance-maps", action="store_true",
                   help="INPUTs are instance label maps (one integer per object, like EMPS segmaps)")
    _add_common(p)

    p = sub.add_parser("convert-masks", help="turn colour-coded annotations into class-index masks (NAME_bin.png)")
    p.add_argument("src", metavar="SRC_DIR", help="folder of colour-coded masks (NAME.png)")
    p.add_argument("dst", metavar="DST_DIR", help="folder for the class-index masks")
    p.add_argument("--palette", required=True, help="palette file (YAML/JSON) or preset: vineyard")
    p.add_argument("--suffix", default="_bin", help="written files are NAME<suffix>.png (default _bin)")
    p.add_argument("--unmatched", choices=("background", "error"), help="pixels no rule matches (default: the palette's, else background)")
    p.add_argument("--dry-run", action="store_true", help="only report, write nothing")
    p.add_argument("--force", action="store_true", help="replace existing files")
    _add_common(p)

    p = sub.add_parser("export", help="export a model to ONNX or TorchScript (preprocessing recorded in FILE.json)")
    p.add_argument("checkpoint", metavar="CHECKPOINT", help="checkpoint file or run folder")
    p.add_argument("--format", choices=("onnx", "torchscript"), default="onnx")
    p.add_argument("--out", required=True, help="file to write, e.g. model.onnx")
    p.add_argument("--overwrite", action="store_true", help="replace an existing file")
    _add_common(p)

    p = sub.add_parser("show", help="an image and its mask side by side")
    p.add_argument("data", help="data set folder")
    p.add_argument("--index", type=int, default=0, help="which image (0-based, in name order)")
    p.add_argument("--out", help="PNG file to write (default NAME_show.png)")
    _add_data_args(p)
    _add_common(p)

    p = sub.add_parser("summary", help="layer table, output shapes and parameter count of a model")
    p.add_argument("--model", default="notebook")
    p.add_argument("--encoder", default="resnet34")
    p.add_argument("--encoder-depth", type=int, default=5)
    p.add_argument("--size", type=_positive_int, default=128)
    p.add_argument("--channels", type=int, choices=(1, 3), default=1)
    p.add_argument("-c", "--classes", type=int, default=2)
    _add_common(p)
    return parser


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--debug", action="store_true", help="show full tracebacks")


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("segfit")
    except Exception:
        return "unknown"


# ---------------------------------------------------------------------------------------------
# Commands


def _data_options(a: argparse.Namespace) -> dict:
    names = [n.strip() for n in a.class_names.split(",")] if a.class_names else None
    colors = None
    if a.palette:
        from segfit.data.palette import load_palette

        palette = load_palette(a.palette)
        names, colors = names or palette.names, palette.colors
    classes = a.classes or (len(names) if names else 2)
    return dict(images=a.images, masks=a.masks, mask_suffix=a.mask_suffix, channels=a.channels, size=a.size,
                mask_mode=a.mask_mode, classes=classes, class_names=names, class_colors=colors)


def cmd_train(a: argparse.Namespace) -> int:
    from segfit.errors import SegfitError
    from segfit.runs import train

    data = a.data or a.directory
    resume = a.resume
    model = a.model
    if model.endswith((".ckpt", ".pt", ".pth")) or Path(model).is_file():
        resume, model = (model if resume in (None, True) else resume), "notebook"
    if resume is True:
        raise SegfitError("--resume needs a checkpoint", fix="give --resume RUN/checkpoints/last.ckpt, or -r -m CKPT")
    out = a.out
    if a.name:
        out = str(Path(out or ".") / a.name)
    if resume is None and data is None:
        raise SegfitError("no data set given", fix="segfit train DATA --out RUN (or -d DATA)")
    options = dict(epochs=a.epochs, save_every=a.save_every, num_workers=a.workers, accelerator=a.accelerator,
                   devices=a.devices, num_nodes=a.num_nodes, strategy=a.strategy, precision=a.precision,
                   preload=a.preload or None, logger=a.logger, report=a.report)
    if resume is None:
        options.update(_data_options(a))
        options.update(test=a.test, val=a.val, seed=a.seed, crop=a.crop, model=model, encoder=a.encoder,
                       encoder_weights=a.encoder_weights, encoder_depth=a.encoder_depth,
                       decoder_channels=a.decoder_channels, batch_size=a.batch_size, lr=a.lr, optimizer=a.optimizer,
                       weight_decay=a.weight_decay, scheduler=a.scheduler, loss=a.loss, class_weights=a.class_weights,
                       augment=a.augment, deterministic=a.deterministic, preload=a.preload)
    train(data, out, resume=resume, overwrite=a.overwrite, **options)
    return 0


def cmd_check(a: argparse.Namespace) -> int:
    from segfit.data.check import check_dataset

    report = check_dataset(_data_config(a))
    print("\n".join(report.lines()))
    return 0 if report.ok else 2


def _data_config(a: argparse.Namespace):
    from segfit.config import DataConfig

    opts = _data_options(a)
    return DataConfig(root=a.data, images=opts["images"], masks=opts["masks"], mask_suffix=opts["mask_suffix"],
                      channels=opts["channels"], size=opts["size"], mask_mode=opts["mask_mode"],
                      num_classes=opts["classes"], class_names=opts["class_names"] or [],
                      class_colors=opts["class_colors"] or []).resolve()


def cmd_evaluate(a: argparse.Namespace) -> int:
    from segfit.evaluation import evaluate

    evaluate(a.run, a.data, split=a.split, out=a.out, size=a.size, batch_size=a.batch_size, seed=a.seed,
             overlays=not a.no_overlays, instances=a.instances, split_touching=a.split_touching,
             min_distance=a.min_distance, min_area=a.min_area)
    return 0


def cmd_predict(a: argparse.Namespace) -> int:
    from segfit.predict import Predictor

    predictor = Predictor.from_checkpoint(a.checkpoint, tile=a.tile, overlap=a.overlap, auto_tile=a.auto_tile)
    written = predictor.predict_files(a.inputs, a.out)
    print(f"Wrote {len(written)} masks (NAME.png, class ids), overlays (NAME_overlay.png) and coverage.csv to {a.out}/")
    return 0


def cmd_quantify(a: argparse.Namespace) -> int:
    from segfit.errors import SegfitError
    from segfit.quantify import quantify

    if a.unit and a.pixel_size is None:
        raise SegfitError("--unit needs --pixel-size", fix=f"give the size of one pixel too, e.g. --pixel-size 2.5 --unit {a.unit}")
    names = [n.strip() for n in a.class_names.split(",")] if a.class_names else None
    quantify(a.inputs, a.out, checkpoint=a.checkpoint, classes=a.classes, class_names=names,
             split_touching=a.split_touching, min_distance=a.min_distance, min_area=a.min_area,
             pixel_size=a.pixel_size, unit=a.unit or "px", instance_maps=a.instance_maps)
    return 0


def cmd_show(a: argparse.Namespace) -> int:
    from segfit.data.datamodule import load_pair
    from segfit.data.formats import discover
    from segfit.errors import SegfitError
    from segfit.viz import plot_pair

    cfg = _data_config(a)
    samples = discover(cfg.root, cfg.images, cfg.masks, cfg.mask_suffix).samples
    if not 0 <= a.index < len(samples):
        raise SegfitError(f"--index {a.index} is out of range", a.data, f"use 0 to {len(samples) - 1}")
    sample = samples[a.index]
    image, mask = load_pair(sample, cfg)
    out = Path(a.out or f"{sample.name}_show.png")
    plot_pair(image, mask, f"{sample.name} ({image.shape[1]}x{image.shape[0]})", cfg.num_classes, out)
    print(f"Wrote {out}")
    return 0


def cmd_summary(a: argparse.Namespace) -> int:
    from segfit.config import ModelConfig
    from segfit.models import create_model, summary

    cfg = ModelConfig(name=a.model, encoder=a.encoder, encoder_depth=a.encoder_depth, in_channels=a.channels,
                      num_classes=a.classes)
    print(summary(create_model(cfg), (a.channels, a.size, a.size)))
    return 0


def cmd_convert_masks(a: argparse.Namespace) -> int:
    from segfit.data.palette import convert_masks, load_palette

    palette = load_palette(a.palette)
    report = convert_masks(a.src, a.dst, palette, a.suffix, dry_run=a.dry_run, force=a.force, unmatched=a.unmatched)
    total = sum(report["pixels"].values()) or 1
    print(f"{report['files']} colour masks in {a.src}")
    for name, n in report["pixels"].items():
        print(f"  {name:<14}{n:>14,} pixels  {100 * n / total:6.2f} %")
    print(f"  {'unmatched':<14}{report['unmatched']:>14,} pixels (counted as background)")
    if a.dry_run:
        print("Dry run: nothing written.")
    else:
        print(f"Wrote {report['written']} masks NAME{a.suffix}.png to {a.dst}/")
    return 0


def cmd_export(a: argparse.Namespace) -> int:
    from segfit.export import export

    out = export(a.checkpoint, a.out, a.format, overwrite=a.overwrite)
    print(f"Wrote {out} and {out}.json (preprocessing, classes); predict with: segfit predict {out} IMAGES --out DIR")
    return 0


def cmd_report(a: argparse.Namespace) -> int:
    import json

    from segfit.errors import SegfitError
    from segfit.report import build_report, report_after_training

    run = Path(a.run)
    if not (run / "config.json").is_file():
        raise SegfitError("not a run folder (no config.json)", run, "give the folder that segfit train wrote")
    if a.refresh or not (run / "eval_val" / "metrics.json").is_file():
        if not (run / "checkpoints" / "best.ckpt").is_file():
            raise SegfitError("the run has no best checkpoint yet", run / "checkpoints", "train it first (segfit train --resume RUN)")
        size = json.loads((run / "config.json").read_text()).get("data", {}).get("size")
        print("Evaluating the best checkpoint on the validation split for the report")
        report_after_training(run, size, verbose=False)
        path = run / "report.html"
    else:
        path = build_report(run)
    print(f"Wrote {path}")
    return 0


def cmd_demo(a: argparse.Namespace) -> int:
    from segfit.demo import run_demo

    run_demo(a.out, epochs=a.epochs)
    return 0


COMMANDS = {"check": cmd_check, "convert-masks": cmd_convert_masks, "train": cmd_train, "evaluate": cmd_evaluate, "predict": cmd_predict, "quantify": cmd_quantify, "export": cmd_export, "report": cmd_report, "show": cmd_show,
            "summary": cmd_summary, "demo": cmd_demo}


def main(argv: list[str] | None = None) -> int:
    parser = _build_parser()
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help()
        return 0
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    from segfit.errors import Interrupted, SegfitError

    try:
        return COMMANDS[args.command](args)
    except Interrupted as exc:
        sys.stderr.write(f"segfit: {exc}\n")
        return 130
    except BrokenPipeError:
        return 0
    except SegfitError as exc:
        if args.debug:
            raise
        sys.stderr.write(f"segfit: error: {exc.line()}\n")
        return 2
    except KeyboardInterrupt:
        sys.stderr.write("segfit: interrupted\n")
        return 130
    except Exception as exc:  # an internal error: say so, keep the traceback behind --debug
        if args.debug:
            raise
        detail = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
        sys.stderr.write(f"segfit: error: internal error ({type(exc).__name__}: {detail}): "
                         f"rerun with --debug for the traceback and report it\n")
        return 1


if __name__ == "__main__":
    sys.exit(main())
