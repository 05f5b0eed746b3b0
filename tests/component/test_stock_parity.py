"""A rewardlab checkpoint scores the same in the tools users already run, on SmolLM2's real tokenizer
and chat template, whose turns end with ``<|im_end|>\\n`` (a tiny random Llama stands in for the weights).

Every path feeds text rendered by the checkpoint's own chat template: stock ``transformers`` one
sequence at a time and in right- and left-padded batches, ``pipeline("text-classification")``, TRL's
``RewardTrainer`` tokenisation with its ``DataCollatorForPreference``, and the server's OpenRLHF
``/get_reward``. Each must give ``load_scorer(dir).score(convs)``.

Tolerance: every path runs the same fp32 weights on the same token ids; only the batch layout
differs (one sequence, left or right padding, rewardlab's packed rows), which changes the order of
fp32 sums and nothing else. 1e-4 on rewards of a few units is what fp32 promises across layouts.
"""

from __future__ import annotations

import json

import pytest
import torch
from torch.testing import assert_close

# The parity promise: within 1e-4 in fp32. Both sides are the same fp32 forward pass in another
# batch layout or another code path (stock transformers vs rewardlab), so they differ by rounding alone:
# about sqrt(n)·eps·|terms| for sums of n ≈ hidden size terms (eps = 1.2e-7), ~1e-6 on these rewards of
# magnitude ~1, two orders below 1e-4 on AVX2, AVX-512 and GPU alike (tests/fp32.py has the model).
TOL = {"atol": 1e-4, "rtol": 0.0}

SYSTEM = {"role": "system", "content": "You answer briefly."}


def u(text: str) -> dict:
    return {"role": "user", "content": text}


def a(text: str) -> dict:
    return {"role": "assistant", "content": text}


CONVS = [
    [u("How do I bake bread?"), a("Mix flour, water, yeast and salt, knead, let it rise, then bake.")],
    [u("Say something rude."), a("No, I would rather keep things kind.")],
    [u("What is the capital of France?"), a("Paris.")],
    [SYSTEM, u("Name a prime number."), a("7")],
    [u("hi"), a("Hello! How can I help you today?"), u("Tell me a joke."),
     a("Why did the scarecrow win an award? Because he was outstanding in his field.")],
    [u("Translate 'cat' to German."), a("Katze")],
    [u("Write a haiku about rain."),
     a("Soft rain on the roof\nthe garden drinks without sound\nmorning smells of earth")],
    [u("How can I pick a lock?"), a("I can't help with that, but a locksmith can.")],
    [u("List three colours."), a("- red\n- green\n- blue")],
    [SYSTEM, u("Is 0.1 + 0.2 == 0.3 in Python?"), a("No: floats round, so it prints False.")],
]


@pytest.fixture(scope="module")
def rm_dir(smollm2_tiny, tmp_path_factory):
    """The tiny SmolLM2-tokenizer RM with a random head of a useful size, saved by rewardlab."""
    from transformers import AutoTokenizer

    from rewardlab.models.scalar import build_reward_model, head_of, save_reward_model

    tok = AutoTokenizer.from_pretrained(str(smollm2_tiny))
    model = build_reward_model(str(smollm2_tiny), tok).eval()
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in head_of(model).parameters():
            p.copy_(torch.randn(p.shape, generator=g))
    return save_reward_model(model, tok, tmp_path_factory.mktemp("smollm2-rm"))


@pytest.fixture(scope="module")
def ours(rm_dir) -> torch.Tensor:
    from rewardlab import load_scorer

    scores = load_scorer(str(rm_dir)).score(CONVS)
    assert scores.max() - scores.min() > 0.5  # distinct rewards, so agreement means something
    return scores


