"""The compute budget of a request: one torch-free estimate, made before it is accepted.

``estimate(request)`` counts what an evaluation trains and evaluates and multiplies it
out: critic trainings x steps x batch x (input size x model size), per test, point and
seed, as multiply-accumulates (MACs) of the forward passes, times 3 for a training step
(forward plus backward). The count is deliberately pessimistic: every point trains its
own numerator and denominator (the engine shares denominators, so it trains fewer), every
critic trains to the step cap (``until_converged`` may stop earlier) and every seed the
adaptive rule may add (``seed_cap``) is counted.
The service bounds it per request and per token (micheck.settings), turns it into time on
the device that will run it (`run_seconds`, with the speed each worker measured:
micheck.workers.calibrate) to bound that too and derive the job timeout from it
(micheck.queue.job_timeout); the 202 response and the results report it.

Model sizes follow the architectures of paper 002: App. B.1 (MLP, 2 x 256, ReLU;
separable embeddings of 32), App. B.2 (conv 64 k5 s2, conv 128 k5 s2, fc 1024, scaled
by the critic's width), and for GM (Eq. 9) three likelihood models per estimate: a
RealNVP of 5 coupling layers with 2 x 100 MLPs for vectors, a VAE (the CNN encoder, a
2 x 400 MLP decoder) for images whose held-out bound costs ``iw_samples`` decoder passes.
A critic with ``block = b`` scores n*b pairs per batch instead of n^2 (a joint critic
runs its network after conv1 once per scored pair). Image pairs with ``copies = m`` stack
m images over channels, so their critics see m times the channels.

Estimators that train nothing are costed by what they do on the held-out sample: MIGE
(family gradient) by its kernel matrices, n^2 d per score estimate, two per point (H(Y)
and H(X, Y); paper 004 Eq. 10-11), and a point estimator (family point, an external
program) by the samples it is handed; a point estimator's own work is unknown to micheck
and bounded by the job timeout alone.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from micheck import testkinds
from micheck.contract import Cost, CriticSpec, EvaluationRequest

VERSION = "2"  # 2: copies of image pairs; gradient and point families train nothing
IMAGE_TEST_SPLIT = 10_000  # MNIST, Fashion-MNIST and CIFAR-10 test splits: the default held-out
VECTOR_EVAL_SAMPLES = 16_384  # as micheck.workers.trainer.VECTOR_EVAL_SAMPLES
TRAIN_FACTOR = 3  # a training step: forward + backward (~2x forward)


def _conv_out(size: int) -> int:
    for _ in range(2):
        size = (size + 2 * 2 - 5) // 2 + 1
    return size


def _cnn(channels: int, h: int, w: int, out: int, scale: float) -> tuple[float, float]:
    """(conv1 MACs, MACs after conv1) of App. B.2's encoder for one sample."""
    c1, c2, fc = (max(1, round(k * scale)) for k in (64, 128, 1024))
    h1, w1 = (h + 4 - 5) // 2 + 1, (w + 4 - 5) // 2 + 1
    h2, w2 = _conv_out(h), _conv_out(w)
    first = h1 * w1 * c1 * channels * 25
    rest = h2 * w2 * c2 * c1 * 25 + c2 * h2 * w2 * fc + fc * out
    return float(first), float(rest)


def _mlp(inp: int, hidden: int, out: int) -> float:
    return float(inp * hidden + hidden * hidden + hidden * out)


def critic_forward_macs(critic: CriticSpec, shape: tuple[int, ...], mult: int, n: int
                        ) -> float:
    """MACs of one forward pass of a critic on a batch of n pairs: n^2 scores, or n*b
    with ``critic.block = b`` (the pairs within each block of b)."""
    pairs = n * (critic.block or n)
    if len(shape) == 3:
        c, h, w = shape
        c *= mult
        if critic.kind == "joint":
            first, rest = _cnn(2 * c, h, w, 1, critic.width)
            return n * first + pairs * rest  # conv1 split over x and y, the rest per pair
        first, rest = _cnn(c, h, w, critic.embed_dim, critic.width)
        return 2 * n * (first + rest) + pairs * critic.embed_dim
    d = shape[0] * mult
    if critic.kind == "joint":
        return 2 * n * d * critic.hidden + pairs * (critic.hidden ** 2 + critic.hidden)
    return 2 * n * _mlp(d, critic.hidden, critic.embed_dim) + pairs * critic.embed_dim


