"""The issue's 'done when' for plug-ins, end to end: the example plug-in installed beside a
worker process (a real dist-info on its PYTHONPATH; the API process never loads it) is
listed by the API, runs from `micheck submit` in a process that does not have it (a CI
box), and its version is in the provenance; a broken plug-in fails its evaluation with
the reason and the worker goes on."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from redis import Redis

from micheck.cli import main
from micheck.up import Supervisor
from tests.e2e.test_stack import FAST
from tests.plugin_dists import example_pythonpath, write_broken, write_example

# one seed, a few steps: the verdict is inconclusive by rule (fewer than 3 seeds), exit 4
SPEC = {"estimator": {"name": "dv_clipped", "params": {"clip": 20.0},
                      "train": {"batch_size": 32, "steps": 100, "lr": 1e-3,
                                "eval_samples": 256}},
        "dataset": {"name": "gaussian", "dim": 2, "mi": 1.0},
        "tests": [{"kind": "ground_truth"}], "seeds": [0], "max_seeds": 1}


@pytest.fixture
def stack(tmp_path: Path, redis_server: str):
    site = tmp_path / "site-packages"
    site.mkdir()
    write_example(site)
    write_broken(site)
    Redis.from_url(redis_server).flushall()
    st = Supervisor(tmp_path / "var", redis_url=redis_server,
               env={**FAST, "PYTHONPATH": example_pythonpath(site)})
    yield st
    st.stop()
    for log in sorted(st.log_dir.glob("*.log")):  # shown by pytest only when a test fails
        print(f"==== {log.name}\n{log.read_text()[-4000:]}")


def _spec(tmp_path: Path, body: dict, name: str) -> str:
    path = tmp_path / name
    path.write_text(json.dumps(body))
    return str(path)


@pytest.mark.slow  # ~40 s: two processes, two spawned jobs
def test_example_plugin_from_micheck_submit_and_a_broken_one(stack, tmp_path, monkeypatch,
                                                             capsys):
    stack.start_api()
    worker = stack.start_worker()
    monkeypatch.setenv("MICHECK_URL", stack.url)
    monkeypatch.setenv("MICHECK_TOKEN", stack.token("ci"))
    with httpx.Client(base_url=stack.url, timeout=30) as c:
        from tests.service.support import wait_for

        listed = wait_for(lambda: {e["name"]: e for e in c.get("/v1/estimators").json()
                                   if e["origin"] != "built-in"} or None, timeout=60)
    assert listed["dv_clipped"]["origin"] == "micheck-plugin-example==0.1.0"
    assert "bad_raises" in listed and "bad_import" not in listed  # did not load

    out = tmp_path / "result.json"
    code = main(["submit", _spec(tmp_path, SPEC, "plugin.json"), "--wait", "--timeout", "300",
                 "--poll", "0.2", "--out", str(out)])
    text, err = capsys.readouterr()
    assert code == 4 and "dv_clipped {'clip': 20.0} on gaussian" in text, (text, err)
    result = json.loads(out.read_text())
    prov = result["provenance"]["definition_versions"]
    assert prov["plugin"] == "micheck-plugin-example==0.1.0" and prov["dv_clipped"] == "1"
    (est,) = result["estimates"]
    assert est["mi_test"] > 0 and not est["diverged"], est

    broken = {**SPEC, "estimator": {"name": "bad_raises", "train": {"batch_size": 16,
                                                                    "steps": 5}}}
    code = main(["submit", _spec(tmp_path, broken, "broken.json"), "--wait", "--timeout",
                 "300", "--poll", "0.2"])
    text, err = capsys.readouterr()
    assert code == 3, (text, err)
    assert ("failed: plugin_failed: plug-in estimator 'bad_raises' (micheck-broken-plugins=="
            "2.0.1): its objective raised RuntimeError: boom in the plug-in") in err
    assert "Traceback" not in err
    assert worker.poll() is None  # the worker goes on
