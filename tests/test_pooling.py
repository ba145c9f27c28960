"""The strided-view average pool computes exactly what ``F.avg_pool2d`` computes, forward and
backward, so swapping it in leaves every record's numbers as they were."""

import itertools

import pytest
import torch
import torch.nn.functional as F

from snnlib.models import blocks
from snnlib.pooling import AvgPool2d, avg_pool2d

GENERATORS = {
    "normal": torch.randn,
    "spikes": lambda s: (torch.rand(s) < 0.3).float() * 0.731,
    "wide range": lambda s: torch.randn(s) * torch.logspace(-30, 30, s[-1]),
    "float64": lambda s: torch.randn(s, dtype=torch.float64),
}


@pytest.mark.parametrize("shape", [(5, 3, 28, 28), (4, 2, 17, 17), (3, 4, 7, 9), (2, 2, 3, 3)])
@pytest.mark.parametrize("k", [2, 3])
@pytest.mark.parametrize("kind", GENERATORS)
def test_the_pool_equals_the_kernel_forward_and_backward(shape, k, kind):
    torch.manual_seed(0)
    x = GENERATORS[kind](shape)
    assert torch.equal(avg_pool2d(x, k), F.avg_pool2d(x, k))
    ours, theirs = x.clone().requires_grad_(), x.clone().requires_grad_()
    grad = torch.randn_like(F.avg_pool2d(x, k))
    avg_pool2d(ours, k).backward(grad)
    F.avg_pool2d(theirs, k).backward(grad)
    assert torch.equal(ours.grad, theirs.grad)


def test_the_pool_sums_each_window_in_the_kernels_order():
    """``1e8 + 1 - 1e8 + 1`` depends on the order of the sum: every order of the window agrees."""
    for values in itertools.permutations([1e8, 1.0, -1e8, 1.0]):
        x = torch.tensor(values).view(1, 1, 2, 2)
        assert torch.equal(avg_pool2d(x, 2), F.avg_pool2d(x, 2)), values


def test_the_pool_keeps_the_sign_of_zero_as_the_kernel_does():
    for values in itertools.product([0.0, -0.0], repeat=4):
        x = torch.tensor(values).view(1, 1, 2, 2)
        ours, theirs = avg_pool2d(x, 2), F.avg_pool2d(x, 2)
        assert torch.equal(torch.signbit(ours), torch.signbit(theirs)), values


def test_the_gradient_keeps_the_sign_of_zero_as_the_kernel_does():
    grad = torch.tensor([[[[-0.0, 0.0], [1e-45, -1e-45]]]])  # the last two underflow when / 4
    ours, theirs = (
        torch.zeros(1, 1, 4, 5, requires_grad=True),
        torch.zeros(1, 1, 4, 5).requires_grad_(),
    )
    avg_pool2d(ours, 2).backward(grad)
    F.avg_pool2d(theirs, 2).backward(grad)
    assert torch.equal(torch.signbit(ours.grad), torch.signbit(theirs.grad))
    assert torch.equal(ours.grad, theirs.grad)


def test_other_pools_run_the_kernel_itself():
    x = torch.randn(2, 3, 9, 9)
    for pool in (AvgPool2d(3, stride=2), AvgPool2d(2, padding=1), AvgPool2d(3, ceil_mode=True)):
        reference = torch.nn.AvgPool2d(pool.kernel_size, pool.stride, pool.padding, pool.ceil_mode)
        assert torch.equal(pool(x), reference(x))
    channels_last = x.contiguous(memory_format=torch.channels_last)
    assert torch.equal(avg_pool2d(channels_last, 2), F.avg_pool2d(channels_last, 2))


def test_the_models_pool_is_an_avgpool_with_no_state():
    pool = blocks.avgpool(2).module
    assert isinstance(pool, torch.nn.AvgPool2d)
    assert pool.state_dict() == {}
