"""Same-class image pairs (workers.data.pairs): who is paired with whom, and the known MI."""

import math
from collections import Counter

import pytest
import torch
from micheck.workers.data import load_images, load_labels
from micheck.workers.data.pairs import (
    ClassPool,
    class_entropy,
    same_class_mi,
    same_class_sampler,
)

from micheck.contract import DatasetSpec
from micheck.errors import DataNotFound, SpecError


def _toy(counts: dict[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Images whose single pixel holds their own index, and their labels."""
    labels = torch.tensor([c for c, k in counts.items() for _ in range(k)])
    images = torch.arange(len(labels), dtype=torch.float32).view(-1, 1, 1, 1)
    return images, labels


def test_entropy_of_class_counts():
    assert class_entropy([5, 5]) == pytest.approx(math.log(2))
    assert class_entropy([3, 3, 3, 0]) == pytest.approx(math.log(3))
    assert class_entropy([1, 3]) == pytest.approx(-(0.25 * math.log(0.25) + 0.75 * math.log(0.75)))
    assert same_class_mi([7, 7, 7, 7], copies=3) == pytest.approx(3 * math.log(4))
    with pytest.raises(ValueError):
        same_class_mi([1, 1], copies=0)


def test_pairs_are_two_different_images_of_one_class_in_every_copy():
    images, labels = _toy({0: 3, 1: 2, 2: 4, 3: 5})
    sample, mi = same_class_sampler(images, labels, [1, 2, 3], copies=2)
    x, y = sample(torch.Generator().manual_seed(0), 4000)
    assert x.shape == y.shape == (4000, 2, 1, 1)
    ix, iy = x.long().flatten(), y.long().flatten()
    assert (labels[ix] == labels[iy]).all() and (ix != iy).all()
    assert not (labels[ix] == 0).any()  # only the chosen classes
    assert mi == pytest.approx(2 * class_entropy([2, 4, 5]))


def test_the_known_mi_matches_the_class_frequencies_actually_sampled():
    images, labels = _toy({0: 100, 1: 300, 2: 600})
    sample, mi = same_class_sampler(images, labels, [0, 1, 2])
    x, _ = sample(torch.Generator().manual_seed(1), 20000)
    freq = Counter(labels[x.long().flatten()].tolist())
    plug_in = class_entropy([freq[c] for c in (0, 1, 2)])
    assert plug_in == pytest.approx(mi, abs=0.01)
    assert mi < math.log(3)  # unbalanced: below log k, not assumed equal to it


def test_y_is_uniform_over_the_other_images_of_the_class():
    images, labels = _toy({0: 4})
    pool = ClassPool(labels, [0])
    ix, iy = pool.draw(torch.Generator().manual_seed(2), 12000)
    pairs = Counter(zip(ix.tolist(), iy.tolist(), strict=True))
    assert len(pairs) == 12 and min(pairs.values()) > 800  # 4 x 3 ordered pairs, ~1000 each


def test_a_class_with_one_image_is_a_clear_error():
    images, labels = _toy({0: 5, 1: 1})
    with pytest.raises(SpecError, match="fewer than 2 images"):
        same_class_sampler(images, labels, [0, 1])


def test_mnist_batch_of_same_class_pairs_and_its_known_mi():
    spec = DatasetSpec(name="mnist", pairs="same_class", classes=[0, 1, 7], copies=2)
    try:
        images, labels = load_images(spec, "test"), load_labels(spec, "test")
    except DataNotFound as exc:
        pytest.skip(str(exc))
    sample, mi = same_class_sampler(images, labels, spec.classes, spec.copies)
    counts = [int((labels == c).sum()) for c in spec.classes]  # MNIST test: 980, 1135, 1028
    assert mi == pytest.approx(2 * class_entropy(counts)) and mi < 2 * math.log(3)
    x, y = sample(torch.Generator().manual_seed(3), 64)
    assert x.shape == y.shape == (64, 2, 28, 28)
    assert not torch.equal(x, y) and float(x.min()) >= 0.0 and float(x.max()) <= 1.0
