"""What every report shares (the leaderboard, its figures, the web page, the tuning table):
a model's name in a report and its registry entry, and numbers as text."""
from __future__ import annotations

import numpy as np

from switchbench import models
from switchbench.errors import SwitchbenchError


def registered(name: str) -> str:
    """A report's model name without the settings that tell apart its configurations
    (:func:`~switchbench.benchmark.leaderboard.setting_labels`).

    >>> registered("linear (n_blocks=4)"), registered("gated-linear")
    ('linear', 'gated-linear')
    """
    return name.split(" (", 1)[0]


def model_entry(model: str) -> models.ModelEntry | None:
    """The model's registry entry, or None where it does not load (a broken plug-in)."""
    try:
        return models.get(registered(model))
    except SwitchbenchError:
        return None


def is_privileged(model: str) -> bool:
    """Whether the model is told the task (its card's ``privileged``; shown with a † in reports)."""
    entry = model_entry(model)
    return bool(entry and entry.card.privileged)


def fmt(x, digits: int = 3) -> str:
    """A number as text: integers as integers, otherwise ``digits`` significant digits.

    >>> [fmt(v) for v in (1000.0, 7.9e4, 103.8, 0.06619, 4.957e-07, float("nan"), 0.0)]
    ['1000', '79000', '104', '0.0662', '4.96e-07', 'n/a', '0']
    """
    if x is None or not np.isfinite(x):
        return "n/a"
    if float(x).is_integer() and abs(x) < 1e9:
        return str(int(x))
    if 1e-3 <= abs(x) < 1e6:
        return np.format_float_positional(x, precision=digits, unique=False, fractional=False, trim="-")
    return f"{x:.{digits - 1}e}"
