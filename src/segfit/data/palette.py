"""Colour-coded annotations -> class-index masks.

A palette (YAML or JSON) lists the classes in order, each with a name, an overlay colour and the
rules that match its pixels in the annotators' colour masks::

    classes:
      - name: background
        color: [0, 0, 0]
        rules: [{where: "red + green + blue >= 740", precedence: 0}]
      - name: leaves
        color: [40, 180, 40]
        rules: [{where: "blue >= 240"}]
      - name: wood
        color: [150, 90, 30]
        rules: [{where: "red >= 240"}, {where: "green >= 240"}, {rgb: [128, 64, 0], tolerance: 10}]
    unmatched: background     # or: error

A rule is ``where`` (channel comparisons joined by ``and``; channels red/green/blue or r/g/b, sums
allowed) or ``rgb`` with a ``tolerance`` (max absolute difference per channel). Rules are tried by
``precedence`` (lower first; default 100), then class order, then rule order; the first match wins.
"""

from __future__ import annotations

import json
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from segfit.data.formats import list_files
from segfit.errors import SegfitError

_CHANNELS = {"red": 0, "r": 0, "green": 1, "g": 1, "blue": 2, "b": 2}
_OPS = {">=": np.greater_equal, "<=": np.less_equal, ">": np.greater, "<": np.less, "==": np.equal, "!=": np.not_equal}
_TERM = re.compile(r"^\s*([a-z+\s]+?)\s*(>=|<=|==|!=|>|<)\s*(-?\d+(?:\.\d+)?)\s*$")


@dataclass
class Rule:
    class_index: int
    precedence: int = 100
    where: str | None = None
    rgb: tuple[int, int, int] | None = None
    tolerance: int = 0

    def matches(self, rgb: np.ndarray) -> np.ndarray:
        """Boolean ``H x W`` of the pixels this rule matches in an ``H x W x 3`` int array."""
        if self.rgb is not None:
            return np.all(np.abs(rgb - np.asarray(self.rgb)) <= self.tolerance, axis=-1)
        hit = np.ones(rgb.shape[:2], bool)
        for term in re.split(r"\s+and\s+", self.where.lower()):
            m = _TERM.match(term)
            if not m:
                raise SegfitError(f"cannot read palette rule {term.strip()!r}",
                                  fix="write rules like 'blue >= 240' or 'red + green + blue >= 740'")
            names = [n.strip() for n in m.group(1).split("+")]
            if not all(n in _CHANNELS for n in names):
                raise SegfitError(f"unknown channel in palette rule {term.strip()!r}", fix="use red, green and blue")
            value = sum(rgb[..., _CHANNELS[n]] for n in names)
            hit &= _OPS[m.group(2)](value, float(m.group(3)))
        return hit


