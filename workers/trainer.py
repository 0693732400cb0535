"""One trainer for every critic of an evaluation.

A `CriticTask` is one independent MI estimate: a pair sampler (how to draw (x, y)
batches from the train and test splits), a seed and a key. The trainer groups tasks
whose critics have the same architecture and input shapes, stacks each group into
one batched model (workers.stacked.Stack) and steps the groups in turn, so that
progress and cancellation are checked for all critics at once.

Protocol: train on the train split; report the *last* checkpoint's bound on the
held-out split in batches of the training batch size (the bounds depend on n, e.g.
InfoNCE's log n ceiling): by default one pass over the whole test split for images,
16384 fresh samples for vectors; and the mean training value over the last 10% of steps.

One loop (`train`) serves every learner: a `Learner` is K stacked models with a training
step and a held-out value: the critics of the discriminative bounds (`CriticLearner`,
here) and GM's three maximum-likelihood models (`workers.generative.GMLearner`). The loop
owns the schedule: steps, the training tail, divergence, progress and cancellation, and
the training curve (the held-out estimate every few steps on the same fixed held-out
batches) with the plateau test of `micheck.convergence`; with `train.until_converged` it
keeps training, a quarter of `steps` at a time, until every critic of the group has
reached its plateau or `max_steps` is reached.
"""

from __future__ import annotations

import math
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from micheck.workers.bounds import critic_bound
from micheck.workers.critics import build_critic
from micheck.workers.stacked import Stack
from torch import Tensor

from micheck import convergence
from micheck.contract import EstimatorSpec
from micheck.errors import Canceled

# (generator, batch size) -> (x, y) with a leading batch dimension n
PairSampler = Callable[[torch.Generator, int], tuple[Tensor, Tensor]]
ProgressFn = Callable[[int, int], None]  # (critic steps done, total)
CancelFn = Callable[[], bool]

TRAIN_TAIL = 0.1  # fraction of final steps averaged into mi_train
EVAL_SEED_OFFSET = 7_919  # test-batch generators differ from training ones
CURVE_SEED_OFFSET = 104_729  # the fixed held-out batches of the training curve
CURVE_BATCHES = 4  # held-out batches per curve checkpoint
VECTOR_EVAL_SAMPLES = 16_384  # held-out samples of a vector task when not given


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
    # held-out samples of the final estimate (one pass over a test split for images)
    eval_samples: int = VECTOR_EVAL_SAMPLES
    # the final estimate's sampler (default: `test`); images walk the test split once
    evaluation: PairSampler | None = None
    # the learner its model trains in, when its test kind needs its own (mi_gradient's
    # critics, differentiated through rho); default: train()'s `make_learner`
    learner: LearnerFactory | None = None
    # the name that, with the seed, draws its initialisation and batches (default: its
    # key); tasks under different keys that name one stream train bit-for-bit the same
    # model (bench.mixed: estimators that train one critic alike)
    stream: str | None = None

    @property
    def stream_key(self) -> str:
        return self.stream or self.key


@dataclass
class TaskOutcome:
    key: str
    mi_train: float | None
    mi_test: float | None
    diverged: bool
    steps: int
    history: list[float] = field(default_factory=list)  # training value per recorded step
    curve: list[tuple[int, float | None]] = field(default_factory=list)  # held-out estimate
    converged: bool | None = None
    convergence: str = ""
    gradient: float | None = None  # mi_gradient: the held-out dI/drho


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


class Learner:
    """K stacked models trained together. Subclasses define the model and the bound."""

    tasks: list[CriticTask]
    k: int

    def train_step(self, x: Tensor, y: Tensor, gens: list[torch.Generator]
                   ) -> tuple[Tensor, Tensor]:
        """One optimiser step on a training batch; returns the K training values and
        whether each of the K objectives was finite (False: that model diverged)."""
        raise NotImplementedError

    def held_out(self, x: Tensor, y: Tensor, gens: list[torch.Generator]) -> Tensor:
        """The K reported values on a held-out batch (no gradient)."""
        raise NotImplementedError

    def final(self, x: Tensor, y: Tensor, gens: list[torch.Generator]) -> dict[str, Tensor]:
        """The readouts of the final held-out pass on one batch, K values each: "mi"
        (the estimate), and any other the learner reports ("gradient": dI/drho)."""
        return {"mi": self.held_out(x, y, gens)}

    def stacks(self) -> list[Stack]:
        """The stacks holding its models: what `freeze` and `restore` act on. A learner
        with none cannot stop a member early (every member trains to the end)."""
        return []

    def freeze(self, k: int) -> bool:
        """Stop training model k (it converged); False when this learner cannot."""
        stacks = self.stacks()
        for st in stacks:
            st.freeze(k)
        return bool(stacks)

    def restore(self) -> None:
        """Frozen models back to their state when frozen, for the final held-out pass."""
        for st in self.stacks():
            st.restore()


