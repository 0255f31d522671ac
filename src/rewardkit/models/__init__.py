"""Backbones (any Hugging Face model, plus built-in offline ones), pooling, heads, save and load."""

from . import ensemble  # noqa: E402,F401  (registers the `ensemble` head in head_kinds.HEADS on any models import)
