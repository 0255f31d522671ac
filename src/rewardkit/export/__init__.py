"""Export a trained reward model as a directory that transformers, TRL and OpenRLHF load unchanged.

>>> from rewardkit.export import export_model
>>> export_model("runs/quickstart", "exported/quickstart", dtype="bfloat16")   # doctest: +SKIP
"""

from .exporter import ExportError, ExportResult, export_model, load_source, transformers_compatible
from .tokenizer import score_token_tokenizer

__all__ = ["ExportError", "ExportResult", "export_model", "load_source", "score_token_tokenizer",
           "transformers_compatible"]
