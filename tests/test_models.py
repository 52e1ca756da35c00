"""Networks: the notebook model, smp models, encoder weights and the summary table."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from segfit.config import ModelConfig
from segfit.errors import SegfitError
from segfit.models import create_model
from segfit.nets import NotebookNet, SegmentationNet, count_parameters, set_head_prior
from segfit.nets import layer_table as summary

NOTEBOOK_PARAMS_1CH = 664_961


def _small_unet(in_channels: int = 1, num_classes: int = 2) -> SegmentationNet:
    return create_model(ModelConfig(name="unet", encoder="resnet18", encoder_depth=3, decoder_channels=[32, 16, 8],
                                    in_channels=in_channels, num_classes=num_classes))


def test_notebook_parameter_count():
    assert count_parameters(NotebookNet(1, 1)) == NOTEBOOK_PARAMS_1CH
    # An RGB input adds 2 input channels to the first 3x3 conv of 64 filters.
    assert count_parameters(NotebookNet(3, 1)) == NOTEBOOK_PARAMS_1CH + 2 * 64 * 9 == 666_113
    # Three classes: the 1x1 head has 3 outputs instead of 1.
    assert count_parameters(NotebookNet(1, 3)) == NOTEBOOK_PARAMS_1CH + 2 * (64 + 1)
    model = create_model(ModelConfig(name="notebook", in_channels=1, num_classes=2))
    assert isinstance(model, SegmentationNet) and model.multiple == 4
    assert count_parameters(model) == NOTEBOOK_PARAMS_1CH


def test_notebook_layer_sequence():
    net = NotebookNet(1, 1)
    convs = [m for m in net if not isinstance(m, nn.ReLU)]
    assert [type(m) for m in convs] == [nn.Conv2d] * 4 + [nn.ConvTranspose2d] * 4 + [nn.Conv2d]
    assert [m.stride[0] for m in convs[:8]] == [2, 1, 2, 1, 1, 2, 1, 2]
    assert [m.out_channels for m in convs] == [64, 64, 128, 128, 128, 128, 64, 64, 1]
    assert all(m.kernel_size == (3, 3) for m in convs[:8])
    assert convs[8].kernel_size == (1, 1)
    # Every 3x3 layer is followed by a ReLU; the head gives logits.
    kinds = [type(m) for m in net]
    assert kinds[1::2][:8] == [nn.ReLU] * 8
    assert len(net) == 17 and isinstance(net[-1], nn.Conv2d)


@pytest.mark.parametrize("h,w", [(1, 1), (5, 3), (37, 50), (127, 130), (64, 64)])
def test_notebook_output_shape_any_size(h, w):
    model = create_model(ModelConfig(name="notebook", in_channels=3, num_classes=3)).eval()
    with torch.no_grad():
        out = model(torch.rand(2, 3, h, w))
    assert out.shape == (2, 3, h, w)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("h,w", [(1, 1), (2, 37), (37, 50), (127, 130)])
def test_small_unet_output_shape_any_size(h, w):
    model = _small_unet(in_channels=1).eval()
    assert model.multiple == 8
    with torch.no_grad():
        out = model(torch.rand(1, 1, h, w))
    assert out.shape == (1, 1, h, w)


def test_padding_does_not_change_aligned_input():
    torch.manual_seed(0)
    model = create_model(ModelConfig(name="notebook", in_channels=1)).eval()
    x = torch.rand(1, 1, 16, 20)
    with torch.no_grad():
        assert torch.equal(model(x), model.net(x))
        # Padding happens on the bottom/right only: a 15x19 crop's prediction is the net's
        # output on the reflect-padded input, cropped.
        small = x[..., :15, :19]
        padded = torch.nn.functional.pad(small, (0, 1, 0, 1), mode="reflect")
        torch.testing.assert_close(model(small), model.net(padded)[..., :15, :19])


def test_create_model_unknown_name():
    with pytest.raises(SegfitError) as e:
        create_model(ModelConfig(name="transformer9000"))
    assert "transformer9000" in e.value.what
    for name in ("notebook", "unet", "fpn", "deeplabv3plus"):
        assert name in e.value.fix


def test_create_model_unknown_encoder():
    with pytest.raises(SegfitError) as e:
        create_model(ModelConfig(name="unet", encoder="resnet19"))
    assert e.value.what.startswith("unknown encoder 'resnet19' (did you mean resnet18")
    assert "resnet18" in e.value.fix and "resnet34" in e.value.fix


def test_create_model_decoder_channels_mismatch():
    with pytest.raises(SegfitError, match="--decoder-channels has 2 values for --encoder-depth 3"):
        create_model(ModelConfig(name="unet", encoder="resnet18", encoder_depth=3, decoder_channels=[16, 8]))


def test_create_model_shallow_encoder_with_default_decoder():
    """``--encoder-depth 3`` alone (no --decoder-channels) should build a U-Net."""
    model = create_model(ModelConfig(name="unet", encoder="resnet18", encoder_depth=3, in_channels=1))
    assert model.multiple == 8


@pytest.mark.parametrize("depth", [3, 4, 5])
def test_every_weight_of_a_shallow_encoder_learns(depth):
    """A ResNet cut at ``depth`` keeps no stage that the loss never reaches (DDP refuses those)."""
    model = create_model(ModelConfig(name="unet", encoder="resnet18", encoder_depth=depth, in_channels=1,
                                     decoder_channels=[16] * depth))
    model(torch.rand(2, 1, 64, 64)).sum().backward()
    assert all(p.grad is not None for p in model.parameters())
    assert sum(p.numel() for p in model.parameters()) < {3: 1e6, 4: 3.5e6, 5: 12e6}[depth]  # no deeper stage kept


def test_the_head_prior_starts_the_prediction_at_the_class_fractions():
    """A rare foreground (1 % of pixels) starts near 1 % probability rather than 50 %; several classes
    start at their fractions; inverse-frequency class weights make the weighted prior uniform (zero biases);
    a distance channel after the class logits keeps its bias."""
    torch.manual_seed(0)
    x = torch.rand(2, 1, 64, 64)
    binary = _small_unet()
    before = torch.sigmoid(binary(x)).mean().item()
    set_head_prior(binary, [0.99, 0.01])
    after = torch.sigmoid(binary(x)).mean().item()
    assert 0.3 < before < 0.7 and after < 0.05
    assert binary.net.segmentation_head[0].bias.item() == pytest.approx(torch.logit(torch.tensor(0.01)).item(), abs=1e-5)

    three = _small_unet(num_classes=3)
    set_head_prior(three, [0.7, 0.2, 0.1])
    probs = torch.softmax(three.net.segmentation_head[0].bias.detach(), 0)
    assert probs.tolist() == pytest.approx([0.7, 0.2, 0.1], abs=1e-5)
    set_head_prior(three, [0.7, 0.2, 0.1], class_weights=[1 / 0.7, 1 / 0.2, 1 / 0.1])
    assert three.net.segmentation_head[0].bias.detach().abs().max().item() < 1e-5

    with_distance = create_model(ModelConfig(name="unet", encoder="resnet18", encoder_depth=3, decoder_channels=[32, 16, 8],
                                             in_channels=1, instances=True))
    distance_bias = with_distance.net.segmentation_head[0].bias[1].item()
    set_head_prior(with_distance, [0.8, 0.2])
    assert with_distance.net.segmentation_head[0].bias[1].item() == distance_bias
    assert with_distance.net.segmentation_head[0].bias[0].item() == pytest.approx(torch.logit(torch.tensor(0.2)).item(), abs=1e-5)


def test_checkpoints_of_shallow_encoders_with_unused_stages_still_load(tmp_path):
    """Checkpoints written while a cut ResNet still held its deeper stages predict as before."""
    from segfit.backends import TorchBackend
    from segfit.config import RunConfig

    cfg = RunConfig.from_dict({"model": {"name": "unet", "encoder": "resnet18", "encoder_depth": 3,
                                         "decoder_channels": [32, 16, 8], "in_channels": 1, "num_classes": 2}})
    net = create_model(cfg.model)
    old = {f"net.{k}": v for k, v in net.state_dict().items()}
    old["net.encoder.layer3.0.conv1.weight"] = torch.zeros(256, 128, 3, 3)  # what such a checkpoint also held
    torch.save({"state_dict": old, "segfit": {"config": cfg.to_dict()}}, tmp_path / "old.ckpt")
    backend = TorchBackend.from_checkpoint(tmp_path / "old.ckpt", "cpu")
    x = torch.rand(1, 1, 64, 64)
    with torch.no_grad():
        assert torch.equal(backend.net.eval()(x), net.eval()(x))


def test_summary_text():
    model = create_model(ModelConfig(name="notebook", in_channels=1))
    text = summary(model, (1, 128, 128))
    assert "Total params: 664,961" in text
    assert "Trainable params: 664,961" in text
    assert "Non-trainable params: 0" in text
    assert "(None, 1, 128, 128)" in text
    lines = text.splitlines()
    assert lines[0].startswith("Layer (type)")
    first = next(line for line in lines if line.startswith("0 (Conv2d)"))
    assert "(None, 64, 64, 64)" in first and first.rstrip().endswith("640")
    head = next(line for line in lines if line.startswith("16 (Conv2d)"))
    assert "(None, 1, 128, 128)" in head and head.rstrip().endswith("65")


# ---------------------------------------------------------------------------------------------
# Encoder weights


def _encoder(name: str, seed: int = 0):
    import segmentation_models_pytorch as smp

    torch.manual_seed(seed)
    return smp.encoders.get_encoder(name, in_channels=3, depth=5, weights=None)


@pytest.fixture(scope="module")
def resnet18_state():
    return {k: v.clone() for k, v in _encoder("resnet18", seed=123).state_dict().items()}


def _unet_with(path, in_channels: int = 3) -> SegmentationNet:
    return create_model(ModelConfig(name="unet", encoder="resnet18", encoder_weights=str(path), in_channels=in_channels))


def _assert_encoder_equal(model: SegmentationNet, state: dict) -> None:
    own = model.net.encoder.state_dict()
    assert set(own) == set(state)
    for k, v in state.items():
        assert torch.equal(own[k], v), k


def test_load_encoder_weights_torch_save(tmp_path, resnet18_state):
    path = tmp_path / "r18.pth"
    torch.save(resnet18_state, path)
    _assert_encoder_equal(_unet_with(path), resnet18_state)


def test_load_encoder_weights_safetensors(tmp_path, resnet18_state):
    from safetensors.torch import save_file

    path = tmp_path / "r18.safetensors"
    save_file({k: v.contiguous() for k, v in resnet18_state.items()}, str(path))
    _assert_encoder_equal(_unet_with(path), resnet18_state)


@pytest.mark.parametrize("prefix", ["encoder.", "module."])
def test_load_encoder_weights_prefixed_and_wrapped(tmp_path, resnet18_state, prefix):
    state = {f"{prefix}{k}": v for k, v in resnet18_state.items()}
    state["fc.weight"] = torch.zeros(1000, 512)  # an ImageNet classifier head is ignored
    state["fc.bias"] = torch.zeros(1000)
    path = tmp_path / "wrapped.pt"
    torch.save({"state_dict": state, "epoch": 3}, path)
    _assert_encoder_equal(_unet_with(path), resnet18_state)


def test_load_encoder_weights_one_input_channel(tmp_path, resnet18_state):
    path = tmp_path / "r18.pth"
    torch.save(resnet18_state, path)
    model = _unet_with(path, in_channels=1)
    conv1 = model.net.encoder.conv1.weight
    assert conv1.shape == (64, 1, 7, 7)
    torch.testing.assert_close(conv1.detach(), resnet18_state["conv1.weight"].sum(1, keepdim=True))
    assert torch.equal(model.net.encoder.layer4[1].conv2.weight, resnet18_state["layer4.1.conv2.weight"])
    with torch.no_grad():
        assert model.eval()(torch.rand(1, 1, 40, 40)).shape == (1, 1, 40, 40)


def test_load_encoder_weights_wrong_shapes(tmp_path):
    path = tmp_path / "r50.pth"
    torch.save(_encoder("resnet50").state_dict(), path)
    with pytest.raises(SegfitError) as e:
        _unet_with(path)
    assert "do not fit resnet18" in e.value.what
    assert "wrong shape" in e.value.what
    assert e.value.file == str(path)


def test_load_encoder_weights_deeper_resnet_rejected(tmp_path):
    """resnet34 weights share every resnet18 tensor name and shape but hold extra blocks; they
    come from another network and must not be silently loaded into a resnet18 encoder."""
    path = tmp_path / "r34.pth"
    torch.save(_encoder("resnet34").state_dict(), path)
    with pytest.raises(SegfitError, match="do not fit resnet18"):
        _unet_with(path)


def test_load_encoder_weights_unrelated_dict(tmp_path):
    path = tmp_path / "random.pth"
    torch.save({"foo": torch.zeros(3), "bar.weight": torch.ones(2, 2)}, path)
    with pytest.raises(SegfitError) as e:
        _unet_with(path)
    assert "no matching tensor names" in e.value.what


def test_load_encoder_weights_not_a_dict_or_unreadable(tmp_path):
    tensor = tmp_path / "tensor.pth"
    torch.save(torch.zeros(3), tensor)
    with pytest.raises(SegfitError, match="holds no state dict"):
        _unet_with(tensor)
    junk = tmp_path / "junk.pth"
    junk.write_text("not a checkpoint")
    with pytest.raises(SegfitError, match="cannot read encoder weights") as e:
        _unet_with(junk)
    assert e.value.file == str(junk)
    bad_st = tmp_path / "junk.safetensors"
    bad_st.write_bytes(b"\x00" * 20)
    with pytest.raises(SegfitError, match="cannot read encoder weights"):
        _unet_with(bad_st)


def test_load_encoder_weights_missing_file(tmp_path):
    with pytest.raises(SegfitError) as e:
        _unet_with(tmp_path / "nowhere.pth")
    assert e.value.what == "encoder weights file not found"
    assert e.value.file == str(tmp_path / "nowhere.pth")


def test_imagenet_weights_are_never_downloaded(tmp_path, monkeypatch):
    """`--encoder-weights imagenet` reads only the local cache, and says so when they are not there."""
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from segfit.config import ModelConfig
    from segfit.errors import SegfitError
    from segfit.models import create_model

    with pytest.raises(SegfitError) as info:
        create_model(ModelConfig(name="unet", encoder="resnet18", encoder_weights="imagenet", in_channels=3))
    assert "not in the local cache" in info.value.what and "--encoder-weights FILE" in info.value.fix
