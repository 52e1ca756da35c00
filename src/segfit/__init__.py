"""segfit: from a folder of labelled images to a trained, evaluated segmentation model.

The Python API mirrors the command line::

    import segfit
    run = segfit.train("data/emps", "runs/emps", size=128, channels=1, epochs=50, batch_size=32, val=100)
    metrics = segfit.evaluate(run.run_dir)
    mask = segfit.Predictor.from_checkpoint(run.best_checkpoint).predict(image)

Heavy libraries (torch, Lightning, smp) load on first use, so ``import segfit`` is instant.
"""

from __future__ import annotations

__version__ = "0.1.0"

_LAZY = {
    "train": ("segfit.runs", "train"),
    "build_config": ("segfit.runs", "build_config"),
    "TrainResult": ("segfit.runs", "TrainResult"),
    "evaluate": ("segfit.evaluation", "evaluate"),
    "Predictor": ("segfit.predict", "Predictor"),
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
