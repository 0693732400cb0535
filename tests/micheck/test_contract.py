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
    (with_(estimator={"name": "alpha", "params": {"alpha": 1.5}}), "alpha must lie in"),
    (with_(estimator={"name": "nwj", "params": {"tau": 1}}), "nwj takes no parameter"),
    (with_(tests=[{"kind": "ground_truth"}]), "needs a vector data set"),
    (with_(dataset={"name": "gaussian"}), "only ground_truth applies"),
    (with_(dataset={"name": "gaussian", "dim": 1, "mi": 50}), "nats per dimension"),
    (with_(seeds=[1, 1]), "seeds must be distinct"),
    (with_(tests=[{"kind": "additivity", "transform": "rotation", "rows": [3]}]),
     "rows apply only"),
    (with_(estimator={"name": "smile", "critic": {"arch": "mlp"}}), "does not fit mnist"),
    (with_(extra=1), "extra"),
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


def test_a_stored_request_reads_back_even_if_todays_rules_reject_it():
    from micheck.contract import stored_request

    data = parse_spec(BASE).model_dump(mode="json")
    data["estimator"]["train"]["steps"] = 10**9  # beyond today's limit: stored long ago
    req = stored_request(data)
    assert req.estimator.train.steps == 10**9 and req.estimator.name == "smile"
    assert req.tests[0].kind == parse_spec(BASE).tests[0].kind
    assert stored_request(parse_spec(BASE).model_dump(mode="json")) == parse_spec(BASE)
