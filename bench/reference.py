"""The paper's published numbers: Tables 2 and 3 of paper 002 (Song & Ermon, "Understanding
the Limitations of Variational Mutual Information Estimators", ICLR 2020), transcribed here
so that the benchmarks and golden tests read nothing outside the repository.

- Table 2 (p. 16, App. B.1): bias, variance and MSE of each estimator under the **joint**
  critic on the 20-d Gaussian and Cubic tasks (batch 64, Adam 5e-4, 20k steps; true MI 2, 4,
  6, 8, 10 nats for 4k steps each). The bias entries are all non-negative: read them as the
  absolute bias |E[estimate] - I|. The paper does not say which part of each 4k-step block
  the statistics cover (docs/benchmarks.md says which part ours use).
- Table 3 (p. 18, App. B.2): MNIST self-consistency ratios under the alternative image
  transforms (random scaling 1-1.2x, rotation within +-20 degrees, translation up to 3 px).
  Ideal: at most 1 for data processing, 2 for additivity. The columns follow the header's
  order (CPC, MINE, GM (VAE), SMILE tau=5, SMILE tau=inf); CPC's 1.00 in every additivity
  row fits its log(batch) ceiling.

- MIGE's released toy results (paper 004, Wen et al., "Mutual Information Gradient
  Estimation for Representation Learning", ICLR 2020, the Fig. 1 setting: x, y in R^d with
  corr(x_i, y_i) = rho): dI/drho at rho = 0.8 for d = 8, 16, 32, as quoted in issue 21
  (`MIGE_RELEASED`). The analytic row is d rho / (1 - rho^2).

Estimator labels are those of bench/staircase.py and bench/mnist.py.
"""

from __future__ import annotations

MI_LEVELS = (2, 4, 6, 8, 10)

# (metric, estimator label, task) -> values at true MI 2, 4, 6, 8, 10. Paper 002, Table 2, p. 16.
_TABLE2: dict[tuple[str, str, str], tuple[float, ...]] = {
    # bias
    ("bias", "CPC", "gaussian"):              (0.25, 0.99, 2.31, 4.00, 5.89),
    ("bias", "NWJ", "gaussian"):              (0.12, 0.30, 0.75, 2.30, 2.97),
    ("bias", "SMILE(tau=1.0)", "gaussian"):   (0.15, 0.30, 0.32, 0.18, 0.03),
    ("bias", "SMILE(tau=5.0)", "gaussian"):   (0.13, 0.11, 0.19, 0.54, 0.86),
    ("bias", "SMILE(tau=10.0)", "gaussian"):  (0.14, 0.21, 0.22, 0.11, 0.19),
    ("bias", "SMILE(tau=inf)", "gaussian"):   (0.15, 0.21, 0.22, 0.12, 0.22),
    ("bias", "GM(flow)", "gaussian"):         (0.11, 0.14, 0.15, 0.14, 0.17),
    ("bias", "CPC", "cubic"):                 (0.72, 1.48, 2.63, 4.20, 5.99),
    ("bias", "NWJ", "cubic"):                 (0.66, 1.21, 2.04, 3.21, 4.70),
    ("bias", "SMILE(tau=1.0)", "cubic"):      (0.47, 0.77, 1.16, 1.64, 2.16),
    ("bias", "SMILE(tau=5.0)", "cubic"):      (0.71, 1.22, 1.55, 1.84, 2.16),
    ("bias", "SMILE(tau=10.0)", "cubic"):     (0.70, 1.28, 1.83, 2.44, 3.02),
    ("bias", "SMILE(tau=inf)", "cubic"):      (0.71, 1.29, 1.82, 2.35, 2.81),
    ("bias", "GM(flow)", "cubic"):            (1.02, 0.47, 1.85, 2.93, 3.55),
    # var
    ("var", "CPC", "gaussian"):               (0.04, 0.04, 0.02, 0.01, 0.00),
    ("var", "NWJ", "gaussian"):               (0.06, 0.22, 1.36, 16.50, 99.0),
    ("var", "SMILE(tau=1.0)", "gaussian"):    (0.05, 0.12, 0.20, 0.28, 0.34),
    ("var", "SMILE(tau=5.0)", "gaussian"):    (0.05, 0.11, 0.19, 0.31, 0.51),
    ("var", "SMILE(tau=10.0)", "gaussian"):   (0.05, 0.13, 0.31, 0.69, 1.35),
    ("var", "SMILE(tau=inf)", "gaussian"):    (0.05, 0.14, 0.36, 0.75, 1.54),
    ("var", "GM(flow)", "gaussian"):          (0.05, 0.10, 0.13, 0.16, 0.19),
    ("var", "CPC", "cubic"):                  (0.03, 0.04, 0.03, 0.01, 0.01),
    ("var", "NWJ", "cubic"):                  (0.04, 0.10, 0.41, 0.93, 3.23),
    ("var", "SMILE(tau=1.0)", "cubic"):       (0.04, 0.10, 0.14, 0.20, 0.30),
    ("var", "SMILE(tau=5.0)", "cubic"):       (0.04, 0.07, 0.12, 0.18, 0.26),
    ("var", "SMILE(tau=10.0)", "cubic"):      (0.03, 0.10, 0.21, 0.46, 0.79),
    ("var", "SMILE(tau=inf)", "cubic"):       (0.03, 0.12, 0.24, 0.65, 0.94),
    ("var", "GM(flow)", "cubic"):             (0.56, 0.72, 0.92, 1.02, 1.02),
    # mse
    ("mse", "CPC", "gaussian"):               (0.10, 1.02, 5.33, 16.00, 34.66),
    ("mse", "NWJ", "gaussian"):               (0.07, 0.32, 2.19, 33.37, 28.43),
    ("mse", "SMILE(tau=1.0)", "gaussian"):    (0.08, 0.21, 0.30, 0.32, 0.31),
    ("mse", "SMILE(tau=5.0)", "gaussian"):    (0.07, 0.13, 0.22, 0.57, 1.26),
    ("mse", "SMILE(tau=10.0)", "gaussian"):   (0.07, 0.18, 0.36, 0.67, 1.33),
    ("mse", "SMILE(tau=inf)", "gaussian"):    (0.08, 0.19, 0.40, 0.76, 1.62),
    ("mse", "GM(flow)", "gaussian"):          (0.07, 0.11, 0.14, 0.17, 0.22),
    ("mse", "CPC", "cubic"):                  (0.55, 2.22, 6.95, 17.62, 35.91),
    ("mse", "NWJ", "cubic"):                  (0.47, 1.55, 4.56, 11.13, 27.00),
    ("mse", "SMILE(tau=1.0)", "cubic"):       (0.26, 0.69, 1.49, 2.90, 4.98),
    ("mse", "SMILE(tau=5.0)", "cubic"):       (0.54, 1.56, 2.53, 3.58, 4.92),
    ("mse", "SMILE(tau=10.0)", "cubic"):      (0.52, 1.75, 3.54, 6.41, 9.91),
    ("mse", "SMILE(tau=inf)", "cubic"):       (0.54, 1.75, 3.55, 6.09, 8.81),
    ("mse", "GM(flow)", "cubic"):             (1.65, 0.91, 4.36, 9.70, 13.67),
}

