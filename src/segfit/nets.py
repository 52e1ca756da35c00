"""The torch building blocks: the seed notebook's network, the stride-padding wrapper every network is
run in, the sum of losses, and the step from logits to class ids.

Everything here needs torch; the factories that pick these by name (:mod:`segfit.models`,
:mod:`segfit.losses`) import this module only when they build something, so their name tables load
without torch (the command line's choices come from them).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn


def pad_to_multiple(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """Pad a ``B x C x H x W`` batch at the bottom and right to multiples of ``multiple`` (reflect,
    or replicate where the image is too small to reflect). Crop the output back with ``[..., :H, :W]``."""
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if not (ph or pw):
        return x
    return F.pad(x, (0, pw, 0, ph), mode="reflect" if ph < h and pw < w else "replicate")


def run_padded(forward: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, multiple: int) -> torch.Tensor:
    """``forward`` on ``x`` padded to ``multiple``, its output cropped back to ``x``'s size."""
    h, w = x.shape[-2:]
    padded = pad_to_multiple(x, multiple)
    out = forward(padded)
    return out if padded is x else out[..., :h, :w]


def logits_to_classes(logits: torch.Tensor) -> torch.Tensor:
    """Class ids from ``B x K x H x W`` logits: threshold 0.5 on the sigmoid for one channel, argmax otherwise."""
    if logits.shape[1] == 1:
        return (logits[:, 0] > 0).long()
    return logits.argmax(1)


def set_head_prior(net: nn.Module, fractions: list[float], class_weights: list[float] | None = None) -> None:
    """Start the class logits at the classes' pixel fractions: the bias of the network's last
    convolution (the class channels; a distance channel after them keeps its own) set so that the first
    prediction is the prior, as RetinaNet initialises its head. A rare class then is not predicted
    everywhere at the first steps, which a short training spends unlearning. Class weights in the loss
    move the loss's optimum: the prior is weighted by them (inverse-frequency weights give zero biases)."""
    p = torch.tensor(fractions, dtype=torch.float64)
    if class_weights is not None:
        p = p * torch.tensor(class_weights, dtype=torch.float64)
    if p.sum() <= 0:
        return
    p = (p / p.sum()).clamp(1e-4, 1 - 1e-4)
    bias = torch.log(p[1:] / p[0]) if len(p) == 2 else torch.log(p) - torch.log(p).mean()  # one logit: log-odds
    head = [m for m in net.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))][-1]
    if head.bias is None or head.out_channels < len(bias):
        return
    with torch.no_grad():
        head.bias[: len(bias)] = bias.to(head.bias.dtype)


class NotebookNet(nn.Sequential):
    """The seed notebook's encoder-decoder, layer for layer (Keras ``get_model``).

    Conv 64 s2, Conv 64, Conv 128 s2, Conv 128, ConvT 128, ConvT 128 s2, ConvT 64, ConvT 64 s2,
    all 3x3 with ReLU, then a 1x1 head, initialised as Keras does. The head returns logits; the notebook's sigmoid is applied
    by the loss (BCE with logits) and at prediction. 664,961 parameters for 1 input channel.
    """

    def __init__(self, in_channels: int = 1, out_channels: int = 1):
        def conv(cin, cout, stride=1):
            return [nn.Conv2d(cin, cout, 3, stride=stride, padding=1), nn.ReLU(inplace=True)]

        def up(cin, cout, stride=1):
            return [nn.ConvTranspose2d(cin, cout, 3, stride=stride, padding=1, output_padding=stride - 1),
                    nn.ReLU(inplace=True)]

        super().__init__(
            *conv(in_channels, 64, 2), *conv(64, 64), *conv(64, 128, 2), *conv(128, 128),
            *up(128, 128), *up(128, 128, 2), *up(128, 64), *up(64, 64, 2),
            nn.Conv2d(64, out_channels, 1),
        )
        # Keras' defaults, as the notebook had them: Glorot-uniform kernels, zero biases.
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)


class SegmentationNet(nn.Module):
    """Wraps a network: pads the input to a multiple of ``multiple`` (its total stride) and crops the
    logits back, so any image size works."""

    def __init__(self, net: nn.Module, multiple: int):
        super().__init__()
        self.net, self.multiple = net, multiple

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return run_padded(self.net, x, self.multiple)


class MaskedBCEWithLogits(nn.Module):
    """Binary cross-entropy over the labelled pixels only: targets equal to ``ignore`` count nowhere."""

    def __init__(self, ignore: int, pos_weight: torch.Tensor | None = None):
        super().__init__()
        self.ignore = ignore
        self.register_buffer("pos_weight", pos_weight)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        valid = target != self.ignore
        loss = F.binary_cross_entropy_with_logits(logits, target * valid, pos_weight=self.pos_weight, reduction="none")
        return (loss * valid).sum() / valid.sum().clamp(min=1)


class SumOfLosses(nn.Module):
    """Adapts ``(logits B x K x H x W, class ids B x H x W)`` to each loss of a sum: binary losses
    (one logit) get float targets with a channel axis, cross-entropy long ids, Dice the ids as they are."""

    def __init__(self, parts: list[tuple[str, nn.Module]], binary: bool):
        super().__init__()
        self.kinds = [kind for kind, _ in parts]
        self.parts = nn.ModuleList(fn for _, fn in parts)
        self.binary = binary

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        total = logits.new_zeros(())
        for kind, fn in zip(self.kinds, self.parts):
            if self.binary:
                total = total + fn(logits, target.unsqueeze(1).to(logits.dtype))
            elif kind == "dice":
                total = total + fn(logits, target)
            else:
                total = total + fn(logits, target.long())
        return total


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def layer_table(model: nn.Module, input_shape: tuple[int, int, int]) -> str:
    """A table like Keras' ``model.summary()``: each layer, its output shape and parameter count."""
    net = model.net if isinstance(model, SegmentationNet) else model
    rows: list[tuple[str, str, int]] = []
    hooks = []
    leaves = [(n, m) for n, m in net.named_modules() if not list(m.children())]
    for name, module in leaves:
        def hook(mod, _inp, out, name=name):
            shape = tuple(out.shape) if isinstance(out, torch.Tensor) else "?"
            own = sum(p.numel() for p in mod.parameters(recurse=False))
            rows.append((f"{name} ({type(mod).__name__})", str((None,) + tuple(shape[1:])) if shape != "?" else "?", own))
        hooks.append(module.register_forward_hook(hook))
    try:
        with torch.no_grad():
            net.eval()(torch.zeros((1,) + tuple(input_shape)))
    finally:
        for h in hooks:
            h.remove()
    width = max([len(r[0]) for r in rows] + [20]) + 2
    lines = [f"{'Layer (type)':<{width}}{'Output Shape':<24}{'Param #':>12}", "=" * (width + 36),
             f"{'input':<{width}}{str((None,) + tuple(input_shape)):<24}{0:>12,}"]
    lines += [f"{n:<{width}}{s:<24}{p:>12,}" for n, s, p in rows]
    total = count_parameters(net)
    trainable = sum(p.numel() for p in net.parameters() if p.requires_grad)
    lines += ["=" * (width + 36), f"Total params: {total:,}", f"Trainable params: {trainable:,}",
              f"Non-trainable params: {total - trainable:,}"]
    return "\n".join(lines)
