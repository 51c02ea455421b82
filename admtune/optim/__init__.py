"""AdM core: the two-plane coefficient (:mod:`admtune.optim.twoplane`), AdMSGD and AdMAdamW."""

from . import twoplane
from .adamw import AdMAdamW
from .sgd import AdMSGD

__all__ = ["AdMAdamW", "AdMSGD", "twoplane"]
