"""A data set's and a machine's fingerprint: what the planner (:mod:`segfit.planner`) decides from.

``fingerprint_data(root)`` reads the images and masks (a sample of them when the set is large) and
describes them: sizes, channels and whether RGB files are really grey, bit depth, intensity
percentiles, the kind of masks (instance maps, 0/255 or 0/1 binary, class indices, colours), class
pixel fractions and, per class, the objects (count per image, median and 5th-percentile equivalent
diameter, fraction touching another object). ``fingerprint_machine()`` gives cores, native bf16,
GPU and free memory. Both are plain dicts, written as ``fingerprint.json``.
"""

from __future__ import annotations

import os
import random
import sys
import time
from pathlib import Path

import numpy as np

from segfit.data.formats import (colour_name, mask_palette, pack_colours, read_image, read_mask, to_class_ids,
                                 unlabelled_value)
from segfit.data.layouts import discover
from segfit.errors import SegfitError

SAMPLE = 64  # images read when the set is larger (said in the fingerprint)
MAX_MASK_COLOURS = 32  # colour masks with more colours are annotations to convert (segfit convert-masks)
WHITE = 0xFFFFFF  # colour masks drawn on white (and no black) have it as their background, class 0
_INSTANCE_VALUES = 24  # more distinct non-zero values than this in one mask: an instance map


