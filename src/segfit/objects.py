"""Objects in a mask: label them (connected components, or a watershed split of touching ones) and
measure them (area, equivalent diameter, shape) with scikit-image's region properties.

Networks that learn instances predict, beside the class map, each object's *normalised distance map*
(:func:`distance_target`: 1 at an object's centre, falling to 0 at its outline, whether the outline
borders the background or another object; a plateau of 1 deeper than the typical object's radius); :func:`instances_from_distance` turns it back into objects
with a watershed seeded by the cores where it exceeds one half. Touching objects then separate at the
valley between their cores, which a distance transform of the merged mask cannot see.

The building blocks of ``segfit quantify`` (:mod:`segfit.quantification`) and of instance scores
(:mod:`segfit.instances`).
"""

from __future__ import annotations

import numpy as np

from segfit.data.formats import IGNORE_ID

OBJECT_COLUMNS = ["image", "class", "object_id", "area", "equivalent_diameter", "perimeter", "major_axis",
                  "minor_axis", "eccentricity", "solidity", "centroid_x", "centroid_y"]
LENGTHS = ["equivalent_diameter", "perimeter", "major_axis", "minor_axis", "centroid_x", "centroid_y"]
# regionprops_table name -> our column (centroid-0 is the row, centroid-1 the column)
_PROPS = {"label": "object_id", "area": "area", "equivalent_diameter_area": "equivalent_diameter",
          "perimeter": "perimeter", "axis_major_length": "major_axis", "axis_minor_length": "minor_axis",
          "eccentricity": "eccentricity", "solidity": "solidity", "centroid-1": "centroid_x", "centroid-0": "centroid_y"}
_EIGHT = np.ones((3, 3), bool)
# Distance-map peaks less than this many pixels above the saddle to a higher peak are the staircase of
# pixelated outlines (thin or tilted ellipses), not separate objects: they share the higher one's marker.
_MERGE_HEIGHT = 1.0
# Predicted distance above which a pixel belongs to an object's core (the watershed seeds): half way
# between outline (0) and centre (1), where the cores of two touching discs are farthest apart.
SEED_LEVEL = 0.5


def label_objects(binary: np.ndarray, split_touching: bool = False, min_distance: int = 5,
                  min_area: int = 0) -> np.ndarray:
    """Label the objects of a boolean mask.

    Args:
        binary: ``H x W`` mask (non-zero is foreground).
        split_touching: split touching objects by a watershed of the Euclidean distance transform, from
            markers at its peaks (``skimage.feature.peak_local_max`` with ``min_distance``); peaks on one
            plateau, or less than 1 px above the saddle to a higher peak, share a marker, and every
            connected component without a peak gets its own, so no foreground pixel is lost.
        min_distance: smallest distance in pixels between two peaks (two object centres).
        min_area: objects with fewer pixels are removed.

    Returns:
        An int32 label image: 0 is background, objects are 1..N in raster order of their first pixel
        (connected components with 8-connectivity unless split).
    """
    from scipy import ndimage

    mask = np.asarray(binary) != 0
    if mask.ndim != 2:
        raise ValueError(f"label_objects needs a 2-D mask, not shape {mask.shape}")
    labels, n = ndimage.label(mask, structure=_EIGHT)
    if split_touching and n:
        labels = _watershed_split(mask, labels, min_distance)
    return renumber(labels, min_area)


def _watershed_split(mask: np.ndarray, components: np.ndarray, min_distance: int) -> np.ndarray:
    from scipy import ndimage
    from skimage.feature import peak_local_max
    from skimage.morphology import local_maxima, reconstruction
    from skimage.segmentation import watershed

    distance = ndimage.distance_transform_edt(mask)
    peaks = np.zeros(mask.shape, bool)
    peaks[tuple(peak_local_max(distance, min_distance=min_distance, labels=components, exclude_border=False).T)] = True
    per_component = np.bincount(components[peaks], minlength=int(components.max()) + 1)
    markers = np.zeros(mask.shape, np.int32)
    n = 0
    for index, box in enumerate(ndimage.find_objects(components), start=1):
        own = components[box] == index
        if per_component[index] < 2:  # one peak, or none: the whole component is one object
            n += 1
            markers[box][own] = n
            continue
        # A peak's marker is the top of its dome: the connected pixels within _MERGE_HEIGHT of it. Adjacent
        # peaks of a plateau or ridge, and staircase peaks, fall in one top and become one marker.
        d = np.where(own, distance[box], 0.0)
        tops, _ = ndimage.label(local_maxima(reconstruction(d - _MERGE_HEIGHT, d), connectivity=2) & own, structure=_EIGHT)
        chosen = np.unique(tops[peaks[box] & own])
        found, k = ndimage.label(np.isin(tops, chosen[chosen > 0]), structure=_EIGHT)
        if k == 0:
            found, k = own.astype(np.int32), 1
        markers[box][found > 0] = found[found > 0] + n
        n += k
    return watershed(-distance, markers, mask=mask, connectivity=2)


