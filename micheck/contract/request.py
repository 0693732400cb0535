"""Requests: what a user asks for (estimator, data set, tests, seeds), validated at the door.

Torch-free and FastAPI-free. Validation that needs no data lives here (so bad specs fail the
same way in the CLI, the API and the client); checks that need the data set happen in the
engine. `Cost` is the compute a request is estimated to need (micheck.budget).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Callable
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, field_validator, model_validator

from micheck import datasets, estimators, testkinds
from micheck.contract._base import _Model, _Request
from micheck.datasets.builtin import Pairs
from micheck.definitions import PAPER_EPOCHS, definition_versions
from micheck.testkinds.builtin import DEFAULT_RHO
from micheck.verdicts import DEFAULT_TOLERANCE, IDEAL  # noqa: F401

TestKind = str  # a name registered in micheck.testkinds (the schema lists the built-ins)
TEST_KINDS = testkinds.names()
Transform = Literal["rows", "scaling", "rotation", "translation"]
ESTIMATOR_NAMES = sorted([*estimators.names(), *estimators.aliases()])
DATASET_NAMES = datasets.names()
MI_DEFAULT = 2.0
# dataset fields added after keys were stored: left out of the canonical spec while unset
OPTIONAL_DATASET_FIELDS = ("class_noise", "off_diag", "interacting", "strength", "dof")
IMAGE_TESTS = tuple(k.name for k in testkinds.entries() if k.images)

# The bands' half-widths and ideal values per test are entries of micheck.testkinds;
# DEFAULT_TOLERANCE and IDEAL (micheck.verdicts) are re-exported here for old imports, as is
# mi_gradient's DEFAULT_RHO.

# estimators that can only run the mi_gradient test (they estimate gradients, not MI)
GRADIENT_ONLY = tuple(e.name for e in estimators.entries() if e.family == "gradient")
VECTOR_SETS = tuple(d.name for d in datasets.entries() if not d.is_image)

DEFAULT_MAX_SEEDS = 5  # adaptive seeds: the default cap (a CI gate on a shared box)


MAX_SEED = 2**31 - 1  # fits every database's integer column and every RNG seed
Seed = Annotated[int, Field(ge=0, le=MAX_SEED)]
Row = Annotated[int, Field(ge=0, le=4096)]


class CriticSpec(_Request):
    """The network T(x, y). App. B.2 (CNN) for images, App. B.1 (MLP) for vectors."""

    kind: Literal["joint", "separable"] = "separable"
    arch: Literal["cnn", "mlp"] | None = Field(
        None, description="cnn for images, mlp for vectors when omitted")
    hidden: int = Field(256, ge=1, le=4096, description="MLP width (App. B.1: 256)")
    embed_dim: int = Field(32, ge=1, le=1024, description="separable critic's embedding size")
    width: float = Field(1.0, gt=0, le=4, description=(
        "CNN width multiplier: conv channels 64w, 128w and fc 1024w (App. B.2 is w=1; "
        "w=0.25 is ~15x cheaper, for CPU demos)"))
    block: int | None = Field(None, ge=2, le=4096, description=(
        "score the pairs within blocks of this many samples only: the batch of n splits "
        "into n/block blocks and the critic scores block x block pairs in each (n*block "
        "critic passes instead of n^2); each bound is the mean over blocks of the bound on "
        "one block, i.e. the estimator at batch size `block` (InfoNCE's ceiling is "
        "log(block)). Must divide train.batch_size; discriminative estimators only. "
        "Default: all n^2 pairs"))


class TrainSpec(_Request):
    batch_size: int = Field(64, ge=2, le=4096)
    steps: int = Field(1000, ge=1, le=10_000_000, description=(
        "training steps per critic; when omitted: the paper's schedule on images (App. B.2: "
        "2 epochs of the training split at batch_size, 1,875 steps on MNIST at 64; 10 "
        "epochs for gm), 1000 on vector tasks"))
    lr: float = Field(1e-4, gt=0, le=1.0)
    eval_samples: int | None = Field(
        None, ge=2, le=1_000_000, description=(
            "held-out samples for the reported estimate; default: the whole test split for "
            "images (one pass, in batches of batch_size), 16384 fresh samples for vectors"))
    until_converged: bool = Field(
        False, description="keep training past `steps`, up to `max_steps`, until every "
                           "critic's held-out estimate has reached a plateau")
    max_steps: int | None = Field(
        None, ge=1, le=10_000_000, description="until_converged: the most steps (default 4x steps)")

    @property
    def step_cap(self) -> int:
        """The most steps a critic may train."""
        if not self.until_converged:
            return self.steps
        return max(self.steps, self.max_steps or 4 * self.steps)


class EstimatorSpec(_Request):
    """An estimator by name (or alias) and its params, validated by the registry entry's
    typed params model (micheck.estimators); ``params`` holds the result with every
    default filled in (``typed_params`` gives the model itself)."""

    # the schema lists the registry's names (a generated client gets an enum); the
    # validator also accepts other spellings (case, aliases) and names the known ones,
    # and any well-formed name this process does not know: a plug-in's, which the service
    # accepts while a live worker reports it (micheck.service.plugins)
    name: str = Field(max_length=64, json_schema_extra={"enum": ESTIMATOR_NAMES})
    params: dict[str, Any] = Field(default_factory=dict)
    critic: CriticSpec = Field(default_factory=CriticSpec)
    train: TrainSpec = Field(default_factory=TrainSpec)

    @field_validator("name")
    @classmethod
    def _known(cls, v: str) -> str:
        try:
            return estimators.get(v).name
        except KeyError as exc:
            # a plug-in's name: known where it is installed (a worker) or reported (the
            # service, which refuses a name no live worker has); params checked there
            if estimators.valid_name(v):
                return v.lower()
            raise ValueError(exc.args[0]) from None

    @model_validator(mode="after")
    def _params(self) -> EstimatorSpec:
        try:
            entry = estimators.get(self.name)
        except KeyError:
            return self
        self.params = entry.parse_params(self.params).model_dump(mode="json")
        return self

    @model_validator(mode="after")
    def _block(self) -> EstimatorSpec:
        block, n = self.critic.block, self.train.batch_size
        if block is None:
            return self
        # an unknown name is a plug-in (discriminative only: the loader refuses others)
        if self.known and self.entry.family != "discriminative":
            raise ValueError(f"critic.block applies to the critics of discriminative "
                             f"estimators; {self.name} ({self.entry.family}) scores no pairs")
        if n % block:
            raise ValueError(f"critic.block {block} must divide train.batch_size {n} "
                             f"(blocks of equal size)")
        return self

    @property
    def known(self) -> bool:
        """Whether this process knows the estimator (built in, installed or reported)."""
        try:
            estimators.get(self.name)
        except KeyError:
            return False
        return True

    @property
    def entry(self) -> estimators.EstimatorEntry:
        return estimators.get(self.name)

    @property
    def typed_params(self) -> estimators.Params:
        return self.entry.parse_params(self.params)


def _registered(get: Callable[[str], Any], name: str) -> str:
    """The name a registry (its `get`) knows, or a ValueError naming the known ones."""
    try:
        return get(name).name
    except KeyError as exc:
        raise ValueError(exc.args[0]) from None


DATA_ROOT_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,63}$"


class DatasetSpec(_Request):
    """A data set by name (an entry of micheck.datasets) and its options. The fields stay
    flat, as stored requests and their deduplication keys have them; the entry's typed
    params model checks the ones that apply (``typed_params``)."""

    # the schema lists the registry's names; the validator names the known ones
    name: str = Field(max_length=32, json_schema_extra={"enum": DATASET_NAMES})
    dim: int = Field(20, ge=1, le=4096, description="vector tasks: dimension d of x and y")
    mi: float = Field(MI_DEFAULT, gt=0, le=200,
                      description="gaussian, cubic: true MI in nats (Eq. 55)")
    data_root: str | None = Field(
        None, pattern=DATA_ROOT_PATTERN,
        description="cifar10: the name of a data root the operator configured "
                    "(MICHECK_DATA_ROOTS); default: the server's MICHECK_DATA_DIR. Data "
                    "locations are the operator's: a request never names a server path")
    train_size: int | None = Field(None, ge=2, le=10_000_000,
                                   description="use only the first N training images")
    pairs: Pairs | None = Field(
        None, description="images: same_class = X and Y are two different images of one "
                          "class, so I(X; Y) = H(C) when the class is recoverable from an "
                          "image (Lee & Rhee 2024); noisy_class = Y's class is X's through a "
                          "symmetric channel that changes it with probability class_noise, so "
                          "I(X; Y) = I(C_X; C_Y); the ground_truth test then has a known MI")
    classes: list[int] | None = Field(
        None, description="pairs: the classes drawn from (default all), at least 2")
    copies: int = Field(1, ge=1, le=16, description=(
        "pairs: m independent pairs stacked over channels; I = m H(C)"))
    # bmi's tasks (micheck.datasets.bmi): their own params; None = the task's default
    off_diag: float | None = Field(None, gt=0, lt=1, description=(
        "multinormal_dense: the correlation of every pair of coordinates (default 0.5)"))
    interacting: int | None = Field(None, ge=1, le=4096, description=(
        "multinormal_sparse: k pairs (X_i, Y_i) that share a latent (default 2)"))
    strength: float | None = Field(None, gt=0, le=100, description=(
        "multinormal_sparse: s, the pairs' correlation s^2 / (1 + s^2) (default 2)"))
    dof: int | None = Field(None, ge=1, le=1000, description=(
        "student_identity: degrees of freedom nu (required)"))
    class_noise: float | None = Field(None, ge=0, lt=1, description=(
        "noisy_class: the probability eps that Y's class is another one (each of the K - 1 "
        "others alike); below (K-1)/K. Uniform classes: I = m (ln K - H_b(eps) - eps ln(K-1))"))

    @field_validator("name")
    @classmethod
    def _known(cls, v: str) -> str:
        return _registered(datasets.get, v)

    @model_validator(mode="before")
    @classmethod
    def _no_server_paths(cls, data: Any) -> Any:
        # data_dir (a server path) was accepted once; stored requests carry data_dir: null
        if isinstance(data, dict) and "data_dir" in data:
            data = dict(data)
            if data.pop("data_dir") is not None:
                raise ValueError("data_dir is not accepted: data locations are the "
                                 "operator's configuration; name a configured root with "
                                 "data_root (or leave it out for the server's default)")
        return data

    @model_validator(mode="after")
    def _params(self) -> DatasetSpec:
        """The fields that apply to this data set, checked by its entry's params model."""
        entry = self.entry
        if self.pairs is None and (self.classes is not None or self.copies != 1):
            raise ValueError("classes and copies apply only with pairs: same_class or "
                             "noisy_class")
        if self.pairs is not None and not entry.takes("pairs"):
            raise ValueError(f"pairs: {self.pairs} needs an image data set, not {self.name}")
        if self.is_image and self.data_root is not None and not entry.takes("data_root"):
            takers = [d.name for d in datasets.entries() if d.takes("data_root")]
            raise ValueError(f"data_root applies to {', '.join(takers)} only, not {self.name}")
        if not self.is_image and not entry.takes("mi") and self.mi != MI_DEFAULT:
            raise ValueError(f"mi does not apply to {self.name}: its MI follows from its own "
                             "params")
        for name in OPTIONAL_DATASET_FIELDS:
            if getattr(self, name) is not None and not entry.takes(name):
                takers = [d.name for d in datasets.entries() if d.takes(name)]
                raise ValueError(f"{name} applies to {', '.join(takers)} only, not {self.name}")
        entry.parse_params(self._fields())
        return self

    @property
    def entry(self) -> datasets.DatasetEntry:
        return datasets.get(self.name)

    @property
    def typed_params(self) -> datasets.Params:
        """The entry's typed params: the fields of this spec that apply to the data set."""
        return self.entry.parse_params(self._fields())

    def _fields(self) -> dict[str, Any]:
        """The flat fields, minus the optional ones left unset (the entry's model then
        fills in its own default)."""
        out = self.model_dump()
        for name in OPTIONAL_DATASET_FIELDS:
            if out.get(name) is None:
                out.pop(name, None)
        return out

    @property
    def known_mi(self) -> float | None:
        """A vector task's exact MI in nats: the request's ``mi`` (Eq. 55 tasks) or the one
        its params give (bmi's tasks); None for images (pairs know theirs from the split)."""
        return self.entry.true_mi(self.typed_params)

    @property
    def is_image(self) -> bool:
        return self.entry.is_image

    @property
    def height(self) -> int:
        return self.entry.height


