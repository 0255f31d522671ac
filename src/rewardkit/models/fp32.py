"""The head, the reward read-out and the losses in fp32, also under bf16 autocast.

Autocast runs every linear layer in bf16, the reward head too. bf16 keeps 8 significant bits: two rewards near
8.0 are 2^-5 = 0.03 apart at best, so a head in bf16 rounds a margin of 0.01 between chosen and rejected to 0
or to 0.03, and the Bradley-Terry gradient of a nearly tied pair is noise (tests/unit/test_bf16.py shows it).
The backbone is where the FLOPs are; the head is one dot product per sequence, so fp32 there costs nothing.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch
from torch import nn


def _no_autocast(device_type: str):
    return torch.autocast(device_type, enabled=False)


def fp32_readout(fn: Callable) -> Callable:
    """Decorator: run ``fn`` with autocast off and its floating tensor arguments in fp32."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        tensors = [a for a in (*args, *kwargs.values()) if isinstance(a, torch.Tensor)]
        device = tensors[0].device.type if tensors else "cpu"
        cast = [a.float() if isinstance(a, torch.Tensor) and a.is_floating_point() else a for a in args]
        kw = {k: v.float() if isinstance(v, torch.Tensor) and v.is_floating_point() else v for k, v in kwargs.items()}
        with _no_autocast(device):
            return fn(*cast, **kw)

    return wrapper


class FP32Head:
    """Calls ``module`` (a head: ``nn.Linear``, a LoRA ``modules_to_save`` wrapper ...) in fp32; not a module
    itself, so parameters, state dicts and saved files stay the module's own."""

    def __init__(self, module: nn.Module):
        self.module = module

    def __getattr__(self, name: str):  # .weight, .bias, .parameters() ...: the module's own
        if name == "module":
            raise AttributeError(name)
        return getattr(self.module, name)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        with _no_autocast(x.device.type):
            return self.module(x.float())


@contextmanager
def fp32_forward(*modules: nn.Module | None) -> Iterator[None]:
    """Within the block, ``modules`` (e.g. an encoder's pooler and classifier, called by transformers itself)
    run in fp32 whatever the autocast around them."""
    patched = []
    for module in modules:
        if module is None:
            continue
        head = FP32Head(module.__class__.forward.__get__(module))
        module.forward = head  # instance attribute: nn.Module.__call__ finds it first
        patched.append(module)
    try:
        yield
    finally:
        for module in patched:
            del module.forward
