"""What the report routes share (service/routes/reports.py with a token, routes/share.py
through a signed link): the page headers, the images mode, and the plot responses with
their in-memory cache.

A finished evaluation's result never changes, so a rendered plot is cached by
(evaluation ids, result attempts, name, format). Plots need matplotlib (the ``report``
extra); without it they answer 501 and the report shows its tables only.
"""

from __future__ import annotations

import importlib.util
import threading
from collections import OrderedDict

from fastapi.responses import HTMLResponse, Response
from micheck.service.problems import ProblemError

from micheck.contract import EvaluationResult, EvaluationView
from micheck.render import report

MEDIA = {"png": "image/png", "svg": "image/svg+xml"}
# The page's only script is the images' onload/onerror attributes; nothing loads from
# elsewhere. Defence in depth: every user string is escaped already.
CSP = ("default-src 'none'; img-src 'self' data:; style-src 'unsafe-inline'; "
       "script-src 'unsafe-inline'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
HTML_HEADERS = {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff",
                "Cache-Control": "no-store"}


class _Cache:
    """A small LRU of rendered plots, keyed by evaluation ids + result attempts."""

    def __init__(self, size: int = 128):
        self.size, self.items, self.lock = size, OrderedDict(), threading.Lock()

    def get(self, key: tuple) -> bytes | None:
        with self.lock:
            if key in self.items:
                self.items.move_to_end(key)
                return self.items[key]
            return None

    def put(self, key: tuple, value: bytes) -> None:
        with self.lock:
            self.items[key] = value
            while len(self.items) > self.size:
                self.items.popitem(last=False)


_plots = _Cache()


def has_matplotlib() -> bool:
    return importlib.util.find_spec("matplotlib") is not None


def images_mode(embed: bool = False) -> report.Images:
    """``embed``: plots inlined as data: URIs; else URLs to the plot routes when this
    server can draw them, else none."""
    return "embed" if embed else "url" if has_matplotlib() else "none"


def report_response(view: EvaluationView, result: EvaluationResult | None, *,
                    images: report.Images, headers: dict[str, str] | None = None,
                    **kw: object) -> HTMLResponse:
    """The report page of one evaluation, or its status page while it has no result."""
    headers = headers or HTML_HEADERS
    if result is None:
        return HTMLResponse(report.render_status(view), headers=headers)
    return HTMLResponse(report.render_report(result, view=view, images=images, **kw),
                        headers=headers)


def plot_response(key: tuple, series: list[tuple[str, EvaluationResult]], name: str,
                  fmt: str) -> Response:
    """One plot (cached under ``key``): 501 without matplotlib, 404 for an unknown name."""
    from micheck.render.plots import render_series

    if not has_matplotlib():
        raise ProblemError(501, "plots need matplotlib on the server "
                                "(pip install 'micheck[report]')", title="Not implemented")
    data = _plots.get(key)
    if data is None:
        try:
            data = render_series(series, name, fmt)
        except KeyError:
            raise ProblemError(404, f"no plot {name!r} for this evaluation") from None
        _plots.put(key, data)
    return Response(data, media_type=MEDIA[fmt],
                    headers={"Cache-Control": "private, max-age=86400"})


def evaluation_plot(evaluation_id: str, view: EvaluationView, result: EvaluationResult | None,
                    attempt: int | None, name: str, fmt: str) -> Response:
    """One evaluation's plot: 409 before it succeeds."""
    if result is None:
        raise ProblemError(409, f"evaluation is {view.status.value}: no plots before it "
                                "succeeds")
    from micheck.render.plots import series_label

    return plot_response((evaluation_id, attempt, name, fmt), [(series_label(result), result)],
                         name, fmt)
