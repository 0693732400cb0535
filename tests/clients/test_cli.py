"""`micheck submit --wait` and friends against a real server on a loopback port, with a
worker thread running the real engine through the real job glue."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import pytest

from micheck.cli import main
from tests.clients.support import Worker, free_port

# ~1-3 s of real training on a 2-core CPU: InfoNCE reaches about 0.47 of the true 1 nat
GAUSS = {"estimator": {"name": "infonce", "train": {"batch_size": 16, "steps": 30,
                                                    "eval_samples": 64}},
         "dataset": {"name": "gaussian", "dim": 2, "mi": 1.0},
         "tests": [{"kind": "ground_truth"}], "seeds": [0, 1]}
LOOSE = {**GAUSS, "tests": [{"kind": "ground_truth", "tolerance": 0.9}]}
NO_DATA = {"estimator": {"name": "infonce", "train": {"batch_size": 16, "steps": 5}},
           "dataset": {"name": "cifar10"},
           "tests": [{"kind": "additivity", "rows": [16]}], "seeds": [0]}


@pytest.fixture
def server(app, live_server, tokens, monkeypatch):
    """MICHECK_URL/MICHECK_TOKEN point at the live server; a worker runs the real engine."""
    from micheck.workers.engine import evaluate

    monkeypatch.setenv("MICHECK_URL", live_server)
    monkeypatch.setenv("MICHECK_TOKEN", tokens["alice"])
    worker = Worker(app, evaluate)
    worker.start()
    yield worker
    worker.halt.set()
    worker.join(30)


def _spec(tmp_path, body: dict, name: str = "spec.json"):
    path = tmp_path / name
    path.write_text(json.dumps(body))
    return str(path)


def test_exit_0_when_every_verdict_passes(server, tmp_path, capsys):
    junit = tmp_path / "out" / "report.xml"
    code = main(["submit", _spec(tmp_path, LOOSE), "--wait", "--timeout", "120", "--poll",
                 "0.1", "--junit", str(junit)])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "ground_truth" in out and "verdict: PASS" in out
    assert "queued" in err and "/report" in err
    root = ET.parse(junit).getroot()
    assert root.get("tests") == "1" and root.get("failures") == "0"
    eid = next(p.get("value") for p in root.iter("property") if p.get("name") == "evaluation_id")
    # the other commands on the same evaluation
    assert main(["status", eid]) == 0
    assert "succeeded" in capsys.readouterr().out
    assert main(["results", eid, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["passed"] is True
    assert main(["list", "--status", "succeeded"]) == 0
    assert eid in capsys.readouterr().out
    page = tmp_path / "r.html"
    assert main(["report", eid, "--out", str(page)]) == 0
    assert "data:image/png;base64," in page.read_text()
    assert main(["report", eid, "--local", "--out", str(page)]) == 0
    assert "verdicts" in page.read_text()
    assert main(["cancel", eid]) == 3  # finished: 409 conflict
    assert "already succeeded" in capsys.readouterr().err


def test_exit_1_when_a_test_misses_its_tolerance(server, tmp_path, capsys):
    junit = tmp_path / "report.xml"
    code = main(["submit", _spec(tmp_path, GAUSS, "spec.yaml"), "--wait", "--timeout", "120",
                 "--poll", "0.1", "--junit", str(junit)])
    out, err = capsys.readouterr()
    assert code == 1, err
    assert "FAIL" in out
    failure = ET.parse(junit).getroot().find("testsuite/testcase/failure")
    assert failure is not None and "expected 1 +/- 0.1: outside by" in failure.get("message")


def test_exit_2_for_usage_and_input_errors(server, tmp_path, capsys):
    assert main(["submit", str(tmp_path / "missing.yaml"), "--wait"]) == 2
    assert "spec file not found" in capsys.readouterr().err
    bad = {**GAUSS, "estimator": {"name": "nope"}}
    assert main(["submit", _spec(tmp_path, bad), "--wait"]) == 2
    assert "estimator.name" in capsys.readouterr().err
    assert main(["submit", _spec(tmp_path, GAUSS), "--junit", "x.xml"]) == 2
    # valid spec, but over this server's limit: the server's 422 is an input error too
    big = {**GAUSS, "estimator": {"name": "infonce", "train": {"steps": 300_000}}}
    assert main(["submit", _spec(tmp_path, big), "--wait"]) == 2
    assert "estimator.train.steps" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["submit"])
    assert exc.value.code == 2


def test_exit_3_for_service_errors_and_timeouts(server, tmp_path, capsys, monkeypatch):
    junit = tmp_path / "report.xml"
    monkeypatch.setenv("MICHECK_DATA_DIR", str(tmp_path / "nowhere"))
    # the engine fails (no CIFAR-10 directory): failed evaluation, JUnit says why
    assert main(["submit", _spec(tmp_path, NO_DATA), "--wait", "--timeout", "60", "--poll",
                 "0.1", "--junit", str(junit)]) == 3
    err = ET.parse(junit).getroot().find("testsuite/testcase/error")
    assert "failed" in err.get("message") and "default data root" in err.get("message")
    assert str(tmp_path) not in err.get("message")  # never a server path
    capsys.readouterr()
    # no worker picks it up in time
    server.halt.set()
    server.join(30)
    assert main(["submit", _spec(tmp_path, {**GAUSS, "seeds": [7]}), "--wait", "--timeout",
                 "0.5", "--poll", "0.1", "--junit", str(junit)]) == 3
    assert "still queued" in capsys.readouterr().err
    assert ET.parse(junit).getroot().get("errors") == "1"
    # wrong token, unreachable server
    assert main(["status", "x", "--token", "mck_wrong"]) == 3
    assert "401" in capsys.readouterr().err
    assert main(["status", "x", "--url", f"http://127.0.0.1:{free_port()}"]) == 3
    assert "cannot reach the micheck service" in capsys.readouterr().err
