"""The point family: estimators that read the MI from samples directly, no critic trained.

Two ways in, both from the benchmark of Czyz et al. (NeurIPS 2023, package
`benchmark-mi`), so that a team that benchmarks with it moves over without rewriting:

- **bmi's point-estimator interface.** A plug-in (micheck.estimators.plugins) of family
  ``point`` whose ``bound`` is a factory of the entry's params returning an object with
  ``estimate(x, y) -> float``: ``x``, ``y`` numpy arrays of shape (n, dim_x) and
  (n, dim_y), the MI in nats. A bmi estimator instance is such an object.
- **bmi's external-program convention.** The built-in ``external`` estimator writes the
  samples as CSV (header ``X0..X{dx-1},Y0..Y{dy-1}``, one pair per row, no index) and
  runs a program the worker's operator configured by name
  (``Settings.external_estimators``: argv with ``{path}``, ``{dim_x}``, ``{dim_y}``,
  ``{seed}`` filled in); the program prints one number. A request names the program,
  never a path or a command.

Each task (one measurement, one seed) draws ``samples`` held-out pairs from its test
sampler with its own seed (images flattened to vectors) and records the estimate as its
held-out MI; the scoring treats it like a trained critic's. Foreign code fails the
evaluation (PluginFailed, with the reason), never the worker: an exception, a
non-number, a timeout or a program's non-zero exit.
"""

from __future__ import annotations

import csv
import math
import subprocess
import tempfile
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from micheck.workers import plugins
from micheck.workers.trainer import CriticTask, TaskOutcome, Ticker, task_seed

from micheck.contract import EstimatorSpec
from micheck.errors import PluginFailed, SpecError
from micheck.settings import Settings

DEFAULT_SAMPLES = 4096  # pairs per estimate when the params name none


class PointEstimator(Protocol):
    def estimate(self, x: Any, y: Any) -> float: ...


def write_samples(path: Path, x: np.ndarray, y: np.ndarray) -> None:
    """The pairs as bmi's external programs read them: ``X0..,Y0..`` columns, no index."""
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow([f"X{i}" for i in range(x.shape[1])] + [f"Y{i}" for i in range(y.shape[1])])
        for row in np.hstack([x, y]):
            w.writerow([repr(float(v)) for v in row])


class ExternalProgram:
    """One configured program, run once per estimate on a temporary CSV file."""

    def __init__(self, name: str, argv: list[str], timeout_s: float, seed: int = 0):
        self.name, self.argv, self.timeout_s, self.seed = name, argv, timeout_s, seed

    def estimate(self, x: np.ndarray, y: np.ndarray) -> float:
        with tempfile.TemporaryDirectory(prefix="micheck-external-") as tmp:
            path = Path(tmp) / "samples.csv"
            write_samples(path, x, y)
            fill = {"path": str(path), "dim_x": str(x.shape[1]), "dim_y": str(y.shape[1]),
                    "seed": str(self.seed)}
            args = [a.format(**fill) for a in self.argv]
            try:
                done = subprocess.run(args, capture_output=True, text=True, cwd=tmp,
                                      timeout=self.timeout_s, check=False)
            except (OSError, subprocess.TimeoutExpired) as exc:
                raise PluginFailed(f"external program {self.name!r}: {exc}") from None
        if done.returncode != 0:
            tail = " ".join((done.stderr or done.stdout).split())[-300:]
            raise PluginFailed(f"external program {self.name!r} exited {done.returncode}: "
                               f"{tail}")
        try:
            return float(done.stdout.strip())
        except ValueError:
            raise PluginFailed(f"external program {self.name!r} printed "
                               f"{done.stdout.strip()[:80]!r}, not one number") from None


def resolve(est: EstimatorSpec, seed: int, settings: Settings | None = None
            ) -> PointEstimator:
    """The object whose estimate(x, y) a task calls."""
    if est.name == "external":
        settings = settings or Settings()
        program = str(est.params["program"])
        argv = settings.external_estimators.get(program)
        if not argv:
            raise SpecError(f"estimator.params.program: this worker has no external program "
                            f"{program!r} (configured: "
                            f"{', '.join(sorted(settings.external_estimators)) or 'none'})")
        return ExternalProgram(program, argv, settings.external_timeout_s, seed)
    factory = plugins.point_factory(est.name)
    if factory is None:
        raise SpecError(f"estimator {est.name!r} is not a point estimator on this worker")
    try:
        obj = factory(est.params)
    except Exception as exc:  # noqa: BLE001 - foreign code
        raise PluginFailed(f"point estimator {est.name!r}: its factory raised "
                           f"{type(exc).__name__}: {exc}") from None
    if not callable(getattr(obj, "estimate", None)):
        raise PluginFailed(f"point estimator {est.name!r}: its factory returned a "
                           f"{type(obj).__name__} without estimate(x, y)")
    return obj  # type: ignore[return-value]


def _as_matrix(t: torch.Tensor) -> np.ndarray:
    return t.detach().to("cpu", torch.float64).reshape(t.shape[0], -1).numpy()


def fit_points(tasks: list[CriticTask], est: EstimatorSpec, device: torch.device, *,
               batched: bool = True, progress: Any = None, should_cancel: Any = None,
               record_every: int = 0, progress_offset: int = 0,
               progress_total: int | None = None, min_steps: int = 0
               ) -> dict[str, TaskOutcome]:
    """The engine's fit for the point family (workers.engine.FAMILIES): one estimate per
    task from `samples` held-out pairs; one progress unit each; nothing is trained, so
    `min_steps` and convergence do not apply (converged stays unknown, never False)."""
    n = int(est.params.get("samples", DEFAULT_SAMPLES))
    ticker = Ticker(progress_total or len(tasks), progress, should_cancel, progress_offset)
    out: dict[str, TaskOutcome] = {}
    for i, task in enumerate(tasks):
        g = torch.Generator().manual_seed(task_seed(task.seed, task.key))
        x, y = task.test(g, n)
        estimator = resolve(est, task.seed)
        try:
            value = estimator.estimate(_as_matrix(x), _as_matrix(y))
        except PluginFailed:
            raise
        except Exception as exc:  # noqa: BLE001 - foreign code
            raise PluginFailed(f"point estimator {est.name!r} raised "
                               f"{type(exc).__name__}: {exc}") from None
        if isinstance(value, bool) or not isinstance(value, (int, float, np.floating)):
            raise PluginFailed(f"point estimator {est.name!r} returned a "
                               f"{type(value).__name__}, not a number")
        value = float(value)
        finite = math.isfinite(value)
        out[task.key] = TaskOutcome(task.key, value if finite else None,
                                    value if finite else None, not finite, 1)
        ticker.tick(1, final=i == len(tasks) - 1)
    return out
