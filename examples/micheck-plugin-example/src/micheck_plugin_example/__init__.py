"""dv_clipped: the Donsker-Varadhan bound of a clipped critic, as a micheck plug-in.

This module is what the ``micheck.estimators`` entry point names. It must stay
torch-free: the worker's parent process loads it to report the estimator to the
service. The bound itself lives in :mod:`micheck_plugin_example.bound`, which only the
job process imports (``EstimatorEntry.bound``).
"""

from __future__ import annotations

from pydantic import Field

from micheck.estimators import EstimatorEntry, Params

__version__ = "0.1.0"


class DVClippedParams(Params):
    clip: float = Field(10.0, gt=0, le=100, description=(
        "c: the critic is clipped to [-c, c] before both terms of the bound"))


ESTIMATOR = EstimatorEntry(
    name="dv_clipped", family="discriminative", version="1",
    definition=("Song & Ermon 2020 Lemma 2 / Eq. 3 (Donsker-Varadhan) applied to the clipped "
                "critic T_c = clip(T, -c, c): E_P[T_c] - log E_Q[e^{T_c}]; a lower bound on "
                "I(X; Y) for every c, since Lemma 2 holds for any bounded T"),
    params_model=DVClippedParams,
    bound="micheck_plugin_example.bound:make",
)
