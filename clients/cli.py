"""`micheck submit|status|results|cancel|list|report`: the service from a shell or a CI job.

Server and token: --url/--token, else MICHECK_URL / MICHECK_TOKEN; with neither URL the
command stops with a one-line message (no silent default: on a fork's pull request a CI
secret is empty). Exit codes (``submit --wait`` and ``results``): 0 every verdict passes,
1 some verdict fails (its interval lies wholly outside its band), 2 usage or input errors
(a bad spec, a request the server rejects as invalid), 3 service errors (bad token,
unreachable box), a failed or canceled evaluation, or a timeout, 4 none fails but some are
inconclusive (``--inconclusive pass|fail`` maps 4 to 0 or 1); 130/143 after
SIGINT/SIGTERM, which first cancel the evaluation on the box (unless --detach).
``submit --junit FILE`` writes the JUnit file on every exit: the verdicts, or one errored
testcase that says why there are none.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

from micheck.clients.client import Client
from micheck.clients.errors import Unauthorized, Unreachable, WaitTimeout

from micheck.contract import EvaluationResult, EvaluationStatus, EvaluationView
from micheck.errors import ApiError, SpecError
from micheck.exits import EXIT_FAIL, EXIT_OK, EXIT_SERVICE, add_exit_options
from micheck.settings import ClientSettings


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--url", help="service URL (env MICHECK_URL; required)")
    p.add_argument("--token", help="bearer token (env MICHECK_TOKEN)")


def _wait_options(p: argparse.ArgumentParser) -> None:
    """The options of a command that starts an evaluation and may wait for its verdict."""
    p.add_argument("--wait", action="store_true",
                   help="wait for the verdict; exit 0 pass, 1 fail, 4 inconclusive, 3 error")
    add_exit_options(p)
    p.add_argument("--timeout", type=float, default=3600.0,
                   help="seconds to wait (default 3600; exit 3 past it)")
    p.add_argument("--poll", type=float, default=2.0, help="first poll interval, seconds")
    p.add_argument("--junit", type=Path, metavar="FILE",
                   help="write JUnit XML (one testcase per test and t; on any error one "
                        "errored testcase saying why); needs --wait")
    p.add_argument("--out", type=Path, metavar="FILE",
                   help="write the results JSON (as `results --json`); needs --wait")
    p.add_argument("--html", type=Path, metavar="FILE",
                   help="save the HTML report (plots inlined) when it finishes; needs --wait")
    p.add_argument("--detach", action="store_true",
                   help="on SIGINT/SIGTERM leave the evaluation running on the box "
                        "(default: cancel it before exiting)")
    p.add_argument("--json", action="store_true",
                   help="print JSON: the evaluation, or with --wait its full result")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("submit", help="submit a spec to the service (CI: --wait --junit)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("spec", help="evaluation spec, YAML or JSON")
    _wait_options(p)
    p.add_argument("--idempotency-key", metavar="K",
                   help="resubmitting with the same key returns the same evaluation "
                        "(e.g. the CI pipeline id)")
    p.add_argument("--force", action="store_true",
                   help="run again even if an identical evaluation has finished")
    p.add_argument("--label", action="append", default=[], metavar="K=V",
                   help="tag the evaluation (repeatable; added to the spec's labels), e.g. "
                        "--label branch=main --label git_sha=$CI_COMMIT_SHA")
    p.add_argument("--baseline", metavar="ID|K=V,...",
                   help="compare with an evaluation id, or the latest succeeded evaluation "
                        "of the same spec with these labels (e.g. branch=main); needs --wait")
    p.add_argument("--fail-on-regression", action="store_true",
                   help="exit 1 when a point regressed against the baseline")
    _common(p)
    p.set_defaults(func=submit)

    p = sub.add_parser("more-seeds", help="add seeds to a finished evaluation whose verdicts "
                       "are inconclusive for want of them (one more look, pooled)")
    p.add_argument("id", help="a succeeded evaluation (or the last one that added seeds to it)")
    p.add_argument("add", type=int, help="how many new seeds (1-64)")
    _wait_options(p)
    _common(p)
    p.set_defaults(func=more_seeds, fail_on_regression=False)

    p = sub.add_parser("status", help="status and progress of an evaluation")
    p.add_argument("id")
    p.add_argument("--json", action="store_true")
    _common(p)
    p.set_defaults(func=status)

    p = sub.add_parser("results", help="ratios and verdicts of a finished evaluation")
    p.add_argument("id")
    p.add_argument("--json", action="store_true", help="the full result as JSON")
    p.add_argument("--junit", type=Path, metavar="FILE", help="also write JUnit XML")
    add_exit_options(p)
    _common(p)
    p.set_defaults(func=results)

    p = sub.add_parser("cancel", help="cancel a queued or running evaluation")
    p.add_argument("id")
    _common(p)
    p.set_defaults(func=cancel)

    p = sub.add_parser("list", help="evaluations, newest first")
    p.add_argument("--estimator")
    p.add_argument("--dataset")
    p.add_argument("--status", choices=[s.value for s in EvaluationStatus])
    p.add_argument("--label", action="append", default=[], metavar="K=V",
                   help="only evaluations with this label (repeatable: all must match)")
    p.add_argument("--since", metavar="TIME", help="created at or after (ISO 8601; UTC "
                                                   "when no zone)")
    p.add_argument("--until", metavar="TIME", help="created before (ISO 8601)")
    p.add_argument("--limit", type=int, default=50, help="at most this many (default 50)")
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    _common(p)
    p.set_defaults(func=list_)

    p = sub.add_parser("report", help="save the HTML report of one evaluation, or a "
                                      "comparison of several")
    p.add_argument("ids", nargs="+", metavar="ID")
    p.add_argument("--out", type=Path, default=Path("report.html"),
                   help="HTML file to write (default report.html)")
    p.add_argument("--local", action="store_true",
                   help="render here from the results (needs micheck[report]) instead of "
                        "fetching the server's page")
    _common(p)
    p.set_defaults(func=report)


def _labels(items: list[str]) -> dict[str, str]:
    """``K=V`` (or ``K:V``) arguments as a mapping; a one-line error for anything else."""
    out: dict[str, str] = {}
    for item in items:
        eq, colon = item.find("="), item.find(":")
        cut = min(i for i in (eq, colon) if i >= 0) if max(eq, colon) >= 0 else -1
        if cut <= 0:
            raise SpecError(f"--label {item!r}: expected KEY=VALUE")
        out[item[:cut]] = item[cut + 1:]
    return out


def _baseline_query(text: str) -> str:
    """--baseline: an id as is; K=V,K2=V2 (or K:V) as the API's 'k:v,k2:v2' query."""
    from micheck.contract import parse_baseline

    if "=" in text:
        text = ",".join(f"{k}:{v}" for k, v in _labels(text.split(",")).items())
    try:
        parse_baseline(text)
    except ValueError as exc:
        raise SpecError(f"--{exc}") from None
    return text


