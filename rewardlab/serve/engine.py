"""What the server does with a Scorer: encoding with its tokenizer, limits, and the batch handlers.

The server never switches on the kind of reward model; it asks the Scorer what it can do:
``is_generative`` (a judge: ``compare`` only), ``score_ids`` + ``encoder`` (token-level scoring on the
packed path, the OpenRLHF protocol), and :func:`rewardlab.audit.trace.can_trace`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from rewardlab.audit.trace import can_trace, token_pieces, trace_ids
from rewardlab.data.encode import EncodeError
from rewardlab.serve.settings import ServeSettings
from rewardlab.types import Conversation


class ServeError(Exception):
    """An error answered with ``status`` and a one-line message."""

    def __init__(self, status: int, message: str, headers: dict | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers


def turns(value, role: str) -> Conversation:
    """A string as one ``role`` turn (an empty prompt is no turn), or a list of messages as dicts."""
    if isinstance(value, str):
        return [{"role": role, "content": value}] if (value or role == "assistant") else []
    return [m.model_dump() if hasattr(m, "model_dump") else dict(m) for m in value]


class Engine:
    def __init__(self, scorer, settings: ServeSettings) -> None:
        self.scorer = scorer
        self.settings = settings
        self.generative = bool(getattr(scorer, "is_generative", False))
        self.encoder = getattr(scorer, "encoder", None)
        self.tokenizer = getattr(self.encoder, "tok", None) or getattr(scorer, "tokenizer", None)
        self.ids_path = hasattr(scorer, "score_ids") and self.encoder is not None
        self.can_score = not self.generative and hasattr(scorer, "score") and self.encoder is not None
        self.traceable = can_trace(scorer)
        self.max_tokens = settings.max_tokens or getattr(scorer, "max_positions", None)
        self.handlers = {"score_ids": self._score_ids, "score_convs": self._score_convs,
                         "trace": self._trace, "compare": self._compare}
        self.batchable = ("score_ids", "score_convs", "trace", "compare")

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

    def check_length(self, ids: Sequence[int], where: str) -> None:
        if self.max_tokens and len(ids) > self.max_tokens:
            raise ServeError(413, f"{where}: {len(ids)} tokens exceed the limit of {self.max_tokens} "
                             "(server flag --max-tokens, at most the model's positions)")
        if hasattr(self.scorer, "_check_length"):
            try:
                self.scorer._check_length(ids, where)
            except EncodeError as e:
                raise ServeError(413, str(e)) from None

    def encode(self, conv: Conversation, where: str) -> tuple[list[int], int]:
        if self.encoder is None:
            raise ServeError(400, "this model has no tokenizer-level scoring")
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
        where :meth:`encode` of the same conversation reads it (see :mod:`rewardlab.data.encode`)."""
        tok = self.tokenizer
        core = self.encoder.strip_rendered(text, [t for t in (tok.pad_token, tok.eos_token) if t])
        if not core.strip():
            raise ServeError(400, f"{where}: empty query")
        ids = tok(core + self.encoder.turn_end, add_special_tokens=False)["input_ids"]
        self.check_length(ids, where)
        return ids

    def sigmoid_diff(self, ra: list[float], rb: list[float]) -> list[float]:
        return torch.sigmoid(torch.tensor(ra) - torch.tensor(rb)).tolist()
