"""bmi's tasks as vector data sets with a known MI (Czyz et al., "Beyond Normality: Learning
Sets of Mutual Information Estimators", NeurIPS 2023), by name, written from the paper's
definitions (torch-free: the entries, their typed params and their exact MI).

Why not the ``benchmark-mi`` package itself: its last release (0.1.3) requires
``pydantic<2``, ``numpy<2``, ``jax``/``jaxlib<0.5``, ``tensorflow-probability[jax]<0.21``
and Python < 3.13, while micheck's contract is written for pydantic 2 and its lock holds
torch 2.13 with numpy 2: it cannot be installed beside them (and jax with TFP would double
the workers' footprint for five samplers). The tasks are defined here instead; their
samples come from micheck's own generators (``micheck.workers.data.bmi``), so they are
the same *distributions* as bmi's, not bmi's draws.

bmi's tasks have X and Y of dimensions d_x and d_y; micheck's vector tasks have one
``dim`` for both, so only the d x d tasks are here (every multinormal, Student and
transformed task of bmi's benchmark list is one). The tasks, with bmi's ids:

  multinormal_dense            multinormal-dense-d-d-rho: (X, Y) ~ N(0, S) with S the
                               2d x 2d correlation matrix with every off-diagonal entry rho
                               (``off_diag``); here 0 < rho < 1.
  multinormal_sparse           multinormal-sparse-d-d-k-s: bmi's latent-variable model with
                               k interacting pairs of strength s: X_i = E_i + s Z_i and
                               Y_i = F_i + s Z_i for i < k, the other coordinates E_i + s V_i,
                               all latents i.i.d. N(0, 1); so the first k pairs (X_i, Y_i)
                               have correlation rho = s^2 / (1 + s^2) and all else is
                               independent (bmi's 2-pair tasks are k = 2, s = 2: rho = 0.8).
  half_cube_multinormal_sparse half_cube-multinormal-sparse-d-d-k-s: the same, each
                               coordinate of X and Y mapped by x |x|^(1/2).
  student_identity             student-identity-d-d-nu: (X, Y) multivariate Student-t with
                               nu degrees of freedom and identity dispersion.
  asinh_student_identity       asinh-student-identity-d-d-nu: the same through asinh.

Known MI. A Gaussian's (the paper's Sec. 3 and App. A; Cover & Thomas Eq. 8.34 for the
entropies): I(X; Y) = 1/2 ln(det S_XX det S_YY / det S). For the dense matrix, an
equicorrelation matrix of size n has det = (1 - rho)^(n-1) (1 + (n-1) rho), so

    I = 1/2 [ -ln(1 - rho) + 2 ln(1 + (d-1) rho) - ln(1 + (2d-1) rho) ];

for the sparse one, k independent pairs: I = -k/2 ln(1 - rho^2) (paper 002 Eq. 55).
The multivariate Student-t (the paper's App. A, from Arellano-Valle, Contreras-Reyes and
Genton 2013, Eq. 7 for the entropy): I = I_Gauss(S) + c(nu, d_x, d_y) with S the
dispersion and, h the entropy of a standard t_nu in k dimensions,

    h(k) = ln G(nu/2) - ln G((nu+k)/2) + k/2 ln(nu pi) + (nu+k)/2 [psi((nu+k)/2) - psi(nu/2)],
    c    = h(d_x) + h(d_y) - h(d_x + d_y)                       (the pi terms cancel)

(identity dispersion: I_Gauss = 0, so I = c > 0: uncorrelated, yet dependent through the
shared chi-square scale). Coordinate-wise bijections (x |x|^(1/2), asinh) leave the MI
unchanged (the paper's Sec. 2; Kraskov et al. 2004), so the transformed tasks keep their
base task's MI exactly.
"""

from __future__ import annotations

import math
import re
from typing import Any

from pydantic import Field, model_validator

from micheck.datasets import DatasetEntry, Params, register

# Float32 samples: like the Gaussian's MAX_NATS_PER_DIM, a pair of correlation rho needs
# 1 - rho^2 well above float32 rounding; strength 100 gives 4.3 nats per pair.
MAX_STRENGTH = 100.0


class _Dim(Params):
    dim: int = Field(20, ge=1, le=4096, description="d: X and Y are each d-dimensional")


class DenseParams(_Dim):
    """multinormal_dense: every off-diagonal correlation of (X, Y) is ``off_diag``."""

    off_diag: float = Field(0.5, gt=0, lt=1, description="rho of every pair of coordinates")


