"""The record of a plan (:class:`Plan`, saved as ``plan.json``): each option's value, where it came from
(``plan`` or ``user``) and why. The rules that fill it are :mod:`segfit.planner`'s."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

# The options the plan chooses (a plain `segfit train DATA` gets these from it; see `segfit train --help`).
PLANNED = ("channels", "scale", "crop", "mask_mode", "classes", "class_values", "class_names", "class_colors", "ignore_value", "mean", "std", "val", "preload", "model", "encoder",
           "encoder_depth", "decoder_channels", "batch_size", "lr", "optimizer", "weight_decay", "scheduler", "loss",
           "class_weights", "head_prior", "augment", "precision", "workers", "repeats", "epochs", "instances", "instance_radius", "min_object_area",
           "object_diameter", "tta")


@dataclass
class Plan:
    """Planned options: ``entries[option] = {"value", "source", "reason"}``, plus the budget and the
    calibration the epochs were derived from. Saved as ``plan.json``."""

    entries: dict = field(default_factory=dict)
    budget_s: float | None = None
    device: str = "cpu"
    calibration: dict = field(default_factory=dict)
    notes: list = field(default_factory=list)

    def set(self, option: str, value, reason: str) -> None:
        """Plan ``option`` unless the user gave it (what the user gave always wins)."""
        if self.entries.get(option, {}).get("source") != "user":
            self.entries[option] = {"value": value, "source": "plan", "reason": reason}

    def given(self, user: dict) -> None:
        for key, value in user.items():  # every option given, planned or not (--size instead of scale and crops)
            if (key, value) != ("precision", "auto"):  # --precision auto: the plan's choice
                self.entries[key] = {"value": value, "source": "user", "reason": "given by the user"}

    def values(self) -> dict:
        return {k: e["value"] for k, e in self.entries.items()}

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> Plan:
        return cls(**{k: d[k] for k in ("entries", "budget_s", "device", "calibration", "notes") if k in d})

    def lines(self) -> list[str]:
        width = max([len(k) for k in self.entries] + [8])
        out = [f"{'option':<{width}}  {'value':<24} {'from':<5} reason"]
        for k, e in self.entries.items():
            value = e["value"] if not isinstance(e["value"], float) else f"{e['value']:.4g}"
            out.append(f"{k:<{width}}  {str(value):<24} {e['source']:<5} {e['reason']}")
        return out + [f"note: {n}" for n in self.notes]
