"""L-BFGS evaluation reuse: the line search's last evaluation, returned again for the same point
(the optimisers and schedules themselves: nst.optimizers)."""

from __future__ import annotations

import torch


class ReusedEvaluation:
    """The last loss evaluation (point, gradient, terms, value), returned again for the same point."""

    def __init__(self) -> None:
        self.x: torch.Tensor | None = None
        self.grad: torch.Tensor | None = None
        self.terms: dict[str, torch.Tensor] = {}
        self.value = torch.zeros(())

    def store(self, x: torch.Tensor, terms: dict[str, torch.Tensor], value: torch.Tensor) -> None:
        assert x.grad is not None
        self.x, self.grad = x.detach().clone(), x.grad.detach().clone()
        self.terms, self.value = {k: v.detach() for k, v in terms.items()}, value

    def lookup(self, x: torch.Tensor) -> tuple[dict[str, torch.Tensor], torch.Tensor] | None:
        if self.x is None or self.grad is None or not torch.equal(self.x, x.detach()):
            return None
        x.grad = self.grad.clone()
        return self.terms, self.value
