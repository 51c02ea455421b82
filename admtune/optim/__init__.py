"""AdM core: the two-plane coefficient (:mod:`admtune.optim.twoplane`), AdMSGD and AdMAdamW with
their functional forms (:func:`adm_sgd`, :func:`adm_adamw`)."""

from . import twoplane
from .adamw import AdMAdamW, adm_adamw
from .sgd import AdMSGD, adm_sgd

__all__ = ["AdMAdamW", "AdMSGD", "adm_adamw", "adm_sgd", "twoplane"]
