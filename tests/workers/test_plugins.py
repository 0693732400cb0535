# ruff: noqa: F811  (pytest fixtures imported from tests.service.support, tests.plugin_dists)
"""Plug-in estimators in the worker: the real engine trains with the example plug-in on
a tiny Gaussian task, and each way a plug-in can break fails its evaluation with the
reason, through the real job glue and SQLite, while the process goes on."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # tests.* under plain pytest

from micheck.workers.engine import evaluate
from micheck.workers.job import execute

from micheck.contract import EvaluationRequest, EvaluationResult
from micheck.errors import PluginFailed, SpecError
from micheck.estimators import plugins
from micheck.render.junit import properties
from micheck.storage import store
from micheck.storage.db import Database
from micheck.storage.models import Evaluation
from tests.plugin_dists import broken_site, example_site, isolated_registry  # noqa: F401
from tests.service.support import redis_server, service_settings  # noqa: F401


def _request(name: str, params: dict | None = None, steps: int = 3, seeds: int = 1
             ) -> EvaluationRequest:
    return EvaluationRequest.model_validate({
        "estimator": {"name": name, "params": params or {},
                      "critic": {"hidden": 32, "embed_dim": 8},
                      "train": {"batch_size": 32, "steps": steps, "lr": 5e-3,
                                "eval_samples": 256}},
        "dataset": {"name": "gaussian", "dim": 2, "mi": 1.0},
        "tests": [{"kind": "ground_truth"}], "seeds": list(range(seeds)), "max_seeds": seeds})


def test_the_engine_trains_with_the_example_plugin(example_site):
    # validated where the plug-in was not loaded yet (a service or CI box): names only
    req = _request("dv_clipped", {"clip": 20.0}, steps=100, seeds=5)
    assert not req.estimator.known
    with isolated_registry():  # the worker's process
        result = evaluate(req, device="cpu")
        key = result.request.spec_hash()
    # a client without the plug-in reads and renders it, with the same deduplication key
    result = EvaluationResult.model_validate_json(result.model_dump_json())
    assert not result.request.estimator.known
    props = properties(result)
    assert props["spec_hash"] == key == result.spec_hash()
    assert props["definition.plugin"] == "micheck-plugin-example==0.1.0"
    assert result.provenance.plugin == "micheck-plugin-example==0.1.0"
    assert result.provenance.definition_versions["dv_clipped"] == "1"
    # a 2-d Gaussian with I = 1 nat: a lower bound, learnt in 100 steps; five seeds (one
    # stack), so what is asserted holds for the estimator, not for one trajectory: the
    # median lies in (0.4, 1.2) (measured on the 2-core CPU: 0.71-0.84 over seeds 0-4)
    values = sorted(e.mi_test for e in result.estimates)
    assert len(values) == 5 and 0.4 < values[2] < 1.2, values
    assert result.request.estimator.params == {"clip": 20.0}


def test_the_plugins_own_model_checks_its_params_in_the_worker(example_site):
    req = _request("dv_clipped", {"clip": "wide"})  # a service only checks the names
    with pytest.raises(SpecError, match=r"dv_clipped \(micheck-plugin-example==0.1.0\): "
                                        r"params.clip: Input should be a valid number"):
        evaluate(req, device="cpu")


def test_an_estimator_nobody_installed_is_a_spec_error(example_site):
    with pytest.raises(SpecError, match="unknown estimator 'magic2': not built in and no "
                                        "plug-in installed on this worker registers it"):
        evaluate(_request("magic2"), device="cpu")


@pytest.mark.parametrize(("name", "reason"), [
    ("bad_raises", "its objective raised RuntimeError: boom in the plug-in"),
    ("bad_nan", "its objective returned NaN or inf from finite scores"),
    ("bad_shape", r"its objective returned shape \(1, 32\); expected \(1,\) \(one value "
                  r"per stacked critic"),
    ("bad_factory", "building its bound raised ValueError: cannot build"),
    ("bad_bound_import", "importing its bound broken_plugins_nowhere:make raised "
                         "ModuleNotFoundError"),
    ("bad_import", r"plug-in 'bad_import' \(micheck-broken-plugins==2.0.1\) did not load: "
                   "ImportError: this plug-in needs a package not installed"),
])
def test_a_broken_plugin_fails_with_its_reason(broken_site, name, reason):
    with pytest.raises(PluginFailed, match=reason):
        evaluate(_request(name), device="cpu")


def test_a_value_that_is_nan_only_when_the_critic_diverged_is_not_blamed_on_the_plugin(
        broken_site):
    import torch
    from micheck.workers.bounds import make_bound

    evaluate(_request("dv_clipped", steps=1), device="cpu")  # loads the bounds
    bound = make_bound("dv_clipped", {})
    scores = torch.randn(2, 8, 8)
    scores[1, 0, 0] = math.nan  # the second critic diverged: its value may be NaN
    value = bound.value(scores)
    assert math.isfinite(value[0].item()) and math.isnan(value[1].item())


@pytest.fixture
def db(service_settings):
    d = Database(service_settings)
    yield d
    d.dispose()


def _submit(db: Database, req: EvaluationRequest) -> str:
    with db.session() as s:
        return store.create_evaluation(s, req, owner="alice", queue="cpu", job_timeout_s=60).id


def test_the_job_fails_a_broken_plugins_evaluation_and_runs_the_next(broken_site, db,
                                                                       service_settings):
    plugins.load()  # the service knows them from this worker's report (tests/service)
    bad = _submit(db, _request("bad_nan"))
    good = _submit(db, _request("dv_clipped", steps=20))
    assert execute(bad, evaluate, service_settings, db) == "failed"
    with db.session() as s:
        row = s.get(Evaluation, bad)
        assert (row.attempts, row.error_code) == (1, "plugin_failed")  # no retry
        assert row.error_message == ("plug-in estimator 'bad_nan' (micheck-broken-plugins=="
                                     "2.0.1): its objective returned NaN or inf from finite "
                                     "scores")
    assert execute(good, evaluate, service_settings, db) == "succeeded"
    with db.session() as s:
        result = store.load_result(s, s.get(Evaluation, good))
    assert result.provenance.plugin == "micheck-plugin-example==0.1.0"


def test_micheck_run_names_the_broken_plugin_in_one_line(broken_site, tmp_path, capsys):
    from micheck.cli import main

    spec = tmp_path / "spec.json"
    spec.write_text(_request("bad_shape").model_dump_json())
    assert main(["run", str(spec), "--quiet"]) == 3
    err = capsys.readouterr().err
    assert err.startswith("micheck: plug-in estimator 'bad_shape' (micheck-broken-plugins=="
                          "2.0.1): its objective returned shape (1, 32)")
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
