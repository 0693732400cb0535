"""One trainer for every critic of an evaluation.

A `CriticTask` is one independent MI estimate: a pair sampler (how to draw (x, y)
batches from the train and test splits), a seed and a key. The trainer groups tasks
whose critics have the same architecture and input shapes, stacks each group into
one batched model (workers.stacked.Stack) and steps the groups in turn, so that
progress and cancellation are checked for all critics at once.

Protocol (issue 2): train on the train split, report the *last* checkpoint's bound
on held-out test batches of the training batch size (the bounds depend on n, e.g.
InfoNCE's log n ceiling), and the mean training value over the last 10% of steps.
"""

from __future__ import annotations

import math
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from micheck.workers.critics import build_critic
from micheck.workers.estimators import make_bound
from micheck.workers.stacked import Stack
from torch import Tensor

from micheck.contract import EstimatorSpec
from micheck.errors import Canceled

# (generator, batch size) -> (x, y) with a leading batch dimension n
PairSampler = Callable[[torch.Generator, int], tuple[Tensor, Tensor]]
ProgressFn = Callable[[int, int], None]  # (critic steps done, total)
CancelFn = Callable[[], bool]

TRAIN_TAIL = 0.1  # fraction of final steps averaged into mi_train
EVAL_SEED_OFFSET = 7_919  # test-batch generators differ from training ones


def task_seed(seed: int, key: str) -> int:
    """A per-task seed that depends only on (seed, key): batching order cannot change it."""
    return (seed * 1_000_003 + zlib.crc32(key.encode())) % (2**31 - 1)


@dataclass
class CriticTask:
    key: str  # unique within an evaluation, e.g. "additivity/t=14/rows/seed=1"
    seed: int
    train: PairSampler
    test: PairSampler
    x_shape: tuple[int, ...]
    y_shape: tuple[int, ...]
    true_mi: float | None = None
    # optional per-step override of the sampler (the Gaussian staircase changes MI)
    schedule: Callable[[int], PairSampler] | None = None


@dataclass
class TaskOutcome:
    key: str
    mi_train: float | None
    mi_test: float | None
    diverged: bool
    steps: int
    history: list[float] = field(default_factory=list)  # training value per recorded step


class Ticker:
    """Counts critic steps; reports progress and honours cancellation about twice a second."""

    def __init__(self, total: int, progress: ProgressFn | None, should_cancel: CancelFn | None,
                 done: int = 0) -> None:
        self.total, self.done = total, done
        self.progress, self.should_cancel = progress, should_cancel
        self._last = 0.0

    def tick(self, steps: int, final: bool = False) -> None:
        self.done += steps
        now = time.monotonic()
        if now - self._last > 0.5 or final:
            self._last = now
            if self.should_cancel is not None and self.should_cancel():
                raise Canceled("evaluation canceled")
            if self.progress is not None:
                self.progress(self.done, self.total)


def _groups(tasks: list[CriticTask]) -> dict[tuple, list[int]]:
    groups: dict[tuple, list[int]] = {}
    for i, t in enumerate(tasks):
        groups.setdefault((t.x_shape, t.y_shape), []).append(i)
    return groups


class _Group:
    def __init__(self, tasks: list[CriticTask], est: EstimatorSpec, device: torch.device,
                 batched: bool) -> None:
        self.tasks = tasks
        modules = []
        for t in tasks:
            torch.manual_seed(task_seed(t.seed, t.key))  # init depends on the task alone
            modules.append(build_critic(est.critic, t.x_shape, t.y_shape))
        self.stack = Stack(modules, est.train.lr, device, batched=batched)
        self.bound = make_bound(est.name, est.params, lambda: self.stack.param("log_baseline"))
        self.gens = [torch.Generator().manual_seed(task_seed(t.seed, t.key)) for t in tasks]
        self.device = device
        self.values: list[list[float]] = [[] for _ in tasks]
        self.diverged = [False] * len(tasks)

    def batch(self, samplers: list[PairSampler], gens: list[torch.Generator], n: int
              ) -> tuple[Tensor, Tensor]:
        pairs = [s(g, n) for s, g in zip(samplers, gens, strict=True)]
        x = torch.stack([p[0] for p in pairs]).to(self.device, non_blocking=True)
        y = torch.stack([p[1] for p in pairs]).to(self.device, non_blocking=True)
        return x, y

    def step(self, step: int, n: int, record: bool) -> None:
        samplers = [t.schedule(step) if t.schedule else t.train for t in self.tasks]
        x, y = self.batch(samplers, self.gens, n)
        scores = self.stack(x, y)
        objective = self.bound.objective(scores)
        self.stack.step(objective)
        if record:
            values = self.bound.value(scores.detach()).tolist()
            for k, v in enumerate(values):
                self.values[k].append(v)
        bad = ~torch.isfinite(objective.detach())
        if bad.any():
            for k in bad.nonzero().flatten().tolist():
                self.diverged[k] = True

    @torch.no_grad()
    def evaluate(self, n: int, samples: int) -> list[float]:
        gens = [torch.Generator().manual_seed(task_seed(t.seed, t.key) + EVAL_SEED_OFFSET)
                for t in self.tasks]
        batches = max(1, samples // n)
        total = torch.zeros(len(self.tasks), device=self.device)
        for _ in range(batches):
            x, y = self.batch([t.test for t in self.tasks], gens, n)
            total += self.bound.value(self.stack(x, y))
        return (total / batches).tolist()


def train_critics(tasks: list[CriticTask], est: EstimatorSpec, device: torch.device, *,
                  batched: bool = True, progress: ProgressFn | None = None,
                  should_cancel: CancelFn | None = None, record_every: int = 0,
                  progress_offset: int = 0, progress_total: int | None = None
                  ) -> dict[str, TaskOutcome]:
    """Train one critic per task; return each task's train and held-out estimates.

    record_every > 0 also keeps the training value every that many steps (history).
    """
    steps, n = est.train.steps, est.train.batch_size
    # batched=False is the sequential baseline: one critic at a time, start to finish
    index_groups = list(_groups(tasks).values()) if batched else [[i] for i in range(len(tasks))]
    groups = [_Group([tasks[i] for i in idx], est, device, batched) for idx in index_groups]
    ticker = Ticker(progress_total or len(tasks) * steps, progress, should_cancel,
                    progress_offset)
    tail_start = steps - max(1, int(math.ceil(steps * TRAIN_TAIL)))
    order = [(g, s) for g in groups for s in range(steps)] if not batched else \
        [(g, s) for s in range(steps) for g in groups]
    for group, s in order:
        keep = s >= tail_start or (record_every and s % record_every == 0)
        group.step(s, n, bool(keep))
        ticker.tick(group.stack.k, final=s == steps - 1)
    out: dict[str, TaskOutcome] = {}
    for g in groups:
        tests = g.evaluate(n, est.train.eval_samples)
        for k, t in enumerate(g.tasks):
            tail = g.values[k][-(steps - tail_start):]
            mi_train = sum(tail) / len(tail) if tail else math.nan
            diverged = g.diverged[k] or not math.isfinite(tests[k]) or not math.isfinite(mi_train)
            out[t.key] = TaskOutcome(
                t.key, mi_train if math.isfinite(mi_train) else None,
                tests[k] if math.isfinite(tests[k]) else None, diverged, steps,
                history=g.values[k] if record_every else [])
    return out

