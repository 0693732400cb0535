"""The test-kind and data-set registries: one entry per kind / data set, and the request
checked against them (not against Literals), with unchanged deduplication keys."""

from __future__ import annotations

import pytest

from micheck import datasets, testkinds, verdicts
from micheck.contract import DatasetSpec, EvaluationRequest, TestSpec
from micheck.datasets import DatasetEntry
from micheck.definitions import definition_versions
from micheck.errors import SpecError
from micheck.spec import parse_spec
from micheck.testkinds import Measurement, Point, TestKind

BASE = {"estimator": {"name": "smile"}, "dataset": {"name": "mnist"},
        "tests": [{"kind": "baseline", "rows": [0, 28]}]}


def test_every_kind_states_its_band_order_and_title():
    kinds = testkinds.entries()
    assert [k.name for k in kinds] == ["baseline", "independence", "data_processing",
                                       "additivity", "ground_truth", "mi_gradient"]
    assert len({k.order for k in kinds}) == len(kinds)
    for k in kinds:
        assert k.tolerance > 0 and k.title and k.critics
    # the verdict module's tables are read from the entries (thin delegation)
    assert {k.name: k.tolerance for k in kinds} == verdicts.DEFAULT_TOLERANCE
    assert verdicts.IDEAL["additivity"] == 2.0 and verdicts.IDEAL["baseline"] is None
    assert verdicts.band_of("data_processing", "rotation", None, 28, 0.15).high == 1.15
    assert verdicts.ideal_of("baseline", "rows", 28, 28) == 1.0


def test_unknown_kind_and_data_set_name_the_known_ones():
    with pytest.raises(SpecError, match="unknown test kind 'symmetry'; known: baseline"):
        parse_spec({**BASE, "tests": [{"kind": "symmetry"}]})
    with pytest.raises(SpecError, match="unknown data set 'svhn'; known: mnist"):
        parse_spec({**BASE, "dataset": {"name": "svhn"}})


def test_schemas_keep_the_enums_of_the_built_ins():
    schema = EvaluationRequest.model_json_schema()["$defs"]
    assert schema["TestSpec"]["properties"]["kind"]["enum"] == testkinds.names()
    assert schema["DatasetSpec"]["properties"]["name"]["enum"] == datasets.names()


class Symmetry(TestKind):
    """A toy kind: I(Y; X) / I(X; Y) on vector tasks, ideal 1."""

    name, order, tolerance, ideal, title = "symmetry", 50, 0.1, 1.0, "I(Y; X) / I(X; Y)"

    def fits(self, test, request):
        if request.dataset.is_image:
            raise ValueError("symmetry runs on vector tasks")

    def points(self, test, request):
        return [Point(test, None, Measurement("symmetry", None), Measurement("ground_truth",
                                                                           None))]


@pytest.fixture
def symmetry():
    kind = testkinds.register(Symmetry())
    yield kind
    testkinds._ENTRIES.pop(kind.name)


def test_a_new_kind_is_one_entry(symmetry):
    """Registered, a kind is accepted, planned, budgeted and keyed like the built-ins."""
    from micheck import budget
    from micheck.plan import plan

    req = parse_spec({"estimator": {"name": "nwj"}, "dataset": {"name": "gaussian"},
                      "tests": [{"kind": "symmetry"}]})
    assert [m.key(0) for m in plan(req)] == ["ground_truth/rows/t=None/seed=0",
                                            "symmetry/rows/t=None/seed=0"]
    assert req.tests[0].effective_tolerance == 0.1
    assert budget.estimate(req).trainings == 5  # one critic per point and seed (cap 5)
    with pytest.raises(SpecError, match=r"tests\[0\] \(symmetry\): symmetry runs on vector"):
        parse_spec({**BASE, "tests": [{"kind": "symmetry"}]})
    with pytest.raises(ValueError, match="already registered"):
        testkinds.register(Symmetry())


def test_kind_checks_keep_their_messages():
    cases = [
        ({"tests": [{"kind": "baseline", "rho": [0.5]}]}, "rho applies only to the "
         "mi_gradient test"),
        ({"estimator": {"name": "mige"}}, "mige estimates MI gradients only; its one test is "
         "mi_gradient"),
        ({"tests": [{"kind": "mi_gradient"}]}, "mi_gradient runs on the correlated Gaussian"),
        ({"tests": [{"kind": "data_processing", "offset": 28}]}, "offset 28 must be below"),
        ({"tests": [{"kind": "independence", "transform": "rotation"}]},
         "independence uses row masking only"),
        ({"tests": [{"kind": "baseline", "rows": [29]}]}, r"rows \[29\] outside 0..28"),
    ]
    for change, message in cases:
        with pytest.raises(SpecError, match=message):
            parse_spec({**BASE, **change})


def test_data_set_entries_hold_params_loader_version_and_arrival():
    by = {d.name: d for d in datasets.entries()}
    assert {d.arrival for d in by.values()} == {"wheel", "apt", "operator_dir", "synthetic"}
    assert by["cifar10"].takes("data_root") and not by["mnist"].takes("data_root")
    assert by["gaussian"].known_mi and by["mnist"].known_mi is None
    assert all(d.version == "1" and ":" in d.loader for d in by.values())
    spec = DatasetSpec(name="gaussian", dim=4, mi=1.5)
    assert spec.typed_params.model_dump() == {"dim": 4, "mi": 1.5}
    assert DatasetSpec(name="mnist", train_size=100).typed_params.model_dump() == {
        "train_size": 100, "pairs": None, "classes": None, "copies": 1, "class_noise": None}


