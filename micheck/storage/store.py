"""The repository functions over the SQL tables, one module per concept; this module
re-exports them all, so callers write ``store.claim(...)`` whatever module holds it.

- `statuses`: the stored status values (Q, R, OK, FAILED, CANCELED)
- `transitions`: every status change, a guarded UPDATE (claim, heartbeat, finish_*,
  fail_queued, request_cancel); results written with the status in one transaction
- `admission`: the new row, duplicates, the owner's lock, limits and load, fair dispatch
- `idempotency`: Idempotency-Key rows
- `reads`: views, stored results, the listing and its cursor, what the reconciler reads
- `worker_rows`: the workers table (liveness, reports, calibration, a dead worker's release)
"""

from __future__ import annotations

from micheck.storage.admission import (
    TokenLimits,
    admission_limits,
    admission_load,
    count_queued,
    create_evaluation,
    extension_of,
    find_duplicate,
    lock_owner,
    owner_load,
    set_enqueued,
    to_dispatch,
    token_limits,
)
from micheck.storage.idempotency import (
    get_idempotent,
    put_idempotent,
    replayable,
    repoint_idempotent,
)
from micheck.storage.models import Evaluation, Token
from micheck.storage.reads import (
    decode_cursor,
    encode_cursor,
    list_evaluations,
    load_result,
    queued_before,
    stale_running,
    to_view,
)
from micheck.storage.statuses import CANCELED, FAILED, OK, Q, R
from micheck.storage.transitions import (
    Claim,
    claim,
    fail_queued,
    finish_attempt,
    finish_success,
    heartbeat,
    request_cancel,
)
from micheck.storage.worker_rows import (
    boxes,
    count_live_workers,
    live_plugin_reports,
    live_speeds,
    live_workers,
    recent_workers,
    record_calibration,
    release_worker,
    worker_alive,
)

__all__ = [
    "CANCELED", "FAILED", "OK", "Q", "R", "Claim", "Evaluation", "Token", "TokenLimits",
    "admission_limits", "admission_load", "boxes", "claim", "count_live_workers", "count_queued",
    "create_evaluation", "decode_cursor", "encode_cursor", "extension_of", "fail_queued", "find_duplicate",
    "finish_attempt", "finish_success", "get_idempotent", "heartbeat", "list_evaluations",
    "live_plugin_reports", "live_speeds", "live_workers", "load_result", "lock_owner", "owner_load",
    "put_idempotent", "queued_before", "recent_workers", "record_calibration", "release_worker", "replayable", "repoint_idempotent",
    "request_cancel", "set_enqueued", "stale_running", "to_dispatch", "to_view",
    "token_limits", "worker_alive",
]
