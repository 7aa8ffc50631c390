"""Task losses shared by paradigms (rewards) and models (learning): one definition of each.

- ``"mse"``: 1/2 sum over outputs of the squared error, mean over the batch (and over
  unmasked time steps for sequences), as in the gated-network paper.
- ``"cross_entropy"``: mean cross-entropy over unmasked targets (``-100`` = masked).

>>> import torch
>>> task_loss(torch.ones(4, 3), torch.zeros(4, 3), "mse").item()
1.5
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

IGNORE = -100


def task_loss(pred: torch.Tensor, target: torch.Tensor, loss: str, mask: torch.Tensor | None = None) -> torch.Tensor:
    """The paradigm's task loss of ``pred`` against ``target`` (a scalar tensor)."""
    if loss == "mse":
        sq = 0.5 * (pred - target).square().sum(-1)
        if mask is None:
            return sq.mean()
        mask = mask.to(sq.dtype)
        return (sq * mask).sum() / mask.sum().clamp_min(1)
    if loss == "cross_entropy":
        return F.cross_entropy(pred.reshape(-1, pred.shape[-1]), target.reshape(-1), ignore_index=IGNORE)
    raise ValueError(f"unknown loss {loss!r}; valid: mse, cross_entropy")


#: fewer elements than this per seed: every reduction of ``task_loss`` runs serially (torch's
#: grain size for splitting a reduction between threads), so its seed-batched form sums in the same order
SERIAL_NUMEL = 32768


def task_losses(pred: torch.Tensor, target: torch.Tensor, loss: str) -> torch.Tensor:
    """``task_loss`` of each seed's ``pred[s]`` against ``target[s]``, shape (S,): bit for bit
    the S calls, in one batched computation where that is the same arithmetic (contiguous
    MSE batches below :data:`SERIAL_NUMEL` elements per seed), else in S calls.

    >>> p, y = torch.randn(3, 5, 2), torch.randn(3, 5, 2)
    >>> torch.equal(task_losses(p, y, "mse"), torch.stack([task_loss(p[s], y[s], "mse") for s in range(3)]))
    True
    """
    if (loss == "mse" and pred.shape == target.shape and pred.is_contiguous() and target.is_contiguous()
            and target[0].numel() < SERIAL_NUMEL):
        sq = 0.5 * (pred - target).square().sum(-1)
        return sq.reshape(len(sq), -1).mean(1)
    return torch.stack([task_loss(p, y, loss) for p, y in zip(pred, target)])


def class_entropy(labels: np.ndarray, n_classes: int) -> float:
    """Entropy (nats) of the class frequencies of ``labels``: the cross-entropy of the best
    constant predictor, the null loss of a classification task.

    >>> round(class_entropy(np.array([0, 1, 1, 1]), 3), 6)
    0.562335
    """
    p = np.bincount(labels, minlength=n_classes) / len(labels)
    p = p[p > 0]
    return float(-(p * np.log(p)).sum())
