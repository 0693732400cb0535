"""Do the intervals hold their stated level on real training runs?

40 seeds of one Gaussian ground-truth task (known MI) train as one stack. The first 20 give
the truth *for this estimator* (the mean its seeds converge to: InfoNCE is biased low, so the
analytic MI is not what an interval over its seeds should cover); intervals built from random
triples of the other 20, exactly as micheck.scoring builds them, must cover that value at
about their level. Each seed's value includes its own training noise and its own finite
held-out evaluation, so this checks that the interval covers both.
"""

from __future__ import annotations

import random

import pytest
import torch
from micheck.workers.engine import build_tasks
from micheck.workers.trainer import train_critics

from micheck.contract import EstimatorSpec, EvaluationRequest
from micheck.plan import plan
from micheck.verdicts import student_t_interval

SEEDS = 40


@pytest.mark.slow
def test_student_t_intervals_cover_the_estimators_mean_at_their_level():
    req = EvaluationRequest.model_validate({
        "estimator": {"name": "infonce", "train": {"batch_size": 64, "steps": 250, "lr": 5e-3,
                                                   "eval_samples": 4096}},
        "dataset": {"name": "gaussian", "dim": 2, "mi": 1.0},
        "tests": [{"kind": "ground_truth"}], "seeds": list(range(SEEDS)),
        "max_seeds": SEEDS})
    tasks, _ = build_tasks(req)
    est = EstimatorSpec.model_validate(req.estimator.model_dump())
    out = train_critics(tasks, est, torch.device("cpu"))
    (m,) = plan(req)
    values = [out[m.key(s)].mi_test / req.dataset.mi for s in range(SEEDS)]
    assert all(v is not None for v in values)
    assert sum(out[m.key(s)].converged for s in range(SEEDS)) >= 0.9 * SEEDS
    truth = sum(values[:20]) / 20
    pool = values[20:]
    rng = random.Random(0)
    trials, covered = 3000, 0
    for _ in range(trials):
        iv = student_t_interval(rng.sample(pool, 3), 0.95)
        covered += iv.low <= truth <= iv.high
    coverage = covered / trials
    print(f"coverage of the 95% interval over 3 seeds: {coverage:.3f} "
          f"(truth for InfoNCE {truth:.3f}, analytic 1)")
    assert 0.90 <= coverage <= 0.99
