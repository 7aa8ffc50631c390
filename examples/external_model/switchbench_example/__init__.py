"""An example plug-in model: recursive least squares with a forgetting factor.

A linear readout ``y = W x`` fitted online by exponentially weighted least squares: after
each batch, ``P <- (lam P + X^T X)`` statistics are updated and ``W`` solves the ridge
problem exactly. ``forget`` (0 < forget <= 1) discounts old batches, so the model tracks a
switched task within a few batches when ``forget`` is small.
"""
import torch

from switchbench.models import register
from switchbench.losses import task_loss


class RLS:
    def __init__(self, d_in, d_out, forget, ridge):
        self.xx = ridge * torch.eye(d_in, dtype=torch.float64)
        self.xy = torch.zeros(d_in, d_out, dtype=torch.float64)
        self.W = torch.zeros(d_out, d_in, dtype=torch.float64)
        self.forget, self.ridge = forget, ridge

    def parameters(self):
        return [self.W]

    def predict(self, x):
        return (x.double() @ self.W.T).float()

    def learn(self, x, y):
        loss = float(task_loss(self.predict(x), y, "mse"))
        x, y = x.double(), y.double()
        eye = torch.eye(x.shape[1], dtype=torch.float64)
        self.xx = self.forget * self.xx + x.T @ x / len(x) + (1 - self.forget) * self.ridge * eye
        self.xy = self.forget * self.xy + x.T @ y / len(x)
        self.W = torch.linalg.solve(self.xx, self.xy).T
        return loss


@register("example-rls", description="Example plug-in: recursive least squares with forgetting",
          citation="Haykin (2002), Adaptive Filter Theory, ch. 9", tuning="forget chosen by hand, not tuned")
def make_rls(spec, seed, forget=0.9, ridge=1e-3):
    """Recursive least squares with a forgetting factor (no gates, no task knowledge)."""
    return RLS(spec.input_size, spec.output_size, forget, ridge)
