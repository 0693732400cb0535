"""evaluate() end to end on real data, small enough for a CPU."""

import json

import pytest
from micheck.workers.engine import evaluate

from micheck.contract import EvaluationRequest, EvaluationResult, Progress
from micheck.errors import Canceled, DataNotFound, SpecError
from micheck.scoring import replay
from tests.service.support import deterministic_critics


def _req(data):
    return EvaluationRequest.model_validate(data)


@pytest.mark.slow
def test_mnist_baseline_rises_and_independence_is_zero():
    req = _req({
        "estimator": {"name": "smile", "params": {"tau": 5.0},
                      "critic": {"kind": "separable", "width": 0.25},
                      "train": {"batch_size": 32, "steps": 200, "lr": 5e-4,
                                "eval_samples": 512}},
        "dataset": {"name": "mnist"},
        "tests": [{"kind": "baseline", "rows": [0, 7, 28]},
                  {"kind": "independence", "rows": [7, 28]}],
        "seeds": [0], "max_seeds": 1})
    seen: list[Progress] = []
    result = evaluate(req, progress=seen.append)
    ratios = {(r.test, r.t): r.value for r in result.ratios if r.kind == "ratio"}
    assert abs(ratios[("baseline", 0)]) < 0.05
    assert 0.1 < ratios[("baseline", 7)] < ratios[("baseline", 28)] == pytest.approx(1.0)
    assert abs(ratios[("independence", 7)]) < 0.05
    assert abs(ratios[("independence", 28)]) < 0.05
    full = next(e for e in result.estimates if e.test == "baseline" and e.t == 28)
    assert full.mi_test > 1.0  # I(X;X) is large: a real signal, not a constant critic
    assert seen[-1].steps_done == seen[-1].steps_total == 5 * 200
    assert result.provenance.definition_versions["smile"] == "1"
    assert result.provenance.device.startswith("cpu")
    EvaluationResult.model_validate_json(result.model_dump_json())  # survives JSON


def test_ground_truth_result_has_every_field_and_provenance():
    req = _req({"estimator": {"name": "infonce", "train": {"batch_size": 16, "steps": 30,
                                                           "eval_samples": 64}},
                "dataset": {"name": "cubic", "dim": 2, "mi": 1.0},
                "tests": [{"kind": "ground_truth"}], "seeds": [3, 4], "max_seeds": 2})
    result = evaluate(req)
    assert [(e.test, e.seed) for e in result.estimates] == [("ground_truth", 3),
                                                            ("ground_truth", 4)]
    assert all(e.true_mi == 1.0 for e in result.estimates)
    (r,) = result.ratios
    assert r.per_seed == [e.mi_test for e in result.estimates]
    assert result.provenance.seeds == [3, 4] and result.provenance.code_version
    json.loads(result.model_dump_json())


def test_cancel_is_honoured():
    req = _req({"estimator": {"name": "nwj", "train": {"batch_size": 16, "steps": 100000}},
                "dataset": {"name": "gaussian", "dim": 2, "mi": 1.0},
                "tests": [{"kind": "ground_truth"}]})
    with pytest.raises(Canceled):
        evaluate(req, should_cancel=lambda: True)


def test_missing_cifar_directory_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("MICHECK_DATA_ROOTS", f'{{"nowhere": "{tmp_path / "nowhere"}"}}')
    req = _req({"estimator": {"name": "smile"},
                "dataset": {"name": "cifar10", "data_root": "nowhere"},
                "tests": [{"kind": "baseline", "rows": [0]}]})
    with pytest.raises(DataNotFound, match="data root 'nowhere'") as err:
        evaluate(req)
    assert str(tmp_path) not in str(err.value)


@pytest.fixture
def fitted(monkeypatch):
    """The engine's fit for critics replaced by a deterministic one
    (tests.service.support.deterministic_critics): the adaptive rule is tested on its own,
    with no training trajectory in it. Returns the seeds each call fitted."""
    return deterministic_critics(monkeypatch)


