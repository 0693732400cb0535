"""`micheck submit --wait` and friends against a real server on a loopback port, with a
worker thread running the real engine through the real job glue."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import pytest

from micheck.cli import main
from tests.clients.support import Worker, free_port

# a few seconds of real training on a 2-core CPU, 3 seeds, converged critics. InfoNCE at
# batch 8 cannot exceed log 8 = 2.08 nats: on a 4-nat Gaussian its ratio is ~0.5 (a fail);
# at batch 32 on 1 nat it is ~0.9 (a pass with tolerance 0.5); 2 seeds decide nothing.
GAUSS = {"estimator": {"name": "infonce", "train": {"batch_size": 8, "steps": 200, "lr": 5e-3,
                                                    "eval_samples": 512}},
         "dataset": {"name": "gaussian", "dim": 2, "mi": 4.0},
         "tests": [{"kind": "ground_truth"}], "seeds": [0, 1, 2], "max_seeds": 3}
LOOSE = {**GAUSS, "estimator": {"name": "infonce", "train": {
    "batch_size": 32, "steps": 200, "lr": 5e-3, "eval_samples": 512}},
    "dataset": {"name": "gaussian", "dim": 2, "mi": 1.0},
    "tests": [{"kind": "ground_truth", "tolerance": 0.5}]}
TWO_SEEDS = {**LOOSE, "seeds": [0, 1], "max_seeds": 2}
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
    code = main(["submit", _spec(tmp_path, LOOSE), "--wait", "--timeout", "600", "--poll",
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
    code = main(["submit", _spec(tmp_path, GAUSS, "spec.yaml"), "--wait", "--timeout", "600",
                 "--poll", "0.1", "--junit", str(junit)])
    out, err = capsys.readouterr()
    assert code == 1, out + err
    assert "FAIL" in out
    failure = ET.parse(junit).getroot().find("testsuite/testcase/failure")
    assert failure is not None and "needs ratio in [0.9, 1.1]" in failure.get("message")
    assert "outside by" in failure.get("message")


def test_exit_4_when_a_verdict_is_inconclusive(server, tmp_path, capsys):
    junit = tmp_path / "report.xml"
    code = main(["submit", _spec(tmp_path, TWO_SEEDS), "--wait", "--timeout", "600",
                 "--poll", "0.1", "--junit", str(junit)])
    out, err = capsys.readouterr()
    assert code == 4, out + err
    assert "INCONCLUSIVE" in out and "too_few_seeds" in out
    root = ET.parse(junit).getroot()
    skipped = root.find("testsuite/testcase/skipped")
    assert skipped is not None and "too_few_seeds" in skipped.get("message")
    assert root.get("failures") == "0" and root.find("testsuite").get("skipped") == "1"


def test_more_seeds_decide_what_two_seeds_left_open(server, tmp_path, capsys):
    """Two seeds decide nothing; `micheck more-seeds ID 2 --wait` trains two more, pools
    them with the stored two and decides at one more look (the ratio is ~0.9 against a
    band of [0.5, 1.5] on every seed: a pass even at the reserve's small alpha)."""
    assert main(["submit", _spec(tmp_path, TWO_SEEDS), "--wait", "--timeout", "600",
                 "--poll", "0.1", "--json"]) == 4
    first = json.loads(capsys.readouterr().out)
    assert main(["list", "--json"]) == 0
    (eid,) = [e["id"] for e in map(json.loads, capsys.readouterr().out.splitlines())
              if e["request"]["seeds"] == [0, 1]]
    junit = tmp_path / "more.xml"
    code = main(["more-seeds", eid, "2", "--wait", "--timeout", "600", "--poll", "0.1",
                 "--junit", str(junit), "--json"])
    out, err = capsys.readouterr()
    assert code == 0, out + err
    pooled = json.loads(out)
    assert f"adds 2 seeds to {eid}" in err
    assert pooled["provenance"]["seeds"] == [0, 1, 2, 3] and pooled["verdict"] == "pass"
    assert pooled["seed_rounds"]["looks"][-1]["planned"] is False
    assert pooled["estimates"][:2] == first["estimates"]  # the stored seeds, not retrained
    assert ET.parse(junit).getroot().get("failures") == "0"
    # the same evaluation again: 409 names the one that extended it (exit 3)
    assert main(["more-seeds", eid, "2"]) == 3
    assert "already has more seeds" in capsys.readouterr().err
    assert main(["more-seeds", eid, "0"]) == 2


def test_two_seed_sets_of_one_spec_are_no_regression(server, tmp_path, capsys):
    """Nothing changed but the seeds: the same estimator spec run on seeds 0-2 and on seeds
    3-5, the second compared with the first by id, is not flagged (MIGE's gradient at four
    correlations and InfoNCE's ground truth: five points under one Holm family)."""
    results = {}
    for spec_name, body in (("mige", {
            "estimator": {"name": "mige", "params": {"samples": 400}},
            "dataset": {"name": "gaussian", "dim": 3},
            "tests": [{"kind": "mi_gradient", "rho": [-0.6, 0.2, 0.5, 0.8]}]}),
            ("loose", {k: v for k, v in LOOSE.items() if k not in ("seeds", "max_seeds")})):
        ids = []
        for seeds in ([0, 1, 2], [3, 4, 5]):
            spec = _spec(tmp_path, {**body, "seeds": seeds, "max_seeds": 3},
                         f"{spec_name}{seeds[0]}.json")
            extra = ["--baseline", ids[0], "--fail-on-regression"] if ids else []
            code = main(["submit", spec, "--wait", "--timeout", "600", "--poll", "0.1",
                         *extra])
            out, err = capsys.readouterr()
            assert code in (0, 1, 4), out + err  # its own verdicts; the gate is what we test
            assert main(["list", "--json"]) == 0
            listed = [e for e in map(json.loads, capsys.readouterr().out.splitlines())
                      if e["request"]["seeds"] == seeds
                      and e["request"]["estimator"]["name"] == body["estimator"]["name"]]
            ids.append(listed[0]["id"])
        results[spec_name] = (ids, out)
    for spec_name, (_ids, out) in results.items():
        assert "no regression" in out or "REGRESSION" not in out, out
        assert "regressed" not in out, (spec_name, out)


def test_exit_2_for_usage_and_input_errors(server, tmp_path, capsys):
    assert main(["submit", str(tmp_path / "missing.yaml"), "--wait"]) == 2
    assert "spec file not found" in capsys.readouterr().err
    bad = {**GAUSS, "estimator": {"name": "nope"}}
    assert main(["submit", _spec(tmp_path, bad), "--wait"]) == 2
    assert "estimator.name" in capsys.readouterr().err
    junit = tmp_path / "usage.xml"
    assert main(["submit", _spec(tmp_path, GAUSS), "--junit", str(junit)]) == 2
    error = ET.parse(junit).getroot().find("testsuite/testcase/error")
    assert "invalid input: --junit need(s) --wait" in error.get("message")
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


def test_submit_labels_and_list_filters(app, live_server, tokens, tmp_path, capsys,
                                        monkeypatch):
    monkeypatch.setenv("MICHECK_URL", live_server)
    monkeypatch.setenv("MICHECK_TOKEN", tokens["alice"])
    spec = _spec(tmp_path, {**GAUSS, "labels": {"pipeline": "p1"}})
    assert main(["submit", spec, "--label", "branch=main", "--label", "git_sha=abc"]) == 0
    first = capsys.readouterr().out.strip()
    assert main(["submit", _spec(tmp_path, {**GAUSS, "seeds": [9]}, "b.json"), "--label",
                 "branch=dev"]) == 0
    second = capsys.readouterr().out.strip()
    assert main(["list", "--label", "branch=main", "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["id"] for r in rows] == [first]
    assert rows[0]["request"]["labels"] == {"pipeline": "p1", "branch": "main",
                                            "git_sha": "abc"}
    assert main(["list", "--label", "branch:dev", "--since", "2000-01-01"]) == 0
    out = capsys.readouterr().out
    assert second in out and first not in out and "branch=dev" in out
    assert main(["list", "--until", "2000-01-01"]) == 0
    assert len(capsys.readouterr().out.strip().splitlines()) == 1  # the header only
    assert main(["list", "--label", "nolabel"]) == 2
    assert "expected KEY=VALUE" in capsys.readouterr().err
    assert main(["list", "--since", "last week"]) == 2
    assert "not an ISO 8601 time" in capsys.readouterr().err
    assert main(["submit", spec, "--label", "bad key=v"]) == 2
    assert "labels" in capsys.readouterr().err


def test_submit_against_a_baseline_exits_by_the_regression_verdict(app, live_server, tokens,
                                                                   tmp_path, capsys,
                                                                   monkeypatch):
    """Two runs of one spec: main's, then a branch whose ratios are further from the
    ideal (still inside the tolerance, so its own verdicts pass)."""
    from tests.service.test_comparisons import engine_with

    monkeypatch.setenv("MICHECK_URL", live_server)
    monkeypatch.setenv("MICHECK_TOKEN", tokens["alice"])
    per_branch = {"main": [0.99, 1.0, 1.01], "feature": [0.93, 0.92, 0.94]}

    def engine(request, **kw):
        return engine_with(per_branch[request.labels["branch"]], True)(request, **kw)

    worker = Worker(app, engine)
    worker.start()
    try:
        spec = _spec(tmp_path, {**GAUSS, "seeds": [0, 1, 2]})
        common = ["--wait", "--poll", "0.05", "--timeout", "60", "--baseline", "branch=main",
                  "--fail-on-regression"]
        # the first run has nothing to compare with: its own verdicts decide
        assert main(["submit", spec, "--label", "branch=main", *common]) == 0
        assert "no comparison" in capsys.readouterr().err
        junit = tmp_path / "feature.xml"
        code = main(["submit", spec, "--label", "branch=feature", "--force", *common,
                     "--junit", str(junit)])
        out = capsys.readouterr().out
        assert code == 1 and "verdict: PASS" in out and "REGRESSION at 1 point" in out
        assert "ground_truth" in out and "regressed" in out
        root = ET.parse(junit).getroot()
        suites = root.findall("testsuite")
        assert [s.get("failures") for s in suites] == ["0", "1"]
        failure = suites[1].find("testcase/failure")
        assert failure is not None and "-0.070" in failure.get("message")
        assert root.get("failures") == "1" and root.get("tests") == "2"
        # without --fail-on-regression the comparison is shown and the verdicts decide
        assert main(["submit", spec, "--label", "branch=feature", "--force", "--wait",
                     "--poll", "0.05", "--baseline", "branch=main"]) == 0
        assert "REGRESSION" in capsys.readouterr().out
        assert main(["submit", spec, "--baseline", "x=y"]) == 2  # needs --wait
        assert main(["submit", spec, "--wait", "--baseline", "bad query"]) == 2
    finally:
        worker.halt.set()
        worker.join(30)


def _junit_error(path) -> str:
    root = ET.parse(path).getroot()
    assert root.get("errors") == "1" and root.get("tests") == "1"
    return root.find("testsuite/testcase/error").get("message")


def test_junit_on_every_exit_without_verdicts(app, live_server, tokens, tmp_path, capsys,
                                              monkeypatch):
    """No URL, a bad token, an unreachable box: one line on stderr, and a JUnit file with
    one errored testcase saying why (the CI page then shows the reason)."""
    spec, junit = _spec(tmp_path, GAUSS), tmp_path / "junit.xml"
    monkeypatch.delenv("MICHECK_URL", raising=False)
    monkeypatch.setenv("MICHECK_TOKEN", tokens["alice"])
    assert main(["submit", spec, "--wait", "--junit", str(junit)]) == 2
    err = capsys.readouterr().err
    (line,) = [x for x in err.splitlines() if x.startswith("micheck:")]  # besides "wrote"
    assert line.startswith("micheck: no service URL: pass --url or set MICHECK_URL")
    assert "no service URL" in _junit_error(junit)
    assert main(["status", "x"]) == 2  # every command: no silent default address
    capsys.readouterr()

    assert main(["submit", spec, "--wait", "--junit", str(junit), "--url", live_server,
                 "--token", "mck_wrong"]) == 3
    assert "401" in capsys.readouterr().err
    assert _junit_error(junit).startswith("the box refused the token (check MICHECK_TOKEN)")

    dead = f"http://127.0.0.1:{free_port()}"
    assert main(["submit", spec, "--wait", "--junit", str(junit), "--url", dead]) == 3
    assert "cannot reach the micheck service" in capsys.readouterr().err
    assert f"cannot reach the micheck service at {dead}" in _junit_error(junit)


def test_out_html_and_report_link(server, live_server, tmp_path, capsys):
    """--out writes the results JSON, --html the report; the JUnit and the log carry a
    signed link that opens in a browser (no token); progress never reads 0/0."""
    import httpx

    junit, out, html = tmp_path / "j.xml", tmp_path / "r.json", tmp_path / "r.html"
    code = main(["submit", _spec(tmp_path, LOOSE), "--wait", "--timeout", "600", "--poll",
                 "0.1", "--junit", str(junit), "--out", str(out), "--html", str(html)])
    err = capsys.readouterr().err
    assert code in (0, 1, 4), err  # a verdict, whichever: the files are under test here
    assert "0/0" not in err
    result = json.loads(out.read_text())
    assert result["ratios"][0]["test"] == "ground_truth" and "provenance" in result
    assert "verdicts" in html.read_text().lower()
    props = {p.get("name"): p.get("value") for p in ET.parse(junit).getroot().iter("property")}
    link = props["report_url"]
    assert link.startswith(f"{live_server}/v1/shared/{props['evaluation_id']}/")
    assert f"report: {link}" in err
    page = httpx.get(link)  # a browser: no bearer token
    assert page.status_code == 200 and "ground_truth" in page.text


def _start_submit(live_server: str, token: str, spec: str, *extra: str):
    import os
    import subprocess
    import sys

    env = {**os.environ, "MICHECK_URL": live_server, "MICHECK_TOKEN": token}
    proc = subprocess.Popen([sys.executable, "-m", "micheck.cli", "submit", spec, *extra],
                            stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
    lines = []
    for line in proc.stderr:  # wait() has begun once the first progress line appears
        lines.append(line)
        if line.startswith("queued (attempt"):
            break
    eid = lines[0].split()[1]
    return proc, eid


@pytest.mark.parametrize("signame", ["SIGTERM", "SIGINT"])
def test_signal_cancels_the_evaluation_then_a_rerun_starts_anew(app, live_server, tokens,
                                                                 tmp_path, signame):
    """A canceled CI job (SIGTERM) or Ctrl-C cancels the evaluation on the box and leaves
    a JUnit error; the job's retry with the same idempotency key runs a new evaluation."""
    import signal

    from micheck.clients.client import Client

    spec, junit = _spec(tmp_path, GAUSS), tmp_path / "junit.xml"
    key = f"gh-1-{signame}"
    proc, eid = _start_submit(live_server, tokens["alice"], spec, "--wait", "--poll", "0.1",
                              "--junit", str(junit), "--idempotency-key", key)
    proc.send_signal(getattr(signal, signame))
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + getattr(signal, signame), err
    assert f"{signame}: evaluation {eid} canceled on the box" in err
    assert f"{signame}: evaluation {eid} canceled" in _junit_error(junit)
    with Client(live_server, tokens["alice"]) as c:
        assert c.get(eid).status.value == "canceled"
    assert main(["submit", spec, "--idempotency-key", key, "--url", live_server,
                 "--token", tokens["alice"]]) == 0
    with Client(live_server, tokens["alice"]) as c:
        (again,) = [v for v in c.list(status="queued")]
    assert again.id != eid


def test_detach_leaves_the_evaluation_running(app, live_server, tokens, tmp_path):
    import signal

    from micheck.clients.client import Client

    proc, eid = _start_submit(live_server, tokens["alice"], _spec(tmp_path, GAUSS), "--wait",
                              "--poll", "0.1", "--detach")
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143 and "left running on the box (--detach)" in err
    with Client(live_server, tokens["alice"]) as c:
        assert c.get(eid).status.value == "queued"


def test_progress_shows_states_until_there_are_steps():
    """Queued and starting evaluations have no step count yet: the line names the state
    (once per change) instead of "0/0 steps"."""
    import io

    from micheck.render.table import ProgressLine

    out = io.StringIO()
    bar = ProgressLine(out, every=0.0)
    for label in ("queued:", "queued:", "running:"):
        bar.update(0, 0, label)
    bar.update(3, 10, "running:")
    lines = out.getvalue().splitlines()
    assert lines[:2] == ["queued", "running"] and "0/0" not in out.getvalue()
    assert lines[2].startswith("running: 3/10 steps (30%")
