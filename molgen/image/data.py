"""Image data: the embedded MNIST digits, IDX files and folders of images.

Every loader returns an :class:`ImageSet`: uint8 pixels ``[N, C, H, W]`` and
integer labels ``[N]`` (``-1`` where unlabelled). Size and channel count come
from the files; nothing downstream assumes 28x28 or greyscale.

Sources understood by :func:`load_images`:

- ``mnist5k`` — the 5,000 MNIST digits shipped in ``data/mnist_5k.npz``;
- an IDX image file (``*-images-idx3-ubyte``, optionally ``.gz``; MNIST and
  Fashion-MNIST use this format) whose labels file is found by name;
- a folder holding the four standard MNIST/Fashion-MNIST IDX files (their own
  train/test split is used);
- a folder of PNG/JPEG images, either flat (unlabelled) or with one
  sub-folder per class (the sub-folder names, sorted, become classes 0..K-1).

>>> data = load_images("mnist5k")
>>> data.images.shape, data.num_classes
((5000, 1, 28, 28), 10)
"""

from __future__ import annotations

import gzip
import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from molgen.errors import DataError
from molgen.pretrained import data_dir
from molgen.utils.io import load_npz_arrays

__all__ = ["ImageSet", "ImageSplits", "load_images", "load_splits", "read_idx", "read_image_folder", "EMBEDDED_MNIST"]

EMBEDDED_MNIST = data_dir() / "mnist_5k.npz"
_IDX_TYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
_IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif"}


@dataclass
class ImageSet:
    """Images as uint8 ``[N, C, H, W]`` with labels ``[N]`` (-1: unlabelled)."""

    images: np.ndarray
    labels: np.ndarray
    class_names: list[str] = field(default_factory=list)
    source: str = ""

    def __post_init__(self) -> None:
        if self.images.ndim != 4 or self.images.dtype != np.uint8:
            raise DataError(f"{self.source}: images must be uint8 [N, C, H, W], got {self.images.dtype} {self.images.shape}")
        if len(self.images) == 0:
            raise DataError(f"{self.source}: no images; check the path")
        if len(self.labels) != len(self.images):
            raise DataError(f"{self.source}: {len(self.images)} images but {len(self.labels)} labels")

    def __len__(self) -> int:
        return len(self.images)

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(int(x) for x in self.images.shape[1:])  # type: ignore[return-value]

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def labelled(self) -> bool:
        return bool(len(self.labels)) and bool((self.labels >= 0).all())

    def subset(self, index: np.ndarray) -> ImageSet:
        return ImageSet(self.images[index], self.labels[index], list(self.class_names), self.source)

    def floats(self) -> np.ndarray:
        """Pixels scaled to [0, 1] as float32."""
        return self.images.astype(np.float32) / 255.0


@dataclass
class ImageSplits:
    train: ImageSet
    test: ImageSet


def _open(path: Path) -> bytes:
    if not path.exists():
        raise DataError(f"{path} does not exist; check the path")
    if path.is_file() and path.stat().st_size == 0:
        raise DataError(f"{path} is empty")
    try:
        raw = path.read_bytes()
        return gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise DataError(f"{path} is not a readable (gzip) file: {exc}") from None


