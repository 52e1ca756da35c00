"""Image and mask file readers (data set layouts: :mod:`segfit.data.layouts`).

Readers return numpy arrays in the file's own dtype; :func:`to_class_ids` turns a mask into
class indices (``binary``: any value > 0 is foreground; ``index``: values are class ids).
"""

from __future__ import annotations

import functools
import logging
import os
import re
from pathlib import Path

import numpy as np

from segfit.data.orientation import upright
from segfit.errors import SegfitError, require

logging.getLogger("tifffile").setLevel(logging.CRITICAL)  # its warnings would duplicate our one-line errors

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")
MASK_EXTS = (".png", ".tif", ".tiff", ".npy", ".bmp", ".gif")
LOSSY_MASK_EXTS = (".jpg", ".jpeg")  # accepted in a mask folder; read as foreground/background
# Common endings of mask names (NAME_mask.png); the data's own --mask-suffix is tried first.
MASK_SUFFIXES = ("_bin", "_mask", "_masks", "_label", "_labels", "_gt", "_seg", "_segmentation", "_annotation",
                 "-mask", "-label", "_lbl", "_manual1", "_L", "_anno")  # _manual1: DRIVE's vessels; _L: CamVid's; _anno: GlaS'
# The class id of unlabelled pixels (a mask's --ignore-value, as Pascal VOC's 255 on object borders): no
# loss, metric, class count or object sees them. Class ids are 0..254.
IGNORE_ID = 255
# Class masks with ids 0..k (k below this) and a few pixels of 255 mark unlabelled pixels with 255
# (Pascal VOC's object borders, Cityscapes' void): 255 is not a class there.
_VOID_MAX_CLASS, _VOID_MAX_SHARE = 64, 0.3
PREDICTED_SUFFIXES = ("_overlay", "_instances", "_uncertainty")  # what segfit predict writes beside NAME.png
# More masks of one image: NAME_mask_1.png, NAME_mask_2.png beside NAME_mask.png (BUSI's second and third lesions).
NUMBERED = re.compile(r"(.+)_(\d{1,3})")


def is_extra_mask(path: Path, stems) -> bool:
    """Whether ``path`` is a numbered sibling (``NAME_mask_1.png``) of a mask whose stem is in ``stems``."""
    m = NUMBERED.fullmatch(path.stem)
    return bool(m) and m[1].endswith(MASK_SUFFIXES) and m[1] in stems


def extra_masks(path: Path) -> list[Path]:
    """The numbered siblings of a mask named NAME + a mask suffix, in number order: more of the same image's
    objects, which :func:`read_mask` reads into it (BUSI: ``X_mask_1.png`` beside ``X_mask.png``)."""
    path = Path(path)
    if not path.stem.endswith(MASK_SUFFIXES) or not path.is_file():
        return []
    names = _numbered(str(path.parent), path.parent.stat().st_mtime_ns).get((path.stem, path.suffix.lower()), ())
    return [path.parent / name for name in names]


@functools.lru_cache(maxsize=32)
def _numbered(folder: str, stamp: int) -> dict[tuple[str, str], list[str]]:
    """``{(stem, ext): numbered sibling names}`` of one folder listing (``stamp``: its mtime, so a changed folder is read again)."""
    found: dict[tuple[str, str], list[tuple[int, str]]] = {}
    for name in os.listdir(folder):
        stem, ext = os.path.splitext(name)
        if (m := NUMBERED.fullmatch(stem)) and m[1].endswith(MASK_SUFFIXES) and not name.startswith("."):
            found.setdefault((m[1], ext.lower()), []).append((int(m[2]), name))
    return {key: [name for _, name in sorted(names)] for key, names in found.items()}


def unlabelled_value(masks) -> tuple[int | None, np.ndarray]:
    """The value that marks unlabelled pixels in class masks (255 when 8-bit masks hold ids 0..k and 255 on a
    minority of their pixels, as Pascal VOC's borders; 16-bit masks have no such convention), or None; and
    the sorted distinct values of all the masks. ``masks``: arrays, read one at a time (a generator will do)."""
    seen: set[int] = set()
    void_pixels = pixels = 0
    uint8 = True
    for mask in masks:
        present, counts = np.unique(mask, return_counts=True)
        seen.update(present.tolist())
        void_pixels += int(counts[present == IGNORE_ID].sum())
        pixels, uint8 = pixels + mask.size, uint8 and mask.dtype == np.uint8
    values = np.array(sorted(seen), np.int64)
    if not uint8 or IGNORE_ID not in seen or len(values) < 3 or int(values[-2]) >= _VOID_MAX_CLASS:
        return None, values
    return (IGNORE_ID if void_pixels / max(pixels, 1) < _VOID_MAX_SHARE else None), values