def test_data_set_checks_keep_their_messages():
    for dataset, message in [
        ({"name": "gaussian", "dim": 1, "mi": 50}, "nats per dimension is above 12"),
        ({"name": "mnist", "data_root": "x"}, "data_root applies to cifar10 only, not mnist"),
        ({"name": "gaussian", "pairs": "same_class"}, "needs an image data set"),
        ({"name": "mnist", "pairs": "same_class", "classes": [0, 10]},
         r"unknown class\(es\) \[10\]: mnist has classes 0..9"),
    ]:
        with pytest.raises(SpecError, match=message):
            parse_spec({**BASE, "dataset": dataset, "tests": [{"kind": "ground_truth"}]})


def test_a_data_sets_version_enters_the_key_from_version_2(monkeypatch):
    req = parse_spec(BASE)
    before = req.spec_hash()
    old = datasets.get("mnist")
    bumped = DatasetEntry(**{**old.__dict__, "version": "2"})
    monkeypatch.setitem(datasets._ENTRIES, "mnist", bumped)
    assert datasets.versions("mnist") == {"dataset:mnist": "2"}
    assert req.spec_hash() != before
    monkeypatch.setitem(datasets._ENTRIES, "mnist", old)
    assert req.spec_hash() == before


def test_a_new_data_set_is_one_entry(monkeypatch):
    entry = DatasetEntry("wide_gaussian", "vector", "1", "Eq. 55 at d = 64", "synthetic",
                         datasets.get("gaussian").params_model,
                         "micheck.workers.data.synthetic:sample_gaussian", (64,),
                         known_mi="Eq. 55", y_map="identity")
    monkeypatch.setitem(datasets._ENTRIES, entry.name, entry)
    req = parse_spec({"estimator": {"name": "nwj"}, "tests": [{"kind": "ground_truth"}],
                      "dataset": {"name": "wide_gaussian", "dim": 64}})
    assert req.generators() == ["wide_gaussian"] and not req.dataset.is_image
    assert req.spec_hash() != parse_spec({**BASE, "dataset": {"name": "gaussian", "dim": 64},
                                          "tests": [{"kind": "ground_truth"}]}).spec_hash()
    with pytest.raises(SpecError, match="only ground_truth applies"):
        parse_spec({"estimator": {"name": "nwj"}, "dataset": {"name": "wide_gaussian"},
                    "tests": [{"kind": "baseline"}]})


def test_test_spec_kinds_validate_through_the_registry():
    assert TestSpec(kind="additivity").effective_tolerance == 0.3
    with pytest.raises(ValueError, match="unknown test kind"):
        TestSpec(kind="nope")


# ---- noisy-class pairs (issue 21): an image data set's known-MI pairs, typed --------------

NOISY = {**BASE, "dataset": {"name": "mnist", "pairs": "noisy_class", "class_noise": 0.3,
                             "copies": 4}, "tests": [{"kind": "ground_truth"}]}


def test_noisy_class_pairs_validate_through_the_registry_and_fit_ground_truth():
    req = parse_spec(NOISY)
    assert req.dataset.typed_params.model_dump() == {
        "train_size": None, "pairs": "noisy_class", "classes": None, "copies": 4,
        "class_noise": 0.3}
    assert req.generators() == ["noisy_class"]
    assert definition_versions("smile", req.generators())["generator:noisy_class"] == "1"
    cifar = parse_spec({**NOISY, "dataset": {"name": "cifar10", "data_root": "lab",
                                             "pairs": "noisy_class", "class_noise": 0.0}})
    assert cifar.dataset.typed_params.class_noise == 0.0
    with pytest.raises(SpecError, match="only ground_truth applies"):
        parse_spec({**NOISY, "tests": [{"kind": "baseline"}]})


def test_noisy_class_checks_name_the_problem():
    for dataset, message in [
        ({"name": "mnist", "pairs": "noisy_class"}, "needs class_noise"),
        ({"name": "mnist", "pairs": "same_class", "class_noise": 0.1},
         "class_noise applies only with pairs: noisy_class"),
        ({"name": "mnist", "class_noise": 0.1}, "class_noise applies only"),
        ({"name": "mnist", "pairs": "noisy_class", "class_noise": 0.9},
         r"below \(K-1\)/K = 0.9 for K = 10"),
        ({"name": "mnist", "pairs": "noisy_class", "class_noise": 0.5, "classes": [3, 8]},
         r"below \(K-1\)/K = 0.5 for K = 2"),
        ({"name": "gaussian", "pairs": "noisy_class", "class_noise": 0.1},
         "pairs: noisy_class needs an image data set"),
    ]:
        with pytest.raises(SpecError, match=message):
            parse_spec({**BASE, "dataset": dataset, "tests": [{"kind": "ground_truth"}]})


def test_class_noise_enters_the_key_only_when_set():
    same = {**BASE, "dataset": {"name": "mnist", "pairs": "same_class"},
            "tests": [{"kind": "ground_truth"}]}
    assert "class_noise" not in parse_spec(same).canonical()["dataset"]
    a, b = parse_spec(NOISY), parse_spec({**NOISY, "dataset": {**NOISY["dataset"],
                                                               "class_noise": 0.31}})
    assert a.canonical()["dataset"]["class_noise"] == 0.3
    assert len({a.spec_hash(), b.spec_hash(), parse_spec(same).spec_hash()}) == 3
