"""The samplers of the test kinds: one registered per kind, turning a measurement into a task.

`micheck.plan` (torch-free, through the entries of `micheck.testkinds`) lists the
measurements a request needs; this module draws their samples. Each test kind registers a
task builder by name (:func:`register_sampler`): given a measurement, a seed and the
evaluation's data (:class:`TaskData`, loaded once, when first needed) it returns the
`CriticTask` the trainer trains. The constructions of paper 002 Sec. 4.2, 6.2 and
App. B.2, with X an image and Y_t its top t rows (bottom rows zeroed):

  baseline          (X, Y_t)
  independence      (X, Y'_t), Y' an independent image
  data_processing   ([X, X], [Y_t, Y_{t-offset}])
  additivity        ([X1, X2], [Y1_t, Y2_t]), X1, X2 independent
  ground_truth      pairs with a known MI: the vector tasks (App. B.1, Eq. 55; bmi's), or
                    same-class / noisy-class image pairs (workers.data.pairs)

With a Table 3 transform instead of row masking, Y = T(X) for a random scaling, rotation
or translation, and h(Y) = T'(Y) a second, independent draw. Concatenation stacks over
channels ([., .] in the paper). mi_gradient's sampler is in workers.gradient.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import torch
from micheck.workers.data import load_images, load_labels, sample_spec
from micheck.workers.data.pairs import noisy_class_sampler, same_class_sampler
from micheck.workers.data.transforms import (
    mask_rows,
    random_rotation,
    random_scaling,
    random_translation,
)
from micheck.workers.trainer import VECTOR_EVAL_SAMPLES, CriticTask
from torch import Tensor

from micheck import testkinds
from micheck.contract import DatasetSpec, EvaluationRequest
from micheck.plan import Measurement, Point, default_rows, plan, points

__all__ = ["Measurement", "Point", "Sampler", "TaskData", "build_tasks", "default_rows",
           "image_sampler", "plan", "points", "register_sampler", "shapes", "vector_sampler"]

Sampler = Callable[[torch.Generator, int], tuple[Tensor, Tensor]]
# (n images drawn from stream k) for one generator: the second stream is the independent image
Draw = Callable[[torch.Generator, int, int], Tensor]
# one kind's (X, Y) construction from a first batch of images x
Construction = Callable[[Measurement, Tensor, Draw, torch.Generator], tuple[Tensor, Tensor]]

TRANSFORMS = {"scaling": random_scaling, "rotation": random_rotation,
              "translation": random_translation}


class TaskData:
    """What the tasks of one evaluation draw from, each loaded once, when first needed.

    `device`: where the image splits live. On a GPU the samplers then index and transform
    on the device (the random indices and transform parameters still come from each task's
    CPU generator, so the draws are the same): drawing a batch for each of a hundred
    critics on the CPU costs more per step than the critics' own arithmetic on the GPU."""

    def __init__(self, request: EvaluationRequest, device: torch.device | None = None) -> None:
        self.request, self.dataset = request, request.dataset
        self.device = device if device is not None and device.type != "cpu" else None

    def _placed(self, images: Tensor) -> Tensor:
        return images if self.device is None else images.to(self.device)

    @functools.cached_property
    def train_images(self) -> Tensor:
        return self._placed(load_images(self.dataset, "train"))

    @functools.cached_property
    def test_images(self) -> Tensor:
        return self._placed(load_images(self.dataset, "test"))

    @property
    def image_shape(self) -> tuple[int, ...]:
        return self.dataset.entry.shape

    @functools.cached_property
    def eval_samples(self) -> int:
        """Held-out samples of the final estimate: the request's, else the whole test
        split for images and VECTOR_EVAL_SAMPLES for vectors."""
        ev = self.request.estimator.train.eval_samples
        if not self.dataset.is_image:
            return ev or VECTOR_EVAL_SAMPLES
        n = self.test_images.shape[0]
        return min(ev, n) if ev else n

    @functools.cached_property
    def pairs(self) -> tuple[Sampler, Sampler, float]:
        """Known-MI pairs, same-class or noisy-class (train sampler, test sampler, the test
        split's known MI)."""
        ds = self.dataset
        classes = ds.classes or list(range(ds.entry.classes))
        if ds.pairs == "noisy_class":
            eps = ds.class_noise or 0.0

            def make(images: Tensor, labels: Tensor) -> tuple[Sampler, float]:
                return noisy_class_sampler(images, labels, classes, eps, ds.copies)
        else:
            def make(images: Tensor, labels: Tensor) -> tuple[Sampler, float]:
                return same_class_sampler(images, labels, classes, ds.copies)
        train, _ = make(self.train_images, load_labels(ds, "train"))
        test, mi = make(self.test_images, load_labels(ds, "test"))
        return train, test, mi

    @property
    def true_mi(self) -> float | None:
        """The known MI of the data set's pairs (vector tasks, same-class pairs), else None."""
        if self.dataset.pairs is not None:
            return self.pairs[2]
        return None if self.dataset.is_image else self.dataset.known_mi


TaskBuilder = Callable[[Measurement, int, TaskData], CriticTask]
_SAMPLERS: dict[str, TaskBuilder] = {}


def register_sampler(kind: str, *, replace: bool = False
                     ) -> Callable[[TaskBuilder], TaskBuilder]:
    """Decorator: the task builder of test kind `kind` (a `micheck.testkinds` entry)."""

    def add(builder: TaskBuilder) -> TaskBuilder:
        if kind in _SAMPLERS and not replace:
            raise ValueError(f"a sampler for test kind {kind!r} is already registered")
        _SAMPLERS[kind] = builder
        return builder

    return add