def _when(value: str | None, flag: str) -> datetime | None:
    if not value:
        return None
    try:
        t = datetime.fromisoformat(value)
    except ValueError:
        raise SpecError(f"{flag} {value!r}: not an ISO 8601 time (e.g. 2026-11-29T12:00)"
                        ) from None
    return t if t.tzinfo else t.replace(tzinfo=timezone.utc)


def _client(args: argparse.Namespace) -> Client:
    env = ClientSettings()
    url = args.url or env.url
    if not url:
        raise SpecError("no service URL: pass --url or set MICHECK_URL (in CI: is the secret "
                        "available to this job? forks' pull requests get none)")
    return Client(url, args.token or env.token or None)


def _err(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _progress():
    from micheck.render.table import ProgressLine

    bar = ProgressLine(sys.stderr)
    last: list[str | None] = [None]

    def show(view: EvaluationView) -> None:
        p = view.progress
        if view.status == EvaluationStatus.queued:
            if last[0] != "queued":
                _err(f"queued (attempt {view.attempts + 1})")
        elif p.steps_total:
            bar.update(p.steps_done, p.steps_total, p.current or view.status.value)
        elif last[0] != view.status.value:
            _err(view.status.value)
        last[0] = view.status.value

    return show


def _write(path: Path | None, text: str) -> None:
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        _err(f"wrote {path}")


def _show_result(result: EvaluationResult, as_json: bool, args: argparse.Namespace) -> int:
    from micheck.render.table import ratio_table

    print(result.model_dump_json(indent=2) if as_json else ratio_table(result), flush=True)
    return result.exit_code(args.inconclusive, args.training_failure)


def submit(args: argparse.Namespace) -> int:
    run = _JunitOnExit(args.junit)
    try:
        return _submit(args, run)
    except BaseException as exc:  # every exit leaves a JUnit file behind, then main() reports
        run.error(error_reason(exc))
        raise


def more_seeds(args: argparse.Namespace) -> int:
    run = _JunitOnExit(args.junit)
    try:
        needs_wait = [f"--{n}" for n in ("junit", "out", "html") if getattr(args, n)]
        if needs_wait and not args.wait:
            raise SpecError(f"{', '.join(needs_wait)} need(s) --wait")
        if not 1 <= args.add <= 64:
            raise SpecError(f"add: {args.add}: between 1 and 64 seeds")
        if args.timeout <= 0 or args.poll <= 0:
            raise SpecError("--timeout and --poll must be > 0 seconds")
        run.name = f"micheck more seeds for {args.id}"
        with _client(args) as c:
            view = c.more_seeds(args.id, args.add)
            run.evaluation_id = view.id
            _err(f"evaluation {view.id} adds {args.add} seeds to {args.id} "
                 f"({c.base_url}/v1/evaluations/{view.id})")
            return _follow(c, view, args, run)
    except BaseException as exc:
        run.error(error_reason(exc))
        raise


def _submit(args: argparse.Namespace, run: _JunitOnExit) -> int:
    from micheck.spec import load_spec, parse_spec

    needs_wait = [f"--{n}" for n in ("junit", "out", "html") if getattr(args, n)]
    if needs_wait and not args.wait:
        raise SpecError(f"{', '.join(needs_wait)} need(s) --wait (the verdicts come at the end)")
    if args.timeout <= 0 or args.poll <= 0:
        raise SpecError("--timeout and --poll must be > 0 seconds")
    request = load_spec(args.spec)
    if (args.baseline or args.fail_on_regression) and not args.wait:
        raise SpecError("--baseline and --fail-on-regression need --wait")
    if args.label or args.baseline:
        update: dict = {"labels": {**request.labels, **_labels(args.label)}}
        if args.baseline:
            update["baseline"] = _baseline_query(args.baseline)
        request = parse_spec({**request.model_dump(mode="json"), **update})
    if args.force:
        request = request.model_copy(update={"force": True})
    run.name = request.label or f"micheck {request.estimator.name} on {request.dataset.name}"
    with _client(args) as c:
        view = c.submit(request, idempotency_key=args.idempotency_key)
        run.evaluation_id = view.id
        how = ("deduplicated: an identical evaluation is " + view.status.value
               if view.deduplicated else view.status.value)
        _err(f"evaluation {view.id} {how} ({c.base_url}/v1/evaluations/{view.id})")
        if view.report_link:
            _err(f"report: {view.report_link}")
        return _follow(c, view, args, run, request.baseline)


def _follow(c: Client, view: EvaluationView, args: argparse.Namespace, run: _JunitOnExit,
            baseline: str | None = None) -> int:
    """After a submit (or more-seeds): print the id, or wait for the verdict, write the
    JUnit, JSON and HTML asked for, and return the exit code."""
    from micheck.render.junit import to_junit

    if not args.wait:
        if args.json:
            print(view.model_dump_json(indent=2))
        else:
            print(view.id)
        return EXIT_OK
    try:
        with _signals_raise():
            # a terminal shows a live bar: poll it more often than a CI log needs
            view = c.wait(view.id, args.timeout, poll=args.poll, progress=_progress(),
                          max_poll=5.0 if sys.stderr.isatty() else 15.0)
    except Stopped as stop:
        return _stopped(c, view.id, stop.signum, detach=args.detach, run=run)
    if view.status != EvaluationStatus.succeeded:
        why = f": {view.error.code}: {view.error.message}" if view.error else ""
        msg = f"evaluation {view.id} {view.status.value}{why}"
        run.error(msg)
        _err(f"micheck: {msg}")
        return EXIT_SERVICE
    result = c.results(view.id)
    junit = to_junit(result, evaluation_id=view.id, url=view.report_link)
    comparison = None
    if baseline:
        from micheck.clients.errors import NotFound

        from micheck.render.comparison import add_to_junit

        try:
            comparison = c.comparison(view.id, baseline)
            junit = add_to_junit(junit, comparison)
        except NotFound as exc:  # a first run has nothing to compare with
            _err(f"micheck: no comparison: {exc}")
    run.write(junit)
    _write(args.out, result.model_dump_json(indent=2))
    if args.html:
        try:
            _write(args.html, c.report_html(view.id))
        except ApiError as exc:  # the verdicts stand; the page is a convenience
            _err(f"micheck: no HTML report saved: {exc}")
    code = _show_result(result, args.json, args)
    if comparison is not None:
        from micheck.render.comparison import comparison_table

        print(comparison_table(comparison), flush=True)
        if comparison.regression and args.fail_on_regression:
            code = EXIT_FAIL
    _err(f"report: {view.report_link or f'{c.base_url}/v1/evaluations/{view.id}/report'}")
    return code


# ---- submit's ways out without verdicts: kept apart from the verdicts' JUnit -------------


class Stopped(Exception):
    """SIGINT or SIGTERM arrived while `submit --wait` was waiting."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


@contextlib.contextmanager
def _signals_raise() -> Iterator[None]:
    """While waiting, SIGINT and SIGTERM raise Stopped (a CI runner sends SIGTERM when a
    job is canceled or times out), so the evaluation can be canceled before exiting."""

    def handler(signum: int, _frame: object) -> None:
        raise Stopped(signum)

    try:
        old = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    except ValueError:  # not the main thread: signals are not ours to take
        yield
        return
    try:
        yield
    finally:
        for sig, previous in old.items():
            signal.signal(sig, previous)


def _stopped(c: Client, evaluation_id: str, signum: int, *, detach: bool,
             run: _JunitOnExit) -> int:
    """Cancel the evaluation (unless detached), say so, and exit 128 + the signal."""
    name = signal.Signals(signum).name
    if detach:
        msg = f"{name}: evaluation {evaluation_id} left running on the box (--detach)"
    else:
        try:
            view = c.cancel(evaluation_id)
            msg = f"{name}: evaluation {evaluation_id} {view.status.value} on the box" + (
                " (it stops between training steps)"
                if view.status == EvaluationStatus.running else "")
        except ApiError as exc:
            msg = f"{name}: could not cancel evaluation {evaluation_id}: {exc}"
    _err(f"micheck: {msg}")
    run.error(msg)
    return 128 + signum


def error_reason(exc: BaseException) -> str:
    """Why an evaluation has no verdicts, in one line for the JUnit error and the log."""
    if isinstance(exc, Unauthorized):
        return f"the box refused the token (check MICHECK_TOKEN): {exc}"
    if isinstance(exc, Unreachable):
        return str(exc)
    if isinstance(exc, WaitTimeout):
        return f"timed out: {exc}"
    if isinstance(exc, SpecError):
        return f"invalid input: {exc}"
    if isinstance(exc, ApiError):
        return f"service error: {exc}"
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted (SIGINT) outside the wait: the evaluation was not canceled"
    if isinstance(exc, SystemExit):
        return f"exited with {exc.code}"
    return f"{type(exc).__name__}: {exc}"


class _JunitOnExit:
    """The --junit file of one submit: written once, with verdicts or with one error."""

    def __init__(self, path: Path | None):
        self.path, self.written = path, False
        self.name, self.evaluation_id = "micheck", None
        self.started = time.monotonic()

    def write(self, text: str) -> None:
        if self.path is not None and not self.written:
            _write(self.path, text)
        self.written = True

    def error(self, message: str) -> None:
        from micheck.render.junit import error_junit

        if self.path is not None and not self.written:
            self.write(error_junit(message, name=self.name, evaluation_id=self.evaluation_id,
                                   time=time.monotonic() - self.started))


def status(args: argparse.Namespace) -> int:
    with _client(args) as c:
        view = c.get(args.id)
    if args.json:
        print(view.model_dump_json(indent=2))
        return EXIT_OK
    p = view.progress
    line = f"{view.id}  {view.status.value}"
    if p.steps_total:
        line += f"  {p.steps_done}/{p.steps_total} steps ({100 * p.steps_done / p.steps_total:.0f}%)"
    if p.current:
        line += f"  {p.current}"
    if view.verdict is not None:
        line += f"  verdict {view.verdict.upper()}"
    print(line)
    if view.report_link:
        print(f"report {view.report_link}")
    if view.error:
        print(f"error {view.error.code}: {view.error.message}")
    if view.worker:
        print(f"worker {view.worker}, attempt {view.attempts}")
    return EXIT_OK


def results(args: argparse.Namespace) -> int:
    from micheck.render.junit import to_junit

    with _client(args) as c:
        result = c.results(args.id)
        link = c.get(args.id).report_link if args.junit else None
    _write(args.junit, to_junit(result, evaluation_id=args.id, url=link))
    return _show_result(result, args.json, args)


def cancel(args: argparse.Namespace) -> int:
    with _client(args) as c:
        view = c.cancel(args.id)
    print(f"{view.id}  {view.status.value}"
          + ("  (stops between training steps)" if view.status == EvaluationStatus.running
             else ""))
    return EXIT_OK


def list_(args: argparse.Namespace) -> int:
    rows = []
    labels = _labels(args.label)
    since, until = _when(args.since, "--since"), _when(args.until, "--until")
    with _client(args) as c:
        for i, v in enumerate(c.list(args.estimator, args.dataset, args.status,
                                     labels=labels, created_after=since, created_before=until,
                                     page_size=min(max(args.limit, 1), 200))):
            if i >= args.limit:
                break
            if args.json:
                print(v.model_dump_json())
                continue
            verdict = "-" if v.verdict is None else v.verdict.upper()
            rows.append((v.id, v.status.value, v.request.estimator.name, v.request.dataset.name,
                         v.created_at.strftime("%Y-%m-%d %H:%M"), verdict,
                         " ".join([*([v.request.label] if v.request.label else []),
                                   *(f"{k}={x}" for k, x in sorted(v.request.labels.items()))])
                         ))
    if not args.json:
        head = ("id", "status", "estimator", "dataset", "created", "verdict", "labels")
        widths = [max(len(str(r[i])) for r in [head, *rows]) for i in range(len(head))]
        for r in [head, *rows]:
            print("  ".join(str(x).ljust(w) for x, w in zip(r, widths, strict=True)).rstrip())
    return EXIT_OK


def report(args: argparse.Namespace) -> int:
    from micheck.render import report as html

    with _client(args) as c:
        if not args.local:
            page = (c.report_html(args.ids[0]) if len(args.ids) == 1
                    else c.compare_html(args.ids))
        else:
            entries = []
            for eid in args.ids:
                view = c.get(eid)
                result = c.results(eid) if view.status == EvaluationStatus.succeeded else None
                entries.append(html.Entry(view, result))
            if len(entries) == 1 and entries[0].result is not None:
                page = html.render_report(entries[0].result, view=entries[0].view)
            elif len(entries) == 1:
                page = html.render_status(entries[0].view)  # type: ignore[arg-type]
            else:
                page = html.render_compare(entries)
    _write(args.out, page)
    print(args.out.resolve().as_uri())
    return EXIT_OK