class SparseParams(_Dim):
    """multinormal_sparse: ``interacting`` pairs (X_i, Y_i) of strength s."""

    interacting: int = Field(2, ge=1, le=4096, description="k: pairs (X_i, Y_i), i < k, "
                                                           "that share a latent")
    strength: float = Field(2.0, gt=0, le=MAX_STRENGTH,
                            description="s: their correlation is s^2 / (1 + s^2)")

    @model_validator(mode="after")
    def _fits(self) -> SparseParams:
        if self.interacting > self.dim:
            raise ValueError(f"interacting = {self.interacting} exceeds dim = {self.dim}")
        return self


class StudentParams(_Dim):
    """student_identity: multivariate Student-t, identity dispersion."""

    dof: int = Field(ge=1, le=1000, description="nu: degrees of freedom")


# ---- the known MI ----------------------------------------------------------------------------


def equicorrelation_logdet(n: int, rho: float) -> float:
    """ln det of the n x n matrix with 1 on the diagonal and rho elsewhere:
    (n - 1) ln(1 - rho) + ln(1 + (n - 1) rho)."""
    return (n - 1) * math.log1p(-rho) + math.log1p((n - 1) * rho)


def dense_mi(dim: int, rho: float) -> float:
    """I(X; Y) = 1/2 (ln det S_XX + ln det S_YY - ln det S) of the dense task (module
    docstring), each block an equicorrelation matrix."""
    return 0.5 * (2 * equicorrelation_logdet(dim, rho) - equicorrelation_logdet(2 * dim, rho))


def sparse_rho(strength: float) -> float:
    """The correlation of an interacting pair: s^2 / (1 + s^2)."""
    return strength * strength / (1.0 + strength * strength)


def sparse_mi(interacting: int, strength: float) -> float:
    """I = -k/2 ln(1 - rho^2), rho = s^2 / (1 + s^2) (k independent correlated pairs)."""
    rho = sparse_rho(strength)
    return -0.5 * interacting * math.log1p(-rho * rho)


def digamma(x: float) -> float:
    """psi(x) for x > 0: the recurrence psi(x) = psi(x + 1) - 1/x up to x >= 10, then the
    asymptotic series ln x - 1/(2x) - sum B_2j / (2j x^2j) (Abramowitz & Stegun 6.3.18),
    accurate to ~1e-14 there."""
    if not x > 0:
        raise ValueError(f"digamma needs x > 0, got {x}")
    acc = 0.0
    while x < 10.0:
        acc -= 1.0 / x
        x += 1.0
    inv2 = 1.0 / (x * x)
    series = inv2 * (1 / 12 - inv2 * (1 / 120 - inv2 * (1 / 252 - inv2 * (
        1 / 240 - inv2 * (1 / 132)))))
    return acc + math.log(x) - 0.5 / x - series


def student_entropy(k: int, dof: float) -> float:
    """h of a standard k-dimensional Student-t with nu = dof (Arellano-Valle et al. 2013,
    Eq. 7): ln G(nu/2) - ln G((nu+k)/2) + k/2 ln(nu pi) + (nu+k)/2 [psi((nu+k)/2) - psi(nu/2)]."""
    a, b = 0.5 * dof, 0.5 * (dof + k)
    return (math.lgamma(a) - math.lgamma(b) + 0.5 * k * math.log(dof * math.pi)
            + b * (digamma(b) - digamma(a)))


def student_correction(dof: float, dim_x: int, dim_y: int) -> float:
    """c(nu, d_x, d_y) = h(d_x) + h(d_y) - h(d_x + d_y): the Student-t MI beyond that of
    the Gaussian with the same dispersion (Czyz et al. 2023, App. A)."""
    return (student_entropy(dim_x, dof) + student_entropy(dim_y, dof)
            - student_entropy(dim_x + dim_y, dof))


def _dense(p: Params) -> float:
    assert isinstance(p, DenseParams)
    return dense_mi(p.dim, p.off_diag)


def _sparse(p: Params) -> float:
    assert isinstance(p, SparseParams)
    return sparse_mi(p.interacting, p.strength)


def _student(p: Params) -> float:
    assert isinstance(p, StudentParams)
    return student_correction(p.dof, p.dim, p.dim)  # identity dispersion: I_Gauss = 0


# ---- bmi's task ids ------------------------------------------------------------------------

