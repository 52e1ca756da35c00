"""Networks: the seed notebook's encoder-decoder and segmentation_models_pytorch architectures.

``create_model(cfg)`` returns a :class:`SegmentationNet`, which pads inputs to the multiple of 2
the network needs (reflect padding) and crops the logits back, so any image size works.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn
import torch.nn.functional as F

from segfit.config import ModelConfig
from segfit.errors import SegfitError


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
    """Wraps a network: pads the input to a multiple of ``multiple`` and crops the logits back."""

    def __init__(self, net: nn.Module, multiple: int):
        super().__init__()
        self.net, self.multiple = net, multiple

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        ph, pw = (-h) % self.multiple, (-w) % self.multiple
        if ph or pw:
            mode = "reflect" if ph < h and pw < w else "replicate"
            x = F.pad(x, (0, pw, 0, ph), mode=mode)
            return self.net(x)[..., :h, :w]
        return self.net(x)


def _notebook(cfg: ModelConfig) -> tuple[nn.Module, int]:
    return NotebookNet(cfg.in_channels, cfg.out_channels), 4


def _smp(arch: str):
    def build(cfg: ModelConfig) -> tuple[nn.Module, int]:
        import segmentation_models_pytorch as smp

        if cfg.encoder not in smp.encoders.encoders and not cfg.encoder.startswith("tu-"):
            raise SegfitError(f"unknown encoder {cfg.encoder!r}",
                              fix=f"use one of {', '.join(sorted(smp.encoders.encoders))}")
        kwargs = {"encoder_depth": cfg.encoder_depth}
        if arch in ("unet", "unetplusplus"):
            channels = cfg.decoder_channels or [256, 128, 64, 32, 16, 8, 8][: cfg.encoder_depth]
            if len(channels) != cfg.encoder_depth:
                raise SegfitError(f"--decoder-channels has {len(channels)} values for --encoder-depth {cfg.encoder_depth}",
                                  fix="give one value per encoder stage")
            kwargs["decoder_channels"] = tuple(channels)
        try:
            # Pretrained encoders are built for RGB, loaded, then adapted to the input channels.
            net = smp.create_model(arch, encoder_name=cfg.encoder, encoder_weights=None,
                                   in_channels=3 if cfg.encoder_weights else cfg.in_channels,
                                   classes=cfg.out_channels, **kwargs)
        except (ValueError, KeyError, TypeError) as exc:
            raise SegfitError(f"cannot build {arch} with encoder {cfg.encoder}: {exc}", fix="check --encoder and --encoder-depth") from None
        if cfg.encoder_weights:
            load_encoder_weights(net.encoder, cfg.encoder_weights, cfg.encoder)
            if cfg.in_channels != 3:
                net.encoder.set_in_channels(cfg.in_channels, pretrained=True)
        return net, 2 ** cfg.encoder_depth
    return build


MODELS = {
    "notebook": _notebook,
    "unet": _smp("unet"),
    "unetplusplus": _smp("unetplusplus"),
    "fpn": _smp("fpn"),
    "pspnet": _smp("pspnet"),
    "deeplabv3plus": _smp("deeplabv3plus"),
    "linknet": _smp("linknet"),
    "manet": _smp("manet"),
}


def create_model(cfg: ModelConfig) -> SegmentationNet:
    """Build the network a :class:`ModelConfig` describes (random initialisation unless
    ``encoder_weights`` names a local file)."""
    if cfg.name not in MODELS:
        raise SegfitError(f"unknown model {cfg.name!r}", fix=f"use one of {', '.join(MODELS)}")
    net, multiple = MODELS[cfg.name](cfg)
    return SegmentationNet(net, multiple)


def load_encoder_weights(encoder: nn.Module, weights: str, encoder_name: str) -> None:
    """Load a local state dict (``.pth``/``.pt`` via ``torch.load(weights_only=True)``, or
    ``.safetensors``) into an smp encoder; ``imagenet`` is looked up in the local torch hub cache."""
    path = Path(weights)
    if weights == "imagenet":
        path = _cached_imagenet(encoder_name)
    if not path.is_file():
        raise SegfitError("encoder weights file not found", path, "give a local state-dict file with --encoder-weights")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise SegfitError(f"cannot read encoder weights ({type(exc).__name__})", path,
                          "give a state dict saved with torch.save(model.state_dict()) or safetensors") from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise SegfitError("encoder weights file holds no state dict", path, "save it with torch.save(encoder.state_dict())")
    state = {_strip_prefixes(k): v for k, v in state.items()}
    state = {k: v for k, v in state.items() if not k.startswith("fc.")}  # classifier heads of ImageNet models
    own = encoder.state_dict()
    shape_bad = [k for k, v in state.items() if k in own and tuple(v.shape) != tuple(own[k].shape)]
    missing = [k for k in own if k not in state]
    extra = [k for k in state if k not in own]
    if shape_bad or missing or extra:
        if shape_bad:
            detail = f"{len(shape_bad)} tensors of the wrong shape (e.g. {shape_bad[0]})"
        elif len(missing) == len(own):
            detail = "no matching tensor names"
        elif missing:
            detail = f"{len(missing)} tensors missing (e.g. {missing[0]})"
        else:
            detail = f"{len(extra)} tensors it does not have (e.g. {extra[0]})"
        raise SegfitError(f"encoder weights do not fit {encoder_name}: {detail}", path,
                          f"give weights saved from a {encoder_name} encoder with the same input channels")
    encoder.load_state_dict(state, strict=False)


def _strip_prefixes(key: str) -> str:
    """``module.encoder.layer1...`` (DDP-wrapped full model) -> ``layer1...``."""
    changed = True
    while changed:
        changed = False
        for prefix in ("module.", "encoder.", "model."):
            if key.startswith(prefix):
                key, changed = key[len(prefix):], True
    return key


def _cached_imagenet(encoder_name: str) -> Path:
    """The ImageNet weights smp would download, if they are already in the local Hugging Face cache."""
    import segmentation_models_pytorch as smp
    from huggingface_hub import hf_hub_download

    settings = smp.encoders.encoders.get(encoder_name, {}).get("pretrained_settings", {}).get("imagenet")
    if settings is None:
        raise SegfitError(f"smp has no imagenet weights for encoder {encoder_name}",
                          fix="give a local state-dict file with --encoder-weights FILE")
    try:
        return Path(hf_hub_download(settings["repo_id"], filename="model.safetensors",
                                    revision=settings["revision"], local_files_only=True))
    except Exception:
        raise SegfitError(f"imagenet weights for {encoder_name} are not in the local cache, and segfit works offline",
                          settings["repo_id"], "download them once where there is internet, or give a file with --encoder-weights FILE") from None


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def summary(model: nn.Module, input_shape: tuple[int, int, int]) -> str:
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
