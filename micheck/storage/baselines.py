"""Finding the baseline an evaluation is compared with (micheck.compare)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from micheck.contract import parse_baseline
from micheck.storage.models import Evaluation, LabelRow

SUCCEEDED = "succeeded"


def find_baseline(s: Session, row: Evaluation, query: str, *, owner: str | None
                  ) -> Evaluation | None:
    """An evaluation id names its baseline; a label query picks the latest succeeded
    evaluation of the same spec (spec hash) with all those labels, created before ``row``
    (never ``row`` itself). ``owner`` None: any owner's. Raises ValueError on a bad query."""
    parsed = parse_baseline(query)
    if isinstance(parsed, str):
        found = s.get(Evaluation, parsed)
        if found is None or (owner is not None and found.owner != owner):
            return None
        return found
    q = select(Evaluation).where(Evaluation.spec_hash == row.spec_hash,
                                 Evaluation.status == SUCCEEDED, Evaluation.id != row.id,
                                 Evaluation.created_at <= row.created_at)
    if owner is not None:
        q = q.where(Evaluation.owner == owner)
    for key, value in parsed.items():
        q = q.where(select(LabelRow.evaluation_id)
                    .where(LabelRow.evaluation_id == Evaluation.id, LabelRow.key == key,
                           LabelRow.value == value).exists())
    return s.scalars(q.order_by(Evaluation.created_at.desc(), Evaluation.id.desc())
                     .limit(1)).first()
