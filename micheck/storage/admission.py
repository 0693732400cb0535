"""Admission and scheduling: the new evaluation row, the duplicate it may be, the owner's
lock and limits, its load, and which queued evaluations go on RQ next (fair turns).

The statements a submission runs are built once with bound parameters: building a
SQLAlchemy statement costs several times what SQLite takes to run it (bench.api
--inprocess)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import ColumnElement, Select, and_, bindparam, case, func, or_, select, update
from sqlalchemy.orm import Session

from micheck.contract import Cost, EvaluationRequest
from micheck.storage import deliveries
from micheck.storage.models import Evaluation, LabelRow, Token, utcnow
from micheck.storage.statuses import OK, Q, R


def create_evaluation(s: Session, request: EvaluationRequest, *, owner: str | None, queue: str,
                      job_timeout_s: int, cost: Cost | None = None,
                      extends: str | None = None) -> Evaluation:
    now = utcnow()
    row = Evaluation(
        extends=extends,
        cost_gmac=cost.gmac if cost else None,
        cost=cost.model_dump(mode="json") if cost else None,
        id=uuid.uuid4().hex, owner=owner, status=Q, spec_hash=request.spec_hash(),
        request=request.model_dump(mode="json", exclude={"webhook"}),
        estimator=request.estimator.name,
        dataset=request.dataset.name, label=request.label, queue=queue,
        job_timeout_s=job_timeout_s, attempts=0, cancel_requested=False, created_at=now,
        updated_at=now, steps_done=0, steps_total=0)
    s.add(row)
    s.flush()
    s.add_all(LabelRow(evaluation_id=row.id, key=k, value=v) for k, v in request.labels.items())
    if request.webhook is not None:
        deliveries.add_webhook(s, row.id, request.webhook.url, request.webhook.secret)
    return row


# The statements a submission runs, built once with bound parameters: building a


def _duplicate_query(of_owner: bool) -> Select:
    q = select(Evaluation).where(Evaluation.spec_hash == bindparam("spec_hash"),
                                 Evaluation.status.in_([OK, Q, R]),
                                 Evaluation.extends.is_(None))  # more seeds: never a duplicate
    if of_owner:
        q = q.where(Evaluation.owner == bindparam("owner"))
    # prefer a finished one: it answers at once
    return q.order_by((Evaluation.status == OK).desc(), Evaluation.created_at.desc()).limit(1)


_DUPLICATE_ANY, _DUPLICATE_OF = _duplicate_query(False), _duplicate_query(True)


def find_duplicate(s: Session, spec_hash: str, owner: str | None) -> Evaluation | None:
    """The newest identical evaluation that succeeded or is still in flight.

    ``owner`` None means every owner's evaluations are visible to the caller.
    """
    if owner is None:
        return s.scalars(_DUPLICATE_ANY, {"spec_hash": spec_hash}).first()
    return s.scalars(_DUPLICATE_OF, {"spec_hash": spec_hash, "owner": owner}).first()


def extension_of(s: Session, evaluation_id: str) -> Evaluation | None:
    """The evaluation that adds seeds to `evaluation_id` and has not failed or been
    canceled (at most one: looks form a chain), if any."""
    return s.scalars(select(Evaluation).where(Evaluation.extends == evaluation_id,
                                              Evaluation.status.in_([OK, Q, R]))
                     .order_by(Evaluation.created_at.desc()).limit(1)).first()


def count_queued(s: Session, owner: str | None) -> int:
    return s.scalar(select(func.count()).select_from(Evaluation)
                    .where(Evaluation.owner == owner, Evaluation.status == Q)) or 0


@dataclass(frozen=True)
class TokenLimits:
    """A token's limits: the settings' values unless an admin raised them for it."""

    max_queued: int
    max_request_gmac: float
    max_token_gmac: float


def token_limits(s: Session, owner: str, defaults: TokenLimits) -> TokenLimits:
    row = s.get(Token, owner)
    if row is None:
        return defaults
    return TokenLimits(
        row.max_queued if row.max_queued is not None else defaults.max_queued,
        row.max_request_gmac if row.max_request_gmac is not None else defaults.max_request_gmac,
        row.max_token_gmac if row.max_token_gmac is not None else defaults.max_token_gmac)


def lock_owner(s: Session, owner: str) -> None:
    """Serialise this owner's admissions until the transaction ends.

    A write to the owner's token row: on PostgreSQL it takes that row's lock (the other
    transactions of the same owner wait; other owners do not), on SQLite the database's
    write lock. Counting after it sees every admission committed before, so a limit
    checked after it holds under any concurrency (no check-then-insert race)."""
    s.execute(update(Token).where(Token.name == owner).values(name=Token.name))


_tokens = Token.__table__
_LOCK_AND_LIMITS = (update(_tokens).where(_tokens.c.name == bindparam("owner"))
                    .values(name=_tokens.c.name)
                    .returning(_tokens.c.max_queued, _tokens.c.max_request_gmac,
                               _tokens.c.max_token_gmac))


def admission_limits(s: Session, owner: str, defaults: TokenLimits) -> TokenLimits:
    """`lock_owner` and `token_limits` in one statement (UPDATE ... RETURNING): the lock,
    and the token's limits read under it."""
    row = s.execute(_LOCK_AND_LIMITS, {"owner": owner}).first()
    if row is None:
        return defaults
    queued, request_gmac, token_gmac = row
    return TokenLimits(defaults.max_queued if queued is None else queued,
                       defaults.max_request_gmac if request_gmac is None else request_gmac,
                       defaults.max_token_gmac if token_gmac is None else token_gmac)