class CriticLearner(Learner):
    """The critics of a discriminative bound (workers.bounds), stacked."""

    def __init__(self, tasks: list[CriticTask], est: EstimatorSpec, device: torch.device,
                 batched: bool) -> None:
        self.tasks, self.k = tasks, len(tasks)
        modules = []
        for t in tasks:
            torch.manual_seed(task_seed(t.seed, t.stream_key))  # init: the task alone
            modules.append(build_critic(est.critic, t.x_shape, t.y_shape))
        self.stack = Stack(modules, est.train.lr, device, batched=batched)
        # the one reader of these critics' scores: training, curve and held-out pass agree
        self.bound = critic_bound(est, lambda: self.stack.param("log_baseline"))

    def train_step(self, x: Tensor, y: Tensor, gens: list[torch.Generator]
                   ) -> tuple[Tensor, Tensor]:
        scores = self.stack(x, y)
        objective = self.bound.objective(scores)
        self.stack.step(objective)
        return self.bound.value(scores.detach()), torch.isfinite(objective.detach())

    @torch.no_grad()
    def held_out(self, x: Tensor, y: Tensor, gens: list[torch.Generator]) -> Tensor:
        return self.bound.value(self.stack(x, y))

    def stacks(self) -> list[Stack]:
        return [self.stack]


LearnerFactory = Callable[[list[CriticTask], EstimatorSpec, torch.device, bool], Learner]


def _groups(tasks: list[CriticTask]) -> dict[tuple, list[int]]:
    groups: dict[tuple, list[int]] = {}
    for i, t in enumerate(tasks):
        groups.setdefault((t.x_shape, t.y_shape, t.learner), []).append(i)
    return groups


def _draw(samplers: list[PairSampler], gens: list[torch.Generator], n: int,
          device: torch.device) -> tuple[Tensor, Tensor]:
    pairs = [s(g, n) for s, g in zip(samplers, gens, strict=True)]
    x = torch.stack([p[0] for p in pairs]).to(device, non_blocking=True)
    y = torch.stack([p[1] for p in pairs]).to(device, non_blocking=True)
    return x, y


