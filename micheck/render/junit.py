"""JUnit XML for CI systems: one testcase per decided point, so a pipeline's test view
shows which ratio failed and by how much.

Names read like ``additivity[t=14]``, ``data_processing[rotation]``, ``ground_truth`` or
``baseline_monotone[t=7->14]``. A fail is a <failure>, an inconclusive point is <skipped>
with its reason, a pass prints its interval; every message states the value, the interval,
the band and the reason, all read from the result's fields.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

from micheck.contract import CriticSpec, EvaluationResult, Ratio


def case_name(r: Ratio) -> str:
    parts = [] if r.transform == "rows" else [r.transform]
    if r.kind == "step":
        parts.append(f"t={r.t_from}->{r.t}")
    elif r.t is not None:
        parts.append(f"t={r.t}")
    if r.rho is not None:
        parts.append(f"rho={r.rho:g}")
    name = r.test + ("_monotone" if r.kind == "step" else "")
    return f"{name}[{', '.join(parts)}]" if parts else name


def _num(x: float | None) -> str:
    return "nan" if x is None else f"{x:.4g}"


def band_text(r: Ratio) -> str:
    """The band a point had to lie in, from its stored edges."""
    lo, hi = r.band_low, r.band_high
    what = "step r(t) - r(t_from)" if r.kind == "step" else "ratio"
    if lo is None and hi is None:
        return f"{what}: no band (stored before bands existed)"
    if lo is None:
        return f"{what} <= {hi:g}"
    if hi is None:
        return f"{what} >= {lo:g}"
    return f"{what} in [{lo:g}, {hi:g}]"


def expectation(r: Ratio) -> str:
    """What the verdict asked of the point, in words."""
    return band_text(r) + ("" if r.ideal is None else f" (ideal {r.ideal:g})")


def interval_text(r: Ratio) -> str:
    if r.ci_low is None or r.ci_high is None:
        return "no interval"
    level = "" if r.ci_level is None else f"{100 * r.ci_level:.4g}% "
    return f"{level}CI [{_num(r.ci_low)}, {_num(r.ci_high)}]"


def miss(r: Ratio) -> float | None:
    """How far the interval lies outside the band (> 0 only for a fail); None if unknown."""
    if r.ci_low is None or r.ci_high is None:
        return None
    gaps = [0.0]
    if r.band_low is not None:
        gaps.append(r.band_low - r.ci_high)
    if r.band_high is not None:
        gaps.append(r.ci_low - r.band_high)
    return max(gaps)


def failure_message(r: Ratio) -> str:
    """One line: the value, its interval, the band and why it did not pass."""
    value = "no finite value" if r.value is None else f"{_num(r.value)}"
    text = (f"{case_name(r)}: {r.verdict}: {value}, {interval_text(r)} over {r.seeds} seeds; "
            f"needs {expectation(r)}")
    m = miss(r)
    if r.verdict == "fail" and m is not None and m > 0:
        text += f"; outside by {m:.4g}"
    if r.reason:
        text += f" ({r.reason_code}: {r.reason})"
    return text


def _suite(result: EvaluationResult, name: str, props: dict[str, str]) -> ET.Element:
    counts = result.counts()
    suite = ET.Element("testsuite", name=name, tests=str(len(result.ratios)),
                       failures=str(counts["fail"]), errors="0",
                       skipped=str(counts["inconclusive"]),
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
        if r.verdict == "fail":
            msg = failure_message(r)
            ET.SubElement(case, "failure", message=msg, type="OutsideBand").text = (
                f"{msg}\nper seed: [{seeds}]")
        elif r.verdict == "inconclusive":
            ET.SubElement(case, "skipped", message=failure_message(r))
        else:
            ET.SubElement(case, "system-out").text = (
                f"pass: {_num(r.value)}, {interval_text(r)} inside {band_text(r)}; "
                f"per seed: [{seeds}]")
    if result.diagnostics:
        ET.SubElement(suite, "system-err").text = "\n".join(
            f"{d.severity.upper()} {d.code}: {d.message}" for d in result.diagnostics)
    return suite


def _critic(c: CriticSpec) -> str:
    """kind/arch, plus the width of a CNN and its blocks (what ran, for provenance)."""
    text = f"{c.kind}/{c.arch or 'auto'}"
    if c.width != 1.0:
        text += f", width {c.width:g}"
    return text + (f", pairs within blocks of {c.block}" if c.block else "")


def properties(result: EvaluationResult, evaluation_id: str | None = None,
               url: str | None = None) -> dict[str, str]:
    req, prov = result.request, result.provenance
    props = {"estimator": req.estimator.name,
             "estimator.params": ", ".join(f"{k}={v}" for k, v in req.estimator.params.items()),
             "critic": _critic(req.estimator.critic),
             "train": (f"batch {req.estimator.train.batch_size}, "
                       f"{req.estimator.train.steps} steps, lr {req.estimator.train.lr:g}"),
             "dataset": req.dataset.name, "seeds": ", ".join(map(str, prov.seeds)),
             "device": prov.device, "code_version": prov.code_version,
             "torch_version": prov.torch_version, "spec_hash": result.spec_hash()}
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
                      failures=suite.get("failures", "0"), errors="0",
                      skipped=suite.get("skipped", "0"), time=suite.get("time"))
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
