"""Plots from real results, PNG and SVG."""

from __future__ import annotations

import math
import struct
import xml.etree.ElementTree as ET

import pytest

pytest.importorskip("matplotlib")

from micheck.render import plots  # noqa: E402

PNG = b"\x89PNG\r\n\x1a\n"


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == PNG
    return struct.unpack(">II", data[16:24])


def test_available_names_follow_the_tests(mnist_result, gaussian_result):
    assert plots.available(mnist_result) == ["baseline", "independence", "data_processing",
                                             "additivity"]
    assert plots.available(gaussian_result) == ["ground_truth"]
    assert plots.available(gaussian_result, history=[(0, 0.1, 2.0)])[-1] == "staircase"


def test_png_and_svg(mnist_result):
    w, h = _png_size(plots.render(mnist_result, "additivity", "png"))
    assert (w, h) == (704, 440)  # 6.4 x 4.0 in at 110 dpi
    svg = plots.render(mnist_result, "data_processing", "svg")
    root = ET.fromstring(svg)
    assert root.tag.endswith("svg")
    text = svg.decode()
    assert "ideal = 1" in text and "rows used (t)" in text and "SMILE(tau=5.0)" in text
    # deterministic bytes (no dates, fixed hash salt): cacheable and diffable
    assert plots.render(mnist_result, "data_processing", "svg") == svg


def test_unknown_plot_or_format(gaussian_result):
    with pytest.raises(KeyError):
        plots.render(gaussian_result, "additivity")
    with pytest.raises(KeyError):
        plots.render(gaussian_result, "ground_truth", "gif")


def test_overlay_and_staircase(gaussian_result, gaussian_pass_result):
    both = plots.render_series([("short", gaussian_result), ("long", gaussian_pass_result)],
                               "ground_truth", "svg").decode()
    # two true MIs (5 and 1 nats): the plot shows estimate / true MI against the ideal 1
    assert "short: mean" in both and "long: mean" in both and "ideal ratio = 1" in both
    history = [(s, 2 * (s // 50 + 1) * (1 - math.exp(-(s % 50) / 10)), 2.0 * (s // 50 + 1))
               for s in range(250)]
    _png_size(plots.render(gaussian_result, "staircase", history=history))


def test_ground_truth_plots_the_truth_its_estimates_were_scored_against(gaussian_result):
    """bmi's tasks and image pairs know their MI from their params or the split, not from
    dataset.mi: the line is the recorded true_mi."""
    estimates = [e.model_copy(update={"true_mi": 0.4319}) if e.test == "ground_truth" else e
                 for e in gaussian_result.estimates]
    result = gaussian_result.model_copy(update={"estimates": estimates})
    assert result.request.dataset.mi != 0.4319
    assert "true MI = 0.4319 nats" in plots.render(result, "ground_truth", "svg").decode()
