"""Scalar reward models end to end on tiny in-process models: scoring invariances, stock transformers
compatibility, MLP and LoRA round trips, encoders, and the errors a user sees instead of a silent score."""

from __future__ import annotations

import json
import os
import shutil

import pytest
import torch
from torch.testing import assert_close

from rewardlab.data import DataError
from rewardlab.data.encode import EncodeError
from rewardlab.models.batching import PaddedBatch, pad
from rewardlab.models.loading import load_reward_model
from rewardlab.models.packing import VARLEN, supports_packing
from rewardlab.models.scalar import (
    HeadConfig,
    backbone_of,
    build_reward_model,
    head_of,
    reward_forward,
    save_reward_model,
)
from rewardlab.models.scorer import ScalarScorer
from tests.conftest import WORDS, synthetic_pairs
from tests.fp32 import forward_terms, fp32_atol, fp32_tol, grad_terms

LONGEST = 64
"""No sequence in these tests is longer (the tiny recipes' max_length)."""


def tol(model, ref: torch.Tensor) -> dict:
    """Every score comparison here is one fp32 computation against another order of it (packed, padded,
    forked, batched, stock transformers, a reloaded or merged model): what fp32 promises for rewards of
    ``ref``'s magnitude from ``model``'s shape (tests/fp32.py)."""
    return fp32_tol(forward_terms(model.config, LONGEST), ref)


def tokenizer_of(path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(path))


