"""Losses by name and inverse-frequency class weights."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from segfit.errors import SegfitError
from segfit.losses import create_loss, inverse_frequency_weights


def test_inverse_frequency_weights_by_hand():
    counts = [6, 2]
    total, k = 8, 2
    assert inverse_frequency_weights(np.array(counts)) == pytest.approx([total / (k * 6), total / (k * 2)])
    assert inverse_frequency_weights(counts) == [0.666667, 2.0]


def test_inverse_frequency_weights_absent_class_is_zero():
    w = inverse_frequency_weights(np.array([900, 100, 0]))
    assert w == [round(1000 / (3 * 900), 6), round(1000 / (3 * 100), 6), 0.0]
    assert w[1] == 3.333333


def test_inverse_frequency_weights_balanced():
    assert inverse_frequency_weights([5, 5, 5, 5]) == [1.0, 1.0, 1.0, 1.0]


def _target(num_classes: int, b: int = 2, h: int = 8, w: int = 8) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    t = torch.randint(0, num_classes, (b, h, w), generator=g)
    t[0, 0, 0], t[0, 0, 1] = 0, num_classes - 1  # every class present at least once
    return t


def _logits(target: torch.Tensor, num_classes: int, correct: bool) -> torch.Tensor:
    if num_classes == 2:
        sign = (target.float() * 2 - 1) * (1 if correct else -1)
        return (sign * 8).unsqueeze(1)
    cls = target if correct else (target + 1) % num_classes
    return nn.functional.one_hot(cls, num_classes).permute(0, 3, 1, 2).float() * 16 - 8


@pytest.mark.parametrize("num_classes", [2, 3])
@pytest.mark.parametrize("name", ["auto", "bce", "ce", "dice", "focal", "ce+dice", "bce+dice"])
def test_losses_finite_and_prefer_the_truth(name, num_classes):
    loss = create_loss(name, num_classes)
    target = _target(num_classes)
    good = loss(_logits(target, num_classes, True), target)
    bad = loss(_logits(target, num_classes, False), target)
    assert good.ndim == 0 and bad.ndim == 0
    assert torch.isfinite(good) and torch.isfinite(bad)
    assert float(good) < float(bad)
    assert float(good) < 0.05
    random = loss(torch.randn(2, 1 if num_classes == 2 else num_classes, 8, 8, requires_grad=True), target)
    random.backward()
    assert torch.isfinite(random)


def test_auto_and_aliases_pick_the_right_parts():
    assert [type(p) for p in create_loss("auto", 2).parts] == [nn.BCEWithLogitsLoss]
    assert [type(p) for p in create_loss("auto", 4).parts] == [nn.CrossEntropyLoss]
    assert [type(p) for p in create_loss("ce", 2).parts] == [nn.BCEWithLogitsLoss]
    assert [type(p) for p in create_loss("bce", 3).parts] == [nn.CrossEntropyLoss]
    assert create_loss("bce+dice", 3).kinds == ["ce", "dice"]
    assert create_loss("bce+dice", 2).kinds == ["ce", "dice"]


def test_binary_bce_equals_torch():
    target = _target(2)
    logits = torch.randn(2, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    expected = nn.functional.binary_cross_entropy_with_logits(logits, target.unsqueeze(1).float())
    torch.testing.assert_close(create_loss("bce", 2)(logits, target), expected)


def test_class_weights_applied():
    target = _target(2)
    logits = torch.randn(2, 1, 8, 8, generator=torch.Generator().manual_seed(2))
    # Binary: the positive weight relative to background, as pos_weight.
    expected = nn.functional.binary_cross_entropy_with_logits(logits, target.unsqueeze(1).float(),
                                                              pos_weight=torch.tensor([4.0]))
    torch.testing.assert_close(create_loss("bce", 2, [0.5, 2.0])(logits, target), expected)
    t3 = _target(3)
    l3 = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(3))
    w = [0.2, 1.0, 3.0]
    torch.testing.assert_close(create_loss("ce", 3, w)(l3, t3),
                               nn.functional.cross_entropy(l3, t3, weight=torch.tensor(w)))


def test_wrong_number_of_class_weights():
    with pytest.raises(SegfitError, match="3 class weights for 2 classes"):
        create_loss("ce", 2, [1.0, 1.0, 1.0])


@pytest.mark.parametrize("name", ["mse", "ce+mse", "lovasz"])
def test_unknown_loss(name):
    with pytest.raises(SegfitError) as e:
        create_loss(name, 2)
    assert repr(name) in e.value.what
    assert "ce+dice" in e.value.fix and "focal" in e.value.fix
