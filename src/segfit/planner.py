"""The plan: training options chosen by rules from the data's and the machine's fingerprint.

``make_plan(fingerprint, machine, budget, user)`` returns a :class:`Plan`: for each option its value,
where it came from (``plan`` or ``user``: what the user gave always wins) and the reason. The number
of epochs comes from a short calibration (a few timed training steps of the candidate networks at the
planned patch size, :func:`segfit.fingerprint.calibrate`) so that training, with its one-cycle schedule, ends annealed
within the time budget; :func:`epochs_for_budget` sizes it once the data pass has been timed too.
"""

from __future__ import annotations

import math

from segfit.budget import training_seconds
from segfit.config import DataConfig, ModelConfig
from segfit.data.split import test_count, val_count
from segfit.fingerprint import calibrate, mask_reading, native_precision, training_device
from segfit.models import stride
from segfit.rescaling import RESCALE_BELOW
from segfit.plans import Plan

MIN_MEDIAN_OBJECT_PX, MIN_SMALL_OBJECT_PX = 10.0, 3.0  # diameters the median and the 5th-percentile object keep at the working scale
MIN_INSTANCE_OBJECT_PX = 16.0  # learning instances: the median object keeps this, so the valley between two shows
FRAGMENT_SHARE = 0.5  # predicted objects below this share of the 5th-percentile true object's area are dropped
TTA_MAX_COST = 3.0  # test-time variants x scale^2: the passes at full size that a planned TTA may cost
MIN_TOUCHING = 0.05  # instance maps with at least this share of objects touching another: learn instances
WORKING_SIDE = {"cpu": 768, "gpu": 1536}  # images larger than this are shrunk, when the objects allow
PATCH = {"cpu": 256, "gpu": 512}
CALIBRATION = {"cpu": (128, 16), "gpu": (512, 16)}  # (patch, batch) of the timed steps: speed in pixels a second
PASSES = 30  # passes over the training pixels a network trained from scratch wants; the budget's scale gives that many
CPU_STEP_PIXELS = 4 * 128**2  # a CPU step: 4 patches of 128 px (EMPS, 5 min, 2 cores: test IoU 0.723 vs 0.678 at 16, 0.709 at 2)
MIN_STEPS = 200  # optimisation steps a budget should give: below, batches shrink (to 4 at least)
MIN_EPOCH_STEPS = 25  # fewer training images than this many batches: each epoch goes over them several times
MAX_VAL_IMAGES = 48  # validation runs every epoch: a bounded share of the budget
# Candidate networks, largest first: (name, encoder, depth, decoder channels). The network is the
# largest that the budget lets pass PASSES times over the data; on a CPU, usually the last: a shallow
# U-Net with a narrow full-resolution decoder learns the most per second (timed on EMPS, see README).
CANDIDATES = {
    "gpu": [("unet", "resnet34", 5, [256, 128, 64, 32, 16]), ("unet", "resnet18", 5, [128, 64, 32, 16, 8])],
    "cpu": [("unet", "resnet18", 5, [128, 64, 32, 16, 8]), ("unet", "resnet18", 3, [32, 16, 8])],
}
# The shallow CPU U-Net's decoder is 32..8 wide: its full-resolution stages are most of the work (2 cores:
# 301k training pixels a second vs 209k at 64..16), and on EMPS in 5 minutes, two pairs back to back,
# it reached test IoU 0.703 / 0.708 where 64..16 reached 0.688 / 0.681 (13 epochs instead of 9).
# A larger network needs this margin over PASSES: near the line, a few timed steps' noise must not flip
# the choice (a 16-bit grey set, 60 s on 2 cores: the same plan chose depth 5 once, test IoU 0.75, and
# depth 3 the next time, 0.94-0.96).
LARGER_MARGIN = 1.25
def make_plan(fp: dict, machine: dict, budget_s: float | None, user: dict, calibrate_steps: int = 3) -> Plan:
    """Choose every training option the user did not give (see the module's docstring).

    Args:
        fp: :func:`segfit.fingerprint.fingerprint_data`.
        machine: :func:`segfit.fingerprint.fingerprint_machine`.
        budget_s: wall-clock budget in seconds for the whole run; None when the user fixed the epochs.
        user: the options the user gave (they win).
        calibrate_steps: timed training steps per candidate network (0: estimate without timing).
    """
    device = training_device(machine, user.get("accelerator", "auto"))
    plan = Plan(budget_s=budget_s, device=device)
    plan.given(user)
    _data_rules(plan, fp, user)
    _training_rules(plan, fp, machine, device)
    rate = _network_rule(plan, fp, user, device, calibrate_steps)
    if "size" not in user:  # a fixed square size replaces the planned scale and crops
        _scale_rule(plan, fp, user, device, rate)
    _tta_rule(plan)
    _batch_rule(plan, fp, user, device, (machine.get("gpu") or {}).get("memory_gb", 8.0))
    return plan


