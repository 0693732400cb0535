"""The exit codes of every `micheck` command, and a verdict's code.

    0  pass (or, for a command without a verdict, success)
    1  fail: a verdict failed
    2  usage: a bad spec, flag or input (nothing ran)
    3  service: the service, the network, a download or the disk failed
    4  inconclusive (with --inconclusive exit4, the default)
"""

from __future__ import annotations

from micheck.verdicts import Verdict

EXIT_OK = EXIT_PASS = 0
EXIT_FAIL = 1
EXIT_USAGE = 2
EXIT_SERVICE = 3
EXIT_INCONCLUSIVE = 4
INCONCLUSIVE_POLICIES = ("exit4", "pass", "fail")


def exit_code(verdict: Verdict, inconclusive: str = "exit4") -> int:
    """0 pass, 1 fail, 4 inconclusive (or 0/1 where a pipeline must be binary)."""
    if verdict == "pass":
        return EXIT_PASS
    if verdict == "fail":
        return EXIT_FAIL
    return {"pass": EXIT_PASS, "fail": EXIT_FAIL}.get(inconclusive, EXIT_INCONCLUSIVE)
