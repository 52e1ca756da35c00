"""Data set layouts: where the images and their masks are, and which belong to which split.

Four layouts are found automatically (folder names in any case):

* **folders** — an image folder (``images/``, ``imgs/``, ``img/``, ...) beside a mask folder
  (``segmaps/``, ``masks/``, ``labels/``, ``gt/``, ``annotations/``, ...), paired by file stem
  (JPEG masks too, read as foreground/background);
* **flat** — one folder of ``NAME.jpg|png|tif`` with the mask ``NAME_bin.png`` beside each;
* **one folder per image** — ``ID/images/`` holding the image and ``ID/masks/`` its mask, or one mask
  file per object, read together as an instance map (Kaggle's Data Science Bowl 2018 nuclei);
* **split folders** — ``train/`` (and ``val/``, ``test/``) each holding one of the layouts above;
  the folders are the split (a ``test/`` without masks holds images to predict on and is left out).

A mask's name is its image's stem, or that stem with a suffix (``mask_suffix``, then the common ones:
``_mask``, ``_label``, ``_gt``, ...) or a prefix (``mask_``, ``label_``, ...).
"""

from __future__ import annotations

import os
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

from segfit.data.formats import IMAGE_EXTS, LOSSY_MASK_EXTS, MASK_EXTS, MASK_SUFFIXES, extra_masks, list_files, list_images
from segfit.data.naming import by_stem, flat_mask_of, image_stem, naming, one_mask_each, without_extras
from segfit.errors import SegfitError, require

IMAGE_FOLDERS = ("images", "imgs", "image", "img", "inputs", "input", "raw", "jpegimages")  # jpegimages: Pascal VOC
MASK_FOLDERS = ("segmaps", "masks", "labels", "label", "1st_manual", "mask", "gt", "groundtruth", "ground_truth",
                "annotations", "annotation", "segmentations", "segmentation", "targets", "target", "segmentationclass")
# X_masks/ (X_labels/, ...) beside X/ holds X's masks (Carvana's train/ + train_masks/, CamVid's train/ + train_labels/).
SIBLING_MASKS = ("_masks", "_mask", "_labels", "_label", "_gt", "_annotations", "_seg", "_segmentation")
SPLIT_FOLDERS = {"train": ("train", "training", "trainval"), "val": ("val", "valid", "validation"),
                 "test": ("test", "testing")}
SPLIT_NAMES = {n for names in SPLIT_FOLDERS.values() for n in names}


@dataclass(frozen=True)
class Sample:
    """One image and its mask (``mask`` is None for images to predict on)."""

    name: str
    image: Path
    mask: Path | None = None


@dataclass
class Layout:
    """What :func:`discover` found: the samples, a sentence describing the layout and, for split
    folders, the names in each (``{"train", "val", "test"}``; None otherwise)."""

    samples: list[Sample]
    description: str
    split: dict | None = field(default=None)


