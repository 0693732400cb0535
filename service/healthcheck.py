"""Container health checks (no curl in slim images).

    python -m micheck.service.healthcheck api [URL]   exit 0 if URL/readyz answers 200
    python -m micheck.service.healthcheck worker      exit 0 if a worker on this host heartbeat recently
"""

from __future__ import annotations

import sys
from datetime import timedelta


def api(url: str) -> bool:
    import httpx

    try:
        return httpx.get(url.rstrip("/") + "/readyz", timeout=5).status_code == 200
    except httpx.HTTPError:
        return False


def worker() -> bool:
    from sqlalchemy import select

    from micheck.settings import Settings
    from micheck.storage.db import Database
    from micheck.storage.models import WorkerRow, utcnow

    settings = Settings()
    db = Database(settings, migrate=False)
    try:
        cutoff = utcnow() - timedelta(seconds=max(3 * settings.heartbeat_interval_s, 30))
        with db.session() as s:
            return s.scalar(select(WorkerRow.name).where(
                WorkerRow.host == settings.host_name, WorkerRow.heartbeat_at >= cutoff)
            ) is not None
    finally:
        db.dispose()


def main(argv: list[str]) -> int:
    what = argv[0] if argv else "api"
    ok = api(argv[1] if len(argv) > 1 else "http://127.0.0.1:8000") if what == "api" else worker()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
