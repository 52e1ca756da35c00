"""Colour-coded annotations -> class-index masks: palettes (preset, YAML, JSON), `segfit convert-masks`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from segfit.data.palette import Palette, convert_masks, load_palette
from segfit.data.synthetic import ANNOTATION_COLORS, make_scenes
from segfit.errors import SegfitError

# The vineyard preset on a crafted 4x4 colour mask: (pixel colour, expected class id).
CRAFTED = [
    [((255, 255, 255), 0),  # white background
     ((250, 250, 245), 0),  # sum 745 >= 740: background wins although every channel >= 240
     ((0, 0, 255), 1),  # blue: leaves
     ((255, 0, 0), 2)],  # red: trunk -> wood
    [((0, 255, 0), 2),  # green: branches -> wood
     ((10, 10, 10), 0),  # matches no rule: unmatched -> background
     ((255, 0, 250), 1),  # blue and red: the blue rule comes first
     ((100, 100, 100), 0)],  # unmatched -> background
    [((240, 240, 240), 1),  # sum 720 < 740: not background; blue >= 240 first -> leaves
     ((246, 247, 247), 0),  # sum exactly 740: background (>=)
     ((0, 240, 0), 2),  # green exactly 240 -> wood
     ((0, 0, 239), 0)],  # blue just below the threshold: unmatched
    [((255, 255, 0), 2),  # red and green: wood either way
     ((0, 255, 255), 1),  # blue and green: leaves (blue before green)
     ((239, 239, 239), 0),  # unmatched (sum 717, no channel >= 240)
     ((0, 0, 0), 0)],  # black: unmatched
]
CRAFTED_UNMATCHED = 5  # (10,10,10), (100,100,100), (0,0,239), (239,239,239), (0,0,0)


def crafted() -> tuple[np.ndarray, np.ndarray]:
    rgb = np.array([[c for c, _ in row] for row in CRAFTED], np.uint8)
    ids = np.array([[k for _, k in row] for row in CRAFTED], np.uint8)
    return rgb, ids


def save_rgb(path: Path, rgb: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(rgb, np.uint8), "RGB").save(path)
    return path


def read_ids(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        assert im.mode == "L", f"{path.name} is {im.mode}, expected an 8-bit class-index PNG"
        return np.asarray(im)


def segfit_cli(*args, cwd=None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    return subprocess.run([sys.executable, "-m", "segfit", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=120)


def assert_one_line_error(proc: subprocess.CompletedProcess) -> None:
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("segfit: error: ")
    assert "Traceback" not in proc.stderr and "internal error" not in proc.stderr


def snapshot(folder: Path) -> dict[str, tuple[bytes, int]]:
    return {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(folder.iterdir())} if folder.exists() else {}


# ---------------------------------------------------------------------------------------------
# The vineyard preset, pixel for pixel


def test_vineyard_preset_pixel_for_pixel():
    rgb, expected = crafted()
    palette = load_palette("vineyard")
    assert palette.names == ["background", "leaves", "wood"]
    ids, unmatched = palette.convert(rgb)
    assert ids.dtype == np.uint8
    np.testing.assert_array_equal(ids, expected)
    assert int(unmatched.sum()) == CRAFTED_UNMATCHED
    assert unmatched[1, 1] and unmatched[1, 3] and not unmatched[0, 1] and not unmatched[1, 2]


def test_vineyard_preset_maps_the_annotators_colours():
    palette = load_palette("vineyard")
    want = {"background": 0, "leaves": 1, "trunk": 2, "branches": 2}
    rgb = np.array([[ANNOTATION_COLORS[k] for k in want]], np.uint8)
    ids, unmatched = palette.convert(rgb)
    assert ids[0].tolist() == list(want.values())
    assert not unmatched.any()


def test_cli_converts_crafted_mask_with_the_preset(tmp_path):
    rgb, expected = crafted()
    save_rgb(tmp_path / "src" / "a.png", rgb)
    proc = segfit_cli("convert-masks", tmp_path / "src", tmp_path / "dst", "--palette", "vineyard")
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in (tmp_path / "dst").iterdir()) == ["a_bin.png"]
    np.testing.assert_array_equal(read_ids(tmp_path / "dst" / "a_bin.png"), expected)
    # the report: per-class pixel counts and the unmatched pixels
    counts = np.bincount(expected.ravel(), minlength=3)
    out = proc.stdout
    for name, n in zip(("background", "leaves", "wood"), counts):
        line = next(ln for ln in out.splitlines() if ln.strip().startswith(name))
        assert int(line.split()[1].replace(",", "")) == n, line
    line = next(ln for ln in out.splitlines() if ln.strip().startswith("unmatched"))
    assert int(line.split()[1].replace(",", "")) == CRAFTED_UNMATCHED, line


def test_api_report_counts_and_suffix(tmp_path):
    rgb, expected = crafted()
    save_rgb(tmp_path / "src" / "a.png", rgb)
    save_rgb(tmp_path / "src" / "b.png", np.full((3, 5, 3), 255, np.uint8))
    report = convert_masks(tmp_path / "src", tmp_path / "dst", load_palette("vineyard"), suffix="_cls")
    assert report["files"] == 2 and report["written"] == 2
    assert report["unmatched"] == CRAFTED_UNMATCHED
    counts = np.bincount(expected.ravel(), minlength=3) + np.array([15, 0, 0])
    assert report["pixels"] == dict(zip(["background", "leaves", "wood"], counts.tolist()))
    assert sorted(p.name for p in (tmp_path / "dst").iterdir()) == ["a_cls.png", "b_cls.png"]
    np.testing.assert_array_equal(read_ids(tmp_path / "dst" / "a_cls.png"), expected)
    np.testing.assert_array_equal(read_ids(tmp_path / "dst" / "b_cls.png"), np.zeros((3, 5), np.uint8))


def test_scene_colour_masks_convert_to_the_class_masks(tmp_path):
    data = make_scenes(tmp_path / "scenes", n=6, size=40, seed=3, colour_masks=True)
    proc = segfit_cli("convert-masks", data / "annotations", tmp_path / "converted", "--palette", "vineyard",
                      "--unmatched", "error")
    assert proc.returncode == 0, proc.stderr
    names = sorted(p.stem for p in (data / "annotations").glob("*.png"))
    assert len(names) == 6
    assert sorted(p.name for p in (tmp_path / "converted").iterdir()) == [f"{n}_bin.png" for n in names]
    for name in names:
        got = read_ids(tmp_path / "converted" / f"{name}_bin.png")
        want = np.asarray(Image.open(data / f"{name}_bin.png"))
        np.testing.assert_array_equal(got, want, err_msg=name)
        assert set(np.unique(want)) <= {0, 1, 2}


# ---------------------------------------------------------------------------------------------
# Palette files


YAML_PALETTE = """\
classes:
  - name: soil
    color: [120, 80, 40]
    rules:
      - {{where: "red + green + blue >= 740", precedence: 0}}
  - name: crop
    color: [0, 200, 0]
    rules:
      - {{where: "blue >= 240", precedence: {crop}}}
  - name: weed
    colour: [200, 0, 200]
    rules:
      - {{where: "r >= 240 and g < 100", precedence: {weed}}}
