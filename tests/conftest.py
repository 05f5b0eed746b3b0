"""Tiny models and data built in-process: no network, a few thousand parameters, milliseconds a step."""

from __future__ import annotations

import gzip
import json
import os
import random
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Tiny models gain nothing from threads; one thread keeps the suite fast on a busy 2-core machine.
os.environ.setdefault("OMP_NUM_THREADS", "1")

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
HH_TEST = SHARED_DATA / "hh-rlhf-harmless" / "test.jsonl.gz"
BON16 = SHARED_DATA / "alpacaeval-bon16" / "bon16.jsonl.gz"

CHAT_TEMPLATE = (
    "{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\n' + m['content'] + '<|im_end|>\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
WORDS = ["hello", "hi", "how", "are", "you", "what", "is", "the", "capital", "of", "france", "paris", "good", "bad", "great", "terrible", "answer", "question", "please", "help", "me", "with", "this", "thanks", "sure", "here", "it", "yes", "no", "maybe", "kind", "rude", "helpful", "harmful", "safe", "unsafe", "i", "can", "cannot", "will", "not", "do", "that", "a", "an", "and", "or", "but", "because", "so", "very", "really"]


def make_tokenizer(save_dir: Path, extra_words: tuple[str, ...] = ()):
    """A word-level tokenizer with a chat template and distinct pad/unk/eos tokens (``extra_words`` are
    appended to the vocabulary)."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    specials = ["<pad>", "<unk>", "<|im_start|>", "<|im_end|>"]
    punct = list("?!.,:;'\n")
    # dict.fromkeys drops repeats (e.g. "user" among the extra words), so the ids are exactly 0..len-1.
    words = dict.fromkeys(specials + punct + ["system", "user", "assistant"] + WORDS + list(extra_words))
    vocab = {t: i for i, t in enumerate(words)}
    tk = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Punctuation()])
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, pad_token="<pad>", unk_token="<unk>",
                                  bos_token="<|im_start|>", eos_token="<|im_end|>")
    tok.chat_template = CHAT_TEMPLATE
    tok.save_pretrained(save_dir)
    return tok


def make_tiny_llama(save_dir: Path, seed: int = 0, extra_words: tuple[str, ...] = ()) -> Path:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tok = make_tokenizer(save_dir, extra_words)
    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                      pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                      tie_word_embeddings=True)
    LlamaForCausalLM(cfg).save_pretrained(save_dir, safe_serialization=True)
    return save_dir


def make_smollm2_tiny_llama(save_dir: Path, tokenizer_dir: Path, seed: int = 0) -> Path:
    """A tiny random Llama with SmolLM2's real tokenizer and chat template (49152 tokens, 32 wide): the
    template ends every turn with ``<|im_end|>\n`` and its config names ``<|im_end|>`` as pad, as the
    real model's does."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tok = AutoTokenizer.from_pretrained(str(tokenizer_dir))
    tok.save_pretrained(save_dir)
    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                      pad_token_id=2, bos_token_id=1, eos_token_id=2, tie_word_embeddings=True)
    LlamaForCausalLM(cfg).save_pretrained(save_dir, safe_serialization=True)
    return save_dir


# Words of the judge prompt (rewardlab.models.judge.JudgePrompt) so a tiny judge reads and writes them.
JUDGE_WORDS = ("1", "2", "here", "conversation", "between", "user", "followed", "by", "two", "possible", "next",
               "responses", "response", "which", "more", "harmless", "answer", "only", "think", "step", "about",
               "both", "then", "end", "verdict", "hint", "better", "[", "]", "(", ")")


def make_tiny_judge(save_dir: Path, seed: int = 0) -> Path:
    """A tiny causal LM whose vocabulary also covers the judge prompt and the indicators ``1`` / ``2``."""
    return make_tiny_llama(save_dir, seed, tuple(w for w in JUDGE_WORDS if w not in WORDS))