def discover(root: str | os.PathLike, images: str | None = None, masks: str | None = None,
             mask_suffix: str = "_bin", require_masks: bool = True) -> Layout:
    """Find image/mask pairs under ``root``.

    Args:
        root: the data set folder.
        images: image folder (relative to ``root`` or absolute); detected when None.
        masks: mask folder; detected when None.
        mask_suffix: the suffix tried first on mask names (``NAME_bin.png``); the common ones follow.
        require_masks: raise when an image has no mask.

    Returns:
        The samples sorted by name and a description of the layout.
    """
    root = Path(root)
    require(root, "data folder")
    if not root.is_dir():
        raise SegfitError("data path is not a folder", root, "give the folder that holds the images")
    if images is None and masks is None and _child(root, IMAGE_FOLDERS) is None and not list_files(root, IMAGE_EXTS):
        parts = {which: _child(root, names) for which, names in SPLIT_FOLDERS.items()}
        inner = [p for p in root.iterdir() if p.is_dir() and not p.name.startswith((".", "_"))]
        if parts["train"] is None and len(inner) == 1 and _data_set_like(inner[0]):  # a download's wrapper folder
            raise SegfitError("the data set is one folder down", inner[0], "give that folder as the data folder")
        if parts["train"] is not None:
            return _discover_split(root, {k: v for k, v in parts.items() if v is not None}, mask_suffix, require_masks)
        per_image = _discover_per_image(root, require_masks)
        if per_image is not None:
            return per_image
    suffixes = tuple(dict.fromkeys((mask_suffix, *MASK_SUFFIXES) if mask_suffix else MASK_SUFFIXES))
    image_dir = _pick(root, images, IMAGE_FOLDERS, "--images")
    unnamed = image_dir is None and images is None and masks is None and not list_files(root, IMAGE_EXTS)
    image_dir = image_dir or (_with_sibling_masks(root) if unnamed else None)  # folders of a root holding no images
    guessed = _guessed_pair(root) if unnamed and image_dir is None else None
    if image_dir is not None or guessed:
        image_dir, mask_dir = guessed or (image_dir, _pick(root, masks, MASK_FOLDERS, "--masks") if masks is not None
                                          else _mask_folder(root, image_dir))
        if mask_dir is None and images is not None and masks is None:  # --images X alone: X's own NAME + NAME_mask
            return discover(image_dir, mask_suffix=mask_suffix, require_masks=require_masks)
        if mask_dir is None and require_masks:
            raise SegfitError(f"no mask folder beside {image_dir.name}/", root,
                              f"add a masks/ folder (or {', '.join(MASK_FOLDERS[:3])}/), or name it with --masks")
        image_files = by_stem(list_files(image_dir, IMAGE_EXTS), "image")
        mask_files = by_stem(without_extras(list_files(mask_dir, MASK_EXTS + LOSSY_MASK_EXTS)), "mask") if mask_dir else {}
        mask_files = one_mask_each((p, image_stem(s, suffixes, image_files)) for s, p in mask_files.items())
        where = f"{_rel(image_dir, root)}/ with masks in {_rel(mask_dir, root)}/" if mask_dir else f"{_rel(image_dir, root)}/"
        if any(p.suffix.lower() in LOSSY_MASK_EXTS for p in mask_files.values()):
            where += " (JPEG masks are lossy: read as foreground where above half their maximum)"
    else:
        mask_dir = None
        if masks is not None:
            raise SegfitError("--masks needs an image folder", root, "name it with --images")
        files = without_extras(list_files(root, IMAGE_EXTS + MASK_EXTS))
        stems = {p.stem for p in files}
        mask_list = {p: base for p in files if (base := flat_mask_of(p, mask_suffix, suffixes, stems))}
        image_files = by_stem([p for p in files if p not in mask_list and p.suffix.lower() in IMAGE_EXTS], "image")
        mask_files = one_mask_each(mask_list.items())
        found = {naming(b, p.stem, p.suffix.lower()) for p, b in mask_list.items()}
        where = f"a flat folder of {next(iter(found)) if len(found) == 1 else f'NAME.ext + NAME{mask_suffix}.png'}"
    if not image_files and image_dir is not None and mask_dir is not None:  # images/training/ + annotations/training/
        parts = {which: d for which, names in SPLIT_FOLDERS.items() if (d := _child(image_dir, names)) is not None}
        masks_of = {which: d for which, names in SPLIT_FOLDERS.items() if (d := _child(mask_dir, names)) is not None}
        if "train" in parts and "train" in masks_of:
            return _discover_split(root, parts, mask_suffix, require_masks, masks_of)
        if (groups := _paired_groups(root, image_dir, mask_dir, mask_suffix, require_masks)) is not None:
            return groups
    if not image_files:
        folder = image_dir or root
        nested = sorted((d.name for d in folder.iterdir() if d.is_dir() and list_files(d, IMAGE_EXTS)),
                        key=lambda n: (bool(MASK_WORDS.search(n.lower())), n))  # image folders before mask folders
        if nested and (notes := _annotation_file(root, None)) is not None:  # (a guessed pair has images: not here)
            raise SegfitError(f"no mask images; {_rel(notes, root)} {UNREAD}", root, f"{DRAW}, in a masks/ folder beside "
                              "the images")
        if nested and image_dir is None and images is None and (groups := _discover_groups(
                root, [n for n in nested if not MASK_WORDS.search(n.lower())], mask_suffix, require_masks)) is not None:
            return groups
        if nested:  # images one level down: say where, since segfit reads one folder of images
            raise SegfitError(f"no images directly in this folder; its subfolders {', '.join(nested[:3])}"
                              + (" ..." if len(nested) > 3 else "") + " hold some", folder,
                              f"give one with --images {shlex.quote(_rel(folder / nested[0], root))}, or gather the images (and masks) "
                              "in one folder")
        below = sorted((d for d in folder.rglob("*") if d.is_dir() and len(d.relative_to(folder).parts) <= 3),
                       key=lambda d: ("im" not in str(d.relative_to(folder)).lower(), str(d)))  # leftImg8bit/ before gtFine/
        deeper = next((d for d in below if list_files(d, IMAGE_EXTS)), None)
        raise SegfitError("no images found", folder, f"{_rel(deeper, folder)}/ holds some: give its data set folder, or "
                          "gather the images (and masks) in one folder" if deeper else
                          f"put {'/'.join(e[1:] for e in IMAGE_EXTS)} files there, or name the folder with --images")
    samples, unlabelled = [], sum(stem not in mask_files for stem in image_files)
    if image_dir and require_masks and len(image_files) > unlabelled > len(image_files) / 2:  # most unlabelled (VOC's
        image_files = {k: v for k, v in image_files.items() if k in mask_files}  # detection images): the labelled ones
        where += f"; {unlabelled} images without a mask left out"
    for stem, path in sorted(image_files.items()):
        mask = mask_files.get(stem)
        if mask is None and require_masks:
            hint = f"{mask_dir.name}/{stem}.png" if image_dir is not None and mask_dir else f"{stem}{mask_suffix}.png"
            if (notes := _annotation_file(root, mask_dir)) is not None and not mask_files:
                raise SegfitError("image has no mask", path, f"{_rel(notes, root)} {UNREAD}: {DRAW} (e.g. pycocotools' "
                                  "annToMask)")
            raise SegfitError("image has no mask", path, f"add {hint} or remove the image")
        samples.append(Sample(stem, path, mask))
    n_masks = sum(s.mask is not None for s in samples)
    return Layout(samples, f"{len(samples)} images ({n_masks} with masks) in {where}{_numbered(samples)}")