def perturb_(module: torch.nn.Module, seed: int, std: float = 1.0) -> None:
    """Random weights of a useful size, so scores are O(1) and tolerances mean something."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * std)


@pytest.fixture(scope="module")
def llama_rm(tiny_llama):
    tok = tokenizer_of(tiny_llama)
    model = build_reward_model(str(tiny_llama), tok).eval()
    perturb_(head_of(model), seed=0)
    return model, tok


@pytest.fixture(scope="module")
def convs() -> list[list[dict]]:
    """Twelve conversations of different lengths, from the shared synthetic pairs."""
    rows = synthetic_pairs(6, seed=3)
    return [
        [{"role": "user", "content": r["prompt"]}, {"role": "assistant", "content": r[side]}]
        for r in rows
        for side in ("chosen", "rejected")
    ]


def unpadded(model, seqs) -> torch.Tensor:
    """Each sequence scored by itself: the reference every batching scheme must reproduce."""
    out = []
    with torch.no_grad():
        for s in seqs:
            ids = torch.tensor([s])
            out.append(reward_forward(model, PaddedBatch(ids, torch.ones_like(ids)))[0])
    return torch.stack(out)


# --- packing, batching and padding side ------------------------------------------------------------


@pytest.mark.parametrize("packing", [True, False])
@pytest.mark.parametrize("batch_tokens", [1, 40, 100_000])
def test_scores_do_not_depend_on_batching(llama_rm, convs, packing, batch_tokens):
    model, tok = llama_rm
    scorer = ScalarScorer(model, tok, batch_tokens=batch_tokens, packing=packing)
    assert scorer.packing is packing
    seqs = scorer.encode(convs)
    assert len({len(s) for s in seqs}) > 3  # mixed lengths, so padding and packing both matter
    ref = unpadded(model, seqs)
    assert ref.max() - ref.min() > 0.1
    assert_close(scorer.score(convs), ref, **tol(model, ref))


def test_packing_auto_packs_where_packed_attention_pays(llama_rm, convs, monkeypatch):
    from rewardlab.models import batching, packing
    from rewardlab.models.batching import packing_pays

    assert packing_pays("cpu") and packing_pays(torch.device("cpu"))
    # A GPU packs through flex attention when this torch has it, and pads when it does not.
    assert packing_pays("cuda") is packing.flex_available()
    monkeypatch.setattr(packing, "flex_available", lambda: False)
    assert not packing_pays("cuda") and not packing_pays("cuda:1")
    monkeypatch.undo()
    model, tok = llama_rm
    scorer = ScalarScorer(model, tok)
    assert scorer.packing is True and scorer.layout == "pack"  # the model is on the CPU
    packed_scores = scorer.score(convs)
    seen = []
    monkeypatch.setattr(batching, "packing_pays", lambda device: seen.append(device) or False)
    assert scorer.packing is False and scorer.layout == "pad"
    assert_close(scorer.score(convs), packed_scores, **tol(model, packed_scores))
    assert seen and all(torch.device(d) == torch.device("cpu") for d in seen)  # asked about the model's own device
    assert ScalarScorer(model, tok, packing=True).packing is True  # an explicit choice is kept
    with pytest.raises(ValueError, match="packing must be True, False or 'auto'"):
        ScalarScorer(model, tok, packing="yes")


def test_forked_pairs_give_the_rewards_and_gradients_of_separate_sequences(llama_rm, convs):
    from rewardlab.models.packing import fork_pairs, pack

    model, tok = llama_rm
    seqs = ScalarScorer(model, tok).encode(convs)
    chosen, rejected = seqs[0::2], seqs[1::2]  # same prompt, two responses
    chosen.append(seqs[0][1:])  # and a pair whose sides share no first token (prompts cut unequally)
    rejected.append(seqs[1])
    fb = fork_pairs(chosen, rejected)
    assert [p > 1 for _, p, _, _ in fb.forks] == [True] * (len(chosen) - 1) + [False]
    assert fb.forks[-1][1] == 0
    assert fb.input_ids.numel() < sum(map(len, seqs))
    runs = []
    for batch in (fb, pack(chosen + rejected)):
        model.zero_grad()
        r = reward_forward(model, batch)
        (r * torch.linspace(-1, 1, r.numel())).sum().backward()  # a loss that weighs every reward
        runs.append((r.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}))
    model.zero_grad()
    (forked, g_forked), (separate, g_separate) = runs
    assert_close(forked, separate, **tol(model, separate))
    assert_close(forked, unpadded(model, chosen + rejected), **tol(model, separate))
    assert g_forked.keys() == g_separate.keys() and len(g_forked) > 5
    # Forked and separate sum each weight's gradient over other tokens in another order: what fp32
    # promises for gradients of each tensor's magnitude (tests/fp32.py).
    terms = grad_terms(model.config, LONGEST, sum(map(len, chosen + rejected)))
    for name, g in g_forked.items():
        assert (g - g_separate[name]).abs().max() <= fp32_atol(terms, g_separate[name]), name


def test_left_padding_right_padding_and_packing_agree(llama_rm, convs):
    model, tok = llama_rm
    seqs = ScalarScorer(model, tok).encode(convs)
    ref = unpadded(model, seqs)
    with torch.no_grad():
        for side in ("left", "right"):
            assert_close(reward_forward(model, pad(seqs, model.config.pad_token_id, side=side)), ref,
                         **tol(model, ref))


# --- stock transformers compatibility ------------------------------------------------------------


@pytest.fixture(scope="module")
def saved_linear(llama_rm, tmp_path_factory):
    model, tok = llama_rm
    return save_reward_model(model, tok, tmp_path_factory.mktemp("linear-rm"))


def test_saved_config_is_stock(saved_linear):
    cfg = json.loads((saved_linear / "config.json").read_text())
    assert cfg["architectures"] == ["LlamaForSequenceClassification"]
    assert cfg["id2label"] == {"0": "LABEL_0"}  # num_labels=1
    assert cfg["pad_token_id"] == 0 and cfg["eos_token_id"] == 3  # <pad>, distinct from <|im_end|>
    assert VARLEN not in (saved_linear / "config.json").read_text()  # another process could not load it
    assert cfg["rewardlab"]["head"] == {"type": "linear", "hidden_sizes": [256], "pooling": "last"}


def test_stock_transformers_gives_the_same_scores(saved_linear, convs):
    from transformers import AutoModelForSequenceClassification

    stock = AutoModelForSequenceClassification.from_pretrained(str(saved_linear)).eval()
    assert stock.config._attn_implementation != VARLEN
    scorer = ScalarScorer.load(saved_linear)
    seqs = scorer.encode(convs)
    ours = scorer.score_ids(seqs)
    with torch.no_grad():
        single = torch.stack([stock(input_ids=torch.tensor([s])).logits[0, 0] for s in seqs])
        batch = pad(seqs, stock.config.pad_token_id)  # stock reads the last non-pad token of each row
        padded = stock(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits[:, 0]
    assert ours.max() - ours.min() > 0.1
    assert_close(single, ours, **tol(stock, ours))
    assert_close(padded, ours, **tol(stock, ours))


def test_bf16_scoring_keeps_residual_stream_norms_and_head_in_fp32(saved_linear, convs):
    fp32 = ScalarScorer.load(saved_linear)
    bf16 = ScalarScorer.load(saved_linear, dtype="bfloat16")
    assert fp32.dtype == torch.float32 and bf16.dtype == torch.bfloat16
    layer = backbone_of(bf16.model).layers[0]
    assert layer.mlp.down_proj.weight.dtype == torch.bfloat16
    assert layer.input_layernorm.weight.dtype == torch.float32 and head_of(bf16.model).weight.dtype == torch.float32
    seen = []
    hook = layer.register_forward_hook(lambda _m, _a, out: seen.append((out[0] if isinstance(out, tuple) else out).dtype))
    seqs = fp32.encode(convs)
    ref, got = fp32.score_ids(seqs), bf16.score_ids(seqs)
    hook.remove()
    assert seen and set(seen) == {torch.float32}  # the residual stream between blocks
    # Not an fp32 comparison: bf16 keeps 8 significant bits, so each of the ~10 matmuls a reward passes
    # through rounds its inputs by up to 2^-9 (relative), about 1.2% in all (in quadrature); 5% of the
    # rewards' spread allows four times that.
    assert (got - ref).abs().max() < 0.05 * (ref.max() - ref.min())
    assert not torch.equal(got, ref)  # the matmuls did run in bf16


def test_load_puts_the_model_on_the_device_asked_for(saved_linear):
    from rewardlab.models.scorer import resolve_device

    scorer = ScalarScorer.load(saved_linear, device="cpu")
    assert {p.device.type for p in scorer.model.parameters()} == {"cpu"}
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device(None).type == expected and resolve_device("auto").type == expected
    with pytest.raises(ValueError, match="device must be auto, cpu, cuda or cuda:N, got 'tpu'"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA device is available"):
            ScalarScorer.load(saved_linear, device="cuda")


# --- MLP head and LoRA round trips -----------------------------------------------------------------


def test_mlp_head_round_trip(tiny_llama, convs, tmp_path):
    tok = tokenizer_of(tiny_llama)
    model = build_reward_model(str(tiny_llama), tok, HeadConfig(type="mlp", hidden_sizes=[16, 8])).eval()
    perturb_(head_of(model), seed=1)
    widths = [(m.in_features, m.out_features) for m in head_of(model) if isinstance(m, torch.nn.Linear)]
    assert widths == [(32, 16), (16, 8), (8, 1)]
    before = ScalarScorer(model, tok).score(convs)
    out = save_reward_model(model, tok, tmp_path / "mlp")
    loaded = load_reward_model(out)
    assert head_of(loaded)[0].weight.shape == (16, 32)
    assert before.max() - before.min() > 0.1
    # Exact by construction: the same fp32 weights (safetensors stores them bit for bit) through the same
    # operations in the same order.
    assert_close(ScalarScorer(loaded, tok).score(convs), before, atol=0, rtol=0)


def test_stock_transformers_refuses_an_mlp_head_instead_of_scoring_with_a_random_one(tiny_llama, convs, tmp_path):
    """Stock transformers has no MLP head: loading one would score with a fresh linear head. It must
    stop, loudly, for every stock entry point, while rewardlab loads the same directory exactly."""
    from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer, pipeline

    tok = tokenizer_of(tiny_llama)
    model = build_reward_model(str(tiny_llama), tok, HeadConfig(type="mlp", hidden_sizes=[16])).eval()
    perturb_(head_of(model), seed=1)
    out = save_reward_model(model, tok, tmp_path / "mlp")
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["model_type"] == "rewardlab-mlp-head" and "architectures" not in cfg
    assert cfg["rewardlab"]["model_type"] == "llama"
    for load in (AutoModelForSequenceClassification.from_pretrained, AutoConfig.from_pretrained,
                 lambda p: pipeline("text-classification", model=p)):
        with pytest.raises(ValueError, match="model type `rewardlab-mlp-head`"):
            load(str(out))
    assert AutoTokenizer.from_pretrained(str(out)).pad_token_id == 0  # the tokenizer alone still loads
    assert_close(ScalarScorer.load(out).score(convs), ScalarScorer(model, tok).score(convs), atol=0, rtol=0)
    again = save_reward_model(load_reward_model(out), tok, tmp_path / "again")  # saved again: still marked
    assert json.loads((again / "config.json").read_text()) == cfg


def lora_model(tiny_llama, seed: int):
    from peft import LoraConfig, get_peft_model

    tok = tokenizer_of(tiny_llama)
    base = build_reward_model(str(tiny_llama), tok)
    cfg = LoraConfig(
        task_type="SEQ_CLS",
        r=4,
        lora_alpha=8,
        target_modules=["q_proj", "v_proj", "down_proj"],
        modules_to_save=["score"],
    )
    model = get_peft_model(base, cfg)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name or "modules_to_save" in name:  # B starts at 0: make the update real
                p.copy_(torch.randn(p.shape, generator=g) * 0.5)
    return model.eval(), tok


def test_lora_adapter_round_trip(tiny_llama, convs, tmp_path):
    model, tok = lora_model(tiny_llama, seed=2)
    before = ScalarScorer(model, tok).score(convs)
    bare = ScalarScorer(build_reward_model(str(tiny_llama), tok), tok).score(convs)
    assert (before - bare).abs().max() > 0.1  # the adapter and head change the scores
    out = save_reward_model(model, tok, tmp_path / "adapter", merge=False, base_model=str(tiny_llama))
    assert (out / "adapter_config.json").exists() and not (out / "model.safetensors").exists()
    meta = json.loads((out / "rewardlab_adapter.json").read_text())
    assert meta == {"base_model": os.path.relpath(tiny_llama, out),
                    "head": {"type": "linear", "hidden_sizes": [256], "pooling": "last"}}
    assert_close(ScalarScorer(load_reward_model(out), tok).score(convs), before, **tol(model, before))


def test_lora_adapter_base_model_defaults_to_what_peft_recorded(tiny_llama, tmp_path):
    model, tok = lora_model(tiny_llama, seed=3)
    out = save_reward_model(model, tok, tmp_path / "adapter", merge=False)
    assert json.loads((out / "rewardlab_adapter.json").read_text())["base_model"] == os.path.relpath(tiny_llama, out)


def test_lora_adapter_records_its_base_portably_and_loads_elsewhere(tiny_llama, convs, tmp_path):
    """No absolute path of the training machine in the adapter: the base is relative to the adapter
    directory, so the two can move together (or it is an alias or hub id, see test_checkpoint)."""
    model, tok = lora_model(tiny_llama, seed=3)
    before = ScalarScorer(model, tok).score(convs)
    machine = tmp_path / "training-machine"
    shutil.copytree(tiny_llama, machine / "base")
    out = save_reward_model(model, tok, machine / "runs" / "adapter", merge=False, base_model=str(machine / "base"))
    for name in ("rewardlab_adapter.json", "adapter_config.json"):
        text = (out / name).read_text()
        assert str(tmp_path) not in text and str(tiny_llama) not in text, name
    assert json.loads((out / "adapter_config.json").read_text())["base_model_name_or_path"] == "../../base"
    moved = tmp_path / "elsewhere"
    machine.rename(moved)
    assert_close(ScalarScorer.load(moved / "runs" / "adapter").score(convs), before, **tol(model, before))
    shutil.rmtree(moved / "base")
    with pytest.raises(FileNotFoundError, match="keep the adapter beside its base model"):
        load_reward_model(moved / "runs" / "adapter")


def test_lora_merged_round_trip(tiny_llama, convs, tmp_path):
    model, tok = lora_model(tiny_llama, seed=4)
    before = ScalarScorer(model, tok).score(convs)
    out = save_reward_model(model, tok, tmp_path / "merged", merge=True)
    assert (out / "model.safetensors").exists() and not (out / "adapter_config.json").exists()
    # Merged weights W + BA are rounded once more than the adapter's separate path: within the tolerance.
    assert_close(ScalarScorer.load(out).score(convs), before, **tol(model, before))
    assert_close(ScalarScorer(model, tok).score(convs), before, **tol(model, before))  # merging in place kept the scores


# --- encoders ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def bert_dir(tiny_bert, tmp_path_factory):
    """tiny_bert with a tokenizer that knows its words (built from ``vocab=``, which transformers 5 reads)."""
    from transformers import BertTokenizerFast

    d = tmp_path_factory.mktemp("bert-words")
    for f in tiny_bert.iterdir():
        if f.suffix in (".json", ".safetensors", ".txt") and not f.name.startswith("tokenizer"):
            shutil.copy(f, d / f.name)
    BertTokenizerFast(vocab=str(tiny_bert / "vocab.txt")).save_pretrained(d)
    return d


def test_encoder_rm_scores_through_padding(bert_dir, convs):
    tok = tokenizer_of(bert_dir)
    assert tok.convert_ids_to_tokens(tok("how are you")["input_ids"]) == [
        "[CLS]",
        "how",
        "are",
        "you",
        "[SEP]",
    ]
    model = build_reward_model(str(bert_dir), tok).eval()
    assert type(model).__name__ == "BertForSequenceClassification"
    assert not supports_packing(model)
    perturb_(head_of(model), seed=5)
    scorer = ScalarScorer(model, tok, batch_tokens=100_000, packing=True)
    assert scorer.packing is False  # asked for, but an encoder falls back to padding
    seqs = scorer.encode(convs)
    assert all(s[0] == tok.cls_token_id and s[-1] == tok.sep_token_id for s in seqs)
    ref = unpadded(model, seqs)
    assert ref.max() - ref.min() > 1e-3
    for batch_tokens in (1, 60, 100_000):
        scorer.batch_tokens = batch_tokens
        assert_close(scorer.score_ids(seqs), ref, **tol(model, ref))


def test_decoder_supports_packing(llama_rm):
    assert supports_packing(llama_rm[0])


# --- errors instead of silent scores -------------------------------------------------------------


def test_empty_response_raises(llama_rm):
    scorer = ScalarScorer(*llama_rm)
    for empty in ("", "   \n"):
        # the check every input gets (rewardlab.data.validate), as in the CLI and the server
        with pytest.raises(DataError, match="conversation 1: field 'messages': the final response is empty"):
            scorer.score(
                [
                    [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yes"}],
                    [{"role": "user", "content": "hi"}, {"role": "assistant", "content": empty}],
                ]
            )


def test_too_long_conversation_raises_naming_its_index(llama_rm):
    model, tok = llama_rm
    assert model.config.max_position_embeddings == 256
    scorer = ScalarScorer(model, tok)
    ok = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yes"}]
    long = [{"role": "user", "content": " ".join(WORDS * 6)}, {"role": "assistant", "content": "yes"}]
    with pytest.raises(EncodeError, match=r"conversation 2: \d+ tokens exceed the model's 256 positions"):
        scorer.score([ok, ok, long])
    with pytest.raises(EncodeError, match=r"sequence 1: 300 tokens exceed the model's 256 positions"):
        scorer.score_ids([[5, 6, 3], [5] * 299 + [3]])
    truncating = ScalarScorer(model, tok, max_length=256)  # an explicit limit truncates instead
    assert truncating.score([long]).isfinite().all()
    assert truncating.encoder.stats.prompt_truncated == 1


def test_conversation_must_end_with_an_assistant_turn(llama_rm):
    scorer = ScalarScorer(*llama_rm)
    with pytest.raises(DataError, match="conversation 0: field 'messages': must end with the assistant response"):
        scorer.score([[{"role": "assistant", "content": "hi"}, {"role": "user", "content": "yes"}]])


def test_a_checkpoint_of_the_old_read_position_says_so_when_loaded(saved_linear, tmp_path, caplog):
    """Format 1 heads learned the reward at the turn terminator; loading one warns instead of silently
    scoring it at the template's last token. A current checkpoint loads without that warning."""
    import logging

    with caplog.at_level(logging.WARNING, logger="rewardlab"):
        load_reward_model(saved_linear)
    assert "checkpoint format" not in caplog.text
    old = tmp_path / "old"
    shutil.copytree(saved_linear, old)
    cfg = json.loads((old / "config.json").read_text())
    cfg["rewardlab"]["format_version"] = 1
    (old / "config.json").write_text(json.dumps(cfg))
    with caplog.at_level(logging.WARNING, logger="rewardlab"):
        load_reward_model(old)
    assert "saved in checkpoint format 1" in caplog.text and "retrain" in caplog.text


