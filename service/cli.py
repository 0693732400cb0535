"""Service subcommands of `micheck`: serve, token, db.

Only imported when the service extra is installed (micheck.cli falls back otherwise).
"""

from __future__ import annotations

import argparse

from micheck.errors import MicheckError


def _settings():
    from micheck.settings import Settings

    return Settings()


def serve(args: argparse.Namespace) -> int:
    import uvicorn

    from micheck.settings import configure_logging

    settings = _settings()
    configure_logging(settings)
    host, port = args.host or settings.host, args.port or settings.port
    redis = None
    if settings.redis_url in ("", "embedded"):
        # our own child, not a daemon: stopped below when uvicorn returns (SIGTERM, Ctrl-C),
        # and sent SIGTERM by the kernel if this process dies without getting there
        from micheck.processes import EmbeddedRedis
        from micheck.settings import set_redis_url

        redis = EmbeddedRedis(settings.var_dir, log=settings.var_dir / "logs" / "redis.log")
        redis.start()
        set_redis_url(redis.url)
    try:
        # the factory reads MICHECK_* itself, so --workers N processes share one configuration
        uvicorn.run("micheck.service.app:create_app", factory=True, host=host, port=port,
                    workers=args.workers, log_level="info", proxy_headers=True)
    finally:
        if redis is not None:
            redis.stop()
    return 0




def token(args: argparse.Namespace) -> int:
    from micheck.service import auth

    from micheck.storage.db import Database

    db = Database(_settings())
    try:
        if args.action == "create":
            print(auth.create_token(db, args.name, admin=args.admin))
        elif args.action == "revoke":
            auth.revoke_token(db, args.name)
            print(f"revoked {args.name}")
        elif args.action == "limits":
            limits = auth.set_limits(db, args.name, max_queued=args.queued,
                                     max_request_gmac=args.request_gmac,
                                     max_token_gmac=args.token_gmac, reset=args.reset)
            print(f"{args.name}: " + ", ".join(
                f"{k}={'default' if v is None else f'{v:g}'}" for k, v in limits.items()))
    finally:
        db.dispose()
    return 0


def db(args: argparse.Namespace) -> int:
    from micheck.storage.db import make_engine
    from micheck.storage.migrations import current_revision, head_revision, upgrade

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



    p = sub.add_parser("token", help="create or revoke API tokens")
    tsub = p.add_subparsers(dest="action", required=True)
    c = tsub.add_parser("create", help="create a token and print it (shown only once)")
    c.add_argument("name")
    c.add_argument("--admin", action="store_true", help="sees and cancels every evaluation")
    r = tsub.add_parser("revoke", help="revoke a token by name")
    r.add_argument("name")
    lim = tsub.add_parser("limits", help="raise (or lower) one token's limits; without "
                                         "options, show them (default = the settings')")
    lim.add_argument("name")
    lim.add_argument("--queued", type=int, help="queued evaluations (MAX_QUEUED_PER_TOKEN)")
    lim.add_argument("--request-gmac", type=float, help="one request (MAX_REQUEST_GMAC)")
    lim.add_argument("--token-gmac", type=float,
                     help="queued and running together (MAX_TOKEN_GMAC)")
    lim.add_argument("--reset", action="store_true", help="back to the settings' values")
    p.set_defaults(func=token)

    p = sub.add_parser("db", help="database schema")
    dsub = p.add_subparsers(dest="action", required=True)
    dsub.add_parser("upgrade", help="apply migrations up to the newest")
    dsub.add_parser("current", help="show the schema revision")
    p.set_defaults(func=db)
