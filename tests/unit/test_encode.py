"""Chat encoding: where BOS and EOS go, and the truncation policy, token by token."""

from __future__ import annotations

import pytest

from rewardlab.data.encode import ChatEncoder, EncodeError
from rewardlab.types import PreferencePair
from tests.conftest import CHAT_TEMPLATE, make_tokenizer

IM_START, IM_END = "<|im_start|>", "<|im_end|>"


@pytest.fixture(scope="module")
def tok(tmp_path_factory):
    """The shared tiny tokenizer: ChatML template, no automatic BOS, newlines not tokenized."""
    return make_tokenizer(tmp_path_factory.mktemp("tok"))


def bos_tokenizer(template: str | None):
    """A tokenizer whose post-processor adds ``<s>`` (like Llama/Mistral) and that keeps ``\\n`` as a token,
    so a newline written after the turn terminator would show up in the ids."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    words = [
        "<pad>",
        "<unk>",
        "<s>",
        IM_START,
        IM_END,
        "\n",
        ":",
        "?",
        "user",
        "assistant",
        "hello",
        "hi",
        "good",
    ]
    tk = Tokenizer(models.WordLevel(vocab={w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(" ", "removed"),
            pre_tokenizers.Split("\n", "isolated"),
            pre_tokenizers.Punctuation(),
        ]
    )
    tk.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A $B", special_tokens=[("<s>", 2)]
    )
    tok = PreTrainedTokenizerFast(
        tokenizer_object=tk,
        pad_token="<pad>",
        unk_token="<unk>",
        bos_token="<s>",
        eos_token=IM_END,
        additional_special_tokens=[IM_START],
    )
    tok.chat_template = template
    return tok


def user(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


def assistant(text: str) -> list[dict]:
    return [{"role": "assistant", "content": text}]


def tokens(tok, ids: list[int]) -> list[str]:
    return tok.convert_ids_to_tokens(ids)


# --- layout --------------------------------------------------------------------------------------


def test_chatml_layout_ends_at_the_terminator(tok):
    enc = ChatEncoder(tok).encode(user("how are you ?"), assistant("good thanks"))
    assert tokens(tok, enc.ids) == [
        IM_START,
        "user",
        "how",
        "are",
        "you",
        "?",
        IM_END,
        IM_START,
        "assistant",
        "good",
        "thanks",
        IM_END,
    ]
    assert enc.prompt_len == 9 and enc.response_len == 3
    assert enc.ids[-1] == tok.eos_token_id == 3  # the reward is read at EOS
    assert not enc.prompt_truncated and not enc.response_truncated


@pytest.mark.parametrize("template", [CHAT_TEMPLATE, "{{ bos_token }}" + CHAT_TEMPLATE])
def test_bos_added_once_and_the_turn_ends_as_the_template_ends_it(template):
    tok = bos_tokenizer(template)
    assert tok("hello")["input_ids"] == [2, 10]  # the tokenizer adds <s> by itself
    encoder = ChatEncoder(tok)
    assert encoder.adds_bos and encoder.turn_end == IM_END + "\n" and encoder.terminator == IM_END
    enc = encoder.encode(user("hello ?"), assistant("good hi"))
    assert tokens(tok, enc.ids) == [
        "<s>",
        IM_START,
        "user",
        "\n",
        "hello",
        "?",
        IM_END,
        "\n",
        IM_START,
        "assistant",
        "\n",
        "good",
        "hi",
        IM_END,
        "\n",
    ]
    assert enc.prompt_len == 11
    # The template writes "<|im_end|>\n": the reward is read at the newline, the last token of the
    # rendered conversation, as stock transformers reads it.
    bare = encoder.encode([], assistant("good hi"))
    assert tokens(tok, bare.ids) == ["<s>", IM_START, "assistant", "\n", "good", "hi", IM_END, "\n"]
    assert bare.prompt_len == 1  # BOS belongs to the (empty) prompt, whoever wrote it


def test_bos_added_once_without_a_template():
    tok = bos_tokenizer(None)
    enc = ChatEncoder(tok).encode(user("hello ?"), assistant("good hi"))
    assert tokens(tok, enc.ids) == [
        "<s>",
        "user",
        ":",
        "hello",
        "?",
        "\n",
        "assistant",
        ":",
        "good",
        "hi",
        IM_END,
    ]
    assert enc.prompt_len == 6


def test_encoder_tokenizer_gets_cls_and_sep(tmp_path):
    from transformers import BertTokenizerFast

    vocab = [
        "[PAD]",
        "[UNK]",
        "[CLS]",
        "[SEP]",
        "[MASK]",
        ":",
        "user",
        "assistant",
        "how",
        "are",
        "you",
        "good",
    ]
    tok = BertTokenizerFast(vocab={w: i for i, w in enumerate(vocab)})
    enc = ChatEncoder(tok).encode(user("How are you"), assistant("good"))
    assert tokens(tok, enc.ids) == [
        "[CLS]",
        "user",
        ":",
        "how",
        "are",
        "you",
        "[SEP]",
        "assistant",
        ":",
        "good",
        "[SEP]",
    ]
    assert enc.prompt_len == 7
    # max_length counts the three specials: 9 - 3 leaves 6 tokens, 3 of them for the prompt.
    cut = ChatEncoder(tok, max_length=9, min_prompt_tokens=1).encode(user("How are you"), assistant("good"))
    assert tokens(tok, cut.ids) == ["[CLS]", "how", "are", "you", "[SEP]", "assistant", ":", "good", "[SEP]"]
    assert (cut.prompt_len, cut.prompt_truncated, cut.response_truncated) == (5, True, False)


# --- errors --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "response", [[], assistant(""), assistant(" \n "), [{"role": "assistant", "content": None}]]
)
def test_empty_response_raises(tok, response):
    with pytest.raises(EncodeError, match="pair-9: the response is empty"):
        ChatEncoder(tok).encode(user("hi"), response, "pair-9")


def test_conversation_must_end_with_the_judged_assistant_turn(tok):
    encoder = ChatEncoder(tok)
    with pytest.raises(EncodeError, match="row 4: it must end with an assistant response"):
        encoder.encode_conversation([*user("hi"), *assistant("yes"), *user("thanks")], "row 4")
    with pytest.raises(EncodeError, match="it must end with an assistant response"):
        encoder.encode_conversation([])
    enc = encoder.encode_conversation([*user("hi"), *assistant("yes")])
    assert tokens(tok, enc.ids[enc.prompt_len :]) == ["yes", IM_END]


# --- truncation ----------------------------------------------------------------------------------

PROMPT = user(
    " ".join(["please", "help", "me", "with", "this", "question"] * 3 + ["hi", "thanks"])
)  # 20 words
RESPONSE = assistant("sure here is the answer yes")  # 6 words


@pytest.fixture(scope="module")
def full(tok) -> tuple[list[int], list[int]]:
    """Untruncated prompt (25 tokens) and response (7 tokens: six words and <|im_end|>)."""
    enc = ChatEncoder(tok).encode(PROMPT, RESPONSE)
    p, r = enc.ids[: enc.prompt_len], enc.ids[enc.prompt_len :]
    assert (len(p), len(r)) == (25, 7) and r[-1] == tok.eos_token_id
    return p, r


def test_no_truncation_at_the_limit(tok, full):
    encoder = ChatEncoder(tok, max_length=32, min_prompt_tokens=4)
    enc = encoder.encode(PROMPT, RESPONSE)
    assert enc.ids == full[0] + full[1]
    assert encoder.stats.to_dict() == {
        "prompt_truncated": 0,
        "response_truncated": 0,
        "identical_after_truncation": 0,
        "identical_examples": [],
    }


def test_prompt_is_cut_from_the_left_first(tok, full):
    p, r = full
    encoder = ChatEncoder(tok, max_length=20, min_prompt_tokens=4)
    enc = encoder.encode(PROMPT, RESPONSE)
    assert enc.ids == p[-13:] + r  # 20 - 7 response tokens = 13 prompt tokens, the latest ones
    assert tokens(tok, enc.ids[:4]) == ["this", "question", "please", "help"]
    assert (enc.prompt_len, enc.prompt_truncated, enc.response_truncated) == (13, True, False)
    assert (encoder.stats.prompt_truncated, encoder.stats.response_truncated) == (1, 0)


def test_then_the_response_is_cut_from_the_right_keeping_eos(tok, full):
    p, r = full
    encoder = ChatEncoder(tok, max_length=10, min_prompt_tokens=4)
    enc = encoder.encode(PROMPT, RESPONSE)
    assert enc.ids == p[-4:] + r[:5] + [tok.eos_token_id]  # prompt stops at 4 tokens; 6 left for the response
    assert tokens(tok, enc.ids) == [
        "thanks",
        IM_END,
        IM_START,
        "assistant",
        "sure",
        "here",
        "is",
        "the",
        "answer",
        IM_END,
    ]
    assert (enc.prompt_truncated, enc.response_truncated) == (True, True)
    encoder.encode(PROMPT, RESPONSE)
    assert (encoder.stats.prompt_truncated, encoder.stats.response_truncated) == (2, 2)


def test_truncation_keeps_an_automatic_bos():
    tok = bos_tokenizer(CHAT_TEMPLATE)
    long_prompt = user(" ".join(["hello", "hi"] * 10))
    untruncated = ChatEncoder(tok).encode(long_prompt, assistant("good"))
    p = untruncated.ids[: untruncated.prompt_len]
    enc = ChatEncoder(tok, max_length=9, min_prompt_tokens=4).encode(long_prompt, assistant("good"))
    # 9 - 3 response tokens = 6 prompt tokens: <s>, then the latest 5 (the BOS is not cut with the rest).
    assert tokens(tok, enc.ids) == ["<s>", IM_END, "\n", IM_START, "assistant", "\n", "good", IM_END, "\n"]
    assert enc.ids[:6] == [p[0], *p[-5:]] and enc.prompt_len == 6


def test_a_cut_response_keeps_the_whole_turn_end():
    tok = bos_tokenizer(CHAT_TEMPLATE)
    encoder = ChatEncoder(tok, max_length=9, min_prompt_tokens=6)
    enc = encoder.encode(user("hi"), assistant("good hi good hi good"))
    # 6 prompt tokens leave 3 for the response: one word, then "<|im_end|>" and "\n" (two tokens).
    assert tokens(tok, enc.ids[enc.prompt_len:]) == ["good", IM_END, "\n"]
    assert enc.response_truncated
    with pytest.raises(EncodeError, match="no room for the response"):  # 1 token cannot hold the turn's end
        ChatEncoder(tok, max_length=7, min_prompt_tokens=6).encode(user("hi"), assistant("good hi"))


def test_smollm2_reads_the_newline_after_im_end_and_truncation_keeps_both(smollm2_tokenizer_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(smollm2_tokenizer_dir))
    conv = [*user("How do I bake bread?"), *assistant("Mix flour, water and yeast, knead, let it rise, bake.")]
    enc = ChatEncoder(tok).encode_conversation(conv)
    assert enc.ids == tok(tok.apply_chat_template(conv, tokenize=False))["input_ids"]
    assert tokens(tok, enc.ids[-2:]) == [IM_END, "Ċ"]
    cut = ChatEncoder(tok, max_length=len(enc.ids) - 5, min_prompt_tokens=len(enc.ids)).encode_conversation(conv)
    assert cut.response_truncated and cut.ids[-2:] == enc.ids[-2:]
    assert cut.ids[:-2] == enc.ids[: len(cut.ids) - 2]  # the content was cut, the turn's end kept whole


@pytest.mark.parametrize("query,core", [
    ("<|im_start|>assistant\nhi<|im_end|>\n", "<|im_start|>assistant\nhi"),  # as the template renders it
    ("<|im_start|>assistant\nhi<|im_end|>", "<|im_start|>assistant\nhi"),  # as a policy generates it
    ("<pad><pad><|im_start|>assistant\nhi<|im_end|><pad>", "<|im_start|>assistant\nhi"),
    ("<|im_end|><|im_start|>assistant\nhi<|im_end|>\n<|im_end|><|im_end|>", "<|im_start|>assistant\nhi"),
    ("<|im_start|>assistant\nhi \n<|im_end|>\n", "<|im_start|>assistant\nhi \n"),  # the response's own space
    ("<|im_start|>assistant\nhi", "<|im_start|>assistant\nhi"),  # cut before its end: ended here
])
def test_strip_rendered_leaves_what_encode_renders_before_the_turn_end(query, core):
    encoder = ChatEncoder(bos_tokenizer(CHAT_TEMPLATE))
    assert encoder.strip_rendered(query, ["<pad>", IM_END]) == core


def test_strip_rendered_with_a_template_whose_turns_end_in_whitespace_only():
    template = "{% for m in messages %}{{ m['role'] + ': ' + m['content'] + '\n\n' }}{% endfor %}"
    encoder = ChatEncoder(bos_tokenizer(template))
    assert (encoder.turn_end, encoder.terminator) == ("\n\n", "")
    for query in ("user: hi\n\nassistant: good\n\n", "user: hi\n\nassistant: good<pad>"):
        assert encoder.strip_rendered(query, ["<pad>"]) + encoder.turn_end == "user: hi\n\nassistant: good\n\n"


def test_no_room_for_the_response_raises(tok):
    with pytest.raises(EncodeError, match="max_length=8 leaves no room for the response"):
        ChatEncoder(tok, max_length=8, min_prompt_tokens=8).encode(PROMPT, RESPONSE)


def test_pairs_made_identical_by_truncation_are_dropped_and_counted(tok):
    encoder = ChatEncoder(tok, max_length=7, min_prompt_tokens=4)  # room for 2 response words + EOS
    same = PreferencePair(PROMPT, assistant("sure here good"), assistant("sure here bad"), id="p-same")
    differ = PreferencePair(PROMPT, assistant("good sure here"), assistant("bad sure here"), id="p-differ")
    assert encoder.encode_pair(same) is None
    chosen, rejected = encoder.encode_pair(differ)
    assert tokens(tok, chosen.ids[-3:]) == ["good", "sure", IM_END]
    assert tokens(tok, rejected.ids[-3:]) == ["bad", "sure", IM_END]
    assert encoder.stats.identical_after_truncation == ["p-same"]
    assert encoder.stats.to_dict() == {
        "prompt_truncated": 4,
        "response_truncated": 4,
        "identical_after_truncation": 1,
        "identical_examples": ["p-same"],
    }
