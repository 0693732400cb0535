"""JUnit XML from real results: one testcase per (test, transform, t), failures that say
by how much, properties that say what ran."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from micheck.contract import Ratio
from micheck.render.junit import case_name, error_junit, failure_message, miss, to_junit


def _parse(text: str) -> ET.Element:
    assert text.startswith('<?xml version="1.0" encoding="UTF-8"?>')
    return ET.fromstring(text.encode())


def test_one_case_per_ratio_with_failures_explained(mnist_result):
    root = _parse(to_junit(mnist_result, evaluation_id="e1", url="http://x/report"))
    suite = root.find("testsuite")
    cases = suite.findall("testcase")
    assert [c.get("name") for c in cases] == [case_name(r) for r in mnist_result.ratios]
    assert "additivity[t=14]" in [c.get("name") for c in cases]
    failed = {c.get("name"): c.find("failure") for c in cases if c.find("failure") is not None}
    skipped = {c.get("name"): c.find("skipped") for c in cases if c.find("skipped") is not None}
    assert set(failed) == {case_name(r) for r in mnist_result.ratios if r.verdict == "fail"}
    assert set(skipped) == {case_name(r) for r in mnist_result.ratios
                            if r.verdict == "inconclusive"}
    assert suite.get("failures") == root.get("failures") == str(len(failed))
    assert suite.get("skipped") == str(len(skipped))
    assert suite.get("tests") == str(len(mnist_result.ratios))
    for r in mnist_result.ratios:  # every message is built from the point's own fields
        el = failed.get(case_name(r)) or skipped.get(case_name(r))
        if el is None:
            continue
        msg = el.get("message")
        assert r.verdict in msg and f"{r.seeds} seeds" in msg and r.reason_code in msg
        if r.ci_low is not None:
            assert f"[{r.ci_low:.4g}, {r.ci_high:.4g}]" in msg
    props = {p.get("name"): p.get("value") for p in suite.iter("property")}
    assert props["estimator"] == "smile" and props["dataset"] == "mnist"
    assert props["definition.smile"] == "1" and props["definition.engine"] == "2"
    assert props["seeds"] == "0, 1, 2" and props["evaluation_id"] == "e1"
    assert props["code_version"] == mnist_result.provenance.code_version
    assert props["spec_hash"] == mnist_result.request.spec_hash()
    # the label is user text: escaped by the XML writer, read back intact
    assert suite.get("name") == "<b>tiny</b> & mnist"


def test_passing_result_has_no_failures(gaussian_pass_result):
    root = _parse(to_junit(gaussian_pass_result))
    assert root.get("failures") == "0"
    (case,) = root.iter("testcase")
    assert case.get("name") == "ground_truth" and case.find("failure") is None
    assert case.find("skipped") is None
    assert "inside ratio in [0.8, 1.2]" in case.find("system-out").text


def test_messages_for_each_kind_of_expectation():
    base = dict(per_seed=[0.5, 0.6, 0.7], transform="rows", note="", seeds=3, passed=False)
    none = Ratio(test="additivity", t=7, value=None, ci_low=None, ci_high=None, ideal=2.0,
                 tolerance=0.3, band_low=1.7, band_high=2.3, verdict="inconclusive",
                 reason_code="non_finite", reason="1 of 3 seeds gave no finite value", **base)
    assert miss(none) is None
    assert failure_message(none) == (
        "additivity[t=7]: inconclusive: no finite value, no interval over 3 seeds; needs "
        "ratio in [1.7, 2.3] (ideal 2) (non_finite: 1 of 3 seeds gave no finite value)")
    dp = Ratio(test="data_processing", t=None, value=1.4, ci_low=1.3, ci_high=1.5, ideal=1.0,
               tolerance=0.15, band_low=None, band_high=1.15, verdict="fail", ci_level=0.99,
               reason_code="outside_band", reason="outside", **{**base, "transform": "rotation"})
    assert case_name(dp) == "data_processing[rotation]"
    assert abs(miss(dp) - 0.15) < 1e-9 and "ratio <= 1.15" in failure_message(dp)
    assert "99% CI [1.3, 1.5]" in failure_message(dp) and "outside by 0.15" in failure_message(dp)
    falls = Ratio(test="baseline", t=21, t_from=14, kind="step", value=-0.3, ci_low=-0.4,
                  ci_high=-0.2, ideal=None, tolerance=0.1, band_low=-0.1, band_high=None,
                  verdict="fail", reason_code="outside_band", reason="falls", **base)
    assert case_name(falls) == "baseline_monotone[t=14->21]"
    assert "step r(t) - r(t_from) >= -0.1" in failure_message(falls)


def test_error_document_and_control_characters():
    root = _parse(error_junit("evaluation e9 failed: bad\x00 input <here>", evaluation_id="e9"))
    assert root.get("errors") == "1"
    err = root.find("testsuite/testcase/error")
    assert err.get("message") == "evaluation e9 failed: bad? input <here>"


def test_the_critic_property_states_width_and_blocks(mnist_result):
    req = mnist_result.request.model_copy(deep=True)
    req.estimator.critic = req.estimator.critic.model_copy(
        update={"kind": "joint", "arch": "cnn", "width": 0.25, "block": 16})
    result = mnist_result.model_copy(update={"request": req})
    props = {p.get("name"): p.get("value") for p in _parse(to_junit(result)).iter("property")}
    assert props["critic"] == "joint/cnn, width 0.25, pairs within blocks of 16"
