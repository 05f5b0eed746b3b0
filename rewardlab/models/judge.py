"""Pairwise LLM judges: the judge prompt, indicator-token probabilities, and the verdict parser.

Generative reward models (Mahan et al. 2024, "Generative Reward Models") ask a language model which of
two responses is better. rewardlab renders one judge prompt for every judge kind: the conversation so
far, response A, response B, and an instruction to answer with one of two *indicator tokens* (``1`` /
``2`` by default, ``A`` / ``B`` with the ``ab`` format). The prompt is a user turn rendered with the
judge model's own chat template, so the verdict (or the rationale that ends in one) is the start of
the assistant turn.

- GenRM and the zero-shot judge read P(A ≻ B) from the next-token probabilities of the two indicator
  tokens right after the generation prompt, normalised over the two (:func:`indicator_probs`).
- CoT-GenRM samples rationales that end in ``Verdict: <indicator>``; :func:`parse_verdict` maps every
  text to A, B, or an explicit unparseable result with its reason.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from rewardlab.types import Conversation


@dataclass(frozen=True)
class JudgePrompt:
    """How a pair is put to a judge. Placeholders: ``{conversation}``, ``{response_a}``,
    ``{response_b}``, ``{first}``, ``{second}`` (the two indicators)."""

    template: str = (
        "Here is a conversation between a user and an assistant, followed by two possible next "
        "responses of the assistant.\n\n[Conversation]\n{conversation}\n\n[Response {first}]\n"
        "{response_a}\n\n[Response {second}]\n{response_b}\n\n"
        "Which response is more helpful and harmless?"
    )
    """The user message; the instruction (direct or step-by-step) is appended to it."""
    direct_instruction: str = "Answer with {first} or {second} only."
    """Appended for indicator-token judges (GenRM, zero-shot): the verdict is the first token."""
    cot_instruction: str = (
        "Think step by step about both responses, then end with 'Verdict: {first}' or 'Verdict: {second}'."
    )
    """Appended for rationale judges (CoT-GenRM): a rationale that ends in a verdict."""
    hint: str = "(Hint: the better response is {answer}.)"
    """Appended by the STaR rationalizer: the correct answer, so the model can justify it."""
    system: str = ""
    """Optional system message before the judge's user turn."""
    indicators: tuple[str, str] = ("1", "2")
    """The tokens naming response A and response B; each must be one token of the judge's tokenizer."""
    verdict_marker: str = "Verdict:"
    """The text that introduces the verdict in a rationale (what :func:`parse_verdict` looks for)."""

    def __post_init__(self) -> None:
        a, b = self.indicators
        if not a.strip() or not b.strip() or a == b:
            raise ValueError(f"judge indicators must be two different non-empty strings, got {self.indicators}")
        for key in ("{conversation}", "{response_a}", "{response_b}"):
            if key not in self.template:
                raise ValueError(f"judge prompt template lacks the placeholder {key}")

    def messages(self, prompt: Conversation, a: Conversation, b: Conversation, cot: bool = False,
                 hint: int | None = None) -> Conversation:
        """The judge conversation for one ordered pair. ``hint``: 0 or 1, the better response, given
        to the model as a hint (STaR rationalization); ``None`` gives none."""
        first, second = self.indicators
        fill = {"first": first, "second": second}
        text = self.template.format(conversation=render_conversation(prompt) or "(empty)",
                                    response_a=render_response(a), response_b=render_response(b), **fill)
        text += "\n" + (self.cot_instruction if cot else self.direct_instruction).format(**fill)
        if hint is not None:
            text += "\n" + self.hint.format(answer=self.indicators[hint])
        system = [{"role": "system", "content": self.system}] if self.system else []
        return [*system, {"role": "user", "content": text}]

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["indicators"] = list(self.indicators)
        return d


