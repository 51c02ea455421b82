"""A third optimizer family, as a user would add one: undamped heavy ball (torch's SGD with
``momentum = β``, ``dampening = 0``) against AdM-SGD. Importing this module registers it."""

from __future__ import annotations

import torch

from admtune import families
from admtune.optim import AdMSGD

CALLS = {"baseline": 0, "adm": 0}  # how often the study built each side (the test reads it)


def heavy_ball(params, beta: float, lr: float, wd: float) -> torch.optim.Optimizer:
    CALLS["baseline"] += 1
    return torch.optim.SGD(params, lr=lr, momentum=beta, weight_decay=wd)


def adm(params, lr: float, wd: float) -> torch.optim.Optimizer:
    CALLS["adm"] += 1
    return AdMSGD(params, lr=lr, weight_decay=wd)


FAMILY = families.Family(name="heavyball", display="Heavy ball", baseline=heavy_ball, adm=adm,
                         beta_param="momentum")
families.register(FAMILY, replace=True)
