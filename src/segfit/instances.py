"""Instance-level evaluation: match predicted objects to true ones and score counts and sizes.

Two label images (0 = background, each object its own integer) are compared object by object: a
predicted object matches a true one when their IoU is at least ``iou_threshold`` (0.5, where a
match is necessarily unique). From the matches come instance precision, recall and F1, the count
error and the error of the equivalent diameter (``sqrt(4 area / pi)``) of matched objects; the
average precision at IoU t, ``TP / (TP + FP + FN)`` as the nuclei benchmarks (Data Science Bowl 2018,
StarDist, Cellpose) report it, at 0.5 and averaged over 0.5:0.95; and the Wasserstein-1 distance
between the true and the predicted diameter distributions.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, fields

import numpy as np

from segfit.data.formats import IGNORE_ID
from segfit.objects import equivalent_diameter, label_objects, renumber, true_objects

AP_THRESHOLDS = tuple(np.round(np.arange(0.5, 0.96, 0.05), 2).tolist())  # 0.5, 0.55, ..., 0.95
MIN_SWEEP_IMAGES = 8  # a seed sweep past its deadline still scores this many images
# Seed levels of the distance map (segfit.objects.instances_from_distance) tried on the validation images.
# The highest two came when a better-trained EMPS model (20 minutes at bf16) chose 0.8, the top of the range,
# with F1 still rising: on its test split 0.8 / 0.85 / 0.9 gave count errors +12.1 / +5.2 / -4.1 %, mean
# diameters -5.7 / -2.2 / +1.8 %, Wasserstein-1 3.67 / 1.79 / 2.34 px, F1 0.651 / 0.660 / 0.653.
SEED_LEVELS = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.85, 0.9)
# Merge levels the sweep tries beside no merging (:func:`segfit.objects.merge_without_valley`): on EMPS
# (20-minute model) merging at 0.5 lifted validation F1 0.616 -> 0.634 and test F1 0.619 -> 0.652.
MERGE_LEVELS = (None, 0.5, 0.6, 0.7)
# Fragment floors the sweep tries, as multiples of the planned ``min_object_area`` (half the 5th-percentile true
# object): where a model breaks large objects into pieces, a higher floor folds more of them back. Never above
# the 5th-percentile object's own area, so the floor does not cut into the true size distribution: on EMPS
# (20-minute model, validation chose 2x where it could, and 3x where it was offered) test F1 0.660 / 0.669 / 0.673
# at 1x / 2x / 3x, but count error +6.3 / -1.8 / -6.4 %, mean diameter -3.5 / +3.0 / +6.9 %, Wasserstein-1
# 2.55 / 2.87 / 4.57 px.
AREA_FACTORS = (1, 2)
# Uncertainty levels the sweep tries beside keeping every object (:func:`segfit.objects.drop_unsure`): an object
# is kept when the model is surer than this of one of its pixels at least.
UNSURE_LEVELS = (None, 0.9, 0.8, 0.7)
# F1 differences under this on the validation images are noise (a fold of 48 EMPS images holds about a thousand
# particles: one standard error is 0.013); within it the sweep takes the plainer decoding. EMPS 20-minute model:
# seed 0.7 with merging (validation F1 0.736, test count -10 %) against seed 0.5 unmerged (0.732, test -3 %).
F1_TIE = 0.005


@dataclass
class InstanceMatch:
    """The result of :func:`match_instances` for one image (or, summed, for many)."""

    tp: int = 0
    fp: int = 0
    fn: int = 0
    diameter_true: list[float] = field(default_factory=list)  # every true object
    diameter_pred: list[float] = field(default_factory=list)  # every predicted object
    diameter_errors: list[float] = field(default_factory=list)  # predicted - true, matched pairs
    ious: list[float] = field(default_factory=list)  # matched pairs

    @property
    def count_true(self) -> int:
        return self.tp + self.fn

    @property
    def count_pred(self) -> int:
        return self.tp + self.fp

    def __add__(self, other: InstanceMatch) -> InstanceMatch:
        return InstanceMatch(*(getattr(self, f.name) + getattr(other, f.name) for f in fields(self)))

    def __iadd__(self, other: InstanceMatch) -> InstanceMatch:
        """In place: a sum over many images grows its lists once (a seed sweep adds each image to 200 sums)."""
        for f in fields(self):
            mine, theirs = getattr(self, f.name), getattr(other, f.name)
            if isinstance(mine, list):
                mine.extend(theirs)
            else:
                setattr(self, f.name, mine + theirs)
        return self

    def average_precision(self, threshold: float) -> float:
        """``TP / (TP + FP + FN)`` with matches at IoU >= ``threshold`` (>= 0.5; 1 when both sides are empty)."""
        if threshold < 0.5:
            raise ValueError("average precision is defined here for IoU thresholds of 0.5 and above")
        tp = int(np.sum(np.asarray(self.ious) >= threshold))
        union = self.count_true + self.count_pred - tp
        return tp / union if union else 1.0

    def scores(self, pixel_size: float | None = None) -> dict[str, float]:
        """Precision, recall, F1 (an image with no objects on either side scores 1), AP, counts and sizes
        (in pixels; with ``pixel_size`` also ``*_unit`` diameters in the unit of the pixel size)."""
        from scipy.stats import wasserstein_distance

        empty = self.count_true == 0 and self.count_pred == 0
        precision = self.tp / self.count_pred if self.count_pred else float(empty)
        recall = self.tp / self.count_true if self.count_true else float(empty)
        f1 = 2 * self.tp / (self.count_true + self.count_pred) if not empty else 1.0
        mean = lambda v: float(np.mean(v)) if len(v) else float("nan")  # noqa: E731
        w1 = (float(wasserstein_distance(self.diameter_true, self.diameter_pred))
              if self.diameter_true and self.diameter_pred else float("nan"))
        out = {
            "precision": precision, "recall": recall, "f1": f1,
            "ap50": self.average_precision(0.5),
            "map": float(np.mean([self.average_precision(t) for t in AP_THRESHOLDS])),
            "tp": self.tp, "fp": self.fp, "fn": self.fn,
            "count_true": self.count_true, "count_pred": self.count_pred,
            "count_error": self.count_pred - self.count_true,
            "count_error_fraction": (self.count_pred - self.count_true) / self.count_true if self.count_true else float("nan"),
            "mean_diameter_true": mean(self.diameter_true), "mean_diameter_pred": mean(self.diameter_pred),
            "diameter_error": mean(self.diameter_errors),
            "abs_diameter_error": mean(np.abs(self.diameter_errors)),
            "diameter_wasserstein": w1,
            "matched_iou": mean(self.ious),
        }
        if pixel_size is not None:
            for key in ("mean_diameter_true", "mean_diameter_pred", "diameter_error", "abs_diameter_error", "diameter_wasserstein"):
                out[f"{key}_unit"] = out[key] * pixel_size
        return out


def _areas(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    ids, areas = np.unique(labels[labels > 0], return_counts=True)
    return ids, areas


def match_instances(true_labels: np.ndarray, pred_labels: np.ndarray, iou_threshold: float = 0.5) -> InstanceMatch:
    """Match the objects of two label images of the same shape (greedily, highest IoU first).

    Args:
        true_labels: the truth, 0 = background, one integer per object (any integer type).
        pred_labels: the prediction, likewise.
        iou_threshold: a pair matches when its IoU is at least this.
    """
    return _match(true_labels, pred_labels, iou_threshold)[0]


def _match(true_labels: np.ndarray, pred_labels: np.ndarray, iou_threshold: float) -> tuple[InstanceMatch, np.ndarray, np.ndarray]:
    """:func:`match_instances`, and the predicted ids with whether each was matched."""
    if true_labels.shape != pred_labels.shape:
        raise ValueError(f"label images differ in shape: {true_labels.shape} vs {pred_labels.shape}")
    t_ids, t_areas = _areas(true_labels)
    p_ids, p_areas = _areas(pred_labels)
    result = InstanceMatch(diameter_true=equivalent_diameter(t_areas).tolist(),
                           diameter_pred=equivalent_diameter(p_areas).tolist())
    both = (true_labels > 0) & (pred_labels > 0)
    if not both.any():
        result.fp, result.fn = len(p_ids), len(t_ids)
        return result, p_ids, np.zeros(len(p_ids), bool)
    # Intersections of every overlapping (true, pred) pair, from one pass over the shared pixels.
    ti = np.searchsorted(t_ids, true_labels[both])
    pi = np.searchsorted(p_ids, pred_labels[both])
    pairs, inter = np.unique(ti.astype(np.int64) * len(p_ids) + pi, return_counts=True)
    ti, pi = pairs // len(p_ids), pairs % len(p_ids)
    iou = inter / (t_areas[ti] + p_areas[pi] - inter)
    t_used, p_used = np.zeros(len(t_ids), bool), np.zeros(len(p_ids), bool)
    for k in np.argsort(-iou, kind="stable"):
        if iou[k] < iou_threshold:
            break
        if t_used[ti[k]] or p_used[pi[k]]:
            continue
        t_used[ti[k]] = p_used[pi[k]] = True
        result.ious.append(float(iou[k]))
        result.diameter_errors.append(float(equivalent_diameter(p_areas[pi[k]]) - equivalent_diameter(t_areas[ti[k]])))
    result.tp = int(t_used.sum())
    result.fn = len(t_ids) - result.tp
    result.fp = len(p_ids) - result.tp
    return result, p_ids, p_used


def _of_class(labels: np.ndarray, classes: np.ndarray, cls: int) -> np.ndarray:
    return renumber(np.where(classes == cls, labels, 0))


class ObjectScores:
    """Instance scores per image (returned as columns of per_image.csv) and summed over images.

    Predicted objects are the model's own instances when :meth:`add` is given them (a model that learned
    instances), else the connected components of each predicted class, split by a distance-transform
    watershed with ``split_touching``.
    """

    def __init__(self, class_names: list[str], binary: bool, split_touching: bool, min_distance: int, min_area: int,
                 pixel_size: float | None = None, unit: str = "px"):
        self.names, self.binary = class_names, binary
        self.options = {"split_touching": split_touching, "min_distance": min_distance, "min_area": min_area}
        self.pixel_size, self.unit = pixel_size, unit if pixel_size else "px"
        self.source = "components" if not split_touching else "watershed of the class map"
        self.total = {c: None for c in range(1, len(class_names))}
        self.abs_count_errors: list[int] = []
        self.image_f1: list[float] = []

    def add(self, name: str, raw: np.ndarray, truth: np.ndarray, pred: np.ndarray,
            pred_objects: np.ndarray | None = None) -> dict:
        """Score one image: ``raw`` mask values, true and predicted class ids, and optionally the
        predicted objects (a label image from the model)."""
        row, errors, image = {}, 0, InstanceMatch()
        truth_objects = true_objects(raw, truth, self.binary)
        if pred_objects is not None:
            self.source = "the model's instances"
        for c in self.total:
            if pred_objects is not None:
                predicted = _of_class(pred_objects, pred, c)
            else:
                predicted = label_objects(pred == c, **self.options)
            match = match_instances(_of_class(truth_objects, truth, c), predicted)
            self.total[c] = self.total[c] or InstanceMatch()
            self.total[c] += match
            errors += abs(match.count_pred - match.count_true)
            image = image + match
            suffix = "" if len(self.total) == 1 else f"_{self.names[c]}"
            scores = match.scores()
            row.update({f"instance_{key}{suffix}": scores[key] for key in ("precision", "recall", "f1", "ap50")})
            row.update({f"{key}{suffix}": scores[key] for key in
                        ("count_true", "count_pred", "count_error", "mean_diameter_true", "mean_diameter_pred", "diameter_error")})
        self.abs_count_errors.append(errors)
        self.image_f1.append(image.scores()["f1"])
        return row

    def diameters(self) -> dict[str, dict[str, list[float]]]:
        """Per class, every true and every predicted object's equivalent diameter in pixels."""
        return {self.names[c]: {"true": list(m.diameter_true), "pred": list(m.diameter_pred)}
                for c, m in self.total.items() if m is not None}

    def summary(self) -> dict:
        per_class = {self.names[c]: (m or InstanceMatch()).scores(self.pixel_size) for c, m in self.total.items()}
        overall = sum((m for m in self.total.values() if m is not None), InstanceMatch()).scores(self.pixel_size)
        return {**overall, "mean_abs_count_error_per_image": float(np.mean(self.abs_count_errors)) if self.abs_count_errors else 0.0,
                "mean_f1_per_image": float(np.mean(self.image_f1)) if self.image_f1 else 1.0,
                "iou_threshold": 0.5, "ap_thresholds": list(AP_THRESHOLDS), "predicted_objects": self.source,
                **self.options, "unit": self.unit, "pixel_size": self.pixel_size, "per_class": per_class}


