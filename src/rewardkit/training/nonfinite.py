"""What to do when a loss or a gradient is NaN or infinite: stop with a clear error, or skip and count.

One bad batch (an overflowing margin, a corrupt example, a learning-rate spike) must not silently poison the
weights: a single NaN gradient turns every weight it touches into NaN at the next optimizer step, and from
then on every score. ``error`` stops the run naming the step and the batch's examples; ``skip`` drops that
micro-batch's gradient, counts it, and goes on (the optimizer step still happens, with the gradients of
the other micro-batches of the step, or none).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import torch

log = logging.getLogger(__name__)


@dataclass
class NonFiniteGuard:
    policy: str
    """`error` or `skip` (``train.on_nonfinite``)."""
    skipped: int = 0
    first: list[str] = field(default_factory=list)
    max_examples: int = 10

    def ok(self, value: torch.Tensor, what: str, step: int, micro_batch: int, sources: list[str],
           accelerator=None) -> bool:
        """True when ``value`` is finite (on every process); False when it is not and the policy is ``skip``.

        Under ``error`` raises :class:`FloatingPointError` naming the step, the micro-batch and its examples.
        """
        bad = ~torch.isfinite(value.detach()).all()
        if accelerator is not None and accelerator.num_processes > 1:
            # every process must take the same branch, or the next gradient all-reduce waits forever
            bad = accelerator.reduce(bad.to(torch.int32).reshape(1), reduction="sum")[0] > 0
        if not bool(bad):
            return True
        where = (f"non-finite {what} {value.float().flatten()[0].item() if value.numel() == 1 else ''} at step "
                 f"{step}, micro-batch {micro_batch}; examples: {', '.join(sources)}").replace("  ", " ")
        if self.policy != "skip":
            raise FloatingPointError(f"{where}. Lower train.lr, check those examples, or set "
                                     "train.on_nonfinite: skip to drop such batches")
        self.skipped += 1
        if len(self.first) < self.max_examples:
            self.first.append(where)
        log.warning("skipped: %s", where)
        return False

    def state(self) -> dict:
        return {"skipped_batches": self.skipped, "first": list(self.first)}

    @classmethod
    def from_state(cls, policy: str, state: dict | None) -> NonFiniteGuard:
        state = state or {}
        return cls(policy=policy, skipped=int(state.get("skipped_batches", 0)), first=list(state.get("first", [])))
