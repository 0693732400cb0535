"""The HTML report and comparison page, rendered offline from real results."""

from __future__ import annotations

import re
import time
from html.parser import HTMLParser

import pytest

from micheck.contract import EvaluationStatus, EvaluationView
from micheck.render import report


class _Page(HTMLParser):
    """Collects what the assertions need: tables' rows, images, links, scripts."""

    def __init__(self, text: str):
        super().__init__()
        self.rows: list[list[str]] = []
        self.imgs: list[dict] = []
        self.urls: list[str] = []
        self.scripts = 0
        self._cell: list[str] | None = None
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "tr":
            self.rows.append([])
        elif tag in ("td", "th"):
            self._cell = []
        elif tag == "img":
            self.imgs.append(a)
        elif tag == "script":
            self.scripts += 1
        self.urls += [v for k, v in attrs if k in ("src", "href") and v]

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None and self.rows:
            self.rows[-1].append("".join(self._cell).strip())
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def _view(result, status=EvaluationStatus.succeeded, **kw) -> EvaluationView:
    return EvaluationView(id="ev1", status=status, spec_hash=result.request.spec_hash(),
                          request=result.request, created_at=result.provenance.started_at,
                          attempts=1, worker="w1", **kw)


def test_offline_report_is_self_contained(mnist_result):
    pytest.importorskip("matplotlib")
    start = time.perf_counter()
    text = report.render_report(mnist_result, view=_view(mnist_result))
    print(f"offline report render: {1000 * (time.perf_counter() - start):.0f} ms, "
          f"{len(text) / 1024:.0f} KiB")
    page = _Page(text)
    table = _Page(re.search(r'<table class="verdicts">.*?</table>', text).group(0))
    verdicts = table.rows[1:]
    assert len(verdicts) == len(mnist_result.ratios)
    add = next(r for r in verdicts if r[0] == "additivity")
    want = next(r for r in mnist_result.ratios if r.test == "additivity")
    assert add[2] == "14" and add[3] == f"{want.value:.3f}"
    assert add[-1].startswith(want.verdict.upper())
    assert len(page.imgs) == 4 and all(i["src"].startswith("data:image/png;base64,")
                                       for i in page.imgs)
    # nothing loads from elsewhere, no script elements
    assert all(u.startswith("data:") or u.startswith("#") for u in page.urls)
    assert page.scripts == 0
    # user text is escaped
    assert "<b>tiny</b>" not in text and "&lt;b&gt;tiny&lt;/b&gt; &amp; mnist" in text
    for needle in ("definition versions", "engine v2, smile v1", mnist_result.provenance.device,
                   mnist_result.provenance.code_version, "spec hash", "ev1"):
        assert needle in text


def test_served_report_links_plot_urls(gaussian_result):
    page = _Page(report.render_report(gaussian_result, images="url"))
    assert [i["src"] for i in page.imgs] == ["plots/ground_truth.png"]
    assert "plots/ground_truth.svg" in page.urls
    custom = _Page(report.render_report(gaussian_result, images="url",
                                        plot_url=lambda n, f: f"/x/{n}.{f}"))
    assert custom.imgs[0]["src"] == "/x/ground_truth.png"
    assert _Page(report.render_report(gaussian_result, images="none")).imgs == []


def test_comparison_side_by_side(gaussian_result, gaussian_pass_result, mnist_result):
    pytest.importorskip("matplotlib")
    queued = _view(gaussian_result, EvaluationStatus.queued)
    entries = [report.Entry(_view(gaussian_result), gaussian_result, link="a"),
               report.Entry(_view(gaussian_pass_result), gaussian_pass_result),
               report.Entry(_view(mnist_result), mnist_result), report.Entry(queued, None)]
    text = report.render_compare(entries)
    page = _Page(text)
    gt = next(r for r in page.rows if r and r[0] == "ground_truth")
    fail, ok = gaussian_result.ratios[0], gaussian_pass_result.ratios[0]
    assert gt[1].startswith(f"{fail.value:.3f} FAIL") and gt[2].startswith(f"{ok.value:.3f} PASS")
    assert gt[3] == gt[4] == "–"
    assert [r for r in page.rows if r and r[0] == "status"][0][1:] == [
        "succeeded", "succeeded", "succeeded", "queued"]
    assert report.compare_labels(entries) == ["INFONCE #1", "INFONCE #2", "SMILE(tau=5.0)",
                                              "INFONCE #4"]
    assert {i["data-plot"] for i in page.imgs} == {"baseline", "independence",
                                                   "data_processing", "additivity",
                                                   "ground_truth"}
    with pytest.raises(ValueError):
        report.render_compare(entries, images="url")


def test_status_page_for_unfinished(gaussian_result):
    from micheck.contract import ErrorInfo, Progress

    view = _view(gaussian_result, EvaluationStatus.failed,
                 error=ErrorInfo(code="bad_input", message="<script>x</script>"),
                 progress=Progress(steps_done=3, steps_total=12))
    text = report.render_status(view)
    assert "&lt;script&gt;" in text and "<script>" not in text
    assert re.search(r"3/12 steps \(25%\)", text)