def test_adaptive_seeds_add_rounds_until_the_cap(fitted):
    """One seed can never decide: the rule doubles the seeds (1 -> 2 -> 3), training only
    the new seeds, and records why it stopped."""
    req = _req({"estimator": {"name": "infonce", "train": {"batch_size": 64, "steps": 300,
                                                           "lr": 5e-3, "eval_samples": 256}},
                "dataset": {"name": "gaussian", "dim": 2, "mi": 0.5},
                "tests": [{"kind": "ground_truth", "tolerance": 0.5}],
                "seeds": [7], "max_seeds": 3})
    result = evaluate(req)
    assert fitted == [[7], [8], [9]]  # none trained twice
    assert result.seed_rounds.rounds == [[7], [8], [9]]
    assert result.provenance.seeds == [7, 8, 9]
    assert sorted(e.seed for e in result.estimates) == [7, 8, 9]
    (r,) = result.ratios
    # with 3 seeds and a band of +-0.5 the verdict is decided: no more seeds are needed
    assert r.seeds == 3 and r.verdict == "pass" and result.seed_rounds.stop == "conclusive"
    assert replay(result) == (result.ratios, result.verdict)


def test_adaptive_seeds_stop_at_the_cap_and_say_so(fitted):
    req = _req({"estimator": {"name": "infonce", "train": {"batch_size": 64, "steps": 300,
                                                           "lr": 5e-3, "eval_samples": 256}},
                "dataset": {"name": "gaussian", "dim": 2, "mi": 0.5},
                "tests": [{"kind": "ground_truth"}], "seeds": [0], "max_seeds": 2})
    result = evaluate(req)
    assert fitted == [[0], [1]]
    assert result.seed_rounds.stop == "cap_reached" and result.verdict == "inconclusive"
    assert result.ratios[0].reason_code == "too_few_seeds"


def test_training_curve_and_plateau_are_recorded():
    req = _req({"estimator": {"name": "nwj", "train": {"batch_size": 32, "steps": 80,
                                                       "eval_samples": 64,
                                                       "until_converged": True,
                                                       "max_steps": 160}},
                "dataset": {"name": "gaussian", "dim": 2, "mi": 1.0},
                "tests": [{"kind": "ground_truth"}], "seeds": [0], "max_seeds": 1})
    (e,) = evaluate(req).estimates
    steps = [s for s, _ in e.curve]
    assert steps == sorted(steps) and steps[-1] == e.steps and 80 <= e.steps <= 160
    assert e.converged is not None and e.convergence
    assert len(e.curve) >= 40


def test_same_class_pairs_ground_truth_uses_the_known_mi():
    from micheck.workers.data import load_labels
    from micheck.workers.data.pairs import class_entropy

    req = _req({"estimator": {"name": "infonce", "critic": {"width": 0.25},
                              "train": {"batch_size": 16, "steps": 10, "eval_samples": 32}},
                "dataset": {"name": "mnist", "pairs": "same_class", "classes": [3, 8],
                            "copies": 2},
                "tests": [{"kind": "ground_truth"}], "seeds": [0], "max_seeds": 1})
    try:
        labels = load_labels(req.dataset, "test")
    except DataNotFound as exc:
        pytest.skip(str(exc))
    truth = 2 * class_entropy([int((labels == c).sum()) for c in (3, 8)])  # test split
    result = evaluate(req, device="cpu")
    (e,) = result.estimates
    assert e.true_mi == pytest.approx(truth) and e.mi_test is not None
    (r,) = result.ratios
    assert r.test == "ground_truth" and r.per_seed == pytest.approx([e.mi_test / truth])
    assert result.provenance.definition_versions["generator:same_class"] == "1"


