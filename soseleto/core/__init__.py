"""The core: one epoch loop, the SOSELETO step (Algorithm 1), its alignment by forward mode and by
ghost products, models, checkpoints and evaluation."""

from soseleto.core.loop import EpochStats, Labeled, RunResult, train
from soseleto.core.soseleto import Soseleto

__all__ = ["EpochStats", "Labeled", "RunResult", "Soseleto", "train"]