def _data_rules(plan: Plan, fp: dict, user: dict) -> None:
    if fp["channels"] == 1:
        plan.set("channels", 1, "RGB files hold grey pixels" if fp.get("grey_in_rgb") else "the images are grey")
    else:
        plan.set("channels", 3, "the images are in colour")
    reading = mask_reading(fp)
    detected = reading["classes"]
    if "classes" in user:  # the user's count decides how the masks read (2: any value > 0 is foreground)
        if user["classes"] == 2 < detected[0] and fp["mask_kind"] != "instance":
            plan.notes.append(f"--classes 2 reads every mask value above 0 as foreground; the masks read as {detected[0]} "
                              f"classes ({detected[1]}): leave --classes out to learn them apart")
    elif "class_values" in user:
        given = user["class_values"]
        plan.set("classes", len(given.split(",") if isinstance(given, str) else given), "one class per --class-values value")
        plan.set("mask_mode", "index", "class masks")
    else:
        if "palette" in user and "class_values" in reading:  # colour masks: ordered and named as the palette says
            from segfit.data.palette import load_palette, palette_values

            if ordered := palette_values(load_palette(user["palette"]), reading["class_values"][0], f"palette {user['palette']}"):
                why = f"the colours of the palette {user['palette']}, in its order"
                reading.update(classes=(len(ordered), why), class_values=(ordered, why))
        for option, (value, reason) in reading.items():
            plan.set(option, value, reason)
    void = reading.get("ignore_value")
    if void:  # also when the user counted the classes
        plan.set("ignore_value", *void)
    colours = fp.get("class_colors")
    if colours and len(colours) == plan.values().get("classes") and not {"classes", "class_values", "palette"} & set(user):
        plan.set("class_colors", colours, "the masks' own palette: each class drawn in its annotation colour")
    plan.set("mean", fp["mean"][: fp["channels"]], "the data set's own mean (sampled pixels)")
    plan.set("std", fp["std"][: fp["channels"]], "the data set's own standard deviation")
    kind, objects = fp["mask_kind"], fp["objects"].values()
    touching = max((o.get("touching_fraction") or 0.0 for o in objects), default=0.0)
    if kind == "instance" and touching >= MIN_TOUCHING:
        plan.set("instances", True, f"instance label maps whose objects touch ({100 * touching:.0f} % touch another): "
                                    "learn where one ends (a distance map beside the classes, split by a seeded watershed)")
    elif kind == "instance":
        plan.set("instances", False, "instance label maps whose objects do not touch: objects are the connected parts")
    sized = [o for o in objects if o.get("diameter_p05")]
    if sized:
        median, small = min(o["diameter_median"] for o in sized), min(o["diameter_p05"] for o in sized)
        if plan.values().get("instances"):
            plan.set("instance_radius", round(median / 2, 1),
                     f"the median object's radius ({median / 2:.0f} px): deeper parts of larger objects are a plateau "
                     "of the distance map, so a network that sees only part of a large object does not split it")
        if kind == "instance":  # objects numbered one by one: their size is the image's to measure, and to match
            plan.set("object_diameter", median, f"the median object is {median:.0f} px across: an image whose objects come out "
                     f"under {RESCALE_BELOW:g} of that is predicted again at the scale that brings them to it (at most full size); "
                     "one whose objects break into pieces is seen from farther away")
        area = int(FRAGMENT_SHARE * math.pi * small**2 / 4)
        plan.set("min_object_area", area, f"predicted objects under {area} px (half the 5th-percentile true object, "
                                          f"{small:.0f} px across) are fragments, not objects (counts, sizes)" if area else
                 f"the 5th-percentile true object is {small:.1f} px across: every predicted object counts")
    n = _trainable(fp)
    if n < 2:
        plan.notes.append(f"{n} labelled image{'' if n == 1 else 's'} to train on: training needs 2 at least (one to "
                          "learn from, one to choose the best epoch on): add images, or cut a large one and its mask into tiles")
    val = max(1, min(MAX_VAL_IMAGES, round(0.2 * n)))
    plan.set("val", float(val) if n >= 10 else 0.2,
             f"{val} validation images (a fifth, at most {MAX_VAL_IMAGES}: validation runs every epoch)")


