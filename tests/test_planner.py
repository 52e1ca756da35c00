"""The automatic plan: each rule on crafted fingerprints, the fingerprint on files the tests make, the budget."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

import segfit
from segfit.budget import epochs_for_budget, parse_duration, training_seconds
from segfit.config import ModelConfig
from segfit.errors import SegfitError
from segfit.fingerprint import fingerprint_data
from segfit.metrics import learning_warnings
from segfit.models import stride
from segfit.planner import Plan, make_plan

CPU = {"cores": 2, "cpu_bf16": False, "gpu": None, "free_ram_gb": 8.0}


def _fp(side=256, d05=12.0, channels=1, kind="instance", fractions=(0.7, 0.3), images=40, touching=0.0, **extra) -> dict:
    objects = {str(c): {"objects": 50, "per_image_median": 5.0, "diameter_median": 3 * d05, "diameter_p05": d05,
                        "touching_fraction": touching} for c in range(1, len(fractions))}
    fp = {"images": images, "sampled": images, "split_files": [], "height": {"min": side, "median": side, "max": side},
          "width": {"min": side, "median": side, "max": side}, "channels": channels, "grey_in_rgb": False,
          "mean": [0.5] * 3, "std": [0.2] * 3, "mask_kind": kind, "num_classes": len(fractions),
          "class_fractions": list(fractions), "objects": objects}
    fp.update(extra)
    return fp


def _plan(fp, user=None, machine=CPU) -> dict:
    return make_plan(fp, machine, None, user or {}, calibrate_steps=0).values()


@pytest.mark.parametrize("text, seconds", [("90s", 90), ("10m", 600), ("1h", 3600), ("1h30m", 5400), ("600", 600),
                                           (45, 45)])
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["ten minutes", "", "-5", "0"])
def test_bad_durations_say_how(text):
    with pytest.raises(SegfitError, match="--time"):
        parse_duration(text)


def test_tiny_objects_keep_the_resolution_large_ones_allow_shrinking():
    assert _plan(_fp(side=2048, d05=2.0))["scale"] == 1.0  # 2 px objects would vanish if shrunk
    small = _plan(_fp(side=2048, d05=6.0))["scale"]  # the median object (18 px) keeps 10 px, the small ones 3
    assert small == pytest.approx(10 / 18, abs=1e-3)
    big = _plan(_fp(side=2048, d05=80.0))["scale"]
    assert big == pytest.approx(768 / 2048, abs=1e-3)  # the working side, as the objects allow
    assert _plan(_fp(side=96, d05=80.0))["scale"] == 1.0  # never upscale


def test_test_time_variants_are_planned_where_they_cost_little():
    """TTA where its variants at the working scale cost at most TTA_MAX_COST passes at full size; a user's choice wins."""
    from segfit.planner import TTA_MAX_COST

    shrunk = make_plan(_fp(side=2048, d05=6.0), CPU, None, {}, calibrate_steps=0)  # scale 0.556: 8 variants cost 2.5 passes
    assert shrunk.values()["tta"] is True and shrunk.values()["augment"] == "light"
    assert "8 label-preserving flips and rotations" in shrunk.entries["tta"]["reason"]
    assert 8 * shrunk.values()["scale"] ** 2 <= TTA_MAX_COST
    full = _plan(_fp(side=96, d05=80.0))  # full size: 8 passes
    assert full["scale"] == 1.0 and full["tta"] is False
    photos = _plan(_fp(side=96, d05=80.0, channels=3, kind="index"))  # photos: a horizontal flip, 2 passes
    assert photos["augment"] == "photo" and photos["tta"] is True
    assert _plan(_fp(side=2048, d05=6.0), {"tta": False})["tta"] is False


def test_objects_are_planned_to_be_measured_only_for_instance_maps():
    from segfit.rescaling import RESCALE_BELOW

    instance = make_plan(_fp(side=2048, d05=6.0), CPU, None, {}, calibrate_steps=0)
    assert instance.values()["object_diameter"] == 18.0  # the median object (3 x the 5th percentile in _fp)
    assert f"under {RESCALE_BELOW:g} of that" in instance.entries["object_diameter"]["reason"]
    classes = make_plan(_fp(side=2048, d05=6.0, kind="index"), CPU, None, {}, calibrate_steps=0)
    assert "object_diameter" not in classes.values()


def _timed(monkeypatch, speeds: dict):
    """Calibration without timing: each candidate network trains at ``speeds[encoder-depth-width]`` px/s."""
    import segfit.planner as planner

    def fake(cand, channels, classes, patch, batch, precision, device, steps=3):
        rate = speeds[planner._key(cand)]
        return {"step_s": batch * patch**2 / rate, "patch": patch, "batch": batch, "train_px_s": rate, "val_px_s": 4 * rate}
    monkeypatch.setattr(planner, "calibrate", fake)


