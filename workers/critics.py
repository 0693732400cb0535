"""Critics T(x, y): modules that map a batch of n pairs to an n x n score matrix.

``forward(x, y)[i, j] = T(x_i, y_j)``; the bounds in workers.bounds read it.
Architectures follow paper 002: App. B.1 for vectors (two hidden layers of 256,
ReLU; separable embeddings of 32) and App. B.2 for images (conv 64 k5 s2 p2,
conv 128 k5 s2 p2, fc 1024, linear; ReLU; variables stacked over channels).

A joint critic scores all n^2 pairs. Its first layer is linear in the concatenation
[x; y], so W [x; y] = W_x x + W_y y: we apply it to the n x's and n y's separately
and broadcast-add, which is the same function at a fraction of the cost. A separable
critic computes g(x)^T h(y): 2n encoder passes for n^2 scores.

Blocks (``CriticSpec.block = b``): the critic scores only the pairs within blocks of b
consecutive samples and returns ``(m, b, b)`` with m = n/b (``(K, m, b, b)`` stacked):
``out[k, i, j] = T(x_{kb+i}, y_{kb+j})``, the diagonal blocks of the full matrix. A joint
CNN then runs its trunk on n*b pairs instead of n^2 (b = 16 at n = 64: a quarter). The
bounds read it through ``workers.bounds.critic_bound`` (what this changes in each
estimator is written there). Separable critics support blocks too (the same encoders,
fewer dot products), so both architectures can be compared as one estimator.

Every critic carries ``log_baseline``, the learned constant of TUBA / I_alpha; the
other bounds leave it untouched.

The MLP critics stack natively (workers.stacked): their layers hold K independent
weight sets, take inputs with a leading K dimension and return (K, n, n) scores. A
critic built here has K = 1; workers.stacked.Stack concatenates K of them.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn
from torch.nn import functional as F  # noqa: N812

from micheck.contract import CriticSpec


def blocks_of(n: int, block: int | None) -> tuple[int, int]:
    """(m, b): a batch of n as m blocks of b (one block of n when block is None)."""
    if block is None:
        return 1, n
    if n % block:
        raise ValueError(f"critic block {block} does not divide the batch of {n}")
    return n // block, block


class _Critic(nn.Module):
    def __init__(self, block: int | None = None) -> None:
        super().__init__()
        self.block = block
        self.log_baseline = nn.Parameter(torch.zeros(()))


def mlp(inp: int, hidden: int, out: int, layers: int = 2,
        linear: Callable[[int, int], nn.Module] = nn.Linear) -> nn.Sequential:
    """App. B.1's MLP: `layers` hidden layers of `hidden` units with ReLU, then linear."""
    mods: list[nn.Module] = []
    width = inp
    for _ in range(layers):
        mods += [linear(width, hidden), nn.ReLU()]
        width = hidden
    mods.append(linear(width, out))
    return nn.Sequential(*mods)


class StackedLinear(nn.Module):
    """K independent affine maps: weight (K, in, out), bias (K, 1, out). Input
    (K, ..., in) -> (K, ..., out). Built with K = 1, initialised like nn.Linear
    (U(+-1/sqrt(in))); workers.stacked.Stack concatenates K of them."""

    def __init__(self, inp: int, out: int) -> None:
        super().__init__()
        bound = inp ** -0.5
        self.weight = nn.Parameter(torch.empty(1, inp, out).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(1, 1, out).uniform_(-bound, bound))

    def forward(self, x: Tensor) -> Tensor:
        flat = x.reshape(x.shape[0], -1, x.shape[-1])
        return torch.baddbmm(self.bias, flat, self.weight).view(*x.shape[:-1], -1)


def stacked_mlp(inp: int, hidden: int, out: int) -> nn.Sequential:
    return mlp(inp, hidden, out, linear=StackedLinear)


class _StackedCritic(nn.Module):
    stacks_natively = True

    def __init__(self, block: int | None = None) -> None:
        super().__init__()
        self.block = block
        self.log_baseline = nn.Parameter(torch.zeros(1))

    def _split(self, t: Tensor) -> Tensor:
        """(K, n, f) -> (K, m, b, f) when blocked (module docstring)."""
        if self.block is None:
            return t
        m, b = blocks_of(t.shape[1], self.block)
        return t.view(t.shape[0], m, b, *t.shape[2:])


class SeparableMLPCritic(_StackedCritic):
    def __init__(self, dx: int, dy: int, hidden: int = 256, embed_dim: int = 32,
                 block: int | None = None) -> None:
        super().__init__(block)
        self.g = stacked_mlp(dx, hidden, embed_dim)
        self.h = stacked_mlp(dy, hidden, embed_dim)

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        return self._split(self.g(x)) @ self._split(self.h(y)).transpose(-1, -2)


