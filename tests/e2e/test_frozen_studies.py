"""The learning-curve, held-out best-of-n and layer studies end to end on a tiny model and tiny files."""

from __future__ import annotations

import json

from tests.conftest import load_script, write_jsonl
from tests.e2e.test_rm_table import bon_records


def hh_rows(n: int) -> list[dict]:
    """HH-RLHF transcripts whose chosen answer is the polite one."""
    return [{"chosen": f"\n\nHuman: help me {i}\n\nAssistant: good sure {i}",
             "rejected": f"\n\nHuman: help me {i}\n\nAssistant: bad no no {i}"} for i in range(n)]


def test_learning_curve_then_best_of_n_from_the_same_cache(tiny_llama, tmp_path):
    bon = write_jsonl(tmp_path / "bon.jsonl", bon_records(n_id=30, n_ood=6))
    hh = write_jsonl(tmp_path / "hh.jsonl", hh_rows(40))
    common = ["--bon", str(bon), "--model", str(tiny_llama), "--num-layers", "1", "--max-length", "48"]
    out = tmp_path / "curve"
    curve = load_script("experiments/learning_curve/run.py")
    assert curve.main([*common, "--hh", str(hh), "--sizes", "12,all", "--hh-sizes", "10,all", "--hh-eval", "10",
                       "--ood-instructions", "3", "--runs", str(tmp_path / "runs-curve"), "--out", str(out)]) == 0
    result = json.loads((out / "results.json").read_text())
    points = result["alpacaeval"]["points"]
    assert list(points) == ["12", "84"]  # 21 training instructions x 4 pairs (good over bad)
    assert points["12"]["train"] == {"pairs": 12, "instructions": 3}  # 4 + 4 + the first 4 of a third
    for p in points.values():
        for split in ("ID", "OOD"):
            lo, hi = p[split]["ci95"]
            assert lo <= p[split]["accuracy"] <= hi and p[split]["baseline"] is not None
    assert result["alpacaeval"]["eval"]["OOD"]["instructions"] == 3
    assert list(result["hh"]["points"]) == ["10", "30"] and result["hh"]["points"]["30"]["ID"]["pairs"] == 10
    readme = (out / "README.md").read_text()
    assert "| 84 | 21 |" in readme and "## HH-RLHF" in readme and "Where this stands" in readme
    assert (out / "curve.png").read_bytes()[:4] == b"\x89PNG"
    assert result["cache"]["computed"] > 0

    bon_out = tmp_path / "bon"
    study = load_script("experiments/bon_heldout/run.py")
    assert study.main([*common, "--ood-instructions", "3", "--runs", str(tmp_path / "runs-bon"),
                       "--out", str(bon_out), "--n-boot", "200"]) == 0
    got = json.loads((bon_out / "results.json").read_text())
    assert got["cache"]["computed"] == 0  # every candidate's features were cached by the curve
    for split, prompts in (("ID", 9), ("OOD", 3)):
        res = got[split]
        assert res["prompts"] == prompts and res["candidates"] == 4 and res["n"] == [1, 2, 3, 4]
        assert set(res["proxies"]) == {"reward model", "length"}
        assert len(res["paired"]["rm_minus_length"]["difference"]) == 4
        assert abs(res["paired"]["rm_minus_random"]["difference"][0]) < 1e-12  # n = 1 is a random pick
    trained = {f"q{i}" for i in range(30)} - set(got["ID"]["instructions"])
    assert len(trained) == 21 and got["trained"]["train_instructions"] == 21  # the rest were held out
    text = (bon_out / "README.md").read_text()
    assert "RM − length [CI]" in text and "n = 4" in text
    assert (bon_out / "bon_id.png").read_bytes()[:4] == b"\x89PNG"


def test_layer_study_chooses_on_training_instructions(tiny_llama, tmp_path):
    bon = write_jsonl(tmp_path / "bon.jsonl", bon_records(n_id=20, n_ood=6))
    out = tmp_path / "layers"
    study = load_script("experiments/layers/run.py")
    assert study.main(["--bon", str(bon), "--model", str(tiny_llama), "--max-length", "48", "--every", "1",
                       "--train-instructions", "10", "--id-instructions", "4", "--ood-instructions", "3",
                       "--folds", "2", "--runs", str(tmp_path / "runs"), "--out", str(out)]) == 0
    result = json.loads((out / "results.json").read_text())
    assert set(result["features"]) == {f"{p}{b}" for p in ("last", "mean", "response") for b in (1, 2)}
    assert result["instructions"] == {"train": 10, "ID": 4, "OOD": 3}
    for row in result["features"].values():
        assert row["cv_accuracy"] == max(row["cv"].values()) and 0 <= row["ID"]["accuracy"] <= 1
    assert "Chosen by cross-validation" in (out / "README.md").read_text()