def test_a_tight_budget_trades_resolution_and_network_size_for_passes_over_the_data(monkeypatch):
    from segfit.planner import CANDIDATES, PASSES, _key

    big, small = (_key(c) for c in CANDIDATES["cpu"][:2])
    _timed(monkeypatch, {big: 5e4, small: 4e5})
    fp = _fp(side=1024, d05=20.0, images=100)  # median object 60 px: the objects allow down to 1/6
    roomy = make_plan(fp, CPU, 3600 * 24, {}).values()
    assert roomy["scale"] == 0.75 and roomy["encoder_depth"] == CANDIDATES["cpu"][0][2]  # the CPU's working side
    assert roomy["decoder_channels"] == CANDIDATES["cpu"][0][3]  # time enough: the larger network
    tight = make_plan(fp, CPU, 300, {})
    v = tight.values()
    assert tight.calibration["chosen"] == small  # the larger one cannot pass often enough over the data
    train_pixels = (80 - v["val"]) * 1024**2
    fits = min(1.0, (4e5 * training_seconds(300) / (PASSES * train_pixels)) ** 0.5)
    step = stride(ModelConfig(name=v["model"], encoder_depth=v["encoder_depth"]))  # whole images: a multiple of it
    assert fits - step / 1024 < v["scale"] <= fits and round(1024 * v["scale"]) % step == 0
    assert 10 / 60 <= v["scale"] < 1.0 and "passes" in tight.entries["scale"]["reason"]
    kept = f"the median object keeps {60 * v['scale']:.0f} px, the 5th-percentile one {20 * v['scale']:.0f} px"
    assert kept in tight.entries["scale"]["reason"]  # at the scale chosen, not at the smallest allowed
    hopeless = make_plan(fp, CPU, 20, {})  # hopeless budget: the objects still keep their pixels
    assert 10 / 60 <= hopeless.values()["scale"] < 10 / 60 + 32 / 1024  # up to the stride's multiple, not below
    assert big not in hopeless.calibration  # even the small network cannot pass often enough: the larger is not timed
    assert make_plan(fp, CPU, 300, {"scale": 0.5}).values()["scale"] == 0.5
    assert make_plan(_fp(side=512, d05=20.0), CPU, 20, {}).values()["scale"] == 0.25  # images keep 128 px


def test_a_larger_network_needs_a_clear_margin(monkeypatch):
    from segfit.planner import CANDIDATES, LARGER_MARGIN, PASSES, _key

    big, small = (_key(c) for c in CANDIDATES["cpu"][:2])
    fp = _fp(side=1024, d05=20.0, images=100)  # 64 training images; the objects allow down to 1/6
    needed = PASSES * 64 * 1024**2 * (10 / 60) ** 2 / training_seconds(3600)  # px/s for PASSES at that scale
    for factor, chosen in ((0.5 * (1 + LARGER_MARGIN), small), (1.05 * LARGER_MARGIN, big)):
        _timed(monkeypatch, {big: factor * needed, small: 10 * needed})
        assert make_plan(fp, CPU, 3600, {}).calibration["chosen"] == chosen


def test_touching_objects_in_instance_maps_are_learned_as_instances_at_a_scale_that_keeps_them_apart():
    touching = make_plan(_fp(side=2048, d05=6.0, touching=0.4), CPU, None, {}, calibrate_steps=0)
    assert touching.values()["instances"] is True and "40 % touch" in touching.entries["instances"]["reason"]
    assert touching.values()["scale"] == pytest.approx(16 / 18, abs=1e-3)  # the median object keeps 16 px, not 10
    assert touching.values()["min_object_area"] == int(0.5 * np.pi * 6**2 / 4)  # half the 5th-percentile object's area
    apart = _plan(_fp(side=2048, d05=6.0, touching=0.01))
    assert apart["instances"] is False and apart["scale"] == pytest.approx(10 / 18, abs=1e-3)
    binary = _plan(_fp(kind="binary_255", touching=0.4, d05=8.0))
    assert "instances" not in binary  # components of a 0/255 mask: nothing to learn
    assert binary["min_object_area"] == int(0.5 * np.pi * 8**2 / 4)  # ... but specks are still not objects
    forced = make_plan(_fp(touching=0.4), CPU, None, {"instances": False}, calibrate_steps=0)
    assert forced.entries["instances"] == {"value": False, "source": "user", "reason": "given by the user"}


def test_a_short_budget_puts_pixels_before_the_instance_scale(monkeypatch):
    from segfit.planner import CANDIDATES, _key

    _timed(monkeypatch, {_key(c): 4e5 for c in CANDIDATES["cpu"]})
    fp = _fp(side=1024, d05=20.0, images=100, touching=0.4)  # median object 60 px: instances want scale >= 16/60
    roomy = make_plan(fp, CPU, 3600 * 4, {}).values()
    assert roomy["instances"] and roomy["scale"] >= 16 / 60
    tight = make_plan(fp, CPU, 300, {})
    assert tight.values()["instances"] and 10 / 60 <= tight.values()["scale"] < 16 / 60
    assert "too short to keep objects at 16 px" in tight.entries["scale"]["reason"]
    # K folds share the budget: a fold's share too short for the instance scale is said in the ensemble's plan
    from segfit.folds import _note_short_folds
    from segfit.planner import instance_objects_px

    roomy_plan = make_plan(fp, CPU, 3600 * 4, {})
    assert instance_objects_px(roomy_plan, fp) is None and instance_objects_px(tight, fp) == pytest.approx(60 * tight.values()["scale"])
    _note_short_folds((roomy_plan, {"data": fp}), 5, 3600 * 4)
    _note_short_folds((tight, {"data": fp}), 5, 300)
    assert not roomy_plan.notes and "each of the 5 folds gets 300 s" in tight.notes[-1] and "fewer --folds" in tight.notes[-1]


