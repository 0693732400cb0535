"""The (X, Y) constructions of the self-consistency tests (paper 002 Sec. 4.2, 6.2, App. B.2).

`micheck.plan` (torch-free) lists the measurements a request needs; this module draws
their samples. With X an image and Y_t its top t rows (bottom rows zeroed, App. B.2):

  baseline          I(X; Y_t) / I(X; X)                                  ideal: 0 at t=0, rising to 1
  independence      I(X; Y'_t) / I(X; X), Y' from an independent image   ideal 0
  data_processing   I([X, X]; [Y_t, Y_{t-offset}]) / I(X; Y_t)           ideal 1
  additivity        I([X1, X2]; [Y1_t, Y2_t]) / I(X; Y_t), X1, X2 indep.  ideal 2
  ground_truth      estimate / true MI (Gaussian, Cubic; App. B.1 Eq. 55) ideal 1

With a Table 3 transform instead of row masking, Y = T(X) for a random scaling,
rotation or translation, and h(Y) = T'(Y) a second, independent draw.
Concatenation stacks over channels ([., .] in the paper).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from micheck.workers.data import sample_gaussian
from micheck.workers.data.transforms import (
    mask_rows,
    random_rotation,
    random_scaling,
    random_translation,
)
from torch import Tensor

from micheck.contract import DatasetSpec
from micheck.plan import Measurement, Point, default_rows, plan, points

__all__ = ["Measurement", "Point", "Sampler", "default_rows", "image_sampler", "plan", "points",
           "shapes", "vector_sampler"]

Sampler = Callable[[torch.Generator, int], tuple[Tensor, Tensor]]

TRANSFORMS = {"scaling": random_scaling, "rotation": random_rotation,
              "translation": random_translation}


# ---- (X, Y) constructions --------------------------------------------------------------


def _view(m: Measurement, x: Tensor, g: torch.Generator, t: int | None = None) -> Tensor:
    if m.transform == "rows":
        return mask_rows(x, m.t if t is None else t)
    return TRANSFORMS[m.transform](x, g)


def image_sampler(images: Tensor, m: Measurement, *, walk: bool = False) -> Sampler:
    """Draws n (X, Y) pairs of measurement m from an image split (N, C, H, W).

    walk=False: images drawn uniformly with replacement (training, curve batches).
    walk=True: the split in a random order, each image once per pass (the final held-out
    estimate: one pass is the whole test split); a second, independent image (independence,
    additivity) comes from a second random order.
    """
    count = images.shape[0]
    orders: dict[int, tuple[Tensor, int]] = {}  # stream -> (permutation, next position)

    def walk_draw(g: torch.Generator, n: int, stream: int) -> Tensor:
        perm, pos = orders.get(stream, (None, count))
        if perm is None or pos + n > count:
            perm, pos = torch.randperm(count, generator=g), 0
        orders[stream] = (perm, pos + n)
        return images[perm[pos:pos + n]]

    def draw(g: torch.Generator, n: int, stream: int = 0) -> Tensor:
        if walk:
            return walk_draw(g, n, stream)
        return images[torch.randint(count, (n,), generator=g)]

    def sample(g: torch.Generator, n: int) -> tuple[Tensor, Tensor]:
        x = draw(g, n)
        if m.role == "baseline":
            return x, _view(m, x, g)
        if m.role == "independence":
            return x, _view(m, draw(g, n, 1), g)
        if m.role == "data_processing":
            y = _view(m, x, g)
            if m.transform == "rows":
                processed = mask_rows(x, max(0, (m.t or 0) - m.offset))
            else:
                processed = TRANSFORMS[m.transform](y, g)
            return torch.cat([x, x], 1), torch.cat([y, processed], 1)
        if m.role == "additivity":
            x2 = draw(g, n, 1)
            return torch.cat([x, x2], 1), torch.cat([_view(m, x, g), _view(m, x2, g)], 1)
        raise ValueError(f"{m.role} is not an image measurement")

    return sample


def shapes(m: Measurement, image_shape: tuple[int, ...]) -> tuple[tuple[int, ...], ...]:
    c, h, w = image_shape
    double = m.role in ("data_processing", "additivity")
    s = (2 * c if double else c, h, w)
    return s, s


def vector_sampler(ds: DatasetSpec) -> Sampler:
    """Gaussian / Cubic pairs of App. B.1 at the data set's true MI."""

    def sample(g: torch.Generator, n: int) -> tuple[Tensor, Tensor]:
        x, y = sample_gaussian(n, ds.dim, ds.mi, generator=g)
        return (x, y**3) if ds.name == "cubic" else (x, y)

    return sample


