"""Image data: embedded MNIST, IDX files (plain and gzipped), image folders, splits, bad input."""

from __future__ import annotations

import gzip
import struct

import numpy as np
import pytest
from PIL import Image

from molgen.errors import DataError
from molgen.image.data import load_images, load_splits, read_idx, read_image_folder


def _idx_bytes(array: np.ndarray) -> bytes:
    return bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape) + array.astype(np.uint8).tobytes()


def test_embedded_mnist_is_the_5k_balanced_digits():
    data = load_images("mnist5k")
    assert data.images.shape == (5000, 1, 28, 28) and data.images.dtype == np.uint8
    assert np.bincount(data.labels).tolist() == [500] * 10
    assert data.images.max() == 255 and data.images.min() == 0
    # MNIST digits are mostly background: about a fifth of the pixels carry ink.
    assert 0.1 < (data.images > 0).mean() < 0.3


def test_splits_are_fixed_stratified_and_disjoint():
    a, b = load_splits("mnist5k"), load_splits("mnist5k")
    assert len(a.train) == 4500 and len(a.test) == 500
    assert np.bincount(a.test.labels).tolist() == [50] * 10
    assert np.array_equal(a.test.images, b.test.images)
    train_rows = {row.tobytes() for row in a.train.images}
    assert not any(row.tobytes() in train_rows for row in a.test.images[:50])


@pytest.mark.parametrize("gz", [False, True])
def test_idx_round_trip_with_labels_found_by_name(tmp_path, gz):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (7, 5, 6), dtype=np.uint8)
    labels = np.array([0, 1, 2, 0, 1, 2, 2], dtype=np.uint8)
    suffix = ".gz" if gz else ""
    wrap = gzip.compress if gz else (lambda b: b)
    (tmp_path / f"train-images-idx3-ubyte{suffix}").write_bytes(wrap(_idx_bytes(images)))
    (tmp_path / f"train-labels-idx1-ubyte{suffix}").write_bytes(wrap(_idx_bytes(labels)))
    data = load_images(tmp_path / f"train-images-idx3-ubyte{suffix}")
    assert data.images.shape == (7, 1, 5, 6)
    assert np.array_equal(data.images[:, 0], images)
    assert data.labels.tolist() == labels.tolist() and data.num_classes == 3


def test_mnist_folder_keeps_its_own_train_test_split(tmp_path):
    for prefix, n in (("train", 6), ("t10k", 3)):
        (tmp_path / f"{prefix}-images-idx3-ubyte").write_bytes(_idx_bytes(np.full((n, 4, 4), n)))
        (tmp_path / f"{prefix}-labels-idx1-ubyte").write_bytes(_idx_bytes(np.arange(n) % 2))
    splits = load_splits(tmp_path)
    assert len(splits.train) == 6 and len(splits.test) == 3
    assert (splits.test.images == 3).all()


@pytest.mark.parametrize(
    "content, match",
    [
        (b"", "empty"),
        (b"\x00\x00\x99\x03abc", "bad magic"),
        (bytes([0, 0, 8, 3]) + struct.pack(">3I", 10, 28, 28) + b"\x00" * 100, "truncated"),
        (b"\x1f\x8b\x08garbage", "gzip"),
    ],
)
def test_bad_idx_files_give_one_line_errors(tmp_path, content, match):
    path = tmp_path / "x-images-idx3-ubyte"
    path.write_bytes(content)
    with pytest.raises(DataError, match=match) as info:
        read_idx(path)
    assert "\n" not in str(info.value)


def test_missing_source_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        load_images(tmp_path / "nope")


def test_image_folder_classes_channels_and_size_from_files(tmp_path):
    for name, value in (("cat", 40), ("dog", 200)):
        (tmp_path / name).mkdir()
        for i in range(3):
            Image.fromarray(np.full((5, 7, 3), value + i, dtype=np.uint8)).save(tmp_path / name / f"{i}.png")
    data = read_image_folder(tmp_path)
    assert data.images.shape == (6, 3, 5, 7)
    assert data.class_names == ["cat", "dog"] and data.labels.tolist() == [0, 0, 0, 1, 1, 1]
    assert data.images[4, 2, 0, 0] == 201


def test_flat_folder_is_unlabelled_and_bad_images_are_named(tmp_path):
    for i in range(2):
        Image.fromarray(np.full((6, 6), 9 * i, dtype=np.uint8)).save(tmp_path / f"{i}.png")
    data = read_image_folder(tmp_path)
    assert data.images.shape == (2, 1, 6, 6) and (data.labels == -1).all() and not data.labelled
    Image.fromarray(np.zeros((8, 8), dtype=np.uint8)).save(tmp_path / "big.png")
    with pytest.raises(DataError, match="one size"):
        read_image_folder(tmp_path)
    (tmp_path / "big.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match="big.png is not a readable image"):
        read_image_folder(tmp_path)


def test_empty_folder_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match="no images"):
        load_images(tmp_path)
