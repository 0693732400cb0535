"""Webhooks end to end: real HTTP receivers in this process, the real delivery loop in the
app's lifespan, real SQLite; an evaluation ends through the real job glue."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from fastapi.testclient import TestClient
from micheck.service import auth, webhooks
from micheck.service.app import create_app

from micheck.storage.models import utcnow
from tests.clients.support import free_port, run_queued
from tests.service.support import TINY_SPEC, fake_engine, wait_for

SECRET = "s3cret-webhook-key"


class Receiver:
    """An HTTP server on a loopback port that records every POST (headers, raw body) and
    answers ``status`` (with ``location`` for a redirect)."""

    def __init__(self, port: int | None = None, status: int = 204,
                 location: str | None = None):
        self.port, self.status, self.location = port or free_port(), status, location
        self.got: list[tuple[dict[str, str], bytes]] = []
        self.server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook?tenant=a"

    def start(self) -> Receiver:
        rx = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                rx.got.append((dict(self.headers.items()), body))
                self.send_response(rx.status)
                if rx.location:
                    self.send_header("Location", rx.location)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()


@pytest.fixture
def settings(service_settings):
    return service_settings.model_copy(update={
        "webhooks_allow_private": True, "webhook_poll_interval_s": 0.05,
        "webhook_retry_base_s": 0.2, "webhook_retry_max_s": 0.4, "webhook_timeout_s": 5.0})


@pytest.fixture
def receiver():
    rx = Receiver().start()
    yield rx
    rx.stop()


def _token(app, name: str = "alice") -> dict[str, str]:
    return {"Authorization": f"Bearer {auth.create_token(app.state.db, name)}"}


def _submit(c: TestClient, headers: dict, url: str, **extra) -> str:
    body = {**TINY_SPEC, "webhook": {"url": url, "secret": SECRET}, **extra}
    r = c.post("/v1/evaluations", json=body, headers=headers)
    assert r.status_code in (200, 202), r.text
    return r.json()["id"]


def _deliveries(c: TestClient, eid: str, headers: dict) -> list[dict]:
    r = c.get(f"/v1/evaluations/{eid}/deliveries", headers=headers)
    assert r.status_code == 200, r.text
    return r.json()


def test_signed_delivery_reaches_a_real_receiver(settings, receiver):
    app = create_app(settings, run_reconciler=False)
    with TestClient(app) as c:
        alice = _token(app)
        eid = _submit(c, alice, receiver.url, labels={"branch": "main"})
        assert SECRET not in c.get(f"/v1/evaluations/{eid}", headers=alice).text
        assert run_queued(app, fake_engine(steps=2)) == ["succeeded"]
        wait_for(lambda: receiver.got, timeout=20)
        headers, body = receiver.got[0]
        want = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
        assert headers["X-Micheck-Signature"] == want
        assert headers["Content-Type"] == "application/json"
        assert headers["X-Micheck-Event"] == "evaluation.succeeded"
        payload = json.loads(body)
        ev = payload["evaluation"]
        assert payload["delivery_id"] == headers["X-Micheck-Delivery"]
        assert (ev["id"], ev["status"], ev["passed"]) == (eid, "succeeded", True)
        assert ev["labels"] == {"branch": "main"} and ev["verdicts"] == {
            "pass": 1, "fail": 0, "inconclusive": 0}
        assert ev["verdict"] == "pass"
        log = wait_for(lambda: [d for d in _deliveries(c, eid, alice)
                                if d["state"] == "delivered"], timeout=10)
        assert len(log) == 1 and log[0]["id"] == headers["X-Micheck-Delivery"]
        assert log[0]["url"] == f"http://127.0.0.1:{receiver.port}/hook"  # query hidden
        assert [a["status_code"] for a in log[0]["log"]] == [204]
        bob = _token(app, "bob")
        assert c.get(f"/v1/evaluations/{eid}/deliveries", headers=bob).status_code == 403
    assert len(receiver.got) == 1  # delivered once, never again


def test_receiver_down_at_first_gets_it_after_a_service_restart(settings):
    port = free_port()
    url = f"http://127.0.0.1:{port}/hook"
    app = create_app(settings, run_reconciler=False)
    with TestClient(app) as c:
        alice = _token(app)
        eid = _submit(c, alice, url)
        run_queued(app, fake_engine(steps=2))
        failed = wait_for(lambda: [d for d in _deliveries(c, eid, alice)
                                   if d["attempts"] >= 2], timeout=20)
        assert failed[0]["state"] == "pending" and failed[0]["log"][0]["status_code"] is None
        assert "Connect" in failed[0]["log"][0]["error"]
        delivery_id = failed[0]["id"]
    # the service is down; the receiver comes up; a new service process on the same DB
    rx = Receiver(port).start()
    try:
        app2 = create_app(settings, run_reconciler=False)
        with TestClient(app2) as c:
            wait_for(lambda: rx.got, timeout=20)
            headers, body = rx.got[0]
            assert headers["X-Micheck-Delivery"] == delivery_id
            assert headers["X-Micheck-Signature"] == webhooks.sign(SECRET, body)
            done = wait_for(lambda: [d for d in _deliveries(c, eid, alice)
                                     if d["state"] == "delivered"], timeout=10)
            tries = done[0]["log"]
            assert len(tries) >= 3 and tries[-1]["status_code"] == 204
            assert all(t["status_code"] is None for t in tries[:-1])
    finally:
        rx.stop()


def test_redirects_are_not_followed(settings):
    elsewhere = Receiver().start()
    rx = Receiver(status=302, location=elsewhere.url).start()
    try:
        app = create_app(settings, run_reconciler=False)
        with TestClient(app) as c:
            alice = _token(app)
            eid = _submit(c, alice, rx.url)
            run_queued(app, fake_engine(steps=1))
            log = wait_for(lambda: [d for d in _deliveries(c, eid, alice)
                                    if d["attempts"] >= 1], timeout=20)[0]["log"]
            assert log[0]["status_code"] == 302 and "not followed" in log[0]["error"]
        assert rx.got and not elsewhere.got
    finally:
        rx.stop()
        elsewhere.stop()


def test_private_targets_refused_at_submission_and_at_delivery(settings, receiver):
    strict = settings.model_copy(update={"webhooks_allow_private": False})
    app = create_app(strict, run_reconciler=False, run_deliveries=False)
    with TestClient(app) as c:
        alice = _token(app)
        for url in ("http://127.0.0.1:9/x", "http://localhost/x", "http://10.1.2.3/x",
                    "http://[::1]:8080/x", "http://169.254.169.254/latest",
                    "http://[::ffff:192.168.0.1]/x"):
            r = c.post("/v1/evaluations", json={**TINY_SPEC, "webhook": {"url": url}},
                       headers=alice)
            assert r.status_code == 422, (url, r.text)
            assert r.headers["content-type"] == "application/problem+json"
            assert r.json()["errors"][0]["field"] == "webhook.url"
        for url in ("ftp://example.org/x", "http://user:pw@8.8.8.8/x", "not a url"):
            r = c.post("/v1/evaluations", json={**TINY_SPEC, "webhook": {"url": url}},
                       headers=alice)
            assert r.status_code == 422 and "webhook.url" in r.json()["detail"], url
        # a public address is accepted (the loop is off: nothing is sent anywhere)
        r = c.post("/v1/evaluations", json={**TINY_SPEC, "webhook": {"url":
                   "https://8.8.8.8/hook"}}, headers=alice)
        assert r.status_code == 202, r.text
    # allowed when submitted, refused when it is time to send: the check runs again
    app = create_app(settings, run_reconciler=False)
    with TestClient(app) as c:
        alice = _token(app, "carol")
        eid = _submit(c, alice, receiver.url)
        app.state.settings.webhooks_allow_private = False
        run_queued(app, fake_engine(steps=1))
        log = wait_for(lambda: [d for d in _deliveries(c, eid, alice) if d["attempts"]],
                       timeout=20)[0]["log"]
        assert log[0]["error"].startswith("refused:") and "127.0.0.1" in log[0]["error"]
    assert receiver.got == []


def test_deduplicated_and_canceled_evaluations_notify_too(settings, receiver):
    app = create_app(settings, run_reconciler=False)
    with TestClient(app) as c:
        alice = _token(app)
        first = c.post("/v1/evaluations", json=TINY_SPEC, headers=alice).json()["id"]
        run_queued(app, fake_engine(steps=1))
        # an identical spec later, with a webhook: the finished evaluation is reported now
        again = _submit(c, alice, receiver.url)
        assert again == first
        other = _submit(c, alice, receiver.url, seeds=[5])
        assert c.post(f"/v1/evaluations/{other}/cancel", headers=alice).json()["status"] \
            == "canceled"
        wait_for(lambda: len(receiver.got) >= 2, timeout=20)
    events = sorted(json.loads(b)["event"] for _, b in receiver.got)
    assert events == ["evaluation.canceled", "evaluation.succeeded"]


def test_retry_schedule_and_signature():
    from micheck.settings import Settings

    s = Settings(database_url="sqlite://", webhook_retry_base_s=10, webhook_retry_max_s=600,
                 webhook_give_up_after_s=3600)
    assert [webhooks.retry_delay(n, s) for n in range(1, 9)] == [10, 20, 40, 80, 160, 320,
                                                                 600, 600]
    assert webhooks.next_attempt(3, utcnow(), s) is not None
    assert webhooks.next_attempt(3, utcnow() - timedelta(seconds=3590), s) is None
    # RFC 4231 test case 2
    assert webhooks.sign("Jefe", b"what do ya want for nothing?") == (
        "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
    with pytest.raises(webhooks.TargetRefused):
        webhooks.check_target("http://localhost:1/", allow_private=False)
    assert webhooks.check_target("http://localhost:1/", allow_private=True)


V4_IN_V6 = ["http://[::127.0.0.1]/", "http://[64:ff9b::a9fe:a9fe]/latest",  # NAT64 metadata
            "http://[::ffff:127.0.0.1]/", "http://[64:ff9b:1::a00:1]/", "http://[::a9fe:a9fe]/",
            "http://[2002:a9fe:a9fe::]/", "http://8.8.8.8:0/hook", "https://[2606:4700::1111]:0/"]


@pytest.mark.parametrize("url", V4_IN_V6)
def test_ipv4_in_ipv6_forms_and_port_0_are_refused_at_submission(settings, url):
    """Literal addresses only: nothing is resolved, nothing is sent."""
    strict = settings.model_copy(update={"webhooks_allow_private": False})
    app = create_app(strict, run_reconciler=False, run_deliveries=False)
    with TestClient(app) as c:
        r = c.post("/v1/evaluations", json={**TINY_SPEC, "webhook": {"url": url}},
                   headers=_token(app))
        assert r.status_code == 422, (url, r.text)
        assert r.json()["errors"][0]["field"] == "webhook.url"


def test_embedded_ipv4_is_judged_like_the_ipv4_address():
    import ipaddress

    public = ["2606:4700::1111", "64:ff9b::808:808", "::ffff:8.8.8.8", "2002:808:808::1"]
    private = ["::127.0.0.1", "64:ff9b::a9fe:a9fe", "64:ff9b::a00:1", "::ffff:10.0.0.1",
               "2002:c0a8:1::1", "64:ff9b:1::7f00:1", "::1", "::", "fe80::1", "ff02::1"]
    assert all(webhooks._public(ipaddress.ip_address(a)) for a in public)
    assert not any(webhooks._public(ipaddress.ip_address(a)) for a in private)


def test_a_stubbed_resolution_to_a_nat64_metadata_address_is_refused(monkeypatch):
    def resolve(host, port, *args, **kw):
        assert host == "metadata.example"
        return [(10, 1, 6, "", ("64:ff9b::a9fe:a9fe", port, 0, 0))]

    monkeypatch.setattr(webhooks.socket, "getaddrinfo", resolve)
    with pytest.raises(webhooks.TargetRefused, match="64:ff9b::a9fe:a9fe"):
        webhooks.check_target("http://metadata.example/latest", allow_private=False)


@pytest.mark.parametrize("url", ["http://8.8.8.8/a\x7fb", "http://8.8.8.8/\t", "https://8.8.8.8/\x1b"])
def test_a_url_that_cannot_be_sent_is_refused_at_submission(settings, url):
    app = create_app(settings, run_reconciler=False, run_deliveries=False)
    with TestClient(app) as c:
        r = c.post("/v1/evaluations", json={**TINY_SPEC, "webhook": {"url": url}},
                   headers=_token(app))
        assert r.status_code == 422, (url, r.text)
        assert "webhook.url" in r.json()["detail"] and "cannot be sent" in r.json()["detail"]


def test_every_delivery_error_is_an_attempt_and_the_horizon_holds(settings):
    """Rows stored before the submission checks existed: an unsendable URL is tried,
    each try recorded as an attempt with its error (the delivery pass never fails), and
    a delivery older than the give-up horizon is given up when claimed."""
    from micheck.storage import deliveries
    from micheck.storage.models import DeliveryRow

    app = create_app(settings, run_reconciler=False)
    with TestClient(app) as c:
        alice = _token(app)
        eid = c.post("/v1/evaluations", json=TINY_SPEC, headers=alice).json()["id"]
        old = c.post("/v1/evaluations", json={**TINY_SPEC, "seeds": [7]},
                     headers=alice).json()["id"]
        with app.state.db.session() as s:
            deliveries.add_webhook(s, eid, f"http://127.0.0.1:{free_port()}/\x7f", None)
            deliveries.add_webhook(s, old, f"http://127.0.0.1:{free_port()}/x", None)
        assert run_queued(app, fake_engine(steps=1)) == ["succeeded", "succeeded"]
        with app.state.db.session() as s:  # as if it had ended two days ago
            s.query(DeliveryRow).filter(DeliveryRow.evaluation_id == old).update(
                {"created_at": utcnow() - timedelta(days=2)})
        tried = wait_for(lambda: [d for d in _deliveries(c, eid, alice) if d["attempts"] >= 2],
                         timeout=20)[0]
        assert tried["state"] == "pending"
        assert all("cannot be sent" in t["error"] for t in tried["log"])
        gone = wait_for(lambda: [d for d in _deliveries(c, old, alice)
                                 if d["state"] == "gave_up"], timeout=20)[0]
        assert gone["attempts"] == 0 and gone["log"][-1]["error"].startswith("gave up")
