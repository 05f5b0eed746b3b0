"""Request and response bodies of the server (pydantic): the OpenAPI schema is generated from these."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class Message(BaseModel):
    model_config = ConfigDict(extra="forbid")
    role: str = Field(description="system, user, assistant or tool", min_length=1, max_length=64)
    content: str


Turns = str | list[Message]
"""A plain string (one user turn for a prompt, one assistant turn for a response) or messages."""


class ScoreRequest(BaseModel):
    """Either ``conversations`` (each ends with the assistant response to score) or ``prompts`` and
    ``responses`` (plain text, one user turn and one assistant turn each)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"conversations": [[{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}]]},
        {"prompts": ["Hi"], "responses": ["Hello!"]}]})
    conversations: list[list[Message]] | None = None
    prompts: list[str] | None = None
    responses: list[str] | None = None


class ScoreResponse(BaseModel):
    rewards: list[float] = Field(description="one scalar reward per input, in order")
    tokens: list[int] = Field(description="tokens each input was scored on")


class ComparePair(BaseModel):
    model_config = ConfigDict(extra="forbid")
    prompt: Turns = ""
    a: Turns
    b: Turns


class CompareRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"pairs": [{"prompt": "Hi", "a": "Hello! How can I help?", "b": "What."}]}]})
    pairs: list[ComparePair]


class CompareResponse(BaseModel):
    probabilities: list[float] = Field(description="P(a ≻ b) for each pair")
    rewards_a: list[float] | None = Field(None, description="scalar models: the reward of each a")
    rewards_b: list[float] | None = Field(None, description="scalar models: the reward of each b")


class TraceRequest(BaseModel):
    """``messages`` (ending with the response) or ``prompt`` and ``response``."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"prompt": "What is the capital of France?", "response": "Paris."}]})
    prompt: Turns = ""
    response: Turns | None = None
    messages: list[Message] | None = None


class TraceResponse(BaseModel):
    reward: float
    kind: str = Field(description="prefix_reward (reward after each token) or token_reward (each token's share)")
    tokens: list[str] = Field(description="the response's tokens as text")
    values: list[float] = Field(description="one value per response token (see kind)")
    contributions: list[float] = Field(description="how much each token moved the reward")
    prompt_tokens: int


class GetRewardRequest(BaseModel):
    """OpenRLHF's remote reward model protocol: ``query`` holds whole conversations already rendered
    with the chat template (special tokens included). Other fields are accepted and ignored."""

    model_config = ConfigDict(extra="allow", json_schema_extra={"examples": [
        {"query": ["<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHello!<|im_end|>\n"],
         "prompts": ["<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"], "labels": [None]}]})
    query: list[str]
    prompts: list | None = None
    labels: list | None = None


class GetRewardResponse(BaseModel):
    rewards: list[float]
    scores: list[float] = Field(description="the same rewards (newer OpenRLHF clients read this key)")
    extra_logs: dict[str, list[float]] = Field(default_factory=dict)


class HealthResponse(BaseModel):
    """Only ``status`` unless the request is authorised (no API key set, or the right key sent)."""

    status: str
    model: str | None = Field(None, description="the served model (its directory)")
    dtype: str | None = Field(None, description="the dtype the model computes in (what 'auto' chose)")
    version: str | None = None
    is_generative: bool | None = None
    can_score: bool | None = None
    can_trace: bool | None = None
    queue_depth: int | None = None


class ErrorResponse(BaseModel):
    error: str = Field(description="what was wrong, in one line")