# Columns of Table 3 (paper 002, p. 18), in the header's order.
TABLE3_ESTIMATORS = ("CPC", "MINE", "GM(VAE)", "SMILE(tau=5.0)", "SMILE(tau=inf)")

# (test, transform) -> ratios in TABLE3_ESTIMATORS' order. Paper 002, Table 3, p. 18.
_TABLE3: dict[tuple[str, str], tuple[float, ...]] = {
    ("data_processing", "scaling"):     (1.00, 1.03, 1.12, 1.19, 1.04),
    ("data_processing", "rotation"):    (1.00, 1.30, 1.13, 1.03, 1.27),
    ("data_processing", "translation"): (1.00, 1.28, 1.01, 1.07, 1.08),
    ("additivity", "scaling"):          (1.00, 1.55, 1.89, 1.04, 1.18),
    ("additivity", "rotation"):         (1.00, 2.09, 1.58, 1.50, 1.78),
    ("additivity", "translation"):      (1.00, 1.41, 1.28, 1.32, 1.33),
}

# The ideal value of each Table 3 test (data processing: at most 1).
TABLE3_IDEAL = {"data_processing": 1.0, "additivity": 2.0}


# dI/drho at rho = 0.8 from MIGE's released toy results: estimator -> {d: value}
MIGE_RELEASED_RHO = 0.8
MIGE_RELEASED: dict[str, dict[int, float]] = {
    "analytic": {8: 17.78, 16: 35.56, 32: 71.11},
    "MIGE": {8: 17.37, 16: 30.59, 32: 47.79},
    "MINE": {8: 15.65, 16: 16.05, 32: 11.53},
    "MINE-f": {8: 8.08, 16: 9.94, 32: 8.68},
}


def table2() -> dict[tuple[str, str, str], list[float]]:
    """(metric, estimator label, task) -> values at MI 2, 4, 6, 8, 10 (joint critic)."""
    return {key: list(values) for key, values in _TABLE2.items()}


def table3() -> dict[tuple[str, str], dict[str, float]]:
    """(test, transform) -> {estimator label: ratio} for the MNIST Table 3 transforms."""
    return {key: dict(zip(TABLE3_ESTIMATORS, values, strict=True))
            for key, values in _TABLE3.items()}
