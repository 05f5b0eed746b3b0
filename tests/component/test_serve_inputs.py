"""The server gets the same input checks as the data files and the Python API, refuses oversized text
before tokenising it, and keeps the schema and the model's details behind the API key."""

from __future__ import annotations

import http.client
import json
import time

import pytest

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402

from rewardlab import load_scorer  # noqa: E402
from rewardlab.data import DataError  # noqa: E402
from rewardlab.serve.app import create_app  # noqa: E402
from rewardlab.serve.settings import ServeSettings  # noqa: E402
from tests.component.test_serve import _uvicorn  # noqa: E402
from tests.rm_helpers import make_tiny_rm  # noqa: E402

LONE = "a\ud800b"  # valid JSON (json.dumps writes "a\\ud800b"), not valid Unicode
USER = {"role": "user", "content": "hi"}
BOT = {"role": "assistant", "content": "hello"}
EMPTY_LAST = [USER, BOT, {"role": "assistant", "content": "  "}]


@pytest.fixture(scope="module")
def scorer(tiny_llama, tmp_path_factory):
    return load_scorer(str(make_tiny_rm(tiny_llama, tmp_path_factory.mktemp("inputs-rm"))))


@pytest.fixture(scope="module")
def client(scorer):
    with TestClient(create_app(scorer), raise_server_exceptions=False) as c:
        yield c


def post(client, path, body, **kw):
    """The body as JSON text (ASCII: a lone surrogate travels as its \\u escape, as any client sends it)."""
    return client.post(path, content=json.dumps(body), headers={"content-type": "application/json"}, **kw)


@pytest.mark.parametrize(("conv", "needle"), [
    (EMPTY_LAST, "field 'messages': the final response is empty"),
    ([{"role": "wizard", "content": "hi"}, BOT], "field 'messages[0].role': expected one of system, user"),
    ([USER, {"role": "assistant", "content": LONE}], "field 'messages[1].content': not valid Unicode text"),
])
def test_the_python_api_refuses_what_the_cli_refuses(scorer, conv, needle):
    with pytest.raises(DataError) as info:
        scorer.score([[USER, BOT], conv])
    assert str(info.value).startswith("conversation 1: ") and needle in str(info.value)


BAD = [  # (path, body, what the error names)
    ("/score", {"conversations": [EMPTY_LAST]}, "conversations[0]': the final response is empty"),
    ("/score", {"conversations": [[{"role": "wizard", "content": "hi"}, BOT]]}, "conversations[0][0].role'"),
    ("/score", {"conversations": [[USER, {"role": "assistant", "content": LONE}]]}, "not valid Unicode"),
    ("/score", {"prompts": [LONE], "responses": ["x"]}, "field 'prompts[0]': not valid Unicode"),
    ("/score", {"prompts": ["hi"], "responses": [" "]}, "field 'responses[0]': the final response is empty"),
    ("/trace", {"prompt": "hi", "response": LONE}, "field 'response': not valid Unicode"),
    ("/trace", {"messages": [USER, BOT, {"role": "assistant", "content": ""}]}, "the final response is empty"),
    ("/compare", {"pairs": [{"prompt": "hi", "a": "ok", "b": LONE}]}, "field 'pairs[0].b': not valid Unicode"),
    ("/compare", {"pairs": [{"prompt": [{"role": "robot", "content": "hi"}], "a": "x", "b": "y"}]}, "role"),
    ("/get_reward", {"query": [""]}, "field 'query[0]': is empty"),
    ("/get_reward", {"query": ["<pad><pad> \n"]}, "query[0]: empty query"),
    ("/get_reward", {"query": [f"<|im_start|>user\n{LONE}<|im_end|>"]}, "field 'query[0]': not valid Unicode"),
]


@pytest.mark.parametrize(("path", "body", "needle"), BAD)
def test_bad_input_is_a_400_naming_the_field(client, path, body, needle):
    r = post(client, path, body)
    assert r.status_code == 400, r.text
    assert needle in r.json()["error"]


