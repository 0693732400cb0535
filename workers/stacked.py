"""K independent modules of one architecture, trained as one batched model.

The critics of an evaluation (every t, test and seed) share nothing, so one step can
train all of them. How the K modules run is chosen per architecture and device:

- ``native``: modules whose layers carry a leading K dimension themselves (the MLP
  critics, workers.critics.StackedLinear). Their parameters are concatenated along
  that dimension into one module; every layer is one baddbmm for all K. No vmap:
  on a CPU, vmap's per-call overhead and the transposed weight gradients it leaves
  behind cost more than the arithmetic of these small layers.
- ``vmap``: any other module, parameters stacked (torch.func.stack_module_state) and
  run with vmap(functional_call); convolutions become grouped convolutions. Used for
  CNNs on a GPU, where one batch-64 critic cannot fill the device.
- ``loop``: CNNs on a CPU. oneDNN runs grouped convolutions slower than K dense ones,
  and a batch-64 CNN step already keeps the CPU busy, so the K modules run one after
  another inside the step (still one trainer step, one optimizer).
- ``sequential`` (``batched=False``): the same loop with one optimizer per module; the
  trainer then steps one critic start to finish. The baseline for tests and benchmarks.

Adam is elementwise, so one Adam over stacked tensors is exactly K independent Adams,
and the sum of the K losses gives each module the gradient of its own loss. We use
the fused Adam kernel where torch has one: the same update, one pass over memory.

A member can stop while the rest train on (`freeze`: a critic that has converged). Its
parameters are copied then and put back by `restore`, so its final readout is the state it
converged in. In the loop modes a frozen member is not run at all (its scores are zeros
with no gradient, so Adam leaves it alone): the CPU time goes to the members still
training. In the native and vmap modes it rides along in the batched arithmetic, which
costs little there, and is restored at the end.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Sequence

import torch
from torch import Tensor, nn
from torch.func import functional_call, stack_module_state, vmap

MODES = ("native", "vmap", "loop", "sequential")


def adam(params: Iterable[Tensor], lr: float) -> torch.optim.Optimizer:
    params = list(params)
    try:
        return torch.optim.Adam(params, lr=lr, fused=True)
    except (RuntimeError, TypeError, ValueError):  # an older torch or a device without one
        return torch.optim.Adam(params, lr=lr)


def stacks_natively(module: nn.Module) -> bool:
    return bool(getattr(module, "stacks_natively", False))


def choose_mode(module: nn.Module, device: torch.device, batched: bool) -> str:
    if not batched:
        return "sequential"
    if stacks_natively(module):
        return "native"
    has_conv = any(isinstance(m, nn.Conv2d) for m in module.modules())
    return "loop" if has_conv and device.type == "cpu" else "vmap"


class Stack:
    def __init__(self, modules: Sequence[nn.Module], lr: float, device: torch.device,
                 batched: bool = True, mode: str | None = None) -> None:
        self.k = len(modules)
        self.batched = batched
        self.mode = mode or choose_mode(modules[0], device, batched)
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {self.mode!r}")
        self.native = stacks_natively(modules[0])
        mods = [m.to(device) for m in modules]
        if self.mode == "native":
            self.merged = copy.deepcopy(mods[0])
            named = [dict(m.named_parameters()) for m in mods]
            for name, p in self.merged.named_parameters():
                p.data = torch.cat([d[name].data for d in named])
            self.optimizers = [adam(self.merged.parameters(), lr)]
        elif self.mode == "vmap":
            params, buffers = stack_module_state(mods)
            self.params: dict[str, Tensor] = params
            self.buffers = buffers
            self.base = copy.deepcopy(mods[0]).to("meta")
            self.optimizers = [adam(params.values(), lr)]
        else:
            self.modules = mods
            self.optimizers = ([adam((p for m in mods for p in m.parameters()), lr)]
                               if self.mode == "loop" else
                               [adam(m.parameters(), lr) for m in mods])
        self.frozen: dict[int, dict[str, Tensor]] = {}  # member -> its parameters when frozen

    def __call__(self, *inputs: Tensor, **kwargs) -> Tensor:
        """Apply module k to inputs[..][k]; every input has a leading dimension K.
        Keyword arguments (not batched) go to every module's forward."""
        if self.mode == "native":
            return self.merged(*inputs, **kwargs)
        if self.mode == "vmap":
            def one(params: dict, buffers: dict, *xs: Tensor) -> Tensor:
                if self.native:  # each slice is a native module of K = 1
                    xs = tuple(x.unsqueeze(0) for x in xs)
                    return functional_call(self.base, (params, buffers), xs, kwargs)[0]
                return functional_call(self.base, (params, buffers), xs, kwargs)

            return vmap(one, randomness="different")(self.params, self.buffers, *inputs)
        if self.native:  # a native module of K = 1 keeps its leading dimension
            outs = [None if k in self.frozen else m(*(x[k:k + 1] for x in inputs), **kwargs)
                    for k, m in enumerate(self.modules)]
            return torch.cat(_fill(outs))
        outs = [None if k in self.frozen else m(*(x[k] for x in inputs), **kwargs)
                for k, m in enumerate(self.modules)]
        return torch.stack(_fill(outs))

    def freeze(self, k: int) -> None:
        """Member k stops training; `restore` puts back the parameters it has now."""
        if k not in self.frozen:
            self.frozen[k] = self.state_dicts()[k]

    def restore(self) -> None:
        """Every frozen member back to the parameters it was frozen with, and running again
        (for the final held-out pass)."""
        with torch.no_grad():
            for k, state in self.frozen.items():
                if self.mode == "native":
                    for name, p in self.merged.named_parameters():
                        p[k:k + 1].copy_(state[name])
                elif self.mode == "vmap":
                    for name, p in self.params.items():
                        p[k].copy_(state[name])
                else:
                    for name, p in self.modules[k].named_parameters():
                        p.copy_(state[name])
        self.frozen = {}

    def param(self, name: str) -> Tensor:
        """A parameter of all K modules, stacked: shape (K, *param.shape). Read it again
        after each step: in the loop modes it is a fresh stack of the live parameters."""
        if self.mode == "native":
            return dict(self.merged.named_parameters())[name]
        if self.mode == "vmap":
            p = self.params[name]
            return p.view(self.k) if self.native and p.dim() == 2 else p
        parts = [dict(m.named_parameters())[name] for m in self.modules]
        return torch.cat(parts) if self.native else torch.stack(parts)

    def step(self, objectives: Tensor) -> None:
        """One Adam step that maximises each module's objective (shape (K,))."""
        for opt in self.optimizers:
            opt.zero_grad(set_to_none=True)
        (-objectives.sum()).backward()
        for opt in self.optimizers:
            opt.step()

    def state_dicts(self) -> list[dict[str, Tensor]]:
        if self.mode == "native":
            return [{n: p[k:k + 1].detach().clone() for n, p in self.merged.named_parameters()}
                    for k in range(self.k)]
        if self.mode == "vmap":
            return [{n: p[k].detach().clone() for n, p in self.params.items()}
                    for k in range(self.k)]
        return [{n: p.detach().clone() for n, p in m.named_parameters()} for m in self.modules]


def _fill(outs: list[Tensor | None]) -> list[Tensor]:
    """Zeros (no gradient) in place of the frozen members' outputs."""
    like = next(o for o in outs if o is not None)
    return [torch.zeros_like(like) if o is None else o for o in outs]
