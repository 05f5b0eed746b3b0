"""Schema fuzz of the server with hypothesis: arbitrary and near-valid bodies never get a 5xx."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("fastapi")
hypothesis = pytest.importorskip("hypothesis")
from fastapi.testclient import TestClient  # noqa: E402
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from rewardlab.models.scorer import ScalarScorer  # noqa: E402
from rewardlab.serve.app import create_app  # noqa: E402
from rewardlab.serve.settings import ServeSettings  # noqa: E402
from tests.rm_helpers import make_tiny_rm  # noqa: E402

FIELDS = {"/score": ["conversations", "prompts", "responses"], "/compare": ["pairs"],
          "/trace": ["prompt", "response", "messages"], "/get_reward": ["query", "prompts", "labels"]}
# Lone surrogates are valid JSON (json.dumps writes them as \ud800 escapes) but no tokenizer takes them.
words = st.sampled_from(["hi", "hello", "paris", "", " ", "<|im_end|>", "<pad>", "<|im_start|>", "user", "\n", "é",
                         "a\ud800b", "\udfff"])
text = st.one_of(words, st.text(max_size=30), st.text(st.characters(codec=None, categories=["Cs", "Ll"]), max_size=5),
                 st.lists(words, max_size=6).map(" ".join))
message = st.fixed_dictionaries({"role": st.sampled_from(["user", "assistant", "system", "tool", "wizard", "", "x" * 70]),
                                 "content": text})
json_value = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | text,
                          lambda c: st.lists(c, max_size=4) | st.dictionaries(text, c, max_size=4), max_leaves=12)
near_valid = st.one_of(text, st.lists(message, max_size=4), st.lists(text, max_size=4),
                       st.lists(st.lists(message, max_size=4), max_size=4),
                       st.lists(st.fixed_dictionaries({"prompt": text, "a": text, "b": text}), max_size=3), json_value)


def body_for(path: str):
    structured = st.dictionaries(st.sampled_from(FIELDS[path]), near_valid, max_size=3)
    return st.one_of(structured, json_value)


@pytest.fixture(scope="module")
def client(tiny_llama, tmp_path_factory):
    scorer = ScalarScorer.load(make_tiny_rm(tiny_llama, tmp_path_factory.mktemp("fuzz-rm")))
    with TestClient(create_app(scorer, ServeSettings(max_batch=4, max_tokens=48)),
                    raise_server_exceptions=False) as c:
        yield c


@pytest.mark.parametrize("path", sorted(FIELDS))
def test_no_5xx(client, path):
    @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
    @given(body=body_for(path))
    def check(body):
        r = client.post(path, content=json.dumps(body), headers={"content-type": "application/json"})
        assert r.status_code < 500, (body, r.status_code, r.text)
        assert "error" in r.json()  or r.status_code == 200

    check()
    assert client.get("/health").status_code == 200