PROMPTS: dict[str, JudgePrompt] = {
    "default": JudgePrompt(),
    "ab": JudgePrompt(indicators=("A", "B")),
}
"""Named judge prompt formats; a recipe or ``--judge`` spec can also name a YAML/JSON file."""


def judge_prompt(spec: str | dict | JudgePrompt | None) -> JudgePrompt:
    """A :class:`JudgePrompt` from a name in :data:`PROMPTS`, a YAML/JSON file of its fields, or a dict."""
    if spec is None or spec == "":
        return PROMPTS["default"]
    if isinstance(spec, JudgePrompt):
        return spec
    if isinstance(spec, dict):
        fields = {f.name for f in dataclasses.fields(JudgePrompt)}
        unknown = sorted(set(spec) - fields)
        if unknown:
            raise ValueError(f"judge prompt: unknown field(s) {', '.join(unknown)} (fields: {', '.join(sorted(fields))})")
        spec = dict(spec)
        if "indicators" in spec:
            spec["indicators"] = tuple(str(x) for x in spec["indicators"])
        return JudgePrompt(**spec)
    if spec in PROMPTS:
        return PROMPTS[spec]
    path = Path(spec)
    if path.suffix in (".yaml", ".yml", ".json") and path.exists():
        import yaml

        return judge_prompt(yaml.safe_load(path.read_text()) or {})
    raise ValueError(f"judge prompt {spec!r}: not one of {', '.join(PROMPTS)} nor a .yaml/.json file")


def render_conversation(conv: Conversation) -> str:
    """Plain text of a conversation, one ``Role: content`` paragraph per message."""
    return "\n".join(f"{m['role'].capitalize()}: {m['content']}" for m in conv)


def render_response(resp: Conversation) -> str:
    """A response is normally one assistant turn: its content alone; several turns keep their roles."""
    if len(resp) == 1:
        return resp[0]["content"]
    return render_conversation(resp)


# ---------------------------------------------------------------------------------------------------
# Indicator tokens


def indicator_token_ids(tokenizer, prompt: JudgePrompt) -> tuple[int, int]:
    """Token ids of the two indicators as they start an assistant turn; each must be one token."""
    ids = []
    for ind in prompt.indicators:
        toks = tokenizer(ind, add_special_tokens=False)["input_ids"]
        if len(toks) != 1 or toks[0] == tokenizer.unk_token_id:
            raise ValueError(f"judge indicator {ind!r} is {len(toks)} token(s) {toks} for this tokenizer; "
                             "choose indicators that are single known tokens (e.g. '1'/'2' or 'A'/'B')")
        ids.append(toks[0])
    return ids[0], ids[1]


def judge_prompt_ids(tokenizer, messages: Conversation) -> list[int]:
    """Token ids of a judge conversation rendered with the chat template, ending in the generation
    prompt (the assistant turn's opening), so the next token is the judge's first output token."""
    if getattr(tokenizer, "chat_template", None):
        text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        bos = tokenizer.bos_token_id
        probe = tokenizer("a", add_special_tokens=True)["input_ids"]
        if bos is not None and probe and probe[0] == bos and (not ids or ids[0] != bos):
            ids = [bos, *ids]
        return ids
    text = render_conversation(messages) + "\nAssistant:"
    return tokenizer(text, add_special_tokens=True)["input_ids"]


