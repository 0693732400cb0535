"""Image operations of the self-consistency tests, batched over float tensors (N, C, H, W).

``mask_rows`` is the Sec. 6.2 construction (keep the top t rows). The random
transforms are those of App. B / Table 3: upscale by 1x-1.2x, rotate within +-20
degrees, shift by at most 3 pixels on each axis; every image draws its own parameter
from the given torch.Generator, so a seed fixes the whole batch.

Geometry conventions: x grows to the right, y grows downwards, (0, 0) of the
transforms is the image centre. A positive angle turns the image counter-clockwise
as displayed; a positive shift moves content right (dx) or down (dy). Pixels that
come from outside the image are 0.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from micheck.errors import SpecError


def _check_images(images: torch.Tensor) -> None:
    if images.ndim != 4 or not images.is_floating_point():
        raise SpecError(f"expected float images (N, C, H, W), got {images.dtype} "
                        f"{tuple(images.shape)}")


def mask_rows(images: torch.Tensor, t: int) -> torch.Tensor:
    """Keep the top ``t`` rows and zero the rest (t = 0: all zero; t = H: unchanged)."""
    _check_images(images)
    height = images.shape[-2]
    if not 0 <= t <= height:
        raise SpecError(f"t = {t} rows is outside 0..{height}")
    out = images.clone()
    out[..., t:, :] = 0
    return out


def _warp(images: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """Sample each image at ``theta @ (x, y, 1)`` for every output position (x, y), in the
    normalised [-1, 1] coordinates of affine_grid (align_corners=False puts 0 at the
    centre of the image, which is what keeps scaling and rotation centred)."""
    grid = F.affine_grid(theta.to(images.dtype), list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros",
                         align_corners=False)


def scale(images: torch.Tensor, factors: torch.Tensor) -> torch.Tensor:
    """Zoom each image by its factor about the centre (factor > 1 enlarges)."""
    _check_images(images)
    inv = 1.0 / factors.to(images.device, torch.float64)
    zero = torch.zeros_like(inv)
    theta = torch.stack([torch.stack([inv, zero, zero], -1),
                         torch.stack([zero, inv, zero], -1)], -2)
    return _warp(images, theta)


def rotate(images: torch.Tensor, degrees: torch.Tensor) -> torch.Tensor:
    """Rotate each image counter-clockwise (as displayed) by its angle about the centre."""
    _check_images(images)
    height, width = images.shape[-2:]
    rad = torch.deg2rad(degrees.to(images.device, torch.float64))
    cos, sin = torch.cos(rad), torch.sin(rad)
    zero = torch.zeros_like(rad)
    # Output pixel offset (x, y) reads input offset (x cos - y sin, x sin + y cos) in pixel
    # units; dividing by the half-sizes converts to affine_grid's per-axis normalisation.
    theta = torch.stack([torch.stack([cos, -sin * height / width, zero], -1),
                         torch.stack([sin * width / height, cos, zero], -1)], -2)
    return _warp(images, theta)


def translate(images: torch.Tensor, dx: torch.Tensor, dy: torch.Tensor) -> torch.Tensor:
    """Shift each image by whole pixels (dx right, dy down), filling with zeros; exact."""
    _check_images(images)
    n, _, height, width = images.shape
    device = images.device
    dx, dy = dx.to(device, torch.long), dy.to(device, torch.long)
    src_rows = torch.arange(height, device=device) - dy[:, None]  # (N, H)
    src_cols = torch.arange(width, device=device) - dx[:, None]  # (N, W)
    valid = (((src_rows >= 0) & (src_rows < height))[:, :, None]
             & ((src_cols >= 0) & (src_cols < width))[:, None, :])  # (N, H, W)
    batch = torch.arange(n, device=device)[:, None, None]
    # Advanced indices around the channel slice put their dims first: (N, H, W, C).
    picked = images[batch, :, src_rows.clamp(0, height - 1)[:, :, None],
                    src_cols.clamp(0, width - 1)[:, None, :]]
    return (picked * valid[..., None]).permute(0, 3, 1, 2).contiguous()


def _uniform(n: int, low: float, high: float, gen: torch.Generator) -> torch.Tensor:
    return low + (high - low) * torch.rand(n, generator=gen, device=gen.device,
                                           dtype=torch.float64)


def random_scaling(images: torch.Tensor, gen: torch.Generator, low: float = 1.0,
                   high: float = 1.2) -> torch.Tensor:
    """Upscale each image by a factor drawn uniformly from [low, high]."""
    if not 0 < low <= high:
        raise SpecError(f"scaling range must satisfy 0 < low <= high, got [{low}, {high}]")
    return scale(images, _uniform(images.shape[0], low, high, gen))


def random_rotation(images: torch.Tensor, gen: torch.Generator,
                    degrees: float = 20.0) -> torch.Tensor:
    """Rotate each image by an angle drawn uniformly from [-degrees, degrees]."""
    if not 0 <= degrees <= 180 or math.isnan(degrees):
        raise SpecError(f"rotation range must lie in [0, 180] degrees, got {degrees}")
    return rotate(images, _uniform(images.shape[0], -degrees, degrees, gen))


def random_translation(images: torch.Tensor, gen: torch.Generator,
                       max_shift: int = 3) -> torch.Tensor:
    """Shift each image by whole pixels drawn uniformly from -max_shift..max_shift, per axis."""
    if max_shift < 0:
        raise SpecError(f"max_shift must be >= 0, got {max_shift}")
    shifts = torch.randint(-max_shift, max_shift + 1, (2, images.shape[0]), generator=gen,
                           device=gen.device)
    return translate(images, shifts[0], shifts[1])


RANDOM_TRANSFORMS = {
    "scaling": random_scaling,
    "rotation": random_rotation,
    "translation": random_translation,
}