def build_tasks(request: EvaluationRequest, seeds: list[int] | None = None,
                measurements: list[Measurement] | None = None, data: TaskData | None = None
                ) -> tuple[list[CriticTask], dict[str, Measurement]]:
    """One CriticTask per (measurement, seed), and which measurement each key is.

    Defaults: every measurement of the plan, every seed of the request."""
    data = TaskData(request) if data is None else data
    measurements = plan(request) if measurements is None else measurements
    seeds = list(request.seeds) if seeds is None else seeds
    tasks: list[CriticTask] = []
    by_key: dict[str, Measurement] = {}
    for m in measurements:
        try:
            builder = _SAMPLERS[m.role]
        except KeyError:
            raise KeyError(f"no sampler registered for test kind {m.role!r}") from None
        for seed in seeds:
            task = builder(m, seed, data)
            tasks.append(task)
            by_key[task.key] = m
    return tasks, by_key


# ---- images: the constructions of the row-masking and transform tests ------------------


def _view(m: Measurement, x: Tensor, g: torch.Generator, t: int | None = None) -> Tensor:
    if m.transform == "rows":
        return mask_rows(x, m.t if t is None else t)
    return TRANSFORMS[m.transform](x, g)


_CONSTRUCTIONS: dict[str, Construction] = {}


def image_sampler(images: Tensor, m: Measurement, *, walk: bool = False) -> Sampler:
    """Draws n (X, Y) pairs of measurement m from an image split (N, C, H, W).

    walk=False: images drawn uniformly with replacement (training, curve batches).
    walk=True: the split in a random order, each image once per pass (the final held-out
    estimate: one pass is the whole test split); a second, independent image (independence,
    additivity) comes from a second random order.
    """
    try:
        construct = _CONSTRUCTIONS[m.role]
    except KeyError:
        raise ValueError(f"{m.role} is not an image measurement") from None
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
        return construct(m, draw(g, n), draw, g)

    return sample


def shapes(m: Measurement, image_shape: tuple[int, ...]) -> tuple[tuple[int, ...], ...]:
    """Input shapes of X and Y: a kind whose numerator stacks k copies has k x channels
    (its entry's `critics[0]`)."""
    c, h, w = image_shape
    s = (testkinds.get(m.role).critics[0] * c, h, w)
    return s, s


def _image_task(m: Measurement, seed: int, data: TaskData) -> CriticTask:
    xs, ys = shapes(m, data.image_shape)
    return CriticTask(m.key(seed), seed, image_sampler(data.train_images, m),
                      image_sampler(data.test_images, m), xs, ys,
                      eval_samples=data.eval_samples,
                      evaluation=image_sampler(data.test_images, m, walk=True))


def _image_kind(kind: str) -> Callable[[Construction], Construction]:
    """Registers an image kind's construction and its (shared) task builder."""

    def add(construct: Construction) -> Construction:
        _CONSTRUCTIONS[kind] = construct
        register_sampler(kind)(_image_task)
        return construct

    return add


@_image_kind("baseline")
def _baseline(m: Measurement, x: Tensor, draw: Draw, g: torch.Generator
              ) -> tuple[Tensor, Tensor]:
    return x, _view(m, x, g)


@_image_kind("independence")
def _independence(m: Measurement, x: Tensor, draw: Draw, g: torch.Generator
                  ) -> tuple[Tensor, Tensor]:
    return x, _view(m, draw(g, x.shape[0], 1), g)


@_image_kind("data_processing")
def _data_processing(m: Measurement, x: Tensor, draw: Draw, g: torch.Generator
                     ) -> tuple[Tensor, Tensor]:
    y = _view(m, x, g)
    if m.transform == "rows":
        processed = mask_rows(x, max(0, (m.t or 0) - m.offset))
    else:
        processed = TRANSFORMS[m.transform](y, g)
    return torch.cat([x, x], 1), torch.cat([y, processed], 1)


@_image_kind("additivity")
def _additivity(m: Measurement, x: Tensor, draw: Draw, g: torch.Generator
                ) -> tuple[Tensor, Tensor]:
    x2 = draw(g, x.shape[0], 1)
    return torch.cat([x, x2], 1), torch.cat([_view(m, x, g), _view(m, x2, g)], 1)


# ---- ground truth: pairs with a known MI ---------------------------------------------------


def vector_sampler(ds: DatasetSpec) -> Sampler:
    """Pairs of a vector task (Gaussian / Cubic of App. B.1 at the request's MI, or one of
    bmi's tasks at its params)."""

    def sample(g: torch.Generator, n: int) -> tuple[Tensor, Tensor]:
        return sample_spec(ds, n, generator=g)

    return sample


@register_sampler("ground_truth")
def _ground_truth(m: Measurement, seed: int, data: TaskData) -> CriticTask:
    ds, key = data.dataset, m.key(seed)
    if ds.pairs is not None:  # held out: random pairs of the test split
        train, test, mi = data.pairs
        c, h, w = data.image_shape
        shape = (c * ds.copies, h, w)
        return CriticTask(key, seed, train, test, shape, shape, true_mi=mi,
                          eval_samples=data.eval_samples)
    sampler = vector_sampler(ds)
    return CriticTask(key, seed, sampler, sampler, (ds.dim,), (ds.dim,), true_mi=data.true_mi,
                      eval_samples=data.eval_samples)


from micheck.workers import gradient as _gradient  # noqa: E402, F401  (registers mi_gradient)
