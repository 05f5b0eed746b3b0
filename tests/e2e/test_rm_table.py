"""The reward-model table script end to end on a tiny model and a tiny best-of-n file."""

from __future__ import annotations

import json

from tests.conftest import load_script, write_jsonl

GOOD = ["good", "helpful", "kind", "safe"]
BAD = ["bad", "rude", "harmful", "unsafe"]


def bon_records(n_id: int = 20, n_ood: int = 6) -> list[dict]:
    """Instructions with four judged samples: two good (gold 2, 1.8) and two bad (gold 1, 1.1), of mixed lengths."""
    rows = []
    for i in range(n_id + n_ood):
        source = "koala" if i >= n_id else ("selfinstruct", "oasst")[i % 2]
        good, bad = GOOD[i % 4], BAD[i % 4]
        rows.append({"id": f"q{i}", "dataset": source, "instruction": f"please help me {i}",
                     "samples": [f"{good} sure", f"{good} yes of course {good}", f"{bad} no", f"{bad} no no {bad} no"],
                     "gold_preference": [2.0, 1.8, 1.0, 1.1]})
    return rows


def test_table_rows_report_and_reuse(tiny_llama, tmp_path):
    bon = write_jsonl(tmp_path / "bon.jsonl", bon_records())
    out = tmp_path / "table"
    argv = ["--bon", str(bon), "--smollm2", str(tiny_llama), "--groups", "baselines,smollm2@48,margin,loraall@48",
            "--lora-train-pairs", "12", "--lora-eval-pairs", "8", "--lora-r", "4", "--lora-lr", "3e-3",
            "--dtype", "float32", "--runs", str(tmp_path / "runs"), "--out", str(out)]
    study = load_script("experiments/rm_table/run.py")
    assert study.main(argv) == 0
    results = json.loads((out / "results.json").read_text())
    rows = results["rows"]
    assert {"prefer-longer", "prefer-shorter", "smollm2-last-linear@48", "smollm2-mean-mlp@48", "loraall@48"} <= set(rows)
    assert sum(name.endswith("+margin") for name in rows) == 1
    used = results["data"]["used"]
    assert used["ID"]["instructions"] == 6 and used["OOD"]["instructions"] == 6  # 30% of 20 held out
    for row in rows.values():
        for split in ("ID", "OOD"):
            lo, hi = row[split]["ci95"]
            assert lo <= row[split]["accuracy"] <= hi
            assert "vs_longer" in row[split]
        if row["kind"] == "frozen":
            assert row["train"]["instructions"] == 14 and row["cost"]["cpu_s"] > 0
            assert row["choice"]["epochs"] in (5, 20, 60)
    assert rows["loraall@48"]["ID"]["n"] == 8 and rows["loraall@48"]["train"]["pairs"] == 12
    readme = (out / "README.md").read_text()
    assert "| smollm2-last-linear@48 |" in readme and "not run (CPU budget): `--groups minilm@256`" in readme
    assert "cluster bootstrap" in readme and "--groups baselines,smollm2@48" in readme
    assert (out / "accuracy_vs_cpu.png").read_bytes()[:4] == b"\x89PNG"
    # A rerun reuses every row: nothing is trained or extracted again.
    before = {p: p.stat().st_mtime for p in (tmp_path / "runs" / "rows").glob("*.json")}
    assert study.main(argv) == 0
    assert before == {p: p.stat().st_mtime for p in (tmp_path / "runs" / "rows").glob("*.json")}
