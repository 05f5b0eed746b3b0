"""The generative-judge side of the command line on a tiny model: ``train`` a GenRM, ``star`` a
CoT-GenRM (2 iterations), ``eval`` a judge directory, an untrained model as a zero-shot judge
(``--judge``) and a DPO policy's implicit reward (``--implicit``); mistakes end in one line."""

from __future__ import annotations

import json

import pytest

from tests.conftest import REPO
from tests.e2e.test_cli import rewardlab

PROMPT_FILE = REPO / "configs" / "tiny_judge_prompt.yaml"


def common(tiny_judge, pair_files, out):
    return [f"model.path={tiny_judge}", f"data.train={pair_files[0]}", f"data.eval={pair_files[1]}",
            f"variant.prompt={PROMPT_FILE}", f"output_dir={out}"]


@pytest.fixture(scope="module")
def genrm(tiny_judge, pair_files, tmp_path_factory):
    out = tmp_path_factory.mktemp("genrm") / "run"
    done = rewardlab("train", REPO / "configs" / "tiny_genrm.yaml", *common(tiny_judge, pair_files, out),
                     "train.epochs=1")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "trained genrm on 64 pairs" in done.stdout and "held-out accuracy" in done.stdout
    return out


def test_train_genrm_writes_a_judge_that_eval_loads(genrm, pair_files, tmp_path):
    assert (genrm / "final" / "rewardlab_judge.json").exists() and (genrm / "eval.json").exists()
    out = tmp_path / "judge.json"
    done = rewardlab("eval", "--model", genrm / "final", "--data", pair_files[1], "--out", out)
    assert done.returncode == 0, done.stderr[-3000:]
    printed = json.loads(done.stdout.splitlines()[0])
    summary = json.loads(out.read_text())
    assert printed["order_consistency"] == summary["order_consistency"] is not None
    rows = [json.loads(x) for x in out.with_name("judge.pairs.jsonl").read_text().splitlines()]
    assert len(rows) == 32 and {"p_forward", "p_swapped", "order_consistent"} <= set(rows[0])


def test_zero_shot_judge_from_an_untrained_model(tiny_judge, pair_files, tmp_path):
    out = tmp_path / "zs.json"
    done = rewardlab("eval", "--model", tiny_judge, "--judge", f"indicator:prompt={PROMPT_FILE}",
                     "--data", pair_files[1], "--limit", "8", "--out", out)
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(out.read_text())["n"] == 8
    cot = tmp_path / "cot.json"
    done = rewardlab("eval", "--model", tiny_judge, "--judge", f"cot:k=2,max_new_tokens=4,prompt={PROMPT_FILE}",
                     "--data", pair_files[1], "--limit", "4", "--out", cot)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(cot.read_text())
    assert sum(summary["verdicts"].values()) == 4 * 2 * 2 and "unparseable" in summary


def test_star_two_iterations_from_the_cli(tiny_judge, pair_files, tmp_path):
    out = tmp_path / "star"
    done = rewardlab("star", REPO / "configs" / "tiny_star.yaml", *common(tiny_judge, pair_files, out),
                     "variant.name=star_rationalizer")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "iteration 1: yield" in done.stdout and "iteration 2: yield" in done.stdout
    assert len((out / "star.jsonl").read_text().splitlines()) == 2
    assert json.loads((out / "final" / "rewardlab_judge.json").read_text())["kind"] == "star_rationalizer"


def test_implicit_reward_from_the_cli(tiny_judge, pair_files, tmp_path):
    out = tmp_path / "imp.json"
    done = rewardlab("eval", "--model", tiny_judge, "--implicit", "ratio", "--reference", tiny_judge,
                     "--data", pair_files[1], "--limit", "4", "--out", out)
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(out.read_text())["ties"] == 4  # the policy is its own reference: every reward is 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["eval", "--judge", "cot:temprature=1"], "did you mean 'temperature'"),
        (["eval", "--judge", "vote"], "judge method must be one of indicator, cot"),
        (["eval", "--implicit", "ratio"], "needs a reference model"),
        (["star", "VARIANT=genrm"], "is not a STaR variant"),
        (["star", "VARIANT=star_sft", "variant.k=0"], "variant.k"),
        (["star", "VARIANT=star_sft", "variant.prompt=nope"], "judge prompt 'nope'"),
    ],
)
def test_mistakes_end_in_one_line(tiny_judge, pair_files, args, message):
    if args[0] == "eval":
        args = [*args, "--model", str(tiny_judge), "--data", str(pair_files[1])]
    else:
        variant = args[1].split("=")[1]
        config = "tiny_genrm.yaml" if variant == "genrm" else "tiny_star.yaml"
        args = ["star", str(REPO / "configs" / config), f"model.path={tiny_judge}", f"data.train={pair_files[0]}",
                f"variant.name={variant}", f"variant.prompt={PROMPT_FILE}", *args[2:]]
    done = rewardlab(*args)
    assert done.returncode == 2, done.stderr[-2000:]
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and "Traceback" not in done.stderr
