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
    assert set(failed) == {case_name(r) for r in mnist_result.ratios if not r.passed}
    assert suite.get("failures") == root.get("failures") == str(len(failed))
    assert suite.get("tests") == str(len(mnist_result.ratios))
    add = next(r for r in mnist_result.ratios if r.test == "additivity")
    msg = failed["additivity[t=14]"].get("message")
    # value, ideal, tolerance and the miss, all in the message
    assert f"ratio {add.value:.4g}" in msg and "expected 2 +/- 0.3" in msg
    assert f"outside by {abs(add.value - 2) - 0.3:.4g}" in msg
    assert failed["additivity[t=14]"].get("type") == "ToleranceExceeded"
    props = {p.get("name"): p.get("value") for p in suite.iter("property")}
    assert props["estimator"] == "smile" and props["dataset"] == "mnist"
    assert props["definition.smile"] == "1" and props["definition.engine"] == "1"
    assert props["seeds"] == "0, 1" and props["evaluation_id"] == "e1"
    assert props["code_version"] == mnist_result.provenance.code_version
    assert props["spec_hash"] == mnist_result.request.spec_hash()
    # the label is user text: escaped by the XML writer, read back intact
    assert suite.get("name") == "<b>tiny</b> & mnist"


def test_passing_result_has_no_failures(gaussian_pass_result):
    root = _parse(to_junit(gaussian_pass_result))
    assert root.get("failures") == "0"
    (case,) = root.iter("testcase")
    assert case.get("name") == "ground_truth" and case.find("failure") is None
    assert "expected 1 +/- 0.2" in case.find("system-out").text


def test_messages_for_each_kind_of_expectation():
    base = dict(ci_low=None, ci_high=None, per_seed=[0.5], transform="rows", note="")
    none = Ratio(test="additivity", t=7, value=None, ideal=2.0, passed=False, tolerance=0.3,
                 **{**base, "note": "no finite estimate"})
    assert miss(none) is None
    assert failure_message(none) == ("additivity[t=7]: no finite ratio; expected 2 +/- 0.3; "
                                     "no finite estimate")
    dp = Ratio(test="data_processing", t=None, value=1.4, ideal=1.0, passed=False, tolerance=0.15,
               **{**base, "transform": "rotation", "note": "ideal: at most 1 (Table 3)"})
    assert case_name(dp) == "data_processing[rotation]"
    assert abs(miss(dp) - 0.25) < 1e-9 and "at most 1.15" in failure_message(dp)
    falls = Ratio(test="baseline", t=21, value=0.3, ideal=None, passed=False, tolerance=0.1,
                  **{**base, "note": "falls from 0.600 at a smaller t (should not decrease)"})
    assert "falls from 0.600" in failure_message(falls)


def test_error_document_and_control_characters():
    root = _parse(error_junit("evaluation e9 failed: bad\x00 input <here>", evaluation_id="e9"))
    assert root.get("errors") == "1"
    err = root.find("testsuite/testcase/error")
    assert err.get("message") == "evaluation e9 failed: bad? input <here>"