def test_after_a_bad_request_the_same_keep_alive_connection_serves_the_next(scorer):
    port: list = []
    server, thread = _uvicorn(create_app(scorer), port)
    conn = http.client.HTTPConnection("127.0.0.1", port[0], timeout=10)
    good = {"prompts": ["hi"], "responses": ["hello"]}
    try:
        for path, body, status in (BAD[2][:2] + (400,), ("/score", good, 200), BAD[5][:2] + (400,),
                                   BAD[-1][:2] + (400,), ("/score", good, 200)):
            conn.request("POST", path, body=json.dumps(body), headers={"content-type": "application/json"})
            r = conn.getresponse()
            answer = r.read()
            assert r.status == status, answer
            json.loads(answer)  # a complete JSON answer, and the connection stays open for the next
    finally:
        conn.close()
        server.should_exit = True
        thread.join(timeout=10)


def test_a_text_too_long_to_fit_is_refused_before_tokenising(scorer, monkeypatch):
    """A 3.9 MB body is under the body limit; its text cannot fit the model's positions whatever it says."""
    from rewardlab.data.encode import ChatEncoder

    calls = []

    def spy(*args, **kwargs):
        calls.append(args)
        raise AssertionError("the text was tokenised")

    monkeypatch.setattr(type(scorer.tokenizer), "__call__", spy)
    monkeypatch.setattr(ChatEncoder, "encode", spy)
    text = "very good " * 390_000  # 3.9 MB
    with TestClient(create_app(scorer)) as c:
        for path, body in (("/score", {"prompts": ["hi"], "responses": [text]}),
                           ("/trace", {"prompt": text, "response": "ok"}),
                           ("/compare", {"pairs": [{"prompt": "hi", "a": text, "b": "ok"}]}),
                           ("/get_reward", {"query": [text]})):
            start = time.perf_counter()
            r = post(c, path, body)
            assert r.status_code == 413, r.text
            assert "characters cannot fit in 256 tokens" in r.json()["error"]
            assert "refused before tokenising" in r.json()["error"]
            assert time.perf_counter() - start < 2.0
            assert c.get("/health").status_code == 200
    assert calls == []


def test_a_conversation_at_the_character_limit_is_still_tokenised(scorer):
    limit = 256 * max(map(len, scorer.tokenizer.get_vocab()))  # positions x the longest token
    with TestClient(create_app(scorer)) as c:
        r = post(c, "/score", {"prompts": ["hi"], "responses": ["x" * (limit - 2)]})
        assert r.status_code == 200, r.text  # one unknown word: one token, however long
        r = post(c, "/score", {"prompts": ["hi"], "responses": ["x" * (limit - 1)]})
        assert r.status_code == 413 and "characters cannot fit" in r.json()["error"]


@pytest.fixture(scope="module")
def keyed(scorer):
    with TestClient(create_app(scorer, ServeSettings(api_key="s3cret", model_name="runs/secret-rm"))) as c:
        yield c


@pytest.mark.parametrize("path", ["/docs", "/redoc", "/openapi.json"])
def test_the_schema_pages_need_the_key_when_one_is_set(keyed, client, path):
    assert keyed.get(path).status_code == 401
    assert keyed.get(path, headers={"Authorization": "Bearer s3cret"}).status_code == 200
    assert client.get(path).status_code == 200  # no key set: open, like every endpoint


def test_health_says_only_status_without_the_key(keyed, client):
    assert keyed.get("/health").json() == {"status": "ok"}
    assert keyed.get("/health", headers={"Authorization": "Bearer wrong"}).json() == {"status": "ok"}
    full = keyed.get("/health", headers={"Authorization": "Bearer s3cret"}).json()
    assert full["model"] == "runs/secret-rm" and full["dtype"] == "float32" and full["can_score"] is True
    assert client.get("/health").json()["dtype"] == "float32"  # no key set: everyone is authorised


def test_an_openrlhf_style_request_without_a_key(keyed, client):
    """OpenRLHF's client sends only Content-Type: a keyed server refuses it, an unkeyed one answers."""
    body = {"query": ["<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\nhello<|im_end|>\n"],
            "prompts": ["<|im_start|>user\nhi<|im_end|>\n"], "labels": [None]}
    assert post(keyed, "/get_reward", body).status_code == 401
    assert post(client, "/get_reward", body).status_code == 200


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.5", "my-host"])
def test_no_key_means_loopback_only_unless_told_it_is_unprotected(host):
    with pytest.raises(ValueError, match=rf"--host {host}: serving beyond this machine needs an API key .*"
                                         "--insecure-no-auth"):
        ServeSettings(host=host)
    ServeSettings(host=host, api_key="k")
    ServeSettings(host=host, insecure_no_auth=True)


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "localhost", "::1", "[::1]"])
def test_loopback_needs_no_key(host):
    ServeSettings(host=host)
