"""Data set layouts (discover), image/mask readers, class-id conversion and split files."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pytest
import tifffile
from hypothesis import given, settings, strategies as st
from hypothesis.extra import numpy as hnp
from PIL import Image

from segfit.data.preprocess import resize_mask
from segfit.data.formats import (
    read_image,
    read_mask,
    read_split_file,
    to_class_ids,
)
from segfit.data.layouts import MASK_FOLDERS, discover
from segfit.errors import SegfitError

RED_LUMA = round(0.299 * 255)  # 76
GREEN_LUMA = round(0.587 * 255)  # 150


def _png(path: Path, arr: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)
    return path


def _grey(value: int = 100, shape=(6, 5)) -> np.ndarray:
    return np.full(shape, value, np.uint8)


def _mask(shape=(6, 5)) -> np.ndarray:
    m = np.zeros(shape, np.uint8)
    m[1:3, 1:3] = 1
    return m


def _folders(root: Path, mask_folder: str = "segmaps", names=("a", "b"), mask_suffix: str = "") -> Path:
    for n in names:
        _png(root / "images" / f"{n}.png", _grey())
        _png(root / mask_folder / f"{n}{mask_suffix}.png", _mask())
    return root


# ---------------------------------------------------------------------------------------------
# discover: layouts


@pytest.mark.parametrize("mask_folder", MASK_FOLDERS)
def test_discover_folders_layout_each_mask_folder(tmp_path, mask_folder):
    _folders(tmp_path, mask_folder, names=("b", "a", "c"))
    layout = discover(tmp_path)
    assert [s.name for s in layout.samples] == ["a", "b", "c"]
    for s in layout.samples:
        assert s.image == tmp_path / "images" / f"{s.name}.png"
        assert s.mask == tmp_path / mask_folder / f"{s.name}.png"
    assert layout.description == f"3 images (3 with masks) in images/ with masks in {mask_folder}/"


def test_mask_folders_are_searched_in_order(tmp_path):
    _folders(tmp_path, "masks")
    _folders(tmp_path, "labels")
    layout = discover(tmp_path)
    assert all(s.mask.parent.name == "masks" for s in layout.samples)


def test_discover_masks_carrying_suffix(tmp_path):
    _folders(tmp_path, "masks", names=("x", "y"), mask_suffix="_bin")
    layout = discover(tmp_path)
    assert [(s.name, s.mask.name) for s in layout.samples] == [("x", "x_bin.png"), ("y", "y_bin.png")]


def test_discover_masks_carrying_custom_suffix(tmp_path):
    _folders(tmp_path, "labels", names=("x",), mask_suffix="_gt")
    layout = discover(tmp_path, mask_suffix="_gt")
    assert layout.samples[0].mask == tmp_path / "labels" / "x_gt.png"


def test_discover_mask_of_other_extension_and_hidden_files_skipped(tmp_path):
    _png(tmp_path / "images" / "a.png", _grey())
    _png(tmp_path / "images" / ".hidden.png", _grey())
    (tmp_path / "images" / "notes.txt").write_text("x")
    (tmp_path / "segmaps").mkdir()
    np.save(tmp_path / "segmaps" / "a.npy", _mask())
    layout = discover(tmp_path)
    assert [(s.name, s.mask.name) for s in layout.samples] == [("a", "a.npy")]


def test_discover_images_masks_overrides(tmp_path):
    for n in ("p", "q"):
        _png(tmp_path / "pics" / f"{n}.png", _grey())
        _png(tmp_path / "gt" / f"{n}.png", _mask())
    layout = discover(tmp_path, images="pics", masks="gt")
    assert [(s.image.parent.name, s.mask.parent.name) for s in layout.samples] == [("pics", "gt")] * 2
    assert "pics/ with masks in gt/" in layout.description


def test_discover_overrides_absolute_and_beside_default_folders(tmp_path):
    _folders(tmp_path, "segmaps", names=("a",))
    _png(tmp_path / "other" / "a.png", _mask() * 2)
    layout = discover(tmp_path, masks=str(tmp_path / "other"))
    assert layout.samples[0].mask == tmp_path / "other" / "a.png"


def test_discover_override_folder_missing(tmp_path):
    _folders(tmp_path)
    with pytest.raises(SegfitError) as e:
        discover(tmp_path, images="nope")
    assert e.value.what == "--images folder not found"
    assert e.value.file == str(tmp_path / "nope")
    with pytest.raises(SegfitError, match="--masks folder not found"):
        discover(tmp_path, masks="nada")


def test_discover_masks_override_without_image_folder(tmp_path):
    _png(tmp_path / "a.png", _grey())
    (tmp_path / "gt").mkdir()
    with pytest.raises(SegfitError) as e:
        discover(tmp_path, masks="gt")
    assert "--images" in e.value.fix


def test_discover_flat_layout_mixed_extensions(tmp_path):
    _png(tmp_path / "a.png", _grey())
    Image.fromarray(np.stack([_grey()] * 3, -1)).save(tmp_path / "b.jpg")
    tifffile.imwrite(tmp_path / "c.tif", _grey())
    for n in "abc":
        _png(tmp_path / f"{n}_bin.png", _mask())
    layout = discover(tmp_path)
    assert [(s.name, s.image.name, s.mask.name) for s in layout.samples] == [
        ("a", "a.png", "a_bin.png"), ("b", "b.jpg", "b_bin.png"), ("c", "c.tif", "c_bin.png")]
    assert layout.description == "3 images (3 with masks) in a flat folder of NAME.ext + NAME_bin.png"


def test_discover_flat_layout_custom_suffix(tmp_path):
    for n in ("one", "two"):
        Image.fromarray(np.stack([_grey()] * 3, -1)).save(tmp_path / f"{n}.jpg")
        _png(tmp_path / f"{n}_mask.png", _mask())
    layout = discover(tmp_path, mask_suffix="_mask")
    assert [(s.name, s.mask.name) for s in layout.samples] == [("one", "one_mask.png"), ("two", "two_mask.png")]
    # The default suffix (_bin) finds none; the common _mask suffix is tried next.
    assert [(s.name, s.mask.name) for s in discover(tmp_path).samples] == [("one", "one_mask.png"), ("two", "two_mask.png")]
    # A mask name no rule knows is an image of its own, without a mask.
    (tmp_path / "two_mask.png").rename(tmp_path / "two_xyz.png")
    with pytest.raises(SegfitError, match="image has no mask"):
        discover(tmp_path)


def test_discover_without_masks_allowed(tmp_path):
    _png(tmp_path / "a.png", _grey())
    _png(tmp_path / "b.png", _grey())
    _png(tmp_path / "b_bin.png", _mask())
    layout = discover(tmp_path, require_masks=False)
    assert [(s.name, s.mask) for s in layout.samples] == [("a", None), ("b", tmp_path / "b_bin.png")]
    assert layout.description.startswith("2 images (1 with masks)")


# ---------------------------------------------------------------------------------------------
# discover: errors


def test_discover_missing_root(tmp_path):
    with pytest.raises(SegfitError) as e:
        discover(tmp_path / "absent")
    assert e.value.what == "data folder not found"
    assert e.value.file == str(tmp_path / "absent")
    assert "absent" in str(e.value)


def test_discover_root_is_a_file(tmp_path):
    f = _png(tmp_path / "a.png", _grey())
    with pytest.raises(SegfitError, match="not a folder"):
        discover(f)


def test_discover_empty_flat_folder(tmp_path):
    with pytest.raises(SegfitError) as e:
        discover(tmp_path)
    assert e.value.what == "no images found"
    assert e.value.file == str(tmp_path)


def test_discover_empty_images_folder(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "segmaps").mkdir()
    with pytest.raises(SegfitError) as e:
        discover(tmp_path)
    assert e.value.what == "no images found"
    assert e.value.file == str(tmp_path / "images")


def test_images_to_predict_one_folder_down_are_named(tmp_path):
    from segfit.data.formats import list_images

    for group in ("g1", "g2"):
        _png(tmp_path / "in" / group / "a.png", _grey())
    with pytest.raises(SegfitError, match="no images found") as e:
        list_images([tmp_path / "in"])
    assert e.value.fix == "its subfolders g1, g2 hold some: give those folders"
    assert [p.parent.name for p in list_images([tmp_path / "in" / "g1", tmp_path / "in" / "g2"])] == ["g1", "g2"]
    (tmp_path / "empty").mkdir()
    with pytest.raises(SegfitError, match="no images found") as e:
        list_images([tmp_path / "empty"])
    assert e.value.fix == "give image files or folders that hold them"


def test_discover_images_folder_without_mask_folder(tmp_path):
    _png(tmp_path / "images" / "a.png", _grey())
    with pytest.raises(SegfitError) as e:
        discover(tmp_path)
    assert "no mask folder" in e.value.what
    assert "segmaps" in e.value.fix
    assert discover(tmp_path, require_masks=False).samples[0].mask is None


def test_discover_image_without_mask_folders(tmp_path):
    _folders(tmp_path, "masks", names=("a",))
    _png(tmp_path / "images" / "b.png", _grey())
    with pytest.raises(SegfitError) as e:
        discover(tmp_path)
    assert e.value.what == "image has no mask"
    assert e.value.file == str(tmp_path / "images" / "b.png")
    assert "masks/b.png" in e.value.fix


def test_discover_image_without_mask_flat(tmp_path):
    _png(tmp_path / "a.png", _grey())
    _png(tmp_path / "a_bin.png", _mask())
    _png(tmp_path / "z.png", _grey())
    with pytest.raises(SegfitError) as e:
        discover(tmp_path)
    assert e.value.file == str(tmp_path / "z.png")
    assert "z_bin.png" in e.value.fix


def test_discover_duplicate_image_stems(tmp_path):
    _folders(tmp_path, names=("a",))
    Image.fromarray(np.stack([_grey()] * 3, -1)).save(tmp_path / "images" / "a.jpg")
    with pytest.raises(SegfitError) as e:
        discover(tmp_path)
    assert e.value.what == "two images named 'a'"
    assert "a.jpg" in e.value.fix and "a.png" in e.value.fix


def test_discover_duplicate_mask_stems(tmp_path):
    _folders(tmp_path, names=("a",))
    tifffile.imwrite(tmp_path / "segmaps" / "a.tif", _mask())
    with pytest.raises(SegfitError, match="two masks named 'a'"):
        discover(tmp_path)


def test_discover_duplicate_stems_flat(tmp_path):
    _png(tmp_path / "a.png", _grey())
    tifffile.imwrite(tmp_path / "a.tif", _grey())
    _png(tmp_path / "a_bin.png", _mask())
    with pytest.raises(SegfitError, match="two images named 'a'"):
        discover(tmp_path)


# ---------------------------------------------------------------------------------------------
# read_image


def _rgb_pixels() -> np.ndarray:
    arr = np.zeros((2, 3, 3), np.uint8)
    arr[0, 0] = (255, 0, 0)
    arr[0, 1] = (0, 255, 0)
    arr[0, 2] = (0, 0, 255)
    arr[1, :] = (10, 20, 30)
    return arr


def test_read_image_grey_png(tmp_path):
    arr = np.arange(30, dtype=np.uint8).reshape(5, 6)
    p = _png(tmp_path / "g.png", arr)
    one = read_image(p, 1)
    assert one.shape == (5, 6, 1) and one.dtype == np.uint8
    np.testing.assert_array_equal(one[..., 0], arr)
    three = read_image(p, 3)
    assert three.shape == (5, 6, 3) and three.dtype == np.uint8
    for c in range(3):
        np.testing.assert_array_equal(three[..., c], arr)


def test_read_image_rgb_png(tmp_path):
    arr = _rgb_pixels()
    p = _png(tmp_path / "c.png", arr)
    np.testing.assert_array_equal(read_image(p, 3), arr)
    grey = read_image(p, 1)
    assert grey.shape == (2, 3, 1) and grey.dtype == np.uint8
    assert grey[0, 0, 0] == RED_LUMA == 76
    assert grey[0, 1, 0] == GREEN_LUMA == 150
    assert grey[0, 2, 0] == round(0.114 * 255)


def test_read_image_rgba_png_drops_alpha(tmp_path):
    arr = np.zeros((2, 2, 4), np.uint8)
    arr[..., 0] = 255
    arr[..., 3] = np.array([[0, 50], [128, 255]])
    p = _png(tmp_path / "a.png", arr)
    rgb = read_image(p, 3)
    assert rgb.shape == (2, 2, 3)
    np.testing.assert_array_equal(rgb, np.broadcast_to(np.array([255, 0, 0], np.uint8), (2, 2, 3)))
    grey = read_image(p, 1)
    assert grey.shape == (2, 2, 1)
    assert np.all(grey == RED_LUMA)


def test_read_image_16bit_png_kept(tmp_path):
    arr = np.array([[0, 300, 65535], [1, 4096, 40000]], np.uint16)
    p = _png(tmp_path / "s.png", arr)
    assert Image.open(p).mode == "I;16"
    one = read_image(p, 1)
    assert one.dtype == np.uint16 and one.shape == (2, 3, 1)
    np.testing.assert_array_equal(one[..., 0], arr)
    three = read_image(p, 3)
    assert three.dtype == np.uint16 and three.shape == (2, 3, 3)
    np.testing.assert_array_equal(three[..., 2], arr)


def test_read_image_jpg(tmp_path):
    arr = np.zeros((16, 16, 3), np.uint8)
    arr[:] = (200, 100, 50)
    p = tmp_path / "x.jpg"
    Image.fromarray(arr).save(p, quality=95)
    rgb = read_image(p, 3)
    assert rgb.shape == (16, 16, 3) and rgb.dtype == np.uint8
    assert np.abs(rgb.astype(int) - arr).max() <= 3
    grey = read_image(p, 1)
    expected = 0.299 * 200 + 0.587 * 100 + 0.114 * 50
    assert grey.shape == (16, 16, 1)
    assert abs(float(grey.mean()) - expected) <= 3


def test_photos_are_read_upright_as_viewers_show_them(tmp_path):
    """A phone's JPEG stores its pixels sideways with an EXIF orientation (6: turn 90 degrees clockwise): read, it is
    the picture viewers and annotation tools show, its size read from the header agrees, and `check` says so and
    accepts a mask drawn on that view."""
    from segfit.data.check import check
    from segfit.data.datamodule import _image_size

    shown = np.zeros((40, 24, 3), np.uint8)  # upright: 40 rows, 24 columns, a bright block at the top left
    shown[2:12, 2:10] = 250
    exif = Image.Exif()
    exif[0x0112] = 6
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    for i in range(2):
        stored = np.ascontiguousarray(np.rot90(shown, 1))  # as the camera stored it
        Image.fromarray(stored).save(tmp_path / "images" / f"p{i}.jpg", exif=exif.tobytes(), quality=98)
        Image.fromarray(((shown[..., 0] > 128) * 255).astype(np.uint8)).save(tmp_path / "masks" / f"p{i}.png")
    rgb = read_image(tmp_path / "images" / "p0.jpg", 3)
    assert rgb.shape == (40, 24, 3) and np.abs(rgb.astype(int) - shown).mean() < 3
    assert _image_size(tmp_path / "images" / "p0.jpg") == (40, 24)
    report = check(tmp_path, verbose=False)
    assert report.ok and report.turned == 2, report.lines()
    assert any("EXIF orientation" in line for line in report.lines())
    assert "Masks read as: 0/255 masks" in report.lines()  # check says how it read the masks


def test_read_image_tiff_grey_and_rgb(tmp_path):
    g = (np.arange(20, dtype=np.uint16) * 1000).reshape(4, 5)
    tifffile.imwrite(tmp_path / "g.tif", g)
    out = read_image(tmp_path / "g.tif", 1)
    assert out.dtype == np.uint16 and out.shape == (4, 5, 1)
    np.testing.assert_array_equal(out[..., 0], g)
    rgb = _rgb_pixels()
    tifffile.imwrite(tmp_path / "c.tiff", rgb)
    np.testing.assert_array_equal(read_image(tmp_path / "c.tiff", 3), rgb)
    grey = read_image(tmp_path / "c.tiff", 1)
    assert grey.dtype == np.uint8
    assert grey[0, 0, 0] == RED_LUMA
    assert grey[0, 1, 0] == GREEN_LUMA
    assert grey[1, 0, 0] == round(0.299 * 10 + 0.587 * 20 + 0.114 * 30)
    from segfit.data.check import _file_channels  # check names TIFF files as it names PNG files

    Image.fromarray(rgb).save(tmp_path / "c.png")
    assert _file_channels(tmp_path / "c.tiff") == _file_channels(tmp_path / "c.png") == "RGB"
    assert _file_channels(tmp_path / "g.tif") == "grey 16-bit"


def test_read_image_tiff_channels_first(tmp_path):
    hwc = np.random.default_rng(0).integers(0, 255, (6, 7, 3), dtype=np.uint8)
    tifffile.imwrite(tmp_path / "cf.tif", np.moveaxis(hwc, -1, 0), photometric="minisblack")
    assert tifffile.imread(tmp_path / "cf.tif").shape == (3, 6, 7)
    out = read_image(tmp_path / "cf.tif", 3)
    assert out.shape == (6, 7, 3)
    np.testing.assert_array_equal(out, hwc)


def test_read_image_tiff_float_and_int32(tmp_path):
    f = np.array([[0.0, 0.25], [0.5, 1.0]], np.float32)
    tifffile.imwrite(tmp_path / "f.tif", f)
    out = read_image(tmp_path / "f.tif", 3)
    assert out.dtype == np.float32 and out.shape == (2, 2, 3)
    np.testing.assert_array_equal(out[..., 1], f)
    i = np.array([[0, 70000]], np.int32)  # beyond 16 bits: scaled to [0, 1] floats
    tifffile.imwrite(tmp_path / "i.tif", i)
    out = read_image(tmp_path / "i.tif", 1)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out[..., 0], [[0.0, 1.0]])
    small = np.array([[0, 500]], np.int32)
    tifffile.imwrite(tmp_path / "s.tif", small)
    out = read_image(tmp_path / "s.tif", 1)
    assert out.dtype == np.uint16
    np.testing.assert_array_equal(out[..., 0], small)


def test_read_image_rejects_3d_stack(tmp_path):
    tifffile.imwrite(tmp_path / "stack.tif", np.zeros((5, 6, 7, 8), np.uint8))
    with pytest.raises(SegfitError) as e:
        read_image(tmp_path / "stack.tif", 1)
    assert "stack.tif" in str(e.value)
    tifffile.imwrite(tmp_path / "volume.tif", np.zeros((12, 16, 16), np.uint8))  # ISBI 2012's train-volume.tif
    with pytest.raises(SegfitError, match=r"stack of 12 planes \(12x16x16\).*one file per page"):
        read_image(tmp_path / "volume.tif", 1)


@pytest.mark.parametrize("reader", [lambda p: read_image(p, 3), read_mask], ids=["image", "mask"])
def test_corrupt_files(tmp_path, reader):
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    with pytest.raises(SegfitError) as e:
        reader(empty)
    assert "0 bytes" in e.value.what and e.value.file == str(empty)

    text = tmp_path / "text.png"
    text.write_text("this is not an image\n")
    with pytest.raises(SegfitError) as e:
        reader(text)
    assert "cannot read" in e.value.what and "text.png" in str(e.value)

    good = _png(tmp_path / "good.png", np.random.default_rng(0).integers(0, 255, (64, 64), dtype=np.uint8))
    data = good.read_bytes()
    trunc = tmp_path / "trunc.png"
    trunc.write_bytes(data[: len(data) // 2])
    with pytest.raises(SegfitError) as e:
        reader(trunc)
    assert "cannot read" in e.value.what and e.value.file == str(trunc)

    with pytest.raises(SegfitError, match="not found"):
        reader(tmp_path / "missing.png")


# ---------------------------------------------------------------------------------------------
# read_mask


def test_read_mask_8bit_png(tmp_path):
    m = np.array([[0, 1, 2], [3, 0, 255]], np.uint8)
    out = read_mask(_png(tmp_path / "m.png", m))
    assert out.dtype == np.uint8 and out.shape == (2, 3)
    np.testing.assert_array_equal(out, m)


def test_read_mask_16bit_png(tmp_path):
    m = np.array([[0, 1, 2], [300, 0, 65535]], np.uint16)
    out = read_mask(_png(tmp_path / "m.png", m))
    assert out.dtype == np.uint16
    np.testing.assert_array_equal(out, m)


def test_read_mask_tiff_and_npy(tmp_path):
    m = np.array([[0, 7], [1000, 2]], np.uint16)
    tifffile.imwrite(tmp_path / "m.tif", m)
    np.testing.assert_array_equal(read_mask(tmp_path / "m.tif"), m)
    np.save(tmp_path / "m.npy", m.astype(np.int64))
    out = read_mask(tmp_path / "m.npy")
    assert out.dtype == np.int64
    np.testing.assert_array_equal(out, m)


def test_read_mask_npy_float_integer_values(tmp_path):
    np.save(tmp_path / "f.npy", np.array([[0.0, 1.0], [2.0, 0.0]], np.float32))
    out = read_mask(tmp_path / "f.npy")
    assert out.dtype.kind == "i"
    np.testing.assert_array_equal(out, [[0, 1], [2, 0]])
    np.save(tmp_path / "h.npy", np.array([[0.0, 0.5]]))
    with pytest.raises(SegfitError, match="non-integer"):
        read_mask(tmp_path / "h.npy")
    np.save(tmp_path / "n.npy", np.array([[0.0, np.nan]]))
    with pytest.raises(SegfitError, match="non-integer"):
        read_mask(tmp_path / "n.npy")


def test_read_mask_npy_bool_and_negative(tmp_path):
    np.save(tmp_path / "b.npy", np.array([[True, False]]))
    out = read_mask(tmp_path / "b.npy")
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out, [[1, 0]])
    np.save(tmp_path / "neg.npy", np.array([[0, -1]], np.int32))
    with pytest.raises(SegfitError, match="negative"):
        read_mask(tmp_path / "neg.npy")
    np.save(tmp_path / "vol.npy", np.zeros((2, 3, 5), np.uint8))
    with pytest.raises(SegfitError, match=r"stack of 2 planes \(2x3x5\).*one 2-D mask per image"):
        read_mask(tmp_path / "vol.npy")


def test_read_mask_one_bit_png(tmp_path):
    Image.fromarray(np.array([[True, False], [False, True]])).convert("1").save(tmp_path / "b.png")
    out = read_mask(tmp_path / "b.png")
    np.testing.assert_array_equal(out > 0, [[True, False], [False, True]])


def test_read_mask_colour_rgb_rejected(tmp_path):
    m = np.full((4, 4, 3), 255, np.uint8)
    m[0, 0] = (0, 0, 255)
    p = _png(tmp_path / "colour.png", m)
    with pytest.raises(SegfitError) as e:
        read_mask(p)
    assert e.value.what == "mask is a colour image"
    assert "convert-masks" in e.value.fix
    assert e.value.file == str(p)


def test_read_mask_grey_rgb_accepted(tmp_path):
    g = np.array([[0, 1], [2, 0]], np.uint8)
    p = _png(tmp_path / "grey.png", np.repeat(g[..., None], 3, -1))
    out = read_mask(p)
    assert out.shape == (2, 2)
    np.testing.assert_array_equal(out, g)
    rgba = np.concatenate([np.repeat(g[..., None], 3, -1), np.full((2, 2, 1), 255, np.uint8)], -1)
    np.testing.assert_array_equal(read_mask(_png(tmp_path / "grey_a.png", rgba)), g)


# ---------------------------------------------------------------------------------------------
# to_class_ids


def test_to_class_ids_binary_instance_map():
    inst = np.array([[0, 3, 3], [7, 0, 65535]], np.uint16)
    out = to_class_ids(inst, "binary", 2)
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out, [[0, 1, 1], [1, 0, 1]])


def test_to_class_ids_index_valid():
    m = np.array([[0, 1], [2, 2]], np.uint16)
    out = to_class_ids(m, "index", 3)
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out, m)


def test_to_class_ids_index_0_255_suggests_binary():
    with pytest.raises(SegfitError) as e:
        to_class_ids(np.array([[0, 255]], np.uint8), "index", 2, Path("m.png"))
    assert "--mask-mode binary" in e.value.fix
    assert e.value.file == "m.png"


def test_to_class_ids_index_values_out_of_range():
    m = np.array([[0, 1, 5], [7, 2, 5]], np.uint8)
    with pytest.raises(SegfitError) as e:
        to_class_ids(m, "index", 3, Path("m.png"))
    assert "[5, 7]" in e.value.what
    assert "0..2" in e.value.what
    assert "--classes" in e.value.fix
    many = np.arange(20, dtype=np.uint8).reshape(4, 5)
    with pytest.raises(SegfitError) as e:
        to_class_ids(many, "index", 2)
    assert "[2, 3, 4, 5, 6, 7, ...]" in e.value.what


# ---------------------------------------------------------------------------------------------
# read_split_file


def test_read_split_file_with_header(tmp_path):
    p = tmp_path / "train.csv"
    p.write_text('name,split\na.png,train\n"b",train\n\nc.JPG,x\nd.v2\n')
    assert read_split_file(p) == ["a", "b", "c", "d.v2"]


def test_read_split_file_without_header(tmp_path):
    p = tmp_path / "test.csv"
    p.write_text("img_001\nimg_002.tif\n  img_003  \n")
    assert read_split_file(p) == ["img_001", "img_002", "img_003"]


# ---------------------------------------------------------------------------------------------
# Properties

_dtypes = st.sampled_from([np.uint8, np.uint16, np.int32])
_shapes = st.tuples(st.integers(1, 12), st.integers(1, 12))


@st.composite
def _mask_arrays(draw, dtypes=_dtypes):
    dtype = np.dtype(draw(dtypes))
    top = min(np.iinfo(dtype).max, 100_000)
    return draw(hnp.arrays(dtype, draw(_shapes), elements=st.integers(0, top)))


@settings(max_examples=25, deadline=None)
@given(arr=_mask_arrays())
def test_property_npy_and_tif_round_trip(arr):
    with tempfile.TemporaryDirectory() as d:
        for name, write in (("m.npy", np.save), ("m.tif", tifffile.imwrite)):
            p = Path(d) / name
            write(p, arr)
            out = read_mask(p)
            assert out.dtype == arr.dtype
            assert out.shape == arr.shape
            np.testing.assert_array_equal(out, arr)


@settings(max_examples=25, deadline=None)
@given(arr=_mask_arrays(st.sampled_from([np.uint8, np.uint16])))
def test_property_png_round_trip(arr):
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "m.png"
        Image.fromarray(arr).save(p)
        out = read_mask(p)
        assert out.dtype == arr.dtype
        np.testing.assert_array_equal(out, arr)


@settings(max_examples=25, deadline=None)
@given(arr=_mask_arrays())
def test_property_binary_class_ids(arr):
    out = to_class_ids(arr, "binary", 2)
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out, (arr > 0).astype(np.uint8))


@settings(max_examples=25, deadline=None)
@given(arr=_mask_arrays(), size=st.one_of(st.integers(1, 30), st.tuples(st.integers(1, 30), st.integers(1, 30))))
def test_property_resize_mask(arr, size):
    out = resize_mask(arr, size)
    expected = (size, size) if isinstance(size, int) else size
    assert out.shape == expected
    assert out.dtype == arr.dtype
    assert set(np.unique(out).tolist()) <= set(np.unique(arr).tolist())
    assert resize_mask(arr, None) is arr
