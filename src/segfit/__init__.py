"""segfit: from a folder of labelled images to a trained, evaluated segmentation model.

The Python API is the command line: each ``segfit COMMAND`` is a function with the same parameter
names as the command's options::

    import segfit
    run = segfit.train("data/emps", "runs/emps", size=128, channels=1, epochs=50, batch_size=32, val=100)
    metrics = segfit.evaluate(run.run_dir)
    segfit.predict(run.run_dir, ["new_images/"], "predictions")
    objects = segfit.quantify(["predictions"], "objects", split_touching=True)

Heavy libraries (torch, Lightning, smp) load on first use, so ``import segfit`` is instant.
"""

from __future__ import annotations

import warnings as _warnings

__version__ = "0.1.0"

# In Jupyter without ipywidgets, tqdm.auto (which smp and albumentations import through huggingface_hub) warns
# "IProgress not found" into the first cell that builds a network; segfit shows no notebook progress bars.
_warnings.filterwarnings("ignore", message=".*IProgress not found.*")

_LAZY = {
    # the commands
    "train": ("segfit.runs", "train"),
    "evaluate": ("segfit.evaluation", "evaluate"),
    "predict": ("segfit.predictor", "predict"),
    "quantify": ("segfit.quantification", "quantify"),
    "check": ("segfit.data.check", "check"),
    "plan": ("segfit.planning", "plan"),
    "export": ("segfit.exporter", "export"),
    "report": ("segfit.runs", "report"),
    "convert_masks": ("segfit.data.palette", "convert_masks"),
    "show": ("segfit.data.show", "show"),
    "summary": ("segfit.models", "summary"),
    # building blocks
    "Predictor": ("segfit.predictor", "Predictor"),
    "TrainResult": ("segfit.runs", "TrainResult"),
    "build_config": ("segfit.options", "build_config"),
    "create_model": ("segfit.models", "create_model"),
    "RunConfig": ("segfit.config", "RunConfig"),
    "DataConfig": ("segfit.config", "DataConfig"),
    "ModelConfig": ("segfit.config", "ModelConfig"),
    "TrainConfig": ("segfit.config", "TrainConfig"),
    "SegfitError": ("segfit.errors", "SegfitError"),
}

__all__ = sorted(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        value = getattr(importlib.import_module(module), attr)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'segfit' has no attribute {name!r}")
