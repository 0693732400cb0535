"""This server's limits on a request, beyond what the contract itself accepts.

Everything here runs before anything is stored: a request over a limit is a 422 (or a
429 for a token's queue), never a late failure.
"""

from __future__ import annotations

from micheck.contract import Cost, EvaluationRequest
from micheck.errors import SpecError
from micheck.settings import Settings, data_settings
from micheck.storage.store import TokenLimits


def default_limits(settings: Settings) -> TokenLimits:
    return TokenLimits(settings.max_queued_per_token, settings.max_request_gmac,
                       settings.max_token_gmac)


def check_limits(request: EvaluationRequest, settings: Settings, cost: Cost | None = None,
                 limits: TokenLimits | None = None) -> None:
    """Raises SpecError naming the first field over a limit (HTTP 422)."""
    train = request.estimator.train

    def over(field: str, value: float, limit: float, env: str) -> None:
        if value > limit:
            raise SpecError(f"{field}: {value:g} exceeds this server's limit of {limit:g} "
                            f"(MICHECK_{env})")

    over("estimator.train.steps", train.steps, settings.max_steps, "MAX_STEPS")
    over("estimator.train.batch_size", train.batch_size, settings.max_batch_size,
         "MAX_BATCH_SIZE")
    if train.eval_samples is not None:
        over("estimator.train.eval_samples", train.eval_samples, 64 * settings.max_batch_size,
             "MAX_BATCH_SIZE")
    over("estimator.train.max_steps", train.step_cap, settings.max_steps, "MAX_STEPS")
    over("max_seeds", request.seed_cap, settings.max_seeds, "MAX_SEEDS")
    over("seeds", len(request.seeds), settings.max_seeds, "MAX_SEEDS")
    over("max_seeds", request.seed_cap, settings.max_seeds, "MAX_SEEDS")
    over("tests", len(request.tests), settings.max_tests, "MAX_TESTS")
    for i, test in enumerate(request.tests):
        if test.rows is not None:
            over(f"tests.{i}.rows", len(test.rows), settings.max_rows, "MAX_ROWS")
        if test.rho is not None:  # one critic (or MIGE batch) per rho, like one per row
            over(f"tests.{i}.rho", len(test.rho), settings.max_rows, "MAX_ROWS")
    root = request.dataset.data_root
    if root is not None and root not in data_settings().data_roots:
        raise SpecError(f"dataset.data_root: {root!r} is not a data root of this server "
                        f"(configured: {', '.join(sorted(data_settings().data_roots)) or 'none'})")
    if cost is not None:
        limit = limits.max_request_gmac if limits else settings.max_request_gmac
        if cost.gmac > limit:
            raise SpecError(f"estimated compute {cost.gmac:g} GMAC ({cost.trainings} trainings, "
                            f"{cost.critic_steps} critic steps) exceeds this server's limit of "
                            f"{limit:g} GMAC per request (MICHECK_MAX_REQUEST_GMAC): fewer "
                            "steps, seeds, rows or tests, or a smaller batch or critic")
