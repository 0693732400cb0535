"""Train critics of *different* estimators as one stacked model, in the engine's one loop.

workers.trainer.train_critics stacks the critics of one estimator. A benchmark such as
the staircase trains the same architecture under eight bounds; since the critics share
nothing, all of them can be one workers.stacked.Stack, each slice maximising its own
bound: `MixedLearner`, a `workers.trainer.Learner` that `workers.trainer.train` steps like
any other (schedule, divergence, history, progress). Initialisation and batches are seeded
per task exactly as in train_critics (task_seed(seed, key) of the job's own task, its
`stream`), so a critic's run does not depend on what it is stacked with.

Jobs whose estimators train identically (workers.bounds.training_key: SMILE at
every tau and JS all train the JS classifier) and whose tasks have the same key and
seed would train bit-for-bit the same critic: they share one slice, and each reads
its own value off it. Training SMILE(tau=5) alone gives the same numbers.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import torch
from micheck.workers.bounds import Bound, critic_bound, training_key
from micheck.workers.critics import build_critic
from micheck.workers.stacked import Stack
from micheck.workers.trainer import CriticTask, Learner, task_seed, train
from torch import Tensor

from micheck.contract import EstimatorSpec


@dataclass
class Job:
    spec: EstimatorSpec  # all jobs share critic architecture, lr, batch size and steps
    task: CriticTask


def _bound_key(spec: EstimatorSpec) -> tuple:
    return (spec.name, tuple(sorted((k, str(v)) for k, v in spec.params.items())))


def _index_groups(keys: list) -> dict:
    groups: dict = {}
    for i, key in enumerate(keys):
        groups.setdefault(key, []).append(i)
    return groups


class MixedLearner(Learner):
    """One stack of critics for jobs of several estimators; K = the jobs, each reading its
    own bound off its critic (shared by jobs that train alike when `share`)."""

    def __init__(self, tasks: list[CriticTask], specs: dict[str, EstimatorSpec],
                 device: torch.device, batched: bool = True, share: bool = True) -> None:
        self.tasks, self.k = tasks, len(tasks)
        jobs = [specs[t.key] for t in tasks]
        first = jobs[0]
        for spec in jobs:
            if (spec.critic, spec.train) != (first.critic, first.train):
                raise ValueError("mixed jobs must share critic and training settings")
        # one critic per distinct (how it trains, stream, seed); without sharing, per job
        trains = [(training_key(s.name, s.params), t.stream_key, t.seed) if share else k
                  for k, (s, t) in enumerate(zip(jobs, tasks, strict=True))]
        critic_ids = _index_groups(trains)
        self.critic_of = [0] * len(tasks)
        self.owner_rows: list[int] = []  # the job whose batch each critic trains on
        for c, members in enumerate(critic_ids.values()):
            self.owner_rows.append(members[0])
            for k in members:
                self.critic_of[k] = c
        modules = []
        for row in self.owner_rows:
            t = tasks[row]
            torch.manual_seed(task_seed(t.seed, t.stream_key))
            modules.append(build_critic(jobs[row].critic, t.x_shape, t.y_shape))
        self.stack = Stack(modules, first.train.lr, device, batched=batched)
        self.rows = torch.tensor(self.owner_rows, device=device)

        def baselines(index: Tensor):
            return lambda: self.stack.param("log_baseline")[index]

        def bounds_by(keys: list, spec_of, index_of
                      ) -> tuple[list[tuple[Tensor, Bound]], Tensor]:
            """One bound per group of equal keys, reading its members' critics; and the
            order that puts the groups' outputs back in the members' order."""
            out, members_order = [], []
            for members in _index_groups(keys).values():
                critics = torch.tensor([index_of(m) for m in members], device=device)
                out.append((critics, critic_bound(spec_of(members[0]), baselines(critics))))
                members_order += members
            return out, torch.argsort(torch.tensor(members_order, device=device))

        owners = [jobs[r] for r in self.owner_rows]
        # objectives: one per critic, grouped by training objective
        self.objectives, self.objective_order = bounds_by(
            [training_key(s.name, s.params) for s in owners], lambda c: owners[c], lambda c: c)
        # values: one per job, read off its critic
        self.values, self.value_order = bounds_by(
            [_bound_key(s) for s in jobs], lambda k: jobs[k], lambda k: self.critic_of[k])

    @property
    def critics(self) -> int:
        return len(self.owner_rows)

    def _scores(self, x: Tensor, y: Tensor) -> Tensor:
        return self.stack(x[self.rows], y[self.rows])  # jobs sharing a critic: one batch

    def _read(self, scores: Tensor) -> Tensor:
        return torch.cat([b.value(scores[c]) for c, b in self.values])[self.value_order]

    def train_step(self, x: Tensor, y: Tensor, gens: list[torch.Generator]
                   ) -> tuple[Tensor, Tensor]:
        scores = self._scores(x, y)
        objective = torch.cat([b.objective(scores[c]) for c, b in self.objectives])
        objective = objective[self.objective_order]
        self.stack.step(objective)
        finite = torch.isfinite(objective.detach())[torch.tensor(self.critic_of)]
        with torch.no_grad():
            return self._read(scores.detach()), finite

    @torch.no_grad()
    def held_out(self, x: Tensor, y: Tensor, gens: list[torch.Generator]) -> Tensor:
        return self._read(self._scores(x, y))


def mixed_tasks(jobs: list[Job]) -> tuple[list[CriticTask], dict[str, EstimatorSpec]]:
    """One trainer task per job (its own key; its task's key as the stream that seeds it;
    one held-out batch: the staircase reads training values), and each one's spec."""
    tasks = [dataclasses.replace(j.task, key=f"{i}:{j.task.key}", stream=j.task.stream_key,
                                 eval_samples=j.spec.train.batch_size)
             for i, j in enumerate(jobs)]
    return tasks, {t.key: j.spec for t, j in zip(tasks, jobs, strict=True)}


def train_mixed(jobs: list[Job], device: torch.device | str = "cpu", batched: bool = True,
                share: bool = True) -> list[list[float]]:
    """Train every job's critic for its spec's steps in `workers.trainer.train`; the
    training value at every step (NaN where not finite). ``batched=False``: one job at a
    time (the sequential baseline)."""
    tasks, specs = mixed_tasks(jobs)
    dev = torch.device(device)

    def make(group: list[CriticTask], est: EstimatorSpec, device: torch.device,
             batched: bool) -> MixedLearner:
        return MixedLearner(group, specs, device, batched, share)

    out = train(tasks, jobs[0].spec, dev, make, batched=batched, record_every=1)
    return [[v if math.isfinite(v) else math.nan for v in out[t.key].history] for t in tasks]