@dataclass
class Palette:
    names: list[str]
    colors: list[list[int]]
    rules: list[Rule] = field(default_factory=list)
    unmatched: str = "background"

    def ordered_rules(self) -> list[Rule]:
        return sorted(self.rules, key=lambda r: (r.precedence, r.class_index))

    def convert(self, rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Class ids (uint8) for an ``H x W x 3`` colour mask, and the boolean map of unmatched pixels."""
        rgb = np.asarray(rgb)
        if rgb.ndim == 2:
            rgb = np.repeat(rgb[..., None], 3, axis=-1)
        rgb = rgb[..., :3].astype(np.int32)
        out = np.zeros(rgb.shape[:2], np.uint8)
        done = np.zeros(rgb.shape[:2], bool)
        for rule in self.ordered_rules():
            hit = rule.matches(rgb) & ~done
            out[hit] = rule.class_index
            done |= hit
        return out, ~done


VINEYARD = {
    "classes": [
        {"name": "background", "color": [0, 0, 0], "rules": [{"where": "red + green + blue >= 740", "precedence": 0}]},
        {"name": "leaves", "color": [255, 215, 0], "rules": [{"where": "blue >= 240", "precedence": 1}]},
        {"name": "wood", "color": [230, 0, 230],
         "rules": [{"where": "red >= 240", "precedence": 2}, {"where": "green >= 240", "precedence": 3}]},
    ],
    "unmatched": "background",
}
PRESETS = {"vineyard": VINEYARD}


def _as_list(value) -> list:
    if not isinstance(value, list):
        raise TypeError("rules must be a list")
    return value


def _color(value) -> list[int]:
    if not isinstance(value, (list, tuple)) or len(value) != 3:
        raise ValueError(f"a colour is [R, G, B], not {value!r}")
    return [int(v) for v in value]


def _rule(class_index: int, r) -> Rule:
    if not isinstance(r, dict) or ("where" not in r and "rgb" not in r):
        raise ValueError(f"a rule needs 'where' or 'rgb', not {r!r}")
    where = r.get("where")
    if where is not None and not isinstance(where, str):
        raise ValueError(f"'where' is a text like 'blue >= 240', not {where!r}")
    rgb = tuple(_color(r["rgb"])) if "rgb" in r else None
    return Rule(class_index, int(r.get("precedence", 100)), where, rgb, int(r.get("tolerance", 0)))


def _colour_table(text: str) -> dict:
    """A palette from a table of names and colours that data sets ship: CamVid's ``class_dict.csv``
    (``name,r,g,b``) or CVAT's ``labelmap.txt`` (``name:r,g,b::``); each colour matches its class exactly."""
    classes = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, _, rest = line.partition(":") if ":" in line else line.partition(",")
        numbers = rest.split(":")[0].replace(",", " ").split()
        if len(numbers) < 3 or not all(n.isdigit() for n in numbers[:3]):
            continue  # a header (name,r,g,b)
        rgb = [int(n) for n in numbers[:3]]
        classes.append({"name": name.strip(), "color": rgb, "rules": [{"rgb": rgb}]})
    return {"classes": classes}


def palette_values(palette: Palette, values, where: str | None = None) -> list[str] | None:
    """Colour masks' class values (``"#rrggbb"``, as read: sorted) in the palette's class order: class ``i`` is the
    colour the palette's rules give class ``i`` (a table's colour itself, the vineyard preset's "blue >= 240" for
    leaves); None when ``values`` are not colours. A palette may name classes the data lacks: they are kept, empty
    (stored as the palette's own colour, which reads as that class). Colours that would join one class (red and green both wood, or colours
    no rule matches beside the background's) cannot be told apart by the class values: such masks are converted
    first (``segfit convert-masks``), which the error says."""
    from segfit.data.formats import colour_code, colour_name, is_colour_coded

    if not is_colour_coded(values):
        return None
    found = [colour_code(v) for v in values]
    rgb = np.asarray([[[(c >> 16) & 255, (c >> 8) & 255, c & 255] for c in found]], np.int32)
    ids, missed = palette.convert(rgb)
    own = {colour_code("#%02x%02x%02x" % tuple(c)): i for i, c in enumerate(palette.colors)}
    per_class: dict[int, list[int]] = {}
    for code, i, miss in zip(found, ids[0].tolist(), missed[0].tolist()):
        if code in own:  # a class's own colour (an empty class's value, as this function gave it)
            i, miss = own[code], False
        if miss and palette.unmatched == "error":
            raise SegfitError(f"the masks' colour {colour_name(code)} matches no class of the palette", where,
                              "add a rule for it to the palette, or convert the masks with segfit convert-masks")
        per_class.setdefault(i, []).append(code)
    joined = next(((i, codes) for i, codes in per_class.items() if len(codes) > 1), None)
    ordered = [colour_name(per_class[i][0]) if i in per_class else "#%02x%02x%02x" % tuple(c)
               for i, c in enumerate(palette.colors)]
    if joined or len(set(ordered)) < len(ordered):
        i, codes = joined or (0, [])
        raise SegfitError(f"the palette reads the masks' colours {', '.join(map(colour_name, codes))} all as "
                          f"{palette.names[i]!r}", where, "convert the masks to class ids first: segfit convert-masks "
                          "MASKS NEW_MASKS --palette ..., then train on the converted masks")
    return ordered


def load_palette(spec: str | os.PathLike | dict) -> Palette:
    """A palette from a preset name (``vineyard``), a YAML/JSON file, a table of names and colours (CamVid's
    ``class_dict.csv``, CVAT's ``labelmap.txt``), or a dict."""
    if isinstance(spec, dict):
        data, where = spec, "palette"
    elif str(spec) in PRESETS:
        data, where = PRESETS[str(spec)], str(spec)
    else:
        path = Path(spec)
        if not path.is_file():
            raise SegfitError("palette file not found", path, f"give a YAML/JSON file or a preset ({', '.join(PRESETS)})")
        try:
            text = path.read_text()
            if path.suffix.lower() == ".json":
                data = json.loads(text)
            elif path.suffix.lower() in (".csv", ".txt"):  # CamVid's class_dict.csv, CVAT's labelmap.txt
                data = _colour_table(text)
            else:
                import yaml

                data = yaml.safe_load(text)
        except Exception as exc:
            raise SegfitError(f"cannot read palette ({type(exc).__name__})", path, "check the YAML/JSON syntax") from None
        where = str(path)
    classes = data.get("classes") if isinstance(data, dict) else None
    if not classes or not isinstance(classes, list):
        raise SegfitError("palette has no 'classes' list", where, "list the classes in order, background first")
    names, colors, rules = [], [], []
    for i, c in enumerate(classes):
        if not isinstance(c, dict) or "name" not in c:
            raise SegfitError(f"palette class {i} has no name", where, "give each class a name")
        names.append(str(c["name"]))
        try:
            colors.append(_color(c.get("color", c.get("colour", [0, 0, 0]))))
            rules += [_rule(i, r) for r in _as_list(c.get("rules", []))]
        except (TypeError, ValueError, AttributeError) as exc:
            raise SegfitError(f"palette class {c['name']!r} is malformed ({exc})", where,
                              "write color: [R, G, B] and rules like {where: 'blue >= 240'} or "
                              "{rgb: [0, 0, 255], tolerance: 10}, precedence: a whole number") from None
    unmatched = str(data.get("unmatched", "background"))
    if unmatched not in ("background", "error"):
        raise SegfitError(f"palette 'unmatched' is {unmatched!r}", where, "use background or error")
    palette = Palette(names, colors, rules, unmatched)
    for r in palette.rules:  # fail early on a malformed expression
        try:
            r.matches(np.zeros((1, 1, 3), np.int32))
        except SegfitError as exc:
            raise SegfitError(exc.what, where, exc.fix) from None
    return palette


def convert_masks(src: str | os.PathLike, dst: str | os.PathLike, palette: Palette | str | os.PathLike | dict,
                  suffix: str = "_bin", dry_run: bool = False, force: bool = False, unmatched: str | None = None,
                  verbose: bool = False) -> dict:
    """Convert every colour mask ``SRC/NAME.png`` into ``DST/NAME<suffix>.png`` (8-bit class ids):
    ``segfit convert-masks``.

    ``palette`` is a :class:`Palette`, a palette file or a preset name. Nothing is written when a target
    exists (unless ``force``), when ``dry_run``, or when ``unmatched="error"`` and a pixel matches no rule.
    Returns the report: files, pixels per class, unmatched pixels; ``verbose`` prints it.
    """
    if not isinstance(palette, Palette):
        palette = load_palette(palette)
    report = _convert(Path(src), Path(dst), palette, suffix, dry_run, force, unmatched)
    if verbose:
        total = sum(report["pixels"].values()) or 1
        print(f"{report['files']} colour masks in {src}")
        for name, n in report["pixels"].items():
            print(f"  {name:<14}{n:>14,} pixels  {100 * n / total:6.2f} %")
        policy = unmatched or palette.unmatched
        print(f"  {'unmatched':<14}{report['unmatched']:>14,} pixels"
              + (" (counted as background)" if policy != "error" or report["unmatched"] else ""))
        print("Dry run: nothing written." if dry_run else f"Wrote {report['written']} masks NAME{suffix}.png to {Path(dst)}/")
        if report["unmatched"] > total / 2:
            print(f"segfit: warning: {100 * report['unmatched'] / total:.0f} % of the pixels match no rule of the palette: "
                  f"is {src} a folder of colour annotations, and is this palette theirs?", file=sys.stderr)
    return report


def _convert(src: Path, dst: Path, palette: Palette, suffix: str, dry_run: bool, force: bool,
             unmatched: str | None) -> dict:
    from PIL import Image

    from segfit.io import write_png

    if not src.is_dir():
        raise SegfitError("source folder not found", src, "give the folder of colour-coded masks")
    files = list_files(src, (".png", ".bmp", ".tif", ".tiff", ".jpg", ".jpeg"))  # JPEG: palette rules take its noise
    if not files:
        raise SegfitError("no colour masks (.png, .jpg, .bmp, .tif) found", src, "check the folder")
    if dst.resolve() == src.resolve():  # converting again into the same folder: its earlier outputs are no sources
        outputs = {f"{p.stem}{suffix}.png" for p in files}
        files = [p for p in files if p.name not in outputs] or files
    targets = [dst / f"{p.stem}{suffix}.png" for p in files]
    sources = {p.resolve() for p in files}
    if clash := next((t for t in targets if t.resolve() in sources), None):  # even --force: the annotations would be lost
        raise SegfitError("a converted mask would replace its own colour annotation", clash,
                          "write to another folder, or keep a --suffix such as _bin")
    if not force and not dry_run:
        existing = [t for t in targets if t.exists()]
        if existing:
            raise SegfitError(f"{len(existing)} target files exist already", existing[0], "add --force to replace them")
    policy = unmatched or palette.unmatched
    if policy == "error" and not dry_run:  # check every file before writing any
        _convert(src, dst, palette, suffix, dry_run=True, force=force, unmatched="error")
    counts = np.zeros(len(palette.names), np.int64)
    unmatched_total, per_file = 0, []
    for path, target in zip(files, targets):
        try:
            with Image.open(path) as im:
                rgb = np.asarray(im.convert("RGB"))
        except Exception as exc:
            raise SegfitError(f"cannot read colour mask ({type(exc).__name__})", path, "replace or remove the file") from None
        ids, missed = palette.convert(rgb)
        n_missed = int(missed.sum())
        if n_missed and policy == "error":
            ys, xs = np.nonzero(missed)
            raise SegfitError(f"{n_missed} pixels match no palette rule (first at x={xs[0]}, y={ys[0]}, "
                              f"colour {tuple(int(v) for v in rgb[ys[0], xs[0]])})", path,
                              "add a rule for that colour, or use --unmatched background")
        counts += np.bincount(ids.ravel(), minlength=len(palette.names))[: len(palette.names)]
        unmatched_total += n_missed
        per_file.append({"file": path.name, "unmatched": n_missed})
        if not dry_run:
            dst.mkdir(parents=True, exist_ok=True)
            write_png(target, ids)
    return {"files": len(files), "pixels": dict(zip(palette.names, counts.tolist())), "unmatched": unmatched_total,
            "written": 0 if dry_run else len(files), "dst": str(dst), "per_file": per_file}
