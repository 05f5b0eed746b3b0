"""Judges behind the Scorer interface: zero-shot LLM-as-a-judge, GenRM and CoT-GenRM.

One class, two ways to read a judgement of the ordered pair (A, B):

- ``indicator`` (GenRM, zero-shot judge): P(A ≻ B) from the next-token probabilities of the two
  indicator tokens, normalised over the two; no sampling.
- ``cot`` (CoT-GenRM, STaR models): k sampled rationales, each parsed to a verdict; P(A ≻ B) is the
  share of parsed verdicts for A (0.5 when none parses). Unparseable samples are counted by reason.

Position bias: by default every pair is judged in both orders, (a, b) and (b, a), and ``compare``
returns the mean of P(a ≻ b) read from each. :meth:`JudgeScorer.compare_detailed` also gives the
per-order probabilities and whether the verdict survives the swap (order consistency).

A trained judge directory is a plain causal-LM directory plus ``rewardlab_judge.json`` (this module's
:func:`write_judge_manifest`), which ``load_scorer`` and ``rewardlab eval --model`` recognise. An
untrained instruct model becomes a zero-shot judge with ``rewardlab eval --model smollm2 --judge indicator``.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from rewardlab import jsonout
from rewardlab.models.base import BaseScorer
from rewardlab.models.judge import (
    JudgePrompt,
    indicator_probs,
    indicator_token_ids,
    judge_prompt,
    judge_prompt_ids,
    next_token_logits,
    parse_verdict,
)
from rewardlab.types import Conversation

MANIFEST = "rewardlab_judge.json"
METHODS = ("indicator", "cot")


@dataclass
class JudgeSettings:
    """How a judge judges; stored in ``rewardlab_judge.json`` and overridable by a ``--judge`` spec."""

    method: str = "indicator"
    """``indicator`` (next-token probabilities of the two indicators) or ``cot`` (sampled rationales)."""
    kind: str = "llm_judge"
    """What the model is, for reports: ``llm_judge`` (untrained), ``genrm``, ``cot_genrm``, ``star_*``."""
    prompt: str | dict = "default"
    """Judge prompt format: a name (``default``: 1/2, ``ab``: A/B), a YAML/JSON file, or its fields."""
    k: int = 8
    """``cot``: rationales sampled per order of a pair."""
    temperature: float = 0.7
    """``cot``: sampling temperature (0: greedy, then the k samples agree)."""
    max_new_tokens: int = 128
    """``cot``: longest rationale, in tokens."""
    both_orders: bool = True
    """Judge (a, b) and (b, a) and average: removes position bias, measures order consistency."""
    backend: str = "auto"
    """``cot``: generation backend, ``transformers``, ``vllm`` or ``auto`` (vLLM when installed + GPU)."""
    batch_size: int = 8
    """Judge prompts per forward pass / ``generate`` call."""
    seed: int = 0
    """Sampling seed (the same inputs give the same votes)."""

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"judge method must be one of {', '.join(METHODS)}, got {self.method!r}")
        if self.k < 1 or self.max_new_tokens < 1 or self.batch_size < 1:
            raise ValueError("judge k, max_new_tokens and batch_size must be >= 1")
        if self.temperature < 0:
            raise ValueError(f"judge temperature must be >= 0, got {self.temperature}")


@dataclass
class JudgeResult:
    """Everything a judge says about n pairs; ``prob`` is what ``compare`` returns."""

    prob: torch.Tensor
    """P(a ≻ b), ``(n,)``, averaged over the orders judged."""
    prob_forward: torch.Tensor
    """P(a ≻ b) read from the order (a, b), ``(n,)``."""
    prob_swapped: torch.Tensor | None
    """P(a ≻ b) read from the order (b, a), ``(n,)``; ``None`` when only one order is judged."""
    reasons: Counter = field(default_factory=Counter)
    """``cot``: how many samples the parser read by each path (``marker``, ..., ``no_verdict``)."""

    @property
    def consistent(self) -> torch.Tensor | None:
        """``(n,)`` bool: both orders prefer the same response (a tie in either order is not consistent)."""
        if self.prob_swapped is None:
            return None
        f, s = self.prob_forward - 0.5, self.prob_swapped - 0.5
        return (f * s) > 0

    @property
    def order_consistency(self) -> float | None:
        c = self.consistent
        return float(c.float().mean()) if c is not None and c.numel() else None

    @property
    def unparseable(self) -> int:
        from rewardlab.models.judge import UNPARSEABLE_REASONS

        return sum(self.reasons[r] for r in UNPARSEABLE_REASONS)


class JudgeScorer(BaseScorer):
    """A pairwise LLM judge as a :class:`rewardlab.types.Scorer`: ``compare`` is native, ``score`` is not."""

    is_generative = True
    can_compare_orders = True

    def __init__(self, model, tokenizer, settings: JudgeSettings | None = None, max_length: int | None = None,
                 path: str | None = None, backend=None) -> None:
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.settings = settings or JudgeSettings()
        self.prompt: JudgePrompt = judge_prompt(self.settings.prompt)
        self.max_length = max_length
        self.path = path
        self._backend = backend
        pad = tokenizer.pad_token_id
        self.pad_id = pad if pad is not None else (tokenizer.eos_token_id or 0)
        if self.settings.method == "indicator":
            self.indicator_ids = indicator_token_ids(tokenizer, self.prompt)

    @classmethod
    def load(cls, path: str | Path, dtype: str = "float32", trust: bool = False, max_length: int | None = None,
             device: str | torch.device | None = None, **overrides) -> JudgeScorer:
        """A judge from a directory with ``rewardlab_judge.json`` (its settings, then ``overrides``), or
        from any causal LM (alias, directory or hub id) with ``overrides`` alone (a zero-shot judge).
        ``device``: where it runs (default: the GPU when there is one, else the CPU)."""
        from rewardlab.models.lm import load_causal_lm
        from rewardlab.models.scorer import resolve_device
        from rewardlab.precision import resolve_dtype

        raw = read_judge_manifest(path) if is_judge_dir(path) else {}
        raw.update({k: v for k, v in overrides.items() if v is not None})
        settings = JudgeSettings(**raw)  # bad settings fail before the model loads
        judge_prompt(settings.prompt)
        device = resolve_device(device)
        model, tok = load_causal_lm(path, resolve_dtype(dtype, device), trust)
        return cls(model.to(device), tok, settings, max_length=max_length, path=str(path))

    @property
    def dtype(self) -> torch.dtype:
        """The dtype the judge computes in (``auto`` resolved when it loaded)."""
        return next(self.model.parameters()).dtype

    @property
    def backend(self):
        if self._backend is None:
            from rewardlab.assets import resolve_model_path
            from rewardlab.models.generation import make_backend

            path = resolve_model_path(self.path) if self.path else None
            self._backend = make_backend(self.settings.backend, self.model, self.tokenizer, path,
                                         batch_size=self.settings.batch_size)
        return self._backend

    def prompt_ids(self, prompt: Conversation, a: Conversation, b: Conversation, hint: int | None = None) -> list[int]:
        """Token ids of the judge prompt for the ordered pair (a, b), cut from the left to ``max_length``
        (the instruction at the end is kept)."""
        msgs = self.prompt.messages(prompt, a, b, cot=self.settings.method == "cot", hint=hint)
        ids = judge_prompt_ids(self.tokenizer, msgs)
        limit = self.max_length
        if self.settings.method == "cot" and limit:
            limit = max(limit - self.settings.max_new_tokens, 8)
        return ids[-limit:] if limit and len(ids) > limit else ids

    def order_probs(self, prompts: Sequence[Conversation], first: Sequence[Conversation],
                    second: Sequence[Conversation]) -> tuple[torch.Tensor, Counter]:
        """P(first ≻ second) for each ordered pair as presented, ``(n,)``, and the parser's counts."""
        seqs = [self.prompt_ids(p, a, b) for p, a, b in zip(prompts, first, second, strict=True)]
        if self.settings.method == "indicator":
            logits = next_token_logits(self.model, seqs, self.pad_id, self.settings.batch_size)
            return indicator_probs(logits, self.indicator_ids), Counter()
        s = self.settings
        texts = self.backend.sample(seqs, s.k, s.temperature, s.max_new_tokens, s.seed)
        return votes_to_probs([[parse_verdict(t, self.prompt) for t in ts] for ts in texts])

    def compare_detailed(self, prompts: Sequence[Conversation], a: Sequence[Conversation],
                         b: Sequence[Conversation]) -> JudgeResult:
        """P(a ≻ b) with the per-order probabilities and the parser's counts (see :class:`JudgeResult`)."""
        n = len(prompts)
        if not n == len(a) == len(b):
            raise ValueError("prompts, a and b must have the same length")
        if not self.settings.both_orders:
            p, reasons = self.order_probs(prompts, a, b)
            return JudgeResult(p, p, None, reasons)
        # Both orders in one batch: (a, b) for rows 0..n-1, (b, a) for rows n..2n-1.
        p, reasons = self.order_probs([*prompts, *prompts], [*a, *b], [*b, *a])
        fwd, swapped = p[:n], 1.0 - p[n:]
        return JudgeResult((fwd + swapped) / 2, fwd, swapped, reasons)

    def compare(self, prompts: Sequence[Conversation], a: Sequence[Conversation],
                b: Sequence[Conversation]) -> torch.Tensor:
        return self.compare_detailed(prompts, a, b).prob

    def score(self, convs: Sequence[Conversation]) -> torch.Tensor:
        raise NotImplementedError(f"a {self.settings.kind} judge compares two responses and has no scalar "
                                  "reward; use compare(prompts, a, b)")