def scale_bounds(fp: dict, device: str, instances: bool = False) -> tuple[float, float, str]:
    """``(low, high, why)``: the smallest scale the objects allow (and why), and the largest worth
    working at (images beyond :data:`WORKING_SIDE` shrink, when the objects allow); never above 1.
    Learning instances, the median object keeps :data:`MIN_INSTANCE_OBJECT_PX`."""
    side = max(fp["height"]["median"], fp["width"]["median"])
    small, median = _object_diameters(fp)
    if not small:
        low, why = 0.0, "no objects to keep"
    else:
        keep = MIN_INSTANCE_OBJECT_PX if instances else MIN_MEDIAN_OBJECT_PX
        low = min(1.0, max(MIN_SMALL_OBJECT_PX / small, keep / median))
        why = _objects_kept(fp, low)
    if low < 128 / side:  # a network needs some context
        low, why = min(1.0, 128 / side), why + ("; images keep at least 128 px" if side > 128 else "")
    return low, max(low, min(1.0, WORKING_SIDE[device] / side)), why


def _stride_multiple(plan: Plan, fp: dict, scale: float, low: float) -> float:
    """Whole images of one size shrink to a multiple of the network's stride (down, unless the objects need
    more): the network pads them to one, and 168 px computed as 192 px was 30 % more work for nothing."""
    h, w = fp["height"], fp["width"]
    side = max(h["max"], w["max"])
    if h["min"] != h["max"] or w["min"] != w["max"] or side * scale > 1.25 * PATCH[plan.device]:
        return scale  # crops: their size is a multiple already
    v = plan.values()
    m = stride(ModelConfig(name=v.get("model", "unet"), encoder_depth=v.get("encoder_depth", 5)))
    down, up = math.floor(side * scale / m) * m, math.ceil(side * scale / m) * m
    size = down if down >= side * low and down > 0 else up
    return scale if size >= 0.95 * side else round(size / side, 4)


def _object_diameters(fp: dict) -> tuple[float, float]:
    """The smallest class's 5th-percentile and median object diameters (0, 0 without objects)."""
    objects = [o for o in fp["objects"].values() if o.get("diameter_p05")]
    return ((min(o["diameter_p05"] for o in objects), min(o["diameter_median"] for o in objects)) if objects
            else (0.0, 0.0))


def instance_objects_px(plan: Plan, fp: dict) -> float | None:
    """The median object's diameter at the planned scale where the plan learns instances and that is under
    :data:`MIN_INSTANCE_OBJECT_PX` (the budget too short for the instance scale); else None."""
    v, median = plan.values(), _object_diameters(fp)[1]
    px = median * (v.get("scale") or 1.0)
    return px if v.get("instances") and median and px < MIN_INSTANCE_OBJECT_PX else None


def _objects_kept(fp: dict, scale: float) -> str:
    small, median = _object_diameters(fp)
    return f"the median object keeps {median * scale:.0f} px, the 5th-percentile one {small * scale:.0f} px"