_IDS = {  # micheck name -> bmi's id pattern (d x d only)
    "multinormal_dense": "multinormal-dense-{d}-{d}-{off_diag}",
    "multinormal_sparse": "multinormal-sparse-{d}-{d}-{interacting}-{strength}",
    "half_cube_multinormal_sparse": "half_cube-multinormal-sparse-{d}-{d}-{interacting}"
                                    "-{strength}",
    "student_identity": "student-identity-{d}-{d}-{dof}",
    "asinh_student_identity": "asinh-student-identity-{d}-{d}-{dof}",
}
_NUM = r"(\d+(?:\.\d+)?)"
_PARSE = [
    (re.compile(rf"^(half_cube-)?multinormal-sparse-(\d+)-(\d+)-(\d+)-{_NUM}$"), "sparse"),
    (re.compile(rf"^multinormal-dense-(\d+)-(\d+)-{_NUM}$"), "dense"),
    (re.compile(r"^(asinh-)?student-identity-(\d+)-(\d+)-(\d+)$"), "student"),
]


def task_id(name: str, params: Params) -> str:
    """bmi's id of a task (e.g. ``multinormal-sparse-3-3-2-2.0``)."""
    fields: dict[str, Any] = params.model_dump()
    return _IDS[name].format(d=fields.pop("dim"), **fields)


def from_task_id(task: str) -> dict[str, Any]:
    """The request's ``dataset`` fields of one of bmi's task ids, e.g.
    ``asinh-student-identity-2-2-1`` -> {"name": "asinh_student_identity", "dim": 2,
    "dof": 1}. ValueError for an id that is not one of these tasks at d_x = d_y."""
    for pattern, family in _PARSE:
        m = pattern.match(task)
        if m is None:
            continue
        if family == "dense":
            dx, dy, rho = int(m[1]), int(m[2]), float(m[3])
            out: dict[str, Any] = {"name": "multinormal_dense", "dim": dx, "off_diag": rho}
        elif family == "sparse":
            dx, dy = int(m[2]), int(m[3])
            out = {"name": ("half_cube_" if m[1] else "") + "multinormal_sparse", "dim": dx,
                   "interacting": int(m[4]), "strength": float(m[5])}
        else:
            dx, dy = int(m[2]), int(m[3])
            out = {"name": ("asinh_" if m[1] else "") + "student_identity", "dim": dx,
                   "dof": int(m[4])}
        if dx != dy:
            raise ValueError(f"{task}: micheck's vector tasks have d_x = d_y, got {dx} x {dy}")
        return out
    raise ValueError(f"{task!r} is not one of the bmi tasks micheck defines: "
                     + ", ".join(_IDS.values()))


# ---- the entries -----------------------------------------------------------------------------

_LOADER = "micheck.workers.data.bmi"
_CITE = "Czyz et al. 2023 (bmi)"

for _entry in (
    DatasetEntry("multinormal_dense", "vector", "1", f"{_CITE}: multinormal-dense-d-d-rho",
                 "synthetic", DenseParams, f"{_LOADER}:sample_dense", (20,),
                 known_mi="1/2 ln(det S_XX det S_YY / det S), S equicorrelated at off_diag",
                 mi_of=_dense),
    DatasetEntry("multinormal_sparse", "vector", "1",
                 f"{_CITE}: multinormal-sparse-d-d-k-s", "synthetic", SparseParams,
                 f"{_LOADER}:sample_sparse", (20,),
                 known_mi="-k/2 ln(1 - rho^2), rho = s^2 / (1 + s^2)", mi_of=_sparse),
    DatasetEntry("half_cube_multinormal_sparse", "vector", "1",
                 f"{_CITE}: half_cube-multinormal-sparse-d-d-k-s", "synthetic", SparseParams,
                 f"{_LOADER}:sample_half_cube_sparse", (20,),
                 known_mi="the sparse task's (x |x|^(1/2) is a bijection)", mi_of=_sparse),
    DatasetEntry("student_identity", "vector", "1", f"{_CITE}: student-identity-d-d-nu",
                 "synthetic", StudentParams, f"{_LOADER}:sample_student", (20,),
                 known_mi="h(d) + h(d) - h(2d) of standard t_nu (Arellano-Valle et al. 2013)",
                 mi_of=_student),
    DatasetEntry("asinh_student_identity", "vector", "1",
                 f"{_CITE}: asinh-student-identity-d-d-nu", "synthetic", StudentParams,
                 f"{_LOADER}:sample_asinh_student", (20,),
                 known_mi="the Student task's (asinh is a bijection)", mi_of=_student),
):
    register(_entry)
