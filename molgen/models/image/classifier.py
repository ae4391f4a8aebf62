"""A small convolutional classifier: the reference network of the image metrics.

Its penultimate layer is the feature space of molgen's Frechet distance, the
same construction as the Frechet Inception Distance (Heusel et al., "GANs
Trained by a Two Time-Scale Update Rule Converge to a Local Nash
Equilibrium", NeurIPS 2017) with a classifier trained on the data set at hand
instead of Inception-v3, which is too large for a CPU and blind to what
distinguishes digits. Its numbers are therefore comparable only between
models evaluated with the same classifier, not with published FIDs. It also
labels generated images (accuracy of conditional samples, class coverage) and
is the "100 labels alone" baseline of the semi-supervised benchmark.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from molgen.config import ConfigMixin
from molgen.errors import ConfigError
from molgen.models.image.layers import ConvEncoder, check_shape

__all__ = ["ClassifierConfig", "ImageClassifier", "ClassifierOutput"]


@dataclass
class ClassifierConfig(ConfigMixin):
    image_shape: tuple[int, int, int] = (1, 28, 28)
    num_classes: int = 10
    hidden: int = 32
    feature_dim: int = 128
    dropout: float = 0.25

    def __post_init__(self) -> None:
        check_shape(tuple(self.image_shape), "ClassifierConfig")
        if self.num_classes < 2 or self.hidden < 1 or self.feature_dim < 1:
            raise ConfigError("a classifier needs >= 2 classes and positive sizes")


@dataclass
class ClassifierOutput:
    loss: torch.Tensor
    logits: torch.Tensor
    accuracy: torch.Tensor


class ImageClassifier(nn.Module):
    kind = "image_classifier"

    def __init__(self, config: ClassifierConfig) -> None:
        super().__init__()
        self.config = config
        self.body = ConvEncoder(config.image_shape, config.hidden, config.feature_dim, dropout=config.dropout)
        self.out = nn.Linear(config.feature_dim, config.num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> ClassifierOutput:
        logits = self.out(self.body(x))
        return ClassifierOutput(F.cross_entropy(logits, y), logits, (logits.argmax(1) == y).float().mean())

    @torch.no_grad()
    def predict(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.body(x)).argmax(1)
