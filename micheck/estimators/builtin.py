"""The estimators of paper 002 (Song & Ermon, ICLR 2020) and of the bounds it compares.

One entry per estimator, each with its typed params. Their bounds are registered by
name in ``micheck.workers.bounds`` (and ``micheck.workers.generative`` for GM).
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator

from micheck.estimators import EstimatorEntry, Params, register

_INF_SPELLINGS = ("inf", "+inf", "infinity", "+infinity")


class SmileParams(Params):
    tau: Annotated[float, Field(ge=0, le=1000)] | Literal["inf"] = Field(
        5.0, description="clip of the log density ratio in the partition term (Eq. 17); "
                         "the string 'inf' disables it (SMILE becomes DV)")
    objective: Literal["js", "direct"] = Field(
        "js", description="js: train the critic as a JS classifier (Sec. 5); direct: "
                          "maximise Eq. 17 itself")

    @field_validator("tau", mode="before")
    @classmethod
    def _tau(cls, v: Any) -> Any:
        if isinstance(v, str):
            if v.strip().lower() in _INF_SPELLINGS:
                return "inf"
            raise ValueError(f"tau must be a number >= 0 or 'inf', got {v!r}")
        if isinstance(v, float) and not math.isfinite(v):
            raise ValueError("tau must be a finite number >= 0 or the string 'inf'")
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            if not 0 <= v <= 1000:
                raise ValueError(f"tau must lie in [0, 1000] or be 'inf', got {v}")
            return float(v)
        raise ValueError(f"tau must be a number >= 0 or 'inf', got {v!r}")


class MigeParams(Params):
    samples: int = Field(1000, ge=4, le=5000, description=(
        "M, samples per score estimate (SSGE eigendecomposes an M x M matrix)"))
    eigen_ratio: float = Field(0.99, gt=0, le=1, description=(
        "keep the J largest eigenvalues holding this share of the trace"))
    n_eigen: int = Field(0, ge=0, le=5000, description="J fixed (0: use eigen_ratio)")
    bandwidth_scale: float = Field(1.0, gt=0, le=100, description=(
        "RBF sigma = scale x median pairwise distance"))
    projection: int = Field(0, ge=0, le=4096, description=(
        "Scalable SSGE: random projection to k dimensions (0: none)"))


class ExternalParams(Params):
    program: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$", description=(
        "the name of a program the worker's operator configured "
        "(MICHECK_EXTERNAL_ESTIMATORS); a caller names it, never a path"))
    samples: int = Field(4096, ge=16, le=200_000, description=(
        "held-out pairs written for each estimate"))


class MineParams(Params):
    ema_rate: float = Field(0.01, gt=0, le=1, description=(
        "rate of the moving average of E_Q[e^T] that corrects MINE's gradient"))


class AlphaParams(Params):
    alpha: float = Field(0.5, ge=0, le=1, description=(
        "interpolation between TUBA (0) and InfoNCE (1)"))


class GMParams(Params):
    iw_samples: int = Field(16, ge=1, le=1024, description=(
        "importance samples of the VAE's held-out likelihood bound (Burda et al. 2016)"))
    latent_dim: int = Field(10, ge=1, le=1024, description="the VAE's latent dimension")


for _entry in [
    EstimatorEntry("infonce", "discriminative", "1",
                   "Song & Ermon 2020 Eq. 5 (CPC / InfoNCE); value <= log(batch)",
                   aliases=("cpc",)),
    EstimatorEntry("nwj", "discriminative", "1",
                   "Song & Ermon 2020 Lemma 3 / Eq. 4 (NWJ, MINE-f)", aliases=("mine_f",)),
    EstimatorEntry("dv", "discriminative", "1",
                   "Song & Ermon 2020 Lemma 2 / Eq. 3 (Donsker-Varadhan), plain minibatch "
                   "gradient"),
    EstimatorEntry("mine", "discriminative", "1",
                   "Belghazi et al. 2018 Sec. 3.2: DV bound trained with the moving-average "
                   "corrected gradient", params_model=MineParams),
    EstimatorEntry("smile", "discriminative", "1",
                   "Song & Ermon 2020 Eq. 17; critic trained as a JS classifier (Sec. 5) "
                   "unless objective='direct'", params_model=SmileParams),
    EstimatorEntry("js", "discriminative", "1",
                   "JS (Deep InfoMax) critic; MI read with NWJ at T+1 (Poole et al. 2019 Sec. 2.3; "
                   "Song & Ermon 2020 Sec. 5)"),
    EstimatorEntry("tuba", "discriminative", "1",
                   "Poole et al. 2019 Eq. 8 (TUBA) with a learned constant baseline"),
    EstimatorEntry("alpha", "discriminative", "1",
                   "Poole et al. 2019 Eq. 11 (interpolated InfoNCE/TUBA bound)",
                   params_model=AlphaParams),
    # v2: RealNVP coupling masks alternate parity and half splits (v1's parity-only
    # masks never coupled x_i with y_i for even d, so the joint flow read I = 0)
    EstimatorEntry("gm", "generative", "2",
                   "Song & Ermon 2020 Eq. 9: three maximum-likelihood models; VAE with an "
                   "importance-weighted bound for images, RealNVP flow for vectors",
                   params_model=GMParams),
    EstimatorEntry("mige", "gradient", "1",
                   "Wen et al. 2020 (MIGE) Eq. 10-11: grad I = grad H(Y) - grad H(X, Y), "
                   "scores by the Spectral Stein Gradient Estimator (Eq. 4-7, Shi et al. "
                   "2018; RBF kernel, median bandwidth, Nystrom eigenfunctions), Scalable "
                   "SSGE with a random projection (Eq. 8); estimates dI/drho only "
                   "(test mi_gradient)", params_model=MigeParams),
    EstimatorEntry("external", "point", "1",
                   "an estimator run as a program in the external-program convention of "
                   "Czyz et al. 2023 (benchmark-mi): the samples as CSV with columns "
                   "X0..X{dx-1}, Y0..Y{dy-1}, the program prints one number, the MI in "
                   "nats; no critic is trained", params_model=ExternalParams),
]:
    register(_entry)
