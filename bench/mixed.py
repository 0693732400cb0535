"""Train critics of *different* estimators as one stacked model.

workers.trainer.train_critics stacks the critics of one estimator. A benchmark such as
the staircase trains the same architecture under eight bounds; since the critics share
nothing, all of them can be one workers.stacked.Stack, each slice maximising its own
bound. Initialisation and batches are seeded per task exactly as in train_critics
(task_seed(seed, key)), so a critic's run does not depend on what it is stacked with.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from micheck.contract import EstimatorSpec
from workers.critics import build_critic
from workers.estimators import Bound, make_bound
from workers.stacked import Stack
from workers.trainer import CriticTask, task_seed


@dataclass
class Job:
    spec: EstimatorSpec  # all jobs share critic architecture, lr, batch size and steps
    task: CriticTask


def _bound_key(spec: EstimatorSpec) -> tuple:
    return (spec.name, tuple(sorted((k, str(v)) for k, v in spec.params.items())))


class MixedStack:
    def __init__(self, jobs: list[Job], device: torch.device, batched: bool = True) -> None:
        first = jobs[0].spec
        for j in jobs:
            if (j.spec.critic, j.spec.train) != (first.critic, first.train):
                raise ValueError("mixed jobs must share critic and training settings")
        self.jobs, self.device = jobs, device
        modules = []
        for j in jobs:
            torch.manual_seed(task_seed(j.task.seed, j.task.key))
            modules.append(build_critic(j.spec.critic, j.task.x_shape, j.task.y_shape))
        self.stack = Stack(modules, first.train.lr, device, batched=batched)
        groups: dict[tuple, list[int]] = {}
        for k, j in enumerate(jobs):
            groups.setdefault(_bound_key(j.spec), []).append(k)
        baselines = self.stack.param("log_baseline")
        self.bounds: list[tuple[Tensor, Bound]] = []
        for idx in groups.values():
            spec = jobs[idx[0]].spec
            index = torch.tensor(idx, device=device)
            self.bounds.append((index, make_bound(spec.name, spec.params, baselines[index])))
        # the concatenation of the groups' outputs, back in job order
        self.order = torch.argsort(torch.cat([i for i, _ in self.bounds]))
        self.gens = [torch.Generator().manual_seed(task_seed(j.task.seed, j.task.key))
                     for j in jobs]

    def step(self, s: int) -> list[float]:
        """One training step of every critic; returns each job's bound value."""
        n = self.jobs[0].spec.train.batch_size
        pairs = [(j.task.schedule(s) if j.task.schedule else j.task.train)(g, n)
                 for j, g in zip(self.jobs, self.gens, strict=True)]
        x = torch.stack([p[0] for p in pairs]).to(self.device)
        y = torch.stack([p[1] for p in pairs]).to(self.device)
        scores = self.stack(x, y)
        objective = torch.cat([b.objective(scores[i]) for i, b in self.bounds])[self.order]
        self.stack.step(objective)
        with torch.no_grad():
            detached = scores.detach()
            values = torch.cat([b.value(detached[i]) for i, b in self.bounds])[self.order]
        return values.tolist()


def train_mixed(jobs: list[Job], device: torch.device | str = "cpu", batched: bool = True
                ) -> list[list[float]]:
    """Train every job's critic for its spec's steps; the training value at every step."""
    mixed = MixedStack(jobs, torch.device(device), batched)
    history: list[list[float]] = [[] for _ in jobs]
    for s in range(jobs[0].spec.train.steps):
        for k, v in enumerate(mixed.step(s)):
            history[k].append(v if math.isfinite(v) else math.nan)
    return history
