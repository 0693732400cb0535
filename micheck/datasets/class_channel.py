"""The MI of image pairs whose classes pass through a symmetric noisy channel (torch-free).

The construction (Lee & Rhee, NeurIPS 2024, the known-MI image benchmark): draw X's class
C_X, then Y's class C_Y from a symmetric channel over the K classes,

    W(c_y | c_x) = 1 - eps             if c_y = c_x,
                   eps / (K - 1)       otherwise (each of the other K - 1 classes),

then X and Y as images of their classes, drawn independently given the classes. When each
image determines its class, C_X is a function of X and C_Y of Y, and X -> C_X -> C_Y -> Y
is a Markov chain, so I(X; Y) = I(C_X; C_Y) (the same argument as the same-class pairs of
``micheck.workers.data.pairs``, which are the case eps = 0). m independent copies side by
side add: I = m I(C_X; C_Y).

With a uniform class prior the MI has a closed form. The channel is symmetric, so C_Y is
uniform too and H(C_Y) = ln K; given C_X = c, C_Y keeps c with probability 1 - eps and takes
each other class with probability eps / (K - 1), so

    H(C_Y | C_X) = -(1 - eps) ln(1 - eps) - (K - 1) (eps / (K - 1)) ln(eps / (K - 1))
                 = H_b(eps) + eps ln(K - 1),

    I(C_X; C_Y) = H(C_Y) - H(C_Y | C_X) = ln K - H_b(eps) - eps ln(K - 1)     (1)

with H_b the binary entropy in nats. (1) is ln K at eps = 0, decreases on [0, (K-1)/K] and
is 0 at eps = (K - 1)/K, where C_Y is uniform whatever C_X (each row of W is uniform).

Which is used where: the engine's truth is the exact I(C_X; C_Y) of the joint table
p(c_x) W(c_y | c_x) with p the class frequencies of the pool actually sampled (the test
split's, as for same-class pairs), :func:`channel_mi`; (1), :func:`symmetric_channel_mi`,
is that value for a uniform prior, and :func:`noisy_pairs_for` plans (m, eps) with it, so
a planned truth is exact for a balanced pool and within the class imbalance of it
otherwise (MNIST's test split: a few hundredths of a nat per copy).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass


def binary_entropy(p: float) -> float:
    """H_b(p) = -p ln p - (1 - p) ln(1 - p) in nats (0 ln 0 = 0)."""
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"p must lie in [0, 1], got {p}")
    return -sum(q * math.log(q) for q in (p, 1.0 - p) if q > 0.0)


def _check(classes: int, eps: float) -> None:
    if classes < 2:
        raise ValueError(f"the channel needs at least 2 classes, got {classes}")
    if not 0.0 <= eps <= (classes - 1) / classes:
        raise ValueError(f"eps must lie in [0, (K-1)/K] = [0, {(classes - 1) / classes:.4g}] "
                         f"for K = {classes}, got {eps}")


def symmetric_channel_mi(classes: int, eps: float) -> float:
    """Eq. (1) of the module docstring: I(C_X; C_Y) = ln K - H_b(eps) - eps ln(K - 1) nats
    for K equiprobable classes through the symmetric channel of flip probability eps."""
    _check(classes, eps)
    mi = math.log(classes) - binary_entropy(eps) - eps * math.log(classes - 1)
    return max(mi, 0.0)  # (1) is exactly 0 at eps = (K-1)/K; rounding may leave -1e-16


def channel_mi(counts: Sequence[int], eps: float) -> float:
    """The exact I(C_X; C_Y) in nats when C_X has the frequencies ``counts`` (p_c = N_c / N,
    zero counts allowed) and C_Y is C_X through the symmetric channel over all
    K = len(counts) classes: sum over the joint table p(x) W(y|x) ln(W(y|x) / q(y)), with
    q(y) = sum_x p(x) W(y|x). Equals (1) for equal counts and H(C) at eps = 0."""
    k = len(counts)
    _check(k, eps)
    total = sum(counts)
    if total <= 0 or min(counts) < 0:
        raise ValueError("counts must be non-negative with a positive sum")
    p = [c / total for c in counts]
    off = eps / (k - 1)
    q = [pi * (1.0 - eps) + (1.0 - pi) * off for pi in p]
    mi = 0.0
    for x, px in enumerate(p):
        if px == 0.0:
            continue
        for y, qy in enumerate(q):
            w = 1.0 - eps if x == y else off
            if w > 0.0:
                mi += px * w * math.log(w / qy)
    return max(mi, 0.0)


@dataclass(frozen=True)
class NoisyPairsPlan:
    """m copies at flip probability eps, and the exact MI (1) they carry: m I(eps)."""

    copies: int
    eps: float
    mi: float


def noisy_pairs_for(target: float, classes: int = 10, max_copies: int = 16) -> NoisyPairsPlan:
    """(m, eps) whose uniform-prior truth m (ln K - H_b(eps) - eps ln(K-1)) is ``target``
    nats: the fewest copies that can carry it (m = ceil(target / ln K)), then eps solving
    m I(eps) = target by bisection on [0, (K-1)/K], where I decreases. The returned ``mi``
    is (1) at the returned eps, exactly, not the target (they agree to ~1e-12).

    MNIST and CIFAR-10 (K = 10, ln 10 = 2.303 per copy): 2 nats is 1 copy, 10 nats 5 copies.
    """
    if not math.isfinite(target) or target <= 0.0:
        raise ValueError(f"target must be a positive number of nats, got {target}")
    per_copy = math.log(classes)
    copies = max(1, math.ceil(target / per_copy - 1e-12))
    if copies > max_copies:
        raise ValueError(f"{target} nats needs {copies} copies of ln {classes} = "
                         f"{per_copy:.4f}; at most {max_copies}")
    per = min(target / copies, per_copy)
    lo, hi = 0.0, (classes - 1) / classes  # I(lo) >= per >= I(hi) = 0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if symmetric_channel_mi(classes, mid) > per:
            lo = mid
        else:
            hi = mid
        if hi - lo < 1e-15:
            break
    eps = 0.0 if per >= per_copy else lo
    return NoisyPairsPlan(copies, eps, copies * symmetric_channel_mi(classes, eps))
