"""Per-token reward traces of whole conversations, with each token's text, for reports and the server.

The traces themselves come from the scorer (``trace_ids``, computed in :mod:`rewardlab.models.trace`);
this module encodes conversations, asks for them and decodes each token's text.
"""

from __future__ import annotations

from collections.abc import Sequence

from rewardlab.models.trace import TokenTrace, TraceError
from rewardlab.types import Conversation

__all__ = ["TokenTrace", "TraceError", "can_trace", "token_pieces", "token_trace", "trace_ids"]


def _decode_tokens(tokenizer, ids: Sequence[int]) -> list[str]:
    """Each token as the text it adds (so the pieces concatenate to the decoded string where possible)."""
    pieces = []
    prev = ""
    for t in range(len(ids)):
        text = tokenizer.decode(ids[: t + 1], skip_special_tokens=False)
        piece = text[len(prev):] if text.startswith(prev) else tokenizer.decode([ids[t]], skip_special_tokens=False)
        pieces.append(piece)
        prev = text
    return pieces


def token_pieces(tokenizer, ids: Sequence[int], start: int) -> list[str]:
    """The text of tokens ``ids[start:]``, one string per token (context-aware decoding)."""
    if len(ids) - start > 2048:  # quadratic decode: fall back to per-token decoding for long texts
        return [tokenizer.decode([i], skip_special_tokens=False) for i in ids[start:]]
    return _decode_tokens(tokenizer, ids)[start:]


def can_trace(scorer) -> bool:
    """Whether ``scorer`` gives per-token traces (its declared capability)."""
    return bool(scorer.can_trace)


def trace_ids(scorer, seqs: Sequence[Sequence[int]], prompt_lens: Sequence[int]) -> list[TokenTrace]:
    """Per-token traces of tokenized conversations (``ids[:prompt_lens[i]]`` is the prompt); a scorer that
    gives none raises :class:`TraceError` saying why."""
    return scorer.trace_ids(seqs, prompt_lens)


def token_trace(scorer, convs: Sequence[Conversation], with_tokens: bool = True) -> list[TokenTrace]:
    """Per-token traces of whole conversations (the trailing assistant turn is the response)."""
    if not scorer.can_trace:
        raise TraceError(f"{type(scorer).__name__} gives no per-token trace (a judge, or an encoder model)")
    encs = [scorer.encoder.encode_conversation(c, f"conversation {i}") for i, c in enumerate(convs)]
    traces = trace_ids(scorer, [e.ids for e in encs], [e.prompt_len for e in encs])
    if with_tokens:
        tok = scorer.tokenizer or scorer.encoder.tok
        for t in traces:
            t.tokens = token_pieces(tok, t.ids, t.prompt_len)
    return traces