def test_mean_pooled_head_reads_the_mean_of_every_real_token_packed_or_padded(tiny_llama, convs, tmp_path):
    """``pooling: mean``: the head reads the final hidden states averaged over the real tokens, computed
    independently here from one unpadded sequence at a time; packed, padded, saved and reloaded all agree,
    and the per-position trace ends at the score."""
    from rewardlab.models.packing import pack
    from rewardlab.models.trace import head_at_every_position

    tok = tokenizer_of(tiny_llama)
    model = build_reward_model(str(tiny_llama), tok, HeadConfig(pooling="mean")).eval()
    perturb_(head_of(model), seed=2)
    scorer = ScalarScorer(model, tok)
    seqs = scorer.encode(convs)
    with torch.no_grad():
        want = torch.stack([
            head_of(model)(backbone_of(model)(input_ids=torch.tensor([s]), use_cache=False)
                           .last_hidden_state[0].mean(0)).squeeze(-1) for s in seqs]).float()
        last = torch.stack([
            head_of(model)(backbone_of(model)(input_ids=torch.tensor([s]), use_cache=False)
                           .last_hidden_state[0, -1]).squeeze(-1) for s in seqs]).float()
        packed_r = reward_forward(model, pack([list(s) for s in seqs]))
        padded_r = reward_forward(model, pad([list(s) for s in seqs], model.config.pad_token_id))
        trace = head_at_every_position(model, pad([list(s) for s in seqs], model.config.pad_token_id))
    assert (want - last).abs().max() > 0.1  # the two poolings differ: the test can tell them apart
    for got in (packed_r, padded_r, scorer.score(convs), torch.stack([t[-1] for t in trace])):
        assert_close(got, want, **tol(model, want))
    out = save_reward_model(model, tok, tmp_path / "mean")
    assert json.loads((out / "config.json").read_text())["rewardlab"]["head"]["pooling"] == "mean"
    assert_close(ScalarScorer.load(out).score(convs), scorer.score(convs), atol=0, rtol=0)