def admission_load(s: Session, owner: str | None, queue: str) -> tuple[int, float, int]:
    """`owner_load` plus how many of the owner's evaluations are in RQ on `queue` (running,
    or queued and dispatched), in one query: a submission that finds its owner's turns on
    that queue all taken needs no dispatch pass (the end of one of them starts the next)."""
    stmt = _ADMISSION_LOAD if owner is not None else _admission_load(Evaluation.owner.is_(None))
    queued, gmac, in_rq = s.execute(stmt, {"owner": owner, "queue": queue}).one()
    return int(queued), float(gmac), int(in_rq)


def _admission_load(whose: ColumnElement[bool]) -> Select:
    in_rq = and_(Evaluation.queue == bindparam("queue"),
                 or_(Evaluation.status == R, Evaluation.rq_job_id.is_not(None)))
    return select(func.coalesce(func.sum(case((Evaluation.status == Q, 1), else_=0)), 0),
                  func.coalesce(func.sum(Evaluation.cost_gmac), 0.0),
                  func.coalesce(func.sum(case((in_rq, 1), else_=0)), 0)
                  ).where(whose, Evaluation.status.in_([Q, R]))


_ADMISSION_LOAD = _admission_load(Evaluation.owner == bindparam("owner"))


def owner_load(s: Session, owner: str | None) -> tuple[int, float]:
    """(queued evaluations, estimated GMAC of queued and running ones) of an owner, in
    one query."""
    queued, gmac = s.execute(
        select(func.coalesce(func.sum(case((Evaluation.status == Q, 1), else_=0)), 0),
               func.coalesce(func.sum(Evaluation.cost_gmac), 0.0))
        .where(Evaluation.owner == owner, Evaluation.status.in_([Q, R]))).one()
    return int(queued), float(gmac)


def to_dispatch(s: Session, per_owner: int, owner: str | None = None,
                all_owners: bool = False) -> list[Evaluation]:
    """Fair scheduling: the queued evaluations to put on RQ now, at most ``per_owner``
    per (owner, queue) in RQ at a time (waiting there or running), oldest first.

    Marks each one dispatched (``rq_job_id`` = a placeholder until the job id is known),
    so a concurrent call does not pick it again; a placeholder whose enqueue failed
    looks like a lost job to the reconciler, which enqueues it again."""
    # one grouped query: per (owner, queue), how many are in RQ and how many wait
    dispatched = or_(Evaluation.status == R, Evaluation.rq_job_id.is_not(None))
    load = select(Evaluation.owner, Evaluation.queue,
                  func.sum(case((dispatched, 1), else_=0)),
                  func.sum(case((dispatched, 0), else_=1))
                  ).where(Evaluation.status.in_([Q, R])
                          ).group_by(Evaluation.owner, Evaluation.queue)
    if not all_owners:
        load = load.where(Evaluation.owner == owner)
    out: list[Evaluation] = []
    for who, queue, in_rq, waiting in s.execute(load).all():
        free = per_owner - int(in_rq or 0)
        if free <= 0 or not waiting:
            continue
        mine = and_(Evaluation.owner == who if who is not None else Evaluation.owner.is_(None),
                    Evaluation.queue == queue)
        rows = list(s.scalars(select(Evaluation).where(
            mine, Evaluation.status == Q, Evaluation.rq_job_id.is_(None))
            .order_by(Evaluation.created_at, Evaluation.id).limit(free)))
        for row in rows:
            if s.execute(update(Evaluation).where(Evaluation.id == row.id,
                                                  Evaluation.rq_job_id.is_(None))
                         .values(rq_job_id=f"dispatching:{row.id}"[:64])).rowcount == 1:
                out.append(row)
    return out


def set_enqueued(s: Session, evaluation_id: str, rq_job_id: str) -> None:
    s.execute(update(Evaluation).where(Evaluation.id == evaluation_id, Evaluation.status == Q)
              .values(rq_job_id=rq_job_id, enqueued_at=utcnow()))

