"""The contract: validation that needs no data, canonical hashing, and its light imports."""

import subprocess
import sys

import pytest

from micheck.contract import EvaluationRequest
from micheck.errors import SpecError
from micheck.spec import parse_spec

BASE = {"estimator": {"name": "smile"}, "dataset": {"name": "mnist"},
        "tests": [{"kind": "baseline", "rows": [0, 28]}]}


def with_(**changes):
    spec = {k: (dict(v) if isinstance(v, dict) else list(v)) for k, v in BASE.items()}
    spec.update(changes)
    return spec


def test_defaults_are_filled_and_aliases_resolved():
    req = parse_spec(with_(estimator={"name": "CPC"}))
    assert req.estimator.name == "infonce"
    req = parse_spec(BASE)
    assert req.estimator.params == {"tau": 5.0, "objective": "js"}
    assert req.seeds == [0, 1, 2] and req.estimator.critic.kind == "separable"
    assert req.seed_cap == 5 and req.estimator.train.eval_samples is None


@pytest.mark.parametrize(("spec", "message"), [
    (with_(estimator={"name": "smile", "params": {"tau": "inf"}}), None),
    (with_(estimator={"name": "smile", "params": {"tau": "big"}}), "tau must be a number"),
    (with_(estimator={"name": "alpha", "params": {"alpha": 1.5}}), r"params.alpha: Input should be less than or equal to 1"),
    (with_(estimator={"name": "nwj", "params": {"tau": 1}}), "nwj takes no parameter"),
    (with_(tests=[{"kind": "ground_truth"}]), "needs a data set with known MI"),
    (with_(dataset={"name": "gaussian"}), "only ground_truth applies"),
    (with_(dataset={"name": "gaussian", "dim": 1, "mi": 50}), "nats per dimension"),
    (with_(seeds=[1, 1]), "seeds must be distinct"),
    (with_(tests=[{"kind": "additivity", "transform": "rotation", "rows": [3]}]),
     "rows apply only"),
    (with_(estimator={"name": "smile", "critic": {"arch": "mlp"}}), "does not fit mnist"),
    (with_(extra=1), "extra"),
    (with_(estimator={"name": "smile", "critic": {"kind": "joint", "block": 24}}),
     "critic.block 24 must divide train.batch_size 64"),
    (with_(estimator={"name": "smile", "critic": {"kind": "joint", "block": 1}}),
     "greater than or equal to 2"),
    (with_(estimator={"name": "gm", "critic": {"block": 16}}),
     "gm \\(generative\\) scores no pairs"),
])
def test_validation_names_the_problem(spec, message):
    if message is None:
        assert parse_spec(spec).estimator.params["tau"] == "inf"
        return
    with pytest.raises(SpecError, match=message):
        parse_spec(spec)


def test_spec_hash_ignores_label_and_force_but_not_content():
    a = parse_spec(BASE)
    b = parse_spec(with_(label="nightly", force=True))
    c = parse_spec(with_(seeds=[0, 1]))
    assert a.spec_hash() == b.spec_hash() != c.spec_hash()
    explicit = parse_spec(with_(estimator={"name": "smile", "params": {"tau": 5}}))
    assert explicit.spec_hash() == a.spec_hash()  # defaults spelled out hash the same


def test_round_trips_through_json():
    req = parse_spec(BASE)
    assert EvaluationRequest.model_validate_json(req.model_dump_json()) == req