def test_stock_transformers_refuses_a_mean_pooled_head(tiny_llama, tmp_path):
    """Stock classifiers read the last token: a mean-pooled checkpoint must not load there (it would
    score at the wrong place), and export says why in one line."""
    from transformers import AutoModelForSequenceClassification

    from rewardlab.models.export import ExportError, export_reward_model

    tok = tokenizer_of(tiny_llama)
    out = save_reward_model(build_reward_model(str(tiny_llama), tok, HeadConfig(pooling="mean")), tok,
                            tmp_path / "mean")
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["model_type"] == "rewardlab-mean-pooled" and "architectures" not in cfg
    with pytest.raises(ValueError, match="model type `rewardlab-mean-pooled`"):
        AutoModelForSequenceClassification.from_pretrained(str(out))
    with pytest.raises(ExportError, match="mean-pooled"):
        export_reward_model(out, tmp_path / "stock")


def test_mean_pooling_is_for_decoders(tiny_bert):
    tok = tokenizer_of(tiny_bert)
    with pytest.raises(ValueError, match="mean pooling needs a decoder"):
        build_reward_model(str(tiny_bert), tok, HeadConfig(pooling="mean"))
    with pytest.raises(ValueError, match="head.pooling must be one of"):
        HeadConfig(pooling="max")