def test_noisy_class_pairs_ground_truth_uses_the_channel_mi():
    from micheck.workers.data import load_labels

    from micheck.datasets.class_channel import channel_mi

    req = _req({"estimator": {"name": "infonce", "critic": {"width": 0.25},
                              "train": {"batch_size": 16, "steps": 10, "eval_samples": 32}},
                "dataset": {"name": "mnist", "pairs": "noisy_class", "class_noise": 0.2,
                            "classes": [3, 8, 5], "copies": 2},
                "tests": [{"kind": "ground_truth"}], "seeds": [0], "max_seeds": 1})
    try:
        labels = load_labels(req.dataset, "test")
    except DataNotFound as exc:
        pytest.skip(str(exc))
    truth = 2 * channel_mi([int((labels == c).sum()) for c in (3, 8, 5)], 0.2)
    result = evaluate(req, device="cpu")
    (e,) = result.estimates
    assert e.true_mi == pytest.approx(truth) and e.mi_test is not None
    (r,) = result.ratios
    assert r.per_seed == pytest.approx([e.mi_test / truth])
    assert result.provenance.definition_versions["generator:noisy_class"] == "1"


def test_a_bmi_task_runs_ground_truth_against_its_own_mi():
    import math

    req = _req({"estimator": {"name": "infonce", "train": {"batch_size": 32, "steps": 20,
                                                           "eval_samples": 256}},
                "dataset": {"name": "student_identity", "dim": 2, "dof": 2},
                "tests": [{"kind": "ground_truth"}], "seeds": [0], "max_seeds": 1})
    result = evaluate(req, device="cpu")
    (e,) = result.estimates
    assert e.true_mi == pytest.approx(math.log(2) - 0.5)  # not dataset.mi (2.0)
    (r,) = result.ratios
    assert r.per_seed == pytest.approx([e.mi_test / e.true_mi])
    assert result.provenance.definition_versions["generator:student_identity"] == "1"


def test_more_seeds_train_only_the_new_seeds_and_look_once_more(fitted):
    """A finished evaluation left inconclusive at its cap: more seeds train only the new
    ones, pool them with the stored estimates and decide at one more look, recorded as
    unplanned (alpha from the reserve); the first result is not touched."""
    req = _req({"estimator": {"name": "infonce", "train": {"batch_size": 64, "steps": 300}},
                "dataset": {"name": "gaussian", "dim": 2, "mi": 0.5},
                "tests": [{"kind": "ground_truth"}], "seeds": [0], "max_seeds": 2})
    first = evaluate(req)
    assert first.verdict == "inconclusive" and first.ratios[0].reason_code == "too_few_seeds"
    more = req.model_copy(update={"seeds": [0, 1, 2, 3], "max_seeds": 4})
    result = evaluate(more, prior=first)
    assert fitted == [[0], [1], [2, 3]]  # the stored seeds are not trained again
    assert result.provenance.seeds == [0, 1, 2, 3]
    assert sorted(e.seed for e in result.estimates) == [0, 1, 2, 3]
    (r,) = result.ratios
    assert r.seeds == 4 and r.verdict == "pass" and r.look == 3
    looks = result.seed_rounds.looks
    assert [x.look for x in looks] == [1, 2, 3] and [x.planned for x in looks] == [
        True, True, False]
    assert looks[-1].alpha < looks[0].alpha and looks[-1].decided == 1
    assert result.seed_rounds.rounds == [[0], [1], [2, 3]]
    assert first.ratios[0].verdict == "inconclusive"  # the prior is unchanged
    # every row follows from the stored per-seed estimates and the recorded looks alone
    assert replay(result) == (result.ratios, result.verdict)
    assert replay(first) == (first.ratios, first.verdict)


def test_more_seeds_refuse_a_result_without_looks(fitted):
    req = _req({"estimator": {"name": "infonce", "train": {"batch_size": 64, "steps": 300}},
                "dataset": {"name": "gaussian", "dim": 2, "mi": 0.5},
                "tests": [{"kind": "ground_truth"}], "seeds": [0], "max_seeds": 1})
    first = evaluate(req)
    legacy = first.model_copy(update={"seed_rounds": first.seed_rounds.model_copy(
        update={"looks": []})})
    with pytest.raises(SpecError, match="before looks were recorded"):
        evaluate(req.model_copy(update={"seeds": [0, 1], "max_seeds": 2}), prior=legacy)
    with pytest.raises(SpecError, match="no new seed"):
        evaluate(req, prior=first)
