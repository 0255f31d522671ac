"""What `rewardkit serve --engine vllm` holds itself: the tokenizer, the rendering settings and the serving
manifest of an export, and no model weights (vLLM holds the only copy of the model).

The server validates, renders and tokenizes requests exactly as with its own engine (:func:`~rewardkit.scoring.
text_encoders`, the construction :class:`~rewardkit.scoring.Scorer` uses), sends token ids to vLLM and turns the
head's raw outputs into the reward with the card's formula; for a multi-attribute head the weights come from the
manifest (``rewardkit.json`` -> ``export.serving.attribute_weights``), learned ones included.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from ..data.formats import Text
from ..data.render import Renderer
from ..data.tokenize import Encoded, SequenceEncoder
from ..models.reward_model import META_FILE, ModelMeta
from ..scoring import default_max_tokens, normalized, text_encoders


class FrontEndError(ValueError):
    """The directory is not an export `serve --engine vllm` scores like rewardkit; the CLI prints it."""


@dataclass
class FrontEnd:
    """The parts of a :class:`~rewardkit.scoring.Scorer` the server uses, without the model."""

    tokenizer: object
    meta: ModelMeta
    renderer: Renderer
    encoder: SequenceEncoder
    serving: dict
    """The export's serving manifest (export/manifest.py)."""
    max_tokens: int = field(default_factory=lambda: default_max_tokens("cpu"))
    """Not used by vLLM (it forms its own batches); the server's configuration reads it."""
    is_ensemble: bool = False

    @classmethod
    def from_export(cls, directory: str | Path) -> FrontEnd:
        from ..models.backbones import load_tokenizer

        directory = Path(directory)
        meta_file = directory / META_FILE
        if not meta_file.exists():
            raise FrontEndError(f"{meta_file}: missing; --engine vllm serves a `rewardkit export` directory")
        serving = json.loads(meta_file.read_text(encoding="utf-8")).get("export", {}).get("serving")
        if not serving:
            raise FrontEndError(f"{meta_file}: no export.serving manifest; --engine vllm serves a `rewardkit "
                                "export` directory (export the run or model first)")
        meta = ModelMeta.load(directory)
        check_servable(meta, serving, meta_file)
        tokenizer = load_tokenizer(str(directory))
        renderer, encoder = text_encoders(tokenizer, meta)
        return cls(tokenizer=tokenizer, meta=meta, renderer=renderer, encoder=encoder, serving=serving)

    @property
    def is_pairwise_judge(self) -> bool:
        """Always False: judges are refused before vLLM starts (:func:`check_servable`)."""
        return False

    @property
    def attribute_weights(self) -> list[float] | None:
        return self.serving.get("attribute_weights")

    def encode(self, prompt: Text, response: Text) -> Encoded:
        return self.encoder.encode(self.renderer.render(prompt, response))

    def normalize(self, rewards: list[float]) -> list[float]:
        return normalized(rewards, self.meta)


def check_servable(meta: ModelMeta, serving: dict, where: Path) -> None:
    """Heads whose reward the vLLM engine path does not compute are refused before vLLM starts."""
    vllm = serving.get("engines", {}).get("vllm", {})
    if not vllm.get("supported"):
        raise FrontEndError(f"{where}: vLLM cannot compute this model's reward ({vllm.get('reason', 'no reason')}); "
                            "serve it with --engine rewardkit")
    unsupported = {"judge": "an LM-head judge (vLLM's from-2-way conversion; serve it with `vllm serve` as the "
                            "card says)",
                   "step": "a process reward model (per-step rewards)",
                   "ensemble": "an ensemble (K rewards and their aggregates per request)"}
    if meta.head in unsupported:
        raise FrontEndError(f"{where}: --engine vllm does not serve {unsupported[meta.head]}; use --engine rewardkit")