def _typed_or_none(ds: DatasetSpec) -> dict[str, Any] | None:
    """The typed params of a data set as JSON, or None where they cannot be read (a stored
    request naming a data set this process does not register)."""
    try:
        return ds.typed_params.model_dump(mode="json")
    except (KeyError, ValueError):
        return None


class TestSpec(_Request):
    __test__ = False  # not a pytest class

    kind: TestKind = Field(max_length=32, json_schema_extra={"enum": TEST_KINDS})
    rows: list[Row] | None = Field(
        None, max_length=256,
        description="t values: top rows kept in Y (default: a grid over the height)")
    offset: int = Field(3, ge=1, le=4096, description=(
        "data_processing: h(Y) keeps t - offset rows (Sec. 6.2 uses 3; fewer than 0 rows "
        "means none); must be below the image height"))
    transform: Transform = Field(
        "rows", description="rows = mask all but the top t rows (Sec. 6.2); the others are "
                            "the Table 3 random transforms")
    tolerance: float | None = Field(None, gt=0, le=100)
    rho: list[float] | None = Field(
        None, description="mi_gradient: correlations at which dI/drho is estimated, each in "
                          f"(-1, 1) (default {list(DEFAULT_RHO)})")

    @field_validator("kind")
    @classmethod
    def _known_kind(cls, v: str) -> str:
        return _registered(testkinds.get, v)

    @field_validator("rho")
    @classmethod
    def _rho(cls, v: list[float] | None) -> list[float] | None:
        if v is None:
            return v
        if not v:
            raise ValueError("rho must not be empty")
        bad = [r for r in v if not (math.isfinite(r) and -1.0 < r < 1.0)]
        if bad:
            raise ValueError(f"rho values {bad} outside (-1, 1): the correlation must satisfy "
                             "|rho| < 1 (I and dI/drho are infinite at |rho| = 1)")
        if len(set(v)) != len(v):
            raise ValueError("rho values must be distinct")
        return v

    @property
    def effective_tolerance(self) -> float:
        return self.tolerance if self.tolerance is not None else testkinds.get(self.kind).tolerance


