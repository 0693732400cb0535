"""`micheck submit|status|results|cancel|list|report`: the service from a shell or a CI job.

Server and token: --url/--token, else MICHECK_URL / MICHECK_TOKEN (default URL
http://127.0.0.1:8000). Exit codes (``submit --wait`` and ``results``): 0 every verdict
passes, 1 some verdict fails (its interval lies wholly outside its band), 2 usage or input
errors (a bad spec, a request the server rejects as invalid), 3 service errors, a failed or
canceled evaluation, or a timeout, 4 none fails but some are inconclusive
(``--inconclusive pass|fail`` maps 4 to 0 or 1).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from micheck.clients.client import DEFAULT_URL, Client
from micheck.clients.errors import WaitTimeout

from micheck.contract import EvaluationResult, EvaluationStatus, EvaluationView
from micheck.errors import SpecError
from micheck.settings import ClientSettings
from micheck.verdicts import INCONCLUSIVE_POLICIES, exit_code

EXIT_OK, EXIT_FAILED_VERDICT, EXIT_USAGE, EXIT_SERVICE = 0, 1, 2, 3


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--url", help=f"service URL (env MICHECK_URL, default {DEFAULT_URL})")
    p.add_argument("--token", help="bearer token (env MICHECK_TOKEN)")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("submit", help="submit a spec to the service (CI: --wait --junit)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("spec", help="evaluation spec, YAML or JSON")
    p.add_argument("--wait", action="store_true",
                   help="wait for the verdict; exit 0 pass, 1 fail, 4 inconclusive, 3 error")
    p.add_argument("--inconclusive", choices=INCONCLUSIVE_POLICIES, default="exit4",
                   help="exit code of an inconclusive verdict: 4 (default), or as a pass or "
                        "a fail for pipelines that must be binary")
    p.add_argument("--timeout", type=float, default=3600.0,
                   help="seconds to wait (default 3600; exit 3 past it)")
    p.add_argument("--poll", type=float, default=2.0, help="first poll interval, seconds")
    p.add_argument("--junit", type=Path, metavar="FILE",
                   help="write JUnit XML (one testcase per test and t); needs --wait")
    p.add_argument("--json", action="store_true",
                   help="print JSON: the evaluation, or with --wait its full result")
    p.add_argument("--idempotency-key", metavar="K",
                   help="resubmitting with the same key returns the same evaluation "
                        "(e.g. the CI pipeline id)")
    p.add_argument("--force", action="store_true",
                   help="run again even if an identical evaluation has finished")
    _common(p)
    p.set_defaults(func=submit)

    p = sub.add_parser("status", help="status and progress of an evaluation")
    p.add_argument("id")
    p.add_argument("--json", action="store_true")
    _common(p)
    p.set_defaults(func=status)

    p = sub.add_parser("results", help="ratios and verdicts of a finished evaluation")
    p.add_argument("id")
    p.add_argument("--json", action="store_true", help="the full result as JSON")
    p.add_argument("--junit", type=Path, metavar="FILE", help="also write JUnit XML")
    p.add_argument("--inconclusive", choices=INCONCLUSIVE_POLICIES, default="exit4",
                   help="exit code of an inconclusive verdict (default 4)")
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


def _client(args: argparse.Namespace) -> Client:
    env = ClientSettings()
    return Client(args.url or env.url or DEFAULT_URL, args.token or env.token or None)


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


def _show_result(result: EvaluationResult, as_json: bool, inconclusive: str = "exit4") -> int:
    from micheck.render.table import ratio_table

    print(result.model_dump_json(indent=2) if as_json else ratio_table(result), flush=True)
    return exit_code(result.verdict, inconclusive)


def submit(args: argparse.Namespace) -> int:
    from micheck.render.junit import error_junit, to_junit
    from micheck.spec import load_spec

    if args.junit and not args.wait:
        raise SpecError("--junit needs --wait (the verdicts come at the end)")
    if args.timeout <= 0 or args.poll <= 0:
        raise SpecError("--timeout and --poll must be > 0 seconds")
    request = load_spec(args.spec)
    if args.force:
        request = request.model_copy(update={"force": True})
    with _client(args) as c:
        view = c.submit(request, idempotency_key=args.idempotency_key)
        how = ("deduplicated: an identical evaluation is " + view.status.value
               if view.deduplicated else view.status.value)
        _err(f"evaluation {view.id} {how} ({c.base_url}/v1/evaluations/{view.id})")
        if not args.wait:
            if args.json:
                print(view.model_dump_json(indent=2))
            else:
                print(view.id)
            return EXIT_OK
        name = request.label or f"micheck {request.estimator.name} on {request.dataset.name}"
        try:
            # a terminal shows a live bar: poll it more often than a CI log needs
            view = c.wait(view.id, args.timeout, poll=args.poll, progress=_progress(),
                          max_poll=5.0 if sys.stderr.isatty() else 15.0)
        except WaitTimeout as exc:
            _write(args.junit, error_junit(str(exc), name=name, evaluation_id=view.id,
                                           time=args.timeout))
            raise
        if view.status != EvaluationStatus.succeeded:
            why = f": {view.error.code}: {view.error.message}" if view.error else ""
            msg = f"evaluation {view.id} {view.status.value}{why}"
            _write(args.junit, error_junit(msg, name=name, evaluation_id=view.id))
            _err(f"micheck: {msg}")
            return EXIT_SERVICE
        result = c.results(view.id)
        _write(args.junit, to_junit(result, evaluation_id=view.id,
                                    url=f"{c.base_url}/v1/evaluations/{view.id}/report"))
        code = _show_result(result, args.json, args.inconclusive)
        _err(f"report: {c.base_url}/v1/evaluations/{view.id}/report")
        return code


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
    if view.error:
        print(f"error {view.error.code}: {view.error.message}")
    if view.worker:
        print(f"worker {view.worker}, attempt {view.attempts}")
    return EXIT_OK


def results(args: argparse.Namespace) -> int:
    from micheck.render.junit import to_junit

    with _client(args) as c:
        result = c.results(args.id)
    _write(args.junit, to_junit(result, evaluation_id=args.id))
    return _show_result(result, args.json, args.inconclusive)


def cancel(args: argparse.Namespace) -> int:
    with _client(args) as c:
        view = c.cancel(args.id)
    print(f"{view.id}  {view.status.value}"
          + ("  (stops between training steps)" if view.status == EvaluationStatus.running
             else ""))
    return EXIT_OK


def list_(args: argparse.Namespace) -> int:
    rows = []
    with _client(args) as c:
        for i, v in enumerate(c.list(args.estimator, args.dataset, args.status,
                                     page_size=min(max(args.limit, 1), 200))):
            if i >= args.limit:
                break
            if args.json:
                print(v.model_dump_json())
                continue
            verdict = "-" if v.verdict is None else v.verdict.upper()
            rows.append((v.id, v.status.value, v.request.estimator.name, v.request.dataset.name,
                         v.created_at.strftime("%Y-%m-%d %H:%M"), verdict,
                         v.request.label or ""))
    if not args.json:
        head = ("id", "status", "estimator", "dataset", "created", "verdict", "label")
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