def least_unsure(labels: np.ndarray, uncertainty: np.ndarray, n: int, chunk: int = 1 << 22) -> np.ndarray:
    """Each object's lowest uncertainty (``n`` values, objects 1..n; 1 for an id with no pixel): how sure the
    model is of the surest pixel of each object. A chunk of pixels at a time: no float32 copy of a large map."""
    out = np.ones(n + 1, np.float32)
    flat, unsure = labels.reshape(-1), uncertainty.reshape(-1)
    for start in range(0, flat.size, chunk):
        ids = flat[start: start + chunk]
        inside = ids > 0
        np.minimum.at(out, ids[inside], unsure[start: start + chunk][inside].astype(np.float32))
    return out[1:]


def drop_unsure(labels: np.ndarray, uncertainty: np.ndarray | None, level: float | None) -> np.ndarray:
    """``labels`` without the objects the model is nowhere sure of (every pixel's uncertainty above ``level``),
    the rest renumbered; unchanged with no ``level`` or no uncertainty map. Such objects are the model's
    guesses in textured ground, not particles: on EMPS (20-minute model, test split; level 0.7, chosen on the
    validation images) instance F1 went 0.776 -> 0.802 (per image 0.739 -> 0.763), the count error +4.6 -> -3.2 %
    and the mean diameter -5.0 -> -0.1 %, where a cut on the objects' mean uncertainty (at 0.8) lost 15 % of the
    count: small true objects are unsure along their outline, not at their centre."""
    n = int(labels.max()) if labels.size else 0
    if level is None or uncertainty is None or not n:
        return labels
    keep = np.r_[True, least_unsure(labels, uncertainty, n) <= level]
    return renumber(np.where(keep[labels], labels, 0))


def label_counts(labels: np.ndarray, n: int, chunk: int = 1 << 22) -> np.ndarray:
    """Pixels of each of the labels ``0 .. n - 1`` (class ids or object ids), counted a chunk at a time
    (``np.bincount`` of a whole large map would first copy it as 64-bit integers)."""
    flat = labels.reshape(-1)
    counts = np.zeros(n, np.int64)
    for start in range(0, flat.size, chunk):
        counts += np.bincount(flat[start: start + chunk], minlength=n)[:n]
    return counts


def renumber(labels: np.ndarray, min_area: int = 0) -> np.ndarray:
    """Drop objects smaller than ``min_area`` pixels; number the rest 1..N in raster order (int32)."""
    labels = np.asarray(labels)
    labels = labels.view(np.uint8) if labels.dtype == bool else labels
    flat = labels.reshape(-1)
    dense = np.issubdtype(labels.dtype, np.integer) and flat.size and flat.min() >= 0
    top = int(flat.max()) if dense else 0
    if dense and top < max(4 * flat.size, 1 << 16):  # dense ids: counts and a lookup, no sort of the image
        starts = np.flatnonzero(np.r_[True, flat[1:] != flat[:-1]])  # where runs of one id begin, in raster order
        first = np.full(top + 1, flat.size, np.int64)
        np.minimum.at(first, flat[starts], starts)
        return _numbering(np.arange(top + 1), first, label_counts(labels, top + 1), min_area)[labels]
    ids, first, inverse, areas = np.unique(flat, return_index=True, return_inverse=True, return_counts=True)
    return _numbering(ids, first, areas, min_area)[inverse].reshape(labels.shape)  # sparse or negative ids: sorted


def _numbering(ids: np.ndarray, first: np.ndarray, areas: np.ndarray, min_area: int) -> np.ndarray:
    """The new number of each of ``ids`` (0: dropped): objects of ``min_area`` pixels or more, 1..N in the order
    of their ``first`` pixel."""
    kept = np.flatnonzero((ids > 0) & (areas >= max(min_area, 1)))
    new = np.zeros(len(ids), np.int32)
    new[kept[np.argsort(first[kept])]] = np.arange(1, len(kept) + 1, dtype=np.int32)
    return new


