"""The GRM study script end to end on a tiny model and tiny HH / best-of-n files."""

from __future__ import annotations

import json

from tests.conftest import load_script, write_jsonl

WORDS_GOOD = ["good", "helpful", "kind", "safe"]
WORDS_BAD = ["bad", "rude", "harmful", "unsafe"]


def load_study():
    return load_script("experiments/grm_study/run.py")


def test_study_writes_table_plot_and_results(tiny_llama, tmp_path):
    hh = [{"chosen": f"\n\nHuman: how are you ? {i}\n\nAssistant: {WORDS_GOOD[i % 4]} answer",
           "rejected": f"\n\nHuman: how are you ? {i}\n\nAssistant: {WORDS_BAD[i % 4]} answer"} for i in range(40)]
    bon = [{"id": str(i), "dataset": "koala", "instruction": "please help me",
            "samples": [f"{WORDS_GOOD[i % 4]} sure", f"{WORDS_BAD[i % 4]} no", "maybe"],
            "gold_preference": [1.9, 1.1, None]} for i in range(12)]
    hh_file = write_jsonl(tmp_path / "hh.jsonl", hh)
    bon_file = write_jsonl(tmp_path / "bon.jsonl", bon)
    out = tmp_path / "study"
    out.mkdir()
    argv = ["--hh", str(hh_file), "--bon", str(bon_file), "--model", str(tiny_llama), "--sizes", "8,24",
            "--id-size", "8", "--ood-size", "6", "--methods", "bt,bt_margin,grm_dpo,bt_ens", "--ensemble", "2",
            "--lora-r", "0", "--train-layers", "0", "--max-length", "64", "--ood-max-length", "64",
            "--lr", "3e-3", "--dtype", "float32", "--runs", str(tmp_path / "runs"), "--out", str(out)]
    study = load_study()
    assert study.main(argv) == 0
    results = json.loads((out / "results.json").read_text())
    assert set(results["rows"]) == {"bt@8", "grm_dpo@8", "bt_ens@8", "bt@24", "grm_dpo@24", "bt_ens@24"}
    assert results["skipped"]["bt_margin@8"].startswith("HH-RLHF pairs carry no preference strength")
    for row in results["rows"].values():
        assert row["ID"]["n"] == 8 and row["OOD"]["n"] == 6
    assert results["data"]["ood_rule"]["pairs"] == 12 and results["data"]["sizes"] == [8, 24]
    readme = (out / "README.md").read_text()
    assert "| GRM w/ DPO reg. |" in readme and "--sizes 8,24" in readme and "→" in readme
    assert (out / "accuracy.png").read_bytes()[:4] == b"\x89PNG"
    # A rerun reuses every model and evaluation.
    before = {p: p.stat().st_mtime for p in (tmp_path / "runs").rglob("eval_*.json")}
    assert study.main(argv) == 0
    assert before == {p: p.stat().st_mtime for p in (tmp_path / "runs").rglob("eval_*.json")}


def test_source_split_with_a_larger_alpha(tiny_llama, tmp_path):
    """``--split source``: training, ID and OOD pairs all from the gold-labelled best-of-n file, split by
    instruction and source; ``--extra-alpha`` adds every GRM row again at that α; differences against BT
    resample instructions."""
    from tests.e2e.test_rm_table import bon_records

    bon = write_jsonl(tmp_path / "bon.jsonl", bon_records(n_id=20, n_ood=6))
    out = tmp_path / "study"
    argv = ["--split", "source", "--bon", str(bon), "--hh", str(bon), "--model", str(tiny_llama), "--sizes", "12,all",
            "--id-size", "8", "--ood-size", "6", "--methods", "bt,bt_margin,grm_sft", "--extra-alpha", "0.5",
            "--lora-r", "0", "--train-layers", "0", "--max-length", "48", "--ood-max-length", "48",
            "--lr", "3e-3", "--dtype", "float32", "--runs", str(tmp_path / "runs"), "--out", str(out)]
    assert load_study().main(argv) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["data"]["split"] == "source" and results["data"]["sizes"] == [12, 56]  # 14 instructions x 4
    assert set(results["rows"]) == {f"{m}@{n}" for m in ("bt", "bt_margin", "grm_sft", "grm_sft_a0.5") for n in (12, 56)}
    assert not results["skipped"]  # gold pairs carry margins
    config = json.loads((tmp_path / "runs" / "n12" / "grm_sft_a0.5" / "final" / "config.json").read_text())
    assert config["rewardlab"]["kind"] == "grm"
    recipe_alpha = json.loads((tmp_path / "runs" / "n12" / "grm_sft_a0.5" / "metrics.json").read_text())
    assert recipe_alpha["recipe"]["variant"]["options"] == {"alpha": 0.5}
    readme = (out / "README.md").read_text()
    assert "Source split" in readme and "| GRM w/ SFT reg. α=0.5 |" in readme and "n=12, ID, GRM w/ SFT reg." in readme
