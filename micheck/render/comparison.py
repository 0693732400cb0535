"""A baseline comparison (micheck.compare) as an aligned table and as a JUnit test suite
appended to an evaluation's JUnit document (one case per point; a regressed point fails)."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from micheck.contract import Comparison, PointComparison
from micheck.render.junit import _serialise


def num(x: float | None) -> str:
    return "-" if x is None else f"{x:.3f}"


def point_name(p: PointComparison) -> str:
    parts = [] if p.transform == "rows" else [p.transform]
    if p.kind == "step":
        parts.append(f"step t={p.t_from}->{p.t}")
    elif p.t is not None:
        parts.append(f"t={p.t}")
    if p.rho is not None:
        parts.append(f"rho={p.rho:g}")
    return f"{p.test}[{', '.join(parts)}]" if parts else p.test


def ci_text(p: PointComparison) -> str:
    """The evidence of the change: the test's p-value (Holm decides over the points)."""
    if p.p_value is not None:
        return f"p={p.p_value:.2g}"
    return "-" if p.ci_low is None else f"[{num(p.ci_low)}, {num(p.ci_high)}]"


def comparison_table(c: Comparison) -> str:
    head = ("point", "baseline", "now", "difference", "test", "verdicts", "regression")
    rows = [head] + [(point_name(p), num(p.baseline_ratio), num(p.ratio), num(p.difference),
                      ci_text(p), f"{p.baseline_verdict or '-'} -> {p.verdict}", p.regression)
                     for p in c.points]
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    lines = ["  ".join(x.ljust(w) for x, w in zip(r, widths, strict=True)).rstrip()
             for r in rows]
    n = sum(p.regression == "regressed" for p in c.points)
    lines.append(f"baseline {c.baseline_id}: " + (f"REGRESSION at {n} point(s)" if n
                                                  else "no regression")
                 + f" (Holm over {c.tested} tested point(s), family-wise {c.alpha:g})")
    return "\n".join(lines)


def add_to_junit(xml_text: str, c: Comparison) -> str:
    """The document with a "regression" suite added (and the root's counts updated)."""
    root = ET.fromstring(xml_text.split("?>", 1)[-1] if xml_text.startswith("<?xml")
                         else xml_text)
    failures = sum(p.regression == "regressed" for p in c.points)
    suite = ET.SubElement(root, "testsuite", name="regression against baseline",
                          tests=str(len(c.points)), failures=str(failures), errors="0",
                          skipped="0", time="0")
    props = ET.SubElement(suite, "properties")
    ET.SubElement(props, "property", name="baseline_id", value=c.baseline_id)
    for p in c.points:
        case = ET.SubElement(suite, "testcase", name=point_name(p),
                             classname="micheck.regression", time="0")
        text = (f"{point_name(p)}: ratio {num(p.ratio)} vs baseline {num(p.baseline_ratio)}"
                f", difference {num(p.difference)} ({ci_text(p)}), verdict "
                f"{p.baseline_verdict or '-'} -> {p.verdict}: {p.regression}"
                + (f"; {p.note}" if p.note else ""))
        if p.regression == "regressed":
            ET.SubElement(case, "failure", message=text, type="Regression").text = text
        else:
            ET.SubElement(case, "system-out").text = text
    root.set("tests", str(int(root.get("tests", "0")) + len(c.points)))
    root.set("failures", str(int(root.get("failures", "0")) + failures))
    return _serialise(root)