def measure_objects(labels: np.ndarray):
    """One row per object of a label image (``skimage.measure.regionprops_table``), in pixels.

    Columns: object_id, area, equivalent_diameter, perimeter, major_axis, minor_axis, eccentricity,
    solidity, centroid_x (column), centroid_y (row).
    """
    import pandas as pd
    from skimage.measure import regionprops_table

    labels = np.asarray(labels)
    if labels.dtype.kind not in "iu":
        raise ValueError(f"measure_objects needs an integer label image, not {labels.dtype}")
    table = regionprops_table(labels, properties=("label", "area", "equivalent_diameter_area", "perimeter",
                                                  "axis_major_length", "axis_minor_length", "eccentricity",
                                                  "solidity", "centroid"))
    frame = pd.DataFrame({ours: np.asarray(table[theirs], dtype=float) for theirs, ours in _PROPS.items()})
    return frame.astype({"object_id": int, "area": int})


def equivalent_diameter(area: np.ndarray | float) -> np.ndarray:
    """Diameter of the disc of the same area."""
    return np.sqrt(4 * np.asarray(area, dtype=np.float64) / np.pi)


def true_objects(raw: np.ndarray, class_ids: np.ndarray, binary: bool) -> np.ndarray:
    """The true objects of a mask as one label image: the raw mask's own ids when it is an instance map
    (a binary data set whose masks hold more than one foreground value, as EMPS), else the connected
    components of each class (numbered on across classes)."""
    labelled = (class_ids > 0) & (class_ids != IGNORE_ID)
    if binary:
        values = np.unique(raw[labelled])
        if len(values) > 1:
            return np.where(labelled, raw, 0).astype(np.int32)
    labels = np.zeros(class_ids.shape, np.int32)
    for c in np.unique(class_ids[labelled]):
        own = label_objects(class_ids == c)
        labels[own > 0] = own[own > 0] + labels.max()
    return labels


def distance_target(labels: np.ndarray, radius: float | None = None) -> np.ndarray:
    """Each object's distance to its own outline, divided by its largest: float32 in [0, 1], 1 at the
    centre, 0 on the background. The outline is where the object meets the background *or another
    object*, so touching objects get a valley between them.

    With ``radius``, objects deeper than that are divided by ``radius`` instead and clipped at 1: a large
    object gets a plateau rather than one far-away peak, which a network that sees only part of it
    could not place (it would break the object into many cores)."""
    from scipy import ndimage

    labels = np.asarray(labels)
    out = np.zeros(labels.shape, np.float32)
    for index, box in enumerate(ndimage.find_objects(labels), start=1):
        if box is None:
            continue
        # One pixel of margin: outside the box (or the image) counts as outline.
        window = tuple(slice(max(b.start - 1, 0), b.stop + 1) for b in box)
        own = np.pad(labels[window] == index, 1)
        d = ndimage.distance_transform_edt(own)[1:-1, 1:-1]
        peak = d.max() if radius is None else min(d.max(), max(radius, 1.0))
        if peak > 0:
            own = own[1:-1, 1:-1]
            out[window][own] = np.minimum(d[own] / peak, 1.0)
    return out


