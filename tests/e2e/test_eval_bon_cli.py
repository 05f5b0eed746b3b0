"""``rewardlab rewardbench``, ``suite``, ``bon`` and ``sample`` run as a user runs them, on tiny models:
each writes what its help promises, and a mistake ends in one line on stderr with exit status 2."""

from __future__ import annotations

import json

import pytest

from rewardlab.cli.main import main
from tests.component.test_eval_bon import bon_rows, rewardbench_file, save_tiny_rm
from tests.conftest import write_jsonl
from tests.e2e.test_cli import rewardlab


@pytest.fixture(scope="module")
def rm(tiny_llama, tmp_path_factory):
    return save_tiny_rm(tiny_llama, tmp_path_factory.mktemp("cli-rm") / "rm", 0)


def test_rewardbench_writes_sections_pairs_and_plot(rm, tmp_path):
    out = tmp_path / "rb.json"
    done = rewardlab("rewardbench", "--model", rm, "--data", rewardbench_file(tmp_path), "--out", out)
    assert done.returncode == 0, done.stderr[-3000:]
    s = json.loads(out.read_text())
    assert set(s["rewardbench"]["sections"]) == {"Chat", "Chat Hard", "Safety", "Reasoning"}
    assert s["provenance"]["data"]["data"]["hash"].startswith("sha256:")
    assert {"rewardlab_version", "seed", "models", "templates"} <= set(s["provenance"])
    assert (tmp_path / "rb.pairs.jsonl").exists() and (tmp_path / "rb.reliability.png").exists()
    assert "score_four_sections" in done.stdout and "score_with_prior_sets" in done.stdout


def test_suite_and_bon_and_sample(rm, tiny_llama, tmp_path):
    a, b = rewardbench_file(tmp_path), write_jsonl(tmp_path / "ood.jsonl", [
        {"prompt": "how are you ?", "chosen": "good kind", "rejected": "rude bad", "id": "o1"},
        {"prompt": "how are you ?", "chosen": "helpful", "rejected": "harmful unsafe", "id": "o2"}])
    done = rewardlab("suite", "--model", f"tiny={rm}", "--data", f"id={a}", "--data", f"ood={b}",
                     "--out", tmp_path / "suite")
    assert done.returncode == 0, done.stderr[-3000:]
    doc = json.loads((tmp_path / "suite" / "suite.json").read_text())
    assert set(doc["results"]["tiny"]) == {"id", "ood"} and "null: prefer shorter" in done.stdout

    data = write_jsonl(tmp_path / "bon.jsonl", bon_rows(4, 3))
    done = rewardlab("bon", "--proxy", f"tiny={rm}", "--data", data, "--win-threshold", "0",
                     "--n-boot", "20", "--out", tmp_path / "bon")
    assert done.returncode == 0, done.stderr[-3000:]
    res = json.loads((tmp_path / "bon" / "bon.json").read_text())
    assert res["n"] == [1, 2, 3] and "gold_win_rate" in res["proxies"]["tiny"]
    assert (tmp_path / "bon" / "bon.png").exists() and "Gao fit" in done.stdout

    # in-process from here on: the same main(), without another interpreter start
    prompts = write_jsonl(tmp_path / "prompts.jsonl", [{"id": "x", "prompt": "how are you ?"}])
    assert main(["sample", "--policy", str(tiny_llama), "--prompts", str(prompts), "--n", "2",
                 "--max-new-tokens", "3", "--out", str(tmp_path / "cand.jsonl")]) == 0
    rec = json.loads((tmp_path / "cand.jsonl").read_text().splitlines()[0])
    assert rec["id"] == "x" and len(rec["responses"]) == 2


def test_user_errors_are_one_line(rm, tmp_path, capsys):
    no_gold = write_jsonl(tmp_path / "nogold.jsonl", bon_rows(2, 3, gold=False))
    for args, needle in (
        (("bon", "--proxy", rm, "--data", no_gold), "--gold-model"),
        (("bon", "--proxy", tmp_path / "missing", "--data", no_gold), "does not exist"),
        (("rewardbench", "--model", rm, "--data", tmp_path / "absent.jsonl"), "absent.jsonl"),
    ):
        assert main([str(a) for a in args]) == 2, args
        err = capsys.readouterr().err
        assert needle in err and len(err.strip().splitlines()) == 1, err
