"""The general-image side of molgen: data, training, sampling, evaluation (``molgen image ...``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from molgen.utils import lazy_exports

if TYPE_CHECKING:
    from molgen.image.data import ImageSet, ImageSplits, load_images, load_splits
    from molgen.image.training import ImageTrainingConfig, train_image_model

__all__ = [
    "ImageSet",
    "ImageSplits",
    "load_images",
    "load_splits",
    "ImageTrainingConfig",
    "train_image_model",
]

# Imported on first use, so that ``molgen image --help`` does not load torch.
__getattr__ = lazy_exports(
    __name__,
    {
        "molgen.image.data": ("ImageSet", "ImageSplits", "load_images", "load_splits"),
        "molgen.image.training": ("ImageTrainingConfig", "train_image_model"),
    },
)
