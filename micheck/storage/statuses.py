"""The evaluation statuses as stored (the contract's EvaluationStatus values)."""

from __future__ import annotations

from micheck.contract import EvaluationStatus

Q, R = EvaluationStatus.queued.value, EvaluationStatus.running.value
OK, FAILED, CANCELED = (EvaluationStatus.succeeded.value, EvaluationStatus.failed.value,
                        EvaluationStatus.canceled.value)