def _numbered(samples: list[Sample]) -> str:
    """What the description says of images with numbered masks (``NAME_mask_1.png``), if any."""
    merged = sum(bool(extra_masks(s.mask)) for s in samples if s.mask is not None)
    return f"; {merged} with numbered masks (NAME_mask_1.png ...) read into their mask" if merged else ""


def find_images(inputs: list[str | os.PathLike]) -> list[tuple[Path, str]]:
    """Images to predict on, each with the name its outputs take: files named directly, a folder's own
    images or, for a folder that holds none itself, the images of the data set it holds (``images/``, one
    folder per image, split folders), named as training names them (``test_im0`` beside ``train``'s ``im0``)."""
    found: list[tuple[Path, str]] = []
    for item in inputs:
        path = Path(item)
        held = held_samples(path) if path.is_dir() and not list_files(path, IMAGE_EXTS) else None
        if held:
            found += [(s.image, s.name) for s in held]
        else:  # not a data set either: list_images says no images are there
            found += [(p, p.stem) for p in list_images([path])]
    return found


def held_samples(folder: Path) -> list[Sample] | None:
    """The samples of the data set ``folder`` holds (``images/`` + ``masks/``, one folder per image, split
    folders), masks or not; None when it holds none (``predict`` and ``quantify`` of a data set folder)."""
    try:
        return discover(folder, require_masks=False).samples or None
    except SegfitError:
        return None


