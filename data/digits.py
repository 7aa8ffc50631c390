"""scikit-learn's bundled 8x8 digit images, split once and shared by paradigms and models.

``load_digits`` ships inside scikit-learn (1797 images, 10 classes, ~180 each): nothing is
downloaded. Pixels (0..16) are scaled to 0..1 and flattened to 64 features (float32).

The split is stratified by digit and seeded (``split_seed``): the paradigms' training
stream comes from the train part, their held-out ``eval_batch`` from the test part, and the
frozen feature network of ``gated-mlp`` is pretrained on the train part only. Paradigms
and models both call :func:`digit_split` with the same defaults, so they agree on it
without importing each other.

Labelings of a digit ``y`` (0..9), one function per task name (``LABELINGS``):

- ``identity``: ``y`` (10 classes);
- ``relabel``: ``y // 2 + 5 * (y % 2)`` (10 classes; a permutation of the identity);
- ``parity``: ``y % 2`` (0 = even, 1 = odd);
- ``magnitude``: ``y >= 5`` (0 = small, 1 = large).

Parity and magnitude share the response keys 0/1, so a digit is *congruent* when both
tasks give the same response (0, 2, 4 -> 0; 5, 7, 9 -> 1) and incongruent otherwise
(1, 3, 6, 8).

>>> d = digit_split()
>>> d.x_train.shape, d.x_test.shape, d.x_train.dtype.name
((1257, 64), (540, 64), 'float32')
>>> LABELINGS["relabel"](np.arange(10)).tolist()
[0, 5, 1, 6, 2, 7, 3, 8, 4, 9]
>>> congruent(np.arange(10)).astype(int).tolist()
[1, 0, 1, 0, 1, 1, 0, 1, 0, 1]
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from switchbench.errors import SwitchbenchError

N_PIXELS = 64
DEFAULT_SPLIT_SEED = 0
DEFAULT_TEST_FRACTION = 0.3

#: task name -> (labeling of digit classes, number of classes)
LABELINGS = {
    "identity": lambda y: np.asarray(y, dtype=np.int64),
    "relabel": lambda y: np.asarray(y // 2 + 5 * (y % 2), dtype=np.int64),
    "parity": lambda y: np.asarray(y % 2, dtype=np.int64),
    "magnitude": lambda y: np.asarray(y >= 5, dtype=np.int64),
}
N_CLASSES = {"identity": 10, "relabel": 10, "parity": 2, "magnitude": 2}


def congruent(digit: np.ndarray) -> np.ndarray:
    """True where parity and magnitude give the same response (both 0 or both 1)."""
    return LABELINGS["parity"](digit) == LABELINGS["magnitude"](digit)


@dataclass(frozen=True)
class DigitSplit:
    x_train: np.ndarray     # (n_train, 64) float32 in 0..1
    y_train: np.ndarray     # (n_train,) int64 digit 0..9
    x_test: np.ndarray
    y_test: np.ndarray
    idx_train: np.ndarray   # indices into load_digits() of each part (disjoint)
    idx_test: np.ndarray


@lru_cache(maxsize=8)
def digit_split(split_seed: int = DEFAULT_SPLIT_SEED, test_fraction: float = DEFAULT_TEST_FRACTION) -> DigitSplit:
    """The seeded, stratified train/test split of the bundled digits (arrays are read-only)."""
    if not 0.05 <= float(test_fraction) <= 0.95:
        raise SwitchbenchError(f"test_fraction must lie in 0.05..0.95, got {test_fraction!r}")
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    data = load_digits()
    x = (data.data / 16.0).astype(np.float32)
    y = data.target.astype(np.int64)
    idx_train, idx_test = train_test_split(np.arange(len(y)), test_size=float(test_fraction), stratify=y,
                                           random_state=int(split_seed))
    idx_train, idx_test = np.sort(idx_train), np.sort(idx_test)
    parts = [x[idx_train], y[idx_train], x[idx_test], y[idx_test], idx_train, idx_test]
    for a in parts:
        a.setflags(write=False)
    return DigitSplit(*parts)
