# ruff: noqa: F811  (pytest fixtures imported from tests.plugin_dists)
"""The plug-in loader (micheck.estimators.plugins) on real installed distributions
(dist-info folders on sys.path, read by importlib.metadata), and what the protocol does
with a plug-in's name where it is not installed (a CI box, the service)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from micheck import estimators
from micheck.contract import EvaluationRequest, Provenance
from micheck.definitions import definition_versions
from micheck.estimators import plugins
from tests.plugin_dists import (  # noqa: F401  (fixtures)
    EXAMPLE_SRC,
    broken_site,
    example_pythonpath,
    example_site,
    write_example,
)

SPEC = {"estimator": {"name": "dv_clipped", "params": {"clip": 3.0}},
        "dataset": {"name": "gaussian", "dim": 2, "mi": 1.0},
        "tests": [{"kind": "ground_truth"}]}


def test_the_example_loads_with_its_origin(example_site):
    loaded = plugins.load()
    assert loaded.broken == ()
    (entry,) = loaded.entries
    assert entry.name == "dv_clipped" and entry.provider == "micheck-plugin-example==0.1.0"
    assert estimators.get("dv_clipped") is entry  # the same registry as the built-ins
    assert entry.parse_params({}).model_dump() == {"clip": 10.0}
    assert plugins.load() is loaded  # once per process
    versions = definition_versions("dv_clipped", ["gaussian"])
    assert versions["dv_clipped"] == "1"
    assert versions["plugin"] == "micheck-plugin-example==0.1.0"


def test_broken_plugins_are_data_with_a_reason(broken_site):
    loaded = plugins.load()
    names = sorted(e.name for e in loaded.entries)
    # bounds are checked by the worker; these entries themselves are fine
    assert names == ["bad_bound_import", "bad_factory", "bad_nan", "bad_raises", "bad_shape",
                     "dv_clipped"]
    why = {b.name: b.reason for b in loaded.broken}
    assert set(why) == {"bad_import", "bad_object", "bad_name", "dv"}
    assert why["bad_import"].startswith("ImportError: this plug-in needs a package")
    assert "not a micheck.estimators.EstimatorEntry" in why["bad_object"]
    assert "named 'bad_name' but its entry 'something_else'" in why["bad_name"]
    assert why["dv"] == "ValueError: the name 'dv' is taken by built-in"
    assert estimators.get("dv").origin is None  # the built-in stays
    assert all(b.distribution == "micheck-broken-plugins" and b.version == "2.0.1"
               for b in loaded.broken)


def test_report_and_the_entry_rebuilt_from_it(example_site):
    report = plugins.report(plugins.load())
    (item,) = report["estimators"]
    assert item["distribution"] == "micheck-plugin-example"
    assert item["params"]["properties"]["clip"]["default"] == 10.0
    entry = plugins.entry_from_report(item)
    assert entry.provider == "micheck-plugin-example==0.1.0" and entry.version == "1"
    # names checked, defaults filled in, plain numbers typed and bounded as declared
    assert entry.parse_params({}).model_dump() == {"clip": 10.0}
    assert entry.parse_params({"clip": 5}).model_dump() == {"clip": 5.0}
    with pytest.raises(ValueError, match=r"takes no parameter\(s\) \['clipp'\]"):
        entry.parse_params({"clipp": 1.0})
    with pytest.raises(ValueError, match="params.clip: Input should be a valid number"):
        entry.parse_params({"clip": True})
    with pytest.raises(ValueError, match="params.clip: Input should be greater than 0"):
        entry.parse_params({"clip": 0})


def test_a_richer_schema_is_left_to_the_worker():
    smile = estimators.get("smile")  # tau: a number or 'inf' (anyOf); objective: an enum
    entry = plugins.entry_from_report({
        "name": "smile_copy", "version": "1", "distribution": "d", "distribution_version": "1",
        "params": smile.params_schema()})
    assert entry.parse_params({}).model_dump() == {"tau": 5.0, "objective": "js"}
    assert entry.parse_params({"tau": "anything"}).model_dump()["tau"] == "anything"
    with pytest.raises(ValueError, match="params.objective: Input should be 'js' or 'direct'"):
        entry.parse_params({"objective": "neither"})


def test_a_plugin_name_passes_the_contract_where_it_is_not_installed():
    req = EvaluationRequest.model_validate({**SPEC, "estimator": {
        "name": "Not_Installed_Here", "params": {"anything": [1, 2]}}})
    assert req.estimator.name == "not_installed_here" and not req.estimator.known
    assert req.estimator.params == {"anything": [1, 2]}  # for the worker to check
    images = EvaluationRequest.model_validate({  # the paper's schedule: a critic's epochs
        "estimator": {"name": "not_installed_here", "train": {"batch_size": 64}},
        "dataset": {"name": "mnist"}, "tests": [{"kind": "baseline"}]})
    assert images.estimator.train.steps == EvaluationRequest.model_validate({
        "estimator": {"name": "infonce", "train": {"batch_size": 64}},
        "dataset": {"name": "mnist"}, "tests": [{"kind": "baseline"}]}).estimator.train.steps
    with pytest.raises(ValueError, match="unknown estimator 'no such!'"):
        EvaluationRequest.model_validate({**SPEC, "estimator": {"name": "no such!"}})
    with pytest.raises(ValueError, match="params.tau"):  # built-ins stay checked at once
        EvaluationRequest.model_validate({**SPEC, "estimator": {"name": "smile",
                                                                "params": {"tau": "x"}}})


def test_provenance_names_the_plugin():
    prov = {"code_version": "x", "seeds": [0], "device": "cpu", "torch_version": "2",
            "started_at": "2026-11-29T00:00:00Z", "finished_at": "2026-11-29T00:00:01Z",
            "wall_seconds": 1.0}
    old = Provenance.model_validate({**prov, "definition_versions": {"engine": "3", "dv": "1"}})
    assert old.plugin is None  # rows stored before plug-ins read as built-ins
    new = Provenance.model_validate({**prov, "definition_versions": {
        "engine": "3", "dv_clipped": "1", "plugin": "micheck-plugin-example==0.1.0"}})
    assert new.plugin == "micheck-plugin-example==0.1.0"


def test_loading_the_example_keeps_a_process_torch_free(tmp_path: Path):
    """What a worker's parent does at registration: it must not import torch."""
    write_example(tmp_path)
    code = ("import sys\nfrom micheck.estimators import plugins\n"
            "loaded = plugins.load()\nassert [e.name for e in loaded.entries] == "
            "['dv_clipped'], loaded\nassert 'torch' not in sys.modules\nprint('ok')")
    env = {**os.environ, "PYTHONPATH": example_pythonpath(tmp_path)}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr
    assert EXAMPLE_SRC.is_dir()
