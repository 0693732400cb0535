"""The served plots, report and comparison pages (service/routes/reports.py), in-process."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient
from micheck.clients.client import Client
from micheck.clients.errors import Conflict, NotFound

from tests.clients.support import replay_engine, run_queued
from tests.service.support import TINY_SPEC

pytest.importorskip("matplotlib")

MNIST_SPEC = {"estimator": {"name": "smile", "params": {"tau": 5.0},
                            "critic": {"kind": "separable", "arch": "cnn", "width": 0.25},
                            "train": {"batch_size": 16, "steps": 20, "eval_samples": 64}},
              "dataset": {"name": "mnist", "train_size": 512},
              "tests": [{"kind": "additivity", "rows": [14]}], "seeds": [0, 1]}


@pytest.fixture
def served(app, tokens, mnist_result, gaussian_result):
    """alice's finished MNIST and Gaussian evaluations, plus a queued one."""
    with TestClient(app) as tc:
        c = Client(token=tokens["alice"], http=tc, retries=0)
        mnist = c.submit(MNIST_SPEC).id
        run_queued(app, replay_engine(mnist_result))
        gauss = c.submit(TINY_SPEC).id
        run_queued(app, replay_engine(gaussian_result))
        queued = c.submit({**TINY_SPEC, "seeds": [5]}).id
        tc.headers["Authorization"] = f"Bearer {tokens['alice']}"
        yield tc, c, {"mnist": mnist, "gauss": gauss, "queued": queued}


def test_report_page_and_its_plots(served):
    tc, _, ids = served
    r = tc.get(f"/v1/evaluations/{ids['mnist']}/report")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert "default-src 'none'" in r.headers["content-security-policy"]
    srcs = re.findall(r'<img src="([^"]+)"', r.text)
    assert srcs == [f"plots/{n}.png" for n in ("baseline", "independence", "data_processing",
                                               "additivity")]
    for src in srcs:  # resolve as a browser would, relative to the page
        img = tc.get(f"/v1/evaluations/{ids['mnist']}/{src}")
        assert img.status_code == 200 and img.headers["content-type"] == "image/png"
        assert img.content[:8] == b"\x89PNG\r\n\x1a\n"
    svg = tc.get(f"/v1/evaluations/{ids['mnist']}/plots/additivity.svg")
    assert svg.headers["content-type"] == "image/svg+xml" and b"<svg" in svg.content
    embedded = tc.get(f"/v1/evaluations/{ids['mnist']}/report", params={"embed": "true"}).text
    assert embedded.count('src="data:image/png;base64,') == 4


def test_plot_errors_are_problems(served):
    tc, c, ids = served
    r = tc.get(f"/v1/evaluations/{ids['gauss']}/plots/additivity.png")
    assert r.status_code == 404 and r.headers["content-type"] == "application/problem+json"
    assert "no plot 'additivity'" in r.json()["detail"]
    with pytest.raises(Conflict, match="queued: no plots"):
        c.plot(ids["queued"], "ground_truth")
    with pytest.raises(NotFound):
        c.plot("nope", "ground_truth")
    assert tc.get(f"/v1/evaluations/{ids['gauss']}/report",
                  headers={"Authorization": ""}).status_code == 401
    # no result yet: a status page rather than an error
    page = tc.get(f"/v1/evaluations/{ids['queued']}/report")
    assert page.status_code == 200 and "No result yet" in page.text


def test_compare_page(served):
    tc, c, ids = served
    q = ",".join([ids["mnist"], ids["gauss"], ids["queued"]])
    r = tc.get("/v1/compare", params={"ids": q})
    assert r.status_code == 200
    assert f'href="evaluations/{ids["gauss"]}/report"' in r.text
    srcs = re.findall(r'<img src="([^"]+)"', r.text)
    assert len(srcs) == 5 and all(s.startswith("compare/plots/") for s in srcs)
    img = tc.get("/v1/" + srcs[-1].replace("&amp;", "&"))
    assert img.status_code == 200 and img.content[:4] == b"\x89PNG"
    assert "additivity[t=14]" in r.text and "ground_truth" in r.text and "queued" in r.text
    assert "data:image/png" in c.compare_html([ids["mnist"], ids["gauss"]])
    assert tc.get("/v1/compare", params={"ids": " , "}).status_code == 422
    assert tc.get("/v1/compare", params={"ids": f"{ids['gauss']},nope"}).status_code == 404
    assert tc.get("/v1/compare/plots/ground_truth.png",
                  params={"ids": ids["queued"]}).status_code == 409


def test_client_report_html(served):
    _, c, ids = served
    text = c.report_html(ids["gauss"])
    assert "ground_truth" in text and 'src="data:image/png;base64,' in text
