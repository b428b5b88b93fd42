"""The generic image-folder data set."""

from __future__ import annotations

from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import torch

from inr_gon.data import DataError, ImageDataset, load_image_folder
from inr_gon.data.images import read_image


def gray(value: int, shape=(8, 8)) -> np.ndarray:
    return np.full(shape, value, dtype=np.uint8)


def rgb(r: int, g: int, b: int, shape=(8, 8)) -> np.ndarray:
    return np.stack([gray(r, shape), gray(g, shape), gray(b, shape)], axis=-1)


@pytest.fixture
def class_folder(tmp_path) -> Path:
    """cats/ (3 grey PNGs, one 16x12) and dogs/ (2 RGB images, one JPEG, one RGBA PNG)."""
    root = tmp_path / "pets"
    (root / "cats").mkdir(parents=True)
    (root / "dogs" / "nested").mkdir(parents=True)
    iio.imwrite(root / "cats" / "a.png", gray(0))
    iio.imwrite(root / "cats" / "b.png", gray(255))
    iio.imwrite(root / "cats" / "c.png", gray(128, (16, 12)))
    iio.imwrite(root / "dogs" / "d.jpg", rgb(255, 255, 255))
    rgba = np.concatenate([rgb(255, 0, 0), gray(7)[..., None]], axis=-1)
    iio.imwrite(root / "dogs" / "nested" / "e.png", rgba)
    (root / ".DS_Store").write_bytes(b"hidden files are ignored")
    return root


def test_class_folders_gray_resized(class_folder):
    data = load_image_folder(class_folder, resolution=4, channels=1, test_fraction=0.0)
    assert isinstance(data, ImageDataset) and data.name == "pets"
    assert data.classes == ("cats", "dogs")
    assert data.train_images.shape == (5, 1, 4, 4) and data.train_images.dtype == torch.float32
    assert data.test_images.shape == (0, 1, 4, 4) and data.test_labels.shape == (0,)
    assert data.train_labels.tolist() == [0, 0, 0, 1, 1]
    assert data.train_labels.dtype == torch.int64
    means = data.train_images.mean(dim=(1, 2, 3))
    torch.testing.assert_close(means[:3], torch.tensor([0.0, 1.0, 128 / 255]), atol=1e-3, rtol=0)
    assert abs(float(means[3]) - 1.0) < 0.02  # white JPEG
    assert abs(float(means[4]) - 0.2126) < 0.01  # pure red -> luminance, alpha dropped
    assert "5 images (4x4, 1 channel)" in data.source


def test_rgb_and_rectangular_resolution(class_folder):
    data = load_image_folder(class_folder, resolution=(6, 10), channels=3, test_fraction=0.0)
    assert data.image_shape == (3, 6, 10)
    red = data.train_images[4]
    torch.testing.assert_close(red.mean(dim=(1, 2)), torch.tensor([1.0, 0.0, 0.0]))
    grey = data.train_images[2]  # grey repeated into three equal channels
    assert torch.equal(grey[0], grey[1]) and torch.equal(grey[1], grey[2])


def test_resizing_is_anti_aliased(tmp_path):
    stripes = np.zeros((20, 20), np.uint8)
    stripes[:, ::2] = 255  # 1-pixel stripes: a plain subsample would be all black or all white
    iio.imwrite(tmp_path / "s.png", stripes)
    data = load_image_folder(tmp_path, resolution=4, test_fraction=0.0)
    assert data.train_images.shape == (1, 1, 4, 4)
    assert torch.all((data.train_images - 0.5).abs() < 0.1)
    assert data.classes == () and data.train_labels.tolist() == [0]


def test_split_is_seeded_and_disjoint(tmp_path):
    for i in range(10):
        iio.imwrite(tmp_path / f"{i:02d}.png", gray(i * 20, (5, 5)))
    a = load_image_folder(tmp_path, test_fraction=0.3, seed=1)
    b = load_image_folder(tmp_path, test_fraction=0.3, seed=1)
    c = load_image_folder(tmp_path, test_fraction=0.3, seed=2)
    assert a.train_images.shape == (7, 1, 5, 5) and a.test_images.shape == (3, 1, 5, 5)
    assert torch.equal(a.test_images, b.test_images)
    values = lambda d: {round(float(x) * 255) for x in d.mean(dim=(1, 2, 3))}  # noqa: E731
    assert values(a.train_images) | values(a.test_images) == {i * 20 for i in range(10)}
    assert not values(a.train_images) & values(a.test_images)
    assert values(c.test_images) != values(a.test_images)


def test_native_size_must_agree_without_resolution(class_folder):
    with pytest.raises(DataError, match=r"c\.png: size \(16, 12\) differs .* pass resolution="):
        load_image_folder(class_folder)


def test_non_image_file_is_named(class_folder):
    (class_folder / "dogs" / "notes.txt").write_text("not an image")
    with pytest.raises(DataError, match=r"notes\.txt: not an image file \(extension '\.txt'"):
        load_image_folder(class_folder, resolution=4)


@pytest.mark.parametrize("content", [b"hello, I am text", b"", b"\x89PNG\r\n\x1a\n" + b"\0" * 40])
def test_fake_or_corrupt_png_is_named(tmp_path, content):
    iio.imwrite(tmp_path / "good.png", gray(3))
    (tmp_path / "bad.png").write_bytes(content)
    with pytest.raises(DataError, match=r"bad\.png: (not a valid PNG|cannot decode)") as info:
        load_image_folder(tmp_path)
    assert "\n" not in str(info.value)


def test_empty_and_missing_folders(tmp_path):
    with pytest.raises(DataError, match="no images found"):
        load_image_folder(tmp_path)
    (tmp_path / "empty-class").mkdir()
    with pytest.raises(DataError, match="no images found"):
        load_image_folder(tmp_path)
    with pytest.raises(DataError, match="does not exist"):
        load_image_folder(tmp_path / "nope")


def test_files_beside_class_folders(class_folder):
    iio.imwrite(class_folder / "stray.png", gray(1))
    with pytest.raises(DataError, match="stray.png beside class sub-folders"):
        load_image_folder(class_folder, resolution=4)


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="channels"):
        load_image_folder(tmp_path, channels=2)
    with pytest.raises(ValueError, match="test_fraction"):
        load_image_folder(tmp_path, test_fraction=1.0)
    with pytest.raises(ValueError, match="resolution"):
        load_image_folder(tmp_path, resolution=(0, 4))


def test_read_image_16_bit(tmp_path):
    iio.imwrite(tmp_path / "d.png", np.full((3, 4), 65535, np.uint16))
    image = read_image(tmp_path / "d.png", channels=3)
    assert image.shape == (3, 4, 3) and image.dtype == np.float32
    np.testing.assert_allclose(image, 1.0)