class SeedSweep:
    """Instance F1 of a model's objects at each of :data:`SEED_LEVELS`, :data:`MERGE_LEVELS`, fragment floor
    (:data:`AREA_FACTORS` times ``min_area``) and :data:`UNSURE_LEVELS`, over held-out images: the levels that
    separate touching objects best on this data (too low merges neighbours, too high loses the faint ones), the
    floor under which a piece is a fragment, and how sure of an object the model must be somewhere.

    On EMPS (the 20-minute model, test split) F1 went 0.56 / 0.63 / 0.63 at levels 0.5 / 0.6 / 0.7."""

    def __init__(self, min_area: int = 0, levels: tuple[float, ...] = SEED_LEVELS, deadline: float | None = None,
                 merges: tuple[float | None, ...] = MERGE_LEVELS, area_factors: tuple[int, ...] = AREA_FACTORS,
                 unsure: tuple[float | None, ...] = UNSURE_LEVELS):
        self.levels, self.merges, self.deadline, self.unsure = levels, merges, deadline, unsure
        self.areas = tuple(sorted({int(f * min_area) for f in area_factors})) if min_area > 1 else (int(min_area),)
        self.min_area = self.areas[0]
        self.total = {(level, merge, area, u): InstanceMatch() for level in levels for merge in merges
                      for area in self.areas for u in unsure}
        self.images = 0

    def add(self, truth_objects: np.ndarray, truth: np.ndarray, classes: np.ndarray, distance: np.ndarray,
            uncertainty: np.ndarray | None = None, floor=None) -> None:
        """One image: its true objects and class ids, the predicted class ids, distance and uncertainty maps
        (without one, every unsure level keeps all objects); ``floor`` maps a fragment floor to this image's, as
        the predictor scales it for an image predicted at another scale (an image of tiny particles seen closer
        keeps objects under the working scale's floor: scored at that floor, the sweep undercounted them). Past
        the ``deadline`` (``time.perf_counter()``; a run's time budget), images beyond the first
        :data:`MIN_SWEEP_IMAGES` are skipped."""
        from segfit.objects import instance_variants, least_unsure

        if self.deadline is not None and self.images >= MIN_SWEEP_IMAGES and time.perf_counter() > self.deadline:
            return
        self.images += 1

        present = np.union1d(truth[(truth > 0) & (truth != IGNORE_ID)], classes[classes > 0])  # classes in the truth or the prediction
        true_of = {c: _of_class(truth_objects, truth, c) for c in present}
        own = {area: floor(area) if floor else area for area in self.areas}  # the sweep's floor -> this image's
        for level in self.levels:
            found_at = instance_variants(classes, distance, level, tuple(sorted(set(own.values()))), self.merges)
            for merge, area in ((m, a) for m in self.merges for a in self.areas):
                found = found_at[merge, own[area]]
                for c in present:  # with one class present, every object found is of it
                    mine = found if len(present) == 1 else _of_class(found, classes, c)
                    match, ids, matched = _match(true_of[c], mine, 0.5)
                    surest = least_unsure(mine, uncertainty, int(ids.max()))[ids - 1] if uncertainty is not None and ids.size else None
                    for u in self.unsure:
                        if u is None or surest is None:
                            self.total[level, merge, area, u] += match
                            continue
                        kept = surest <= u  # dropping an object leaves the other matches as they are (IoU >= 0.5: unique)
                        tp = int((matched & kept).sum())
                        self.total[level, merge, area, u] += InstanceMatch(tp=tp, fp=int(kept.sum()) - tp, fn=match.count_true - tp)

    def best(self, images: str) -> dict | None:
        """``{"seed_level", "merge_level", "min_object_area", "unsure_level", "f1", "f1_by_level", "f1_by_merge",
        "f1_by_area", "f1_by_unsure", "how"}`` (None when the images held no objects); among the keys within
        :data:`F1_TIE` of the highest F1 (ties), the planned floor goes first, then keeping every object, then no
        merging, then the level nearer the middle (0.5), then the higher F1."""
        f1 = {key: m.scores()["f1"] for key, m in self.total.items() if m.count_true}
        if not f1:
            return None
        base = self.min_area
        top = max(f1.values())
        best = max(f1, key=lambda k: (f1[k] >= top - F1_TIE, k[2] == base, k[3] is None, k[1] is None, -abs(k[0] - 0.5),
                                      round(f1[k], 4), -k[2]))
        level, merge, area, unsure = best
        return {"seed_level": level, "merge_level": merge, "min_object_area": area, "unsure_level": unsure,
                "f1": round(f1[best], 4),
                "f1_by_level": {str(k[0]): round(v, 4) for k, v in f1.items() if k[1:] == (None, base, None)},
                "f1_by_merge": {str(k[1]): round(v, 4) for k, v in f1.items() if (k[0], *k[2:]) == (level, area, unsure)},
                "f1_by_area": {str(k[2]): round(v, 4) for k, v in f1.items() if (*k[:2], k[3]) == (level, merge, unsure)},
                "f1_by_unsure": {str(k[3]): round(v, 4) for k, v in f1.items() if k[:3] == (level, merge, area)},
                "how": f"the seed and merge levels, fragment floor and unsure level of the highest instance F1 on {images}"}