def _discover_split(root: Path, parts: dict[str, Path], mask_suffix: str, require_masks: bool,
                    masks_of: dict[str, Path] | None = None) -> Layout:
    """``train/`` (``val/``, ``test/``) folders, each a data set of its own: the folders are the split
    (``masks_of``: each part's mask folder, as ``images/training/`` + ``annotations/training/``). A name found
    in an earlier folder is prefixed with the later folder's name."""
    samples: list[Sample] = []
    split: dict[str, list[str]] = {"train": [], "val": [], "test": []}
    said, seen = [], set()
    for which, folder in parts.items():
        masks = (masks_of or {}).get(which) or _sibling_masks(folder)  # train/ + train_masks/, or train/images/ + masks/
        layout = discover(root, _rel(folder, root), _rel(masks, root), mask_suffix, require_masks and which == "train") if masks \
            else discover(folder, mask_suffix=mask_suffix, require_masks=require_masks and which == "train")
        labelled = [s for s in layout.samples if s.mask is not None]
        if which != "train" and not labelled:  # images to predict on: not part of the split
            said.append(f"{folder.name}/ has no masks: left out (predict on it with segfit predict)")
            continue
        if which != "train" and require_masks and len(labelled) < len(layout.samples):
            missing = next(s for s in layout.samples if s.mask is None)
            raise SegfitError("image has no mask", missing.image, "add its mask or remove the image")
        split[which] += _gather(samples, seen, layout, folder)
        said.append(f"{folder.name}/ {len(layout.samples)} ({layout.description.split(' in ', 1)[-1]})")
    n_masks = sum(s.mask is not None for s in samples)
    return Layout(samples, f"{len(samples)} images ({n_masks} with masks) in split folders: " + "; ".join(said), split)


def _gather(samples: list[Sample], seen: set[str], layout: Layout, folder: Path) -> list[str]:
    """Add ``layout``'s samples to ``samples`` and their names to ``seen`` (a name already there gets the
    folder's prefix, ``folder_NAME``); returns the names."""
    names = []
    for s in layout.samples:
        name = s.name if s.name not in seen else f"{folder.name}_{s.name}"
        if name in seen:
            raise SegfitError(f"two images named {s.name!r}", s.image, "rename one of them")
        seen.add(name)
        samples.append(Sample(name, s.image, s.mask))
        names.append(name)
    return names


def _discover_groups(root: Path, names: list[str], mask_suffix: str, require_masks: bool) -> Layout | None:
    """Sub-folders that each hold a data set (BUSI's ``benign/ malignant/ normal/``, LGG's patient folders),
    gathered into one; None unless two or more of them are data sets with masks. A folder that is not one
    while the others are is an error (its problem is named)."""
    found, failed = [], None
    for name in names:
        try:
            layout = discover(root / name, mask_suffix=mask_suffix, require_masks=require_masks)
        except SegfitError as exc:
            failed = failed or exc
            continue
        if any(s.mask is not None for s in layout.samples):
            found.append((root / name, layout))
    if len(found) < 2:
        return None
    if failed is not None:
        raise failed
    return _gathered(found)


def _paired_groups(root: Path, image_dir: Path, mask_dir: Path, mask_suffix: str, require_masks: bool) -> Layout | None:
    """``images/GROUP/`` beside ``masks/GROUP/`` (a folder per city, patient or slide, mirrored): the groups
    gathered into one; None when no image sub-folder has a mask folder of its name."""
    groups = [d for d in sorted(image_dir.iterdir()) if d.is_dir() and list_files(d, IMAGE_EXTS)]
    if mask_dir.name in {d.name for d in groups} and not any((mask_dir / d.name).is_dir() for d in groups):
        mask_dir = mask_dir.parent  # the mask folder found was the first group's
    pairs = [(d, mask_dir / d.name) for d in groups if (mask_dir / d.name).is_dir()]
    if not pairs:
        return None
    if require_masks and (alone := next((d for d in groups if not (mask_dir / d.name).is_dir()), None)) is not None:
        raise SegfitError(f"no mask folder {_rel(mask_dir / alone.name, root)}/ for these images", alone,
                          f"add it (the other folders of {image_dir.name}/ have theirs) or move the images out")
    return _gathered([(images, discover(root, _rel(images, root), _rel(masks, root), mask_suffix, require_masks))
                      for images, masks in pairs], f"{_rel(image_dir, root)}/ with masks in {_rel(mask_dir, root)}/ of the same names")


