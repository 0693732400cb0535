"""Train critics of *different* estimators as one stacked model.

workers.trainer.train_critics stacks the critics of one estimator. A benchmark such as
the staircase trains the same architecture under eight bounds; since the critics share
nothing, all of them can be one workers.stacked.Stack, each slice maximising its own
bound. Initialisation and batches are seeded per task exactly as in train_critics
(task_seed(seed, key)), so a critic's run does not depend on what it is stacked with.

Jobs whose estimators train identically (workers.bounds.training_key: SMILE at
every tau and JS all train the JS classifier) and whose tasks have the same key and
seed would train bit-for-bit the same critic: they share one slice, and each reads
its own value off it. Training SMILE(tau=5) alone gives the same numbers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from micheck.workers.bounds import Bound, critic_bound, training_key
from micheck.workers.critics import build_critic
from micheck.workers.stacked import Stack
from micheck.workers.trainer import CriticTask, task_seed
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


class MixedStack:
    def __init__(self, jobs: list[Job], device: torch.device, batched: bool = True,
                 share: bool = True) -> None:
        first = jobs[0].spec
        for j in jobs:
            if (j.spec.critic, j.spec.train) != (first.critic, first.train):
                raise ValueError("mixed jobs must share critic and training settings")
        self.jobs, self.device = jobs, device
        # one critic per distinct (how it trains, task, seed); without sharing, per job
        trains = [(training_key(j.spec.name, j.spec.params), j.task.key, j.task.seed)
                  if share else k for k, j in enumerate(jobs)]
        critic_ids = _index_groups(trains)
        self.critic_of = [0] * len(jobs)
        owners: list[Job] = []  # the job whose seed and sampler a critic uses
        for c, members in enumerate(critic_ids.values()):
            owners.append(jobs[members[0]])
            for k in members:
                self.critic_of[k] = c
        modules = []
        for j in owners:
            torch.manual_seed(task_seed(j.task.seed, j.task.key))
            modules.append(build_critic(j.spec.critic, j.task.x_shape, j.task.y_shape))
        self.owners = owners
        self.stack = Stack(modules, first.train.lr, device, batched=batched)

        def baselines(index: Tensor):
            return lambda: self.stack.param("log_baseline")[index]

        def bounds_by(keys: list, spec_of, index_of) -> list[tuple[Tensor, Tensor, Bound]]:
            out = []
            for members in _index_groups(keys).values():
                spec = spec_of(members[0])
                rows = torch.tensor(members, device=device)
                critics = torch.tensor([index_of(m) for m in members], device=device)
                out.append((rows, critics, critic_bound(spec, baselines(critics))))
            return out

        # objectives: one per critic, grouped by training objective
        self.objectives = bounds_by([training_key(j.spec.name, j.spec.params) for j in owners],
                                    lambda c: owners[c].spec, lambda c: c)
        # values: one per job, read off its critic
        self.values = bounds_by([_bound_key(j.spec) for j in jobs], lambda k: jobs[k].spec,
                                lambda k: self.critic_of[k])
        self.objective_order = torch.argsort(torch.cat([r for r, _, _ in self.objectives]))
        self.value_order = torch.argsort(torch.cat([r for r, _, _ in self.values]))
        self.gens = [torch.Generator().manual_seed(task_seed(j.task.seed, j.task.key))
                     for j in owners]

    @property
    def critics(self) -> int:
        return len(self.owners)

    def step(self, s: int) -> list[float]:
        """One training step of every critic; returns each job's bound value."""
        n = self.jobs[0].spec.train.batch_size
        pairs = [(j.task.schedule(s) if j.task.schedule else j.task.train)(g, n)
                 for j, g in zip(self.owners, self.gens, strict=True)]
        x = torch.stack([p[0] for p in pairs]).to(self.device)
        y = torch.stack([p[1] for p in pairs]).to(self.device)
        scores = self.stack(x, y)
        objective = torch.cat([b.objective(scores[c]) for _, c, b in self.objectives])
        self.stack.step(objective[self.objective_order])
        with torch.no_grad():
            detached = scores.detach()
            values = torch.cat([b.value(detached[c]) for _, c, b in self.values])
        return values[self.value_order].tolist()


def train_mixed(jobs: list[Job], device: torch.device | str = "cpu", batched: bool = True,
                share: bool = True) -> list[list[float]]:
    """Train every job's critic for its spec's steps; the training value at every step."""
    mixed = MixedStack(jobs, torch.device(device), batched, share)
    history: list[list[float]] = [[] for _ in jobs]
    for s in range(jobs[0].spec.train.steps):
        for k, v in enumerate(mixed.step(s)):
            history[k].append(v if math.isfinite(v) else math.nan)
    return history
