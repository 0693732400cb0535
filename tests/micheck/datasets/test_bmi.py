"""bmi's tasks (micheck.datasets.bmi): their exact MI against hand and matrix computations,
their ids, and the request checked through the registry."""

import math

import pytest
import torch

from micheck.contract import DatasetSpec
from micheck.datasets.bmi import (
    DenseParams,
    SparseParams,
    StudentParams,
    dense_mi,
    digamma,
    from_task_id,
    sparse_mi,
    sparse_rho,
    student_correction,
    student_entropy,
    task_id,
)
from micheck.errors import SpecError
from micheck.spec import parse_spec

EULER = 0.5772156649015329


def _gauss_mi(cov: torch.Tensor, d: int) -> float:
    """1/2 (ln det S_XX + ln det S_YY - ln det S), numerically."""
    ld = lambda m: float(torch.linalg.slogdet(m)[1])  # noqa: E731
    return 0.5 * (ld(cov[:d, :d]) + ld(cov[d:, d:]) - ld(cov))


def _equicorrelation(n: int, rho: float) -> torch.Tensor:
    return torch.full((n, n), rho, dtype=torch.float64).fill_diagonal_(1.0)


@pytest.mark.parametrize(("d", "rho"), [(1, 0.75), (2, 0.5), (5, 0.5), (25, 0.5), (50, 0.9)])
def test_dense_mi_is_the_log_det_ratio_of_its_covariance(d, rho):
    assert dense_mi(d, rho) == pytest.approx(_gauss_mi(_equicorrelation(2 * d, rho), d),
                                             rel=1e-10)


def test_dense_mi_by_hand():
    # d = 1 is the bivariate normal: -1/2 ln(1 - rho^2)
    assert dense_mi(1, 0.75) == pytest.approx(-0.5 * math.log(1 - 0.75 ** 2))
    # d = 2, rho = 1/2: 1/2 [-ln(1/2) + 2 ln(3/2) - ln(5/2)] = 1/2 ln(9/5)
    assert dense_mi(2, 0.5) == pytest.approx(0.5 * math.log(9 / 5))


def _lvm_covariance(d: int, k: int, s: float) -> torch.Tensor:
    """bmi's latent-variable covariance of the sparse tasks as the paper describes it:
    X_i = E_i + s Z_i (i < k) or E_i + s V_i, Y_i = F_i + s Z_i or F_i + s W_i, all latents
    i.i.d. N(0, 1)."""
    cov = torch.eye(2 * d, dtype=torch.float64) * (1 + s * s)
    for i in range(k):
        cov[i, d + i] = cov[d + i, i] = s * s
    return cov


@pytest.mark.parametrize(("d", "k", "s"), [(2, 2, 2.0), (3, 2, 2.0), (25, 2, 2.0), (5, 3, 0.7)])
def test_sparse_mi_is_the_latent_models_mi(d, k, s):
    assert sparse_mi(k, s) == pytest.approx(_gauss_mi(_lvm_covariance(d, k, s), d), rel=1e-10)


def test_sparse_by_hand():
    assert sparse_rho(2.0) == pytest.approx(0.8)  # bmi's 2-pair tasks
    assert sparse_mi(2, 2.0) == pytest.approx(-math.log(0.36))  # 2 x (-1/2 ln(1 - 0.64))


def test_digamma_at_known_points():
    assert digamma(1.0) == pytest.approx(-EULER, abs=1e-13)
    assert digamma(0.5) == pytest.approx(-EULER - 2 * math.log(2), abs=1e-13)
    assert digamma(4.0) == pytest.approx(-EULER + 1 + 1 / 2 + 1 / 3, abs=1e-13)
    for x in (0.3, 2.7, 11.0, 40.5):
        assert digamma(x + 1) - digamma(x) == pytest.approx(1 / x, abs=1e-13)


def test_student_entropy_and_correction_by_hand():
    # the standard Cauchy (t_1, one dimension) has entropy ln(4 pi)
    assert student_entropy(1, 1) == pytest.approx(math.log(4 * math.pi), abs=1e-12)
    # nu = 2, d = 2: h(2) = ln 2pi + 2 and h(4) = 2 ln 2pi - ln 2 + 9/2, so c = ln 2 - 1/2
    assert student_correction(2, 2, 2) == pytest.approx(math.log(2) - 0.5, abs=1e-12)
    assert student_correction(1, 1, 1) > 0
    # the Gaussian limit: no dependence left beyond the dispersion's
    assert student_correction(1000, 2, 2) < 1e-5
    assert student_correction(3, 2, 2) > student_correction(30, 2, 2)