def test_large_images_get_crops_small_ones_whole():
    assert _plan(_fp(side=2048, d05=2.0))["crop"] == 256
    assert _plan(_fp(side=96))["crop"] is None
    mixed = _fp(side=100, height={"min": 90, "median": 100, "max": 120})
    assert _plan(mixed)["crop"] == 64  # sizes differ: crops of the smallest side, a multiple of 32
    small = _plan(_fp(side=80, height={"min": 60, "median": 80, "max": 100}))  # below 64 px: of the network's stride
    assert small["crop"] == 56 and small["crop"] % 2 ** small["encoder_depth"] == 0
    oblong = make_plan(_fp(side=96, width={"min": 120, "median": 120, "max": 120}), CPU, None, {}, calibrate_steps=0)
    assert oblong.values()["crop"] is None and "whole 120x96 px images" in oblong.entries["crop"]["reason"]


def test_channels_loss_weights_and_augmentation_follow_the_data():
    grey = _plan(_fp(channels=1))
    assert grey["channels"] == 1 and grey["augment"] == "light" and grey["loss"] == "bce+dice"
    photo = _plan(_fp(channels=3, kind="index", fractions=(0.6, 0.39, 0.01)))
    assert photo["channels"] == 3 and photo["augment"] == "photo"
    stained = _plan(_fp(channels=3))  # colour micrographs of objects numbered one by one (stained cells, particles)
    assert stained["channels"] == 3 and stained["augment"] == "light"
    assert photo["loss"] == "ce+dice" and photo["class_weights"] == "auto" and photo["classes"] == 3
    assert grey["head_prior"] == "auto" and _plan(_fp(), {"head_prior": "none"})["head_prior"] == "none"
    assert _plan(_fp(channels=3, kind="index", fractions=(0.6, 0.3, 0.1)))["class_weights"] == "none"  # no bias
    sparse = _plan(_fp(fractions=(0.95, 0.05)))
    assert sparse["loss"] == "bce+dice" and "class_weights" not in sparse
    reasons = [make_plan(fp, CPU, None, {}, 0).entries["loss"]["reason"] for fp in (_fp(channels=1), _fp(fractions=(0.95, 0.05)))]
    assert "rare class" not in reasons[0] and "rare class (5.0 % of pixels)" in reasons[1]


def test_precision_and_device_follow_the_machine():
    assert _plan(_fp())["precision"] == "32"
    assert _plan(_fp(), machine={**CPU, "cpu_bf16": True})["precision"] == "bf16-mixed"
    gpu = {**CPU, "gpu": {"name": "H100", "memory_gb": 80, "count": 1, "bf16": True}}
    on_gpu = make_plan(_fp(side=2048, d05=2.0), gpu, None, {}, calibrate_steps=0)
    assert on_gpu.device == "gpu" and on_gpu.values()["crop"] == 512 and on_gpu.values()["encoder"] == "resnet34"


def test_an_explicit_option_always_wins():
    user = {"loss": "ce", "crop": 128, "model": "fpn", "encoder": "resnet50", "batch_size": 3, "epochs": 7}
    plan = make_plan(_fp(side=2048, d05=2.0), CPU, None, user, calibrate_steps=0)
    for key, value in user.items():
        assert plan.entries[key] == {"value": value, "source": "user", "reason": "given by the user"}
    assert "encoder_depth" not in plan.entries  # the user chose the network: the plan adds no part of another
    sized = make_plan(_fp(side=2048, d05=6.0), CPU, None, {"size": 128, "seed": 3, "save_every": 2}, 0).entries
    assert "scale" not in sized and "crop" not in sized  # --size replaces them, and the plan says whose it is
    assert all(sized[k]["source"] == "user" for k in ("size", "seed", "save_every"))


def test_the_plan_is_written_and_reloaded_identically(tmp_path):
    plan = make_plan(_fp(), CPU, 60.0, {"lr": 0.01}, calibrate_steps=0)
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(plan.to_dict()))
    again = Plan.from_dict(json.loads(path.read_text()))
    assert again == plan and again.values()["lr"] == 0.01 and again.lines() == plan.lines()