class JointMLPCritic(_StackedCritic):
    def __init__(self, dx: int, dy: int, hidden: int = 256, block: int | None = None) -> None:
        super().__init__(block)
        self.dx = dx
        self.first = StackedLinear(dx + dy, hidden)
        self.rest = nn.Sequential(nn.ReLU(), StackedLinear(hidden, hidden), nn.ReLU(),
                                  StackedLinear(hidden, 1))

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        w = self.first.weight
        hx = self._split(torch.baddbmm(self.first.bias, x, w[:, : self.dx]))  # (K, [m,] n, h)
        hy = self._split(torch.bmm(y, w[:, self.dx:]))
        pairs = hx.unsqueeze(-2) + hy.unsqueeze(-3)  # (K, [m,] b, b, hidden): pair (i, j)
        return self.rest(pairs).squeeze(-1)


def _conv_out(size: int) -> int:
    # two stride-2, kernel-5, padding-2 convolutions
    for _ in range(2):
        size = (size + 2 * 2 - 5) // 2 + 1
    return size


class ConvEncoder(nn.Module):
    """App. B.2's conv stack, ending in a linear layer of `out` units."""

    def __init__(self, channels: int, height: int, width: int, out: int,
                 scale: float = 1.0) -> None:
        super().__init__()
        c1, c2, fc = (max(1, round(w * scale)) for w in (64, 128, 1024))
        self.conv1 = nn.Conv2d(channels, c1, 5, stride=2, padding=2)
        self.conv2 = nn.Conv2d(c1, c2, 5, stride=2, padding=2)
        self.fc = nn.Linear(c2 * _conv_out(height) * _conv_out(width), fc)
        self.out = nn.Linear(fc, out)

    def trunk(self, first: Tensor) -> Tensor:
        """Everything after conv1's linear part, from its pre-activation."""
        h = F.relu(self.conv2(F.relu(first)))
        return self.out(F.relu(self.fc(h.flatten(-3))))

    def forward(self, x: Tensor) -> Tensor:
        return self.trunk(self.conv1(x))


class SeparableCNNCritic(_Critic):
    def __init__(self, cx: int, cy: int, height: int, width: int, embed_dim: int = 32,
                 scale: float = 1.0, block: int | None = None) -> None:
        super().__init__(block)
        self.g = ConvEncoder(cx, height, width, embed_dim, scale)
        self.h = ConvEncoder(cy, height, width, embed_dim, scale)

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        gx, hy = self.g(x), self.h(y)
        if self.block is None:
            return gx @ hy.T
        m, b = blocks_of(x.shape[0], self.block)
        return gx.view(m, b, -1) @ hy.view(m, b, -1).transpose(-1, -2)


class JointCNNCritic(_Critic):
    """T(x, y) = CNN([x, y] stacked over channels), evaluated on all n^2 pairs, or on the
    b^2 pairs of each block of b (n*b pairs) when ``block`` is set."""

    def __init__(self, cx: int, cy: int, height: int, width: int, scale: float = 1.0,
                 block: int | None = None) -> None:
        super().__init__(block)
        self.cx = cx
        self.net = ConvEncoder(cx + cy, height, width, 1, scale)

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        conv1 = self.net.conv1
        fx = F.conv2d(x, conv1.weight[:, : self.cx], conv1.bias, stride=2, padding=2)
        fy = F.conv2d(y, conv1.weight[:, self.cx:], None, stride=2, padding=2)
        if self.block is None:
            n = x.shape[0]
            pairs = (fx.unsqueeze(1) + fy.unsqueeze(0)).flatten(0, 1)  # (n*n, 64, h, w)
            return self.net.trunk(pairs).view(n, n)
        m, b = blocks_of(x.shape[0], self.block)
        fx, fy = fx.view(m, b, *fx.shape[1:]), fy.view(m, b, *fy.shape[1:])
        pairs = (fx.unsqueeze(2) + fy.unsqueeze(1)).flatten(0, 2)  # (m*b*b, 64, h, w)
        return self.net.trunk(pairs).view(m, b, b)


def build_critic(spec: CriticSpec, x_shape: tuple[int, ...], y_shape: tuple[int, ...]) -> nn.Module:
    """A critic for single samples of shape x_shape / y_shape ((C, H, W) or (d,)); its
    scores are read by ``workers.bounds.critic_bound`` of the same spec."""
    if len(x_shape) == 3:
        (cx, h, w), cy = x_shape, y_shape[0]
        if spec.kind == "joint":
            return JointCNNCritic(cx, cy, h, w, spec.width, spec.block)
        return SeparableCNNCritic(cx, cy, h, w, spec.embed_dim, spec.width, spec.block)
    if spec.kind == "joint":
        return JointMLPCritic(x_shape[0], y_shape[0], spec.hidden, spec.block)
    return SeparableMLPCritic(x_shape[0], y_shape[0], spec.hidden, spec.embed_dim,
                              spec.block)
