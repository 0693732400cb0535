"""The report in a real browser: headless Chromium loads it (an offline file, and the page
the API serves), a screenshot is saved where the test prints, and the dumped DOM shows the
verdict table and that every plot decoded (the page's images record their natural size
in data-size when they load, "0x0" when they fail).

Screenshots go to $MICHECK_ARTIFACTS, else var/screenshots/ in the checkout.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from micheck.clients.client import Client

from micheck.render import report

pytestmark = pytest.mark.browser
BROWSER = next(filter(None, map(shutil.which, ("chromium", "chromium-browser",
                                               "google-chrome"))), None)
if BROWSER is None:
    if os.environ.get("MICHECK_REQUIRE_ALL") == "1":
        raise RuntimeError("headless Chromium is required (MICHECK_REQUIRE_ALL=1): "
                           "apt-get install -y chromium")
    pytest.skip("no chromium binary (apt-get install -y chromium)", allow_module_level=True)
pytest.importorskip("matplotlib")

ARTIFACTS = Path(os.environ.get("MICHECK_ARTIFACTS")
                 or Path(__file__).resolve().parents[2] / "var" / "screenshots")


def _chromium(tmp_path: Path, url: str, *args: str) -> str:
    cmd = [BROWSER, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
           "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}",
           "--virtual-time-budget=10000", "--window-size=1280,2200", *args, url]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def _check(tmp_path: Path, url: str, shot: Path, plots: int, capsys) -> None:
    shot.parent.mkdir(parents=True, exist_ok=True)
    shot.unlink(missing_ok=True)
    _chromium(tmp_path, url, f"--screenshot={shot}")
    assert shot.stat().st_size > 10_000 and shot.read_bytes()[:4] == b"\x89PNG"
    with capsys.disabled():  # shown without -s: a person is meant to look at it
        print(f"\nscreenshot of {url[:80]}: {shot}")
    dom = _chromium(tmp_path, url, "--dump-dom")
    table = re.search(r'<table class="verdicts">(.*?)</table>', dom, re.S)
    assert table is not None, "no verdict table in the rendered page"
    assert table.group(1).count("<tr") >= 2 and ("PASS" in dom or "FAIL" in dom)
    sizes = re.findall(r'<img [^>]*data-size="(\d+)x(\d+)"', dom)
    imgs = re.findall(r"<img ", dom)
    assert len(imgs) == plots and len(sizes) == plots, "an image never finished loading"
    assert all(int(w) > 0 and int(h) > 0 for w, h in sizes), f"broken plots: {sizes}"


def test_offline_report_renders_in_chromium(tmp_path, mnist_result, capsys):
    page = tmp_path / "report.html"
    page.write_text(report.render_report(mnist_result), encoding="utf-8")
    _check(tmp_path, page.as_uri(), ARTIFACTS / "report-offline.png", plots=4, capsys=capsys)


def test_served_report_renders_in_chromium(tmp_path, app, tokens, live_server,
                                           mnist_result, capsys):
    from tests.clients.support import replay_engine, run_queued
    from tests.clients.test_reports_api import MNIST_SPEC

    app.state.settings.open_reads = True  # a browser sends no bearer token
    with Client(live_server, tokens["alice"]) as c:
        eid = c.submit({**MNIST_SPEC, "tests": mnist_result.request.model_dump(
            mode="json")["tests"], "label": "served <report>"}).id
        run_queued(app, replay_engine(mnist_result))
    _check(tmp_path, f"{live_server}/v1/evaluations/{eid}/report",
           ARTIFACTS / "report-served.png", plots=4, capsys=capsys)


def test_sign_in_list_and_report_in_chromium(tmp_path, app, tokens, live_server,
                                             mnist_result, capsys):
    """A person's path: open /, get sent to the sign-in form, paste a token, see the list
    (the token now in an HttpOnly cookie that page scripts cannot read), follow a label
    filter and a report link; the report's plots load with the cookie alone."""
    from tests.clients.cdp import Chromium
    from tests.clients.support import replay_engine, run_queued
    from tests.clients.test_reports_api import MNIST_SPEC

    assert not app.state.settings.open_reads
    with Client(live_server, tokens["alice"]) as c:
        tests = mnist_result.request.model_dump(mode="json")["tests"]
        done = c.submit({**MNIST_SPEC, "tests": tests, "labels": {"branch": "main"},
                         "label": "<i>mine</i>"}).id
        run_queued(app, replay_engine(mnist_result))
        queued = c.submit({**MNIST_SPEC, "seeds": [7], "labels": {"branch": "dev"}}).id
    browser = Chromium(BROWSER, tmp_path / "profile")
    try:
        browser.navigate(f"{live_server}/")
        assert browser.js("location.pathname") == "/login"
        token = tokens["alice"]
        browser.js_then_load(f"document.getElementById('token').value = {token!r};"
                             "document.getElementById('login').submit()")
        assert browser.js("location.pathname") == "/"
        assert browser.js("document.cookie") == ""  # HttpOnly: invisible to scripts
        rows = browser.js("[...document.querySelectorAll('tr[data-id]')].map("
                          "r => [r.dataset.id, r.dataset.status])")
        assert rows == [[queued, "queued"], [done, "succeeded"]]
        assert browser.js("document.querySelector('td.verdict .badge').textContent") \
            == "FAIL"
        assert browser.js("document.body.innerHTML").count("&lt;i&gt;mine&lt;/i&gt;") == 1
        shot = ARTIFACTS / "evaluations-page.png"
        browser.screenshot(shot)
        assert shot.read_bytes()[:4] == b"\x89PNG"
        with capsys.disabled():
            print(f"\nscreenshot of the evaluations page: {shot}")
        browser.js_then_load("[...document.querySelectorAll('a.chip')].find("
                             "a => a.textContent === 'branch=dev').click()")
        assert browser.js("[...document.querySelectorAll('tr[data-id]')].map("
                          "r => r.dataset.id)") == [queued]
        browser.navigate(f"{live_server}/")
        browser.js_then_load(f"document.querySelector('tr[data-id=\"{done}\"] a.report')"
                             ".click()")
        assert browser.js("location.pathname") == f"/v1/evaluations/{done}/report"
        assert browser.js("document.querySelectorAll('table.verdicts tr').length") >= 2
        sizes = browser.js("[...document.images].map(i => i.naturalWidth)")
        assert len(sizes) == 4 and all(w > 0 for w in sizes), sizes
    finally:
        browser.close()


