"""A recipe with ``data.bon_pairs`` trains on the builder's training split (margins for ``bt_margin``),
evaluates on the held-out instructions and reports the OOD sources as a second eval set."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from rewardlab.config import load_recipe
from rewardlab.data.bon_pairs import instruction_of
from rewardlab.train.run import prepare_data, train_reward_model
from tests.conftest import REPO, write_jsonl

SOURCES = ("selfinstruct", "oasst", "helpful_base", "koala", "vicuna")
QUESTIONS = ["what is the capital of france ?", "can you help me with this ?", "how are you ?", "please help me"]


def bon_rows() -> list[dict]:
    """Four instructions per source, each with two kind answers (gold 1.9, 1.8) and two rude ones
    (1.1, 1.0): four pairs per instruction, gaps 0.7 to 0.9, in the tiny models' vocabulary."""
    rows = []
    for s, source in enumerate(SOURCES):
        for k, q in enumerate(QUESTIONS):
            rows.append({"id": f"{source}-{k}", "dataset": source, "instruction": f"{q} ({source} {k})",
                         "samples": [f"sure {s} good helpful", "yes kind and great", f"no {k} rude and bad",
                                     "terrible harmful answer"],
                         "gold_preference": [1.9, 1.8, 1.1, 1.0]})
    return rows


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def recipe(tmp_path: Path, tiny_llama: Path, *overrides: str):
    data = write_jsonl(tmp_path / "bon.jsonl", bon_rows())
    return load_recipe(REPO / "configs" / "tiny_bt.yaml", [
        f"model.path={tiny_llama}", "data.train=", "data.eval=", f"data.bon_pairs={data}",
        f"output_dir={tmp_path / 'run'}", *overrides])


def test_prepared_splits_keep_instructions_apart(tmp_path, tiny_llama):
    data = prepare_data(recipe(tmp_path, tiny_llama, "data.train_limit=10", "data.eval_size=6"))
    train = {instruction_of(p.id) for p in data.train}
    assert len(data.train) == 10 and len(train) == 3  # whole instructions: 4 + 4 + 2
    assert not train & {instruction_of(p.id) for p in data.eval + data.extra_evals["ood"]}
    assert {p.subset for p in data.extra_evals["ood"]} <= {"koala", "vicuna"}
    assert len(data.eval) == 6 and len({instruction_of(p.id) for p in data.eval}) == 4  # spread: 12 * 0.3
    used = data.reports["bon_pairs"]["used"]
    assert used["train"] == {"pairs": 10, "instructions": 3} and used["ood"]["pairs"] == 6
    assert all(p.margin is not None and p.margin >= 0.5 for p in data.train)


def test_bt_margin_trains_on_gold_margins_and_reports_the_ood_set(tmp_path, tiny_llama):
    metrics = train_reward_model(recipe(tmp_path, tiny_llama, "variant.name=bt_margin", "train.lr=1e-2"))
    stats = metrics["data"]["bon_pairs"]
    assert stats["instructions"] == {"read": 20, "train": 8, "heldout": 4, "ood": 8, "other_source": 0}
    assert metrics["train"]["pairs"] == stats["pairs"]["train"]["total"] == 32
    assert metrics["eval"]["n"] == 16 and metrics["eval_sets"]["ood"]["n"] == 32
    assert set(metrics["eval_sets"]["ood"]["per_subset"]) == {"koala", "vicuna"}
    saved = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert saved["eval_sets"] == metrics["eval_sets"]
    assert json.loads((tmp_path / "run" / "eval_ood.json").read_text())["n"] == 32
    assert (tmp_path / "run" / "eval_ood.pairs.jsonl").exists()


def test_the_main_jobs_recipe_runs_as_it_is_on_tiny_data(tmp_path, tiny_llama, capsys):
    """configs/smollm2_alpaca_bt.yaml unchanged but for the model, the file and the sizes: whole
    instructions for training and evaluation, a mean-pooled head on the first block, and an interval that
    resamples prompts."""
    from rewardlab.cli.main import main

    data = write_jsonl(tmp_path / "bon.jsonl", bon_rows())
    out = tmp_path / "main"
    assert main(["train", str(REPO / "configs" / "smollm2_alpaca_bt.yaml"), f"model.path={tiny_llama}",
                 f"data.bon_pairs={data}", "model.num_layers=1", "data.bon_train_instructions=5",
                 "data.bon_eval_instructions=2", "data.max_length=48", "train.lr=3e-2", f"output_dir={out}",
                 f"train.feature_cache_dir={tmp_path / 'features'}"]) == 0
    printed = capsys.readouterr().out
    metrics = json.loads((out / "metrics.json").read_text())
    used = metrics["data"]["bon_pairs"]["used"]
    assert used["train"] == {"pairs": 20, "instructions": 5} and used["heldout"] == {"pairs": 8, "instructions": 2}
    assert metrics["eval"]["prompts"] == 2 and "from 2 prompts (resampled by prompt)" in printed
    assert "length alone on the same pairs" in printed and "wall time" in printed
    config = json.loads((out / "final" / "config.json").read_text())
    assert config["num_hidden_layers"] == 1 and config["rewardlab"]["head"]["pooling"] == "mean"
    assert metrics["train"]["features"]["pooling"] == "mean"
