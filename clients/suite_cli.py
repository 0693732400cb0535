"""`micheck suite run|list`: submit a named suite for one estimator, list the suites.

``micheck suite run standard --estimator smile --param tau=5.0`` reads the suite's
definition from the server (``GET /v1/suites/{name}``: stored there on first use, so every
submitter runs the same points) and submits one evaluation per point through
POST /v1/evaluations, each labelled ``suite``, ``suite_version`` and ``suite_point``
(micheck.suites), which is how ``GET /v1/league`` finds them. A point the estimator cannot
run (MIGE estimates gradients only) is skipped with its reason. An identical evaluation
done before without the suite's labels is run again (``force``): the league reads labels.
With ``--wait`` each evaluation is followed to its end and its point's row printed; the
exit code is 0 when every submitted evaluation succeeded (verdicts are the league's data,
not a gate), 3 when one failed, was canceled or outlived --timeout, 2 when no point fits.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from micheck.clients.cli import _client, _common, _err, _labels
from pydantic import ValidationError

from micheck import suites as registry
from micheck.contract import EvaluationStatus, EvaluationView
from micheck.errors import SpecError
from micheck.exits import EXIT_OK, EXIT_SERVICE, EXIT_USAGE
from micheck.suites import Suite


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("suite", help="submit a named suite of evaluations (the league)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ss = p.add_subparsers(dest="suite_command", required=True)
    r = ss.add_parser("run", help="one evaluation per point of a suite, for one estimator")
    r.add_argument("suite", help="suite name, e.g. standard (micheck suite list)")
    r.add_argument("--version", type=int, help="suite version (default: the newest)")
    r.add_argument("--estimator", required=True, help="estimator name")
    r.add_argument("--param", action="append", default=[], metavar="K=V",
                   help="estimator parameter (repeatable; V read as JSON when it parses, "
                        "e.g. --param tau=5.0)")
    r.add_argument("--label", action="append", default=[], metavar="K=V",
                   help="another label on every evaluation (repeatable)")
    r.add_argument("--wait", action="store_true", help="wait for every evaluation to end")
    r.add_argument("--timeout", type=float, default=6 * 3600.0,
                   help="seconds to wait for all of them (default 21600)")
    r.add_argument("--poll", type=float, default=2.0, help="first poll interval, seconds")
    r.add_argument("--json", action="store_true", help="one JSON object per point")
    _common(r)
    r.set_defaults(func=run)
    ls = ss.add_parser("list", help="the suites the server has (stored or registered)")
    ls.add_argument("--json", action="store_true", help="the suites as JSON")
    _common(ls)
    ls.set_defaults(func=list_)


def parse_params(items: list[str]) -> dict[str, Any]:
    """``K=V`` estimator parameters; V as JSON when it parses (5.0, 3, true), else text."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise SpecError(f"--param {item!r}: expected KEY=VALUE")
        try:
            out[key.strip()] = json.loads(text)
        except ValueError:
            out[key.strip()] = text
    return out


def _suite_from_server(c: Any, name: str, version: int | None) -> Suite:
    view = c.suite(name, version)
    return Suite.from_definition(view.model_dump(mode="json", exclude={"stored_at"}))


def _has_labels(view: EvaluationView, labels: dict[str, str]) -> bool:
    return all(view.request.labels.get(k) == v for k, v in labels.items())


def run(args: argparse.Namespace) -> int:
    """Submit every point that fits the estimator; with --wait, follow them to the end."""
    params, extra = parse_params(args.param), _labels(args.label)
    if args.timeout <= 0 or args.poll <= 0:
        raise SpecError("--timeout and --poll must be > 0 seconds")
    with _client(args) as c:
        suite = _suite_from_server(c, args.suite, args.version)
        submitted: list[tuple[str, EvaluationView]] = []
        for point in suite.points:
            try:
                request = registry.request_for(suite, point, args.estimator, params, extra)
            except ValidationError as exc:  # the estimator does not fit this point
                reason = "; ".join(e["msg"] for e in exc.errors())
                _err(f"skip {point.id}: {reason[:300]}")
                continue
            except ValueError as exc:  # a --label that would replace a suite label
                raise SpecError(str(exc)) from None
            view = c.submit(request)
            if view.deduplicated and not _has_labels(view, registry.labels_for(suite, point)):
                _err(f"{point.id}: an identical evaluation {view.id} has no suite labels; "
                     "running it again for the league")
                view = c.submit(request, force=True)
            submitted.append((point.id, view))
            _err(f"{point.id}: evaluation {view.id} {view.status.value}")
        if not submitted:
            _err(f"micheck: {args.estimator} fits no point of {suite.name} v{suite.version}")
            return EXIT_USAGE
        code = EXIT_OK
        if args.wait:
            deadline = time.monotonic() + args.timeout
            done = []
            for pid, view in submitted:
                left = deadline - time.monotonic()
                try:
                    view = c.wait(view.id, max(left, 0.001), poll=args.poll)
                except Exception as exc:  # noqa: BLE001 (a timeout or an error: reported)
                    _err(f"{pid}: {exc}")
                    code = EXIT_SERVICE
                if view.status != EvaluationStatus.succeeded:
                    code = EXIT_SERVICE
                done.append((pid, view))
            submitted = done
    for pid, view in submitted:
        if args.json:
            print(json.dumps({"point": pid, "evaluation_id": view.id,
                              "status": view.status.value, "verdict": view.verdict}))
        else:
            verdict = "" if view.verdict is None else view.verdict
            print(f"{pid}\t{view.id}\t{view.status.value}\t{verdict}".rstrip())
    sys.stdout.flush()
    return code


def list_(args: argparse.Namespace) -> int:
    """The server's suites: name, version, points, when stored."""
    with _client(args) as c:
        views = c.suites()
    for v in views:
        if args.json:
            print(v.model_dump_json())
        else:
            stored = v.stored_at.strftime("%Y-%m-%d %H:%M") if v.stored_at else "not used yet"
            print(f"{v.name}\tv{v.version}\t{len(v.points)} points\t{stored}\t{v.title}")
    return EXIT_OK
