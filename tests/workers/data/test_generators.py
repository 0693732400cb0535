"""Pinned hashes of small samples from every task generator.

A failure here means a generator now draws different samples for the same seed: stored
numbers computed with the old one would silently change meaning. Bump that generator's
version in micheck.definitions.GENERATOR_VERSIONS and update the hash below.
"""

import hashlib

import torch
from micheck.workers.data import bmi, sample_cubic, sample_gaussian
from micheck.workers.data.pairs import noisy_class_sampler, same_class_sampler
from micheck.workers.data.transforms import (
    mask_rows,
    random_rotation,
    random_scaling,
    random_translation,
)
from micheck.workers.gradient import sample_pairs

from micheck.datasets.bmi import DenseParams, SparseParams, StudentParams
from micheck.definitions import GENERATOR_VERSIONS


def digest(*tensors: torch.Tensor) -> str:
    """sha256 of the values rounded to 1e-4 (robust to last-bit float differences)."""
    h = hashlib.sha256()
    for t in tensors:
        h.update(repr([round(v, 4) + 0.0 for v in t.double().flatten().tolist()]).encode())
    return h.hexdigest()[:16]


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _images() -> torch.Tensor:
    return torch.linspace(0, 1, 2 * 8 * 8).view(2, 1, 8, 8)


def samples() -> dict[str, tuple[torch.Tensor, ...]]:
    images = _images()
    labels = torch.tensor([0, 1, 0, 1, 2, 2])
    toy = torch.arange(6, dtype=torch.float32).view(6, 1, 1, 1)
    pairs, _ = same_class_sampler(toy, labels, [0, 1, 2], copies=2)
    sparse = SparseParams(dim=3, interacting=2, strength=2.0)
    student = StudentParams(dim=2, dof=3)
    noisy, _ = noisy_class_sampler(toy, labels, [0, 1, 2], 0.4, copies=2)
    return {
        "gaussian": sample_gaussian(4, 3, 1.0, generator=_gen()),
        "cubic": sample_cubic(4, 3, 1.0, generator=_gen()),
        "rows": (mask_rows(images, 3),),
        "transforms": (random_scaling(images, _gen()), random_rotation(images, _gen()),
                       random_translation(images, _gen())),
        "same_class": pairs(_gen(), 8),
        "noisy_class": noisy(_gen(), 8),
        "multinormal_dense": bmi.sample_dense(4, DenseParams(dim=2, off_diag=0.5),
                                              generator=_gen()),
        "multinormal_sparse": bmi.sample_sparse(4, sparse, generator=_gen()),
        "half_cube_multinormal_sparse": bmi.sample_half_cube_sparse(4, sparse,
                                                                    generator=_gen()),
        "student_identity": bmi.sample_student(4, student, generator=_gen()),
        "asinh_student_identity": bmi.sample_asinh_student(4, student, generator=_gen()),
        "mi_gradient": sample_pairs(torch.tensor([0.3, -0.6]),
                                    torch.randn(2, 2, 3, 2, generator=_gen()), cubic=False),
    }


PINNED = {  # (version, hash of the sample above)
    "gaussian": ("1", "6dc8152e004eff1d"),
    "cubic": ("1", "1298fc2085390ebd"),
    "rows": ("1", "c0b471cd3d6a36f5"),
    "transforms": ("1", "d32a792d584030a5"),
    "same_class": ("1", "82b59c0e240921e1"),
    "noisy_class": ("1", "ca89e3ab6187ad02"),
    "mi_gradient": ("1", "c6cedbd09abacb54"),
    "multinormal_dense": ("1", "bc74a2890b67610b"),
    "multinormal_sparse": ("1", "6e2cb612b2758854"),
    "half_cube_multinormal_sparse": ("1", "940087558414acb9"),
    "student_identity": ("1", "a04dc03b7fa76488"),
    "asinh_student_identity": ("1", "54fc069b0856b261"),
}


def test_every_generator_is_pinned():
    assert set(PINNED) == set(GENERATOR_VERSIONS)


def test_generator_samples_match_their_pinned_hash():
    got = {name: digest(*tensors) for name, tensors in samples().items()}
    for name, (version, pinned) in PINNED.items():
        assert GENERATOR_VERSIONS[name] == version, (
            f"{name} is now version {GENERATOR_VERSIONS[name]}: re-pin its hash")
        assert got[name] == pinned, (
            f"generator {name!r} draws different samples ({got[name]} != {pinned}): bump "
            f"GENERATOR_VERSIONS[{name!r}] in micheck/definitions.py and re-pin")
