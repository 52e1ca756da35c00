"""Seed and merge levels and fragment floor for averaged predictions (test-time variants, ensemble members).

A model that learned instances splits touching objects by seeding a watershed at a level of its distance map,
calibrated on its validation images when the run was reported. Averaging several outputs lowers the map's peaks
wherever they disagree (an under-trained model's flips, members of few epochs), so that level loses the faint
objects and merges others (synthetic touching discs, 12-epoch model: counts -22 % with --tta at the single model's
level). So a predictor that averages is calibrated again, on a few validation images, as it will predict.
"""

from __future__ import annotations

import json
from pathlib import Path

from segfit.instances import MIN_SWEEP_IMAGES, SeedSweep


def calibrate_averaged(predictor, say=print) -> dict | None:
    """Calibrate ``predictor``'s seed and merge levels and fragment floor on up to :data:`MIN_SWEEP_IMAGES` validation images of its run
    (an ensemble's: its folds'), predicted as it predicts (its variants and members averaged), and set them on it.
    Nothing for a predictor that learned no instances, whose run calibrated outputs averaged as it averages them (one
    model's own, or its planned test-time variants: ``members`` and ``variants`` of the calibration), or whose
    validation images are gone."""
    from segfit.backends import calibration

    done = calibration(predictor.backend, "instances") or {}
    if not predictor.learns_instances or (done.get("members", 1), tuple(done.get("variants", ("identity",)))) == (
            predictor.members, tuple(predictor.variants)):
        return None
    from segfit.data.layouts import discover
    from segfit.data.preprocess import read_pair
    from segfit.objects import true_objects

    d = predictor.config.data
    names = _validation_names(predictor.checkpoint)
    if not names or not d.root or not Path(d.root).is_dir():
        return None
    by_name = {s.name: s for s in discover(d.root, d.images, d.masks, d.mask_suffix, require_masks=False).samples}
    samples = [by_name[n] for n in names if n in by_name and by_name[n].mask is not None][:MIN_SWEEP_IMAGES]
    if not samples:
        return None
    sweep = SeedSweep(predictor.config.model.min_object_area or 0)
    binary = d.mask_mode == "binary" or d.num_classes == 2
    for sample in samples:
        image, truth, raw = read_pair(sample, d, channels=3, raw=True)
        result = predictor.predict_full([image], [truth.shape], 1, uncertainty=True, distance=True)[0]
        sweep.add(true_objects(raw, truth, binary), truth, result.classes, result.distance, result.uncertainty)
    best = sweep.best(f"{len(samples)} validation images, predicted averaged as here")
    if best is None:
        return None
    best.update(members=predictor.members, variants=list(predictor.variants))
    before = predictor.seed_level
    predictor.seed_level, predictor.merge_level = best["seed_level"], best["merge_level"]
    predictor.min_object_area, predictor.unsure_level = best["min_object_area"], best["unsure_level"]
    say(f"Objects: seeds at distance {best['seed_level']}, fragments under {best['min_object_area']} px (calibrated on "
        f"{len(samples)} validation images, predicted as here; seeds at {before} for the outputs the run calibrated)")
    return best


def _validation_names(model: Path | None) -> list[str]:
    """The validation images of the run (``split.json``) or of an ensemble's folds that ``model`` comes from."""
    from segfit.rundir import run_dir_of_model

    if model is None:
        return []
    model = Path(model)
    folder = model.parent if model.name == "ensemble.json" else run_dir_of_model(model)
    if folder is None:
        return []
    names: list[str] = []
    for split in [folder / "split.json", *sorted(folder.glob("fold_*/split.json"))]:
        if split.is_file():
            try:
                names += [n for n in json.loads(split.read_text()).get("val", []) if n not in names]
            except ValueError:
                continue
    return names