def test_contract_and_client_import_neither_torch_nor_fastapi():
    code = ("import sys, micheck, micheck.contract, micheck.cli, micheck.clients.client; "
            "micheck.cli.build_parser(); "
            "print(sorted(m for m in ('torch', 'fastapi') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "[]"


def test_yaml_exponent_floats_are_numbers_and_types_are_strict(tmp_path):
    from micheck.spec import load_spec

    spec = tmp_path / "spec.yaml"
    spec.write_text("estimator: {name: smile, train: {lr: 1e-4}}\ndataset: {name: mnist}\n"
                    "tests: [{kind: baseline, tolerance: 2E-1}]\n")
    req = load_spec(spec)
    assert req.estimator.train.lr == 1e-4 and req.tests[0].tolerance == 0.2
    for bad, field in ((with_(seeds=[True]), "seeds.0"),
                       (with_(estimator={"name": "smile", "train": {"steps": "10"}}),
                        "estimator.train.steps"),
                       (with_(estimator={"name": "smile", "train": {"lr": float("nan")}}),
                        "finite number")):
        with pytest.raises(SpecError, match=field):
            parse_spec(bad)


def test_a_stored_request_reads_back_even_if_todays_rules_reject_it():
    from micheck.contract import stored_request

    data = parse_spec(BASE).model_dump(mode="json")
    data["estimator"]["train"]["steps"] = 10**9  # beyond today's limit: stored long ago
    req = stored_request(data)
    assert req.estimator.train.steps == 10**9 and req.estimator.name == "smile"
    assert req.tests[0].kind == parse_spec(BASE).tests[0].kind
    assert stored_request(parse_spec(BASE).model_dump(mode="json")) == parse_spec(BASE)


GRAD = {"estimator": {"name": "mige"}, "dataset": {"name": "gaussian", "dim": 5},
        "tests": [{"kind": "mi_gradient", "rho": [0.0, 0.5, -0.9]}]}


def grad_with(**changes):
    spec = {k: (dict(v) if isinstance(v, dict) else list(v)) for k, v in GRAD.items()}
    spec.update(changes)
    return spec


def test_mi_gradient_and_mige_are_accepted_with_their_defaults():
    req = parse_spec(GRAD)
    assert req.tests[0].rho == [0.0, 0.5, -0.9] and req.tests[0].effective_tolerance == 0.2
    assert req.estimator.params == {"samples": 1000, "eigen_ratio": 0.99, "n_eigen": 0,
                                    "bandwidth_scale": 1.0, "projection": 0}
    assert parse_spec(grad_with(tests=[{"kind": "mi_gradient"}])).tests[0].rho is None
    both = parse_spec(grad_with(estimator={"name": "mine_f"},
                                tests=[{"kind": "ground_truth"}, {"kind": "mi_gradient"}]))
    assert both.estimator.name == "nwj"


@pytest.mark.parametrize(("spec", "message"), [
    (grad_with(tests=[{"kind": "mi_gradient", "rho": [0.5, 1.0]}]), r"\|rho\| < 1"),
    (grad_with(tests=[{"kind": "mi_gradient", "rho": [-1.5]}]), "outside"),
    (grad_with(tests=[{"kind": "mi_gradient", "rho": []}]), "must not be empty"),
    (grad_with(tests=[{"kind": "mi_gradient", "rho": [0.2, 0.2]}]), "distinct"),
    (grad_with(tests=[{"kind": "ground_truth", "rho": [0.2]}]), "only to the mi_gradient"),
    (grad_with(tests=[{"kind": "ground_truth"}]), "its one test is mi_gradient"),
    (grad_with(dataset={"name": "mnist"}), "correlated Gaussian"),
    (grad_with(estimator={"name": "gm"}), "gm cannot run mi_gradient"),
    (grad_with(estimator={"name": "mige", "params": {"samples": 2}}), "params.samples"),
    (grad_with(estimator={"name": "mige", "params": {"eigen_ratio": 0}}), "eigen_ratio"),
    (grad_with(estimator={"name": "mige", "params": {"projection": -1}}), "projection"),
    (grad_with(estimator={"name": "mige", "params": {"tau": 1}}), "mige takes no parameter"),
])
def test_mi_gradient_validation_names_the_problem(spec, message):
    with pytest.raises(SpecError, match=message):
        parse_spec(spec)


def test_rho_changes_the_spec_hash():
    a = parse_spec(GRAD)
    b = parse_spec(grad_with(tests=[{"kind": "mi_gradient", "rho": [0.0, 0.5]}]))
    assert a.spec_hash() != b.spec_hash()


PAIRS = {"estimator": {"name": "infonce"},
         "dataset": {"name": "mnist", "pairs": "same_class", "classes": [0, 1, 2], "copies": 2},
         "tests": [{"kind": "ground_truth"}]}


def test_same_class_pairs_allow_ground_truth_on_images():
    req = parse_spec(PAIRS)
    assert req.dataset.copies == 2 and req.dataset.is_image
    assert req.generators() == ["same_class"]
    assert parse_spec(BASE).generators() == ["rows"]
    assert parse_spec(GRAD).generators() == ["mi_gradient"]


@pytest.mark.parametrize(("dataset", "tests", "message"), [
    ({"classes": [0, 12]}, None, r"unknown class\(es\) \[12\]: mnist has classes 0..9"),
    ({"copies": 0}, None, "dataset.copies"),
    ({"classes": [3]}, None, "at least 2 classes"),
    ({"classes": [3, 3]}, None, "distinct"),
    ({"pairs": None}, None, "classes and copies apply only"),
    ({"name": "gaussian", "classes": None, "copies": 1}, None, "needs an image data set"),
    ({}, [{"kind": "baseline"}], "only ground_truth applies"),
])
def test_same_class_validation_names_the_problem(dataset, tests, message):
    spec = {**PAIRS, "dataset": {**PAIRS["dataset"], **dataset}}
    if tests is not None:
        spec["tests"] = tests
    with pytest.raises(SpecError, match=message):
        parse_spec(spec)


def test_generator_versions_are_in_the_spec_hash(monkeypatch):
    from micheck import definitions

    before = parse_spec(PAIRS).spec_hash()
    monkeypatch.setitem(definitions.GENERATOR_VERSIONS, "same_class", "2")
    assert parse_spec(PAIRS).spec_hash() != before
    assert parse_spec(PAIRS).spec_hash() != parse_spec(BASE).spec_hash()


def test_critic_block_is_accepted_for_joint_and_separable_critics_and_hashed():
    plain = parse_spec(BASE)
    blocked = [parse_spec(with_(estimator={"name": "smile", "critic": {"kind": kind,
                                                                      "block": 16}}))
               for kind in ("joint", "separable")]
    assert [r.estimator.critic.block for r in blocked] == [16, 16]
    # block: null spelled out is the default: the key of every stored spec is unchanged
    none = parse_spec(with_(estimator={"name": "smile", "critic": {"block": None}}))
    assert none.spec_hash() == plain.spec_hash()
    assert "block" not in plain.canonical()["estimator"]["critic"]
    # a block is part of what ran: recorded in the request and in the key
    separable = blocked[1]
    assert separable.canonical()["estimator"]["critic"]["block"] == 16
    assert separable.spec_hash() != plain.spec_hash()
    full_batch = parse_spec(with_(estimator={"name": "smile", "critic": {"block": 64}}))
    assert full_batch.spec_hash() not in (plain.spec_hash(), separable.spec_hash())


@pytest.mark.parametrize(("spec", "steps"), [
    # paper 002 App. B.2: 2 epochs at batch 64 for critics, 10 for the VAE
    (BASE, 1875),
    (with_(estimator={"name": "gm"}), 9375),
    (with_(estimator={"name": "mine", "train": {"batch_size": 128}}), 938),
    (with_(dataset={"name": "mnist", "train_size": 6400}), 200),
    (with_(dataset={"name": "cifar10"}), 1563),
    (with_(estimator={"name": "mine", "train": {"steps": 300}}), 300),  # given: kept
    (with_(dataset={"name": "gaussian"}, tests=[{"kind": "ground_truth"}]), 1000),
])
def test_omitted_steps_on_images_are_the_papers_epochs(spec, steps):
    req = parse_spec(spec)
    assert req.estimator.train.steps == steps
    # stored as explicit steps: the request reads back, and hashes, the same
    again = EvaluationRequest.model_validate(req.model_dump(mode="json"))
    assert again.estimator.train.steps == steps and again.spec_hash() == req.spec_hash()


def test_an_unknown_well_formed_name_with_a_block_is_left_to_the_service():
    # a plug-in's name on a client without the plug-in: no KeyError escapes validation
    req = parse_spec(with_(estimator={"name": "my_plugin", "critic": {"block": 16}}))
    assert req.estimator.name == "my_plugin" and not req.estimator.known
    with pytest.raises(SpecError, match="must divide"):
        parse_spec(with_(estimator={"name": "my_plugin", "critic": {"block": 24}}))
