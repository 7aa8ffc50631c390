"""The model zoo behind one small learner interface (see :mod:`switchbench.models.registry`);
:class:`TorchLearner` turns any ``torch.nn.Module`` into a learner."""
from switchbench.models.registry import (ENTRY_POINT_GROUP, Learner, ModelCard, ModelEntry, count_parameters, get,
                                         label, names, register)

__all__ = ["ENTRY_POINT_GROUP", "Learner", "ModelCard", "ModelEntry", "TorchLearner", "count_parameters", "get",
           "label", "names", "register"]


def __getattr__(name: str):
    if name == "TorchLearner":                  # imported on first use
        from switchbench.models.torch_learner import TorchLearner
        return TorchLearner
    raise AttributeError(f"module 'switchbench.models' has no attribute {name!r}")
