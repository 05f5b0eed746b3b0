"""A rewardlab Scorer as a TRL reward function (``GRPOTrainer`` / ``RLOOTrainer`` ``reward_funcs``).

TRL calls ``f(prompts=..., completions=..., completion_ids=..., **columns)`` and wants one float per
completion. Completions arrive decoded by the *policy's* tokenizer; they are re-tokenised here with the
reward model's own tokenizer and chat template (through its encoder), so the two models need not share
a vocabulary. Prompts and completions are plain strings (standard format: the prompt becomes one user
turn) or lists of messages (conversational format).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from rewardlab.types import Conversation


def _as_turns(value, role: str) -> Conversation:
    if isinstance(value, str):
        return [{"role": role, "content": value}] if value or role == "assistant" else []
    return [{"role": m["role"], "content": m["content"]} for m in value]


def to_conversations(prompts: Sequence, completions: Sequence) -> list[Conversation]:
    """``prompt + completion`` conversations in TRL's standard (strings) or conversational (messages) format."""
    if len(prompts) != len(completions):
        raise ValueError(f"{len(prompts)} prompts but {len(completions)} completions")
    return [[*_as_turns(p, "user"), *_as_turns(c, "assistant")] for p, c in zip(prompts, completions, strict=True)]


def reward_func(scorer, name: str = "rewardlab", empty_reward: float | None = None,
                batch_size: int | None = None) -> Callable[..., list[float]]:
    """TRL's ``reward_funcs`` callable scoring each completion with ``scorer``.

    ``empty_reward``: what an empty completion gets (it has nothing to score); ``None`` raises instead.
    ``batch_size``: score at most this many conversations per call to the scorer (default: all at once).
    """
    if scorer.is_generative:
        raise ValueError("a generative judge has no scalar reward; TRL reward functions need one per completion")

    def fn(prompts: Sequence, completions: Sequence, **_) -> list[float]:
        convs = to_conversations(prompts, completions)
        empty = [not any((m.get("content") or "").strip() for m in c if m["role"] == "assistant") for c in convs]
        if any(empty) and empty_reward is None:
            raise ValueError(f"completion {empty.index(True)} is empty; set empty_reward to give it a value")
        todo = [c for c, e in zip(convs, empty, strict=True) if not e]
        step = batch_size or max(len(todo), 1)
        scores: list[float] = []
        for i in range(0, len(todo), step):
            scores += scorer.score(todo[i: i + step]).tolist()
        it = iter(scores)
        return [float(empty_reward) if e else next(it) for e in empty]

    fn.__name__ = name  # TRL logs each reward function under its __name__
    return fn
