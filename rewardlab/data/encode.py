"""Turn conversations into token ids with the model's chat template, under an explicit truncation policy.

Encoding of ``prompt + response``:
- The text is rendered with the tokenizer's chat template (or a plain ``role: content`` layout for
  tokenizers without one, e.g. encoders). The prompt part is rendered with the generation prompt, so
  the response tokens start right where a policy would start generating.
- Prompt and response are tokenized separately without special tokens; BOS is added once, and only
  when the tokenizer normally adds it and the template did not already write it (no doubled BOS).
- The response ends exactly as the template ends an assistant turn (:attr:`ChatEncoder.turn_end`;
  ChatML templates such as SmolLM2's write ``<|im_end|>\n``), and the reward is read at its last
  token. That is the last token of the conversation as the model's own chat template renders it,
  which is where stock ``transformers`` (one sequence or padded batches, ``pipeline``), TRL's reward
  trainer and a server fed rendered text read it too, so a checkpoint scores the same in all of them.
  Without a template the response ends with ``eos_token``.

Truncation (only when ``max_length`` is set and exceeded), in this order:
1. drop prompt tokens from the left (a leading BOS is kept) down to ``min_prompt_tokens``;
2. then cut the response from the right, keeping the tokens that end the turn (``<|im_end|>\n``).
Every truncation is counted in :class:`EncodeStats`; nothing is dropped silently.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from rewardlab.types import Conversation, PreferencePair


class EncodeError(ValueError):
    """A conversation that cannot be encoded (empty response, too long without truncation)."""


@dataclass
class Encoded:
    """Token ids of one conversation; ``ids[:prompt_len]`` is the prompt, the rest the response."""

    ids: list[int]
    prompt_len: int
    prompt_truncated: bool = False
    response_truncated: bool = False

    @property
    def response_len(self) -> int:
        return len(self.ids) - self.prompt_len


@dataclass
class EncodeStats:
    """What truncation did to a dataset."""

    prompt_truncated: int = 0
    response_truncated: int = 0
    identical_after_truncation: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {
            "prompt_truncated": self.prompt_truncated,
            "response_truncated": self.response_truncated,
            "identical_after_truncation": len(self.identical_after_truncation),
            "identical_examples": self.identical_after_truncation[:5],
        }


def _plain_render(messages: Conversation) -> str:
    return "".join(f"{m['role']}: {m['content']}\n" for m in messages)


class ChatEncoder:
    """Encodes conversations for one tokenizer. ``max_length`` of ``None`` means: never truncate."""

    def __init__(self, tokenizer, max_length: int | None = None, min_prompt_tokens: int = 32) -> None:
        self.tok = tokenizer
        self.max_length = max_length
        self.min_prompt_tokens = min_prompt_tokens
        self.has_template = bool(getattr(tokenizer, "chat_template", None))
        probe = tokenizer("a", add_special_tokens=True)["input_ids"]
        plain = tokenizer("a", add_special_tokens=False)["input_ids"]
        bos = tokenizer.bos_token_id
        self.adds_bos = bos is not None and len(probe) > len(plain) and probe[0] == bos
        # Tokenizers without a template (encoders) get ``[CLS] prompt [SEP] response [SEP]``.
        self.pair_specials = (
            not self.has_template
            and tokenizer.cls_token_id is not None
            and tokenizer.sep_token_id is not None
        )
        self.n_special = 3 if self.pair_specials else 0
        self.turn_end = self._turn_end()
        """The text that ends the final assistant turn, after its content (``<|im_end|>\n`` for ChatML)."""
        self.terminator = self.turn_end.strip()
        """``turn_end`` without whitespace: what a policy generates last (``<|im_end|>``)."""
        self._end_ids = tokenizer(self.turn_end, add_special_tokens=False)["input_ids"] if self.turn_end else []
        self.stats = EncodeStats()

    def _turn_end(self) -> str:
        """What the template writes after an assistant turn's content, found by rendering a probe;
        without a template, ``eos_token`` (``[SEP]`` for encoders, added with the other specials)."""
        if self.has_template:
            marker = "\x00rl\x00"
            text = self.tok.apply_chat_template(
                [{"role": "user", "content": "q"}, {"role": "assistant", "content": marker}], tokenize=False
            )
            return text.split(marker, 1)[-1]
        return "" if self.pair_specials else (self.tok.eos_token or "")

    def _render(self, prompt: Conversation, response: Conversation) -> tuple[str, str]:
        if not self.has_template:
            body = _plain_render(response).rstrip("\n")
            if not self.pair_specials and self.tok.eos_token:
                body += self.tok.eos_token
            head = _plain_render(prompt)
            if self.adds_bos:
                head = self.tok.bos_token + head
            return head, body
        full = self.tok.apply_chat_template([*prompt, *response], tokenize=False)
        head = (
            self.tok.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True) if prompt else ""
        )
        if not full.startswith(head):  # a template that rewrites earlier turns: fall back to a plain split
            head = ""
        body = full[len(head) :]  # as rendered, up to the template's last character: the read position
        bos = self.tok.bos_token
        if not head and bos and body.startswith(bos):  # a BOS the template wrote belongs to the prompt part
            head, body = bos, body[len(bos) :]
        if self.adds_bos and not full.startswith(bos or "\x00"):
            head = bos + head
        return head, body

    def encode(self, prompt: Conversation, response: Conversation, where: str = "") -> Encoded:
        """Encode one conversation; raises :class:`EncodeError` for an empty response or overflow."""
        if not response or not any((m.get("content") or "").strip() for m in response):
            raise EncodeError(f"{where or 'conversation'}: the response is empty")
        head, body = self._render(prompt, response)
        p_ids = self.tok(head, add_special_tokens=False)["input_ids"] if head else []
        r_ids = self.tok(body, add_special_tokens=False)["input_ids"]
        enc = self._truncate(p_ids, r_ids)
        if self.pair_specials:
            cls, sep = self.tok.cls_token_id, self.tok.sep_token_id
            p, r = enc.ids[: enc.prompt_len], enc.ids[enc.prompt_len :]
            enc = Encoded([cls, *p, sep, *r, sep], len(p) + 2, enc.prompt_truncated, enc.response_truncated)
        return enc

    def _truncate(self, p_ids: list[int], r_ids: list[int]) -> Encoded:
        limit = None if self.max_length is None else self.max_length - self.n_special
        if limit is None or len(p_ids) + len(r_ids) <= limit:
            return Encoded(p_ids + r_ids, len(p_ids))
        keep_bos = 1 if (self.adds_bos and p_ids and p_ids[0] == self.tok.bos_token_id) else 0
        min_p = min(len(p_ids), max(self.min_prompt_tokens, keep_bos))
        p_keep = max(limit - len(r_ids), min_p)
        p_trunc = p_keep < len(p_ids)
        if p_trunc:
            p_ids = (
                p_ids[:keep_bos] + p_ids[len(p_ids) - (p_keep - keep_bos) :]
                if p_keep > keep_bos
                else p_ids[:p_keep]
            )
            self.stats.prompt_truncated += 1
        r_trunc = len(p_ids) + len(r_ids) > limit
        if r_trunc:
            room = limit - len(p_ids)
            end = self._end_len(r_ids)
            if room < end:
                raise EncodeError(f"max_length={self.max_length} leaves no room for the response")
            r_ids = r_ids[: room - end] + r_ids[len(r_ids) - end :]  # keep the tokens that end the turn
            self.stats.response_truncated += 1
        return Encoded(p_ids + r_ids, len(p_ids), p_trunc, r_trunc)

    def _end_len(self, r_ids: list[int]) -> int:
        """How many final response tokens truncation keeps: those of :attr:`turn_end` when the
        response ends with them, else the last token alone (an end merged into the content)."""
        n = len(self._end_ids)
        return n if n and r_ids[-n:] == self._end_ids else 1

    def strip_rendered(self, text: str, pads: Sequence[str] = ()) -> str:
        """An already rendered conversation (OpenRLHF's ``query``) without what a client put around
        it: leading and trailing runs of ``pads`` and of the turn terminator (a policy that pads with
        its EOS), with whitespace between them at the end. ``strip_rendered(t) + turn_end`` is what
        :meth:`encode` tokenizes for the same conversation, also for a policy's output that stops at
        ``<|im_end|>``, before the newline the template writes. Whitespace inside the response stays."""
        marks = sorted({m for m in (*pads, self.terminator) if m}, key=len, reverse=True)
        start, stop = 0, len(text)
        while marks:  # index arithmetic, no copies: a long run of padding costs linear time
            m = next((m for m in marks if text.startswith(m, start, stop)), None)
            if m is None:
                break
            start += len(m)
        while marks:
            cut = stop
            while cut > start and text[cut - 1].isspace():
                cut -= 1
            m = next((m for m in marks if text.endswith(m, start, cut)), None)
            if m is None:
                break
            stop = cut - len(m)
        core = text[start:stop]
        if not self.terminator and self.turn_end and core.endswith(self.turn_end):  # a turn ended by whitespace
            core = core[: -len(self.turn_end)]
        return core

    def encode_pair(self, pair: PreferencePair) -> tuple[Encoded, Encoded] | None:
        """Encode both sides; ``None`` (and a note in ``stats``) when truncation made them identical."""
        c = self.encode(pair.prompt, pair.chosen, pair.id)
        r = self.encode(pair.prompt, pair.rejected, pair.id)
        if c.ids == r.ids:
            self.stats.identical_after_truncation.append(pair.id)
            return None
        return c, r

    def encode_conversation(self, conv: Conversation, where: str = "") -> Encoded:
        """Encode a whole conversation whose trailing assistant turn(s) are the judged response."""
        cut = len(conv)
        while cut > 0 and conv[cut - 1].get("role") == "assistant":
            cut -= 1
        if cut == len(conv):
            raise EncodeError(f"{where or 'conversation'}: it must end with an assistant response")
        return self.encode(conv[:cut], conv[cut:], where)
