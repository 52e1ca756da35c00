"""Networks by name: the seed notebook's encoder-decoder and segmentation_models_pytorch architectures.

``create_model(cfg)`` returns a :class:`~segfit.nets.SegmentationNet`, which pads inputs to the
network's total stride and crops the logits back, so any image size works. :data:`MODELS` is the
table of names; torch and smp load only when a network is built.
"""

from __future__ import annotations

from pathlib import Path

from segfit.config import ModelConfig
from segfit.errors import SegfitError


def _notebook(cfg: ModelConfig):
    from segfit.nets import NotebookNet

    return NotebookNet(cfg.in_channels, cfg.out_channels), stride(cfg)


def _smp(arch: str):
    def build(cfg: ModelConfig):
        import segmentation_models_pytorch as smp

        check_encoder(cfg.encoder)
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
        _drop_unused_stages(net.encoder, cfg.encoder_depth)
        return net, stride(cfg)
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


def stride(cfg: ModelConfig) -> int:
    """The network's total stride, without building it: inputs are padded to a multiple of it."""
    return 4 if cfg.name == "notebook" else 2 ** cfg.encoder_depth


def check_name(name: str) -> str:
    """``name`` when :data:`MODELS` has it; else an error listing the names."""
    if name not in MODELS:
        raise SegfitError(f"unknown model {name!r}{_did_you_mean(name, MODELS)}", fix=f"use one of {', '.join(MODELS)}")
    return name


def check_encoder(name: str) -> str:
    """``name`` when smp has such an encoder (or timm's, ``tu-...``); else an error with the nearest names."""
    import segmentation_models_pytorch as smp

    if name not in smp.encoders.encoders and not name.startswith("tu-"):
        raise SegfitError(f"unknown encoder {name!r}{_did_you_mean(name, smp.encoders.encoders)}",
                          fix=f"use one of {', '.join(sorted(smp.encoders.encoders))}")
    return name


def _did_you_mean(name: str, names) -> str:
    import difflib

    close = difflib.get_close_matches(str(name), list(names), n=3, cutoff=0.6)
    return f" (did you mean {' or '.join(close)}?)" if close else ""


def create_model(cfg: ModelConfig):
    """Build the :class:`~segfit.nets.SegmentationNet` a :class:`ModelConfig` describes (random
    initialisation unless ``encoder_weights`` names a local file)."""
    from segfit.nets import SegmentationNet

    net, multiple = MODELS[check_name(cfg.name)](cfg)
    return SegmentationNet(net, multiple)


def load_encoder_weights(encoder, weights: str, encoder_name: str) -> None:
    """Load a local state dict (``.pth``/``.pt`` via ``torch.load(weights_only=True)``, or
    ``.safetensors``) into an smp encoder; ``imagenet`` is looked up in the local torch hub cache."""
    import torch

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


def _drop_unused_stages(encoder, depth: int) -> None:
    """A ResNet-style encoder cut at ``depth`` keeps its deeper stages, whose weights no loss reaches
    (DDP refuses them, checkpoints carry them): replace them by nothing."""
    import torch

    for k in range(max(depth, 1), 5):  # layer{k} runs only at depth >= k + 1
        if isinstance(getattr(encoder, f"layer{k}", None), torch.nn.Sequential):
            setattr(encoder, f"layer{k}", torch.nn.Identity())


def unused_keys(state: dict, own: dict) -> list[str]:
    """Keys of encoder stages that a network of the same depth no longer has (checkpoints written
    before :func:`_drop_unused_stages`)."""
    return [k for k in state if k not in own and ".encoder.layer" in f".{k}"]


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




def summary(model: str = ModelConfig.name, encoder: str = ModelConfig.encoder, encoder_depth: int = ModelConfig.encoder_depth,
            size: int = 128, channels: int = ModelConfig.in_channels, classes: int = ModelConfig.num_classes,
            decoder_channels: list[int] | None = None, verbose: bool = True) -> str:
    """Layer table, output shapes and parameter count of a model (``segfit summary``), as Keras prints it.

    Returns the table; ``verbose`` prints it too.
    """
    from segfit.nets import layer_table

    if channels not in (1, 3):
        raise SegfitError(f"--channels must be 1 or 3, got {channels}", fix="use --channels 1 (grayscale) or 3 (RGB)")
    cfg = ModelConfig(name=model, encoder=encoder, encoder_depth=encoder_depth, in_channels=channels, num_classes=classes,
                      decoder_channels=decoder_channels)
    table = layer_table(create_model(cfg), (channels, size, size))
    if verbose:
        print(table)
    return table
