"""Value types of the command line's options: each parses one argument or raises argparse's type
error, which the parser shows as a one-line message; and the checks of the paths a command is given,
made before its heavy imports."""

from __future__ import annotations

import argparse
import os


def val(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--val takes a fraction or a count, not {text!r}") from None
    if value < 0 or (value >= 1 and value != int(value)):
        raise argparse.ArgumentTypeError(f"--val takes a fraction below 1 or a whole count, not {text!r}")
    return value


def int_at_least(lowest: int, why: str = ""):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, not {text!r}") from None
        if value < lowest:
            raise argparse.ArgumentTypeError(f"expected a number of at least {lowest}, not {text!r}{why}")
        return value

    return parse


positive_int, non_negative_int = int_at_least(1), int_at_least(0)
classes = int_at_least(2, " (the background counts as a class: 2 for foreground/background)")


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, not {text!r}") from None


def positive_float(text: str) -> float:
    value = _number(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, not {text!r}")
    return value


def non_negative_float(text: str) -> float:
    value = _number(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"expected a number of at least 0, not {text!r}")
    return value


def fraction(text: str) -> float:
    """A share in [0, 1): ``--test 0.2``."""
    value = _number(text)
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"expected a fraction from 0 to below 1, e.g. 0.2, not {text!r}")
    return value


def duration(text: str) -> str:
    """A time budget (``90s``, ``10m``, ``1h``), checked here and passed on as typed (``config.json`` keeps it)."""
    from segfit.budget import parse_duration
    from segfit.errors import SegfitError

    try:
        parse_duration(text)
    except SegfitError as exc:
        raise argparse.ArgumentTypeError(exc.what) from None
    return text


def int_list(text: str) -> list[int]:
    try:
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated whole numbers, not {text!r}") from None


def float_list(text: str) -> list[float]:
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, not {text!r}") from None


def scale(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"expected a fraction of the images' size in (0, 1], not {text!r}")
    return value


def float_list_or_auto(text: str):
    if text.strip().lower() in ("auto", "none"):
        return text.strip().lower()
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected 'auto', 'none' or comma-separated numbers, not {text!r}") from None


def mask_value_or_none(text: str) -> int | str:
    """A mask value (``--ignore-value 255``), or ``none``."""
    if text.strip().lower() == "none":
        return "none"
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"expected a mask value from 1 to 65535 (0 is the background), or 'none', not {text!r}")
    return value


# The paths each command reads, checked before the command's (heavy) imports: a typo answers at once.
PATHS = {"train": (("data", "data folder"), ("resume", "checkpoint or run folder")),
         "check": (("data", "data folder"),), "plan": (("data", "data folder"),), "show": (("data", "data folder"),),
         "evaluate": (("run", "checkpoint or run folder"), ("data", "data folder")),
         "predict": (("checkpoint", "checkpoint or run folder"), ("inputs", "input")),
         "quantify": (("inputs", "input"), ("checkpoint", "checkpoint or run folder")),
         "export": (("checkpoint", "checkpoint or run folder"),), "convert-masks": (("src", "mask folder"),)}


def check_paths(command: str, opts: dict) -> None:
    """Paths given quoted keep a ``~`` the shell did not expand: expand it; then each input must exist and
    a folder to write must not be a file."""
    from segfit.errors import SegfitError, require

    for key, value in opts.items():
        if isinstance(value, str) and value.startswith("~"):
            opts[key] = os.path.expanduser(value)
        elif isinstance(value, list) and all(isinstance(v, str) for v in value):
            opts[key] = [os.path.expanduser(v) for v in value]
    for key, what in PATHS.get(command, ()):
        value = opts.get(key)
        for path in value if isinstance(value, list) else [value]:
            if isinstance(path, (str, os.PathLike)):
                require(path, what)
    if command in ("train", "evaluate", "predict", "quantify", "demo") and opts.get("out") and os.path.isfile(opts["out"]):
        raise SegfitError("output path is a file", opts["out"], "give a folder name with --out")


def joined_negatives(argv: list[str]) -> list[str]:
    """``--time -5m`` as ``--time=-5m``: argparse takes ``-5m`` for an option and says "expected one argument";
    joined, the value reaches its type and gets a message about durations."""
    out: list[str] = []
    for item in argv:
        if out and out[-1] in ("-t", "--time") and item[:1] == "-" and item[1:2].isdigit():
            out[-1] = f"{out[-1]}={item}" if out[-1].startswith("--") else f"{out[-1]}{item}"
        else:
            out.append(item)
    return out
