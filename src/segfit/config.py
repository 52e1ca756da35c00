"""Typed configuration: one source of truth, written into every run folder and checkpoint.

Three dataclasses describe a run: where the data is and how it is read (:class:`DataConfig`),
which network is built (:class:`ModelConfig`) and how it is trained (:class:`TrainConfig`).
:class:`RunConfig` bundles them; ``RunConfig.to_dict()`` is what ``config.json`` holds and
``RunConfig.from_dict()`` rebuilds it from a checkpoint, so nothing but plain data is stored.
These dataclasses hold the only defaults; :mod:`segfit.options` turns flat options into a resolved
config (derived values, validation).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

INFERENCE_PRECISIONS = ("auto", "32", "bf16")  # auto: bf16 for a model trained in bf16 on a device that has it


# Overlay colours for classes without a colour of their own (RGB, 0-255).
DEFAULT_COLORS = [
    (0, 0, 0), (255, 64, 64), (64, 200, 64), (64, 128, 255), (255, 200, 0),
    (200, 64, 255), (0, 220, 220), (255, 128, 0), (128, 128, 128), (255, 255, 255),
]
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass
class DataConfig:
    """Where the images and masks are and how they are read."""

    root: str = ""
    images: str | None = None  # folder of images (relative to root); auto-detected when None
    masks: str | None = None  # folder of masks; auto-detected when None
    mask_suffix: str = "_bin"  # flat layout: NAME.jpg + NAME<suffix>.png
    channels: int = 3  # 1 = grayscale, 3 = RGB
    size: int | None = None  # resize to size x size (nearest for masks); None keeps the original size
    scale: float | None = None  # or resize by this factor, keeping the aspect ratio (the plan's working scale)
    crop: int | None = None  # random training crops of crop x crop (augment pipelines); None: whole image
    mask_mode: str = "auto"  # binary: value > 0 is foreground; index: values are class ids
    num_classes: int = 2
    class_names: list[str] = field(default_factory=list)
    class_values: list[int | str] | None = None  # class i is stored as the value class_values[i] (0/128/255, or "#rrggbb")
    class_colors: list[list[int]] = field(default_factory=list)
    ignore_value: int | str | None = None  # the mask value of unlabelled pixels (Pascal VOC's 255): in no loss or metric
    test: float = 0.2  # held-out fraction when the data set has no test.csv
    val: float = 0.2  # fraction (< 1) or count (>= 1) of the remaining images
    seed: int = 0
    preload: bool = False  # keep decoded images in memory
    mean: list[float] | None = None  # per-channel normalisation after scaling to [0, 1]
    std: list[float] | None = None
    instances: bool = False  # also read each object's normalised distance map (the instance target)
    instance_radius: float | None = None  # original pixels: deeper parts of an object form a plateau in that map
    object_diameter: float | None = None  # the training objects' median diameter (original pixels): an image whose
    # objects come out much smaller is predicted again at a larger scale, bringing them to the size the network learned


@dataclass
class ModelConfig:
    """Which network: ``notebook`` (the seed notebook's encoder-decoder) or an smp architecture."""

    name: str = "notebook"  # notebook | unet | unetplusplus | fpn | deeplabv3plus | ... (smp)
    encoder: str = "resnet34"  # smp encoder name (ignored by notebook)
    encoder_weights: str | None = None  # local state-dict file, or "imagenet" from the local cache
    encoder_depth: int = 5
    decoder_channels: list[int] | None = None
    in_channels: int = 3
    num_classes: int = 2
    instances: bool = False  # one more output: each object's normalised distance map (segfit.objects)
    min_object_area: int = 0  # learned instances: smaller predicted objects (pixels, original resolution) are fragments
    tta: bool = False  # predictions average the label-preserving flips and rotations (--tta / --no-tta override it)

    @property
    def class_channels(self) -> int:
        """One logit for two classes (sigmoid), one per class otherwise (softmax)."""
        return 1 if self.num_classes == 2 else self.num_classes

    @property
    def out_channels(self) -> int:
        """The class logits, then the distance logit when the network learns instances."""
        return self.class_channels + int(self.instances)


@dataclass
class TrainConfig:
    """How the network is trained."""

    epochs: int = 20
    batch_size: int = 16
    lr: float = 1e-3
    optimizer: str = "adam"  # adam | adamw | sgd
    weight_decay: float = 0.0
    scheduler: str = "none"  # none | onecycle | cosine
    loss: str = "auto"  # auto (bce for 2 classes, ce otherwise) | bce | ce | dice | focal | ce+dice
    class_weights: list[float] | str | None = None  # "auto": inverse pixel frequency, resolved at the start
    head_prior: list[float] | str | None = None  # "auto": the class logits start at the classes' pixel fractions
    augment: str = "none"  # none | light | vineyard
    num_workers: int = 0
    save_every: int = 0  # keep epoch_N.ckpt every N epochs (0: never)
    accelerator: str = "auto"
    devices: str = "auto"
    num_nodes: int = 1
    strategy: str = "auto"
    precision: str = "32"
    deterministic: bool = False
    seed: int = 0
    logger: str = "csv"  # csv | tensorboard | none: Lightning's logger, writing under RUN/logs/version_N/
    report: bool = True  # after training: evaluate the validation split and write report.html
    max_time: float | None = None  # seconds: training stops there (the time budget's hard limit)
    most_epochs: int | None = None  # --epochs given with --time: the budget may shorten them, never add to them
    repeats: int = 1  # each epoch goes over the training images this many times (new order, crops, augmentations)
    epoch_batches: int = 0  # training batches an epoch takes (0: all; fewer under a budget shorter than one epoch)
    budget_epoch_s: float = 0.0  # under a time budget: an epoch's seconds, as calibrated
    budget_report_s: float = 0.0  # under a time budget: the seconds kept back for the report, as calibrated


@dataclass
class RunConfig:
    """Everything a run needs; saved as ``config.json`` and inside every checkpoint."""

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    user: list[str] = field(default_factory=list)  # the options the user gave (the rest are defaults)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RunConfig:
        return cls(data=_build(DataConfig, d.get("data", {})),
                   model=_build(ModelConfig, d.get("model", {})),
                   train=_build(TrainConfig, d.get("train", {})),
                   user=list(d.get("user", [])))


def _build(klass, values: dict[str, Any]):
    """Build a dataclass from a dict, ignoring keys a newer/older version may have added."""
    names = {f.name for f in dataclasses.fields(klass)}
    return klass(**{k: v for k, v in values.items() if k in names})
