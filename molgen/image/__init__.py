"""The general-image side of molgen: data, training, sampling, evaluation (``molgen image ...``)."""

from __future__ import annotations

from molgen.image.data import ImageSet, ImageSplits, load_images, load_splits
from molgen.image.training import ImageTrainingConfig, train_image_model

__all__ = ["ImageSet", "ImageSplits", "load_images", "load_splits", "ImageTrainingConfig", "train_image_model"]
