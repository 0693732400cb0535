"""The exit codes of every `micheck` command, and a verdict's code.

    0  pass (or, for a command without a verdict, success)
    1  fail: a verdict failed, or (by default) a point is inconclusive because training
       went wrong (non_finite, not_converged, non_positive)
    2  usage: a bad spec, flag or input (nothing ran)
    3  service: the service, the network, a download or the disk failed
    4  inconclusive for want of evidence (with --inconclusive exit4, the default)
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable

from micheck.verdicts import RESOLVABLE_BY_SEEDS, Verdict

EXIT_OK = EXIT_PASS = 0
EXIT_FAIL = 1
EXIT_USAGE = 2
EXIT_SERVICE = 3
EXIT_INCONCLUSIVE = 4
INCONCLUSIVE_POLICIES = ("exit4", "pass", "fail")
TRAINING_FAILURE_POLICIES = ("fail", "exit4", "pass")
# reasons that say the evidence is sound but not yet enough: `--inconclusive` maps them
EVIDENCE_SHORT: frozenset[str] = RESOLVABLE_BY_SEEDS | {"legacy"}
# reasons that say training went wrong: `--training-failure` maps them (default: fail)
TRAINING_FAILURE: frozenset[str] = frozenset({"non_finite", "not_converged", "non_positive"})


def add_exit_options(p: argparse.ArgumentParser) -> None:
    """The exit-code options of every command that waits for a verdict (run, submit,
    results, more-seeds): one definition, one meaning."""
    p.add_argument("--inconclusive", choices=INCONCLUSIVE_POLICIES, default="exit4",
                   help="exit code of a point inconclusive for want of evidence "
                        "(straddles_band, too_few_seeds): 4 (default), or as a pass or a "
                        "fail for pipelines that must be binary")
    p.add_argument("--training-failure", choices=TRAINING_FAILURE_POLICIES, default="fail",
                   help="exit code of a point inconclusive because training went wrong "
                        "(non_finite, not_converged, non_positive): 1 (default: fail), 4, "
                        "or 0")


def exit_code(verdict: Verdict, inconclusive: str = "exit4", *,
              reasons: Iterable[str | None] = (), training_failure: str = "fail") -> int:
    """0 pass, 1 fail, 4 inconclusive.

    An inconclusive evaluation's exit follows from why its points are inconclusive
    (`reasons`: the reason codes of its inconclusive rows): evidence short of a decision
    (straddles_band, too_few_seeds) maps by `inconclusive` (exit4 | pass | fail); a training
    failure (non_finite, not_converged, non_positive) maps by `training_failure` (fail by
    default, so a diverging estimator never passes a gate that tolerates inconclusives).
    Several kinds present: the strictest exit wins (1 over 4 over 0)."""
    if verdict == "pass":
        return EXIT_PASS
    if verdict == "fail":
        return EXIT_FAIL
    policy = {"pass": EXIT_PASS, "fail": EXIT_FAIL, "exit4": EXIT_INCONCLUSIVE}
    codes = set()
    for r in reasons:
        if r in TRAINING_FAILURE:
            codes.add(policy[training_failure])
        elif r is not None:
            codes.add(policy[inconclusive])
    if not codes:
        codes.add(policy[inconclusive])
    for worst in (EXIT_FAIL, EXIT_INCONCLUSIVE, EXIT_PASS):
        if worst in codes:
            return worst
    return EXIT_INCONCLUSIVE