def test_share_link_renders_in_chromium_without_a_login(tmp_path, app, tokens, live_server,
                                                        mnist_result, capsys):
    """Reads stay closed (no open reads): the signed link alone opens the report, plots
    included, as a person clicking it in a CI page would see it."""
    from tests.clients.support import replay_engine, run_queued
    from tests.clients.test_reports_api import MNIST_SPEC

    assert not app.state.settings.open_reads
    with Client(live_server, tokens["alice"]) as c:
        eid = c.submit({**MNIST_SPEC, "tests": mnist_result.request.model_dump(
            mode="json")["tests"], "label": "shared report"}).id
        run_queued(app, replay_engine(mnist_result))
        link = c.get(eid).report_link
    assert link and link.startswith(f"{live_server}/v1/shared/{eid}/")
    _check(tmp_path, link, ARTIFACTS / "report-shared.png", plots=4, capsys=capsys)


@pytest.mark.parametrize("page", ["docs", "redoc"])
def test_api_docs_render_offline_in_chromium(tmp_path, live_server, page):
    """Swagger UI and ReDoc draw the API from the service's own assets (this machine has
    no route to a CDN, so a page that needed one would stay blank)."""
    dom = _chromium(tmp_path, f"{live_server}/{page}", "--dump-dom")
    assert "/v1/evaluations/{evaluation_id}/results" in dom  # an operation, drawn
    assert "Every error is application/problem+json" in dom  # the description, drawn
