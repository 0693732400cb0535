"""The evaluations page and the sign-in cookie (service/routes/pages.py), in-process.
The same pages in real Chromium: tests/clients/test_browser.py."""

from __future__ import annotations

import re
from http.cookies import SimpleCookie

import pytest
from fastapi.testclient import TestClient
from micheck.clients.client import Client

from tests.clients.support import replay_engine, run_queued
from tests.service.support import TINY_SPEC

NASTY = '<script>alert("x")</script>'


@pytest.fixture
def site(app, tokens, gaussian_result):
    """alice's finished, labelled evaluation (with an HTML-looking label) and a queued one."""
    with TestClient(app, base_url="http://testserver") as tc:
        c = Client(token=tokens["alice"], http=tc, retries=0)
        done = c.submit({**TINY_SPEC, "label": NASTY,
                         "labels": {"branch": "main", "note": NASTY}}).id
        run_queued(app, replay_engine(gaussian_result))
        queued = c.submit({**TINY_SPEC, "seeds": [4], "labels": {"branch": "dev"}}).id
        yield tc, {"done": done, "queued": queued}


def _sign_in(tc: TestClient, token: str) -> None:
    r = tc.post("/login", data={"token": token}, follow_redirects=False,
                headers={"Origin": "http://testserver"})
    assert r.status_code == 303 and r.headers["location"] == "./"


def test_anonymous_browser_is_sent_to_sign_in(site):
    tc, _ = site
    r = tc.get("/", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "login"
    form = tc.get("/login")
    assert form.status_code == 200 and 'name="token"' in form.text
    assert "form-action 'self'" in form.headers["content-security-policy"]


def test_sign_in_sets_a_strict_httponly_cookie_used_for_reads_only(site, tokens):
    tc, ids = site
    r = tc.post("/login", data={"token": tokens["alice"]}, follow_redirects=False)
    cookie = SimpleCookie(r.headers["set-cookie"])["micheck_session"]
    assert cookie["httponly"] and cookie["samesite"] == "strict" and cookie["path"] == "/"
    assert not cookie["secure"]  # plain http here; set on https
    page = tc.get("/")
    assert page.status_code == 200 and "signed in as <b>alice</b>" in page.text
    # the cookie opens the report and the JSON reads too (GET), never a write
    assert tc.get(f"/v1/evaluations/{ids['done']}/report").status_code == 200
    assert tc.get(f"/v1/evaluations/{ids['done']}/results.csv").status_code == 200
    assert tc.post("/v1/evaluations", json=TINY_SPEC).status_code == 401
    assert tc.post(f"/v1/evaluations/{ids['queued']}/cancel").status_code == 401
    out = tc.post("/logout", follow_redirects=False)
    assert out.status_code == 303 and 'micheck_session=""' in out.headers["set-cookie"]
    tc.cookies.clear()
    assert tc.get("/", follow_redirects=False).status_code == 303


def test_bad_tokens_and_foreign_forms_are_refused(site, tokens, app):
    tc, _ = site
    r = tc.post("/login", data={"token": "mck_wrong"})
    assert r.status_code == 401 and "unknown or revoked" in r.text
    assert "set-cookie" not in r.headers
    foreign = tc.post("/login", data={"token": tokens["alice"]},
                      headers={"Origin": "https://evil.example"})
    assert foreign.status_code == 403 and "set-cookie" not in foreign.headers
    # signing out is same-origin too: another site cannot end a session
    out = tc.post("/logout", headers={"Origin": "https://evil.example"}, follow_redirects=False)
    assert out.status_code == 403 and "set-cookie" not in out.headers
    assert tc.post("/logout", headers={"Origin": "null"}).status_code == 403
    assert tc.post("/login", json={"token": tokens["alice"]}).status_code == 415
    # a revoked token's cookie no longer signs anyone in
    from micheck.service import auth

    _sign_in(tc, tokens["bob"])
    auth.revoke_token(app.state.db, "bob")
    assert tc.get("/", follow_redirects=False).status_code == 303


def test_list_shows_status_verdict_labels_and_links_escaped(site, tokens):
    tc, ids = site
    _sign_in(tc, tokens["alice"])
    html = tc.get("/").text
    rows = re.findall(r'<tr data-id="(\w+)" data-status="(\w+)">', html)
    assert rows == [(ids["queued"], "queued"), (ids["done"], "succeeded")]
    assert f'href="v1/evaluations/{ids["done"]}/report"' in html
    assert f'href="v1/evaluations/{ids["done"]}/results.csv"' in html
    assert "0 pass · 1 fail · 0 inconclusive" in html and ">FAIL<" in html  # the recorded result fails
    assert NASTY not in html and "&lt;script&gt;" in html
    assert "branch=main" in html and "infonce" in html and "gaussian" in html
    # filters: label, status, estimator, time; the form keeps them
    only = tc.get("/", params={"label": "branch:dev"}).text
    assert ids["queued"] in only and ids["done"] not in only
    assert 'value="branch:dev"' in only
    assert ids["done"] in tc.get("/", params={"status": "succeeded"}).text
    assert ids["done"] not in tc.get("/", params={"status": "queued"}).text
    assert 'id="empty"' in tc.get("/", params={"estimator": "nwj"}).text
    assert 'id="empty"' in tc.get("/", params={"created_before": "2000-01-01"}).text
    bad = tc.get("/", params={"status": "nope"})
    assert bad.status_code == 422 and bad.headers["content-type"] == "application/problem+json"
    assert tc.get("/", params={"label": "x"}).status_code == 422
    # bob sees none of alice's; open reads show everyone's without signing in
    tc.cookies.clear()
    _sign_in(tc, tokens["bob"])
    assert 'id="empty"' in tc.get("/").text
    tc.cookies.clear()
    tc.app.state.settings.open_reads = True
    anon = tc.get("/")
    assert anon.status_code == 200 and ids["done"] in anon.text and "open reads" in anon.text


def test_pages_follow_with_a_cursor(app, tokens):
    with TestClient(app, base_url="http://testserver") as tc:
        c = Client(token=tokens["alice"], http=tc, retries=0)
        ids = [c.submit({**TINY_SPEC, "seeds": [s], "labels": {"k": "v"}}).id
               for s in range(5)]
        _sign_in(tc, tokens["alice"])
        first = tc.get("/", params={"label": "k:v", "limit": 3}).text
        nxt = re.search(r'<a href="([^"]+)" id="older">', first)
        assert nxt and "label=k%3Av" in nxt.group(1)
        second = tc.get("/" + nxt.group(1).replace("&amp;", "&")).text
        assert 'id="older"' not in second and "limit=3" in nxt.group(1)
        shown = [re.findall(r'<tr data-id="(\w+)"', page) for page in (first, second)]
        assert shown == [ids[:1:-1], ids[1::-1]]
        assert tc.get("/", params={"limit": "0"}).status_code == 422
