"""switchbench: a benchmark for task switching in neural networks.

Paradigms live in :mod:`switchbench.paradigms` (Gymnasium environments, registered on
import), models in :mod:`switchbench.models` (a registry of learner factories), and the
runner, metrics, reproductions and command line in :mod:`switchbench.benchmark`; data that
paradigms and models share (the digit split, neurogym task sets) in :mod:`switchbench.data`.

>>> import switchbench
>>> res = switchbench.run("blocked-linear", "gated-linear", seed=0, n_blocks=2, block_size=20, cache=False, progress=False)
>>> sorted(res.R0.shape)
[2, 2]
"""
from switchbench.errors import SwitchbenchError
from switchbench.version import __version__

from switchbench import paradigms  # noqa: E402  (registers the Gymnasium ids on import)


def run(paradigm: str, model: str, seed: int = 0, **overrides):
    """Run one model on one paradigm with one seed (a ``RunResult``), or with ``seeds=[...]``
    every seed at once through one run loop (a list of ``RunResult``, one per seed); see
    :func:`switchbench.benchmark.runner.run`."""
    from switchbench.benchmark.runner import run as _run

    return _run(paradigm, model, seed=seed, **overrides)


__all__ = ["SwitchbenchError", "run", "paradigms", "__version__"]
