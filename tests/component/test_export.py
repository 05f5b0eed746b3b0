"""``export_reward_model`` for every kind: scalar and GRM LoRA adapters (and a full scalar RM) become
directories that stock ``AutoModelForSequenceClassification`` loads with rewardlab's scores; kinds with
no stock form (MLP head, ensemble, judge, a plain LM) are refused in one line that says why."""

from __future__ import annotations

import json

import pytest
import torch
from torch.testing import assert_close
from transformers import AutoTokenizer

from rewardlab import load_scorer
from rewardlab.config import load_recipe
from rewardlab.models.export import ExportError, export_reward_model
from rewardlab.models.scalar import HeadConfig, build_reward_model, head_of, save_reward_model
from tests.conftest import REPO, synthetic_pairs

# Stock and rewardlab run the same fp32 weights on the same ids, in other batch layouts (padded vs
# packed): the order of fp32 sums differs, nothing else. 1e-4 is what fp32 promises for that.
# The parity promise: within 1e-4 in fp32. Both sides are the same fp32 forward pass in another
# batch layout or another code path (stock transformers vs rewardlab), so they differ by rounding alone:
# about sqrt(n)·eps·|terms| for sums of n ≈ hidden size terms (eps = 1.2e-7), ~1e-6 on these rewards of
# magnitude ~1, two orders below 1e-4 on AVX2, AVX-512 and GPU alike (tests/fp32.py has the model).
TOL = {"atol": 1e-4, "rtol": 0.0}
CONVS = [[{"role": "user", "content": r["prompt"]}, {"role": "assistant", "content": r[side]}]
         for r in synthetic_pairs(4, seed=5) for side in ("chosen", "rejected")]


def stock_scores(path) -> torch.Tensor:
    """Stock transformers alone: the chat template's text, a right-padded batch, the logits."""
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(str(path)).eval()
    tok = AutoTokenizer.from_pretrained(str(path))
    batch = tok([tok.apply_chat_template(c, tokenize=False) for c in CONVS], padding=True, return_tensors="pt")
    with torch.no_grad():
        return model(**batch).logits[:, 0]


def lora(tiny_llama, variant: str, seed: int):
    """A LoRA model of ``variant`` whose adapter and head change the scores (B starts at zero)."""
    from rewardlab.kinds import kind_of
    from rewardlab.train.single import build_model

    recipe = load_recipe(REPO / "configs" / "tiny_bt.yaml", [f"model.path={tiny_llama}", f"variant.name={variant}",
                                                            "model.lora_r=4"])
    tok = AutoTokenizer.from_pretrained(str(tiny_llama))
    model = build_model(recipe, str(tiny_llama), tok, kind_of(variant))
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name or "modules_to_save" in name:
                p.copy_(torch.randn(p.shape, generator=g) * 0.5)
    return model.eval(), tok


@pytest.mark.parametrize("variant", ["bt", "grm_sft"])
def test_a_lora_adapter_exports_to_a_stock_classifier(tiny_llama, tmp_path, variant):
    model, tok = lora(tiny_llama, variant, seed=1)
    adapter = save_reward_model(model, tok, tmp_path / "adapter", merge=False, base_model=str(tiny_llama))
    assert (adapter / "adapter_config.json").exists() and not (adapter / "config.json").exists()
    expected = load_scorer(str(adapter)).score(CONVS)
    out = export_reward_model(adapter, tmp_path / "exported")
    assert not (out / "adapter_config.json").exists()
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["architectures"] == ["LlamaForSequenceClassification"] and "kind" not in cfg["rewardlab"]
    assert expected.max() - expected.min() > 0.1
    exported = load_scorer(str(out)).score(CONVS)
    assert_close(stock_scores(out), exported, **TOL)
    # Merging folds s·B·A into W, one more fp32 rounding of every adapted weight: the scores of the
    # merged model agree with the adapter's to a relative 1e-4, not to the last bit.
    assert_close(exported, expected, atol=1e-4, rtol=1e-4)


def test_a_full_scalar_rm_exports_as_itself(tiny_llama, tmp_path):
    tok = AutoTokenizer.from_pretrained(str(tiny_llama))
    model = build_reward_model(str(tiny_llama), tok).eval()
    with torch.no_grad():
        weight = head_of(model).weight
        weight.copy_(torch.randn(weight.shape, generator=torch.Generator().manual_seed(2)))
    src = save_reward_model(model, tok, tmp_path / "rm")
    out = export_reward_model(src, tmp_path / "exported")
    assert_close(stock_scores(out), load_scorer(str(src)).score(CONVS), **TOL)


def one_line_refusal(path, tmp_path, needle: str) -> None:
    with pytest.raises(ExportError, match=needle) as err:
        export_reward_model(path, tmp_path / "exported")
    assert "\n" not in str(err.value) and str(path) in str(err.value)
    assert not (tmp_path / "exported").exists()


def test_an_mlp_head_is_refused(tiny_llama, tmp_path):
    tok = AutoTokenizer.from_pretrained(str(tiny_llama))
    model = build_reward_model(str(tiny_llama), tok, HeadConfig(type="mlp", hidden_sizes=[8]))
    src = save_reward_model(model, tok, tmp_path / "mlp")
    one_line_refusal(src, tmp_path, "an MLP reward head has no stock transformers form")


def test_an_mlp_lora_adapter_is_refused(tiny_llama, tmp_path):
    from peft import LoraConfig, get_peft_model

    tok = AutoTokenizer.from_pretrained(str(tiny_llama))
    model = build_reward_model(str(tiny_llama), tok, HeadConfig(type="mlp", hidden_sizes=[8]))
    model = get_peft_model(model, LoraConfig(task_type="SEQ_CLS", r=2, target_modules=["q_proj"],
                                             modules_to_save=["score"]))
    src = save_reward_model(model, tok, tmp_path / "adapter", merge=False, base_model=str(tiny_llama))
    one_line_refusal(src, tmp_path, "an MLP reward head")


def test_an_ensemble_a_judge_and_a_plain_lm_are_refused(tiny_llama, tmp_path):
    from rewardlab.models.ensemble import write_manifest

    ensemble = tmp_path / "ens"
    ensemble.mkdir()
    write_manifest(ensemble, [tiny_llama, tiny_llama])
    one_line_refusal(ensemble, tmp_path, "an ensemble combines the rewards of several models")
    judge = tmp_path / "judge"
    judge.mkdir()
    (judge / "rewardlab_judge.json").write_text("{}")
    one_line_refusal(judge, tmp_path, "a generative judge")
    one_line_refusal(tiny_llama, tmp_path, "not a rewardlab reward model")
