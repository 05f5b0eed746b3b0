"""The generative-RM study script end to end on a tiny judge and tiny HH / best-of-n files."""

from __future__ import annotations

import json

import pytest

from tests.conftest import load_script, write_jsonl


def load_study():
    return load_script("experiments/genrm_study/run.py")


def test_genrm_study_writes_table_with_order_consistency(tiny_judge, tmp_path):
    hh = [{"chosen": f"\n\nHuman: how are you ? {i}\n\nAssistant: good helpful answer",
           "rejected": f"\n\nHuman: how are you ? {i}\n\nAssistant: bad rude answer"} for i in range(24)]
    bon = [{"id": str(i), "instruction": "please help me", "samples": ["good sure", "bad no"],
            "gold_preference": [1.9, 1.1]} for i in range(6)]
    out = tmp_path / "study"
    argv = ["--hh", str(write_jsonl(tmp_path / "hh.jsonl", hh)), "--bon", str(write_jsonl(tmp_path / "bon.jsonl", bon)),
            "--model", str(tiny_judge), "--train-size", "8", "--id-size", "4", "--ood-size", "4", "--k", "2",
            "--max-new-tokens", "6", "--iterations", "1", "--max-length", "160", "--lr", "1e-3",
            "--rows", "judge,judge_cot,genrm,star_rationalizer,bt", "--dtype", "float32",
            "--runs", str(tmp_path / "runs"), "--out", str(out)]
    assert load_study().main(argv) == 0
    results = json.loads((out / "results.json").read_text())
    assert list(results["rows"]) == ["judge", "judge_cot", "genrm", "star_rationalizer", "bt"]
    for row, cell in results["rows"].items():
        assert cell["ID"]["n"] == 4 and cell["OOD"]["n"] == 4
        assert (cell["ID"]["order_consistency"] is None) == (row == "bt")
    assert results["star"]["star_rationalizer"][0]["iteration"] == 1
    readme = (out / "README.md").read_text()
    assert "| GenRM |" in readme and "iteration 1" in readme
    reading = readme.split("## Reading")[1]
    assert "accuracies; intervals entirely above 50%" in reading
    assert reading.count("→") == 2 * (4 + 4)  # each other row against BT, then against the zero-shot judge
    assert (out / "accuracy.png").read_bytes()[:4] == b"\x89PNG"
    # The cached runs answer only for the settings that made them.
    other = [*argv[:argv.index("--id-size") + 1], "5", *argv[argv.index("--id-size") + 2:]]
    with pytest.raises(SystemExit, match="id_size: 4 -> 5"):
        load_study().main(other)