def fingerprint_data(root: str | os.PathLike, images: str | None = None, masks: str | None = None,
                     mask_suffix: str = "_bin", sample: int = SAMPLE, seed: int = 0, require_masks: bool = True) -> dict:
    """Describe the images and masks of a data set (see the module's docstring); ``require_masks=False``:
    of the images that have masks (``check`` names the others)."""
    from segfit.objects import equivalent_diameter, label_objects

    layout = discover(root, images, masks, mask_suffix, require_masks=require_masks)
    samples = [s for s in layout.samples if s.mask is not None]
    if not samples:
        raise SegfitError("no image has a mask", root, "check the data folder (segfit check says what it found)")
    chosen = sorted(random.Random(seed).sample(range(len(samples)), sample)) if len(samples) > sample else range(len(samples))
    heights, widths, files, dtypes, greys, raw_masks, pixels = [], [], {}, set(), [], [], []
    colour = False
    for i in chosen:
        s = samples[i]
        image = read_image(s.image, 3)
        mask, coloured = _read_mask(s.mask, colour)
        if coloured and not colour:  # the first colour mask: the others are read as colours too
            colour, raw_masks = True, [_packed_grey(m, s.mask) for m in raw_masks]
        if mask.shape != image.shape[:2]:
            raise SegfitError(f"mask is {mask.shape[0]}x{mask.shape[1]} but its image is {image.shape[0]}x{image.shape[1]}",
                              s.mask, "masks must have the size of their image")
        heights.append(image.shape[0])
        widths.append(image.shape[1])
        kind = _file_kind(s.image)
        files[kind] = files.get(kind, 0) + 1
        dtypes.add(str(image.dtype))
        greys.append(bool(np.array_equal(image[..., 0], image[..., 1]) and np.array_equal(image[..., 0], image[..., 2])))
        raw_masks.append(mask)
        step = max(1, image.shape[0] * image.shape[1] // 20000)  # a subsample per image for percentiles
        pixels.append(_unit(image.reshape(-1, 3)[::step]))
    values = np.concatenate(pixels)
    grey = all(greys)
    channels = 1 if grey else 3
    used = values[:, :1] if grey else values
    void = None if colour else unlabelled_value(raw_masks)[0]
    labelled = raw_masks if void is None else [np.where(m == void, 0, m) for m in raw_masks]
    kind, num_classes = _mask_kind(labelled) if not colour else _colour_kind(raw_masks, samples[chosen[0]].mask)
    class_values = _class_values(labelled, kind) if kind in ("coded", "colour") else None
    ids = [_class_ids(m, kind, class_values, void) for m in raw_masks]
    counts = np.zeros(num_classes, np.int64)
    for m in ids:
        counts += np.bincount(m.ravel(), minlength=num_classes)[:num_classes]
    objects = {}
    for cid in range(1, num_classes):
        per_image, diameters, touching = [], [], []
        for raw, m in zip(raw_masks, ids):
            labels = raw.astype(np.int64) * (m == cid) if kind == "instance" else label_objects(m == cid)
            areas = np.bincount(labels.ravel())[1:]
            areas = areas[areas > 0]
            per_image.append(len(areas))
            diameters.append(equivalent_diameter(areas))
            touching.append(_touching(labels) if kind == "instance" else 0)
        d = np.concatenate(diameters) if diameters else np.zeros(0)
        n = int(sum(per_image))
        objects[str(cid)] = {
            "objects": n, "per_image_median": float(np.median(per_image)) if per_image else 0.0,
            "diameter_median": round(float(np.median(d)), 2) if n else None,
            "diameter_p05": round(float(np.percentile(d, 5)), 2) if n else None,
            "touching_fraction": round(sum(touching) / n, 4) if n else 0.0}
    root = Path(root)
    return {
        "root": str(root.resolve()), "layout": layout.description, "images": len(samples),
        "sampled": len(chosen), "split_files": sorted(p.name for p in root.glob("*.csv") if p.stem in ("train", "test", "val")),
        "split_folders": {k: len(v) for k, v in layout.split.items()} if layout.split else None,
        "height": _spread(heights), "width": _spread(widths), "files": files, "grey_in_rgb": grey and files.get("RGB", 0) > 0,
        "channels": channels, "dtype": sorted(dtypes)[0] if len(dtypes) == 1 else sorted(dtypes),
        "bit_depth": 16 if "uint16" in dtypes else (32 if "float32" in dtypes else 8),
        "percentiles": {p: [round(float(v), 5) for v in np.percentile(used, p, axis=0)] for p in (1, 50, 99)},
        "mean": [round(float(v), 5) for v in used.mean(0)], "std": [round(float(max(v, 1e-3)), 5) for v in used.std(0)],
        "mask_kind": kind, "num_classes": num_classes, "void_value": void,
        "class_values": [colour_name(v) for v in class_values] if kind == "colour" else class_values,
        "class_fractions": [round(float(c) / max(int(counts.sum()), 1), 6) for c in counts],
        "class_colors": _palette_colours(samples[chosen[0]].mask, kind, num_classes, class_values),
        "objects": objects}


def fingerprint_machine() -> dict:
    """Cores, native bf16 (CPU: AVX-512 BF16 or AMX; GPU: Ampere or newer), GPU and memory."""
    import torch

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    gpu = None
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        gpu = {"name": props.name, "memory_gb": round(props.total_memory / 2**30, 1), "count": torch.cuda.device_count(),
               "bf16": native_bf16("cuda")}
    return {"cores": cores, "cpu_bf16": native_bf16("cpu"), "gpu": gpu, "free_ram_gb": _free_ram_gb(),
            "torch_threads": torch.get_num_threads()}


def native_bf16(device) -> bool:
    """Whether ``device`` (``cpu``, ``cuda``) computes in bf16 natively: a CPU with AVX-512 BF16 or AMX, a GPU
    from Ampere on."""
    import torch

    try:
        if str(device).startswith("cuda"):
            return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except Exception:
        return False


def training_device(machine: dict, accelerator: str = "auto") -> str:
    """``gpu`` when the machine has one and ``accelerator`` allows it, else ``cpu``."""
    return "gpu" if machine.get("gpu") and accelerator in ("auto", "gpu", "cuda") else "cpu"


def native_precision(accelerator: str = "auto", machine: dict | None = None) -> str:
    """``--precision auto`` (and the plan's precision): ``bf16-mixed`` where the device that trains has native
    bf16 (a GPU from Ampere on; a CPU with AVX-512 BF16 or AMX), else ``32``."""
    m = machine or fingerprint_machine()
    bf16 = (m.get("gpu") or {}).get("bf16") if training_device(m, accelerator) == "gpu" else m.get("cpu_bf16")
    return "bf16-mixed" if bf16 else "32"


EMULATED = ("bf16-mixed", "bf16-true", "bf16", "16-mixed", "16-true", "16")  # half precisions a CPU may lack


def check_device(accelerator: str = "auto", devices="auto", precision: str | None = None, say=print) -> None:
    """Before anything is planned or read: devices asked for that this machine lacks are an error (Lightning would
    hang waiting for processes, deaf to Ctrl-C); a half precision this CPU has no native support for is emulated,
    several times slower, which a warning says."""
    import torch

    count = (int(devices) if str(devices).isdigit() else len(devices) if isinstance(devices, (list, tuple))
             else len([d for d in str(devices).split(",") if d.strip()]) if "," in str(devices) else None)
    gpus = torch.cuda.device_count()
    if accelerator in ("gpu", "cuda") and not gpus:
        raise SegfitError(f"--accelerator {accelerator}, and this machine has no GPU", fix="drop --accelerator to train on the CPU")
    if accelerator in ("auto", "gpu", "cuda") and count and count > max(gpus, 1):
        raise SegfitError(f"--devices {devices} asks for {count} GPUs, and this machine has {gpus or 'none'}",
                          fix="drop --devices to train on the CPU (--accelerator cpu --devices N runs N processes on it)"
                          if not gpus else f"give --devices {gpus} or fewer")
    if precision in EMULATED and not (gpus and accelerator != "cpu"):
        machine = fingerprint_machine()
        if not machine["cpu_bf16"]:
            say(f"segfit: warning: --precision {precision}: this CPU has no native bf16, so it is emulated and trains "
                "several times slower (2 AVX2 cores: 462 s an epoch against 120 s at 32); --precision auto chooses for "
                "the machine", file=sys.stderr)


def _unit(pixels: np.ndarray) -> np.ndarray:
    """Pixel values in [0, 1] as the network sees them (uint8 / 255, uint16 / 65535)."""
    if pixels.dtype == np.uint8:
        return pixels.astype(np.float32) / 255.0
    if pixels.dtype == np.uint16:
        return pixels.astype(np.float32) / 65535.0
    return pixels.astype(np.float32)


def _file_kind(path: Path) -> str:
    try:
        from PIL import Image

        with Image.open(path) as im:
            return {"L": "grey", "I;16": "grey", "I;16B": "grey", "I": "grey", "1": "grey", "P": "palette",
                    "RGBA": "RGB"}.get(im.mode, im.mode)
    except Exception:
        return "other"


def _mask_kind(masks: list[np.ndarray]) -> tuple[str, int]:
    """``instance`` (one id per object), ``binary_255``, ``binary_01``, ``index`` (values 0..N-1 are the
    classes) or ``coded`` (a few values spread apart, as 0/128/255: the sorted values are the classes),
    and the class count."""
    values = np.unique(np.concatenate([np.unique(m) for m in masks]))
    many = max(len(np.unique(m)) - 1 for m in masks) > _INSTANCE_VALUES
    if set(values.tolist()) <= {0, 255}:
        return "binary_255", 2
    if set(values.tolist()) <= {0, 1}:
        return "binary_01", 2
    if many or int(values.max()) > 255 or any(m.dtype.itemsize >= 2 for m in masks) or _object_ids(masks):
        return "instance", 2  # 16-bit label maps hold object ids (class ids fit in 8 bits)
    if int(values.max()) + 1 > 2 * len(values) or values.min() > 0:  # most of 0..max unused, or no 0 anywhere
        return "coded", len(values)  # (Oxford pets' trimaps 1/2/3): codes, not class ids, and no class left empty
    return "index", int(values.max()) + 1


def _object_ids(masks: list[np.ndarray]) -> bool:
    """8-bit masks with a few values that are object ids, not classes: each mask numbers its objects
    1..k (k differs between masks; classes would recur) and each value is one connected blob (a class
    is usually several)."""
    from scipy import ndimage

    per_mask = [np.unique(m[m > 0]) for m in masks]
    counts = [len(v) for v in per_mask]
    if len(masks) < 2 or np.mean(counts) < 3 or len(set(counts)) < 2:
        return False
    numbered = np.mean([np.array_equal(v, np.arange(1, len(v) + 1)) for v in per_mask if len(v)])
    blobs = [ndimage.label(m == v)[1] == 1 for m, vs in zip(masks, per_mask) for v in vs]
    return numbered >= 0.8 and np.mean(blobs) >= 0.9


def _read_mask(path: Path, colour: bool) -> tuple[np.ndarray, bool]:
    """A mask's values and whether it is a colour mask (then as packed ``0xrrggbb`` codes)."""
    if colour:
        return read_mask(path, colour=True), True
    try:
        return read_mask(path), False
    except SegfitError as exc:
        if exc.what != "mask is a colour image":
            raise
        return read_mask(path, colour=True), True


def _packed_grey(mask: np.ndarray, path: Path) -> np.ndarray:
    if mask.max(initial=0) > 255:
        raise SegfitError("masks mix colour images and 16-bit label maps", path, "save every mask the same way")
    return pack_colours(mask.astype(np.uint8), path)


def _colour_kind(masks: list[np.ndarray], path: Path) -> tuple[str, int]:
    """Colour masks: each of a few colours is a class (black, when present, the background; else white)."""
    values = _class_values(masks, "colour")
    if len(values) > MAX_MASK_COLOURS:
        raise SegfitError(f"the colour masks hold {len(values)} colours, too many to be one class each "
                          "(hand-painted or saved as JPEG?)", path,
                          "turn colours into class ids with `segfit convert-masks SRC DST --palette FILE`")
    return "colour", len(values)


def _class_values(masks: list[np.ndarray], kind: str) -> list[int]:
    """The values (packed colours) the masks hold, sorted; colour masks with white and no black put white first:
    class 0, the background (the background of annotations drawn on white)."""
    values = np.unique(np.concatenate([np.unique(m) for m in masks])).tolist()
    if kind == "colour" and values[0] != 0 and WHITE in values:
        values.remove(WHITE)
        values.insert(0, WHITE)
    return values


def _class_ids(mask: np.ndarray, kind: str, values: list[int] | None = None, void: int | None = None) -> np.ndarray:
    if kind in ("coded", "colour"):
        return to_class_ids(mask, "index", len(values), values=values, ignore=void)
    if kind == "index":
        return to_class_ids(mask, "index", 256, ignore=void)  # ids as stored (the count slices them)
    return to_class_ids(mask, "binary", 2, ignore=void)


def _palette_colours(path: Path, kind: str, num_classes: int, values: list[int] | None) -> list[list[int]] | None:
    """Each class's colour in the masks' own palette (palette PNGs), None for other masks."""
    palette = mask_palette(path) if kind in ("index", "coded", "binary_01", "binary_255") else None
    if not palette:
        return None
    stored = values or ([0, 255] if kind == "binary_255" else list(range(num_classes)))
    return [list(palette[v]) for v in stored] if max(stored) < len(palette) else None


def _touching(labels: np.ndarray) -> int:
    """How many objects of a label image share an edge with another object."""
    touching = set()
    for a, b in ((labels[1:, :], labels[:-1, :]), (labels[:, 1:], labels[:, :-1])):
        edge = (a != b) & (a > 0) & (b > 0)
        touching.update(np.unique(a[edge]).tolist())
        touching.update(np.unique(b[edge]).tolist())
    return len(touching)


def _spread(values: list[int]) -> dict:
    return {"min": int(min(values)), "median": float(np.median(values)), "max": int(max(values))}


def _free_ram_gb() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    return None


def calibrate(candidate, channels: int, classes: int, patch: int, batch: int, precision: str, device: str,
              steps: int = 3) -> dict:
    """Training speed (pixels a second, from steps of ``batch`` x ``patch``²) and inference speed
    (from an image of ``patch``² x 4), timed after one warm-up step."""
    import torch

    from segfit.config import ModelConfig
    from segfit.models import create_model

    arch, encoder, depth, decoder = candidate
    dev = torch.device("cuda" if device == "gpu" else "cpu")
    net = create_model(ModelConfig(name=arch, encoder=encoder, encoder_depth=depth, decoder_channels=decoder,
                                   in_channels=channels, num_classes=classes)).to(dev).to(memory_format=torch.channels_last)
    out = 1 if classes == 2 else classes
    opt = torch.optim.AdamW(net.parameters(), 1e-3)
    x = torch.rand(batch, channels, patch, patch, device=dev).contiguous(memory_format=torch.channels_last)
    y = torch.rand(batch, out, patch, patch, device=dev)
    dtype = torch.bfloat16 if precision.startswith("bf16") else None
    times = []
    for _ in range(steps + 1):
        _sync(dev)
        t = time.perf_counter()
        with torch.autocast(dev.type, dtype=dtype, enabled=dtype is not None):
            loss = torch.nn.functional.mse_loss(net(x).float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        _sync(dev)
        times.append(time.perf_counter() - t)
    net.eval()
    v = torch.rand(1, channels, 2 * patch, 2 * patch, device=dev).contiguous(memory_format=torch.channels_last)
    with torch.inference_mode(), torch.autocast(dev.type, dtype=dtype, enabled=dtype is not None):
        net(v)
        _sync(dev)
        t = time.perf_counter()
        net(v)
        _sync(dev)
    infer = time.perf_counter() - t
    step = min(times[1:])
    return {"step_s": round(step, 4), "patch": patch, "batch": batch, "train_px_s": round(batch * patch**2 / step),
            "val_px_s": round(4 * patch**2 / (infer * 1.2))}


def _sync(dev) -> None:
    import torch

    if dev.type == "cuda":
        torch.cuda.synchronize()


def mask_reading(fp: dict) -> dict:
    """How the fingerprinted masks read: ``{option: (value, reason)}`` for ``classes``, ``mask_mode``,
    for masks that store classes as spread values or colours ``class_values``, and ``ignore_value``
    for masks that mark unlabelled pixels."""
    reading = _reading(fp)
    if fp.get("void_value") is not None:
        reading["ignore_value"] = (fp["void_value"], f"the class masks mark some pixels {fp['void_value']} (as Pascal VOC does "
                                                     "on object borders): unlabelled, in no loss, metric or class fraction")
    return reading


def _reading(fp: dict) -> dict:
    kind = fp["mask_kind"]
    binary = {"instance": "instance label maps (one id per object): foreground vs background",
              "binary_255": "0/255 masks", "binary_01": "0/1 masks"}.get(kind)
    if binary:
        return {"classes": (2, binary), "mask_mode": ("binary", binary)}
    if kind in ("coded", "colour"):
        values = fp["class_values"]
        what = "colour masks hold the colours" if kind == "colour" else "masks hold only the values"
        why = f"the {what} {', '.join(map(str, values))}: classes 0..{len(values) - 1}, in that order"
        if kind == "colour" and values[0] == colour_name(WHITE):
            why += " (white, with no black, is the background)"
        reading = {"classes": (len(values), why), "mask_mode": ("index", "class masks"),
                   "class_values": (values, why + ("; each class is named and drawn by its colour" if kind == "colour" else ""))}
        if kind == "coded" and min(values) > 0:  # no value 0: nothing says which class is the background
            reading["class_names"] = ([f"value{v}" for v in values], "no mask holds 0: each class is named by its value")
        return reading
    why = f"class-index masks with ids 0..{fp['num_classes'] - 1}"
    return {"classes": (fp["num_classes"], why), "mask_mode": ("index", "class-index masks")}


def reading_options(fp: dict) -> dict:
    """:func:`mask_reading` as options, without the reasons (``check``, ``show``, ``quantify``)."""
    return {option: value for option, (value, _) in mask_reading(fp).items()}
