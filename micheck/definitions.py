"""The versions a result depends on, and the training schedule's defaults.

The estimators, the data sets and the test kinds are entries of their registries
(``micheck.estimators``, ``micheck.datasets``, ``micheck.testkinds``), each with its
version; this module holds the protocol's own version, the task generators' versions and
``definition_versions``, which gathers what a result depends on. Pure data: the service
(which has no torch) publishes it and hashes it into deduplication keys; the engine
records it in every result. Bump a version whenever a change would move a stored number
(formula, default, training signal, samples): a stored result records the versions it was
computed under, so old numbers never silently change meaning.
"""

from __future__ import annotations

import functools

from micheck import datasets, estimators
from micheck.datasets import DatasetEntry

# the test protocol (planning, masking, ratio and interval definitions, verdict rule).
# v2: verdicts decided on simultaneous intervals against bands (micheck.verdicts), held-out
# estimates over the whole test split, training curves and the plateau test.
# v3: ratios on the log scale, alpha spent across looks, decisions final, the AR(1) trend
# test for convergence, and a ratio over a non-positive denominator counted non-positive.
ENGINE_VERSION = "3"


# The data sets are entries of the registry in ``micheck.datasets`` (name, typed params,
# loader, version, known MI, how the data arrive); this name -> entry view is kept for old
# imports.
DATASETS: dict[str, DatasetEntry] = {d.name: d for d in datasets.entries()}


# The paper's training schedule on images (paper 002 App. B.2): Adam at batch 64 for 2 epochs
# for the discriminative critics and 10 epochs for the generative (VAE) estimator. A request
# that does not give `train.steps` on an image data set gets these epochs of its training split.
PAPER_EPOCHS = {"discriminative": 2, "generative": 10}
VECTOR_DEFAULT_STEPS = 1000


# Task generators: how (X, Y) pairs are drawn. Bump a version whenever a change would alter
# the samples a seed draws (tests/workers/data/test_generators.py pins a hash of each); it is
# recorded in every result's provenance and hashed into deduplication keys.
GENERATOR_VERSIONS: dict[str, str] = {
    "gaussian": "1",  # Song & Ermon 2020 Eq. 55 (workers.data.synthetic.sample_gaussian)
    "cubic": "1",  # the Gaussian with y -> y^3
    "rows": "1",  # row masking of the self-consistency tests (Sec. 6.2)
    "transforms": "1",  # Table 3 random scaling, rotation, translation
    "same_class": "1",  # two images of one class, m copies (workers.data.pairs)
    "noisy_class": "1",  # Y's class through a symmetric channel, m copies (workers.data.pairs)
    "mi_gradient": "1",  # reparameterised correlated Gaussian (workers.gradient)
    # bmi's tasks, Czyz et al. 2023 (micheck.datasets.bmi; samplers in workers.data.bmi)
    "multinormal_dense": "1",  # one-factor equicorrelated Gaussian
    "multinormal_sparse": "1",  # k pairs of Eq. 55 at rho = s^2/(1+s^2), the rest independent
    "half_cube_multinormal_sparse": "1",  # the sparse task through x |x|^(1/2)
    "student_identity": "1",  # z / sqrt(chi^2_nu / nu), identity dispersion
    "asinh_student_identity": "1",  # the Student task through asinh
}


def canonical_estimator(name: str) -> str:
    """The registered name of an estimator name or alias (micheck.estimators)."""
    return estimators.canonical_name(name)


def definition_versions(estimator: str, generators: tuple[str, ...] | list[str] = (),
                        dataset: str | None = None) -> dict[str, str]:
    """The versions a result depends on: its estimator's, the test protocol's, those of
    the task generators it draws from (keys "generator:<name>") and its data set's
    ("dataset:<name>", from version 2 on: micheck.datasets)."""
    entry = estimators.get(estimator)
    out = {"engine": ENGINE_VERSION, estimator: entry.version}
    if dataset is not None:
        out.update(datasets.versions(dataset))
    if entry.origin is not None:  # a plug-in: the distribution that defines it
        out["plugin"] = str(entry.origin)
    out.update({f"generator:{g}": _generator_version(g) for g in sorted(set(generators))})
    return out


def _generator_version(name: str) -> str:
    """A task generator's version; a synthetic data set registered without one in
    GENERATOR_VERSIONS is its own generator, versioned by its entry."""
    version = GENERATOR_VERSIONS.get(name)
    return version if version is not None else datasets.get(name).version


@functools.cache
def code_version() -> str:
    """The package version plus the git commit when running from a checkout, read once per
    process: code imported at start is what runs, whatever the checkout moves to later (a
    long benchmark or worker process must not label its results with a later commit)."""
    import subprocess
    from pathlib import Path

    from micheck._version import __version__

    root = Path(__file__).resolve().parent.parent
    try:
        sha = subprocess.run(["git", "-C", str(root), "rev-parse", "--short=12", "HEAD"],
                             capture_output=True, text=True, timeout=5, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "-uno"],
                               capture_output=True, text=True, timeout=5).stdout.strip()
        return f"{__version__}+g{sha}{'.dirty' if dirty else ''}"
    except (OSError, subprocess.SubprocessError):
        return __version__
