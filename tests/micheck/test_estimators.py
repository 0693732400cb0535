"""The estimator registry: entries with typed strict params, public registration, and
deduplication keys that did not move when params became models."""

from __future__ import annotations

import pytest
from pydantic import Field

from micheck import estimators
from micheck.contract import EvaluationRequest
from micheck.estimators import EstimatorEntry, Params, register
from micheck.spec import parse_spec

# spec_hash of these specs computed by main's code without the registry (commit 64516b9);
# a deliberate change of the protocol's keys updates them here
# existing dedup keys must not change for unchanged estimators
STABLE = [
    ({"estimator": {"name": "smile"}, "dataset": {"name": "mnist"},
      "tests": [{"kind": "baseline", "rows": [0, 28]}]},
     "83ec63bf63de5e58a7e2bdd494c4208db6c123082ff1671564b2d0f70c74b1c2"),
    ({"estimator": {"name": "smile", "params": {"tau": "inf"}}, "dataset": {"name": "mnist"},
      "tests": [{"kind": "data_processing", "rows": [14]}, {"kind": "additivity"}],
      "seeds": [0, 1]},
     "162c8914e903964a7b97e53a825db6a2714d82ad1f54c119804d3d84e99b204a"),
    ({"estimator": {"name": "mine", "params": {"ema_rate": 0.05}},
      "dataset": {"name": "cifar10"}, "tests": [{"kind": "independence"}]},
     "e23aac237b089d4d4d2a82a37417b8055c5658a473be38dd15dbbd0d5b0e0195"),
    ({"estimator": {"name": "gm"}, "dataset": {"name": "gaussian", "dim": 10, "mi": 4.0},
      "tests": [{"kind": "ground_truth", "tolerance": 0.2}]},
     "1424279546876909dd37576e9ec87a03e1f99f227d98a0ba0af2b2090599bb9e"),
    ({"estimator": {"name": "alpha", "params": {"alpha": 0.25},
                    "train": {"steps": 50, "batch_size": 32}},
      "dataset": {"name": "fashion_mnist", "train_size": 1000}, "tests": [{"kind": "baseline"}]},
     "4401eafc00bdd77ec4b7298466caac9ff009af79c601f9a598f5413fe7d875a1"),
    ({"estimator": {"name": "cpc"}, "dataset": {"name": "cubic"},
      "tests": [{"kind": "ground_truth"}]},
     "95fd810298a70778cf7e4c98c1081192e1fbf4902413837fb74b8d08f6de443a"),
]


@pytest.mark.parametrize(("spec", "expected"), STABLE)
def test_spec_hash_is_unchanged_by_the_registry(spec, expected):
    req = parse_spec(spec)
    assert req.spec_hash() == expected
    # a stored request (data_dir: null, as every row written before) reads back the same
    stored = req.model_dump(mode="json")
    stored["dataset"].pop("data_root")
    stored["dataset"]["data_dir"] = None
    assert EvaluationRequest.model_validate(stored).spec_hash() == expected


def test_every_entry_has_a_cited_definition_and_bounded_numeric_params():
    for entry in estimators.entries():
        assert entry.family in ("discriminative", "generative") and entry.version
        assert any(ref in entry.definition for ref in ("Eq.", "Lemma", "Sec."))
        for name, field in entry.params_model.model_fields.items():
            if field.annotation in (int, float):
                bounds = {type(m).__name__ for m in field.metadata}
                assert bounds & {"Ge", "Gt"} and bounds & {"Le", "Lt"}, (entry.name, name)
        assert entry.params_model.model_config["strict"]
    assert estimators.get("CPC").name == "infonce" and estimators.get("mine_f").name == "nwj"


def test_defaults_are_stated_once_in_the_model_and_tau_inf_spellings():
    smile = estimators.get("smile")
    assert smile.parse_params({}).model_dump() == {"tau": 5.0, "objective": "js"}
    for spelling in ("inf", "Infinity", "+inf"):
        assert smile.parse_params({"tau": spelling}).tau == "inf"
    schema = smile.params_schema()
    assert schema["additionalProperties"] is False
    assert schema["properties"]["tau"]["default"] == 5.0


@pytest.mark.parametrize(("name", "params", "message"), [
    ("smile", {"tau": True}, "tau must be a number"),
    ("smile", {"tau": float("inf")}, "the string 'inf'"),
    ("alpha", {"alpha": "0.5"}, "params.alpha: Input should be a valid number"),
    ("alpha", {"alpha": {}}, "params.alpha"),
    ("mine", {"ema_rate": None}, "params.ema_rate"),
    ("gm", {"iw_samples": [1]}, "params.iw_samples"),
    ("gm", {"iw_samples": 1e400}, "params.iw_samples"),
    ("gm", {"iw_samples": 10**9}, "less than or equal to 1024"),
    ("nwj", {"tau": 1}, "nwj takes no parameter"),
])
def test_bad_params_name_the_parameter(name, params, message):
    with pytest.raises(ValueError, match=message):
        estimators.get(name).parse_params(params)


def test_a_module_outside_the_repo_can_register_an_estimator():
    class BetaParams(Params):
        beta: float = Field(1.0, gt=0, le=10)

    entry = register(EstimatorEntry("test_beta", "discriminative", "1",
                                    "a test estimator (no equation)", BetaParams,
                                    aliases=("tb",)))
    try:
        req = parse_spec({"estimator": {"name": "TB", "params": {"beta": 2}},
                          "dataset": {"name": "gaussian"}, "tests": [{"kind": "ground_truth"}]})
        assert req.estimator.name == "test_beta" and req.estimator.params == {"beta": 2.0}
        assert isinstance(req.estimator.typed_params, BetaParams)
        with pytest.raises(ValueError, match="already registered"):
            register(entry)
        with pytest.raises(ValueError, match="must match"):
            register(EstimatorEntry("Bad Name", "discriminative", "1", "x"))
    finally:
        estimators._ENTRIES.pop("test_beta")
        estimators._ALIASES.pop("tb")