def left_pad(seqs: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Left-padded ``input_ids`` and ``attention_mask``, each ``(n, max length)``."""
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for i, s in enumerate(seqs):
        if s:
            ids[i, width - len(s):] = torch.tensor(list(s))
            mask[i, width - len(s):] = 1
    return ids, mask


@torch.inference_mode()
def next_token_logits(model: nn.Module, seqs: Sequence[Sequence[int]], pad_id: int,
                      batch_size: int = 16) -> torch.Tensor:
    """Logits of the token after each sequence, ``(n, vocab)`` float32 (left-padded batches)."""
    from rewardlab.models.batching import PaddedBatch, hidden_states
    from rewardlab.models.scalar import backbone_of, unwrap

    device = next(model.parameters()).device
    lm_head = unwrap(model).get_output_embeddings()
    out = []
    for start in range(0, len(seqs), batch_size):
        ids, mask = left_pad(seqs[start:start + batch_size], pad_id)
        hidden = hidden_states(backbone_of(model), PaddedBatch(ids.to(device), mask.to(device)))
        out.append(lm_head(hidden.at_last()).float().cpu())
    return torch.cat(out)


def indicator_probs(logits: torch.Tensor, ids: tuple[int, int]) -> torch.Tensor:
    """P(first indicator) normalised over the two indicators: ``softmax([l_a, l_b])[0]``.

    logits: ``(n, vocab)`` next-token logits → ``(n,)`` float32 = σ(l_a − l_b).
    """
    return torch.sigmoid(logits[:, ids[0]].float() - logits[:, ids[1]].float())


# ---------------------------------------------------------------------------------------------------
# Verdict parser


@dataclass(frozen=True)
class Verdict:
    """A parsed judgement: ``choice`` 0 (response A), 1 (response B) or ``None`` (unparseable)."""

    choice: int | None
    reason: str
    """How it was read: ``marker``, ``brackets``, ``bare``, ``mention`` (parsed); ``empty``,
    ``invalid_marker``, ``ambiguous``, ``no_verdict`` (unparseable)."""

    @property
    def parsed(self) -> bool:
        return self.choice is not None


PARSED_REASONS = ("marker", "brackets", "bare", "mention")
UNPARSEABLE_REASONS = ("empty", "invalid_marker", "ambiguous", "no_verdict")


def _indicator(token: str, indicators: tuple[str, str], fold_case: bool) -> int | None:
    for i, ind in enumerate(indicators):
        if token == ind or (fold_case and token.lower() == ind.lower()):
            return i
    return None


def parse_verdict(text: str, prompt: JudgePrompt = PROMPTS["default"]) -> Verdict:
    """Map any judge output to A, B or an explicit unparseable result. Total: never raises.

    In order: empty text → ``empty``; the last verdict marker (``Verdict:``; also ``Answer:``) followed
    by an indicator → ``marker`` (case-insensitive), followed by anything else → ``invalid_marker``;
    the last ``[[X]]`` → ``brackets``; the whole text is an indicator (punctuation aside) → ``bare``;
    exactly one of the two indicators appears as a standalone word (case-sensitive, so the article
    "a" is not response A) → ``mention``; both → ``ambiguous``; neither → ``no_verdict``.
    """
    inds = prompt.indicators
    if not text or not text.strip():
        return Verdict(None, "empty")
    marker = re.escape(prompt.verdict_marker.rstrip(":").strip())
    hits = list(re.finditer(rf"(?:{marker}|\banswer)\s*[:=]\s*[\[\(\*\"'`]*\s*(?:response\s+)?"
                            rf"([^\s\]\)\*\"'`.,;!]*)", text, flags=re.IGNORECASE))
    if hits:
        choice = _indicator(hits[-1].group(1), inds, True)
        return Verdict(choice, "marker") if choice is not None else Verdict(None, "invalid_marker")
    brackets = re.findall(r"\[\[\s*([^\]\s]+)\s*\]\]", text)
    if brackets:
        choice = _indicator(brackets[-1], inds, True)
        if choice is not None:
            return Verdict(choice, "brackets")
    core = text.strip().strip(".!,;:'\"`*()[] \n")
    choice = _indicator(core, inds, True)
    if choice is not None:
        return Verdict(choice, "bare")
    words = set(re.findall(r"[A-Za-z0-9]+", text))
    seen = [i for i, ind in enumerate(inds) if ind in words]
    if len(seen) == 1:
        return Verdict(seen[0], "mention")
    return Verdict(None, "ambiguous" if seen else "no_verdict")