def list_files(folder: Path, exts: tuple[str, ...]) -> list[Path]:
    """The files of ``folder`` with one of the extensions ``exts``, sorted (hidden files skipped)."""
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in exts and not p.name.startswith("."))


def list_images(inputs: list[str | os.PathLike]) -> list[Path]:
    """Image files named directly or found in the given folders (masks, ``*_bin``, ``*_mask``, ..., and
    segfit's own outputs in a folder skipped)."""
    if not (found := list_inputs(inputs, IMAGE_EXTS, MASK_SUFFIXES + PREDICTED_SUFFIXES)):  # images a folder down: which
        below = [d for i in map(Path, inputs) if i.is_dir() for d in sorted(i.iterdir()) if d.is_dir() and list_files(d, IMAGE_EXTS)]
        raise SegfitError("no images found", ", ".join(map(str, inputs)), f"its subfolders {', '.join(d.name for d in below[:3])}"
                          f"{' ...' if len(below) > 3 else ''} hold some: give those folders" if below else "give image files or folders that hold them")
    return found


def list_inputs(inputs: list[str | os.PathLike], exts: tuple[str, ...], skip: tuple[str, ...] = (),
                empty_folder: SegfitError | None = None) -> list[Path]:
    """Files named directly, and the files with one of ``exts`` in the named folders (stems ending in one of
    ``skip`` left out when the file they were made from is beside them). ``empty_folder``: raised (with the folder as its file) for a folder with none."""
    found: list[Path] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            files = list_files(path, exts)
            stems = {p.stem for p in files}
            # NAME_mask.png beside NAME.png is a mask, NAME_overlay.png an output; alone, either is an input
            files = [p for p in files if not any(p.stem.endswith(s) and p.stem[: -len(s)] in stems for s in skip)
                     and not is_extra_mask(p, stems)]  # NAME_mask_1.png is read with NAME_mask.png
            if not files and empty_folder is not None:
                raise SegfitError(empty_folder.what, path, empty_folder.fix)
            found += files
        elif path.is_file():
            found.append(path)
        else:
            require(path, "input")
            raise SegfitError("input is neither a file nor a folder", path, "give image files or folders")
    return found


# ---------------------------------------------------------------------------------------------
# Readers


def read_image(path: str | os.PathLike, channels: int) -> np.ndarray:
    """Read an image as ``H x W x channels`` in its own dtype (uint8, uint16 or float32), upright as viewers
    show it (a photo's EXIF orientation applied)."""
    path = Path(path)
    suffix = path.suffix.lower()
    _check_nonempty(path, "image")
    try:
        if suffix in (".tif", ".tiff"):
            import tifffile

            arr = np.asarray(tifffile.imread(path))
        else:
            from PIL import Image

            with Image.open(path) as im:
                im.load()
                im = upright(im)
                mode = "L" if channels == 1 else "RGB"
                if im.mode != mode and im.mode in ("RGB", "L", "P", "RGBA", "LA", "CMYK", "YCbCr", "1"):
                    im = im.convert(mode)
                arr = _pixels(im)
    except SegfitError:
        raise
    except Exception as exc:  # PIL/tifffile raise many types for broken files
        raise SegfitError(f"cannot read image ({type(exc).__name__}: {exc})", path, "replace or remove the file") from None
    if arr.size == 0:
        raise SegfitError("cannot read image (no pixel data)", path, "replace or remove the file")
    return to_channels(arr, channels, path)


