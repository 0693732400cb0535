"""The plug-in estimators that live workers report (issue 13).

The service installs no plug-in and imports no foreign code: it knows a plug-in from
the reports in the live workers' rows (``workers.plugins``, written at registration by
``micheck.workers.worker``). Before a submission's body is validated, :func:`sync`
rebuilds those entries (``micheck.estimators.plugins.entry_from_report``) and hands them
to the registry (``set_reported``), so the contract, the compute budget and the
deduplication key treat a reported plug-in like a built-in; a name that is neither gets
a 422 from :func:`require`.
"""

from __future__ import annotations

import logging
import time
import weakref
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Annotated, Any

from fastapi import Depends
from micheck.service.deps import DBDep, SettingsDep
from micheck.service.problems import ProblemError

from micheck import estimators
from micheck.estimators import EstimatorEntry
from micheck.estimators.plugins import entry_from_report
from micheck.settings import Settings
from micheck.storage import store
from micheck.storage.db import Database

log = logging.getLogger("micheck.api")


@dataclass
class LivePlugin:
    """A plug-in estimator as the live workers report it."""

    entry: EstimatorEntry  # from the first live worker (in name order) that has it
    workers: int = 0
    providers: set[str] = field(default_factory=set)  # 'dist==version' seen, all workers


def live(db: Database, settings: Settings) -> dict[str, LivePlugin]:
    """Every plug-in estimator a live worker reported, by name."""
    with db.session() as s:
        reports = store.live_plugin_reports(s, timedelta(seconds=settings.stale_after_s))
    out: dict[str, LivePlugin] = {}
    for worker, report in reports:
        for item in report.get("estimators") or ():
            try:
                entry = entry_from_report(item)
            except Exception as exc:  # a report this service cannot read: skip it
                log.warning("worker %s: unreadable plug-in report %r: %s", worker,
                            str(item)[:200], exc)
                continue
            if estimators.is_registered(entry.name):
                continue  # a built-in's name: the built-in wins
            lp = out.setdefault(entry.name, LivePlugin(entry))
            lp.workers += 1
            lp.providers.add(entry.provider)
    return out


def sync(db: Database, settings: Settings) -> dict[str, LivePlugin]:
    """Make the registry know exactly the plug-ins live workers report now."""
    plugins = live(db, settings)
    estimators.set_reported({name: lp.entry for name, lp in plugins.items()})
    return plugins


# per database: (monotonic time of the last sync, its plug-ins); a submission costs a
# session and a query less while it is younger than settings.plugin_reports_ttl_s
_recent: weakref.WeakKeyDictionary[Database, tuple[float, dict[str, LivePlugin]]] = \
    weakref.WeakKeyDictionary()


def _synced(db: DBDep, settings: SettingsDep) -> dict[str, LivePlugin]:
    now = time.monotonic()
    hit = _recent.get(db)
    if hit is not None and now - hit[0] < settings.plugin_reports_ttl_s:
        return hit[1]  # the registry still holds what that sync handed it
    plugins = sync(db, settings)
    _recent[db] = (now, plugins)
    return plugins


# a route dependency: FastAPI solves it before it validates the request body
LivePlugins = Annotated[dict[str, LivePlugin], Depends(_synced)]


def require(name: str, plugins: dict[str, LivePlugin]) -> None:
    """422 unless ``name`` is built in or a live worker has it."""
    if estimators.is_registered(name) or name in plugins:
        return
    builtin = ", ".join(sorted(estimators.names()))
    live_names = ", ".join(f"{n} ({', '.join(sorted(lp.providers))})"
                           for n, lp in sorted(plugins.items())) or "none"
    msg = (f"no live worker has the estimator {name!r}: it is not built in ({builtin}) and "
           f"no live worker reports a plug-in of that name (plug-ins on live workers: "
           f"{live_names}); install the plug-in beside a worker and restart it")
    raise ProblemError(422, f"estimator.name: {msg}",
                       errors=[{"field": "estimator.name", "message": msg}])


def catalog_row(entry: EstimatorEntry, lp: LivePlugin | None = None) -> dict[str, Any]:
    """How /v1/estimators lists an estimator, with where it comes from."""
    schema = entry.extra.get("params_schema") if lp else None
    return {"origin": entry.provider,
            "distribution": entry.origin.distribution if entry.origin else None,
            "distribution_version": entry.origin.version if entry.origin else None,
            "workers": lp.workers if lp else None,
            "params": schema if schema is not None else entry.params_schema()}
