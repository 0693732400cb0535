"""This server's limits on a request, beyond what the contract itself accepts."""

from __future__ import annotations

from micheck.contract import EvaluationRequest
from micheck.errors import SpecError
from micheck.settings import Settings


def check_limits(request: EvaluationRequest, settings: Settings) -> None:
    """Raises SpecError naming the first field over a limit (HTTP 422)."""
    train = request.estimator.train

    def over(field: str, value: int, limit: int, env: str) -> None:
        if value > limit:
            raise SpecError(f"{field}: {value} exceeds this server's limit of {limit} "
                            f"(MICHECK_{env})")

    over("estimator.train.steps", train.steps, settings.max_steps, "MAX_STEPS")
    over("estimator.train.batch_size", train.batch_size, settings.max_batch_size,
         "MAX_BATCH_SIZE")
    if train.eval_samples is not None:  # None: the whole test split, bounded by the data set
        over("estimator.train.eval_samples", train.eval_samples, 64 * settings.max_batch_size,
             "MAX_BATCH_SIZE")
    over("estimator.train.max_steps", train.step_cap, settings.max_steps, "MAX_STEPS")
    over("seeds", len(request.seeds), settings.max_seeds, "MAX_SEEDS")
    over("max_seeds", request.seed_cap, settings.max_seeds, "MAX_SEEDS")
    over("tests", len(request.tests), settings.max_tests, "MAX_TESTS")
    for i, test in enumerate(request.tests):
        if test.rows is not None:
            over(f"tests.{i}.rows", len(test.rows), settings.max_rows, "MAX_ROWS")
