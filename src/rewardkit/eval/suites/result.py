"""The result every benchmark suite returns: per-subset accuracies, section scores, the overall figure."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass(kw_only=True)
class SuiteResult:
    """One suite's figures; accuracies are fractions in [0, 1].

    ``subsets`` maps a subset name to ``{"accuracy", "n"}``; ``sections`` maps a section name (RewardBench's
    Chat, Chat Hard, ...; RewardBench 2's six subsets; RM-Bench's easy / normal / hard) to its score.
    ``partial_sections`` names the sections computed from only some of their subsets; ``missing_subsets`` the
    official subsets that the data did not hold. ``details`` carries suite-specific figures (RM-Bench's 3x3
    matrices, the Ties terms, accuracy by length category).
    """

    suite: str
    subsets: dict[str, dict]
    sections: dict[str, float]
    overall: float | None
    missing_subsets: list[str] = field(default_factory=list)
    partial_sections: list[str] = field(default_factory=list)
    details: dict = field(default_factory=dict)
    rendering: str = ""

    def to_dict(self) -> dict:
        return asdict(self)
