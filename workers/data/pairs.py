"""Image pairs whose mutual information is known: two images of one class, or of two
classes related by a symmetric noisy channel.

Following Lee & Rhee (NeurIPS 2024): draw a class C, then X and Y as two *different*
images of class C, independently given C. If the class is recoverable from an image,
C is a function of X and of Y, so I(X; Y) = I(C; C) = H(C); with k equiprobable classes
that is log k. With m independent such pairs side by side (stacked over channels, the
``[., .]`` of paper 002) the MI adds: I = m H(C).

Assumptions, stated because they make the value an upper bound rather than exact:
label noise or ambiguous images (a digit that could be a 4 or a 9) make C not quite a
function of the image, and then I(X; Y) < H(C). Drawing Y != X (without replacement
within the class) leaves a dependence of order 1/N_c beyond the class, negligible with
thousands of images per class.

Noisy-class pairs (``noisy_class``, the adjustable construction of Lee & Rhee): Y's class
is X's with probability 1 - eps, else each of the other K - 1 chosen classes alike, and Y is
an image of that class drawn independently of X given the classes (a different image when
the class is the same, as above). By the same argument I(X; Y) = I(C_X; C_Y), which
``micheck.datasets.class_channel`` gives exactly: ln K - H_b(eps) - eps ln(K - 1) for
uniform classes, the joint table's value for the pool's own class frequencies (used here).
m copies: m times that, so MNIST or CIFAR-10 (ln 10 per copy) reach 2-10 nats and more.

H(C) is computed from the class frequencies of the pool actually sampled (the chosen
classes' images of the split, drawn uniformly, so class c has probability N_c / N), not
assumed uniform. The engine's ground truth uses the test split, where the held-out
estimate is measured.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from micheck.datasets.class_channel import channel_mi
from micheck.errors import SpecError

Sampler = Callable[[torch.Generator, int], tuple[Tensor, Tensor]]


def class_entropy(counts: Sequence[int]) -> float:
    """H(C) in nats for class counts (zero counts ignored). Torch-free."""
    total = sum(counts)
    if total <= 0:
        raise ValueError("no samples")
    return -sum(c / total * math.log(c / total) for c in counts if c > 0)


def same_class_mi(counts: Sequence[int], copies: int = 1) -> float:
    """The known I(X; Y) of `copies` same-class pairs drawn from a pool with these class
    counts: m H(C) nats (module docstring for the assumptions). Torch-free."""
    if copies < 1:
        raise ValueError("copies must be >= 1")
    return copies * class_entropy(counts)


class ClassPool:
    """The images of the chosen classes, grouped by class (positions in `order`)."""

    def __init__(self, labels: Tensor, classes: Sequence[int]) -> None:
        chosen = list(classes)
        self.classes = chosen
        groups = [torch.nonzero(labels == c).flatten() for c in chosen]
        small = [c for c, g in zip(chosen, groups, strict=True) if len(g) < 2]
        if small:
            raise SpecError(f"class(es) {small} have fewer than 2 images in this split; "
                            "same-class pairs need two different images")
        self.order = torch.cat(groups)  # pool position -> image index
        self.counts = torch.tensor([len(g) for g in groups])
        self.start = torch.cumsum(self.counts, 0) - self.counts
        self.class_of = torch.repeat_interleave(torch.arange(len(chosen)), self.counts)

    @property
    def size(self) -> int:
        return int(self.order.numel())

    def mi(self, copies: int = 1, eps: float = 0.0) -> float:
        """The known MI of `copies` pairs drawn from this pool: m H(C) for same-class pairs,
        m I(C_X; C_Y) of the pool's class frequencies through the channel of flip
        probability eps (micheck.datasets.class_channel.channel_mi) for noisy-class pairs."""
        if eps == 0.0:
            return same_class_mi(self.counts.tolist(), copies)
        return copies * channel_mi(self.counts.tolist(), eps)

    def draw(self, g: torch.Generator, n: int) -> tuple[Tensor, Tensor]:
        """n pairs of image indices (x, y): x uniform over the pool, y uniform over the
        other images of x's class."""
        p = torch.randint(self.size, (n,), generator=g)
        c = self.class_of[p]
        within = p - self.start[c]
        j = (torch.rand(n, generator=g, dtype=torch.float64) * (self.counts[c] - 1)).long()
        j = j + (j >= within).long()  # skip x itself
        return self.order[p], self.order[self.start[c] + j]


    def draw_noisy(self, g: torch.Generator, n: int, eps: float) -> tuple[Tensor, Tensor]:
        """n pairs of image indices (x, y): x uniform over the pool; y's class is x's with
        probability 1 - eps, else one of the other classes uniformly; y uniform over that
        class's images (other than x when the class is x's)."""
        k = len(self.classes)
        p = torch.randint(self.size, (n,), generator=g)
        cx = self.class_of[p]
        flip = torch.rand(n, generator=g, dtype=torch.float64) < eps
        shift = torch.randint(1, k, (n,), generator=g)  # 1 .. K-1: another class
        cy = torch.where(flip, (cx + shift) % k, cx)
        same = (~flip).long()
        u = torch.rand(n, generator=g, dtype=torch.float64)
        j = (u * (self.counts[cy] - same)).long()
        j = j + same * (j >= p - self.start[cx]).long()  # skip x itself in its own class
        return self.order[p], self.order[self.start[cy] + j]


def _stacked(images: Tensor, copies: int,
             draw: Callable[[torch.Generator, int], tuple[Tensor, Tensor]]) -> Sampler:
    def sample(g: torch.Generator, n: int) -> tuple[Tensor, Tensor]:
        xs, ys = [], []
        for _ in range(copies):
            ix, iy = draw(g, n)
            xs.append(images[ix])
            ys.append(images[iy])
        return torch.cat(xs, 1), torch.cat(ys, 1)

    return sample


def same_class_sampler(images: Tensor, labels: Tensor, classes: Sequence[int],
                       copies: int = 1) -> tuple[Sampler, float]:
    """A pair sampler over one split and its known MI in nats.

    images: (N, C, H, W); labels: (N,). The sampler returns x, y of shape
    (n, copies * C, H, W): copy k occupies channels k*C .. (k+1)*C - 1 of both.
    """
    pool = ClassPool(labels, classes)
    return _stacked(images, copies, pool.draw), pool.mi(copies)


def noisy_class_sampler(images: Tensor, labels: Tensor, classes: Sequence[int], eps: float,
                        copies: int = 1) -> tuple[Sampler, float]:
    """A noisy-class pair sampler over one split and its known MI in nats (module
    docstring): m I(C_X; C_Y) with the split's class frequencies of the chosen classes.
    Shapes as :func:`same_class_sampler`."""
    pool = ClassPool(labels, classes)
    if len(pool.classes) < 2:
        raise SpecError("noisy-class pairs need at least 2 classes")
    mi = pool.mi(copies, eps)  # checks 0 <= eps <= (K-1)/K
    return _stacked(images, copies, lambda g, n: pool.draw_noisy(g, n, eps)), mi
