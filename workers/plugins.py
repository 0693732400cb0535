"""The worker side of plug-in estimators: their bounds, guarded.

:func:`prepare` (called by the engine before it trains) loads the installed plug-ins'
entries (``micheck.estimators.plugins.load``), imports each one's bound factory
(``EstimatorEntry.bound``) and registers it with ``register_bound`` wrapped in checks, so
foreign code can fail an evaluation but never the worker:

- the factory or a call of its objective or value raises -> :class:`PluginFailed`;
- a call returns something other than a tensor of shape ``scores.shape[:-2]`` (one value
  per stacked critic) -> :class:`PluginFailed`;
- a call returns a non-finite value for a critic whose scores were all finite -> the
  bound's fault, :class:`PluginFailed` (non-finite scores are the critic diverging,
  which the trainer records per seed as for any estimator).

The job maps PluginFailed to a failed evaluation (code ``plugin_failed``) with the
reason, without retrying: the same code fails the same way again.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable

import torch
from micheck.workers.bounds import BaselineFn, Bound, BoundFactory, register_bound
from torch import Tensor

from micheck import estimators as registry
from micheck.errors import PluginFailed, SpecError
from micheck.estimators import EstimatorEntry, Params
from micheck.estimators import plugins as loader

_LOCK = threading.Lock()
_FAILED: dict[str, str] = {}  # plug-in name -> why its bound is unavailable
_READY: set[str] = set()
_POINT: dict[str, Callable[..., object]] = {}  # point plug-ins: name -> factory(params)


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or "(no message)"
    return f"{type(exc).__name__}: {text}"[:500]


def _who(entry: EstimatorEntry) -> str:
    return f"plug-in estimator {entry.name!r} ({entry.provider})"


def _checked(entry: EstimatorEntry, what: str, fn: Callable[[Tensor], Tensor]
             ) -> Callable[[Tensor], Tensor]:
    def call(scores: Tensor) -> Tensor:
        try:
            out = fn(scores)
        except Exception as exc:  # noqa: BLE001  foreign code: its failure is the reason
            raise PluginFailed(f"{_who(entry)}: its {what} raised {_one_line(exc)}") from exc
        want = tuple(scores.shape[:-2])
        if not isinstance(out, Tensor):
            raise PluginFailed(f"{_who(entry)}: its {what} returned a "
                               f"{type(out).__name__}, not a tensor of shape {want}")
        if tuple(out.shape) != want:
            raise PluginFailed(f"{_who(entry)}: its {what} returned shape "
                               f"{tuple(out.shape)}; expected {want} (one value per "
                               "stacked critic, scores[..., i, j] = T(x_i, y_j))")
        finite_in = torch.isfinite(scores.detach()).flatten(-2).all(-1)
        if bool((finite_in & ~torch.isfinite(out.detach())).any()):
            raise PluginFailed(f"{_who(entry)}: its {what} returned NaN or inf from "
                               "finite scores")
        return out
    return call


def guarded(entry: EstimatorEntry, factory: BoundFactory) -> BoundFactory:
    """``factory`` with every failure mode turned into PluginFailed (see the module)."""
    def make(params: Params, lb: BaselineFn | None) -> Bound:
        try:
            bound = factory(params, lb)
        except Exception as exc:  # noqa: BLE001
            raise PluginFailed(f"{_who(entry)}: building its bound raised "
                               f"{_one_line(exc)}") from exc
        if not isinstance(bound, Bound):
            raise PluginFailed(f"{_who(entry)}: its factory returned a "
                               f"{type(bound).__name__}, not a micheck.workers.bounds.Bound")
        bound.objective = _checked(entry, "objective", bound.objective)
        bound.value = _checked(entry, "value", bound.value)
        return bound
    return make


def _import(path: str) -> BoundFactory:
    module, _, attr = path.partition(":")
    obj: object = importlib.import_module(module)
    for part in attr.split("."):
        obj = getattr(obj, part)
    if not callable(obj):
        raise TypeError(f"{path} is not callable")
    return obj  # type: ignore[return-value]


def load_bounds() -> dict[str, str]:
    """Register the bound of every loaded plug-in (once each); returns the plug-ins whose
    bound is unavailable, with the reason."""
    loaded = loader.load()
    with _LOCK:
        for b in loaded.broken:
            _FAILED.setdefault(b.name, f"plug-in {b.name!r} ({b.distribution}=={b.version}) "
                                       f"did not load: {b.reason}")
        for entry in loaded.entries:
            if entry.name in _READY or entry.name in _FAILED or entry.bound is None:
                continue
            try:
                factory = _import(entry.bound)
                if entry.family == "point":  # micheck.workers.point calls it
                    _POINT[entry.name] = factory
                else:
                    register_bound(entry.name, replace=True)(guarded(entry, factory))
                _READY.add(entry.name)
            except Exception as exc:  # noqa: BLE001
                _FAILED[entry.name] = (f"{_who(entry)}: importing its bound {entry.bound} "
                                       f"raised {_one_line(exc)}")
        return dict(_FAILED)


def point_factory(name: str) -> Callable[..., object] | None:
    """The factory of a point plug-in (micheck.workers.point), once load_bounds ran."""
    with _LOCK:
        return _POINT.get(name)


def prepare(name: str) -> EstimatorEntry:
    """The entry of the estimator a request names, its bound ready if it is a plug-in.

    SpecError: nothing here registers that name; PluginFailed: its plug-in is broken."""
    failed = load_bounds()
    try:
        entry = registry.get(name)
    except KeyError:
        if name in failed:
            raise PluginFailed(failed[name]) from None
        raise SpecError(f"unknown estimator {name!r}: not built in and no plug-in installed "
                        f"on this worker registers it (known: "
                        f"{', '.join(sorted(registry.names()))})") from None
    if entry.origin is not None and entry.name in failed:
        raise PluginFailed(failed[entry.name])
    return entry