def _save(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


def test_fingerprint_of_files(tmp_path):
    rng = np.random.default_rng(0)
    for i in range(4):
        grey = rng.integers(0, 255, (40, 48), dtype=np.uint8)
        _save(tmp_path / "gray" / "images" / f"{i}.png", np.repeat(grey[..., None], 3, axis=2))  # RGB of grey
        mask = np.zeros((40, 48), np.uint16)
        mask[5:15, 5:15], mask[5:15, 15:25], mask[30:36, 30:36] = 1, 2, 3  # two touching, one apart
        _save(tmp_path / "gray" / "segmaps" / f"{i}.png", mask)
        _save(tmp_path / "binary" / "images" / f"{i}.png", rng.integers(0, 255, (40, 48, 3), dtype=np.uint8))
        _save(tmp_path / "binary" / "masks" / f"{i}.png", (mask > 0).astype(np.uint8) * 255)
    fp = fingerprint_data(tmp_path / "gray")
    assert fp["channels"] == 1 and fp["grey_in_rgb"] and fp["mask_kind"] == "instance" and fp["num_classes"] == 2
    objects = fp["objects"]["1"]
    assert objects["objects"] == 12 and objects["touching_fraction"] == pytest.approx(2 / 3, abs=1e-3)
    assert objects["diameter_median"] == pytest.approx(np.sqrt(4 * 100 / np.pi), abs=0.01)
    fp = fingerprint_data(tmp_path / "binary")
    assert fp["channels"] == 3 and fp["mask_kind"] == "binary_255" and fp["objects"]["1"]["objects"] == 8


def test_palette_masks_draw_each_class_in_its_annotation_colour(tmp_path):
    """Palette PNGs (annotation tools, Pascal VOC) carry each class's colour: the plan keeps them, unless
    the user names the classes another way; other masks have none."""
    rng = np.random.default_rng(0)
    palette = [0, 0, 0, 128, 0, 0, 0, 128, 0] + [7] * 759
    for i in range(3):
        _save(tmp_path / "p" / "images" / f"{i}.png", rng.integers(0, 255, (24, 24, 3), dtype=np.uint8))
        mask = np.zeros((24, 24), np.uint8)
        mask[2:10, 2:10], mask[12:20, 12:20] = 1, 2
        (tmp_path / "p" / "masks").mkdir(exist_ok=True)
        indexed = Image.fromarray(mask, mode="P")
        indexed.putpalette(palette)
        indexed.save(tmp_path / "p" / "masks" / f"{i}.png")
        _save(tmp_path / "grey" / "images" / f"{i}.png", rng.integers(0, 255, (24, 24, 3), dtype=np.uint8))
        _save(tmp_path / "grey" / "masks" / f"{i}.png", mask)
    fp = fingerprint_data(tmp_path / "p")
    assert fp["mask_kind"] == "index" and fp["class_colors"] == [[0, 0, 0], [128, 0, 0], [0, 128, 0]]
    assert _plan(fp)["class_colors"] == [[0, 0, 0], [128, 0, 0], [0, 128, 0]]
    assert "class_colors" not in _plan(fp, {"palette": "vineyard"})
    assert fingerprint_data(tmp_path / "grey")["class_colors"] is None
    cfg = segfit.build_config(tmp_path / "p", **_plan(fp))
    assert cfg.data.class_colors == [[0, 0, 0], [128, 0, 0], [0, 128, 0]] and cfg.data.num_classes == 3


def test_few_images_make_an_epoch_of_several_passes():
    from segfit.planner import MIN_EPOCH_STEPS

    few = _plan(_fp(images=20))  # 16 trainable, 3 of them validate: 13 training images, 4 steps of 4
    assert few["batch_size"] == 4 and few["repeats"] == math.ceil(MIN_EPOCH_STEPS * 4 / 13)
    assert "repeats" not in _plan(_fp(images=1000))  # 200 steps an epoch already
    assert "repeats" not in _plan(_fp(images=20), {"epochs": 30})  # the user's epochs are passes over the images
    assert _plan(_fp(images=20), {"repeats": 2})["repeats"] == 2


def test_an_epoch_of_repeats_shows_every_image_that_many_times_and_shards_evenly():
    from collections import Counter

    from segfit.data.datamodule import EpochSampler

    sampler = EpochSampler(5, seed=1, repeats=3)
    sampler.set_epoch(2)
    first = list(sampler)
    assert len(first) == len(sampler) == 15 and Counter(i for i, _ in first) == {i: 3 for i in range(5)}
    assert len({seed for _, seed in first}) == 15  # new augmentations every time
    assert list(sampler) == first  # an epoch is reproducible (resume)
    sampler.set_epoch(3)
    assert list(sampler) != first
    shards = [EpochSampler(5, seed=1, rank=r, world=2, repeats=3) for r in (0, 1)]
    assert [len(list(s)) for s in shards] == [8, 8]


def test_8_bit_masks_that_number_their_objects_are_instance_maps():
    from segfit.fingerprint import _mask_kind

    def numbered(k: int) -> np.ndarray:  # k separate squares, numbered 1..k
        m = np.zeros((40, 200), np.uint8)
        for i in range(k):
            m[5:15, 10 + 20 * i: 20 + 20 * i] = i + 1
        return m
    assert _mask_kind([numbered(3), numbered(5), numbered(4)]) == ("instance", 2)
    assert _mask_kind([numbered(4), numbered(4)]) == ("index", 5)  # the same values in every mask: classes
    classes = numbered(4)
    classes[25:35, 100:110] = 2  # a class in two places
    classes[25:35, 150:160] = 3
    assert _mask_kind([numbered(3), classes, numbered(5)]) == ("index", 6)


def test_learning_warnings():
    everywhere = np.array([[0, 90], [0, 10]])  # always foreground
    assert "predicts foreground everywhere" in learning_warnings(everywhere, ["background", "foreground"])[0]
    missing = np.array([[50, 5, 0], [3, 30, 0], [1, 2, 0]])
    assert "never predicts wood" in learning_warnings(missing, ["background", "leaves", "wood"])[0]
    assert learning_warnings(np.array([[50, 5], [3, 30]]), ["background", "foreground"]) == []
    scattered = np.array([[80, 1, 9], [5, 40, 0], [20, 0, 1]])  # wood predicted, but almost never where wood is
    assert "hardly finds wood (IoU 0.03)" in learning_warnings(scattered, ["background", "leaves", "wood"])[0]
    # every class found somewhere, yet worse than calling all background (78 % of the pixels; accuracy 0.50)
    confused = np.array([[39, 20, 19], [5, 6, 0], [6, 0, 5]])
    line = learning_warnings(confused, ["background", "leaves", "wood"])[0]
    assert "pixel accuracy 0.50 is below the 0.78 of predicting background everywhere" in line
    assert learning_warnings(np.array([[90, 3], [3, 4]]), ["background", "foreground"]) == []  # 0.94 vs 0.93: fine
    from segfit.metrics import history_warnings  # a run without its report: from history.csv's best row

    row = {"val_iou_background": 0.9, "val_iou_leaves": 0.01, "val_iou_wood": 0.0}
    names = ["background", "leaves", "wood"]
    assert "hardly finds leaves (IoU 0.01)" in history_warnings(row, names, [True, True, False])[0]  # no wood there
    assert history_warnings({**row, "val_iou_leaves": 0.5}, names, [True, True, False]) == []
    from segfit.config import RunConfig

    tried = RunConfig()  # a planned run that used Dice and class weights under a budget: only what is left is proposed
    tried.model.name, tried.train.loss, tried.train.class_weights, tried.train.max_time = "unet", "ce+dice", [1.0, 2.0, 9.0], 50.0
    fix = learning_warnings(scattered, ["background", "leaves", "wood"], tried)[0]
    assert "a larger --time" in fix and "--loss" not in fix and "--class-weights" not in fix and "notebook" not in fix


def test_planned_training_fits_a_toy_budget(particles_dir, tmp_path, monkeypatch):
    """Within the budget, and a plan too short for it (a calibration slowed by another job: here one
    epoch) grows as the epochs are timed."""
    import segfit.runs

    sized = segfit.runs.epochs_for_budget
    monkeypatch.setattr(segfit.runs, "epochs_for_budget", lambda plan, *a: sized(plan, *a)._replace(epochs=1))
    run = segfit.train(particles_dir, tmp_path / "run", time="25s", verbose=False, report=False)
    assert len(run.history) > 1
    plan = json.loads((run.run_dir / "plan.json").read_text())
    fingerprint = json.loads((run.run_dir / "fingerprint.json").read_text())
    config = json.loads((run.run_dir / "config.json").read_text())
    summary = json.loads((run.run_dir / "summary.json").read_text())
    assert plan["budget_s"] == 25 and plan["entries"]["model"]["value"] == config["model"]["name"] == "unet"
    assert plan["entries"]["epochs"]["value"] == config["train"]["epochs"] == summary["epochs"]
    assert fingerprint["data"]["mask_kind"] == "instance" and "cores" in fingerprint["machine"]
    assert config["user"] == ["report"] and config["train"]["max_time"] < 25
    prior = config["train"]["head_prior"]  # planned "auto": the training split's class fractions
    assert plan["entries"]["head_prior"]["value"] == "auto" and len(prior) == 2 and sum(prior) == pytest.approx(1, abs=1e-5)
    assert 0 < prior[1] < 0.5
    assert summary["seconds"] <= 25  # the training itself stays inside the budget


def test_a_budget_shorter_than_one_epoch_trains_on_a_share_of_the_images():
    plan = Plan(budget_s=60, calibration={"chosen": "net", "net": {"train_px_s": 1e5, "val_px_s": 4e5}})
    for option, value in (("batch_size", 4), ("crop", 128), ("scale", 0.5)):
        plan.set(option, value, "test")
    step_s = 4 * 128**2 / 1e5  # 100 steps an epoch, 69 s with the loop's overhead
    fit = epochs_for_budget(plan, 400, n_train=400, n_val=10, val_pixels=256**2)
    epochs, fit_s, batches = fit[:3]
    assert batches == 0 and epochs == int(fit_s / (100 * step_s * 1.05 + 10 * 256**2 / 4e5 + 0.3)) >= 4
    assert fit.epoch_s == pytest.approx(100 * step_s * 1.05 + 10 * 256**2 / 4e5 + 0.3) and fit.report_s > 0
    fit = epochs_for_budget(plan, 50, n_train=400, n_val=10, val_pixels=256**2)
    epochs, fit_s, batches = fit[:3]
    assert epochs == 1 and 10 < batches < 100 and "of the training images" in plan.entries["epochs"]["reason"]
    assert batches * step_s * 1.05 + 10 * 256**2 / 4e5 == pytest.approx(fit_s, abs=1.0)  # the epoch fills the time
    assert fit.epoch_s == pytest.approx(fit_s, abs=1.0)  # the share of an epoch is what the budget times against
    assert 50 - fit_s > 10  # the report's time is kept back ...
    unreported = epochs_for_budget(plan, 50, n_train=400, n_val=10, val_pixels=256**2, report=False)
    assert unreported[2] > batches + 10  # ... unless no report is made


def test_repeats_shrink_until_enough_epochs_fit():
    from segfit.budget import MIN_EPOCHS

    plan = Plan(budget_s=60, calibration={"chosen": "net", "net": {"train_px_s": 1e5, "val_px_s": 4e5}})
    for option, value in (("batch_size", 4), ("crop", 128), ("repeats", 10)):
        plan.set(option, value, "test")
    step_s = 4 * 128**2 / 1e5 * 1.05  # 0.69 s a step: 10 repeats of 8 images, 20 steps, 14 s an epoch
    roomy = epochs_for_budget(plan, 600, n_train=8, n_val=2, val_pixels=128**2)
    assert roomy.repeats == 10 and roomy.epochs >= MIN_EPOCHS
    tight = epochs_for_budget(plan, 60, n_train=8, n_val=2, val_pixels=128**2)
    assert 1 <= tight.repeats < 10 and tight.epochs >= MIN_EPOCHS and "would leave fewer than" in plan.entries["repeats"]["reason"]
    assert tight.epochs * tight.repeats * 2 * step_s == pytest.approx(tight.seconds, rel=0.3)
    plan.given({"repeats": 10})  # the user's repeats stay
    assert epochs_for_budget(plan, 60, n_train=8, n_val=2, val_pixels=128**2).repeats == 10


def test_the_teaching_path_does_not_plan(particles_dir, tmp_path):
    run = segfit.train(particles_dir, tmp_path / "run", model="notebook", channels=1, epochs=1, verbose=False,
                       report=False)
    assert not (run.run_dir / "plan.json").exists()
    assert run.config.model.name == "notebook" and run.config.train.optimizer == "adam"


def test_plan_command(particles_dir, tmp_path):
    proc = subprocess.run([sys.executable, "-m", "segfit", "plan", str(particles_dir), "--time", "2m", "--encoder",
                           "resnet34", "--out", str(tmp_path / "plan.json")], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "channels" in proc.stdout and "RGB files hold grey pixels" in proc.stdout
    saved = json.loads((tmp_path / "plan.json").read_text())
    assert saved["plan"]["budget_s"] == 120 and saved["fingerprint"]["data"]["images"] == 12
    assert saved["plan"]["entries"]["encoder"]["source"] == "user"  # plan takes train's flags: the same plan
    segfit.plan(particles_dir, time="2m", out=f"{tmp_path / 'plans'}/", verbose=False)  # a folder: its plan.json
    assert json.loads((tmp_path / "plans" / "plan.json").read_text())["plan"]["budget_s"] == 120
    bad = subprocess.run([sys.executable, "-m", "segfit", "plan", str(particles_dir), "--time", "soon"],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "--time" in bad.stderr


def test_a_crop_smaller_than_the_networks_stride_is_refused(particles_dir):
    import segfit

    with pytest.raises(SegfitError, match=r"--crop 7 is smaller than the network's stride \(8 px\)"):
        segfit.build_config(particles_dir, model="unet", encoder="resnet18", encoder_depth=3, crop=7)
    assert segfit.build_config(particles_dir, model="unet", encoder="resnet18", encoder_depth=3, crop=8).data.crop == 8


def test_two_classes_given_for_masks_of_three_is_noted():
    fp = _fp(kind="index", fractions=(0.6, 0.3, 0.1))
    fp["num_classes"] = 3
    noted = make_plan(fp, CPU, None, {"classes": 2}, calibrate_steps=0)
    assert noted.values()["classes"] == 2  # the user's word wins, and the plan says what it merges
    assert any("--classes 2 reads every mask value above 0 as foreground" in n and "3 classes" in n for n in noted.notes)
    assert not make_plan(fp, CPU, None, {"classes": 3}, calibrate_steps=0).notes


def test_a_budget_mostly_spent_before_training_is_said():
    from segfit.config import RunConfig
    from segfit.runs import _fit_budget

    said = []

    def say(text, file=None):
        said.append((text, file))

    _fit_budget(RunConfig(), None, None, {"train": [], "val": []}, 5.0, say, 60.0)
    [(text, file)] = said
    assert "only 4 s of the 60 s budget are left to train in" in text and "reading the data took 55 s" in text
    assert file is sys.stderr  # a warning, as the others
    said.clear()
    _fit_budget(RunConfig(), None, None, {"train": [], "val": []}, 40.0, say, 60.0)
    assert said == []


def test_the_budget_never_adds_to_the_users_epochs(tmp_path, monkeypatch):
    """--epochs with --time: the time budget may shorten the epochs, never go beyond them (a fast machine
    that fits 100 epochs of the budget still trains the 5 asked for); without --epochs it sizes them freely."""
    from types import SimpleNamespace

    from segfit.callbacks import RunRecorder, TimeBudget

    def epochs_after_one(most):
        clock = iter([0.0, 1.0])  # train start, end of epoch 1: a second an epoch, 100 s of budget
        monkeypatch.setattr("segfit.callbacks.time.perf_counter", lambda: next(clock))
        budget = TimeBudget(100.0, RunRecorder(tmp_path, 5, verbose=False), most)
        trainer = SimpleNamespace(current_epoch=0, fit_loop=SimpleNamespace(max_epochs=5), lr_scheduler_configs=[])
        module = SimpleNamespace(cfg=SimpleNamespace(train=SimpleNamespace(epochs=5)))
        budget.on_train_start(trainer, module)
        budget.on_train_epoch_end(trainer, module)
        return trainer.fit_loop.max_epochs

    assert epochs_after_one(None) == 100 and epochs_after_one(5) == 5


def test_precision_auto_is_the_plans_choice():
    """--precision auto asks for what the plan picks (bf16-mixed on native bf16, else 32); --no-plan resolves it
    the same way on this machine."""
    from segfit.fingerprint import fingerprint_machine, native_precision

    bf16 = {**CPU, "cpu_bf16": True}
    assert make_plan(_fp(), bf16, None, {"precision": "auto"}, 0).entries["precision"]["value"] == "bf16-mixed"
    plain = make_plan(_fp(), CPU, None, {"precision": "auto"}, 0).entries["precision"]
    assert plain["value"] == "32" and plain["source"] == "plan"
    assert native_precision("cpu") == ("bf16-mixed" if fingerprint_machine()["cpu_bf16"] else "32")


def test_the_network_the_user_fixed_is_the_one_timed(monkeypatch):
    """--encoder resnet34 (or --encoder-depth 3) under a budget: the calibration times that network, and the reasons
    name it (resnet18's speed sized the epochs of a resnet34 run)."""
    import segfit.planner as planner

    timed = []

    def fake(cand, channels, classes, patch, batch, precision, device, steps=3):
        timed.append(cand)
        return {"step_s": 0.1, "patch": patch, "batch": batch, "train_px_s": 1e6, "val_px_s": 4e6}
    monkeypatch.setattr(planner, "calibrate", fake)
    plan = make_plan(_fp(side=256, images=40), CPU, 300, {"encoder": "resnet34"})
    assert timed and all(c[1] == "resnet34" for c in timed)
    assert "resnet34" in plan.entries["model"]["reason"] and "resnet18" not in plan.entries["model"]["reason"]
    timed.clear()
    shallow = make_plan(_fp(side=256, images=40), CPU, 300, {"encoder_depth": 3}).values()
    assert all(c[2] == 3 and len(c[3]) == 3 for c in timed) and len(shallow["decoder_channels"]) == 3


def test_a_palette_orders_colour_masks_in_the_plan_as_in_the_config(tmp_path):
    """Colour masks read as sorted colours; with --palette the plan (and so plan.json and its table) lists them
    in the palette's order, as the config does: each class name with its own colour."""
    (tmp_path / "labelmap.txt").write_text("background:0,0,0::\ncell:250,50,83::\ndebris:51,221,255::\n")
    fp = _fp(kind="colour", fractions=(0.6, 0.2, 0.2), class_values=["#000000", "#33ddff", "#fa3253"])
    plan = make_plan(fp, CPU, None, {"palette": str(tmp_path / "labelmap.txt")}, calibrate_steps=0)
    assert plan.values()["class_values"] == ["#000000", "#fa3253", "#33ddff"] and plan.values()["classes"] == 3
    assert make_plan(fp, CPU, None, {}, calibrate_steps=0).values()["class_values"] == ["#000000", "#33ddff", "#fa3253"]


def test_a_budget_that_runs_out_early_says_so(particles_dir, tmp_path, monkeypatch):
    """A machine much slower than its calibration (another job): Lightning's hard stop ends training long before
    the one-cycle schedule anneals; the run says so, in its output and summary.json, rather than ending quietly."""
    import segfit.callbacks
    import segfit.runs

    sized = segfit.runs.epochs_for_budget
    monkeypatch.setattr(segfit.runs, "epochs_for_budget", lambda plan, *a, **k: sized(plan, *a, **k)._replace(epochs=200, seconds=3.0))
    monkeypatch.setattr(segfit.callbacks.TimeBudget, "on_train_epoch_end", lambda *a: None)  # the plan stays too long
    run = segfit.train(particles_dir, tmp_path / "run", time="40s", verbose=False, report=False)
    summary = json.loads((run.run_dir / "summary.json").read_text())
    [warning] = summary["training_warnings"]
    assert f"ran out in epoch {summary['epochs'] + 1} of ~200" in warning and "larger --time" in warning


def test_a_budget_that_re_sized_the_schedule_ends_annealed_without_a_warning(particles_dir, tmp_path, monkeypatch):
    """A GPU plan of 94 epochs that the measured epoch time re-sized to 57 ended annealed at epoch 57, and the run
    still warned that the budget ran out "in epoch 58 of ~94": the warning weighs the epochs as re-sized."""
    import segfit.callbacks
    import segfit.runs
    from segfit.budget import budget_cut

    sized = segfit.runs.epochs_for_budget
    monkeypatch.setattr(segfit.runs, "epochs_for_budget", lambda plan, *a, **k: sized(plan, *a, **k)._replace(epochs=200, seconds=60.0))

    def resize(self, trainer, module):  # what TimeBudget does when the epochs run slower than planned
        trainer.fit_loop.max_epochs = module.cfg.train.epochs = 2

    monkeypatch.setattr(segfit.callbacks.TimeBudget, "on_train_epoch_end", resize)
    run = segfit.train(particles_dir, tmp_path / "run", time="40s", verbose=False, report=False)
    summary = json.loads((run.run_dir / "summary.json").read_text())
    assert summary["epochs"] == 2 and "training_warnings" not in summary
    assert budget_cut(2, 2, "onecycle") is None and budget_cut(57, 57, "onecycle") is None
    assert "epoch 3 of ~21" in budget_cut(2, 21, "onecycle") and budget_cut(2, 21, "plateau") is None


def test_devices_the_machine_lacks_fail_at_once_and_emulated_precision_is_said(monkeypatch):
    """--devices 4 with no GPU hung in Lightning's process group, deaf to Ctrl-C: now an error before planning;
    bf16 on a CPU without it is emulated (4x slower): a warning."""
    import torch

    import segfit.fingerprint as fpm
    from segfit.errors import SegfitError

    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    with pytest.raises(SegfitError, match="asks for 4 GPUs, and this machine has none.*--accelerator cpu"):
        fpm.check_device("auto", "4")
    with pytest.raises(SegfitError, match="no GPU"):
        fpm.check_device("gpu", "auto")
    said = []
    fpm.check_device("cpu", "2", "32", say=lambda *a, **k: said.append(a))  # processes on the CPU: allowed
    fpm.check_device("auto", "1", say=lambda *a, **k: said.append(a))
    assert said == []
    monkeypatch.setattr(fpm, "fingerprint_machine", lambda: {"cpu_bf16": False})
    fpm.check_device("auto", "auto", "bf16-mixed", say=lambda text, file=None: said.append((text, file)))
    [(text, file)] = said
    assert "emulated" in text and "--precision auto" in text and file is sys.stderr
    monkeypatch.setattr(fpm, "fingerprint_machine", lambda: {"cpu_bf16": True})
    fpm.check_device("auto", "auto", "bf16-mixed", say=lambda *a, **k: said.append(a))
    assert len(said) == 1
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    with pytest.raises(SegfitError, match="has 2.*--devices 2 or fewer"):
        fpm.check_device("auto", "0,1,2")


def test_a_machine_slower_than_calibrated_keeps_back_more_time_for_the_report(tmp_path, monkeypatch):
    """Epochs twice as slow as calibrated (another job started) make the report after training twice as slow:
    training ends the report's calibrated seconds earlier, so the whole command still ends within its budget.
    At the calibrated speed, and before an epoch past the first's warm-up is timed, the budget is as given."""
    from types import SimpleNamespace

    from segfit.callbacks import RunRecorder, TimeBudget

    def epochs_after_two(epoch_s, calibrated=1.0, report_s=20.0):
        clock = iter([0.0, epoch_s, 2 * epoch_s])  # train start, ends of epochs 1 and 2
        monkeypatch.setattr("segfit.callbacks.time.perf_counter", lambda: next(clock))
        budget = TimeBudget(100.0, RunRecorder(tmp_path, 5, verbose=False), None, calibrated, report_s)
        trainer = SimpleNamespace(current_epoch=0, fit_loop=SimpleNamespace(max_epochs=5), lr_scheduler_configs=[])
        module = SimpleNamespace(cfg=SimpleNamespace(train=SimpleNamespace(epochs=5)))
        budget.on_train_start(trainer, module)
        budget.on_train_epoch_end(trainer, module)
        first = trainer.fit_loop.max_epochs
        trainer.current_epoch = 1
        budget.on_train_epoch_end(trainer, module)
        return first, trainer.fit_loop.max_epochs

    assert epochs_after_two(1.0) == (100, 100)  # as calibrated: (100 - 1) / 1 + 1
    assert epochs_after_two(2.0, calibrated=0.0) == (50, 50)  # nothing calibrated: the budget as given
    # twice as slow: 20 s more for the report, so (80 - 2) / 2 + 1 epochs; the first epoch (warm-up) is not judged
    assert epochs_after_two(2.0) == (50, 40)
    assert epochs_after_two(2.0, report_s=0.0) == (50, 50)  # no report (--no-report): nothing to keep back
