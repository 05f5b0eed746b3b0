"""Turn conversations into token ids with the model's chat template, under an explicit truncation policy.

Encoding of ``prompt + response``:
- The text is rendered with the tokenizer's chat template (or a plain ``role: content`` layout for
  tokenizers without one, e.g. encoders). The prompt part is rendered with the generation prompt, so
  the response tokens start right where a policy would start generating.
- Prompt and response are tokenized separately without special tokens; BOS is added once, and only
  when the tokenizer normally adds it and the template did not already write it (no doubled BOS).
- The response ends with the EOS token the model expects (template turn terminator, else ``eos_token``);
  whitespace a template writes after the terminator is dropped so the reward is read at EOS.

Truncation (only when ``max_length`` is set and exceeded), in this order:
1. drop prompt tokens from the left (a leading BOS is kept) down to ``min_prompt_tokens``;
2. then cut the response from the right, keeping its final EOS token.
Every truncation is counted in :class:`EncodeStats`; nothing is dropped silently.
"""

from __future__ import annotations

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
        self.eos_text = self._terminator()
        self.stats = EncodeStats()

    def _terminator(self) -> str | None:
        """The text that ends an assistant turn: found by rendering a probe, else ``eos_token``."""
        if self.has_template:
            marker = "\x00rl\x00"
            text = self.tok.apply_chat_template(
                [{"role": "user", "content": "q"}, {"role": "assistant", "content": marker}], tokenize=False
            )
            tail = text.split(marker, 1)[-1].strip()
            if tail:
                return tail
        return self.tok.eos_token

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
        body = full[len(head) :]
        if self.eos_text and self.eos_text in body:
            body = body[: body.rindex(self.eos_text) + len(self.eos_text)]
        elif self.eos_text:
            body = body.rstrip() + self.eos_text
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
            if room < 1:
                raise EncodeError(f"max_length={self.max_length} leaves no room for the response")
            r_ids = r_ids[: room - 1] + r_ids[-1:]  # keep the final EOS
            self.stats.response_truncated += 1
        return Encoded(p_ids + r_ids, len(p_ids), p_trunc, r_trunc)

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
