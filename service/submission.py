"""Admitting a submission: everything POST /v1/evaluations decides, in one place.

In order, before anything is stored: the estimator is known (built in, or reported by a
live worker), the request is within this server's limits (micheck.service.limits), the
webhook target is one this service sends to, and its estimated time on the queue's
device is within the per-request limit (micheck.service.run_time). Then, in one
transaction: an Idempotency-Key
replay, a duplicate (unless ``force``), and otherwise the owner's lock
(`store.admission_limits`), the token's queue and GMAC budget under it, and the insert.
The response is built inside the transaction, so nothing fails after the commit.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass

from fastapi import Response
from micheck.service import run_time
from micheck.service.auth import Caller
from micheck.service.deps import visible_owner
from micheck.service.limits import check_limits, default_limits
from micheck.service.plugins import LivePlugin
from micheck.service.plugins import require as require_estimator
from micheck.service.problems import ProblemError
from micheck.service.webhooks import TargetRefused, check_target
from sqlalchemy.exc import IntegrityError

from micheck import budget
from micheck.contract import EvaluationRequest, EvaluationView
from micheck.queue import job_timeout
from micheck.settings import Settings
from micheck.storage import deliveries, store
from micheck.storage.db import Database
from micheck.storage.models import Evaluation

# (view, HTTP status) -> the response, built inside the transaction
Respond = Callable[[EvaluationView, int], Response]


@dataclass(frozen=True)
class Admitted:
    """What a submission came to: the response, how (``created``, ``deduplicated``,
    ``idempotent_replay``), and whether the owner's next evaluation should be put on RQ
    now (False when its turns on that queue were all taken: the end of one of those jobs
    dispatches it)."""

    response: Response
    outcome: str
    dispatch: bool = False


class _KeyMoved(Exception):
    """A concurrent retry moved the Idempotency-Key to its new evaluation first."""


def check_before_storing(body: EvaluationRequest, settings: Settings,
                         plugins: dict[str, LivePlugin]) -> None:
    """The checks that need no database: a known estimator, this server's limits, a
    webhook target this service sends to (422 otherwise)."""
    require_estimator(body.estimator.name, plugins)
    check_limits(body, settings)  # the compute budget: under the owner's lock, with its limits
    if body.webhook is not None:
        try:
            check_target(body.webhook.url, settings.webhooks_allow_private)
        except TargetRefused as exc:
            raise ProblemError(422, f"webhook.url: {exc}",
                               errors=[{"field": "webhook.url", "message": str(exc)}]) from None


def admit(db: Database, settings: Settings, caller: Caller, body: EvaluationRequest,
          idempotency_key: str | None, respond: Respond) -> Admitted:
    """Store the submission (or find what it replays or duplicates) and answer it."""
    cost = budget.estimate(body)
    queue = settings.queue_for(body.dataset.is_image)
    speed = run_time.queue_speed(db, settings, queue)  # the slowest measured worker
    cost = run_time.with_time(cost, run_time.check(body, cost, speed, settings), speed)
    body_hash = hashlib.sha256(body.model_dump_json().encode()).hexdigest()
    owner = caller.name or ""
    try:
        with db.write_session() as s:
            stale: str | None = None  # the key's canceled or failed evaluation
            if idempotency_key:
                prior = store.get_idempotent(s, owner, idempotency_key)
                if prior is not None:
                    if prior.body_sha256 != body_hash:
                        raise ProblemError(409, "this Idempotency-Key was used with a "
                                                "different request body")
                    row = s.get(Evaluation, prior.evaluation_id)
                    if store.replayable(row):
                        return Admitted(respond(store.to_view(row), 200),  # type: ignore[arg-type]
                                        "idempotent_replay")
                    stale = prior.evaluation_id  # a CI retry: run it again

            def remember(evaluation_id: str) -> None:
                if not idempotency_key:
                    return
                if stale is None:
                    store.put_idempotent(s, owner, idempotency_key, body_hash, evaluation_id)
                elif not store.repoint_idempotent(s, owner, idempotency_key, stale,
                                                  evaluation_id):
                    raise _KeyMoved

            if not body.force:
                dup = store.find_duplicate(s, body.spec_hash(), visible_owner(caller, settings))
                if dup is not None:
                    if body.webhook is not None:  # notified when (or since) it ends
                        deliveries.add_webhook(s, dup.id, body.webhook.url,
                                               body.webhook.secret)
                    remember(dup.id)
                    return Admitted(respond(store.to_view(dup, deduplicated=True), 200),
                                    "deduplicated")
            # the owner's lock, held to the commit: the checks below are atomic
            limits = store.admission_limits(s, owner, default_limits(settings))
            check_limits(body, settings, cost, limits)
            queued, gmac, in_rq = store.admission_load(s, caller.name, queue)
            if queued >= limits.max_queued:
                raise ProblemError(429, f"token {caller.name!r} already has "
                                        f"{limits.max_queued} queued evaluations "
                                        "(MICHECK_MAX_QUEUED_PER_TOKEN)",
                                   headers={"Retry-After": "60"})
            if gmac + cost.gmac > limits.max_token_gmac:
                raise ProblemError(429, f"token {caller.name!r} has {gmac:g} GMAC queued or "
                                        f"running; this request's {cost.gmac:g} GMAC would "
                                        f"exceed its budget of {limits.max_token_gmac:g} GMAC "
                                        "(MICHECK_MAX_TOKEN_GMAC)",
                                   headers={"Retry-After": "60"})
            row = store.create_evaluation(s, body, owner=caller.name, queue=queue,
                                          job_timeout_s=job_timeout(body, settings, queue, cost, speed),
                                          cost=cost)
            remember(row.id)
            # built here, inside the transaction: a failure rolls back instead of a 5xx
            # after the commit
            response = respond(store.to_view(row), 202)
    except (IntegrityError, _KeyMoved):
        # a concurrent request with the same Idempotency-Key won the insert: replay it
        with db.session() as s:
            prior = store.get_idempotent(s, owner, idempotency_key or "")
            if prior is None or prior.body_sha256 != body_hash:
                raise ProblemError(409, "conflicting concurrent request") from None
            return Admitted(respond(store.to_view(s.get(Evaluation, prior.evaluation_id)),
                                    200), "idempotent_replay")
    db.storage.note_written()  # space was found: /readyz stops reporting storage full
    return Admitted(response, "created", dispatch=in_rq < settings.dispatch_per_token)
