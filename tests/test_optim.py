"""Optimisers by name: the fused kernel where torch has one, the same steps as the plain loop."""

from __future__ import annotations

import pytest
import torch

from segfit.optim import create_optimizer


@pytest.mark.parametrize("name", ["adam", "adamw", "sgd"])
def test_cpu_parameters_get_the_fused_kernel_and_the_same_steps(name):
    torch.manual_seed(0)
    # every weight gets a real gradient (a bias before a batch norm would get rounding noise, which Adam's
    # normalised step turns into a step of its own)
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.Tanh(), torch.nn.Conv2d(4, 1, 1))
    twin = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.Tanh(), torch.nn.Conv2d(4, 1, 1))
    twin.load_state_dict(net.state_dict())
    fused = create_optimizer(name, net.parameters(), 1e-2, weight_decay=1e-4)
    plain = getattr(torch.optim, type(fused).__name__)(twin.parameters(), lr=1e-2, weight_decay=1e-4)
    assert fused.defaults["fused"] is True
    x = torch.randn(2, 1, 8, 8)
    for _ in range(3):
        for model, opt in ((net, fused), (twin, plain)):
            opt.zero_grad()
            model(x).square().mean().backward()
            opt.step()
    for a, b in zip(net.parameters(), twin.parameters()):
        assert torch.allclose(a, b, atol=1e-5)


def test_parameters_without_a_fused_kernel_get_the_plain_loop():
    weights = torch.nn.Parameter(torch.zeros(3, dtype=torch.float64).to(torch.complex128))  # complex: no fused kernel
    opt = create_optimizer("adamw", [weights], 1e-3)
    assert not opt.defaults.get("fused")
