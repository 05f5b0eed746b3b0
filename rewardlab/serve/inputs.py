"""Request bodies as checked conversations.

Every text and message goes through the same checks as the data files and the Python API
(:mod:`rewardlab.data.validate`): roles the data loader rejects, text that is not valid Unicode and an
empty final response are refused here, as a ``DataError`` the server answers with 400, before anything
is tokenised. Errors name the field of the request, e.g. ``request: field 'conversations[0][1].role'``.
"""

from __future__ import annotations

from rewardlab.data.formats import to_messages, to_prompt
from rewardlab.data.validate import check_conversation, check_rendered
from rewardlab.serve.engine import ServeError
from rewardlab.serve.protocol import CompareRequest, ScoreRequest, TraceRequest
from rewardlab.types import Conversation

WHERE = "request"


def _plain(value):
    """A string as it is; pydantic messages as plain dicts."""
    if isinstance(value, list):
        return [m.model_dump() if hasattr(m, "model_dump") else m for m in value]
    return value


def prompt_response(prompt, response, prompt_field: str, response_field: str) -> tuple[Conversation, Conversation]:
    """``(prompt, response)``: a string prompt is one user turn (blank: no prompt), a string response
    one assistant turn; the response must end with a non-empty assistant turn."""
    p = to_prompt(_plain(prompt), WHERE, prompt_field)
    r = to_messages(_plain(response), WHERE, response_field, "assistant")
    check_conversation([*p, *r], WHERE, response_field)
    return p, r


def score_conversations(body: ScoreRequest) -> tuple[list[Conversation], str]:
    """The conversations of a ``/score`` body and the name of the field they came from."""
    if body.conversations is not None:
        if body.prompts is not None or body.responses is not None:
            raise ServeError(422, "send either 'conversations' or 'prompts' + 'responses', not both")
        return [check_conversation(_plain(c), WHERE, f"conversations[{i}]")
                for i, c in enumerate(body.conversations)], "conversations"
    if body.prompts is None or body.responses is None:
        raise ServeError(422, "send 'conversations', or 'prompts' and 'responses'")
    if len(body.prompts) != len(body.responses):
        raise ServeError(422, f"'prompts' has {len(body.prompts)} items but 'responses' {len(body.responses)}")
    convs = []
    for i, (p, r) in enumerate(zip(body.prompts, body.responses, strict=True)):
        prompt, response = prompt_response(p, r, f"prompts[{i}]", f"responses[{i}]")
        convs.append([*prompt, *response])
    return convs, "prompts"


def compare_triples(body: CompareRequest) -> tuple[list[Conversation], list[Conversation], list[Conversation]]:
    """``(prompts, a, b)`` of a ``/compare`` body."""
    prompts, a, b = [], [], []
    for i, pair in enumerate(body.pairs):
        p, ra = prompt_response(pair.prompt, pair.a, f"pairs[{i}].prompt", f"pairs[{i}].a")
        _, rb = prompt_response(pair.prompt, pair.b, f"pairs[{i}].prompt", f"pairs[{i}].b")
        prompts.append(p)
        a.append(ra)
        b.append(rb)
    return prompts, a, b


def trace_conversation(body: TraceRequest) -> Conversation:
    """The one conversation of a ``/trace`` body."""
    if body.messages is not None:
        if body.response is not None:
            raise ServeError(422, "send either 'messages' or 'prompt' + 'response', not both")
        return check_conversation(_plain(body.messages), WHERE, "messages")
    if body.response is None:
        raise ServeError(422, "send 'messages', or 'prompt' and 'response'")
    prompt, response = prompt_response(body.prompt, body.response, "prompt", "response")
    return [*prompt, *response]


def queries(texts: list[str]) -> list[str]:
    """The rendered conversations of a ``/get_reward`` body (OpenRLHF's ``query``): valid, non-blank text."""
    return [check_rendered(q, WHERE, f"query[{i}]") for i, q in enumerate(texts)]