def _gathered(found: list[tuple[Path, Layout]], what: str | None = None) -> Layout:
    """One layout of the folders' own (a name met before gets its folder's prefix); ``what``: the folders' layout."""
    samples: list[Sample] = []
    seen: set[str] = set()
    for folder, layout in found:
        _gather(samples, seen, layout, folder)
    if what is None:
        kinds = {layout.description.split(" in ", 1)[-1].split("; ")[0] for _, layout in found}
        what = "each " + (next(iter(kinds)) if len(kinds) == 1 else "their own layouts")
    shown = ", ".join(f"{f.name}/" for f, _ in found[:4]) + (f" and {len(found) - 4} more" if len(found) > 4 else "")
    n_masks = sum(s.mask is not None for s in samples)
    return Layout(samples, f"{len(samples)} images ({n_masks} with masks) gathered from {len(found)} folders ({shown}), "
                           f"{what}{_numbered(samples)}")


def _discover_per_image(root: Path, require_masks: bool) -> Layout | None:
    """One folder per image, ``ID/images/`` holding the image and ``ID/masks/`` its mask or one mask per
    object (Kaggle's Data Science Bowl 2018); None when most of ``root``'s folders are not like that."""
    folders = [p for p in sorted(root.iterdir()) if p.is_dir() and not p.name.startswith(".")]
    found = [(d, image_dir) for d in folders if (image_dir := _child(d, IMAGE_FOLDERS)) is not None]
    if not found or 2 * len(found) < len(folders):
        return None
    samples, per_object = [], 0
    for folder, image_dir in found:
        images = list_files(image_dir, IMAGE_EXTS)
        if len(images) != 1:
            raise SegfitError(f"{len(images)} images in a folder of one image's files", image_dir,
                              f"keep exactly one image in {folder.name}/{image_dir.name}/")
        mask_dir = _child(folder, MASK_FOLDERS)
        masks = list_files(mask_dir, MASK_EXTS) if mask_dir is not None else []
        if not masks and require_masks:
            raise SegfitError("image has no mask", images[0], f"add its masks to {folder.name}/masks/ or remove the folder")
        per_object += len(masks) > 1
        samples.append(Sample(folder.name, images[0], masks[0] if len(masks) == 1 else mask_dir if masks else None))
    n_masks = sum(s.mask is not None for s in samples)
    how = "one mask per object in ID/masks/" if per_object else "its mask in ID/masks/"
    return Layout(samples, f"{len(samples)} images ({n_masks} with masks) in one folder each: ID/images/ with {how}")


def _child(root: Path, names: tuple[str, ...]) -> Path | None:
    """The first of ``names`` that is a folder in ``root`` (any case)."""
    folders = {p.name.lower(): p for p in root.iterdir() if p.is_dir()}
    return next((folders[n] for n in names if n in folders), None)


MASK_WORDS = re.compile(r"mask|label|ground.?truth|anno|seg|(^|[^a-z])gt([^a-z]|$)")  # a folder name that says masks


def _guessed_pair(root: Path) -> tuple[Path, Path] | None:
    """Folders of other names that pair: one whose name says masks (ISIC's ``..._GroundTruth/``, CVC's
    ``Ground Truth/``, ``train_masks/``) holding the masks of another's images (``..._Input/``, ``Original/``,
    ``train_images/``); the pair sharing the most names, None when none share any."""
    dirs = [d for d in sorted(root.iterdir()) if d.is_dir() and not d.name.startswith(".")]
    masks = [d for d in dirs if MASK_WORDS.search(d.name.lower())]
    best, most = None, 0
    for folder in (d for d in dirs if d not in masks):
        stems = {p.stem for p in list_files(folder, IMAGE_EXTS)}
        for m in masks:
            shared = sum(image_stem(p.stem, MASK_SUFFIXES, stems) in stems for p in list_files(m, MASK_EXTS + LOSSY_MASK_EXTS))
            best, most = ((folder, m), shared) if shared > most else (best, most)
    return best