def test_bmi_ids_both_ways():
    cases = {
        "multinormal-dense-25-25-0.5": DatasetSpec(name="multinormal_dense", dim=25),
        "multinormal-sparse-3-3-2-2.0": DatasetSpec(name="multinormal_sparse", dim=3),
        "half_cube-multinormal-sparse-5-5-2-2.0":
            DatasetSpec(name="half_cube_multinormal_sparse", dim=5),
        "student-identity-2-2-1": DatasetSpec(name="student_identity", dim=2, dof=1),
        "asinh-student-identity-5-5-2": DatasetSpec(name="asinh_student_identity", dim=5,
                                                    dof=2),
    }
    for bmi_id, spec in cases.items():
        assert task_id(spec.name, spec.typed_params) == bmi_id
        assert DatasetSpec(**from_task_id(bmi_id)).typed_params == spec.typed_params
    with pytest.raises(ValueError, match="d_x = d_y"):
        from_task_id("multinormal-dense-2-5-0.5")
    with pytest.raises(ValueError, match="not one of the bmi tasks"):
        from_task_id("spiral-multinormal-sparse-3-3-2-2.0")


def test_known_mi_of_each_task_through_the_spec():
    assert DatasetSpec(name="multinormal_dense", dim=2).known_mi == pytest.approx(
        0.5 * math.log(9 / 5))
    assert DatasetSpec(name="half_cube_multinormal_sparse", dim=25).known_mi == pytest.approx(
        -math.log(0.36))
    assert DatasetSpec(name="asinh_student_identity", dim=2, dof=2).known_mi == pytest.approx(
        math.log(2) - 0.5)
    assert DatasetSpec(name="gaussian", dim=4, mi=3.0).known_mi == 3.0
    assert DatasetSpec(name="mnist").known_mi is None


GT = {"estimator": {"name": "infonce"}, "tests": [{"kind": "ground_truth"}]}


def test_bmi_tasks_fit_ground_truth_only():
    req = parse_spec({**GT, "dataset": {"name": "student_identity", "dim": 3, "dof": 2}})
    assert req.generators() == ["student_identity"]
    assert isinstance(req.dataset.typed_params, StudentParams)
    for kind in ("baseline", "mi_gradient"):
        with pytest.raises(SpecError):
            parse_spec({**GT, "dataset": {"name": "multinormal_sparse"},
                        "tests": [{"kind": kind}]})


def test_bmi_params_are_checked_and_name_the_field():
    for dataset, message in [
        ({"name": "student_identity"}, "dof: Field required"),
        ({"name": "multinormal_dense", "off_diag": 1.0}, "off_diag"),
        ({"name": "multinormal_sparse", "dim": 2, "interacting": 3},
         "interacting = 3 exceeds dim = 2"),
        ({"name": "multinormal_dense", "mi": 5.0}, "mi does not apply to multinormal_dense"),
        ({"name": "gaussian", "dof": 3},
         "dof applies to student_identity, asinh_student_identity only, not gaussian"),
        ({"name": "mnist", "off_diag": 0.5}, "off_diag applies to multinormal_dense only"),
    ]:
        with pytest.raises(SpecError, match=message):
            parse_spec({**GT, "dataset": dataset})


def test_defaults_spelled_out_hash_the_same_and_params_enter_the_key():
    def key(**dataset):
        return parse_spec({**GT, "dataset": dataset}).spec_hash()

    assert key(name="multinormal_sparse", dim=5) == key(
        name="multinormal_sparse", dim=5, interacting=2, strength=2.0)
    assert key(name="multinormal_sparse", dim=5) != key(
        name="multinormal_sparse", dim=5, strength=3.0)
    canonical = parse_spec({**GT, "dataset": {"name": "multinormal_dense"}}).canonical()
    assert canonical["dataset"]["off_diag"] == 0.5 and "dof" not in canonical["dataset"]
    plain = parse_spec({**GT, "dataset": {"name": "gaussian"}}).canonical()["dataset"]
    assert not {"off_diag", "interacting", "strength", "dof", "class_noise"} & set(plain)


def test_params_models_are_strict_and_bounded():
    with pytest.raises(ValueError):
        DenseParams(dim=2, off_diag=0.0)
    with pytest.raises(ValueError):
        SparseParams(dim=2, strength=1000.0)
    with pytest.raises(ValueError):
        StudentParams(dim=2, dof=0)
