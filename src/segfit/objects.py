"""Objects in a mask: label them (connected components, or a watershed split of touching ones) and
measure them (area, equivalent diameter, shape) with scikit-image's region properties.

The building blocks of ``segfit quantify`` (:mod:`segfit.quantification`) and of instance scores
(:mod:`segfit.instances`).
"""

from __future__ import annotations

import numpy as np

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


def renumber(labels: np.ndarray, min_area: int = 0) -> np.ndarray:
    """Drop objects smaller than ``min_area`` pixels; number the rest 1..N in raster order (int32)."""
    ids, first, inverse, areas = np.unique(np.asarray(labels).ravel(), return_index=True, return_inverse=True,
                                           return_counts=True)
    kept = np.flatnonzero((ids > 0) & (areas >= max(min_area, 1)))
    new = np.zeros(len(ids), np.int32)
    new[kept[np.argsort(first[kept])]] = np.arange(1, len(kept) + 1, dtype=np.int32)
    return new[inverse].reshape(np.shape(labels))


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