def merge_without_valley(labels: np.ndarray, distance: np.ndarray, level: float) -> np.ndarray:
    """Join neighbouring objects of ``labels`` with no valley of ``distance`` between them: the median of
    the lower side's distance along their shared border is ``level`` or more. Touching objects have a
    valley near 0 between them (the target is 0 on every outline); the cores that noise cuts out of one
    large object's plateau meet high up (EMPS: particles 150-300 px across fell into 30-116 pieces)."""
    from scipy import ndimage
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    n, (height, width) = int(labels.max()), labels.shape
    keys, values = [], []
    step = max(1, (1 << 20) // max(width, 1))  # a block of rows at a time: no full-size temporaries
    for r0 in range(0, height, step):
        r1, below = min(r0 + step, height), min(r0 + step, height - 1)
        for a, b, da, db in ((labels[r0:r1, :-1], labels[r0:r1, 1:], distance[r0:r1, :-1], distance[r0:r1, 1:]),
                             (labels[r0:below], labels[r0 + 1:below + 1], distance[r0:below], distance[r0 + 1:below + 1])):
            edge = (a != b) & (a > 0) & (b > 0)
            la, lb = a[edge].astype(np.int64), b[edge].astype(np.int64)
            keys.append(np.minimum(la, lb) * (n + 1) + np.maximum(la, lb))
            values.append(np.minimum(da[edge], db[edge]))
    pairs, border = np.unique(np.concatenate(keys), return_inverse=True)
    if not pairs.size:
        return labels
    medians = ndimage.median(np.concatenate(values), labels=border + 1, index=np.arange(1, len(pairs) + 1))
    joined = pairs[np.asarray(medians) >= level]
    if not joined.size:
        return labels
    graph = coo_matrix((np.ones(len(joined)), (joined // (n + 1), joined % (n + 1))), shape=(n + 1, n + 1))
    _, component = connected_components(graph, directed=False)  # the background, node 0, is component 0
    return component.astype(labels.dtype)[labels]


def instances_from_distance(classes: np.ndarray, distance: np.ndarray, seed_level: float = SEED_LEVEL,
                            min_area: int = 0, merge_level: float | None = None) -> np.ndarray:
    """Objects from a class map and a predicted normalised distance map (see :func:`distance_target`).

    For each class but background, seeds are the connected cores where ``distance > seed_level``; a
    watershed of ``-distance`` grows them over the class's pixels. A connected part of the class that
    holds no core is one object, so no pixel of the class map is lost. With ``merge_level``, neighbours
    with no valley between them join (:func:`merge_without_valley`). Pieces under ``min_area`` pixels
    that touch a larger object of their class join it (a second watershed from the larger ones); only
    isolated ones are dropped.

    Returns:
        An int32 label image, objects 1..N over all classes (each object lies in one class).
    """
    return instance_variants(classes, distance, seed_level, (min_area,), (merge_level,))[merge_level, min_area]


def instance_variants(classes: np.ndarray, distance: np.ndarray, seed_level: float, min_areas: tuple[int, ...],
                      merge_levels: tuple[float | None, ...]) -> dict[tuple[float | None, int], np.ndarray]:
    """:func:`instances_from_distance` at each of ``merge_levels`` (None: no merging) and ``min_areas``, keyed
    ``(merge, area)``: the seeded watershed made once, each merge once."""
    from scipy import ndimage
    from skimage.segmentation import watershed

    classes = np.asarray(classes)
    distance = np.asarray(distance, np.float32)
    out = {(merge, area): np.zeros(classes.shape, np.int32) for merge in merge_levels for area in min_areas}
    for c in np.unique(classes[classes > 0]):
        mask = classes == c
        markers, n = ndimage.label(mask & (distance > seed_level), structure=_EIGHT)
        seeded = watershed(-distance, markers, mask=mask, connectivity=2) if n else markers
        rest, _ = ndimage.label(mask & (seeded == 0), structure=_EIGHT)
        seeded = np.where(rest > 0, rest + n, seeded)
        for merge in merge_levels:
            merged = merge_without_valley(seeded, distance, merge) if merge is not None and n > 1 else seeded
            counts = label_counts(merged, int(merged.max()) + 1) if max(min_areas) > 1 else None  # chunked: no 64-bit copy
            for area in min_areas:
                grown = merged
                small = counts < area if area > 1 else None
                if small is not None and small[1:].any():  # fragments join the larger neighbour they touch; isolated ones stay unlabelled
                    small[0] = False
                    grown = _absorb(merged, small[merged], distance, mask)
                labels = out[merge, area]
                offset = labels.max()
                labels[mask] = np.where(grown[mask] > 0, grown[mask] + offset, 0)
    return {(merge, area): renumber(labels, area) for (merge, area), labels in out.items()}


def _absorb(labels: np.ndarray, fragments: np.ndarray, distance: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``labels`` with the ``fragments`` pixels given to the objects they touch, by a watershed of ``-distance``
    from those objects; fragments that touch none are unlabelled. Each connected group of fragment pixels is
    flooded in its own box (the flood reaches it only from the objects around it): the same result as one
    watershed of the whole image, at the cost of the fragments' size rather than the image's."""
    from scipy import ndimage
    from skimage.segmentation import watershed

    out = np.where(fragments, 0, labels)
    groups, _ = ndimage.label(fragments, structure=_EIGHT)
    height, width = labels.shape
    for index, box in enumerate(ndimage.find_objects(groups), start=1):
        window = (slice(max(box[0].start - 1, 0), min(box[0].stop + 1, height)),
                  slice(max(box[1].start - 1, 0), min(box[1].stop + 1, width)))
        group = groups[window] == index
        markers = np.where(group | (groups[window] > 0), 0, out[window])  # other groups' pixels are no markers
        flooded = watershed(-distance[window], markers, mask=mask[window] & (group | (markers > 0)), connectivity=2)
        out[window][group] = flooded[group]
    return out
