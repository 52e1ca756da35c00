"""The time budget: ``--time`` durations, and the epochs that fit in what is left after the data pass,
keeping back the report's time."""

from __future__ import annotations

import math
import re
from typing import NamedTuple

from segfit.errors import SegfitError
from segfit.instances import MIN_SWEEP_IMAGES, SEED_LEVELS

DEFAULT_BUDGET = 600.0  # seconds: --time 10m
FIXED_S = 25.0  # seconds of a budgeted run that do not train, whatever the budget (training_seconds)
# The report after training (report_seconds): imports and figures; decoding the validation images
# at their original size; one seed level of the seed sweep, its merge levels and fragment floors included
# (EMPS, 2 cores: 0.5 s a megapixel, 1.1 s an image for all 8 levels).
REPORT_S = 6.0
DECODE_S_PER_MP = 0.1
WATERSHED_S_PER_MP = 0.5
RESCALED_SHARE = 0.1  # images with small objects predicted again at a larger scale (EMPS: 11 of 99)
REPORT_TAIL_S = 6.0  # what the report does after its seed sweep (figures, input ranges): the sweep stops earlier
MIN_EPOCHS = 8  # planned repeats shrink until this many epochs fit
MIN_EPOCH_SHARE = 0.05  # a budget too short for one epoch trains on a share of the images, this one at least


def parse_duration(text: str | float | int) -> float:
    """Seconds from ``90s``, ``10m``, ``1h``, ``1h30m`` or a number of seconds."""
    if isinstance(text, (int, float)):
        seconds = float(text)
    else:
        parts = re.fullmatch(r"\s*(?:(\d+(?:\.\d+)?)h)?\s*(?:(\d+(?:\.\d+)?)m)?\s*(?:(\d+(?:\.\d+)?)s?)?\s*", str(text))
        if not parts or not any(parts.groups()):
            raise SegfitError(f"--time takes a duration like 90s, 10m or 1h, not {text!r}", fix="e.g. --time 10m")
        h, m, s = (float(g) if g else 0.0 for g in parts.groups())
        seconds = 3600 * h + 60 * m + s
    if not seconds > 0:
        raise SegfitError(f"--time must be positive, not {text!r}", fix="e.g. --time 10m")
    return seconds


def training_seconds(budget_s: float) -> float:
    """The part of a budget that trains: the rest goes to the imports, the plan, the data pass, validation
    and the report: about 25 s and 8 % (EMPS, 2 cores: 260 s of 5 minutes, 14 s of 45 s on 16 images)."""
    return max(0.2 * budget_s, 0.92 * budget_s - FIXED_S)


def report_seconds(plan, n_val: int, val_pixels: float, val_s: float) -> float:
    """What the report after training takes (``plan``: a :class:`segfit.planner.Plan`): its imports and
    figures (:data:`REPORT_S`), the validation images scored at their original size (as the plan predicts: its
    test-time variants too, each image's coarse look, and images of small objects again at a larger scale), and the first images
    of the seed-level sweep of a model that learns instances (EMPS, 2 cores, one epoch: 19 s)."""
    from segfit.ensemble import tta_variants
    from segfit.rescaling import COARSER

    v = plan.values()
    passes = 1 + (len(tta_variants(v.get("augment", "none"))) if v.get("tta") else 1)  # the validation pass, then the report's
    scale = v.get("scale") or 1.0
    original_mp = val_pixels / scale**2 / 1e6
    sweep = MIN_SWEEP_IMAGES * len(SEED_LEVELS) * original_mp * WATERSHED_S_PER_MP if v.get("instances") else 0.0
    if v.get("object_diameter"):  # each image's objects measured, and looked at from farther away (decoded at full size)
        sweep += n_val * (2 * original_mp * WATERSHED_S_PER_MP + (passes - 1) * val_s / COARSER**2)
        if scale < 1:  # a tenth predicted again, up to full size
            sweep += n_val * RESCALED_SHARE * (passes - 1) * val_s / scale**2
    return REPORT_S + n_val * (passes * val_s + original_mp * DECODE_S_PER_MP) + sweep