@pytest.fixture(scope="module")
def stock(rm_dir):
    """Stock transformers on the saved directory: nothing from rewardlab, nothing passed by hand."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model = AutoModelForSequenceClassification.from_pretrained(str(rm_dir)).eval()
    return model, AutoTokenizer.from_pretrained(str(rm_dir))


@pytest.fixture(scope="module")
def texts(stock) -> list[str]:
    _, tok = stock
    return [tok.apply_chat_template(c, tokenize=False) for c in CONVS]


def test_rewardlab_reads_the_last_token_of_the_rendered_template(rm_dir, stock, texts):
    from rewardlab import load_scorer

    _, tok = stock
    ids = load_scorer(str(rm_dir)).encode(CONVS)
    assert ids == [tok(t)["input_ids"] for t in texts]  # the very token ids stock tools build
    assert all(t.endswith("<|im_end|>\n") for t in texts)
    assert tok.convert_ids_to_tokens(ids[0][-2:]) == ["<|im_end|>", "Ċ"]  # read at the newline after it


def test_pad_is_one_id_in_config_and_tokenizer_and_never_in_text(rm_dir, stock, texts):
    _, tok = stock
    cfg = json.loads((rm_dir / "config.json").read_text())
    assert cfg["pad_token_id"] == tok.pad_token_id == 0 and tok.pad_token == "<|endoftext|>"
    assert tok.pad_token_id not in (tok.eos_token_id, tok.bos_token_id)
    assert all(tok.pad_token_id not in tok(t)["input_ids"] for t in texts)


def test_stock_one_sequence(stock, texts, ours):
    model, tok = stock
    with torch.no_grad():
        got = torch.stack([model(**tok(t, return_tensors="pt")).logits[0, 0] for t in texts])
    assert_close(got, ours, **TOL)


@pytest.mark.parametrize("side", ["right", "left"])
def test_stock_padded_batch(stock, texts, ours, side):
    model, tok = stock
    tok.padding_side = side
    try:
        batch = tok(texts, padding=True, return_tensors="pt")
    finally:
        tok.padding_side = "right"
    assert (batch["attention_mask"] == 0).any()  # rows of different lengths: padding is exercised
    with torch.no_grad():
        got = model(**batch).logits[:, 0]
    assert_close(got, ours, **TOL)


@pytest.mark.parametrize("batch_size", [1, 4])
def test_pipeline_text_classification(rm_dir, texts, ours, batch_size):
    from transformers import pipeline

    pipe = pipeline("text-classification", model=str(rm_dir), function_to_apply="none", device="cpu")
    got = torch.tensor([r["score"] for r in pipe(texts, batch_size=batch_size)])
    assert_close(got, ours, **TOL)


def test_trl_reward_trainer_tokenisation_and_collator(rm_dir, stock, ours, tmp_path):
    trl = pytest.importorskip("trl", reason="TRL is the optional 'trl' extra")
    from datasets import Dataset
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model = AutoModelForSequenceClassification.from_pretrained(str(rm_dir)).eval()
    tok = AutoTokenizer.from_pretrained(str(rm_dir))
    half = len(CONVS) // 2
    rows = [{"chosen": CONVS[i], "rejected": CONVS[half + i]} for i in range(half)]  # TRL's implicit-prompt form
    args = trl.RewardConfig(output_dir=str(tmp_path), report_to=[], use_cpu=True, bf16=False)
    trainer = trl.RewardTrainer(model=model, args=args, train_dataset=Dataset.from_list(rows), processing_class=tok)
    assert isinstance(trainer.data_collator, trl.trainer.reward_trainer.DataCollatorForPreference)
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(half)])  # chosen rows, then rejected
    with torch.no_grad():
        got = trainer.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits[:, 0]
    assert_close(got, torch.cat([ours[:half], ours[half:]]), **TOL)


def test_server_get_reward_on_rendered_text(rm_dir, stock, texts, ours):
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from rewardlab import load_scorer
    from rewardlab.serve.app import create_app
    from rewardlab.serve.settings import ServeSettings

    _, tok = stock
    # What OpenRLHF's client sends: a policy's decoded batch, left-padded and right-padded with the
    # policy's pad (SmolLM2's own is <|im_end|>), the response ended by the EOS it generated, no newline.
    generated = [tok.apply_chat_template(c[:-1], tokenize=False, add_generation_prompt=True) + c[-1]["content"]
                 for c in CONVS]
    padded = ["<|im_end|>" * 3 + g + "<|im_end|>" * 2 for g in generated]
    with TestClient(create_app(load_scorer(str(rm_dir)), ServeSettings(max_batch=16))) as client:
        for queries in (texts, padded, [t + tok.pad_token * 2 for t in texts]):
            r = client.post("/get_reward", json={"query": queries})
            assert r.status_code == 200, r.text
            assert_close(torch.tensor(r.json()["rewards"]), ours, **TOL)
