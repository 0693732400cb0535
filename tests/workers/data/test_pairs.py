"""Same-class image pairs (workers.data.pairs): who is paired with whom, and the known MI."""

import json
import math
from collections import Counter

import pytest
import torch
from micheck.workers.data import load_images, load_labels
from micheck.workers.data.pairs import (
    ClassPool,
    class_entropy,
    noisy_class_sampler,
    same_class_mi,
    same_class_sampler,
)

from micheck.contract import DatasetSpec
from micheck.datasets.class_channel import channel_mi, noisy_pairs_for, symmetric_channel_mi
from micheck.errors import DataNotFound, SpecError
from tests.workers.data.support import write_cifar


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


# ---- noisy-class pairs: Y's class through a symmetric channel ----------------------------


def _hoeffding_t(n: int, cells: int, p_fail: float = 1e-12) -> float:
    """A deviation that n Bernoulli draws' frequency exceeds in any of `cells` cells with
    probability below p_fail (Hoeffding, union bound): 2 cells exp(-2 n t^2) = p_fail."""
    return math.sqrt(math.log(2 * cells / p_fail) / (2 * n))


@pytest.mark.parametrize("eps", [0.0, 0.3, 0.6])
def test_noisy_pairs_follow_the_channel(eps):
    counts = {0: 300, 1: 500, 2: 200}
    images, labels = _toy(counts)
    sample, mi = noisy_class_sampler(images, labels, [0, 1, 2], eps)
    n = 200_000
    x, y = sample(torch.Generator().manual_seed(4), n)
    ix, iy = x.long().flatten(), y.long().flatten()
    assert (ix != iy).all()  # never the image itself, even within its class
    cx, cy = labels[ix], labels[iy]
    t = _hoeffding_t(n, 9 + 1)  # ~0.0130: 9 joint cells and the flip rate
    flips = float((cx != cy).double().mean())
    assert abs(flips - eps) < t
    prior = {c: k / 1000 for c, k in counts.items()}
    joint = Counter(zip(cx.tolist(), cy.tolist(), strict=True))
    for a in counts:
        for b in counts:
            want = prior[a] * ((1 - eps) if a == b else eps / 2)
            assert abs(joint[(a, b)] / n - want) < t, (a, b)
    # the truth: the joint table of the pool's frequencies (not the uniform formula)
    assert mi == pytest.approx(channel_mi([300, 500, 200], eps))
    if eps == 0.0:
        assert mi == pytest.approx(class_entropy([300, 500, 200]))


def test_noisy_pairs_stack_copies_and_multiply_the_mi():
    images, labels = _toy({0: 40, 1: 40, 2: 40, 3: 40})
    sample, mi = noisy_class_sampler(images, labels, [0, 1, 2, 3], 0.25, copies=3)
    x, y = sample(torch.Generator().manual_seed(5), 10)
    assert x.shape == y.shape == (10, 3, 1, 1)
    assert mi == pytest.approx(3 * symmetric_channel_mi(4, 0.25))  # equal counts: Eq. (1)
    assert not torch.equal(x[:, 0], x[:, 1])  # copies are independent draws


def test_noisy_pairs_only_among_the_chosen_classes():
    images, labels = _toy({0: 50, 1: 50, 2: 50, 5: 50})
    sample, _ = noisy_class_sampler(images, labels, [1, 5], 0.4)
    x, y = sample(torch.Generator().manual_seed(6), 5000)
    assert set(labels[y.long().flatten()].tolist()) == {1, 5}
    with pytest.raises(ValueError, match=r"\(K-1\)/K"):
        noisy_class_sampler(images, labels, [1, 5], 0.6)


def test_noisy_pairs_from_cifar10_files(tmp_path, monkeypatch):
    """CIFAR-10 from an operator's data root (files in the real batches-py format)."""
    from micheck.workers import data

    write_cifar(tmp_path / "cifar-10-batches-py", per_batch=20)  # test split: 2 per class
    monkeypatch.setenv("MICHECK_DATA_ROOTS", json.dumps({"lab": str(tmp_path)}))
    data.clear_cache()
    spec = DatasetSpec(name="cifar10", data_root="lab", pairs="noisy_class", class_noise=0.2)
    images, labels = load_images(spec, "test"), load_labels(spec, "test")
    data.clear_cache()
    assert torch.bincount(labels).tolist() == [2] * 10
    sample, mi = noisy_class_sampler(images, labels, list(range(10)), spec.class_noise or 0.0)
    assert mi == pytest.approx(symmetric_channel_mi(10, 0.2))  # balanced: Eq. (1) exactly
    n = 4000
    x, y = sample(torch.Generator().manual_seed(7), n)
    assert x.shape == y.shape == (n, 3, 32, 32)
    label_of = {round(float(v) * 255): int(c) for v, c in
                zip(images[:, 0, 0, 0], labels, strict=True)}  # first byte names the image
    cx = torch.tensor([label_of[round(float(v) * 255)] for v in x[:, 0, 0, 0]])
    cy = torch.tensor([label_of[round(float(v) * 255)] for v in y[:, 0, 0, 0]])
    assert abs(float((cx != cy).double().mean()) - 0.2) < _hoeffding_t(n, 1)


def test_mnist_noisy_pairs_reach_ten_nats():
    plan = noisy_pairs_for(10.0)
    spec = DatasetSpec(name="mnist", pairs="noisy_class", class_noise=plan.eps,
                       copies=plan.copies)
    try:
        images, labels = load_images(spec, "test"), load_labels(spec, "test")
    except DataNotFound as exc:
        pytest.skip(str(exc))
    sample, mi = noisy_class_sampler(images, labels, list(range(10)), plan.eps, plan.copies)
    counts = torch.bincount(labels).tolist()
    assert mi == pytest.approx(5 * channel_mi(counts, plan.eps))
    assert mi == pytest.approx(10.0, abs=0.02)  # MNIST's test classes are nearly balanced
    x, y = sample(torch.Generator().manual_seed(8), 16)
    assert x.shape == y.shape == (16, 5, 28, 28)
