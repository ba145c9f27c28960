"""Average pooling that computes ``nn.AvgPool2d``'s bits faster on a CPU.

PyTorch's CPU kernel for a contiguous (NCHW) float input sums each window in a scalar loop,
row by row, starting from zero, then divides by the window's size. For the pooling our
networks use (kernel = stride, no padding) the same sums can be formed from ``k·k`` strided
views of the input, one vectorised elementwise pass each, in the kernel's order::

    out = ((((0 + x[0, 0]) + x[0, 1]) + ...) + x[k-1, k-1]) / k²

``0 + a`` equals ``a`` except that it turns ``-0.0`` into ``+0.0``; a window whose partial sums
are all ``-0.0`` is the only case where starting from ``x[0, 0]`` instead differs, and adding
``+0.0`` to the sum restores it. So the outputs are bit for bit those of ``F.avg_pool2d``,
and so are the gradients, spread back the same way (``tests/test_pooling.py`` checks
adversarial orders, signed zeros and odd sizes).

How much faster, per shape and thread count: ``benchmarks/pool_bench.py`` (docs/benchmarks.md).
Any other case (padding, ``ceil_mode``, a divisor override, another dtype or layout, a GPU)
runs ``F.avg_pool2d`` itself.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.autograd.function import once_differentiable

__all__ = ["AvgPool2d", "avg_pool2d"]


def _window(value) -> int | None:
    """The side of a square window given as ``k`` or ``(k, k)``, else ``None``."""
    if isinstance(value, int):
        return value
    if isinstance(value, (tuple, list)) and len(value) == 2 and value[0] == value[1]:
        return int(value[0])
    return None


def _sum_windows(x: Tensor, k: int) -> Tensor:
    """``((0 + x[0,0]) + x[0,1] + ...) / k²`` over the non-overlapping ``k x k`` windows of
    ``x`` ``[N, C, H, W]`` (a trailing row or column that fills no window is dropped)."""
    h, w = x.shape[-2] // k * k, x.shape[-1] // k * k
    parts = [x[..., i:h:k, j:w:k] for i in range(k) for j in range(k)]  # row-major, as the kernel
    out = parts[0] + parts[1]
    for part in parts[2:]:
        out.add_(part)
    return out.add_(0.0).div_(k * k)  # + 0.0: the kernel's sum starts from +0


def _spread_windows(grad: Tensor, shape: torch.Size, k: int) -> Tensor:
    """The gradient of :func:`_sum_windows`: each input of a window gets ``0 + grad / k²`` (the
    kernel's backward adds ``grad / k²`` to a zeroed input gradient); rows and columns that
    fill no window get zero."""
    h, w = shape[-2] // k * k, shape[-1] // k * k
    covered = (h, w) == tuple(shape[-2:])
    dx = grad.new_empty(shape) if covered else grad.new_zeros(shape)
    share = grad.div(k * k).add_(0.0)  # + 0.0: 0 + (-0.0) is +0.0 in the kernel
    for i in range(k):
        for j in range(k):
            dx[..., i:h:k, j:w:k] = share
    return dx


class _AvgPool(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, k: int) -> Tensor:
        ctx.k, ctx.shape = k, x.shape
        return _sum_windows(x, k)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: Tensor):
        return _spread_windows(grad, ctx.shape, ctx.k), None


def avg_pool2d(x: Tensor, kernel_size, stride=None) -> Tensor:
    """``F.avg_pool2d(x, kernel_size, stride)`` (no padding), bit for bit, faster on a CPU
    for a contiguous float32 / float64 ``[N, C, H, W]`` input with stride = kernel."""
    stride = kernel_size if stride is None else stride
    k = _window(kernel_size)
    fast = (
        k is not None
        and k >= 2
        and _window(stride) == k
        and x.device.type == "cpu"
        and x.dim() == 4
        and x.dtype in (torch.float32, torch.float64)
        and x.is_contiguous()
        and x.shape[-2] >= k
        and x.shape[-1] >= k
    )
    if not fast:
        return F.avg_pool2d(x, kernel_size, stride)
    if torch.is_grad_enabled() and x.requires_grad:
        return _AvgPool.apply(x, k)
    return _sum_windows(x, k)


class AvgPool2d(nn.AvgPool2d):
    """``nn.AvgPool2d`` computed by :func:`avg_pool2d` where that is exact and faster (same
    arguments, same state dict: none); otherwise ``nn.AvgPool2d`` itself."""

    def forward(self, x: Tensor) -> Tensor:
        if self.padding or self.ceil_mode or self.divisor_override is not None:
            return super().forward(x)
        return avg_pool2d(x, self.kernel_size, self.stride)