MAX_LABELS = 16
_LABEL_KEY = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-/]{0,62}")


_EVAL_ID = re.compile(r"[0-9a-f]{32}")


def parse_baseline(text: str) -> str | dict[str, str]:
    """An evaluation id (32 hex digits) as is, or a label query 'k:v,k2:v2' as a mapping;
    ValueError for anything else."""
    text = text.strip()
    if _EVAL_ID.fullmatch(text):
        return text
    out: dict[str, str] = {}
    for part in text.split(","):
        key, sep, value = part.strip().partition(":")
        if not sep or not _LABEL_KEY.fullmatch(key):
            raise ValueError(f"baseline {text[:80]!r}: an evaluation id or labels "
                             "'key:value,key2:value2'")
        out[key] = value
    if len(out) > MAX_LABELS:
        raise ValueError(f"baseline: at most {MAX_LABELS} labels")
    return out


class WebhookSpec(_Model):
    """Where to POST the evaluation's summary when it ends (succeeded, failed, canceled).

    With a secret, each delivery carries ``X-Micheck-Signature: sha256=<hex HMAC-SHA256 of
    the raw body keyed with the secret>``. Neither the URL nor the secret is stored in the
    request the API shows back, and neither changes the deduplication key.
    """

    url: str = Field(max_length=2000, description="http(s) URL; private and loopback "
                     "targets are refused unless MICHECK_WEBHOOKS_ALLOW_PRIVATE=1")
    secret: str | None = Field(None, min_length=8, max_length=200,
                               description="HMAC-SHA256 key of X-Micheck-Signature")

    @field_validator("url")
    @classmethod
    def _http_url(cls, v: str) -> str:
        from urllib.parse import urlsplit

        try:
            parts = urlsplit(v)
            parts.port  # noqa: B018 (raises on a bad port)
        except ValueError as exc:
            raise ValueError(f"not a URL: {exc}") from None
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http:// or https:// URL with a host")
        if parts.username is not None or parts.password is not None:
            raise ValueError("must not carry user:password (use the secret)")
        return v