def _pixels(im, rows_pixels: int = 1 << 22) -> np.ndarray:
    """A Pillow image's pixels as a writable array. A large image is copied a strip of rows at a time:
    ``np.array(im)`` would hold two more whole copies on the way (Pillow's bytes, joined from chunks)."""
    w, h = im.size
    if w * h <= rows_pixels:
        return np.array(im)
    step = max(1, rows_pixels // w)
    first = np.asarray(im.crop((0, 0, w, min(step, h))))
    out = np.empty((h, *first.shape[1:]), first.dtype)
    out[: first.shape[0]] = first
    for y in range(first.shape[0], h, step):
        out[y: y + step] = np.asarray(im.crop((0, y, w, min(y + step, h))))
    return out


def to_channels(arr: np.ndarray, channels: int, path: Path | None = None) -> np.ndarray:
    """Return ``H x W x channels``: grey is repeated for RGB, RGB becomes luminance for grey."""
    if arr.dtype.kind in "iu" and arr.dtype.itemsize > 2:  # PIL mode "I": 16-bit data in int32
        top = int(arr.max()) if arr.size else 0
        arr = arr.astype(np.uint16) if arr.min() >= 0 and top <= 65535 else arr.astype(np.float32) / max(top, 1)
    if arr.dtype == bool:
        arr = arr.astype(np.uint8) * 255
    if arr.ndim == 3 and arr.shape[0] in (1, 3, 4) and arr.shape[-1] not in (1, 3, 4):
        arr = np.moveaxis(arr, 0, -1)  # TIFF stored channels-first
    if arr.ndim == 2:
        arr = arr[..., None]
    if arr.ndim == 3 and arr.shape[-1] > 4:  # a multi-page TIFF (ISBI 2012's train-volume.tif): planes, not channels
        raise SegfitError(f"image is a stack of {min(arr.shape)} planes ({'x'.join(map(str, arr.shape))})", path,
                          "save each plane as an image of its own (a multi-page TIFF: one file per page)")
    if arr.ndim != 3:
        raise SegfitError(f"image has shape {arr.shape}, expected H x W or H x W x C", path, "save it as a 2-D image")
    c = arr.shape[-1]
    if c == 4:
        arr, c = arr[..., :3], 3
    elif c == 2:
        arr, c = arr[..., :1], 1
    if c == channels:
        return np.ascontiguousarray(arr)
    if channels == 3:
        return np.repeat(arr, 3, axis=-1)
    grey = arr[..., 0] * 0.299 + arr[..., 1] * 0.587 + arr[..., 2] * 0.114
    return grey.astype(arr.dtype)[..., None] if arr.dtype.kind == "f" else np.round(grey).astype(arr.dtype)[..., None]


def colour_code(value) -> int:
    """A class value as an integer: ``"#rrggbb"`` (a colour mask's colour) packs to ``0xrrggbb``."""
    if isinstance(value, str):
        text = value.strip().lstrip("#")
        if len(text) != 6:
            raise SegfitError(f"{value!r} is not a colour", fix="write colours as #rrggbb, e.g. #ff0000 for red")
        try:
            return int(text, 16)
        except ValueError:
            raise SegfitError(f"{value!r} is not a colour", fix="write colours as #rrggbb, e.g. #ff0000 for red") from None
    return int(value)


def colour_name(code: int) -> str:
    return f"#{int(code):06x}"


def is_colour_coded(values) -> bool:
    """Whether class values name colours (``"#rrggbb"``): the masks are colour images."""
    return bool(values) and any(isinstance(v, str) for v in values)


def mask_palette(path: str | os.PathLike) -> list[list[int]] | None:
    """The RGB colour of each value of a palette mask (PNG or GIF in mode ``P``, as annotation tools and
    Pascal VOC save them), or None for other masks."""
    if Path(path).suffix.lower() not in (".png", ".gif"):
        return None
    try:
        from PIL import Image

        with Image.open(path) as im:
            flat = im.getpalette() if im.mode == "P" else None
    except Exception:
        return None
    return [flat[i: i + 3] for i in range(0, len(flat) - 2, 3)] if flat else None


def read_mask(path: str | os.PathLike, colour: bool = False) -> np.ndarray:
    """Read a mask (PNG 8/16-bit, TIFF, npy, GIF) as a 2-D integer array of its raw values. A JPEG mask
    is lossy (its edges hold in-between values): it is read as 0/255, foreground from half its maximum.
    ``colour``: a colour mask comes back as packed ``0xrrggbb`` codes (see :func:`colour_code`)."""
    path = Path(path)
    if path.is_dir():
        return read_object_masks(path)
    suffix = path.suffix.lower()
    _check_nonempty(path, "mask")
    try:
        if suffix == ".npy":
            arr = np.load(path, allow_pickle=False)
        elif suffix in (".tif", ".tiff"):
            import tifffile

            arr = np.asarray(tifffile.imread(path))
        else:
            from PIL import Image

            with Image.open(path) as im:
                im.load()
                im = upright(im)
                arr = np.asarray(im.convert("L") if im.mode == "1" else im)
    except Exception as exc:
        raise SegfitError(f"cannot read mask ({type(exc).__name__}: {exc})", path, "replace or remove the file") from None
    if colour:
        return pack_colours(np.asarray(arr), path)
    if suffix in LOSSY_MASK_EXTS:
        arr = np.asarray(arr)
        grey = arr.max(axis=-1) if arr.ndim == 3 else arr
        arr = np.where(grey >= max(1, (int(grey.max()) + 1) // 2), 255, 0).astype(np.uint8)
    arr = as_label_map(arr, path)
    for extra in extra_masks(path):  # NAME_mask_1.png ...: the pixels of each are added (the highest value wins)
        more = read_mask(extra)
        if more.shape != arr.shape:
            raise SegfitError(f"mask is {more.shape[0]}x{more.shape[1]} but {path.name} is {arr.shape[0]}x{arr.shape[1]}",
                              extra, f"give it {path.name}'s size, or rename it if it is not more of {path.name}'s objects")
        arr = np.maximum(arr, more)
    return arr


def read_object_masks(folder: Path) -> np.ndarray:
    """A folder of one mask file per object (Kaggle's Data Science Bowl 2018: ``ID/masks/*.png``) as one
    instance map (uint16, 0 = background): the non-zero pixels of the i-th file, in name order, are object
    i; where two files overlap, the first keeps the pixel."""
    files = list_files(folder, MASK_EXTS)
    if not files:
        raise SegfitError("mask folder holds no masks", folder, "add the object masks or remove the folder")
    if len(files) >= np.iinfo(np.uint16).max:
        raise SegfitError(f"{len(files)} object masks in one folder", folder, "save the objects as one label map")
    out = None
    for i, path in enumerate(files, 1):
        mask = read_mask(path)
        if out is None:
            out = np.zeros(mask.shape, np.uint16)
        elif mask.shape != out.shape:
            raise SegfitError(f"object mask is {mask.shape[0]}x{mask.shape[1]} but {files[0].name} is "
                              f"{out.shape[0]}x{out.shape[1]}", path, "every object mask must have the image's size")
        out[(mask > 0) & (out == 0)] = i
    return out


def file_stamp(path: Path) -> str:
    """Name, size and modification time of a file, or of every file in a folder of object masks: what
    changes when the data changes (contents are not read)."""
    if path.is_dir():
        return ";".join(f"{p.name}|{file_stamp(p)}" for p in sorted(path.iterdir()) if p.is_file())
    st = path.stat()
    return ";".join([f"{st.st_size}|{st.st_mtime_ns}"] + [f"{p.name}|{file_stamp(p)}" for p in extra_masks(path)])


def pack_colours(arr: np.ndarray, path: Path | None = None) -> np.ndarray:
    """An 8-bit RGB (or grey) mask as packed ``0xrrggbb`` codes (uint32)."""
    if arr.dtype != np.uint8 or not (arr.ndim == 2 or (arr.ndim == 3 and arr.shape[-1] in (3, 4))):
        raise SegfitError(f"colour mask has shape {arr.shape} and dtype {arr.dtype}", path, "save colour masks as 8-bit RGB PNGs")
    rgb = np.repeat(arr[..., None], 3, -1) if arr.ndim == 2 else arr[..., :3]
    return (rgb[..., 0].astype(np.uint32) << 16) | (rgb[..., 1].astype(np.uint32) << 8) | rgb[..., 2]


def as_label_map(arr: np.ndarray, path: Path | None = None) -> np.ndarray:
    """Squeeze a mask array to 2-D integers; colour masks must first go through ``convert-masks``."""
    arr = np.asarray(arr)
    if arr.ndim == 3 and arr.shape[-1] in (1, 2, 3, 4):
        colour = arr[..., :3] if arr.shape[-1] >= 3 else arr[..., :1]
        if arr.shape[-1] >= 3 and not (np.array_equal(colour[..., 0], colour[..., 1]) and np.array_equal(colour[..., 0], colour[..., 2])):
            raise SegfitError("mask is a colour image", path,
                              "turn colours into class ids with `segfit convert-masks SRC DST --palette FILE`")
        arr = colour[..., 0]
    if arr.ndim == 3 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.ndim == 3:
        raise SegfitError(f"mask is a stack of {min(arr.shape)} planes ({'x'.join(map(str, arr.shape))})", path,
                          "save one 2-D mask per image (a multi-page TIFF: one file per page)")
    if arr.ndim != 2:
        raise SegfitError(f"mask has shape {arr.shape}, expected H x W", path, "save masks as 2-D label images")
    if arr.dtype == bool:
        return arr.astype(np.uint8)
    if arr.dtype.kind == "f":
        if not np.all(np.isfinite(arr)) or not np.array_equal(arr, np.round(arr)):
            raise SegfitError("mask holds non-integer values", path, "save class ids or instance ids as integers")
        arr = arr.astype(np.int64)
    if arr.dtype.kind not in "iu":
        raise SegfitError(f"mask has dtype {arr.dtype}", path, "save masks as integer images")
    if arr.dtype.kind == "i" and arr.size and arr.min() < 0:
        raise SegfitError("mask holds negative values", path, "class ids start at 0")
    return arr


def to_class_ids(mask: np.ndarray, mode: str, num_classes: int, path: Path | None = None,
                 values: list[int] | None = None, ignore: int | None = None) -> np.ndarray:
    """Turn a raw mask into uint8 class ids, checking the values fit the declared classes
    (``values``: class ``i`` is stored as ``values[i]``, a number or a ``"#rrggbb"`` colour); pixels
    holding ``ignore`` become :data:`IGNORE_ID`."""
    if mode == "binary":
        ids = (mask > 0).astype(np.uint8)
        if ignore is not None:
            ids[mask == ignore] = IGNORE_ID
        return ids
    if values:
        codes = np.asarray([colour_code(v) for v in values], np.int64)
        top = max(int(mask.max()) if mask.size else 0, int(codes.max()))
        if top < 1 << 16:  # a lookup table (uint8 ids; 255 marks values of no class)
            lut = np.full(top + 1, 255, np.uint8)
            lut[codes] = np.arange(len(codes), dtype=np.uint8)
            ids = lut[mask]
            unknown = ids == 255
        else:  # packed colours: look the codes up in sorted order
            order = np.argsort(codes)
            at = np.minimum(np.searchsorted(codes[order], mask), len(codes) - 1)
            ids, unknown = order[at].astype(np.uint8), codes[order][at] != mask
        if ignore is not None:
            void = mask == ignore
            ids[void], unknown = IGNORE_ID, unknown & ~void
        if unknown.any():
            found = np.unique(mask[unknown])
            shown = [colour_name(v) for v in found[:6]] if is_colour_coded(values) else found
            raise SegfitError(f"mask values {_short(np.asarray(shown))} are none of the class values "
                              f"{', '.join(map(str, values))}", path, "list every value with --class-values, or fix the mask")
        return ids
    top = int(mask.max()) if mask.size else 0
    if top >= num_classes:
        values, counts = np.unique(mask, return_counts=True)
        bad = (values >= num_classes) & (values != ignore)
        if bad.any():
            if set(values.tolist()) <= {0, 255}:
                raise SegfitError("mask holds 0/255 values but --mask-mode is index", path, "use --mask-mode binary")
            pixels = ", ".join(f"{v}: {c} px" for v, c in zip(values[bad][:6].tolist(), counts[bad][:6].tolist()))
            raise SegfitError(f"mask values {_short(values[bad])} are outside the {num_classes} classes 0..{num_classes - 1}"
                              f" ({pixels})", path, "declare more classes with --classes (or --ignore-value for "
                                                    "unlabelled pixels), or fix the mask")
        return np.where(mask == ignore, IGNORE_ID, mask).astype(np.uint8)
    return mask.astype(np.uint8)


def read_class_ids(path: str | os.PathLike, cfg) -> tuple[np.ndarray, np.ndarray]:
    """A mask read as ``cfg`` (a :class:`~segfit.config.DataConfig`) says: mask mode, class values, unlabelled
    value. Returns uint8 class ids (:data:`IGNORE_ID` where unlabelled) and the mask's own values."""
    mask = read_mask(path, colour=is_colour_coded(cfg.class_values))
    return to_class_ids(mask, cfg.mask_mode, cfg.num_classes, Path(path), cfg.class_values, cfg.ignore_value), mask


def _short(values: np.ndarray, n: int = 6) -> str:
    items = [str(v) for v in values[:n].tolist()]
    return "[" + ", ".join(items) + (", ..." if len(values) > n else "") + "]"


def _check_nonempty(path: Path, kind: str) -> None:
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise SegfitError(f"{kind} file not found", path, "check the path") from None
    if size == 0:
        raise SegfitError(f"{kind} file is empty (0 bytes)", path, "replace or remove the file")


def read_split_file(path: Path) -> list[str]:
    """Names listed one per line (first CSV column; a header line 'name'/'id' is skipped)."""
    names = []
    for line in path.read_text().splitlines():
        name = line.split(",")[0].strip().strip('"')
        if name and name.lower() not in ("name", "names", "id", "image", "filename", "file"):
            names.append(Path(name).stem if Path(name).suffix.lower() in IMAGE_EXTS else name)
    return names
