"""``audit``: probes, per-token traces and the HTML report, in one library call the CLI makes."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from rewardlab import jsonout
from rewardlab.audit.probes import Probe, builtin_probes, run_probes
from rewardlab.audit.report import write_report
from rewardlab.audit.trace import can_trace, token_trace
from rewardlab.types import Conversation


@dataclass
class AuditResult:
    probes: list = field(default_factory=list)
    traces: list = field(default_factory=list)
    """``(location, prompt text, TokenTrace)`` triples."""
    trace_note: str | None = None

    def to_dict(self) -> dict:
        return {"probes": [p.to_dict() for p in self.probes],
                "traces": [{"id": w, **t.to_dict()} for w, _, t in self.traces],
                "trace_note": self.trace_note}


def _prompt_text(conv: Conversation) -> str:
    cut = len(conv)
    while cut > 0 and conv[cut - 1].get("role") == "assistant":
        cut -= 1
    return "\n".join(f"{m['role']}: {m['content']}" for m in conv[:cut])


def audit(scorer, probes: Sequence[Probe], convs: Sequence[tuple[str, Conversation]] = (),
          trace_limit: int = 8) -> AuditResult:
    """Run the probes and trace up to ``trace_limit`` conversations (default: a few probe responses)."""
    result = AuditResult(probes=run_probes(scorer, probes))
    if trace_limit <= 0:
        return result
    if not can_trace(scorer):
        result.trace_note = "this scorer gives no per-token trace (a judge, or an encoder model)"
        return result
    if not convs:
        demo = builtin_probes()
        convs = [(f"{name} probe {i}", [*x.prompt, *getattr(x, side)])
                 for name, side in (("length", "a"), ("sycophancy", "a"), ("sycophancy", "b"))
                 for i, x in enumerate(demo[name].pairs[:2])]
    picked = list(convs)[:trace_limit]
    traces = token_trace(scorer, [c for _, c in picked])
    result.traces = [(w, _prompt_text(c), t) for (w, c), t in zip(picked, traces, strict=True)]
    return result


def write_audit(result: AuditResult, out_html: str | Path, out_json: str | Path | None = None,
                images: Sequence[str] = (), title: str = "Reward model audit", meta: dict | None = None) -> Path:
    path = write_report(out_html, title, result.probes, [(p, t) for _, p, t in result.traces], images, meta)
    if out_json:
        Path(out_json).write_text(jsonout.dumps(result.to_dict(), indent=2) + "\n")
    return path
