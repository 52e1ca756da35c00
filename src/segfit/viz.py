"""Pictures of a run: learning curves, per-class metric panels, overlays and prediction grids."""

from __future__ import annotations

import math
import os

import numpy as np

from segfit.io import save_figure

FP_COLOR = (230, 40, 40)  # error overlays: predicted, not true
FN_COLOR = (40, 120, 255)  # true, not predicted


def _plt():
    import matplotlib

    if not os.environ.get("MPLBACKEND"):  # Jupyter sets it (inline): forcing Agg there hides the user's own figures
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def to_rgb8(image: np.ndarray) -> np.ndarray:
    """Any ``H x W (x C)`` image as displayable uint8 RGB (16-bit and float images are stretched)."""
    img = np.asarray(image)
    if img.ndim == 3 and img.shape[-1] == 1:
        img = img[..., 0]
    if img.dtype != np.uint8:
        img = img.astype(np.float32)
        lo, hi = float(img.min()), float(img.max())
        img = ((img - lo) / (hi - lo if hi > lo else 1.0) * 255).round().astype(np.uint8)
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=-1)
    return img[..., :3]


CONTOUR = (255, 255, 0)  # object outlines on overlays


def overlay(image: np.ndarray, mask: np.ndarray, colors: list[list[int]], alpha: float = 0.5,
            objects: np.ndarray | None = None) -> np.ndarray:
    """Blend class colours over an image where the mask is not background (class 0); with ``objects``
    (a label image) draw each object's outline in :data:`CONTOUR`."""
    out = to_rgb8(image)
    if np.shares_memory(out, np.asarray(image)) or not out.flags.writeable:
        out = out.copy()  # never draw into the caller's image
    palette = np.asarray(colors, dtype=np.float32)
    for rows in _row_blocks(*out.shape[:2]):  # float copies of a block of rows only: large images stay cheap
        fg = (mask[rows] > 0) & (mask[rows] < len(palette))  # unlabelled pixels (IGNORE_ID) stay as they are
        block = out[rows]
        blend = (1 - alpha) * block[fg].astype(np.float32) + alpha * palette[mask[rows][fg]]
        block[fg] = blend.round().clip(0, 255).astype(np.uint8)
    if objects is not None:
        from skimage.segmentation import find_boundaries

        for rows in _row_blocks(*out.shape[:2]):  # one row of margin, so outlines at block edges are found
            lo, hi = max(rows.start - 1, 0), min(rows.stop + 1, out.shape[0])
            edges = find_boundaries(objects[lo:hi], mode="inner")[rows.start - lo: rows.stop - lo]
            out[rows][edges] = CONTOUR
    return out


