"""Service subcommands of `micheck`: serve, worker, up, token, db.

Only imported when the service extra is installed (micheck.cli falls back otherwise).
"""

from __future__ import annotations

import argparse
import logging
import os

from micheck.errors import MicheckError


def _logging() -> None:
    logging.basicConfig(level=os.environ.get("MICHECK_LOG_LEVEL", "INFO"),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)


def _settings():
    from service.settings import Settings

    return Settings()


def serve(args: argparse.Namespace) -> int:
    import uvicorn

    _logging()
    settings = _settings()
    host, port = args.host or settings.host, args.port or settings.port
    # the factory reads MICHECK_* itself, so --workers N processes share one configuration
    uvicorn.run("service.app:create_app", factory=True, host=host, port=port,
                workers=args.workers, log_level="info", proxy_headers=True)
    return 0


def worker(args: argparse.Namespace) -> int:
    from workers.worker import run_worker

    _logging()
    settings = _settings()
    queues = [q for item in args.queue or [] for q in item.split(",") if q] or None
    run_worker(settings, device=args.device, queues=queues, name=args.name, burst=args.burst)
    return 0


def up(args: argparse.Namespace) -> int:
    from service.up import run_up

    return run_up(args)


def token(args: argparse.Namespace) -> int:
    from service import auth
    from service.db import Database

    db = Database(_settings())
    try:
        if args.action == "create":
            print(auth.create_token(db, args.name, admin=args.admin))
        elif args.action == "revoke":
            auth.revoke_token(db, args.name)
            print(f"revoked {args.name}")
    finally:
        db.dispose()
    return 0


def db(args: argparse.Namespace) -> int:
    from service.db import make_engine
    from service.migrations import current_revision, head_revision, upgrade

    settings = _settings()
    engine = make_engine(settings.database_url)
    try:
        if args.action == "upgrade":
            upgrade(engine)
        print(f"database {engine.url.render_as_string(hide_password=True)}: revision "
              f"{current_revision(engine)} (head {head_revision()})")
    except MicheckError:
        raise
    except Exception as exc:  # connection refused, bad URL: one line, not a traceback
        raise MicheckError(f"database {settings.database_url.split('@')[-1]}: {exc}") from None
    finally:
        engine.dispose()
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="run the REST API (settings from MICHECK_* variables)")
    p.add_argument("--host", help="default MICHECK_HOST or 127.0.0.1")
    p.add_argument("--port", type=int, help="default MICHECK_PORT or 8000")
    p.add_argument("--workers", type=int, default=1, help="API processes")
    p.set_defaults(func=serve)

    p = sub.add_parser("worker", help="run an evaluation worker (RQ SpawnWorker)")
    p.add_argument("--device", help="cpu, cuda or cuda:N (default: cpu for the CPU queue, "
                                    "else cuda:0 of CUDA_VISIBLE_DEVICES)")
    p.add_argument("--queue", action="append",
                   help="queue(s) to serve, in priority order (repeat or comma-separate; "
                        "default: the GPU queue)")
    p.add_argument("--name", help="worker name shown at /v1/workers (default host.device.pid)")
    p.add_argument("--burst", action="store_true", help="exit when the queues are empty")
    p.set_defaults(func=worker)

    p = sub.add_parser("up", help="API + embedded Redis + SQLite + one CPU worker, on this "
                                  "machine, no root")
    p.add_argument("--port", type=int, help="API port (default: a free one)")
    p.add_argument("--var-dir", help="where the database and Redis files go (default ./var)")
    p.add_argument("--demo", action="store_true",
                   help="submit examples/demo.yaml, print its ratios, then shut down")
    p.add_argument("--spec", help="with --demo: submit this spec instead")
    p.add_argument("--timeout", type=float, default=3600, help="--demo: seconds to wait")
    p.set_defaults(func=up)

    p = sub.add_parser("token", help="create or revoke API tokens")
    tsub = p.add_subparsers(dest="action", required=True)
    c = tsub.add_parser("create", help="create a token and print it (shown only once)")
    c.add_argument("name")
    c.add_argument("--admin", action="store_true", help="sees and cancels every evaluation")
    r = tsub.add_parser("revoke", help="revoke a token by name")
    r.add_argument("name")
    p.set_defaults(func=token)

    p = sub.add_parser("db", help="database schema")
    dsub = p.add_subparsers(dest="action", required=True)
    dsub.add_parser("upgrade", help="apply migrations up to the newest")
    dsub.add_parser("current", help="show the schema revision")
    p.set_defaults(func=db)