def _mask_folder(root: Path, image_dir: Path) -> Path | None:
    """The masks of ``image_dir``: ``IMAGE_DIR_masks/`` beside it, else the first mask folder of ``root``
    that holds mask files (Pascal VOC's ``Annotations/`` holds XML, its masks are in ``SegmentationClass/``)."""
    sibling = _sibling_masks(image_dir)
    if sibling is not None:
        return sibling
    folders = {p.name.lower(): p for p in root.iterdir() if p.is_dir()}
    present = [folders[n] for n in MASK_FOLDERS if n in folders]
    present += [sub for d in present for sub in sorted(d.iterdir())  # (split subfolders: a split layout, read as such)
                if sub.is_dir() and sub.name.lower() not in SPLIT_NAMES]
    return next((d for d in present if list_files(d, MASK_EXTS + LOSSY_MASK_EXTS)), present[0] if present else None)


UNREAD = "holds annotations segfit does not read (COCO polygons, XML, YOLO .txt, run-length CSV)"
DRAW = "draw them into one mask image per image first"


def _annotation_file(root: Path, mask_dir: Path | None) -> Path | None:
    """An annotation file segfit does not read (:data:`UNREAD`) in the mask folder or the data folder."""
    for folder in (mask_dir, root, root / "annotations"):
        if folder is not None and folder.is_dir():
            found = next((p for p in sorted(folder.iterdir()) if p.suffix.lower() in (".json", ".xml")
                          or (p.suffix.lower() == ".txt" and folder.name.lower() == "labels")  # YOLO's polygons
                          or (p.suffix.lower() == ".csv" and "encodedpixels" in _head(p))), None)  # run lengths
            if found is not None:
                return found
    return None


def _head(path: Path) -> str:
    try:
        with open(path, errors="replace") as f:
            return f.readline().lower()
    except OSError:
        return ""


def _data_set_like(folder: Path) -> bool:
    """Whether ``folder`` holds a data set's folders (images/, split folders) or folders of them."""
    images = _child(folder, IMAGE_FOLDERS)
    if images is not None:  # one image there: a folder of one image's files (Data Science Bowl), not a wrapper
        return len(list_files(images, IMAGE_EXTS)) != 1
    if len(list_files(folder, IMAGE_EXTS)) > 1:  # a flat data set (GlaS: train_1.bmp + train_1_anno.bmp)
        return True
    subs = [p for p in folder.iterdir() if p.is_dir()]
    return (any(p.name.lower() in SPLIT_NAMES for p in subs) or any(_child(p, IMAGE_FOLDERS + tuple(SPLIT_NAMES)) for p in subs[:3])
            or sum(len(list_files(p, IMAGE_EXTS)) > 1 for p in subs[:3]) >= 2)  # folders of flat data sets (LGG's patients)


def _with_sibling_masks(root: Path) -> Path | None:
    """A folder of ``root`` that has ``X_masks/`` (:data:`SIBLING_MASKS`) beside it: an image folder."""
    return next((d for d in sorted(root.iterdir()) if d.is_dir() and _sibling_masks(d) is not None
                 and list_files(d, IMAGE_EXTS)), None)


def _sibling_masks(folder: Path) -> Path | None:
    """``X_masks/`` (:data:`SIBLING_MASKS`) beside ``X/``, if there is one."""
    siblings = {p.name.lower(): p for p in folder.parent.iterdir() if p.is_dir()}
    return next((siblings[n] for n in (folder.name.lower() + s for s in SIBLING_MASKS) if n in siblings), None)


def _pick(root: Path, given: str | None, candidates: tuple[str, ...], flag: str) -> Path | None:
    if given is not None:
        path = Path(given) if Path(given).is_absolute() else root / given
        if not path.is_dir():
            raise SegfitError(f"{flag} folder not found", path, "check the name")
        return path
    return _child(root, candidates)


def _rel(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)
