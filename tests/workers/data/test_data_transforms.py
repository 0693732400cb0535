"""Exact geometry of the masking and Table 3 transforms on synthetic images."""

from __future__ import annotations

import pytest
import torch
from micheck.workers.data.transforms import (
    RANDOM_TRANSFORMS,
    mask_rows,
    random_rotation,
    random_scaling,
    random_translation,
    rotate,
    scale,
    translate,
)

from micheck.errors import SpecError


def dot(size: int, row: int, col: int, n: int = 1, channels: int = 1) -> torch.Tensor:
    images = torch.zeros(n, channels, size, size)
    images[:, :, row, col] = 1.0
    return images


def coords(size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Pixel offsets from the image centre: x (column, right) and y (row, down)."""
    centre = (size - 1) / 2
    y, x = torch.meshgrid(torch.arange(size) - centre, torch.arange(size) - centre,
                          indexing="ij")
    return x.float(), y.float()


def test_mask_rows() -> None:
    images = torch.rand(3, 2, 28, 28) + 0.1
    assert torch.equal(mask_rows(images, 28), images)
    assert not mask_rows(images, 0).any()
    masked = mask_rows(images, 10)
    assert torch.equal(masked[..., :10, :], images[..., :10, :])
    assert not masked[..., 10:, :].any()
    assert images.min() > 0  # the input is untouched
    for bad in (-1, 29):
        with pytest.raises(SpecError, match="outside 0..28"):
            mask_rows(images, bad)
    with pytest.raises(SpecError, match="float images"):
        mask_rows(torch.zeros(28, 28), 3)


def test_translate_moves_a_pixel_exactly() -> None:
    images = dot(9, row=4, col=4, n=4, channels=3)
    out = translate(images, torch.tensor([2, -3, 0, 9]), torch.tensor([1, 0, -4, 0]))
    assert out.shape == images.shape
    assert torch.equal(out[0], dot(9, 5, 6, channels=3)[0])  # right 2, down 1
    assert torch.equal(out[1], dot(9, 4, 1, channels=3)[0])  # left 3
    assert torch.equal(out[2], dot(9, 0, 4, channels=3)[0])  # up 4
    assert not out[3].any()  # shifted out of the frame: zero fill, no wrap-around


def test_random_translation_draws_per_image_shifts() -> None:
    images = dot(15, 7, 7, n=200)
    out = random_translation(images, torch.Generator().manual_seed(0), max_shift=3)
    assert torch.equal(out.sum((1, 2, 3)), torch.ones(200))  # one whole pixel each
    rows, cols = (out[:, 0] == 1).nonzero()[:, 1:].T
    assert set((rows - 7).tolist()) == set(range(-3, 4)) == set((cols - 7).tolist())
    again = random_translation(images, torch.Generator().manual_seed(0), max_shift=3)
    assert torch.equal(out, again)  # the generator fixes the batch


def test_rotation_by_zero_is_identity() -> None:
    images = torch.rand(5, 3, 28, 28)
    torch.testing.assert_close(rotate(images, torch.zeros(5)), images, atol=1e-5, rtol=0)


@pytest.mark.parametrize("size", [9, 28])
def test_rotation_by_90_moves_a_pixel(size: int) -> None:
    centre = (size - 1) / 2
    row, col = 2, size - 3  # top right
    out = rotate(dot(size, row, col), torch.tensor([90.0]))
    # Counter-clockwise as displayed: offset (dx, dy) -> (dy, -dx); top right -> top left.
    dx, dy = col - centre, row - centre
    expected = dot(size, round(centre - dx), round(centre + dy))
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=0)


def test_rotation_of_a_ramp_is_exact_inside() -> None:
    x, y = coords(28)
    ramp = (x / 20 + 0.5)[None, None]
    angle = 17.0
    out = rotate(ramp, torch.tensor([angle]))[0, 0]
    a = torch.deg2rad(torch.tensor(angle))
    # Output at (x, y) reads input at (x cos - y sin, x sin + y cos).
    expected = (x * torch.cos(a) - y * torch.sin(a)) / 20 + 0.5
    inside = x**2 + y**2 < 11**2  # away from the zero padding
    torch.testing.assert_close(out[inside], expected[inside], atol=1e-5, rtol=0)


def test_scaling_keeps_the_centre_and_stretches() -> None:
    x, y = coords(29)
    ramp = (x / 40 + y / 50 + 0.5)[None, None].repeat(3, 1, 1, 1)
    factors = torch.tensor([1.0, 1.1, 2.0])
    out = scale(ramp, factors)
    torch.testing.assert_close(out[0], ramp[0], atol=1e-5, rtol=0)
    for k, s in enumerate(factors.tolist()):
        expected = (x / 40 + y / 50) / s + 0.5  # output (x, y) reads input (x / s, y / s)
        inside = (x.abs() < 13) & (y.abs() < 13)
        torch.testing.assert_close(out[k, 0][inside], expected[inside], atol=1e-5, rtol=0)
    # A dot at the centre stays at the centre, at full brightness, whatever the factor.
    centred = scale(dot(29, 14, 14, n=3), factors)
    assert torch.allclose(centred[:, 0, 14, 14], torch.ones(3), atol=1e-5)


def test_random_scaling_and_rotation_ranges() -> None:
    x, _ = coords(29)
    ramp = (x / 40 + 0.5)[None, None].repeat(300, 1, 1, 1)
    gen = torch.Generator().manual_seed(3)
    scaled = random_scaling(ramp, gen, low=1.0, high=1.2)
    # Slope of the ramp along the middle row is 1 / (40 s): recover each s.
    s = 1 / (40 * (scaled[:, 0, 14, 20] - scaled[:, 0, 14, 8]) / 12)
    assert s.min() >= 1.0 - 1e-4 and s.max() <= 1.2 + 1e-4
    assert s.std() > 0.04  # each image its own factor (uniform on [1, 1.2]: std 0.058)
    rotated = random_rotation(ramp, torch.Generator().manual_seed(3), degrees=20)
    # Along the middle row the rotated ramp has slope cos(angle) / 40; the centre column
    # changes with -sin(angle) / 40 per row.
    sin = -(rotated[:, 0, 20, 14] - rotated[:, 0, 8, 14]) / 12 * 40
    angles = torch.rad2deg(torch.asin(sin))
    assert angles.min() >= -20.01 and angles.max() <= 20.01
    assert angles.min() < -15 and angles.max() > 15
    torch.testing.assert_close(
        rotated, random_rotation(ramp, torch.Generator().manual_seed(3), degrees=20))


def test_random_transforms_registry_and_validation() -> None:
    images = torch.rand(2, 1, 8, 8)
    gen = torch.Generator().manual_seed(0)
    for name, fn in RANDOM_TRANSFORMS.items():
        assert fn(images, gen).shape == images.shape, name
    with pytest.raises(SpecError):
        random_scaling(images, gen, low=1.3, high=1.2)
    with pytest.raises(SpecError):
        random_rotation(images, gen, degrees=-1)
    with pytest.raises(SpecError):
        random_translation(images, gen, max_shift=-1)
