"""What the server does with a Scorer: encoding with its tokenizer, limits, and the batch handlers.

The server never switches on the kind of reward model; it asks the Scorer what it can do:
``is_generative`` (a judge: ``compare`` only), ``score_ids`` + ``encoder`` (token-level scoring on the
packed path, the OpenRLHF protocol), and :func:`rewardlab.audit.trace.can_trace`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from rewardlab.audit.trace import token_pieces, trace_ids
from rewardlab.data.encode import EncodeError
from rewardlab.serve.settings import ServeSettings
from rewardlab.types import Conversation


class ServeError(Exception):
    """An error answered with ``status`` and a one-line message."""

    def __init__(self, status: int, message: str, headers: dict | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers


class Engine:
    def __init__(self, scorer, settings: ServeSettings) -> None:
        self.scorer = scorer
        self.settings = settings
        self.generative = scorer.is_generative
        self.encoder = scorer.encoder
        self.tokenizer = getattr(self.encoder, "tok", None) or scorer.tokenizer
        self.ids_path = scorer.can_score_ids and self.encoder is not None
        self.can_score = not self.generative and self.encoder is not None
        self.traceable = scorer.can_trace
        self.max_tokens = settings.max_tokens or scorer.max_positions
        self.longest_token = _longest_token(self.tokenizer)
        self.handlers = {"score_ids": self._score_ids, "score_convs": self._score_convs,
                         "trace": self._trace, "compare": self._compare}
        self.batchable = ("score_ids", "score_convs", "trace", "compare")

    @property
    def dtype(self) -> str | None:
        """The dtype the model computes in, e.g. ``float32`` (what ``--dtype auto`` resolved to)."""
        dtype = self.scorer.dtype
        return None if dtype is None else str(dtype).removeprefix("torch.")

    # ---- handlers: run on the batcher's worker thread ------------------------------------------------
    def _score_ids(self, seqs: list[list[int]]) -> list[float]:
        return self.scorer.score_ids(seqs).tolist()

    def _score_convs(self, convs: list[Conversation]) -> list[float]:
        return self.scorer.score(convs).tolist()

    def _compare(self, triples: list[tuple]) -> list[float]:
        p, a, b = zip(*triples, strict=True)
        return self.scorer.compare(list(p), list(a), list(b)).tolist()

    def _trace(self, items: list[tuple[list[int], int]]) -> list:
        traces = trace_ids(self.scorer, [i for i, _ in items], [p for _, p in items])
        for t in traces:
            t.tokens = token_pieces(self.tokenizer, t.ids, t.prompt_len)
        return traces

    # ---- checks and encoding: on the event loop, before anything is queued ---------------------------
    def check_batch(self, n: int, what: str) -> None:
        if n == 0:
            raise ServeError(422, f"{what}: empty; send at least one item")
        if n > self.settings.max_batch:
            raise ServeError(413, f"{what}: {n} items exceed the limit of {self.settings.max_batch} per request "
                             "(server flag --max-batch)")

    @property
    def max_chars(self) -> int | None:
        """Most characters a text may have to be tokenised at all: ``max_tokens`` tokens of the longest
        vocabulary entry. With a subword vocabulary (byte-level BPE, SentencePiece) a longer text cannot
        fit, so it is refused before the tokenizer spends time and memory on it."""
        if not (self.max_tokens and self.longest_token):
            return None
        return self.max_tokens * self.longest_token

    def check_chars(self, n_chars: int, where: str) -> None:
        limit = self.max_chars
        if limit and n_chars > limit:
            raise ServeError(413, f"{where}: {n_chars} characters cannot fit in {self.max_tokens} tokens (no "
                             f"token of this model is longer than {self.longest_token} characters); refused "
                             "before tokenising (server flag --max-tokens, at most the model's positions)")

    def check_length(self, ids: Sequence[int], where: str) -> None:
        if self.max_tokens and len(ids) > self.max_tokens:
            raise ServeError(413, f"{where}: {len(ids)} tokens exceed the limit of {self.max_tokens} "
                             "(server flag --max-tokens, at most the model's positions)")
        try:
            self.scorer.check_length(ids, where)
        except EncodeError as e:
            raise ServeError(413, str(e)) from None

    def encode(self, conv: Conversation, where: str) -> tuple[list[int], int]:
        if self.encoder is None:
            raise ServeError(400, "this model has no tokenizer-level scoring")
        self.check_chars(sum(len(m["content"]) for m in conv), where)
        try:
            enc = self.encoder.encode_conversation(conv, where)
        except EncodeError as e:
            raise ServeError(400, str(e)) from None
        self.check_length(enc.ids, where)
        return enc.ids, enc.prompt_len

    def encode_query(self, text: str, where: str) -> list[int]:
        """An already rendered conversation (OpenRLHF ``query``), tokenized without adding specials.

        Like OpenRLHF's own reward server, padding around it is stripped (the model's pad and EOS: a
        policy may pad with its EOS), and the turn is ended as the chat template ends it: a policy's
        output stops at ``<|im_end|>``, the template writes ``<|im_end|>\n``. So the reward is read
        where :meth:`encode` of the same conversation reads it (see :mod:`rewardlab.data.encode`).
        ``text`` has passed :func:`rewardlab.data.validate.check_rendered`."""
        self.check_chars(len(text), where)
        tok = self.tokenizer
        core = self.encoder.strip_rendered(text, [t for t in (tok.pad_token, tok.eos_token) if t])
        if not core.strip():  # nothing but padding: the terminator alone is no conversation
            raise ServeError(400, f"{where}: empty query")
        ids = tok(core + self.encoder.turn_end, add_special_tokens=False)["input_ids"]
        self.check_length(ids, where)
        return ids

    def sigmoid_diff(self, ra: list[float], rb: list[float]) -> list[float]:
        return torch.sigmoid(torch.tensor(ra) - torch.tensor(rb)).tolist()


def _longest_token(tokenizer) -> int | None:
    """Characters in the longest vocabulary entry, spelled as the vocabulary spells it (byte-level
    ``Ġ`` and SentencePiece ``▁`` stand for one character each, so this bounds the text a token covers)."""
    try:
        return max(map(len, tokenizer.get_vocab()), default=0) or None
    except (AttributeError, NotImplementedError, TypeError):
        return None