unmatched: background
"""


def write_yaml(path: Path, crop: int = 1, weed: int = 2) -> Path:
    path.write_text(YAML_PALETTE.format(crop=crop, weed=weed))
    return path


def test_yaml_palette_names_colours_and_rules(tmp_path):
    palette = load_palette(write_yaml(tmp_path / "p.yaml"))
    assert isinstance(palette, Palette)
    assert palette.names == ["soil", "crop", "weed"]
    assert palette.colors == [[120, 80, 40], [0, 200, 0], [200, 0, 200]]
    rgb = np.array([[(255, 255, 255), (0, 0, 255), (255, 0, 0), (255, 0, 255), (255, 150, 0), (0, 0, 0)]], np.uint8)
    ids, unmatched = palette.convert(rgb)
    assert ids[0].tolist() == [0, 1, 2, 1, 0, 0]
    assert unmatched[0].tolist() == [False, False, False, False, True, True]


def test_precedence_changes_the_result(tmp_path):
    magenta = np.array([[(255, 0, 255), (255, 0, 0), (0, 0, 255)]], np.uint8)  # matches both crop and weed
    crop_first = load_palette(write_yaml(tmp_path / "a.yaml", crop=1, weed=2)).convert(magenta)[0]
    weed_first = load_palette(write_yaml(tmp_path / "b.yml", crop=5, weed=2)).convert(magenta)[0]
    assert crop_first[0].tolist() == [1, 2, 1]
    assert weed_first[0].tolist() == [2, 2, 1]
    # equal precedence: class order decides (crop is listed before weed)
    tie = load_palette(write_yaml(tmp_path / "c.yaml", crop=3, weed=3)).convert(magenta)[0]
    assert tie[0].tolist() == [1, 2, 1]


def test_precedence_beats_class_order_in_the_preset_too():
    spec = {"classes": [{"name": "background", "rules": [{"where": "red + green + blue >= 740", "precedence": 9}]},
                        {"name": "leaves", "rules": [{"where": "blue >= 240", "precedence": 1}]}]}
    ids, _ = load_palette(spec).convert(np.array([[(250, 250, 245), (255, 255, 255)]], np.uint8))
    assert ids[0].tolist() == [1, 1]  # leaves now win over the background sum rule


JSON_PALETTE = {
    "classes": [
        {"name": "background", "color": [0, 0, 0], "rules": [{"rgb": [255, 255, 255], "tolerance": 5}]},
        {"name": "crop", "color": [0, 255, 0], "rules": [{"rgb": [200, 100, 50], "tolerance": 10}]},
        {"name": "weed", "color": [255, 0, 0], "rules": [{"rgb": [0, 128, 0]}]},
    ],
    "unmatched": "background",
}


def test_json_palette_rgb_tolerance(tmp_path):
    path = tmp_path / "p.json"
    path.write_text(json.dumps(JSON_PALETTE))
    palette = load_palette(path)
    assert palette.names == ["background", "crop", "weed"]
    rgb = np.array([[(250, 251, 255), (249, 255, 255), (209, 90, 60), (190, 110, 40)],
                    [(211, 100, 50), (200, 100, 39), (0, 128, 0), (0, 129, 0)]], np.uint8)
    ids, unmatched = palette.convert(rgb)
    assert ids.tolist() == [[0, 0, 1, 1], [0, 0, 2, 0]]
    # tolerance is inclusive, per channel: 6 off (249), 11 off (211, 39) and 1 off with tolerance 0 miss
    assert unmatched.tolist() == [[False, True, False, False], [True, True, False, True]]


def test_cli_json_palette_and_unmatched_error(tmp_path):
    path = tmp_path / "p.json"
    path.write_text(json.dumps(JSON_PALETTE))
    clean = np.array([[(255, 255, 255), (205, 95, 55)], [(0, 128, 0), (251, 252, 253)]], np.uint8)
    save_rgb(tmp_path / "src" / "a.png", clean)
    proc = segfit_cli("convert-masks", tmp_path / "src", tmp_path / "dst", "--palette", path, "--unmatched", "error")
    assert proc.returncode == 0, proc.stderr
    assert read_ids(tmp_path / "dst" / "a_bin.png").tolist() == [[0, 1], [2, 0]]

    # a second file with one unknown colour: exit 2, and nothing is written (not even the clean file)
    dirty = clean.copy()
    dirty[1, 0] = (1, 2, 3)
    save_rgb(tmp_path / "src2" / "a.png", clean)
    save_rgb(tmp_path / "src2" / "b.png", dirty)
    proc = segfit_cli("convert-masks", tmp_path / "src2", tmp_path / "dst2", "--palette", path, "--unmatched", "error")
    assert_one_line_error(proc)
    assert "b.png" in proc.stderr and "x=0, y=1" in proc.stderr
    assert not (tmp_path / "dst2").exists() or not any((tmp_path / "dst2").iterdir())

    # with the default (the palette's 'background') the unknown pixel becomes background
    proc = segfit_cli("convert-masks", tmp_path / "src2", tmp_path / "dst2", "--palette", path)
    assert proc.returncode == 0, proc.stderr
    assert read_ids(tmp_path / "dst2" / "b_bin.png").tolist() == [[0, 1], [0, 0]]


def test_palette_unmatched_error_setting_is_used_by_default(tmp_path):
    spec = {**JSON_PALETTE, "unmatched": "error"}
    save_rgb(tmp_path / "src" / "a.png", np.array([[(1, 2, 3)]], np.uint8))
    with pytest.raises(SegfitError, match="match no palette rule"):
        convert_masks(tmp_path / "src", tmp_path / "dst", load_palette(spec))
    assert not (tmp_path / "dst").exists()
    report = convert_masks(tmp_path / "src", tmp_path / "dst", load_palette(spec), unmatched="background")
    assert report["unmatched"] == 1 and read_ids(tmp_path / "dst" / "a_bin.png").tolist() == [[0]]


@pytest.mark.parametrize("rule", ['{where: "blue => 240"}', '{where: "alpha >= 3"}', '{where: "blue >= lots"}',
                                  '{tolerance: 3}'])
def test_malformed_rule_is_a_one_line_error(tmp_path, rule):
    path = tmp_path / "bad.yaml"
    path.write_text(f"classes:\n  - name: background\n  - name: leaves\n    rules: [{rule}]\n")
    with pytest.raises(SegfitError):
        load_palette(path)
    save_rgb(tmp_path / "src" / "a.png", np.zeros((2, 2, 3), np.uint8))
    proc = segfit_cli("convert-masks", tmp_path / "src", tmp_path / "dst", "--palette", path)
    assert_one_line_error(proc)
    assert not (tmp_path / "dst").exists()


# BUG (src/segfit/data/palette.py, load_palette lines 134-139 and Rule.matches lines 51-53): rule values of the
# wrong type or length are not checked, so the CLI answers "internal error (ValueError/AttributeError ...):
# report it" with exit 1 instead of a one-line SegfitError with exit 2.
@pytest.mark.parametrize("rule", ["{rgb: [0, 0]}", "{rgb: blue}", "{where: 240}",
                                  '{where: "blue >= 240", precedence: high}', "{rgb: [0, 0, 255], tolerance: lots}"])
def test_malformed_rule_values_are_a_one_line_error(tmp_path, rule):
    path = tmp_path / "bad.yaml"
    path.write_text(f"classes:\n  - name: background\n  - name: leaves\n    rules: [{rule}]\n")
    save_rgb(tmp_path / "src" / "a.png", np.zeros((2, 2, 3), np.uint8))
    proc = segfit_cli("convert-masks", tmp_path / "src", tmp_path / "dst", "--palette", path)
    assert_one_line_error(proc)
    assert not (tmp_path / "dst").exists()


@pytest.mark.parametrize("text", ["classes: [}", "unmatched: error\n", "classes:\n  - color: [1, 2, 3]\n",
                                  "classes:\n  - name: a\nunmatched: sometimes\n"])
def test_malformed_palette_file_is_a_one_line_error(tmp_path, text):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    save_rgb(tmp_path / "src" / "a.png", np.zeros((2, 2, 3), np.uint8))
    assert_one_line_error(segfit_cli("convert-masks", tmp_path / "src", tmp_path / "dst", "--palette", path))


def test_missing_palette_and_source_are_one_line_errors(tmp_path):
    save_rgb(tmp_path / "src" / "a.png", np.zeros((2, 2, 3), np.uint8))
    assert_one_line_error(segfit_cli("convert-masks", tmp_path / "src", tmp_path / "dst", "--palette", tmp_path / "nope.yaml"))
    assert_one_line_error(segfit_cli("convert-masks", tmp_path / "nope", tmp_path / "dst", "--palette", "vineyard"))
    (tmp_path / "empty").mkdir()
    assert_one_line_error(segfit_cli("convert-masks", tmp_path / "empty", tmp_path / "dst", "--palette", "vineyard"))
    assert not (tmp_path / "dst").exists()


# ---------------------------------------------------------------------------------------------
# Never overwrite without --force; --dry-run writes nothing


def test_annotations_are_never_converted_over_themselves(tmp_path):
    """Into the source folder with an empty suffix each mask would replace its annotation: refused even with
    --force, and nothing written."""
    rgb, _ = crafted()
    save_rgb(tmp_path / "ann" / "a.png", rgb)
    before = snapshot(tmp_path / "ann")
    with pytest.raises(SegfitError, match="replace its own colour annotation"):
        convert_masks(tmp_path / "ann", tmp_path / "ann", load_palette("vineyard"), suffix="", force=True)
    assert snapshot(tmp_path / "ann") == before


def test_existing_target_needs_force(tmp_path):
    rgb, expected = crafted()
    save_rgb(tmp_path / "src" / "a.png", rgb)
    save_rgb(tmp_path / "src" / "b.png", rgb)
    dst = tmp_path / "dst"
    dst.mkdir()
    Image.fromarray(np.full((4, 4), 7, np.uint8)).save(dst / "b_bin.png")  # an old mask
    before = snapshot(dst)
    proc = segfit_cli("convert-masks", tmp_path / "src", dst, "--palette", "vineyard")
    assert_one_line_error(proc)
    assert "--force" in proc.stderr
    assert snapshot(dst) == before  # b_bin.png unchanged and a_bin.png not written either
    with pytest.raises(SegfitError, match="exist"):
        convert_masks(tmp_path / "src", dst, load_palette("vineyard"))
    assert snapshot(dst) == before

    proc = segfit_cli("convert-masks", tmp_path / "src", dst, "--palette", "vineyard", "--force")
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in dst.iterdir()) == ["a_bin.png", "b_bin.png"]
    for name in ("a_bin.png", "b_bin.png"):
        np.testing.assert_array_equal(read_ids(dst / name), expected)


def test_dry_run_writes_nothing(tmp_path):
    rgb, expected = crafted()
    save_rgb(tmp_path / "src" / "a.png", rgb)
    src_before = snapshot(tmp_path / "src")
    proc = segfit_cli("convert-masks", tmp_path / "src", tmp_path / "dst", "--palette", "vineyard", "--dry-run")
    assert proc.returncode == 0, proc.stderr
    assert not (tmp_path / "dst").exists()
    assert snapshot(tmp_path / "src") == src_before
    assert "nothing written" in proc.stdout.lower()
    # the report is still there
    line = next(ln for ln in proc.stdout.splitlines() if ln.strip().startswith("leaves"))
    assert int(line.split()[1].replace(",", "")) == int((expected == 1).sum())

    # with an existing target, --dry-run neither fails nor touches it
    dst = tmp_path / "dst2"
    dst.mkdir()
    Image.fromarray(np.full((4, 4), 7, np.uint8)).save(dst / "a_bin.png")
    before = snapshot(dst)
    report = convert_masks(tmp_path / "src", dst, load_palette("vineyard"), dry_run=True)
    assert report["written"] == 0 and report["files"] == 1
    assert snapshot(dst) == before


def test_unmatched_error_cli_writes_nothing(tmp_path):
    rgb, _ = crafted()  # holds unmatched pixels
    save_rgb(tmp_path / "src" / "a.png", rgb)
    proc = segfit_cli("convert-masks", tmp_path / "src", tmp_path / "dst", "--palette", "vineyard", "--unmatched", "error")
    assert_one_line_error(proc)
    assert "5 pixels match no palette rule" in proc.stderr
    assert not (tmp_path / "dst").exists()


from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays


@settings(max_examples=40, deadline=None)
@given(arrays(np.uint8, st.tuples(st.integers(1, 9), st.integers(1, 9), st.just(3))))
def test_vineyard_preset_matches_the_seed_rule_on_random_colours(rgb):
    from segfit.data.palette import load_palette

    ids, unmatched = load_palette("vineyard").convert(rgb)
    r, g, b = (rgb[..., i].astype(int) for i in range(3))
    expected = np.zeros(rgb.shape[:2], np.uint8)
    expected[(b >= 240)] = 1
    expected[(b < 240) & ((r >= 240) | (g >= 240))] = 2
    expected[r + g + b >= 740] = 0
    assert np.array_equal(ids, expected)
    assert np.array_equal(unmatched, (r + g + b < 740) & (b < 240) & (r < 240) & (g < 240))


def test_jpeg_annotations_convert(tmp_path):
    """Hand-painted annotations saved as JPEG: the palette's rules take the compression's noise."""
    from PIL import Image

    rgb = np.zeros((32, 48, 3), np.uint8)
    rgb[:, 24:] = (20, 30, 250)  # leaves: blue in the vineyard palette
    (tmp_path / "src").mkdir()
    Image.fromarray(rgb).save(tmp_path / "src" / "a.jpg", quality=90)
    report = convert_masks(tmp_path / "src", tmp_path / "dst", load_palette("vineyard"))
    ids = read_ids(tmp_path / "dst" / "a_bin.png")
    assert report["files"] == 1 and (ids[:, 28:] == 1).all() and (ids[:, :20] == 0).all()


def test_colour_tables_that_data_sets_ship_are_palettes(tmp_path):
    """CamVid's class_dict.csv and CVAT's labelmap.txt name the classes and their colours; colour masks are read
    in the palette's order (not the colours' sorted order), so each name goes with its own colour."""
    from segfit.options import build_config

    (tmp_path / "class_dict.csv").write_text("name,r,g,b\nSky,128,128,128\nCar,64,0,128\n")
    camvid = load_palette(tmp_path / "class_dict.csv")
    assert camvid.names == ["Sky", "Car"] and [list(c) for c in camvid.colors] == [[128, 128, 128], [64, 0, 128]]
    (tmp_path / "labelmap.txt").write_text("# label:color_rgb:parts:actions\nbackground:0,0,0::\ncell:250,50,83::\n"
                                           "debris:51,221,255::\n")
    cvat = load_palette(tmp_path / "labelmap.txt")
    assert cvat.names == ["background", "cell", "debris"]
    rgb = np.array([[(0, 0, 0), (250, 50, 83), (51, 221, 255)]], np.uint8)
    assert cvat.convert(rgb)[0].tolist() == [[0, 1, 2]]
    detected = ["#000000", "#33ddff", "#fa3253"]  # as the plan reads colour masks: sorted
    cfg = build_config(None, palette=str(tmp_path / "labelmap.txt"), class_values=detected, classes=3)
    assert cfg.data.class_names == ["background", "cell", "debris"]
    assert cfg.data.class_values == ["#000000", "#fa3253", "#33ddff"]  # cell is #fa3253, debris #33ddff


def test_a_rule_palette_reads_exact_colour_masks_by_its_rules():
    """The vineyard preset names classes by rules (white background, blue leaves, red or green wood), not by
    its drawing colours: masks of exact colours read through those rules, whatever their sorted order."""
    from segfit.data.palette import palette_values
    from segfit.options import build_config

    detected = ["#0000ff", "#ff0000", "#ffffff"]  # sorted: blue leaves first, white background last
    cfg = build_config(None, palette="vineyard", class_values=detected, classes=3)
    assert cfg.data.class_names == ["background", "leaves", "wood"]
    assert cfg.data.class_values == ["#ffffff", "#0000ff", "#ff0000"]
    vineyard = load_palette("vineyard")
    assert palette_values(vineyard, cfg.data.class_values) == cfg.data.class_values  # reading it again: the same
    no_wood = palette_values(vineyard, ["#0000ff", "#ffffff"])  # a class the masks lack keeps the palette's colour
    assert no_wood[:2] == ["#ffffff", "#0000ff"] and palette_values(vineyard, no_wood) == no_wood
    with pytest.raises(SegfitError, match="'wood'.*convert-masks"):  # red and green both wood: not one value each
        palette_values(vineyard, ["#00ff00", "#0000ff", "#ff0000", "#ffffff"], "palette vineyard")
    with pytest.raises(SegfitError, match="'background'"):  # grey matches no rule: background beside white
        palette_values(vineyard, ["#0000ff", "#808080", "#ffffff"])


def test_a_palette_rule_error_names_the_palette_file(tmp_path):
    path = tmp_path / "bad1.yaml"
    path.write_text("classes:\n  - name: background\n  - name: leaves\n    rules: [{where: 'blu >= 3'}]\n")
    with pytest.raises(SegfitError, match="bad1.yaml"):
        load_palette(path)


def test_converting_again_into_the_same_folder_and_a_folder_of_photos(tmp_path, capsys):
    """--force into the annotations' own folder converts the annotations again (its earlier NAME_bin.png are no
    sources); a folder whose pixels mostly match no rule (photos, not annotations) is warned about."""
    rgb = np.full((8, 8, 3), 255, np.uint8)
    rgb[:4] = (0, 0, 255)  # leaves
    save_rgb(tmp_path / "ann" / "a.png", rgb)
    convert_masks(tmp_path / "ann", tmp_path / "ann", "vineyard")
    report = convert_masks(tmp_path / "ann", tmp_path / "ann", "vineyard", force=True, verbose=True)
    assert report["files"] == 1 and read_ids(tmp_path / "ann" / "a_bin.png")[:4].tolist() == [[1] * 8] * 4
    assert "warning" not in capsys.readouterr().err
    save_rgb(tmp_path / "photos" / "p.png", np.full((8, 8, 3), 120, np.uint8))
    convert_masks(tmp_path / "photos", tmp_path / "out", "vineyard", dry_run=True, verbose=True)
    assert "100 % of the pixels match no rule" in capsys.readouterr().err
