"""What `sample --explain` reports: which experts each sample used at each step, with weights (pure)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field


@dataclass(frozen=True)
class SampleRouting:
    """One sample at one step: the experts evaluated for it, their weights, and the router's probabilities."""

    experts: list[int]
    weights: list[float]
    probs: list[float] | None  # None when there is no router (a single expert)


@dataclass(frozen=True)
class StepRouting:
    step: int
    t: float
    samples: list[SampleRouting]


@dataclass
class ExplainLog:
    """The routing decisions of one `sample()` call, in the order the samples were generated."""

    routing: str
    expert_ids: list[int]
    prompts: list[str]  # one entry per generated sample (prompt-major, n per prompt)
    steps: list[StepRouting] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1)

    def usage(self) -> list[dict[int, tuple[int, float]]]:
        """Per sample: expert id -> (steps where it was used, mean weight over those steps)."""
        out: list[dict[int, tuple[int, float]]] = []
        for i in range(len(self.prompts)):
            counts: dict[int, int] = {}
            sums: dict[int, float] = {}
            for step in self.steps:
                s = step.samples[i]
                for e, w in zip(s.experts, s.weights, strict=True):
                    counts[e] = counts.get(e, 0) + 1
                    sums[e] = sums.get(e, 0.0) + w
            out.append({e: (counts[e], sums[e] / counts[e]) for e in sorted(counts)})
        return out

    def summary(self) -> str:
        """Human-readable lines: per sample, each expert's share of steps and mean weight."""
        lines = [f"routing {self.routing}, experts {self.expert_ids}, {len(self.steps)} steps"]
        for i, (prompt, used) in enumerate(zip(self.prompts, self.usage(), strict=True)):
            parts = [f"expert {e}: {n} steps, mean weight {w:.2f}" for e, (n, w) in used.items()]
            lines.append(f"  sample {i} {prompt!r}: " + "; ".join(parts))
        return "\n".join(lines)