class Fit(NamedTuple):
    """What a budget allows: ``epochs``, the training ``seconds`` (a hard stop for Lightning), the
    training ``batches`` an epoch takes (0: all) and the ``repeats`` of the training images an epoch; and
    what it assumed: an epoch's calibrated seconds (``epoch_s``) and the report's (``report_s``)."""

    epochs: int
    seconds: float
    batches: int
    repeats: int
    epoch_s: float = 0.0
    report_s: float = 0.0


def epochs_for_budget(plan, remaining_s: float, n_train: int, n_val: int, val_pixels: float,
                      report: bool = True) -> Fit:
    """What fits in ``remaining_s`` (after the data pass) for ``n_train`` training images, keeping back
    the report's time (when one is made). Planned repeats shrink until :data:`MIN_EPOCHS` epochs fit (an
    epoch's end is where the budget re-sizes the schedule: too few, and the budget is missed or left
    unused); when not even one whole pass fits, an epoch takes a share of the batches."""
    timing = plan.calibration.get(plan.calibration.get("chosen", ""))
    v = plan.values()
    patch = v.get("crop") or math.sqrt(val_pixels)
    step_s = v["batch_size"] * patch**2 / timing["train_px_s"] if timing else 1.0
    val_s = val_pixels / timing["val_px_s"] if timing else 0.2
    report_s = report_seconds(plan, n_val, val_pixels, val_s) if report else 0.0
    fit_s = remaining_s - 0.03 * (plan.budget_s or 0) - report_s
    planned = repeats = int(v.get("repeats") or 1)
    shrinkable = plan.entries.get("repeats", {}).get("source") == "plan"  # the user's repeats stay

    def seconds(repeats: int) -> tuple[int, float, float]:  # batches, training and whole seconds of an epoch
        batches = math.ceil(n_train * repeats / v["batch_size"])
        return batches, batches * step_s * 1.05, batches * step_s * 1.05 + n_val * val_s + 0.3

    while shrinkable and repeats > 1 and fit_s / seconds(repeats)[2] < MIN_EPOCHS:
        repeats -= 1
    if repeats != planned:
        plan.set("repeats", repeats, f"each epoch goes over the training images {'once' if repeats == 1 else f'{repeats} times'}: "
                 f"the {planned} times planned for longer epochs would leave fewer than {MIN_EPOCHS} epochs in the budget")
    batches, train_s, epoch_s = seconds(repeats)
    share = min(1.0, max(MIN_EPOCH_SHARE, (fit_s - epoch_s + train_s) / train_s))
    fit_s = max(fit_s, epoch_s - train_s * (1 - share))  # the TimeBudget callback re-sizes the epochs as timed
    epochs = max(1, min(1000, int(fit_s / epoch_s)))
    reason = f"{epoch_s:.1f} s an epoch (calibrated): {epochs} epochs fit in the {fit_s:.0f} s left for training"
    if share < 1:
        reason = (f"{epoch_s:.1f} s an epoch (calibrated) does not fit in the {fit_s:.0f} s left for training: "
                  f"one epoch over {share:.0%} of the training images")
    plan.set("epochs", epochs, reason)
    return Fit(epochs, fit_s, max(1, int(share * batches)) if share < 1 else 0, repeats,
               epoch_s - train_s * (1 - share), report_s)


LATE_SHARE = 0.8  # a budget that ran out before this share of the one-cycle's epochs (not yet annealed): a warning


def budget_cut(done: int, epochs: int, scheduler: str) -> str | None:
    """The warning when a budget stopped training after ``done`` of the (re-sized) ``epochs`` before a one-cycle
    schedule came down; ``None`` when it ended annealed."""
    if not done or done >= LATE_SHARE * epochs or scheduler != "onecycle":
        return None
    return (f"the time budget ran out in epoch {done + 1} of ~{epochs}, before the learning rate came down (the "
            "machine ran slower than calibrated: another job?), so the model is weaker than the budget could give; "
            "give a larger --time, or train on a quieter machine")
