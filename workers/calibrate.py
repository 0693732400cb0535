"""How fast this device trains critics, in the compute budget's own units.

The service refuses a request whose estimated time on the queue's devices exceeds its
limit and sizes the job timeout from the same estimate (micheck.budget.run_seconds):

    seconds = critic steps x step overhead + GMAC / throughput

Both numbers are measured here, on the device a worker serves, in about ``seconds``
each:

- the **step overhead**: the engine itself (micheck.workers.engine.evaluate) on a tiny
  vector task (2-d Gaussian, a 16-unit separable critic, batch 16), run twice with
  different step counts: the difference per step is what any training step costs beyond
  its arithmetic (sampling, Python, autograd, the optimiser, the curve's checkpoints);
- the **throughput**: App. B.2's separable CNN critic on MNIST-shaped inputs (width 0.5,
  batch 64 on a CPU; width 1, batch 256 on a GPU) trained as the engine trains (Adam,
  forward and backward), whose GMAC per step micheck.budget counts
  (``TRAIN_FACTOR x critic_forward_macs``); its time per step less the overhead of a
  bare step gives GMAC/s.

So the numbers are in the units the estimate is made in, whatever the estimate's constant
factors. A worker's parent process never imports torch: it runs this module as a child
(``python -m micheck.workers.calibrate --device cpu``), reads the JSON line it prints and
stores it in its ``workers`` row (micheck.workers.worker). Measured on a busy machine the
numbers are lower, and the estimate more cautious, than on an idle one.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from typing import Any

import torch
from micheck.workers.critics import build_critic

from micheck.budget import TRAIN_FACTOR, critic_forward_macs
from micheck.contract import CriticSpec
from micheck.processes import die_with_parent
from micheck.settings import Settings

IMAGE = (1, 28, 28)
CHUNKS = 3  # each measurement is the fastest of this many chunks of its time


def _seconds_per_step(critic: torch.nn.Module, x: torch.Tensor, y: torch.Tensor,
                      device: torch.device, seconds: float, min_steps: int = 3) -> float:
    opt = torch.optim.Adam(critic.parameters(), lr=1e-4)

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        scores = critic(x, y)
        joint = scores.diagonal(dim1=-2, dim2=-1).mean()
        loss = scores.logsumexp(-1).mean() - joint  # InfoNCE's loss: every score is used
        loss.backward()
        opt.step()

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    step()  # warm-up: first-call allocations and kernel choices
    sync()
    best = float("inf")
    for _ in range(CHUNKS):  # the fastest chunk: a moment of other load is not the device
        n, start = 0, time.perf_counter()
        while n < min_steps or time.perf_counter() - start < seconds / CHUNKS:
            step()
            n += 1
            if n % 4 == 0:
                sync()
        sync()
        best = min(best, (time.perf_counter() - start) / n)
    return best


def _engine_seconds_per_step(device: str, seconds: float, guess: float) -> float:
    """The engine's marginal cost of one training step on a tiny vector task."""
    from micheck.workers.engine import evaluate

    from micheck.contract import EvaluationRequest

    def run(steps: int) -> float:
        request = EvaluationRequest.model_validate({
            "estimator": {"name": "infonce", "critic": {"kind": "separable", "hidden": 16,
                                                        "embed_dim": 8},
                          "train": {"batch_size": 16, "steps": steps, "eval_samples": 16}},
            "dataset": {"name": "gaussian", "dim": 2, "mi": 1.0},
            "tests": [{"kind": "ground_truth"}], "seeds": [0], "max_seeds": 1})
        start = time.perf_counter()
        evaluate(request, device=device)
        return time.perf_counter() - start

    run(10)  # warm-up: imports, first allocations
    extra = int(min(5000, max(100, seconds / max(guess * 3, 1e-5))))
    short = run(20)
    return max(0.0, run(20 + extra) - short) / extra


def calibrate(device: str, seconds: float = 1.0) -> dict[str, Any]:
    """Measure ``device``; the fields a worker stores in its row."""
    settings = Settings()
    if settings.torch_threads:  # as a job process of this worker would run
        torch.set_num_threads(settings.torch_threads)
    dev = torch.device(device)
    gen = torch.Generator().manual_seed(0)
    started = time.perf_counter()

    tiny = CriticSpec(kind="separable", arch="mlp", hidden=16, embed_dim=8)
    x = torch.randn(1, 16, 2, generator=gen).to(dev)  # MLP critics take (K, n, d)
    bare = _seconds_per_step(build_critic(tiny, (2,), (2,)).to(dev), x, x.clone(), dev,
                             seconds / 4)
    overhead = max(bare, _engine_seconds_per_step(device, seconds, bare))

    gpu = dev.type == "cuda"
    width, n = (1.0, 256) if gpu else (0.5, 64)
    heavy = CriticSpec(kind="separable", arch="cnn", width=width)
    xi = torch.randn(n, *IMAGE, generator=gen).to(dev)
    per_step = _seconds_per_step(build_critic(heavy, IMAGE, IMAGE).to(dev), xi, xi.clone(),
                                 dev, seconds)
    gmac = TRAIN_FACTOR * critic_forward_macs(heavy, IMAGE, 1, n) / 1e9
    rate = gmac / max(per_step - bare, 1e-6)
    return {"device": device, "gmac_per_s": round(rate, 3),
            "step_overhead_s": round(overhead, 6),
            "model": f"separable CNN width {width:g}, batch {n}, {IMAGE}: {gmac:.3g} GMAC "
                     f"in {per_step * 1000:.1f} ms a step",
            "torch": torch.__version__, "threads": torch.get_num_threads(),
            "took_s": round(time.perf_counter() - started, 2)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m micheck.workers.calibrate",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--seconds", type=float, default=1.0, help="per measured critic")
    a = p.parse_args(argv)
    worker_pid = Settings().worker_pid  # started by a worker: never outlive it
    if worker_pid:
        die_with_parent(signal.SIGKILL, expected_parent=worker_pid)
    print(json.dumps(calibrate(a.device, a.seconds)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
