"""The estimator registry: entries with typed strict params, public registration, and
deduplication keys that did not move when params became models."""

from __future__ import annotations

import pytest
from pydantic import Field

from micheck import estimators
from micheck.contract import EvaluationRequest
from micheck.estimators import EstimatorEntry, Params, register
from micheck.spec import parse_spec

# spec_hash of these specs, pinned: the registry kept main's keys (commit 64516b9); they
# changed once on purpose when the keys took in the task generators' versions and the
# same-class pair options (mige merge), and when the engine's definition became v3 (its
# version is part of every key); a deliberate change of the protocol's keys updates them here
# existing dedup keys must not change for unchanged estimators. Image specs name their steps:
# since omitted steps on images mean the paper's epochs (1,875 on MNIST), an old request that
# omitted them ran 1,000 steps, and that is the spec whose key is pinned
OLD_DEFAULT = {"train": {"steps": 1000}}
STABLE = [
    ({"estimator": {"name": "smile", **OLD_DEFAULT}, "dataset": {"name": "mnist"},
      "tests": [{"kind": "baseline", "rows": [0, 28]}]},
     "0c52febc8481eed137e355b54a03a492339e8408d6c155869066dd07c73e9bf9"),
    ({"estimator": {"name": "smile", "params": {"tau": "inf"}, **OLD_DEFAULT},
      "dataset": {"name": "mnist"},
      "tests": [{"kind": "data_processing", "rows": [14]}, {"kind": "additivity"}],
      "seeds": [0, 1]},
     "edead7733b750e436f845bafb819b7a7a1e364f0d1cbee05f0dd6f0fc5e00202"),
    ({"estimator": {"name": "mine", "params": {"ema_rate": 0.05}, **OLD_DEFAULT},
      "dataset": {"name": "cifar10"}, "tests": [{"kind": "independence"}]},
     "a079e2318b38a1a14ce27b021416458cc1fe43b8a93127b59f279648b29bf969"),
    ({"estimator": {"name": "gm"}, "dataset": {"name": "gaussian", "dim": 10, "mi": 4.0},
      "tests": [{"kind": "ground_truth", "tolerance": 0.2}]},
     "9b6c57bea69401a825d35c602014edf05203e608837f4aa9a8cfb9fb5927189e"),
    ({"estimator": {"name": "alpha", "params": {"alpha": 0.25},
                    "train": {"steps": 50, "batch_size": 32}},
      "dataset": {"name": "fashion_mnist", "train_size": 1000}, "tests": [{"kind": "baseline"}]},
     "0cb37dfdba1a7bc946709026d8f1eb9bbed008cb79e4f5e451bdb2b43b984b8b"),
    ({"estimator": {"name": "cpc"}, "dataset": {"name": "cubic"},
      "tests": [{"kind": "ground_truth"}]},
     "d320b6c97b0ae472db69b8b4363f23ca9b454e44677e8ce0bfa7261baf6343cd"),
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
        assert entry.family in ("discriminative", "generative", "gradient", "point")
        assert entry.version
        # a point estimator defined by an interface cites the convention it follows
        refs = ("Eq.", "Lemma", "Sec.") + (("convention",) if entry.family == "point" else ())
        assert any(ref in entry.definition for ref in refs), entry.name
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