def test_a_model_on_its_first_blocks_is_a_smaller_stock_model(tiny_llama, convs, tmp_path):
    """``num_layers``: the head reads the output of block N (through the final norm), exactly as the
    full model's backbone computes it at block N; the checkpoint is an N-block model that stock
    transformers scores identically, and too many blocks is one clear error."""
    from transformers import AutoModelForSequenceClassification

    tok = tokenizer_of(tiny_llama)
    full = build_reward_model(str(tiny_llama), tok).eval()
    total = full.config.num_hidden_layers
    cut = build_reward_model(str(tiny_llama), tok, num_layers=1).eval()
    assert cut.config.num_hidden_layers == 1 < total and len(backbone_of(cut).layers) == 1
    perturb_(head_of(cut), seed=3)
    ids = ScalarScorer(cut, tok).encode(convs[:1])[0]
    with torch.no_grad():
        inner = backbone_of(full)
        h = inner.embed_tokens(torch.tensor([ids]))
        pos = torch.arange(len(ids)).unsqueeze(0)
        rope = inner.rotary_emb(h, pos)
        mask = torch.full((len(ids), len(ids)), float("-inf")).triu(1)[None, None]
        h = inner.layers[0](h, attention_mask=mask, position_ids=pos, position_embeddings=rope)
        h = h[0] if isinstance(h, tuple) else h
        want = head_of(cut)(inner.norm(h)[0, -1]).float()
    got = ScalarScorer(cut, tok).score(convs[:1])
    assert_close(got, want.reshape(1), **tol(cut, want.reshape(1)))
    out = save_reward_model(cut, tok, tmp_path / "cut")
    stock = AutoModelForSequenceClassification.from_pretrained(str(out)).eval()
    assert stock.config.num_hidden_layers == 1
    ours = ScalarScorer(cut, tok).score(convs)
    assert_close(ScalarScorer(stock, tok).score(convs), ours, **tol(cut, ours))
    with pytest.raises(ValueError, match=f"model.num_layers={total + 1}: .* has {total} blocks"):
        build_reward_model(str(tiny_llama), tok, num_layers=total + 1)


def test_pairs_that_share_texts_score_each_text_once(llama_rm, convs, monkeypatch):
    """Best-of-n pairs of one instruction share their samples: each distinct text runs once, and every
    pair gets the score its texts have alone."""
    from rewardlab.types import PreferencePair

    model, tok = llama_rm
    scorer = ScalarScorer(model, tok)
    prompt = convs[0][:1]
    answers = [c[1:] for c in convs[:4]]
    pairs = [PreferencePair(prompt, answers[i], answers[j], id=f"q:{i}>{j}") for i in range(4) for j in range(4) if i != j]
    seen = []
    real = ScalarScorer.score_ids
    monkeypatch.setattr(ScalarScorer, "score_ids", lambda self, seqs: seen.append(len(seqs)) or real(self, seqs))
    chosen, rejected = scorer.score_pairs(pairs)
    assert seen == [4]  # 12 pairs, 24 sides, 4 texts
    alone = scorer.score([prompt + a for a in answers])
    want_c = torch.stack([alone[int(p.id[2])] for p in pairs])
    want_r = torch.stack([alone[int(p.id[4])] for p in pairs])
    assert_close(chosen, want_c, **tol(model, want_c))
    assert_close(rejected, want_r, **tol(model, want_r))
