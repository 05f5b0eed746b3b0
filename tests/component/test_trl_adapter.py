"""A rewardlab Scorer as a TRL reward function: the signature, both formats, and two real GRPO steps."""

from __future__ import annotations

import pytest
import torch

from rewardlab.integrations.trl import reward_func
from rewardlab.models.scorer import ScalarScorer
from tests.rm_helpers import make_tiny_rm


@pytest.fixture(scope="module")
def scorer(tiny_llama, tmp_path_factory):
    return ScalarScorer.load(make_tiny_rm(tiny_llama, tmp_path_factory.mktemp("trl-rm")))


def test_standard_and_conversational_formats(scorer):
    f = reward_func(scorer)
    assert f.__name__ == "rewardlab"
    conv = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello ! how are you ?"}]
    expected = scorer.score([conv]).item()
    # Exact by construction: the same conversation, scored alone, as above.
    assert f(prompts=["hi"], completions=["hello ! how are you ?"], completion_ids=[[1, 2]])[0] == expected
    assert f(prompts=[conv[:1]], completions=[conv[1:]])[0] == expected
    with pytest.raises(ValueError, match="empty"):
        f(prompts=["hi"], completions=[""])
    assert reward_func(scorer, empty_reward=-5.0)(prompts=["hi", "hi"], completions=["", "yes"])[0] == -5.0


def test_two_grpo_steps_against_a_rewardlab_rm(scorer, tmp_path, tiny_judge):
    trl = pytest.importorskip("trl", reason="TRL is the optional 'trl' extra")
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer

    # The policy has its own tokenizer (a larger vocabulary): completions are re-tokenised by the RM's.
    tok = AutoTokenizer.from_pretrained(str(tiny_judge))
    policy = AutoModelForCausalLM.from_pretrained(str(tiny_judge))
    before = [p.detach().clone() for p in policy.parameters()]
    calls = []
    rf = reward_func(scorer, empty_reward=0.0)

    def recording(prompts, completions, **kw):
        out = rf(prompts, completions, **kw)
        calls.append(out)
        return out

    recording.__name__ = "rewardlab"
    data = Dataset.from_list([{"prompt": p} for p in ["what is the capital of france ?", "how are you ?",
                                                     "please help me", "hi"]])
    args = trl.GRPOConfig(output_dir=str(tmp_path), max_steps=2, per_device_train_batch_size=2, num_generations=2,
                          max_completion_length=6, use_cpu=True, report_to=[], logging_steps=1, save_strategy="no",
                          learning_rate=1e-2, bf16=False, seed=0)
    trainer = trl.GRPOTrainer(model=policy, reward_funcs=[recording], args=args, train_dataset=data,
                              processing_class=tok)
    trainer.train()
    assert trainer.state.global_step == 2
    assert len(calls) >= 2 and all(isinstance(x, float) for c in calls for x in c)
    assert any(not torch.equal(a, b) for a, b in zip(before, policy.parameters(), strict=True))