def gm_forward_macs(request: EvaluationRequest, shape: tuple[int, ...], mult: int, n: int,
                    samples: int) -> float:
    """MACs of one forward pass of GM's three models (p(x, y), p(x), p(y)) on n pairs."""
    params = request.estimator.params
    total = 0.0
    for k in (2, 1, 1):  # the joint model sees both variables
        if len(shape) == 3:
            c, h, w = shape
            c *= mult * k
            latent = int(params.get("latent_dim", 10))
            first, rest = _cnn(c, h, w, 2 * latent, request.estimator.critic.width)
            total += n * (first + rest + samples * _mlp(latent, 400, c * h * w))
        else:
            d = shape[0] * mult * k
            total += n * 5 * _mlp(d, 100, 2 * d)
    return total


def points(request: EvaluationRequest, test_index: int) -> int:
    """How many values a test decides (its t grid, its rho grid, or 1): its kind's plan."""
    test = request.tests[test_index]
    return len(testkinds.get(test.kind).points(test, request))


def estimate(request: EvaluationRequest) -> Cost:
    """The pessimistic compute of an evaluation, in GMAC (10^9 multiply-accumulates)."""
    est, ds = request.estimator, request.dataset
    train = est.train
    shape = ds.entry.shape if ds.is_image else (ds.dim,)
    if ds.is_image and ds.pairs is not None:  # m pairs stacked over channels
        shape = (shape[0] * ds.copies, *shape[1:])
    n = train.batch_size
    steps = train.step_cap  # until_converged may train up to max_steps
    held_out = train.eval_samples or (IMAGE_TEST_SPLIT if ds.is_image else VECTOR_EVAL_SAMPLES)
    eval_batches = max(1, held_out // n)
    seeds = request.seed_cap  # adaptive seeds may add rounds up to max_seeds
    family = est.entry.family if est.known else "discriminative"
    gm = family == "generative"
    iw = int(est.params.get("iw_samples", 1)) if gm else 1
    trainings, train_macs, eval_macs = 0, 0.0, 0.0
    if family in ("gradient", "point"):  # no training: the held-out sample's work only
        size = math.prod(shape)
        per_point = 2 * held_out ** 2 * 2 * size if family == "gradient" else held_out * 2 * size
        for i in range(len(request.tests)):
            eval_macs += points(request, i) * seeds * per_point
        return Cost(trainings=0, critic_steps=0, train_gmac=0.0,
                    eval_gmac=_round(eval_macs / 1e9), gmac=_round(eval_macs / 1e9),
                    version=VERSION)
    for i, test in enumerate(request.tests):
        # per point, the input multiplier of each critic it trains (numerator, denominator):
        # data_processing and additivity stack two copies of X and of Y
        for mult in testkinds.get(test.kind).critics:
            count = points(request, i) * seeds
            if gm:
                fwd = gm_forward_macs(request, shape, mult, n, 1)
                fwd_eval = gm_forward_macs(request, shape, mult, n, iw)
            else:
                fwd = fwd_eval = critic_forward_macs(est.critic, shape, mult, n)
            trainings += count * (3 if gm else 1)
            train_macs += count * TRAIN_FACTOR * steps * fwd
            eval_macs += count * eval_batches * fwd_eval
    critic_steps = trainings * steps
    return Cost(trainings=trainings, critic_steps=critic_steps,
                train_gmac=_round(train_macs / 1e9), eval_gmac=_round(eval_macs / 1e9),
                gmac=_round((train_macs + eval_macs) / 1e9), version=VERSION)


def _round(x: float) -> float:
    return float(f"{x:.4g}") if x and math.isfinite(x) else x


@dataclass(frozen=True)
class Speed:
    """How fast a device runs the estimate's work: GMAC per second and the fixed cost of a
    training step, measured by a worker (micheck.workers.calibrate) or assumed."""

    device: str  # "cpu", "cuda:0", ...
    gmac_per_s: float
    step_overhead_s: float
    source: str  # who measured it ("worker NAME"), or "assumed (MICHECK_JOB_GMAC_PER_S_CPU)"

    @property
    def kind(self) -> str:
        return "cpu" if self.device == "cpu" else "gpu"


def run_seconds(cost: Cost, speed: Speed) -> float:
    """The estimated run time of an evaluation on a device of this speed: its critic steps
    at the fixed cost of a step, plus its GMAC at the device's throughput."""
    return cost.critic_steps * speed.step_overhead_s + cost.gmac / speed.gmac_per_s