class EvaluationRequest(_Request):
    """One estimator, one data set, a list of tests, a list of seeds."""

    estimator: EstimatorSpec
    dataset: DatasetSpec
    tests: list[TestSpec] = Field(min_length=1, max_length=256)
    seeds: list[Seed] = Field(default_factory=lambda: [0, 1, 2], min_length=1, max_length=64)
    max_seeds: int | None = Field(
        None, ge=1, le=64, description=(
            "adaptive seeds: while a verdict is inconclusive for want of seeds, train more "
            f"(batched), up to this many; default max({DEFAULT_MAX_SEEDS}, len(seeds)); set it "
            "to len(seeds) to run exactly the seeds given"))
    force: bool = Field(False, description="re-run even if an identical evaluation finished")
    label: str | None = Field(None, max_length=200)
    labels: dict[str, str] = Field(
        default_factory=dict, description=f"up to {MAX_LABELS} key/value tags (keys: letters, "
        "digits, _ . - /, up to 63 characters; values up to 200) to filter listings by; "
        "they do not change the deduplication key")
    webhook: WebhookSpec | None = Field(None, description="notified on every terminal state")
    baseline: str | None = Field(None, max_length=1000, description=(
        "compare with: an evaluation id, or a label query 'k:v,k2:v2' meaning the latest "
        "succeeded evaluation of the same spec with those labels "
        "(GET /v1/evaluations/{id}/comparison)"))

    @field_validator("baseline")
    @classmethod
    def _baseline(cls, v: str | None) -> str | None:
        if v is not None:
            parse_baseline(v)
        return v

    @field_validator("labels")
    @classmethod
    def _labels(cls, v: dict[str, str]) -> dict[str, str]:
        if len(v) > MAX_LABELS:
            raise ValueError(f"at most {MAX_LABELS} labels, got {len(v)}")
        for key, value in v.items():
            if not _LABEL_KEY.fullmatch(key):
                raise ValueError(f"label key {key[:70]!r}: 1-63 letters, digits, '_', '.', "
                                 "'-' or '/', starting with a letter or digit")
            if len(value) > 200:
                raise ValueError(f"label {key!r}: value longer than 200 characters")
        return v

    @field_validator("seeds")
    @classmethod
    def _distinct(cls, v: list[int]) -> list[int]:
        if len(set(v)) != len(v):
            raise ValueError("seeds must be distinct")
        return v

    @property
    def seed_cap(self) -> int:
        """The most seeds the adaptive rule may run."""
        return max(len(self.seeds), self.max_seeds if self.max_seeds is not None
                   else DEFAULT_MAX_SEEDS)

    @model_validator(mode="after")
    def _paper_schedule(self) -> EvaluationRequest:
        """Omitted `train.steps` on images: the epochs of paper 002 App. B.2 (recorded in the
        request as explicit steps, so a stored request reads back the same)."""
        train, ds = self.estimator.train, self.dataset
        if "steps" not in train.model_fields_set and ds.is_image:
            train.steps = self.reference_steps
        return self

    @property
    def reference_steps(self) -> int:
        """The schedule a critic is measured against: on images the epochs of paper 002
        App. B.2 (2 of the training split for critics, 10 for gm) at this batch size; on
        vector tasks TrainSpec's default 1,000 steps. A critic trained for less than
        micheck.convergence.MIN_SCHEDULE_SHARE of it never counts as converged."""
        ds = self.dataset
        if not ds.is_image:
            return TrainSpec.model_fields["steps"].default
        # a plug-in this process does not know is discriminative (plug-ins always are)
        family = "generative" if self.estimator.known and \
            self.estimator.entry.family == "generative" else "discriminative"
        images = ds.entry.train_images
        if ds.train_size:
            images = min(images, ds.train_size)
        return max(1, math.ceil(PAPER_EPOCHS[family] * images / self.estimator.train.batch_size))

    @model_validator(mode="after")
    def _tests_fit_dataset(self) -> EvaluationRequest:
        """Each test's kind says which data sets and estimators it applies to."""
        for i, test in enumerate(self.tests):
            try:
                testkinds.get(test.kind).check(test, self)
            except ValueError as exc:
                raise ValueError(f"tests[{i}] ({test.kind}): {exc}") from None
        ds = self.dataset
        if (self.estimator.critic.arch == "cnn") != ds.is_image and self.estimator.critic.arch:
            want = "cnn" if ds.is_image else "mlp"
            raise ValueError(f"critic arch {self.estimator.critic.arch!r} does not fit "
                             f"{ds.name}; use {want!r}")
        return self

    def generators(self) -> list[str]:
        """The task generators this request draws from (micheck.definitions
        GENERATOR_VERSIONS), for provenance and the deduplication key."""
        return sorted({g for test in self.tests
                       for g in testkinds.get(test.kind).generators(test, self.dataset)})

    def canonical(self) -> dict[str, Any]:
        """The spec with every default filled in, minus fields that do not change results.

        Shaped as before data roots existed (``dataset.data_dir: null``, no ``data_root``
        unless one is named; no ``critic.block`` unless one is set, nor a data set field of
        ``OPTIONAL_DATASET_FIELDS``), so the deduplication keys of unchanged specs stay the
        same.
        """
        out = self.model_dump(mode="json",
                              exclude={"force", "label", "labels", "webhook", "baseline"})
        root = out["dataset"].pop("data_root", None)
        out["dataset"]["data_dir"] = None
        if out["estimator"]["critic"].get("block") is None:  # all pairs, as before blocks
            out["estimator"]["critic"].pop("block", None)
        # absent unless they apply, as before they existed; a task's defaults spelled out
        typed = _typed_or_none(self.dataset)
        for name in OPTIONAL_DATASET_FIELDS:
            value = out["dataset"].pop(name, None)
            if typed is not None and name in typed:
                value = typed[name]
            if value is not None:
                out["dataset"][name] = value
        if root is not None:
            out["dataset"]["data_root"] = root
        return out

    def spec_hash(self, definitions: dict[str, str] | None = None) -> str:
        """Deduplication key: canonical spec plus the definition versions it runs under
        (``definitions``: those a result recorded, where this process does not know the
        estimator, e.g. a client rendering a plug-in's result)."""
        if definitions is None:
            definitions = definition_versions(self.estimator.name, self.generators(),
                                              self.dataset.name)
        payload = {"spec": self.canonical(), "definitions": definitions}
        blob = json.dumps(payload, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()


class Cost(_Model):
    """The compute an evaluation is estimated to need (micheck.budget.estimate), before it
    runs: what the service bounds per request and per token, and the job timeout's base."""

    gmac: float = Field(description="total: 10^9 multiply-accumulates, training + held-out")
    train_gmac: float
    eval_gmac: float
    trainings: int = Field(description="critics (or generative models) trained")
    critic_steps: int = Field(description="trainings x steps")
    version: str = Field(description="the version of the cost model (micheck.budget)")
    seconds: float | None = Field(None, description="estimated run time on the queue's "
                                  "slowest live device, when it was admitted")
    device: str | None = Field(None, description="that device, and who measured its speed")


class MoreSeeds(_Model):
    """POST /v1/evaluations/{id}/seeds: how many seeds to add to a finished evaluation."""

    add: int = Field(ge=1, le=64, description=(
        "new seeds to train for the rows still inconclusive for want of seeds; pooled with "
        "the stored estimates and decided again at one more look (the smallest integers "
        "above every seed run so far)"))


# ---- reading what was stored ----------------------------------------------------------------


def _construct(model: type[BaseModel], data: Any) -> Any:
    """`model` built from stored data without validation, nested models included."""
    if not isinstance(data, dict):
        return data
    fields: dict[str, Any] = {}
    for name, info in model.model_fields.items():
        if name not in data:
            continue
        value, ann = data[name], info.annotation
        sub = ann if isinstance(ann, type) and issubclass(ann, BaseModel) else None
        if sub is not None:
            fields[name] = _construct(sub, value)
        elif name == "tests" and isinstance(value, list):
            fields[name] = [_construct(TestSpec, v) for v in value]
        else:
            fields[name] = value
    return model.model_construct(**fields)


def stored_request(data: dict[str, Any]) -> EvaluationRequest:
    """A request as it was accepted. Requests are validated when written; reading one back
    must not re-apply today's admission rules (a tightened limit would turn old rows into
    errors), so a row that no longer validates is taken as stored."""
    try:
        return EvaluationRequest.model_validate(data)
    except ValueError:
        return _construct(EvaluationRequest, data)
