"""Checkpoints that describe themselves and load without executing code.

A checkpoint is Lightning's dictionary (weights, optimiser and loop state, callbacks) holding only
tensors and plain data, plus ``"segfit": {"config": ..., "history": ...}``. It is written to a
temporary file and renamed (:class:`segfit.callbacks.AtomicCheckpointIO`), and read with ``torch.load(weights_only=True)``, which refuses any
pickled object other than tensors and plain containers, so a tampered file cannot run code.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any

import torch

from segfit.errors import SegfitError


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu", mmap: bool = False) -> dict[str, Any]:
    """Read a segfit checkpoint safely; raise a clear error for anything else. With ``mmap`` the tensors stay in
    the file until used (prediction takes the weights and leaves the optimiser state unread)."""
    path = Path(path)
    if not path.is_file():
        raise SegfitError("checkpoint not found", path, "give a .ckpt file or a run folder")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as exc:
        if "unsupported global" not in str(exc).lower():  # no forbidden object: a damaged or foreign file
            raise SegfitError("cannot read checkpoint (not a PyTorch checkpoint file)", path,
                              "the file is damaged or not a checkpoint: use another one (e.g. last.ckpt)") from None
        raise SegfitError(f"checkpoint holds objects other than tensors and plain data, refused for safety ({_first_line(exc)})",
                          path, "only load checkpoints written by segfit") from None
    except Exception as exc:
        raise SegfitError(f"cannot read checkpoint ({type(exc).__name__})", path,
                          "the file is damaged or not a checkpoint: use another one (e.g. last.ckpt)") from None
    if not isinstance(ckpt, dict) or "segfit" not in ckpt or "state_dict" not in ckpt:
        raise SegfitError("not a segfit checkpoint (no segfit config inside)", path, "give a checkpoint written by segfit train")
    return ckpt


def _first_line(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:160] if text else type(exc).__name__
