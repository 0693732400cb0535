"""Speed: critic steps per second, batched (one stacked model) vs sequential (a plain
loop over critics), FLOP rates against this machine's measured matmul peak, cost growth
with the batch size and with the number of stacked critics, peak memory, and a profile.

Timings are taken in one process, alternating batched and sequential repeats and
keeping the median, because this machine's cores are shared and the load moves.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from argparse import Namespace
from collections.abc import Callable
from pathlib import Path

import torch
from micheck.workers.bounds import infonce, make_bound
from micheck.workers.critics import build_critic, mlp
from micheck.workers.stacked import Stack
from micheck.workers.trainer import train_critics
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from bench import staircase as st
from bench.mixed import Job, train_mixed
from micheck.contract import CriticSpec

MNIST_SHAPE = (1, 28, 28)


def matmul_peak(size: int = 2048, repeats: int = 5) -> float:
    """GFLOP/s of a large square float32 matmul at the current thread count (best of N)."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    a @ b
    best = min(_time(lambda: a @ b) for _ in range(repeats))
    return 2 * size**3 / best / 1e9


def _time(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def interleaved(fns: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    """Median seconds of each fn, run in turn `repeats` times after one warm-up each."""
    for fn in fns.values():
        fn()
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for k, fn in fns.items():
            times[k].append(_time(fn))
    return {k: statistics.median(v) for k, v in times.items()}


class StepBench:
    """K critics of one architecture on fixed random inputs; step() is one training step.
    mode: a workers.stacked mode (None: what the engine picks; "sequential": one by one)."""

    def __init__(self, kind: str, x_shape: tuple[int, ...], k: int, n: int,
                 mode: str | None = None, width: float = 1.0, block: int | None = None
                 ) -> None:
        spec = CriticSpec(kind=kind, width=width, block=block)
        mods = [build_critic(spec, x_shape, x_shape) for _ in range(k)]
        self.stack = Stack(mods, 5e-4, torch.device("cpu"), batched=mode != "sequential",
                           mode=None if mode == "sequential" else mode)
        self.x, self.y = torch.rand(k, n, *x_shape), torch.rand(k, n, *x_shape)
        self.bound = infonce if block is None else make_bound("infonce", {}, blocks=True).value

    def step(self) -> None:
        self.stack.step(self.bound(self.stack(self.x, self.y)))

    @torch.no_grad()
    def held_out(self) -> None:
        """One held-out batch: scores and the bound, no gradient."""
        self.bound(self.stack(self.x, self.y))

    def flops(self) -> int:
        with FlopCounterMode(display=False) as fc:
            self.step()
        return fc.get_total_flops()


class PlainCritic(nn.Module):
    """The textbook separable critic: two nn.Sequential MLPs (App. B.1), g(x) h(y)^T."""

    def __init__(self, d: int = 20, hidden: int = 256, embed: int = 32) -> None:
        super().__init__()
        self.g, self.h = mlp(d, hidden, embed), mlp(d, hidden, embed)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.g(x) @ self.h(y).T


def plain_loop(label: str, task: str, steps: int) -> None:
    """What a researcher writes for one estimator: one critic, torch.optim.Adam defaults,
    sample, score, backward, step, record the value. The baseline the issue names."""
    entry = st.BY_LABEL[label]
    critic = PlainCritic()
    bound = make_bound(entry.name, dict(entry.params), torch.zeros(()))
    opt = torch.optim.Adam(critic.parameters(), lr=st.LR)
    sampler = st.staircase_task(task, label, 0, max(1, steps // 5))
    gen = torch.Generator().manual_seed(0)
    for s in range(steps):
        x, y = sampler.schedule(s)(gen, st.BATCH)  # type: ignore[misc]
        scores = critic(x, y)
        loss = -bound.objective(scores)
        opt.zero_grad()
        loss.backward()
        opt.step()
        bound.value(scores.detach()).item()


def gaussian_rates(kind: str, steps: int, repeats: int) -> list[dict[str, object]]:
    """Per estimator: critic steps/s of train_critics on the Gaussian and Cubic staircase
    tasks (2 critics), batched and sequential; then all 8 discriminative estimators x 2
    tasks as one mixed stack vs the engine's sequential loop over estimators."""
    rows = []
    tasks = ["gaussian", "cubic"]

    def engine_run(label: str, batched: bool) -> Callable[[], object]:
        spec = st.spec(st.BY_LABEL[label], kind, steps)
        def go() -> object:
            ts = [st.staircase_task(t, label, 0, max(1, steps // 5)) for t in tasks]
            return train_critics(ts, spec, torch.device("cpu"), batched=batched)
        return go

    for label in st.DISCRIMINATIVE:
        t = interleaved({"batched": engine_run(label, True),
                         "sequential": engine_run(label, False)}, repeats)
        rows.append({"critic": kind, "estimator": label, "critics": len(tasks), "steps": steps,
                     "batched_steps_per_s": round(len(tasks) * steps / t["batched"], 1),
                     "sequential_steps_per_s": round(len(tasks) * steps / t["sequential"], 1),
                     "ratio": round(t["sequential"] / t["batched"], 2)})

    def mixed(batched: bool, share: bool) -> Callable[[], object]:
        def go() -> object:
            jobs = [Job(st.spec(st.BY_LABEL[lab], kind, steps),
                        st.staircase_task(t, lab, 0, max(1, steps // 5)))
                    for lab in st.DISCRIMINATIVE for t in tasks]
            train_mixed(jobs, "cpu", batched, share)
        return go

    def engine_loop() -> None:  # the engine's sequential mode, estimator by estimator
        for label in st.DISCRIMINATIVE:
            engine_run(label, False)()

    def plain() -> None:  # the textbook loop, one critic at a time
        for label in st.DISCRIMINATIVE:
            for task in tasks:
                plain_loop(label, task, steps)

    fns: dict[str, Callable[[], object]] = {
        "stack_shared": mixed(True, True), "stack_unshared": mixed(True, False),
        "engine_sequential": engine_loop}
    if kind == "separable":
        fns["plain_loop"] = plain
    t = interleaved(fns, repeats)
    k = len(st.DISCRIMINATIVE) * len(tasks)
    row: dict[str, object] = {"critic": kind, "estimator": f"ALL {len(st.DISCRIMINATIVE)}",
                              "runs": k, "steps": steps, "threads": torch.get_num_threads()}
    for name, sec in t.items():  # "steps/s" counts (estimator, task) run steps
        row[f"{name}_steps_per_s"] = round(k * steps / sec, 1)
    for base in ("plain_loop", "engine_sequential"):
        if base in t:
            row[f"shared_over_{base}"] = round(t[base] / t["stack_shared"], 2)
            row[f"unshared_over_{base}"] = round(t[base] / t["stack_unshared"], 2)
    rows.append(row)
    return rows


def flop_rate(kind: str, shape: tuple[int, ...], k: int, n: int, steps: int, repeats: int,
              peak: float, modes: tuple[str, ...]) -> dict[str, object]:
    """Achieved GFLOP/s of training steps (FLOPs counted by torch) in each stacking mode;
    "auto" is the mode the engine picks on this device."""
    out: dict[str, object] = {"critic": kind, "input": "x".join(map(str, shape)), "k": k, "n": n,
                              "threads": torch.get_num_threads()}
    benches = {m: StepBench(kind, shape, k, n, None if m == "auto" else m) for m in modes}
    out["auto_mode"] = benches["auto"].stack.mode if "auto" in benches else None
    flops = next(iter(benches.values())).flops()
    t = interleaved({m: (lambda sb=sb: [sb.step() for _ in range(steps)])
                     for m, sb in benches.items()}, repeats)
    out["gflop_per_critic_step"] = round(flops / k / 1e9, 4)
    for m, sec in t.items():
        per_step = sec / steps
        out[f"{m}_ms_per_stack_step"] = round(per_step * 1e3, 2)
        out[f"{m}_critic_steps_per_s"] = round(k / per_step, 2)
        out[f"{m}_gflops"] = round(flops / per_step / 1e9, 1)
        out[f"{m}_fraction_of_peak"] = round(flops / per_step / 1e9 / peak, 3)
    if "sequential" in t:
        for m in t:
            if m != "sequential":
                out[f"{m}_over_sequential"] = round(t["sequential"] / t[m], 2)
    return out


def blocks(steps: int, repeats: int, width: float = 0.25, n: int = 64
           ) -> list[dict[str, object]]:
    """The joint CNN critic of App. B.2 on MNIST at batch n: all n^2 pairs against blocks
    of 8 and 16 (``critic.block``: n*b pairs), the separable critic for reference. ms per
    training step and per held-out batch, one critic, at the given width."""
    cases: list[tuple[str, int | None]] = [("joint", None), ("joint", 16), ("joint", 8),
                                           ("separable", None)]
    benches = {c: StepBench(c[0], MNIST_SHAPE, 1, n, "sequential", width, c[1]) for c in cases}
    train = interleaved({c: (lambda sb=sb: [sb.step() for _ in range(steps)])
                         for c, sb in benches.items()}, repeats)
    held = interleaved({c: (lambda sb=sb: [sb.held_out() for _ in range(steps)])
                        for c, sb in benches.items()}, repeats)
    full = train[("joint", None)]
    return [{"critic": kind, "block": block, "pairs": n * (block or n), "n": n,
             "width": width, "steps": steps, "repeats": repeats,
             "threads": torch.get_num_threads(),
             "ms_per_step": round(train[(kind, block)] / steps * 1e3, 1),
             "ms_per_held_out_batch": round(held[(kind, block)] / steps * 1e3, 1),
             "speedup_over_full_joint": round(full / train[(kind, block)], 2)}
            for kind, block in cases]


def growth(quick: bool) -> list[dict[str, object]]:
    """ms per critic step vs batch size n (one critic) and vs critics stacked K (n = 64)."""
    rows = []
    ns = [16, 32, 64, 128] if quick else [16, 32, 64, 128, 256]
    for kind in ("separable", "joint"):
        for n in ns:
            sb = StepBench(kind, (20,), 1, n, "sequential")
            steps = 20 if kind == "separable" else max(2, 4096 // (n * n) * 4)
            t = interleaved({"s": lambda sb=sb, steps=steps: [sb.step() for _ in range(steps)]}, 3)
            rows.append({"sweep": "batch", "critic": kind, "n": n, "k": 1,
                         "ms_per_critic_step": round(t["s"] / steps * 1e3, 3)})
    ks = [1, 2, 4, 8, 16] if quick else [1, 2, 4, 8, 16, 32]
    for k in ks:
        for batched in (True, False):
            sb = StepBench("separable", (20,), k, 64, None if batched else "sequential")
            t = interleaved({"s": lambda sb=sb: [sb.step() for _ in range(10)]}, 3)
            rows.append({"sweep": "critics", "critic": "separable", "n": 64, "k": k,
                         "batched": batched, "ms_per_critic_step": round(t["s"] / 10 / k * 1e3, 3)})
    return rows


_MEM_SNIPPET = """
import sys, torch
torch.set_num_threads(1)
from bench.speed import StepBench
def status(field):
    for line in open('/proc/self/status'):
        if line.startswith(field):
            return int(line.split()[1])
kind, n, k, shape = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), eval(sys.argv[4])
sb = StepBench(kind, shape, k, n, None if sys.argv[5] == '1' else 'sequential')
sb.step()
before = status('VmRSS:')
open('/proc/self/clear_refs', 'w').write('5')  # resets VmHWM to the current RSS
for _ in range(2):
    sb.step()
print(before, status('VmHWM:'))
"""


def memory(quick: bool) -> list[dict[str, object]]:
    """Peak resident memory of training steps, one fresh process per point: VmHWM
    (reset through /proc/self/clear_refs after a warm-up step) and its excess over the
    RSS before the step (activations, gradients, workspace)."""
    points = [("separable", 64, 1, (20,), True), ("separable", 64, 16, (20,), True),
              ("joint", 64, 1, (20,), True), ("joint", 128, 1, (20,), True),
              ("joint", 256, 1, (20,), True), ("separable", 64, 1, MNIST_SHAPE, False)]
    if not quick:
        points += [("separable", 64, 4, MNIST_SHAPE, True), ("separable", 64, 4, MNIST_SHAPE,
                                                              False),
                   ("separable", 256, 16, (20,), True)]
    rows = []
    root = Path(__file__).resolve().parent.parent
    for kind, n, k, shape, batched in points:
        res = subprocess.run([sys.executable, "-c", _MEM_SNIPPET, kind, str(n), str(k),
                              repr(shape), "1" if batched else "0"], capture_output=True,
                             text=True, cwd=root, check=True)
        before, peak = map(int, res.stdout.split()[-2:])
        rows.append({"critic": kind, "input": "x".join(map(str, shape)), "n": n, "k": k,
                     "batched": batched, "peak_rss_mib": round(peak / 1024, 1),
                     "step_peak_mib": round((peak - before) / 1024, 1)})
    return rows


def profile(out: Path) -> dict[str, str]:
    """torch.profiler tables of the two hot paths: the 16-critic mixed staircase stack
    (separable MLPs) and one CNN critic step."""
    from torch.profiler import profile as prof

    tables = {}
    cases = {"staircase_separable_k8": (StepBench("separable", (20,), 8, 64), 10),
             "mnist_cnn_sequential": (StepBench("separable", MNIST_SHAPE, 1, 64, "sequential"),
                                      2)}
    for name, (sb, steps) in cases.items():
        sb.step()
        with prof() as p:
            for _ in range(steps):
                sb.step()
        table = p.key_averages().table(sort_by="self_cpu_time_total", row_limit=14)
        (out / f"profile_{name}.txt").write_text(table)
        tables[name] = table
    return tables


def plot(rows: list[dict[str, object]], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.3))
    for kind, c in (("separable", "C0"), ("joint", "C1")):
        pts = [(r["n"], r["ms_per_critic_step"]) for r in rows
               if r["sweep"] == "batch" and r["critic"] == kind]
        a.loglog([p[0] for p in pts], [p[1] for p in pts], "o-", color=c, label=kind, base=2)
    a.set_xlabel("batch size n")
    a.set_ylabel("ms per critic step")
    a.set_title("cost vs batch size (joint ~ n^2, separable ~ 2n)", fontsize=9)
    a.legend(fontsize=8)
    for batched, c in ((True, "C2"), (False, "C3")):
        pts = [(r["k"], r["ms_per_critic_step"]) for r in rows
               if r["sweep"] == "critics" and r.get("batched") == batched]
        b.semilogx([p[0] for p in pts], [p[1] for p in pts], "o-", color=c, base=2,
                   label="batched (native stack)" if batched else "sequential loop")
    b.set_xlabel("critics K (separable, n=64)")
    b.set_ylabel("ms per critic step")
    b.set_ylim(bottom=0)
    b.set_title("cost vs number of critics", fontsize=9)
    b.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(a: Namespace) -> None:
    parts = [p.strip() for p in a.parts.split(",") if p.strip()] or \
        ["peak", "gaussian", "mnist", "blocks", "growth", "memory", "profile"]
    out = a.out if not a.quick else a.out / "quick"
    out.mkdir(parents=True, exist_ok=True)
    path = out / "speed.json"
    report: dict[str, object] = json.loads(path.read_text()) if path.is_file() else {}
    threads = report["threads"] = torch.get_num_threads()
    peak_key = f"peak_gflops_threads{threads}"
    if "peak" in parts or peak_key not in report:
        report[peak_key] = round(matmul_peak(), 1)
        print(f"matmul peak: {report[peak_key]} GFLOP/s", flush=True)
    peak = float(report[peak_key])  # type: ignore[arg-type]
    reps = 2 if a.quick else 3
    if "gaussian" in parts:
        rows = gaussian_rates("separable", 40 if a.quick else 150, reps)
        rows += gaussian_rates("joint", 2 if a.quick else 4, reps)
        report[f"gaussian_threads{threads}"] = rows
        modes = ("native", "vmap", "sequential")
        report[f"gaussian_flops_threads{threads}"] = [
            flop_rate("joint", (20,), 2, 64, 2, reps, peak, modes),
            flop_rate("separable", (20,), 8, 64, 10, reps, peak, modes),
            flop_rate("separable", (20,), 16, 64, 10, reps, peak, modes)]
        for r in rows + report[f"gaussian_flops_threads{threads}"]:
            print(r, flush=True)
    if "mnist" in parts:
        report[f"mnist_threads{threads}"] = [
            flop_rate("separable", MNIST_SHAPE, 2, 64, 1, reps, peak,
                      ("auto", "vmap", "sequential"))]
        for r in report[f"mnist_threads{threads}"]:
            print(r, flush=True)
    if "blocks" in parts:
        report[f"blocks_threads{threads}"] = blocks(4 if a.quick else 12, reps)
        for r in report[f"blocks_threads{threads}"]:
            print(r, flush=True)
    if "growth" in parts:
        report["growth"] = growth(a.quick)
        plot(report["growth"], out / "speed_growth.png")
        for r in report["growth"]:
            print(r, flush=True)
    if "memory" in parts:
        report["memory"] = memory(a.quick)
        for r in report["memory"]:
            print(r, flush=True)
    if "profile" in parts:
        for name, table in profile(out).items():
            print(f"--- profile {name}\n{table}", flush=True)
    path.write_text(json.dumps(report, indent=1))
    print(f"written {path}")
