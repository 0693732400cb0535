"""JUnit XML for CI systems: one testcase per (test, transform, t), so a pipeline's test
view shows which ratio failed and by how much.

Names read like ``additivity[t=14]``, ``data_processing[rotation]`` or ``ground_truth``;
a failed case says the value, its CI, the ideal, the tolerance and the miss.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

from micheck.contract import EvaluationResult, Ratio


def case_name(r: Ratio) -> str:
    parts = [] if r.transform == "rows" else [r.transform]
    if r.t is not None:
        parts.append(f"t={r.t}")
    if r.rho is not None:
        parts.append(f"rho={r.rho:g}")
    return f"{r.test}[{', '.join(parts)}]" if parts else r.test


def _num(x: float | None) -> str:
    return "nan" if x is None else f"{x:.4g}"


def expectation(r: Ratio) -> str:
    """What the verdict asked of the ratio, in words."""
    tol = f"{r.tolerance:g}"
    if r.note.startswith("ideal: at most"):
        return f"at most {1 + r.tolerance:g} (ideal <= 1, tolerance {tol})"
    if r.note.startswith("ideal: between"):
        return f"between {-r.tolerance:g} and {1 + r.tolerance:g} (tolerance {tol})"
    if r.ideal is None:
        return f"non-decreasing in t and at most {1 + r.tolerance:g} (tolerance {tol})"
    return f"{r.ideal:g} +/- {tol}"


def miss(r: Ratio) -> float | None:
    """How far outside its allowed band the ratio lies (<= 0 inside); None if unknown."""
    v = r.value
    if v is None:
        return None
    if r.note.startswith("ideal: at most"):
        return v - (1 + r.tolerance)
    if r.note.startswith("ideal: between") or r.ideal is None:
        return max(-r.tolerance - v, v - (1 + r.tolerance))
    return abs(v - r.ideal) - r.tolerance


def failure_message(r: Ratio) -> str:
    ci = "" if r.ci_low is None else f" (95% CI [{_num(r.ci_low)}, {_num(r.ci_high)}])"
    if r.value is None:
        return f"{case_name(r)}: no finite ratio; expected {expectation(r)}" + (
            f"; {r.note}" if r.note else "")
    m = miss(r)
    text = f"{case_name(r)}: ratio {_num(r.value)}{ci}, expected {expectation(r)}"
    if m is not None and m > 0:
        text += f": outside by {m:.4g}"
    if r.note and not r.note.startswith("ideal:"):
        text += f"; {r.note}"
    return text


def _suite(result: EvaluationResult, name: str, props: dict[str, str]) -> ET.Element:
    failures = sum(not r.passed for r in result.ratios)
    suite = ET.Element("testsuite", name=name, tests=str(len(result.ratios)),
                       failures=str(failures), errors="0", skipped="0",
                       time=f"{result.provenance.wall_seconds:.3f}",
                       timestamp=result.provenance.started_at.isoformat())
    pe = ET.SubElement(suite, "properties")
    for key, value in props.items():
        ET.SubElement(pe, "property", name=key, value=value)
    est, ds = result.request.estimator, result.request.dataset
    classname = f"micheck.{est.name}.{ds.name}"
    for r in result.ratios:
        case = ET.SubElement(suite, "testcase", name=case_name(r), classname=classname,
                             time="0")
        seeds = ", ".join(_num(v) for v in r.per_seed)
        if not r.passed:
            msg = failure_message(r)
            ET.SubElement(case, "failure", message=msg, type="ToleranceExceeded").text = (
                f"{msg}\nper seed: [{seeds}]")
        else:
            ET.SubElement(case, "system-out").text = (
                f"ratio {_num(r.value)}, expected {expectation(r)}; per seed: [{seeds}]")
    if result.diagnostics:
        ET.SubElement(suite, "system-err").text = "\n".join(
            f"{d.severity.upper()} {d.code}: {d.message}" for d in result.diagnostics)
    return suite


def properties(result: EvaluationResult, evaluation_id: str | None = None,
               url: str | None = None) -> dict[str, str]:
    req, prov = result.request, result.provenance
    props = {"estimator": req.estimator.name,
             "estimator.params": ", ".join(f"{k}={v}" for k, v in req.estimator.params.items()),
             "critic": f"{req.estimator.critic.kind}/{req.estimator.critic.arch or 'auto'}",
             "train": (f"batch {req.estimator.train.batch_size}, "
                       f"{req.estimator.train.steps} steps, lr {req.estimator.train.lr:g}"),
             "dataset": req.dataset.name, "seeds": ", ".join(map(str, prov.seeds)),
             "device": prov.device, "code_version": prov.code_version,
             "torch_version": prov.torch_version, "spec_hash": req.spec_hash()}
    props.update({f"definition.{k}": v for k, v in sorted(prov.definition_versions.items())})
    if evaluation_id:
        props["evaluation_id"] = evaluation_id
    if url:
        props["report_url"] = url
    return props


def to_junit(result: EvaluationResult, *, evaluation_id: str | None = None,
             url: str | None = None) -> str:
    """The JUnit XML document (UTF-8 text) for one evaluation's result."""
    req = result.request
    name = req.label or f"micheck {req.estimator.name} on {req.dataset.name}"
    suite = _suite(result, name, properties(result, evaluation_id, url))
    root = ET.Element("testsuites", name="micheck", tests=suite.get("tests", "0"),
                      failures=suite.get("failures", "0"), errors="0", time=suite.get("time"))
    root.append(suite)
    return _serialise(root)


def error_junit(message: str, *, name: str = "micheck", evaluation_id: str | None = None,
                time: float = 0.0) -> str:
    """A one-case document with an <error> for evaluations that never produced verdicts
    (failed, canceled, timed out), so the CI test view still says why."""
    root = ET.Element("testsuites", name="micheck", tests="1", failures="0", errors="1",
                      time=f"{time:.3f}")
    suite = ET.SubElement(root, "testsuite", name=name, tests="1", failures="0", errors="1",
                          skipped="0", time=f"{time:.3f}")
    if evaluation_id:
        pe = ET.SubElement(suite, "properties")
        ET.SubElement(pe, "property", name="evaluation_id", value=evaluation_id)
    case = ET.SubElement(suite, "testcase", name="evaluation", classname="micheck", time="0")
    ET.SubElement(case, "error", message=message, type="EvaluationError").text = message
    return _serialise(root)


_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f]")  # control characters XML 1.0 forbids


def _serialise(root: ET.Element) -> str:
    ET.indent(root)
    text = ET.tostring(root, encoding="unicode")
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + _NOT_XML.sub("?", text)
