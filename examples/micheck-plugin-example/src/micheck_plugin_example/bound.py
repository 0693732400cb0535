"""The bound of dv_clipped on a critic's score matrix (imported by the worker's job
process only: it needs torch)."""

from __future__ import annotations

from micheck.workers.bounds import BaselineFn, Bound, diag_mean, offdiag_logmeanexp
from torch import Tensor

from micheck.estimators import Params
from micheck_plugin_example import DVClippedParams


def dv_clipped(scores: Tensor, clip: float) -> Tensor:
    """E_P[T_c] - log E_Q[e^{T_c}] with T_c = clip(T, -c, c) (Song & Ermon 2020, Eq. 3).

    ``scores[..., i, j] = T(x_i, y_j)``: the diagonal holds joint samples, the
    off-diagonal the product of marginals; one value per leading index."""
    clipped = scores.clamp(-clip, clip)
    return diag_mean(clipped) - offdiag_logmeanexp(clipped)


def make(params: Params, _log_baseline: BaselineFn | None) -> Bound:
    """The factory micheck's worker calls with the validated params."""
    assert isinstance(params, DVClippedParams)
    clip = params.clip
    fn = lambda s: dv_clipped(s, clip)  # noqa: E731
    return Bound("dv_clipped", fn, fn)
