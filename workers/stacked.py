"""K independent modules of one architecture, trained as one batched model.

The critics of an evaluation (every t, test and seed) share nothing, so we stack
their parameters along a new leading dimension (torch.func.stack_module_state) and
run them with vmap(functional_call): one kernel launch per layer for all K, and
convolutions become grouped convolutions. Adam is elementwise, so one Adam over the
stacked tensors is exactly K independent Adams, and the sum of the K losses gives
each critic the gradient of its own loss.

``batched=False`` keeps the same interface but runs the K modules one after another
with plain forward calls: the sequential baseline for tests and benchmarks.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
from torch import Tensor, nn
from torch.func import functional_call, stack_module_state, vmap


class Stack:
    def __init__(self, modules: Sequence[nn.Module], lr: float, device: torch.device,
                 batched: bool = True) -> None:
        self.k = len(modules)
        self.batched = batched
        mods = [m.to(device) for m in modules]
        if batched:
            params, buffers = stack_module_state(mods)
            self.params: dict[str, Tensor] = params
            self.buffers = buffers
            self.base = copy.deepcopy(mods[0]).to("meta")
            self.optimizers = [torch.optim.Adam(list(params.values()), lr=lr)]
        else:
            self.modules = mods
            self.optimizers = [torch.optim.Adam(m.parameters(), lr=lr) for m in mods]

    def __call__(self, *inputs: Tensor, **kwargs) -> Tensor:
        """Apply module k to inputs[..][k]; every input has a leading dimension K.
        Keyword arguments (not batched) go to every module's forward."""
        if self.batched:
            def one(params: dict, buffers: dict, *xs: Tensor) -> Tensor:
                return functional_call(self.base, (params, buffers), xs, kwargs)

            return vmap(one, randomness="different")(self.params, self.buffers, *inputs)
        return torch.stack([m(*(x[k] for x in inputs), **kwargs)
                            for k, m in enumerate(self.modules)])

    def param(self, name: str) -> Tensor:
        """A parameter of all K modules, stacked: shape (K, *param.shape)."""
        if self.batched:
            return self.params[name]
        return torch.stack([dict(m.named_parameters())[name] for m in self.modules])

    def step(self, objectives: Tensor) -> None:
        """One Adam step that maximises each module's objective (shape (K,))."""
        for opt in self.optimizers:
            opt.zero_grad(set_to_none=True)
        (-objectives.sum()).backward()
        for opt in self.optimizers:
            opt.step()

    def state_dicts(self) -> list[dict[str, Tensor]]:
        if self.batched:
            return [{n: p[k].detach().clone() for n, p in self.params.items()}
                    for k in range(self.k)]
        return [{n: p.detach().clone() for n, p in m.named_parameters()} for m in self.modules]

