"""The model zoo behind one small learner interface (see :mod:`switchbench.models.registry`)."""
from switchbench.models.registry import (ENTRY_POINT_GROUP, Learner, ModelCard, ModelEntry, count_parameters, get,
                                         label, names, register)

__all__ = ["ENTRY_POINT_GROUP", "Learner", "ModelCard", "ModelEntry", "count_parameters", "get", "label", "names", "register"]
