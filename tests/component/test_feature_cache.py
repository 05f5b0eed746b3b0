"""The on-disk feature cache of frozen backbones, on tiny models: a hit returns what a fresh pass
computes, the key follows weights, dtype, pooling and token ids (and nothing else), damaged shards are
recomputed with a log line, a second frozen-backbone training run makes no backbone forward pass, and
best-of-n candidates score from the cache as the model scores them."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch
from transformers import AutoTokenizer

from rewardlab.data.encode import ChatEncoder
from rewardlab.models.feature_cache import (
    CachedScorer,
    FeatureCache,
    cached_features,
    fill_caches,
    load_cached_scorer,
    model_key,
    pooled_features,
)
from rewardlab.models.loading import load_reward_model
from rewardlab.models.scalar import (
    HeadConfig,
    backbone_of,
    build_reward_model,
    save_reward_model,
)
from rewardlab.models.scorer import ScalarScorer
from tests.conftest import REPO, make_tiny_bert, make_tiny_llama, synthetic_pairs
from tests.rm_helpers import make_tiny_rm


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def tiny_bert_words(tmp_path_factory) -> Path:
    """``make_tiny_bert`` with its word vocabulary really loaded (see test_training.word_bert)."""
    from transformers import BertTokenizerFast

    d = make_tiny_bert(tmp_path_factory.mktemp("bert"))
    BertTokenizerFast(vocab=str(d / "vocab.txt")).save_pretrained(d)
    return d


def scorer_for(path: Path, **kwargs) -> ScalarScorer:
    tok = AutoTokenizer.from_pretrained(str(path))
    return ScalarScorer(build_reward_model(str(path), tok).eval(), tok, **kwargs)


def sequences(scorer: ScalarScorer, n: int = 12) -> list[list[int]]:
    convs = [[{"role": "user", "content": r["prompt"]}, {"role": "assistant", "content": r["chosen"]}]
             for r in synthetic_pairs(n, seed=3)]
    return scorer.encode(convs)


@pytest.mark.parametrize("pooling", ["last", "mean"])
@pytest.mark.parametrize("which", ["llama", "bert"])
def test_a_hit_returns_what_a_fresh_pass_computes(tiny_llama, tiny_bert_words, tmp_path, which, pooling):
    scorer = scorer_for(tiny_llama if which == "llama" else tiny_bert_words)
    seqs = sequences(scorer)
    seqs = seqs + seqs[:3]  # repeats run once
    fresh = pooled_features(scorer, seqs, pooling)
    first = FeatureCache(scorer.model, pooling, tmp_path)
    computed = cached_features(scorer, seqs, first)
    assert (first.computed, first.hits) == (len(seqs) - 3, 0)
    torch.testing.assert_close(computed, fresh, atol=1e-5, rtol=1e-5)
    again = FeatureCache(scorer.model, pooling, tmp_path)  # read back from disk
    hit = cached_features(scorer, seqs, again)
    assert (again.computed, again.hits) == (0, len(seqs) - 3)
    assert torch.equal(hit, computed)
    if pooling == "mean":  # by hand, one sequence alone
        ids = torch.tensor([seqs[0]])
        h = backbone_of(scorer.model)(input_ids=ids, attention_mask=torch.ones_like(ids)).last_hidden_state
        torch.testing.assert_close(hit[0], h[0].mean(0).detach(), atol=1e-5, rtol=1e-5)
    else:
        torch.testing.assert_close(hit, scorer.features(seqs), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("which", ["llama", "bert"])
def test_one_pass_fills_both_poolings_as_each_alone_would(tiny_llama, tiny_bert_words, tmp_path, which):
    scorer = scorer_for(tiny_llama if which == "llama" else tiny_bert_words, batch_tokens=64)
    seqs = sequences(scorer)
    caches = [FeatureCache(scorer.model, p, tmp_path) for p in ("last", "mean")]
    cached_features(scorer, seqs[:4], caches[0])  # one cache already holds some: they still run once
    assert fill_caches(scorer, seqs + seqs[:2], caches, progress=False) == len(seqs)
    assert fill_caches(scorer, seqs, caches, progress=False) == 0
    for c in caches:
        torch.testing.assert_close(cached_features(scorer, seqs, c), pooled_features(scorer, seqs, c.pooling),
                                   atol=1e-5, rtol=1e-5)


def test_the_model_key_follows_weights_dtype_and_pooling_not_head_or_path(tiny_llama, tmp_path):
    from rewardlab.models.scorer import for_scoring

    tok = AutoTokenizer.from_pretrained(str(tiny_llama))
    model = build_reward_model(str(tiny_llama), tok)
    key, meta = model_key(model)
    assert meta["pooling"] == "last" and meta["dtype"] == "torch.float32" and len(key) == 32
    assert model_key(build_reward_model(str(tiny_llama), tok, HeadConfig(type="mlp", hidden_sizes=[8])))[0] == key
    with torch.no_grad():
        model.score.weight.add_(1.0)  # another head on the same backbone
    assert model_key(model)[0] == key
    saved = save_reward_model(model, tok, tmp_path / "final")
    assert model_key(load_reward_model(saved))[0] == key  # a trained frozen-backbone checkpoint
    assert model_key(model, "mean")[0] != key
    other = make_tiny_llama(tmp_path / "seed1", seed=1)
    assert model_key(build_reward_model(str(other), tok))[0] != key
    touched = build_reward_model(str(tiny_llama), tok)
    with torch.no_grad():
        backbone_of(touched).norm.weight[0] += 1e-3  # one weight of the backbone
    assert model_key(touched)[0] != key
    assert model_key(for_scoring(build_reward_model(str(tiny_llama), tok), torch.bfloat16))[0] != key


def test_entries_follow_the_token_ids(tiny_llama, tmp_path):
    """Template, max_length and truncation reach the cache through the ids: what changes an id misses,
    what changes none hits."""
    scorer = scorer_for(tiny_llama)
    conv = ([{"role": "user", "content": "what is the capital of france ?"}],
            [{"role": "assistant", "content": " ".join(["paris is the answer"] * 6)}])
    tok = scorer.tokenizer
    full = ChatEncoder(tok).encode(*conv).ids
    cache = FeatureCache(scorer.model, "last", tmp_path)
    cached_features(scorer, [full], cache)
    cached_features(scorer, [ChatEncoder(tok, max_length=200).encode(*conv).ids], cache)  # not cut: same ids
    assert (cache.computed, cache.hits) == (1, 1)
    cut = ChatEncoder(tok, max_length=24, min_prompt_tokens=4).encode(*conv).ids
    assert cut != full
    cached_features(scorer, [cut], cache)
    assert cache.computed == 2
    tok.chat_template = tok.chat_template.replace("'\n'", "':\n'")  # "user:\n" instead of "user\n"
    other = ChatEncoder(tok).encode(*conv).ids
    assert other != full
    cached_features(scorer, [other], cache)
    assert cache.computed == 3


def test_damaged_shards_are_logged_deleted_and_recomputed(tiny_llama, tmp_path, caplog):
    scorer = scorer_for(tiny_llama)
    seqs = sequences(scorer)
    good = cached_features(scorer, seqs, FeatureCache(scorer.model, "last", tmp_path))
    cache_dir = FeatureCache(scorer.model, "last", tmp_path).dir
    (shard,) = cache_dir.glob("shard-*.safetensors")
    data = shard.read_bytes()
    for damage in (data[: len(data) // 2], data[:-8] + bytes(8 * [0x7F]), b"not a shard"):
        (shard,) = cache_dir.glob("shard-*.safetensors")
        shard.write_bytes(damage)
        caplog.clear()
        cache = FeatureCache(scorer.model, "last", tmp_path)
        with caplog.at_level(logging.WARNING, logger="rewardlab"):
            again = cached_features(scorer, seqs, cache)
        assert cache.computed == len(seqs) and cache.hits == 0
        assert any("damaged" in r.getMessage() and shard.name in r.getMessage() for r in caplog.records)
        assert not shard.exists()  # replaced by a fresh shard
        torch.testing.assert_close(again, good, atol=1e-6, rtol=1e-6)


def test_a_cache_that_cannot_be_written_falls_back_to_memory(tiny_llama, tmp_path, caplog, monkeypatch):
    scorer = scorer_for(tiny_llama)
    seqs = sequences(scorer)

    def full_disk(self, keys, features):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(FeatureCache, "_write", full_disk)
    cache = FeatureCache(scorer.model, "last", tmp_path)
    with caplog.at_level(logging.WARNING, logger="rewardlab"):
        feats = cached_features(scorer, seqs, cache)
    assert any("cannot write" in r.getMessage() for r in caplog.records) and cache.dir is None
    torch.testing.assert_close(feats, scorer.features(seqs), atol=1e-5, rtol=1e-5)
    assert torch.equal(cached_features(scorer, seqs, cache), feats) and cache.computed == len(seqs)


def test_a_second_frozen_training_run_makes_no_backbone_pass(tiny_llama, pair_files, tmp_path, monkeypatch):
    from transformers import LlamaModel

    from rewardlab.config import load_recipe
    from rewardlab.eval.pairwise import evaluate_pairs
    from rewardlab.train.run import prepare_data, train_reward_model

    calls = []
    forward = LlamaModel.forward

    def counting(self, *args, **kwargs):
        calls.append(1)
        return forward(self, *args, **kwargs)

    monkeypatch.setattr(LlamaModel, "forward", counting)

    def run(name, *overrides):
        calls.clear()
        recipe = load_recipe(REPO / "configs" / "tiny_bt.yaml", [
            f"model.path={tiny_llama}", f"data.train={pair_files[0]}", f"data.eval={pair_files[1]}",
            f"output_dir={tmp_path / name}", "variant.name=bt_frozen", "train.lr=3e-2",
            f"train.feature_cache_dir={tmp_path / 'features'}", *overrides])
        return recipe, train_reward_model(recipe), len(calls)

    recipe, first, n_first = run("first")
    assert n_first > 0 and first["train"]["features"]["computed"] == 64 * 2 + 32 * 2
    assert first["eval"]["accuracy"] > 0.8
    _, second, n_second = run("second", "model.head=mlp", "model.mlp_hidden=[8]", "train.seed=1",
                              "data.train_limit=40")
    assert n_second == 0, "the second run ran the backbone"
    assert second["train"]["features"]["computed"] == 0 and second["train"]["pairs"] == 40
    _, third, n_third = run("third", "train.feature_cache=false")
    assert n_third > 0 and third["train"]["features"]["cache_dir"] is None
    assert third["train"]["features"]["from_cache"] == 64  # the evaluation reuses the run's own features
    # the cached evaluation is the saved model's
    saved = ScalarScorer.load(tmp_path / "first" / "final", max_length=64)
    summary, _ = evaluate_pairs(saved, prepare_data(recipe).eval)
    assert summary["accuracy"] == first["eval"]["accuracy"]


def test_a_mean_pooled_frozen_head_trains_from_its_own_cache_and_scores_as_saved(tiny_llama, pair_files, tmp_path):
    """``model.pooling=mean`` with ``bt_frozen``: the features cached are mean-pooled (their own cache
    directory), the head learns from them, and the saved checkpoint, loaded afresh and scored through
    the backbone, gives the run's own evaluation."""
    from rewardlab.config import load_recipe
    from rewardlab.eval.pairwise import evaluate_pairs
    from rewardlab.models.feature_cache import load_cached_scorer
    from rewardlab.train.run import prepare_data, train_reward_model

    recipe = load_recipe(REPO / "configs" / "tiny_bt.yaml", [
        f"model.path={tiny_llama}", f"data.train={pair_files[0]}", f"data.eval={pair_files[1]}",
        f"output_dir={tmp_path / 'mean'}", "variant.name=bt_frozen", "train.lr=3e-2", "model.pooling=mean",
        f"train.feature_cache_dir={tmp_path / 'features'}"])
    metrics = train_reward_model(recipe)
    assert metrics["train"]["features"]["pooling"] == "mean"
    assert metrics["eval"]["accuracy"] > 0.8
    saved = ScalarScorer.load(tmp_path / "mean" / "final", max_length=64)
    summary, _ = evaluate_pairs(saved, prepare_data(recipe).eval)
    assert summary["accuracy"] == metrics["eval"]["accuracy"]
    cached = load_cached_scorer(tmp_path / "mean" / "final", root=tmp_path / "features", max_length=64)
    assert cached.cache.pooling == "mean"
    summary_cached, _ = evaluate_pairs(cached, prepare_data(recipe).eval)
    assert summary_cached["accuracy"] == metrics["eval"]["accuracy"] and cached.cache.computed == 0


def test_best_of_n_candidates_score_from_the_cache_as_the_model_scores_them(tiny_llama, tmp_path):
    from rewardlab.bon.data import BonItem
    from rewardlab.bon.run import score_candidates

    rm = make_tiny_rm(tiny_llama, tmp_path / "rm")
    rows = synthetic_pairs(6, seed=5)
    items = [BonItem(id=str(i), prompt=[{"role": "user", "content": r["prompt"]}],
                     responses=tuple([{"role": "assistant", "content": t}] for t in (r["chosen"], r["rejected"])),
                     gold=(1.0, 0.0)) for i, r in enumerate(rows)]
    plain = score_candidates(ScalarScorer.load(rm, device="cpu"), items)
    cached = load_cached_scorer(rm, root=tmp_path / "features", device="cpu")
    assert isinstance(cached, CachedScorer)
    first = score_candidates(cached, items)
    again = load_cached_scorer(rm, root=tmp_path / "features", device="cpu")
    second = score_candidates(again, items)
    assert again.cache.computed == 0 and again.cache.hits == 12
    for a, b, c in zip(plain, first, second, strict=True):
        assert a == pytest.approx(b, abs=1e-5) and (b == c).all()
