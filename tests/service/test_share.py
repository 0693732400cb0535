"""Signed report links (service/routes/share.py) against the real app, real SQLite and
Redis: they open without a token, only for their evaluation and only until they expire;
tampering, expiry and a rotated secret close them."""

from __future__ import annotations

import re
import time

import pytest
from fastapi.testclient import TestClient
from micheck.service import auth
from micheck.service.app import create_app
from micheck.service.routes import share

from tests.clients.support import run_queued
from tests.service.support import TINY_SPEC, fake_engine


@pytest.fixture
def alice(app):
    return {"Authorization": f"Bearer {auth.create_token(app.state.db, 'alice')}"}


def _submit(client, alice, seed: int = 0) -> dict:
    r = client.post("/v1/evaluations", json={**TINY_SPEC, "seeds": [seed]}, headers=alice)
    assert r.status_code == 202, r.text
    return r.json()


def _path(link: str) -> str:
    return link.removeprefix("http://testserver")


def test_link_opens_the_report_without_a_token(client, alice, app):
    view = _submit(client, alice)
    link = view["report_link"]
    assert link.startswith(f"http://testserver/v1/shared/{view['id']}/") and "mck_" not in link
    page = client.get(_path(link))  # no Authorization header: a browser
    assert page.status_code == 200 and "queued" in page.text  # the status page, for now
    assert client.get(f"/v1/evaluations/{view['id']}/report").status_code == 401
    run_queued(app, fake_engine(steps=2))
    page = client.get(_path(link))
    assert page.status_code == 200 and "ground_truth" in page.text
    assert page.headers["content-security-policy"].startswith("default-src 'none'")
    assert page.headers["referrer-policy"] == "no-referrer"  # the link is the credential
    # the plots the page shows load through the same signed prefix
    srcs = re.findall(r'<img src="([^"]+)"', page.text)
    assert srcs and all(s.startswith("plots/") for s in srcs)
    img = client.get(_path(link) + srcs[0])
    assert img.status_code == 200 and img.headers["content-type"] == "image/png"
    # every view carries the same link between polls, so ETags still match
    got = client.get(f"/v1/evaluations/{view['id']}", headers=alice)
    assert got.json()["report_link"] == link
    again = client.get(f"/v1/evaluations/{view['id']}",
                       headers={**alice, "If-None-Match": got.headers["etag"]})
    assert again.status_code == 304
    listed = client.get("/v1/evaluations", headers=alice).json()["items"]
    assert listed[0]["report_link"] == link


def test_tampered_expired_and_missing_links(client, alice, app):
    settings = app.state.settings
    a, b = _submit(client, alice, 0), _submit(client, alice, 1)
    eid, expires, sig = _path(a["report_link"]).strip("/").split("/")[2:]
    other_sig = _path(b["report_link"]).strip("/").split("/")[4]
    flipped = ("A" if sig[0] != "A" else "B") + sig[1:]
    for bad in (f"/v1/shared/{eid}/{expires}/{flipped}/",        # altered signature
                f"/v1/shared/{eid}/{int(expires) + 3600}/{sig}/",  # later expiry, same sig
                f"/v1/shared/{eid}/{expires}/{other_sig}/",      # another evaluation's sig
                f"/v1/shared/{b['id']}/{expires}/{sig}/"):        # this sig, another id
        r = client.get(bad)
        assert r.status_code == 403 and r.headers["content-type"] == "application/problem+json"
        assert "not valid" in r.json()["detail"]
    old = share.share_path(settings, eid, now=time.time() - 10 * 86400, ttl_s=3600)
    r = client.get(old)
    assert r.status_code == 403 and "expired" in r.json()["detail"]
    assert client.get(share.share_path(settings, "0" * 32)).status_code == 404
    assert client.get(f"/v1/shared/{eid}/{expires}/not*base64/").status_code in (404, 422)
    r = client.get(_path(a["report_link"]) + "plots/additivity.png")
    assert r.status_code == 409  # valid link, but no result yet: a problem, not a crash


def test_rotating_the_secret_revokes_every_link(client, alice, app, service_settings):
    view = _submit(client, alice)
    link = _path(view["report_link"])
    secret_file = service_settings.var_dir / share.SECRET_FILE
    assert secret_file.stat().st_mode & 0o077 == 0  # made on first use, owner-only
    share.rotate_secret(service_settings)
    assert client.get(link).status_code == 403
    fresh = client.get(f"/v1/evaluations/{view['id']}", headers=alice).json()["report_link"]
    assert fresh != view["report_link"] and client.get(_path(fresh)).status_code == 200


def test_configured_secret_signs_and_changing_it_revokes(service_settings, alice):
    service_settings.share_secret = "s3cret-one"
    with TestClient(create_app(service_settings, run_reconciler=False)) as c:
        view = c.post("/v1/evaluations", json=TINY_SPEC, headers=alice).json()
        assert c.get(_path(view["report_link"])).status_code == 200
        assert not (service_settings.var_dir / share.SECRET_FILE).exists()
        service_settings.share_secret = "s3cret-two"
        assert c.get(_path(view["report_link"])).status_code == 403


def _create_at_once(var_dir: str, _i: int, barrier) -> bytes:
    from micheck.settings import Settings

    settings = Settings(var_dir=var_dir)
    barrier.wait()
    return share.secret(settings)


def test_concurrent_first_use_makes_one_secret(tmp_path):
    """Several API processes (and threads) needing the secret at once on a fresh var dir:
    none fails (a shared temp name made a rename raise FileNotFoundError), and all sign
    with the one key the file keeps."""
    import multiprocessing
    import threading
    from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor

    from micheck.settings import Settings

    n = 6
    ctx = multiprocessing.get_context("fork")
    for round_ in range(12):
        var_dir = tmp_path / f"p{round_}"
        with ctx.Manager() as manager:
            barrier = manager.Barrier(n)
            with ProcessPoolExecutor(n, mp_context=ctx) as pool:
                keys = list(pool.map(_create_at_once, [str(var_dir)] * n, range(n),
                                     [barrier] * n))
        assert len(set(keys)) == 1, keys
        assert (var_dir / share.SECRET_FILE).read_bytes().strip() == keys[0]
        assert [p.name for p in var_dir.iterdir()] == [share.SECRET_FILE]  # no temp left
    for round_ in range(12):
        settings = Settings(var_dir=tmp_path / f"t{round_}")
        barrier = threading.Barrier(n)

        def first(_i: int, settings=settings, barrier=barrier) -> bytes:
            barrier.wait()
            return share.secret(settings)

        with ThreadPoolExecutor(n) as pool:
            keys = list(pool.map(first, range(n)))
        assert len(set(keys)) == 1 and keys[0] == share.secret(settings)