def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX array (the MNIST format: magic, dims, big-endian data), gzipped or not."""
    path = Path(path)
    raw = _open(path)
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_TYPES:
        raise DataError(f"{path} is not an IDX file (bad magic number); pass MNIST-format *-ubyte files")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if ndim == 0 or len(raw) < header:
        raise DataError(f"{path} is a truncated IDX file")
    dims = struct.unpack(f">{ndim}I", raw[4:header])
    dtype = np.dtype(_IDX_TYPES[raw[2]])
    expected = int(np.prod(dims)) * dtype.itemsize
    if len(raw) - header != expected:
        raise DataError(f"{path}: IDX header says {dims} ({expected} bytes) but the file holds {len(raw) - header}; it is truncated or corrupt")
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(dims)


def _idx_images(array: np.ndarray, path: Path) -> np.ndarray:
    if array.ndim == 3:
        array = array[:, None]
    elif array.ndim == 4:  # N, H, W, C
        array = array.transpose(0, 3, 1, 2)
    else:
        raise DataError(f"{path}: IDX images must have 3 or 4 dimensions, got shape {array.shape}")
    if array.dtype != np.uint8:
        raise DataError(f"{path}: IDX images must be unsigned bytes, got {array.dtype}")
    return np.ascontiguousarray(array)


def _labels_path(images: Path) -> Path | None:
    name = images.name
    for old, new in (("images-idx3", "labels-idx1"), ("images.idx3", "labels.idx1"), ("images", "labels")):
        if old in name:
            candidate = images.with_name(name.replace(old, new))
            for c in (candidate, candidate.with_name(candidate.name + ".gz"), candidate.with_name(candidate.name.removesuffix(".gz"))):
                if c.exists():
                    return c
    return None


def _read_idx_pair(images_path: Path) -> ImageSet:
    images = _idx_images(read_idx(images_path), images_path)
    labels_path = _labels_path(images_path)
    if labels_path is None:
        labels = np.full(len(images), -1, dtype=np.int64)
        names: list[str] = []
    else:
        labels = read_idx(labels_path).astype(np.int64).reshape(-1)
        if len(labels) != len(images):
            raise DataError(f"{images_path} has {len(images)} images but {labels_path} has {len(labels)} labels")
        names = [str(i) for i in range(int(labels.max()) + 1)]
    return ImageSet(images, labels, names, str(images_path))


def read_image_folder(folder: str | Path) -> ImageSet:
    """Images from a folder: flat (unlabelled) or one sub-folder per class. All must share one size."""
    from PIL import Image, UnidentifiedImageError

    folder = Path(folder)
    subdirs = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    groups = [(d.name, sorted(f for f in d.iterdir() if f.suffix.lower() in _IMAGE_SUFFIXES)) for d in subdirs]
    groups = [(name, files) for name, files in groups if files]
    if not groups:
        groups = [("", sorted(f for f in folder.iterdir() if f.suffix.lower() in _IMAGE_SUFFIXES))]
    if not groups[0][1]:
        raise DataError(f"{folder} holds no images (.png/.jpg/.bmp/.gif); check the folder")
    pixels, labels = [], []
    for label, (_, files) in enumerate(groups):
        for f in files:
            try:
                with Image.open(f) as img:
                    arr = np.asarray(img.convert("L" if img.mode in ("1", "L", "P", "I", "I;16", "LA") else "RGB"))
            except (UnidentifiedImageError, OSError) as exc:
                raise DataError(f"{f} is not a readable image ({exc.__class__.__name__}); remove or fix it") from None
            arr = arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)
            if pixels and arr.shape != pixels[0].shape:
                raise DataError(f"{f} is {arr.shape[2]}x{arr.shape[1]}x{arr.shape[0]} but earlier images are "
                                f"{pixels[0].shape[2]}x{pixels[0].shape[1]}x{pixels[0].shape[0]}; resize them to one size")
            pixels.append(arr)
            labels.append(label if groups[0][0] else -1)
    names = [name for name, _ in groups] if groups[0][0] else []
    return ImageSet(np.stack(pixels).astype(np.uint8), np.array(labels, dtype=np.int64), names, str(folder))


def _mnist_folder(folder: Path) -> ImageSplits | None:
    def find(stem: str) -> Path | None:
        for name in (stem, stem + ".gz"):
            for sep in ("-", "."):
                p = folder / name.replace("-idx", f"{sep}idx")
                if p.exists():
                    return p
        return None

    train, test = find("train-images-idx3-ubyte"), find("t10k-images-idx3-ubyte")
    if train is None or test is None:
        return None
    return ImageSplits(_read_idx_pair(train), _read_idx_pair(test))


def _embedded() -> ImageSet:
    if not EMBEDDED_MNIST.exists():
        raise DataError(f"the embedded digits {EMBEDDED_MNIST} are missing; reinstall molgen or pass --data PATH")
    with np.load(EMBEDDED_MNIST) as z:
        return ImageSet(z["images"], z["labels"].astype(np.int64), [str(i) for i in range(10)], "mnist5k")


def load_images(source: str | Path) -> ImageSet:
    """Load all images of a source (see the module docstring); for folders of IDX files, train and test together."""
    splits = _load(source)
    if isinstance(splits, ImageSet):
        return splits
    both = np.concatenate([splits.train.images, splits.test.images])
    return ImageSet(both, np.concatenate([splits.train.labels, splits.test.labels]), splits.train.class_names, str(source))


def _load(source: str | Path) -> ImageSet | ImageSplits:
    if str(source) in ("mnist5k", "mnist_5k", "embedded"):
        return _embedded()
    path = Path(source)
    if not path.exists():
        raise DataError(f"{path} does not exist; pass mnist5k, an IDX images file, or a folder of images")
    if path.is_dir():
        return _mnist_folder(path) or read_image_folder(path)
    if path.suffix == ".npz":
        what = "an npz with 'images' and 'labels' arrays"
        z = load_npz_arrays(path, ("images", "labels"), what, "save one with numpy.savez(path, images=..., labels=...)")
        try:
            return ImageSet(z["images"], z["labels"].astype(np.int64), [str(i) for i in range(int(z["labels"].max()) + 1)], str(path))
        except (TypeError, ValueError) as exc:
            raise DataError(f"{path} is not {what} ({exc})") from None
    return _read_idx_pair(path)


def _stratified_test_index(labels: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if (labels < 0).any():
        n = max(1, int(round(len(labels) * fraction)))
        return np.sort(rng.permutation(len(labels))[:n])
    picks = []
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        picks.append(rng.permutation(members)[: max(1, int(round(len(members) * fraction)))])
    return np.sort(np.concatenate(picks))


def load_splits(source: str | Path, test_fraction: float = 0.1, seed: int = 0) -> ImageSplits:
    """Train/test splits: the source's own (MNIST IDX folders) or a fixed class-stratified one.

    The split seed is fixed independently of the training seed so that every
    model trained on a source is evaluated on the same test images.
    """
    loaded = _load(source)
    if isinstance(loaded, ImageSplits):
        return loaded
    if len(loaded) < 2:
        raise DataError(f"{source}: need at least 2 images to split into train and test")
    test_index = _stratified_test_index(loaded.labels, test_fraction, seed)
    mask = np.zeros(len(loaded), dtype=bool)
    mask[test_index] = True
    return ImageSplits(loaded.subset(np.flatnonzero(~mask)), loaded.subset(test_index))
