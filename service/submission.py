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
from micheck.service.deps import visible_evaluation, visible_owner
from micheck.service.limits import check_limits, default_limits
from micheck.service.plugins import LivePlugin
from micheck.service.plugins import require as require_estimator
from micheck.service.problems import ProblemError
from micheck.service.webhooks import TargetRefused, check_target
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from micheck import budget, scoring
from micheck.contract import Cost, EvaluationRequest, EvaluationView
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
            in_rq = reserve(s, settings, caller, body, cost, queue)
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


def reserve(s: Session, settings: Settings, caller: Caller, body: EvaluationRequest,
            cost: Cost, queue: str) -> int:
    """The owner's lock, held to the commit, then its limits, queue and GMAC budget
    (429 with Retry-After past them): the checks and the insert after them are atomic.
    Returns how many of the owner's evaluations are on RQ now."""
    limits = store.admission_limits(s, caller.name or "", default_limits(settings))
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
    return in_rq


def more_seeds(db: Database, settings: Settings, caller: Caller, evaluation_id: str,
               add: int, respond: Respond) -> Admitted:
    """POST /v1/evaluations/{id}/seeds: a new evaluation that trains `add` new seeds for
    the rows of a succeeded evaluation still inconclusive for want of seeds, and pools them
    with its stored estimates (one more look, micheck.scoring.extend).

    Refused (409) unless the evaluation succeeded, was scored with recorded looks, has a
    row more seeds can decide, and has no extension yet that did not fail: looks form one
    chain, so every look is counted once. The new evaluation belongs to the caller and is
    checked against the caller's limits and the device-time limit for its new seeds."""
    with db.write_session() as s:
        row = visible_evaluation(s.get(Evaluation, evaluation_id, with_for_update=True),
                                 caller, settings)
        if row.status != store.OK:
            raise ProblemError(409, f"evaluation is {row.status}: only a succeeded evaluation "
                                    "takes more seeds", status_value=row.status)
        child = store.extension_of(s, row.id)
        if child is not None:
            raise ProblemError(409, f"evaluation {row.id} already has more seeds in "
                                    f"{child.id} ({child.status}); add seeds to that one",
                               extended_by=child.id)
        prior = store.load_result(s, row)
        if not prior.seed_rounds.looks:
            raise ProblemError(409, "this evaluation was scored before looks were recorded "
                                    "(engine v3): its level cannot be carried on; submit it "
                                    "again")
        if not scoring.open_measurements(prior.request, prior.ratios):
            raise ProblemError(409, "no verdict of this evaluation is inconclusive for want "
                                    "of seeds: more seeds cannot change it")
        seeds = list(prior.provenance.seeds)
        new = scoring.added_seeds(seeds, add)
        try:
            body = EvaluationRequest.model_validate({
                **prior.request.model_dump(mode="json"), "seeds": seeds + new,
                "max_seeds": len(seeds) + len(new)})
        except ValueError as exc:
            raise ProblemError(422, f"add: {len(seeds)} + {add} seeds: {exc}",
                               errors=[{"field": "add", "message": "too many seeds in all"}]
                               ) from None
        # what it trains: the new seeds (at most every measurement of the spec)
        fresh = body.model_copy(update={"seeds": new, "max_seeds": len(new)})
        queue = row.queue
        cost = budget.estimate(fresh)
        speed = run_time.queue_speed(db, settings, queue)
        cost = run_time.with_time(cost, run_time.check(fresh, cost, speed, settings), speed)
        in_rq = reserve(s, settings, caller, fresh, cost, queue)
        child = store.create_evaluation(
            s, body, owner=caller.name, queue=queue, cost=cost, extends=row.id,
            job_timeout_s=job_timeout(fresh, settings, queue, cost, speed))
        response = respond(store.to_view(child), 202)
    db.storage.note_written()
    return Admitted(response, "created", dispatch=in_rq < settings.dispatch_per_token)