def votes_to_probs(verdicts: Sequence[Sequence]) -> tuple[torch.Tensor, Counter]:
    """Vote share for the first response among parsed verdicts per input (0.5 when none parsed),
    ``(n,)``, and the count of every parser reason over all samples."""
    reasons: Counter = Counter()
    probs = []
    for vs in verdicts:
        reasons.update(v.reason for v in vs)
        parsed = [v.choice for v in vs if v.choice is not None]
        probs.append(parsed.count(0) / len(parsed) if parsed else 0.5)
    return torch.tensor(probs, dtype=torch.float32), reasons


def write_judge_manifest(path: str | Path, settings: JudgeSettings) -> Path:
    from dataclasses import asdict

    out = Path(path) / MANIFEST
    out.write_text(jsonout.dumps(asdict(settings), indent=2) + "\n")
    return out


def read_judge_manifest(path: str | Path) -> dict:
    return json.loads((Path(path) / MANIFEST).read_text())


def is_judge_dir(path: str | Path) -> bool:
    return (Path(path) / MANIFEST).exists()


def parse_judge_spec(spec: str) -> dict:
    """``METHOD[:key=value,...]`` (e.g. ``cot:k=4,temperature=1.0``) → :class:`JudgeSettings` fields.
    A bare key list without a method (``k=4``) keeps the manifest's method."""
    import dataclasses

    import yaml

    method, _, rest = spec.partition(":")
    if "=" in method:
        method, rest = "", spec
    out: dict = {"method": method} if method else {}
    known = {f.name: f for f in dataclasses.fields(JudgeSettings)}
    for item in filter(None, (s.strip() for s in rest.split(","))):
        key, eq, value = item.partition("=")
        if not eq or key not in known:
            import difflib

            close = difflib.get_close_matches(key, known, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ValueError(f"--judge {spec!r}: bad item {item!r}{hint} (keys: {', '.join(known)})")
        out[key] = value if key in ("prompt", "kind", "backend", "method") else yaml.safe_load(value)
    return out