def _row_blocks(height: int, width: int, pixels_per_block: int = 1 << 20) -> list[slice]:
    """Slices of whole rows, about ``pixels_per_block`` pixels each."""
    step = max(1, pixels_per_block // max(width, 1))
    return [slice(r, min(r + step, height)) for r in range(0, height, step)]


def plot_curves(history, path: str | os.PathLike, best_epoch: int | None = None) -> None:
    """Training vs validation loss per epoch, with the best epoch marked."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    ax.plot(history["epoch"], history["train_loss"], "o-", ms=3, label="training loss")
    ax.plot(history["epoch"], history["val_loss"], "o-", ms=3, label="validation loss")
    if best_epoch is not None:
        best = history[history["epoch"] == best_epoch]
        ax.axvline(best_epoch, color="grey", ls="--", lw=1)
        ax.plot(best["epoch"], best["val_loss"], "*", ms=14, color="crimson", label=f"best epoch {best_epoch}")
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(plt.MaxNLocator(integer=True))
    ax.set_ylabel("loss")
    ax.legend()
    ax.grid(alpha=0.3)
    save_figure(path, fig)


def plot_class_metrics(history, class_names: list[str], path: str | os.PathLike, colors=None) -> None:
    """Four panels (IoU, accuracy, precision, recall), one line per class in its colour (``colors``; a colour too
    light to see on white, and any class without one, takes a tab10 colour), training dashed vs validation."""
    plt = _plt()
    fig, axes = plt.subplots(2, 2, figsize=(11, 7), dpi=100, sharex=True)
    tab = plt.get_cmap("tab10")

    def cmap(i):
        if colors and i < len(colors) and np.dot(colors[i], (0.299, 0.587, 0.114)) < 200:
            return np.asarray(colors[i], float) / 255
        return tab(i % 10)

    for ax, metric in zip(axes.ravel(), ("iou", "accuracy", "precision", "recall")):
        for i, name in enumerate(class_names):
            for stage, style in (("train", "--"), ("val", "-")):
                col = f"{stage}_{metric}_{name}"
                if col in history:
                    ax.plot(history["epoch"], history[col], style, color=cmap(i % 10), label=f"{name} ({stage})")
        ax.set_title(metric)
        ax.set_ylim(-0.02, 1.02)
        ax.grid(alpha=0.3)
    for ax in axes[1]:
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(plt.MaxNLocator(integer=True))  # epochs are whole
    axes[0, 0].legend(fontsize=7, ncol=2)
    save_figure(path, fig)


def plot_grid(images: list[np.ndarray], masks: list[np.ndarray], titles: list[str], colors, path,
              alpha: float = 0.25) -> None:
    """Up to 9 images in a 3x3 grid with their predicted masks overlaid (the notebook's figure)."""
    plt = _plt()
    n = len(images)
    cols = min(3, n)
    rows = max(1, math.ceil(n / 3))
    fig, axes = plt.subplots(rows, cols, figsize=(3.3 * cols, 3.3 * rows), dpi=100, squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, img, m, title in zip(axes.ravel(), images, masks, titles):
        ax.imshow(overlay(*_shrunk(img, m, 2 * 330), colors, alpha))  # twice the panel's pixels: drawn fast
        ax.set_title(title, fontsize=8)
    fig.subplots_adjust(left=0.01, right=0.99, bottom=0.01, top=1 - 0.25 / (3.3 * rows), wspace=0.04,
                        hspace=0.3 / 3.3)  # room for one line of title (tight_layout measures it: 1 s)
    save_figure(path, fig)


def _shrunk(image: np.ndarray, mask: np.ndarray, side: int) -> tuple[np.ndarray, np.ndarray]:
    """An image (as RGB) and its mask, shrunk so that the longer side is at most ``side`` pixels."""
    from segfit.data.preprocess import resize_image, resize_mask

    factor = side / max(mask.shape[:2])
    if factor >= 1:
        return image, mask
    size = (max(1, round(mask.shape[0] * factor)), max(1, round(mask.shape[1] * factor)))
    return resize_image(to_rgb8(image), size), resize_mask(mask, size)


def plot_pair(image: np.ndarray, mask: np.ndarray, title: str, class_names: list[str], colors, path) -> None:
    """Image and its class mask side by side, each class in its colour (unlabelled pixels grey), with a legend
    of the classes present."""
    from matplotlib.patches import Patch

    plt = _plt()
    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 4.5), dpi=100)
    a.imshow(to_rgb8(image))
    a.set_title(title, fontsize=9)
    lut = np.full((256, 3), 128, np.uint8)
    lut[: len(colors)] = np.asarray(colors, np.uint8)
    b.imshow(lut[mask], interpolation="nearest")
    present = [int(v) for v in np.unique(mask) if v < len(class_names)]
    b.set_title(f"mask: {len(present)} of {len(class_names)} classes", fontsize=9)
    b.legend(handles=[Patch(color=np.asarray(colors[i]) / 255, label=class_names[i]) for i in present],
             loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8, frameon=False)
    for ax in (a, b):
        ax.axis("off")
    save_figure(path, fig)


def error_strip(image: np.ndarray, truth: np.ndarray, pred: np.ndarray, colors, height: int = 150, gap: int = 4) -> np.ndarray:
    """Image · truth · prediction · errors side by side, ``height`` pixels high (the report's gallery):
    errors are :data:`FP_COLOR` (predicted but not true) and :data:`FN_COLOR` (true but missed) over
    the dimmed image."""
    from segfit.data.preprocess import resize_image, resize_mask

    width = max(1, round(truth.shape[1] * height / truth.shape[0]))
    image = resize_image(to_rgb8(image), (height, width))
    truth, pred = resize_mask(truth, (height, width)), resize_mask(pred, (height, width))
    errors = image.astype(np.float32) * 0.6
    wrong = (pred != truth) & (truth < len(colors))  # unlabelled true pixels are no error
    errors[wrong & (pred > 0)] = FP_COLOR
    errors[wrong & (pred == 0)] = FN_COLOR
    tiles = [image, overlay(image, truth, colors, 0.45), overlay(image, pred, colors, 0.45), errors.astype(np.uint8)]
    sep = np.full((height, gap, 3), 255, np.uint8)
    return np.concatenate([part for tile in tiles for part in (tile, sep)][:-1], axis=1)


def plot_size_distribution(objects, classes: list[str], path: str | os.PathLike, scale: float | None = None,
                           unit: str = "px") -> None:
    """Histogram of equivalent diameters, one panel per class, in ``unit`` (pixels times ``scale``)."""
    plt = _plt()
    cols = min(3, max(1, len(classes)))
    rows = max(1, math.ceil(len(classes) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(4.5 * cols, 3.5 * rows), dpi=100, squeeze=False)
    for ax in axes.ravel()[len(classes):]:
        ax.axis("off")
    for i, (ax, name) in enumerate(zip(axes.ravel(), classes)):
        d = objects.loc[objects["class"] == name, "equivalent_diameter"].to_numpy(float) * (scale or 1.0)
        if len(d):
            ax.hist(d, bins=min(30, max(5, int(np.sqrt(len(d))))), color=plt.get_cmap("tab10")(i % 10))
            ax.axvline(np.median(d), color="black", ls="--", lw=1, label=f"median {np.median(d):.3g} {unit}")
            ax.legend(fontsize=8)
        else:
            ax.text(0.5, 0.5, "no objects", ha="center", va="center", transform=ax.transAxes, fontsize=12)
        ax.set_title(f"{name}: {len(d)} objects")
        ax.set_xlabel(f"equivalent diameter ({unit})")
        ax.set_ylabel("objects")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    save_figure(path, fig)



def plot_size_comparison(diameters: dict[str, dict[str, list[float]]], path: str | os.PathLike,
                         scale: float | None = None, unit: str = "px") -> None:
    """True vs predicted equivalent-diameter histograms, one panel per class (``{class: {true, pred}}``
    in pixels; shown in ``unit`` with ``scale``)."""
    plt = _plt()
    names = list(diameters) or ["objects"]
    cols = min(3, len(names))
    rows = math.ceil(len(names) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.8 * cols, 3.6 * rows), dpi=100, squeeze=False)
    for ax in axes.ravel()[len(names):]:
        ax.axis("off")
    s, u = (scale, unit) if scale else (1.0, "px")
    for ax, name in zip(axes.ravel(), names):
        true = np.asarray(diameters.get(name, {}).get("true", []), float) * s
        pred = np.asarray(diameters.get(name, {}).get("pred", []), float) * s
        both = np.concatenate([true, pred])
        if len(both):
            bins = np.histogram_bin_edges(both, bins=min(40, max(5, int(np.sqrt(len(both))))))
            ax.hist(true, bins=bins, color="0.6", label=f"true ({len(true)}, mean {true.mean() if len(true) else 0:.3g})")
            ax.hist(pred, bins=bins, histtype="step", lw=2, color="crimson",
                    label=f"predicted ({len(pred)}, mean {pred.mean() if len(pred) else 0:.3g})")
            ax.legend(fontsize=8)
        else:
            ax.text(0.5, 0.5, "no objects", ha="center", va="center", transform=ax.transAxes, fontsize=12)
        ax.set_title(name)
        ax.set_xlabel(f"equivalent diameter ({u})")
        ax.set_ylabel("objects")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    save_figure(path, fig)