def _scale_rule(plan: Plan, fp: dict, user: dict, device: str, rate: float | None) -> None:
    """Working scale and training crops. Never upscale; never shrink the objects below what a network
    sees (:data:`MIN_MEDIAN_OBJECT_PX`, :data:`MIN_SMALL_OBJECT_PX`); within that, under a time budget,
    the scale at which training passes :data:`PASSES` times over the training pixels on this machine."""
    side = max(fp["height"]["median"], fp["width"]["median"])
    instances = bool(plan.values().get("instances"))
    low, scale, why_low = scale_bounds(fp, device, instances)
    passes, short = None, False  # passes over the training pixels at full size, when the budget sets the scale
    if rate and plan.budget_s and "scale" not in user:
        train_s = training_seconds(plan.budget_s)
        pixels = _train_pixels(plan, fp)
        fits = math.sqrt(rate * train_s / (PASSES * pixels))
        short = fits < scale and instances and fits < low  # a short budget: pixels first, instances at the scale it affords
        if short:
            low, _, why_low = scale_bounds(fp, device)
        if fits < scale and low < 0.95:  # images that cannot shrink keep their reason
            scale, passes = max(low, fits), rate * train_s / pixels
    at_low = scale == low
    scale = 1.0 if scale >= 0.95 else round(scale, 3)
    padded = ""
    if scale < 1.0 and "scale" not in user and (whole := _stride_multiple(plan, fp, scale, low)) != scale:
        scale, padded = whole, " (a multiple of the network's stride, which would pad them to one)"
    small, median = _object_diameters(fp)
    kept = (_objects_kept(fp, scale) if small else "") if not at_low or padded else why_low
    if scale == 1.0:
        reason = "the images are small enough" if side <= WORKING_SIDE[device] else why_low + " only at full size"
    elif passes is None:
        reason = f"{side:.0f} px images shrink to {side * scale:.0f} px{padded}" + (f"; {kept}" if at_low and kept else "")
    else:
        if short and median * scale < MIN_INSTANCE_OBJECT_PX:
            kept += f"; the budget is too short to keep objects at {MIN_INSTANCE_OBJECT_PX:.0f} px for instances"
        reason = (f"{side:.0f} px images shrink to {side * scale:.0f} px{padded}: the budget gives about "
                  f"{passes / scale**2:.{0 if passes / scale**2 >= 1 else 1}f} passes over the training pixels at this scale on this machine"
                  + (f"; {kept}" if kept else ""))
    plan.set("scale", scale, f"original resolution ({reason}); never upscale" if scale == 1.0 else reason)
    scale = plan.values()["scale"]
    lo = min(fp["height"]["min"], fp["width"]["min"]) * scale
    hi = max(fp["height"]["max"], fp["width"]["max"]) * scale
    patch = PATCH[device]
    if hi > 1.25 * patch:
        plan.set("crop", patch, f"random {patch}x{patch} crops of {hi:.0f} px images (memory and speed)")
    elif fp["height"]["min"] == fp["height"]["max"] and fp["width"]["min"] == fp["width"]["max"]:
        plan.set("crop", None, f"whole {fp['width']['min'] * scale:.0f}x{fp['height']['min'] * scale:.0f} px images fit in a batch")
    else:  # a multiple of 32 (any depth's stride); small images: of the stride of the depth such patches get
        v, planned = plan.values(), plan.entries.get("encoder_depth", {}).get("source") == "plan"
        depth = min(v.get("encoder_depth", 5), _depth_for(int(lo))) if planned else v.get("encoder_depth", 5)
        step = 32 if lo >= 64 else stride(ModelConfig(name=v.get("model", "unet"), encoder_depth=depth))
        plan.set("crop", max(step, int(lo) // step * step), f"sizes differ: random crops of the smallest side ({lo:.0f} "
                 f"px), a multiple of {step} (the network's stride divides it)")


def _training_rules(plan: Plan, fp: dict, machine: dict, device: str) -> None:
    fractions = fp["class_fractions"]
    binary = plan.entries["classes"]["value"] == 2
    rare = (1.0 - fractions[0] if binary else min(fractions[1:])) if len(fractions) > 1 else 1.0
    if rare < 0.1:
        why = f"a rare class ({100 * rare:.1f} % of pixels): Dice weighs classes by their overlap, not their pixels"
    else:  # measured: EMPS, 5 minutes on 2 cores, test IoU 0.695 with Dice vs 0.670 without (same day, one run each)
        why = "cross-entropy for calibrated probabilities plus Dice for the overlap itself (nnU-Net's default)"
    plan.set("loss", "bce+dice" if binary else "ce+dice", why)
    if not binary and rare < 0.02:
        plan.set("class_weights", "auto", "inverse-frequency class weights for the rarest classes")
    elif not binary:  # vineyard-like scenes, 6 epochs: leaf cover +34 % with weights, +3 % without
        plan.set("class_weights", "none", "no class weights: Dice already balances the classes, and weights would "
                 "bias the predicted areas (coverage, leaf-area index) towards the rarer classes")
    plan.set("head_prior", "auto", "the class logits start at the classes' pixel fractions (the training split's), "
             "so the first steps learn the objects rather than that most pixels are background")
    objects = fp["mask_kind"] == "instance"  # objects numbered one by one (particles, cells): seen from any side
    photo = fp["channels"] == 3 and not objects
    plan.set("augment", "photo" if photo else "light",
             "photos: horizontal flips and colour jitter (up is up)" if photo else
             ("objects numbered one by one" if objects else "micrographs")
             + ": flips, 90-degree rotations and mild contrast changes (orientation carries no meaning)")
    bf16 = native_precision(device, machine) == "bf16-mixed"
    plan.set("precision", "bf16-mixed" if bf16 else "32",
             (f"native bf16 on this {device.upper()}" + (": about twice the training speed of 32-bit, and no loss of quality "
                                                          "(EMPS, 5 minutes, 2 AVX-512 BF16 cores: test IoU 0.781 vs 0.760)"
                                                          if device == "cpu" else ""))
             if bf16 else f"no native bf16 on this {device.upper()}: 32-bit")
    plan.set("optimizer", "adamw", "AdamW with decoupled weight decay")
    plan.set("weight_decay", 1e-4, "mild regularisation")
    plan.set("scheduler", "onecycle", "one-cycle: warm up, then anneal to the end of the budget")
    plan.set("preload", True, "decoded images are kept in memory" if (machine.get("free_ram_gb") or 8) > 2 else "")
    cores = machine.get("cores", 1)
    workers = 0 if device == "cpu" else min(8, max(0, cores - 1))
    plan.set("workers", workers, "CPU training: the cores compute, data comes from memory" if device == "cpu"
             else f"{workers} loader processes keep the GPU fed")


def _tta_rule(plan: Plan) -> None:
    """Test-time augmentation where it is cheap: its label-preserving variants at the working scale cost at most
    :data:`TTA_MAX_COST` passes over the images at their full size (a shrunken image is a fraction of one)."""
    from segfit.ensemble import tta_variants

    n, scale = len(tta_variants(plan.values().get("augment", "none"))), plan.values().get("scale") or 1.0
    turns = "flips and rotations" if n > 2 else "flips"
    if n * scale**2 <= TTA_MAX_COST:
        plan.set("tta", True, f"predictions average {n} label-preserving {turns}: at this scale they cost {n * scale**2:.1f} "
                 "passes at full size (EMPS, 5 minutes, 2 cores: test IoU 0.791 vs 0.775 with one pass); --no-tta: one pass")
    else:
        plan.set("tta", False, f"one pass: {n} test-time {turns} would cost {n * scale**2:.1f} passes at full size (--tta adds them)")


def _network_rule(plan: Plan, fp: dict, user: dict, device: str, calibrate_steps: int) -> float | None:
    """The network: the largest candidate that still gets :data:`PASSES` over the data within the
    budget at the smallest scale the objects allow (timed on this machine). Returns its training speed
    in pixels a second (None without calibration)."""
    v = plan.values()
    if "model" in user:
        return None
    candidates = []  # what the user fixed of the network is timed as given
    for arch, encoder, depth, decoder in CANDIDATES[device]:
        depth = user.get("encoder_depth", depth)
        decoder = list(user.get("decoder_channels") or (decoder + [decoder[-1]] * depth)[:depth])
        if (cand := (arch, user.get("encoder", encoder), depth, decoder)) not in candidates:
            candidates.append(cand)
    chosen, timing = candidates[0], None
    if plan.budget_s is None or calibrate_steps <= 0:
        reason = "the default network for this device (epochs fixed, no calibration)"
    else:
        low = scale_bounds(fp, device, bool(plan.values().get("instances")))[0] if "scale" not in user else user["scale"]
        pixels = _train_pixels(plan, fp) * low**2
        patch, batch = CALIBRATION[device]

        def fits(cand, margin: float = 1.0) -> bool:
            timing = calibrate(cand, v["channels"], v["classes"], patch, batch, v.get("precision", "32"), device,
                               calibrate_steps)
            plan.calibration[_key(cand)] = timing
            return timing["train_px_s"] * training_seconds(plan.budget_s) >= PASSES * pixels * margin

        # The smallest first: when even it cannot pass often enough over the data, a larger one cannot
        # either, and the seconds the larger ones' timing would take go to training (5 s of 60 on EMPS).
        chosen = candidates[-1]
        if fits(chosen):
            chosen = next((cand for cand in candidates[:-1] if fits(cand, LARGER_MARGIN)), chosen)
        timing = plan.calibration[_key(chosen)]
        reason = (f"U-Net {chosen[1]}, decoder {chosen[3][0]}..{chosen[3][-1]}: {timing['train_px_s'] / 1e3:.0f}k "
                  "training pixels a second on this machine")
        plan.calibration["chosen"] = _key(chosen)
    arch, encoder, depth, decoder = chosen
    for key, value in (("model", arch), ("encoder", encoder), ("encoder_depth", depth), ("decoder_channels", decoder)):
        plan.set(key, value, reason)
    return timing["train_px_s"] if timing else None


def _batch_rule(plan: Plan, fp: dict, user: dict, device: str, gpu_mem: float) -> None:
    v = plan.values()
    patch = v.get("crop") or user.get("size") or round(max(fp["height"]["median"], fp["width"]["median"]) * (v.get("scale") or 1.0))
    if device == "cpu":  # about 4 patches of 128 px: many small steps learn more in a budget than a few large ones
        batch = max(4, min(16, CPU_STEP_PIXELS // max(patch, 32) ** 2))
    else:  # 16 patches of 512 px per 8 GB of GPU memory
        batch = max(4, min(32, int(16 * gpu_mem / 8 * (512 / max(patch, 64)) ** 2)))
    reason = f"{batch} patches of {patch} px per step"
    timing = plan.calibration.get(plan.calibration.get("chosen", ""))
    if timing and plan.budget_s:  # a short budget on little data: smaller batches, so it still gives enough steps
        affordable = timing["train_px_s"] * training_seconds(plan.budget_s) * 0.8 / patch**2  # patches trained on
        if affordable / batch < MIN_STEPS and batch > 4:
            batch = max(4, int(affordable / MIN_STEPS))
            reason = f"{batch} patches of {patch} px per step (the budget gives about {int(affordable / batch)} steps)"
    plan.set("batch_size", batch, reason)
    plan.set("lr", 1e-3, "one-cycle peak for AdamW at this batch size")
    n_train, batch = _n_train(plan, fp), plan.values()["batch_size"]  # the user's batch size, when given
    steps = math.ceil(n_train / batch)
    if steps < MIN_EPOCH_STEPS and "epochs" not in user:  # the user's epochs: passes over the images
        repeats = math.ceil(MIN_EPOCH_STEPS * batch / n_train)
        plan.set("repeats", repeats, f"{n_train} training images make {steps} steps: each epoch "
                                     f"goes over them {repeats} times (new crops and augmentations), so that an epoch "
                                     f"is {MIN_EPOCH_STEPS} steps or more, not mostly validation")
    if plan.entries.get("encoder_depth", {}).get("source") == "plan" and patch < 128:  # small images: a bottleneck of at least 4 px (depth 5 leaves 1 px at 32 px)
        depth = _depth_for(patch)
        if depth < v["encoder_depth"]:
            old, decoder = v["decoder_channels"], v["decoder_channels"][:depth]
            reason = plan.entries["encoder_depth"]["reason"].replace(f"decoder {old[0]}..{old[-1]}", f"decoder {decoder[0]}..{decoder[-1]}")
            before = plan.entries["encoder_depth"]["reason"]
            plan.set("encoder_depth", depth, reason + f"; depth {depth} for {patch} px patches")
            for key in ("model", "encoder", "decoder_channels"):  # the network's reasons name this network
                if key == "decoder_channels" or plan.entries.get(key, {}).get("reason") == before:
                    plan.set(key, decoder if key == "decoder_channels" else v[key], plan.entries["encoder_depth"]["reason"])


def _depth_for(patch: int) -> int:
    """The encoder depth for patches of ``patch`` px: a bottleneck of at least 4 px (3 to 5 stages)."""
    return max(3, min(5, int(math.log2(max(patch, 8))) - 2))


def _key(candidate) -> str:
    return f"{candidate[1]}-d{candidate[2]}-{candidate[3][0]}"


def _trainable(fp: dict) -> int:
    """Images left for training and validation: those of train/ and val/ folders; else what the default
    random test share leaves (test.csv keeps out about as many)."""
    folders = fp.get("split_folders")
    return folders["train"] + folders["val"] if folders else fp["images"] - test_count(fp["images"], DataConfig.test)


def _n_train(plan: Plan, fp: dict) -> int:
    """Training images: the trainable ones less the validation share (as the split counts them)."""
    return max(1, _trainable(fp) - val_count(_trainable(fp), plan.values()["val"]))


def _train_pixels(plan: Plan, fp: dict) -> float:
    """Pixels of the training images at their original size (median image)."""
    return _n_train(plan, fp) * fp["height"]["median"] * fp["width"]["median"]