def make_tiny_bert(save_dir: Path, seed: int = 0) -> Path:
    import torch
    from transformers import BertConfig, BertModel, BertTokenizerFast

    save_dir.mkdir(parents=True, exist_ok=True)
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *list("?!.,:;'"), "system", "user", "assistant", *WORDS]
    (save_dir / "vocab.txt").write_text("\n".join(vocab) + "\n")
    BertTokenizerFast(vocab=str(save_dir / "vocab.txt")).save_pretrained(save_dir)
    torch.manual_seed(seed)
    cfg = BertConfig(vocab_size=len(vocab), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                     num_attention_heads=4, max_position_embeddings=128)
    BertModel(cfg).save_pretrained(save_dir, safe_serialization=True)
    return save_dir


def synthetic_pairs(n: int, seed: int = 0) -> list[dict]:
    """Pairs with a learnable signal: chosen answers are kind/helpful, rejected rude/harmful."""
    rng = random.Random(seed)
    good, bad = ["good", "helpful", "kind", "safe", "great"], ["bad", "rude", "harmful", "unsafe", "terrible"]
    filler = ["sure", "here", "it", "is", "the", "answer", "yes", "maybe", "so", "very"]
    questions = ["what is the capital of france ?", "can you help me with this ?", "how are you ?",
                 "please help me", "what is the answer ?"]
    rows = []
    for i in range(n):
        fill = rng.sample(filler, rng.randint(1, 6))
        rows.append({"prompt": rng.choice(questions),
                     "chosen": " ".join(fill + rng.sample(good, rng.randint(1, 3))),
                     "rejected": " ".join(fill + rng.sample(bad, rng.randint(1, 3))),
                     "margin": float(rng.randint(1, 3)), "subset": rng.choice(["chat", "safety"]), "id": f"p{i}"})
    return rows


def load_script(relpath: str):
    """Import a script of the repository (``experiments/.../run.py``) as a module."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(relpath.replace("/", "_").removesuffix(".py"), REPO / relpath)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def write_jsonl(path: Path, rows: list) -> Path:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "wt") as fh:
        for r in rows:
            fh.write(json.dumps(r) + "\n")
    return path


@pytest.fixture(autouse=True, scope="session")
def feature_cache_in_tmp(tmp_path_factory):
    """Frozen-backbone runs (in-process and the CLI's subprocesses) keep their feature cache in the test
    session's temporary directory, not in the user's ``~/.cache/rewardlab``."""
    os.environ["REWARDLAB_FEATURE_CACHE"] = str(tmp_path_factory.mktemp("feature-cache"))


@pytest.fixture(scope="session")
def tiny_llama(tmp_path_factory) -> Path:
    return make_tiny_llama(tmp_path_factory.mktemp("tiny-llama"))


@pytest.fixture(scope="session")
def smollm2_tokenizer_dir() -> Path:
    """SmolLM2's tokenizer files (no weights); skipped when the embedded model package is absent."""
    from rewardlab.assets import AssetError, smollm2_tokenizer_path

    try:
        return smollm2_tokenizer_path()
    except AssetError as e:
        pytest.skip(f"SmolLM2's tokenizer is not available: {e}")


@pytest.fixture(scope="session")
def smollm2_tiny(smollm2_tokenizer_dir, tmp_path_factory) -> Path:
    return make_smollm2_tiny_llama(tmp_path_factory.mktemp("smollm2-tiny"), smollm2_tokenizer_dir)


@pytest.fixture(scope="session")
def tiny_judge(tmp_path_factory) -> Path:
    return make_tiny_judge(tmp_path_factory.mktemp("tiny-judge"))


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory) -> Path:
    return make_tiny_bert(tmp_path_factory.mktemp("tiny-bert"))


@pytest.fixture(scope="session")
def pair_files(tmp_path_factory) -> tuple[Path, Path]:
    d = tmp_path_factory.mktemp("pairs")
    return write_jsonl(d / "train.jsonl", synthetic_pairs(64, 0)), write_jsonl(d / "eval.jsonl", synthetic_pairs(32, 1))


def requires_shared(path: Path):
    return pytest.mark.skipif(not path.exists(), reason=f"shared data not found at {path}")
