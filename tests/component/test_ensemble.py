"""``train.ensemble=k`` trains k seeded members in one call; the directory loads as one Scorer."""

from __future__ import annotations

import json

import torch
from safetensors.torch import load_file
from torch.testing import assert_close

from rewardlab import load_scorer
from rewardlab.config import load_recipe
from rewardlab.models.ensemble import EnsembleScorer, reduce_scores
from rewardlab.train.run import train_reward_model
from tests.conftest import REPO

TINY = REPO / "configs" / "tiny_bt.yaml"


def test_ensemble_trains_seeded_members_and_scores_as_one(tiny_llama, pair_files, tmp_path):
    out = tmp_path / "ens"
    recipe = load_recipe(TINY, [f"model.path={tiny_llama}", f"data.train={pair_files[0]}",
                                f"data.eval={pair_files[1]}", f"output_dir={out}", "variant.name=grm_sft",
                                "train.ensemble=3", "train.ensemble_reduction=mean_minus_std",
                                "train.ensemble_lambda=0.5", "train.epochs=2"])
    m = train_reward_model(recipe)

    manifest = json.loads((out / "ensemble.json").read_text())
    assert manifest["members"] == [f"member-{i}/final" for i in range(3)]
    assert manifest["reduction"] == "mean_minus_std" and manifest["lambda"] == 0.5
    seeds = [json.loads((out / f"member-{i}" / "metrics.json").read_text())["recipe"]["train"]["seed"]
             for i in range(3)]
    assert seeds == [0, 1, 2]
    heads = [load_file(out / f"member-{i}" / "final" / "model.safetensors")["score.weight"] for i in range(3)]
    assert not torch.equal(heads[0], heads[1])
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["final_model"] == str(out) and len(saved["members"]) == 3
    assert m["eval"]["accuracy"] > 0.8 and m["eval"]["n"] == 32 and len(m["eval"]["members"]) == 3
    assert json.loads((out / "eval.json").read_text())["accuracy"] == m["eval"]["accuracy"]

    scorer = load_scorer(str(out))
    assert isinstance(scorer, EnsembleScorer)
    seqs = [[2, 10, 11, 12, 3], [2, 13, 14, 3]]
    each = torch.stack([s.score_ids(seqs) for s in scorer.members])
    # Exact by construction: every member scores the same sequences the same way as above.
    assert_close(scorer.score_ids(seqs), reduce_scores(each, "mean_minus_std", 0.5), atol=0, rtol=0)
    assert_close(load_scorer(str(out), reduction="min").score_ids(seqs), each.min(0).values, atol=0, rtol=0)