class _Run:
    """One group's training run: the learner, its data streams, its records."""

    def __init__(self, learner: Learner, n: int, device: torch.device) -> None:
        self.learner, self.n, self.device = learner, n, device
        tasks = learner.tasks
        self.gens = [torch.Generator().manual_seed(task_seed(t.seed, t.stream_key))
                     for t in tasks]
        # the curve's held-out batches are drawn once, so the curve moves only with the critic
        curve_gens = [torch.Generator().manual_seed(task_seed(t.seed, t.stream_key)
                                                    + CURVE_SEED_OFFSET) for t in tasks]
        self.curve_data = [_draw([t.test for t in tasks], curve_gens, n, device)
                           for _ in range(CURVE_BATCHES)]
        self.curve_eps = [torch.Generator().manual_seed(task_seed(t.seed, t.stream_key) + 1)
                          for t in tasks]
        self.values: list[list[float]] = [[] for _ in tasks]
        self.tail: list[list[float]] = [[] for _ in tasks]
        self.curves: list[list[tuple[int, float | None]]] = [[] for _ in tasks]
        self.diverged = [False] * len(tasks)
        self.steps = 0
        self.stopped: dict[int, int] = {}  # model -> the step it stopped at (converged)

    def step(self, record: bool, in_tail: bool) -> None:
        tasks = self.learner.tasks
        s = self.steps
        samplers = [t.schedule(s) if t.schedule else t.train for t in tasks]
        x, y = _draw(samplers, self.gens, self.n, self.device)
        values, finite = self.learner.train_step(x, y, self.gens)
        for k in (~finite).nonzero().flatten().tolist():
            if k not in self.stopped:
                self.diverged[k] = True
        for k, v in enumerate(values.tolist()):
            if k in self.stopped:
                continue
            if record:
                self.values[k].append(v)
            if in_tail:
                self.tail[k].append(v)
        self.steps += 1

    @property
    def active(self) -> int:
        return self.learner.k - len(self.stopped)

    @torch.no_grad()
    def checkpoint(self) -> None:
        for g, t in zip(self.curve_eps, self.learner.tasks, strict=True):
            g.manual_seed(task_seed(t.seed, t.stream_key) + 1)  # GM's latent noise, fixed too
        per_batch = torch.stack([self.learner.held_out(x, y, self.curve_eps)
                                 for x, y in self.curve_data], dim=-1)  # (K, batches)
        mean = per_batch.mean(-1).tolist()
        for k in range(self.learner.k):
            if k in self.stopped:  # its curve ends where it stopped
                continue
            ok = math.isfinite(mean[k])
            self.curves[k].append((self.steps, mean[k] if ok else None))

    def plateaus(self, quarter: float, min_steps: int) -> list[convergence.Plateau]:
        return [convergence.plateau(c, quarter=quarter, min_steps=min_steps)
                for c in self.curves]

    @torch.no_grad()
    def evaluate(self) -> dict[str, list[float]]:
        """The learner's final readouts, each the mean over the held-out batches."""
        tasks = self.learner.tasks
        gens = [torch.Generator().manual_seed(task_seed(t.seed, t.stream_key) + EVAL_SEED_OFFSET)
                for t in tasks]
        batches = max(1, min(t.eval_samples for t in tasks) // self.n)
        totals: dict[str, Tensor] = {}
        for _ in range(batches):
            x, y = _draw([t.evaluation or t.test for t in tasks], gens, self.n, self.device)
            for name, values in self.learner.final(x, y, gens).items():
                totals[name] = totals[name] + values if name in totals else values
        return {name: (total / batches).tolist() for name, total in totals.items()}


def train(tasks: list[CriticTask], est: EstimatorSpec, device: torch.device,
          make_learner: LearnerFactory, *, batched: bool = True,
          progress: ProgressFn | None = None, should_cancel: CancelFn | None = None,
          record_every: int = 0, progress_offset: int = 0, progress_total: int | None = None,
          min_steps: int = 0) -> dict[str, TaskOutcome]:
    """The training loop: every task's learner trained, checkpointed, evaluated.

    Tasks with the same input shapes train as one stack (``batched=False``: one at a time,
    the sequential baseline). record_every > 0 also keeps the training value every that
    many steps (`TaskOutcome.history`, for benchmarks). With `train.until_converged`, each
    model whose curve passes the convergence test at a check stops there (its state, steps
    and training tail are those of that moment) while the rest train on, a quarter of
    `steps` at a time, up to `max_steps`. `min_steps`: fewer steps never count as converged.
    """
    steps, n, cap = est.train.steps, est.train.batch_size, est.train.step_cap
    every = max(1, steps // convergence.CHECKPOINTS)
    index_groups = list(_groups(tasks).values()) if batched else [[i] for i in range(len(tasks))]
    ticker = Ticker(progress_total or len(tasks) * steps, progress, should_cancel,
                    progress_offset)
    tail_len = max(1, int(math.ceil(steps * TRAIN_TAIL)))
    out: dict[str, TaskOutcome] = {}
    for idx in index_groups:
        factory = tasks[idx[0]].learner or make_learner
        run = _Run(factory([tasks[i] for i in idx], est, device, batched), n, device)
        target = steps
        final: dict[int, convergence.Plateau] = {}  # the stopped models' last test
        while True:
            while run.steps < target:
                s = run.steps
                run.step(bool(record_every and s % record_every == 0), s >= target - tail_len)
                if run.steps % every == 0 or run.steps == target:
                    run.checkpoint()
                ticker.tick(run.active, final=run.steps == target)
            plateaus = [final.get(k, p) for k, p in
                        enumerate(run.plateaus(steps / 4, min_steps))]
            if all(p.converged for p in plateaus) or target >= cap or all(run.diverged):
                break
            for k, p in enumerate(plateaus):  # converged ones stop; the rest train on
                if p.converged and k not in run.stopped and not run.diverged[k] \
                        and run.learner.freeze(k):
                    run.stopped[k], final[k] = run.steps, p
            target = min(cap, target + max(1, steps // 4))
            ticker.total += run.active * (target - run.steps)
            run.tail = [t if k in run.stopped else [] for k, t in enumerate(run.tail)]
        run.learner.restore()
        readouts = run.evaluate()
        for k, t in enumerate(run.learner.tasks):
            tail = run.tail[k] or run.values[k][-tail_len:]
            mi_train = math.fsum(tail) / len(tail) if tail else math.nan
            read = {name: values[k] for name, values in readouts.items()}
            bad = run.diverged[k] or not all(math.isfinite(v) for v in (mi_train, *read.values()))
            out[t.key] = TaskOutcome(
                t.key, _finite(mi_train), _finite(read["mi"]), bad,
                run.stopped.get(k, run.steps), history=run.values[k],
                curve=convergence.thin(run.curves[k]),
                converged=plateaus[k].converged and not bad, convergence=plateaus[k].detail,
                gradient=_finite(read.get("gradient")))
    return out


def _finite(x: float | None) -> float | None:
    return x if x is not None and math.isfinite(x) else None


def train_critics(tasks: list[CriticTask], est: EstimatorSpec, device: torch.device, *,
                  batched: bool = True, progress: ProgressFn | None = None,
                  should_cancel: CancelFn | None = None, record_every: int = 0,
                  progress_offset: int = 0, progress_total: int | None = None,
                  min_steps: int = 0) -> dict[str, TaskOutcome]:
    """Train one critic per task (a discriminative bound); see `train`."""
    return train(tasks, est, device, CriticLearner, batched=batched, progress=progress,
                 should_cancel=should_cancel, record_every=record_every,
                 progress_offset=progress_offset, progress_total=progress_total,
                 min_steps=min_steps)
