"""The ``rewardlab`` command line, run as a user runs it (a subprocess of the console script), on a
tiny model: ``train`` writes the model and metrics and prints the held-out accuracy, ``eval`` and
``score`` write what their help promises, every verb documents every option, and mistakes end in one
line on stderr naming what to fix, with no traceback.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from transformers import AutoConfig

from tests.conftest import REPO, synthetic_pairs, write_jsonl
from tests.fp32 import forward_terms, fp32_atol

TINY = REPO / "configs" / "tiny_bt.yaml"
SCRIPT = Path(sys.executable).parent / "rewardlab"
CLI = [str(SCRIPT)] if SCRIPT.exists() else [sys.executable, "-m", "rewardlab.cli.main"]


def rewardlab(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    return subprocess.run(
        [*CLI, *map(str, args)], env=env, cwd=cwd, capture_output=True, text=True, timeout=300
    )


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def trained(tiny_llama, pair_files, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("cli") / "run"
    train_file, eval_file = pair_files
    done = rewardlab(
        "train",
        TINY,
        f"model.path={tiny_llama}",
        f"data.train={train_file}",
        f"data.eval={eval_file}",
        f"output_dir={out}",
    )
    assert done.returncode == 0, done.stderr[-3000:]
    (out / "stdout.txt").write_text(done.stdout)
    return out


def test_train_writes_the_model_and_metrics_and_prints_accuracy(trained):
    printed = re.search(
        r"held-out accuracy: ([0-9.]+) \(95% CI [0-9.]+-[0-9.]+\) on 32 pairs",
        (trained / "stdout.txt").read_text(),
    )
    assert printed and float(printed.group(1)) > 0.8
    for name in ("config.json", "model.safetensors", "tokenizer.json"):
        assert (trained / "final" / name).exists(), name
    metrics = json.loads((trained / "metrics.json").read_text())
    assert metrics["final_model"] == str(trained / "final")
    assert metrics["eval"]["accuracy"] == pytest.approx(float(printed.group(1)), abs=5e-4)
    assert metrics["train"]["steps"] == 24 and metrics["recipe"]["train"]["lr"] == 3e-3
    # length alone on the same pairs, the dtype used and the wall time are printed too
    length = metrics["eval"]["length"]
    printed = (trained / "stdout.txt").read_text()
    assert f"prefer longer {length['prefer_longer']:.3f}, prefer shorter {length['prefer_shorter']:.3f}" in printed
    assert re.search(r"steps \([0-9]+ s, float32\)", printed) and re.search(r"wall time: [0-9]+ s", printed)


def test_eval_writes_summary_and_per_pair_scores(trained, pair_files, tmp_path):
    out = tmp_path / "res" / "heldout.json"
    done = rewardlab("eval", "--model", trained / "final", "--data", pair_files[1], "--out", out)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(out.read_text())
    assert {"accuracy", "n", "ties", "per_subset", "ci95"} <= set(summary)
    assert summary["n"] == 32 and summary["accuracy"] > 0.8 and summary["ties"] == 0
    lo, hi = summary["ci95"]
    assert 0 <= lo <= summary["accuracy"] <= hi <= 1
    assert set(summary["per_subset"]) == {"chat", "safety"}
    assert sum(s["n"] for s in summary["per_subset"].values()) == 32
    printed = json.loads(done.stdout.splitlines()[0])
    assert printed == {k: summary[k] for k in ("accuracy", "n", "ties", "ci95")}
    rows = read_jsonl(out.with_name("heldout.pairs.jsonl"))
    assert [r["id"] for r in rows] == [f"p{i}" for i in range(32)]  # the data's order
    assert summary["accuracy"] == sum(r["outcome"] for r in rows) / 32
    # The same model on the same pairs as the evaluation that ended training.
    assert summary["accuracy"] == json.loads((trained / "metrics.json").read_text())["eval"]["accuracy"]


def test_score_writes_one_score_per_line_in_input_order(trained, tmp_path):
    pairs = synthetic_pairs(32, 1)[:3]  # the first held-out pairs, scored by training's final eval
    at_end = {r["id"]: r for r in read_jsonl(trained / "eval.pairs.jsonl")}
    lines, expected = [], []
    for p in pairs:
        prompt = [{"role": "user", "content": p["prompt"]}]
        lines.append({"messages": [*prompt, {"role": "assistant", "content": p["chosen"]}]})
        lines.append({"prompt": p["prompt"], "response": p["rejected"]})
        expected += [at_end[p["id"]]["chosen_score"], at_end[p["id"]]["rejected_score"]]
    convs = write_jsonl(tmp_path / "convs.jsonl", lines)
    out = tmp_path / "scores.jsonl"

    done = rewardlab("score", "--model", trained / "final", "--data", convs, "--out", out)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = read_jsonl(out)
    assert len(rows) == len(lines)
    assert [r["id"] for r in rows] == [f"{convs}:{i}" for i in range(1, len(lines) + 1)]
    # other batches than the final evaluation's: fp32 orders of the same rewards (tests/fp32.py)
    config = AutoConfig.from_pretrained(trained / "final")
    assert [r["score"] for r in rows] == pytest.approx(expected, abs=fp32_atol(forward_terms(config, 64),
                                                                                max(map(abs, expected))))


@pytest.mark.parametrize("verb", ["train", "eval", "score", "variants", "assets"])
def test_help_documents_every_option(verb, capsys):
    from rewardlab.cli.main import build_parser
    from rewardlab.config import all_keys

    parser = build_parser()
    with pytest.raises(SystemExit) as stop:
        parser.parse_args([verb, "--help"])
    assert stop.value.code == 0
    text = capsys.readouterr().out
    sub = next(a for a in parser._actions if a.dest == "verb").choices[verb]
    for action in sub._actions:
        assert action.help, f"{verb}: {action.option_strings or action.dest} has no help"
        for flag in action.option_strings:
            assert flag in text, flag
    if verb == "train":
        missing = [k for k in all_keys() if k not in text]
        assert not missing, f"recipe keys missing from train --help: {missing}"


def test_top_level_help_lists_the_verbs():
    done = rewardlab("--help")
    assert done.returncode == 0
    for verb in ("train", "eval", "score", "variants", "assets"):
        assert verb in done.stdout


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("bad")
    rows = [json.dumps(r) for r in synthetic_pairs(4)]
    (d / "broken.jsonl").write_text(
        "\n".join([rows[0], rows[1], '{"prompt": "hi", "chosen": ', rows[3]]) + "\n"
    )
    write_jsonl(
        d / "no_margin.jsonl", [{k: v for k, v in r.items() if k != "margin"} for r in synthetic_pairs(4)]
    )
    (d / "convs.jsonl").write_text('{"prompt": "hi", "response": "good"}\n{"prompt": "hi", "respons": "x"}\n')
    return d


ERRORS = {  # case: (arguments, what the one line on stderr must say)
    "missing data file": (
        ["train", "{tiny}", "data.train={d}/nowhere.jsonl"],
        r"nowhere\.jsonl: file does not exist",
    ),
    "unknown recipe key": (
        ["train", "{tiny}", "train.lrr=1e-3"],
        r"unknown recipe key 'train\.lrr'; did you mean 'train\.lr'",
    ),
    "malformed JSONL line": (
        ["train", "{tiny}", "data.train={d}/broken.jsonl"],
        r"broken\.jsonl:3: malformed JSON",
    ),
    "unknown variant": (
        ["train", "{tiny}", "variant.name=bt_marign"],
        r"unknown variant 'bt_marign'; did you mean 'bt_margin'",
    ),
    "margins missing": (
        ["train", "{tiny}", "variant.name=bt_margin", "data.train={d}/no_margin.jsonl"],
        r"no_margin\.jsonl: field 'margin': variant 'bt_margin' needs a margin",
    ),
    "no model there": (
        ["eval", "--model", "{d}/no_model", "--data", "{d}/no_margin.jsonl"],
        r"--model: model directory .*no_model does not exist",
    ),
    "bad conversation line": (["score", "--model", "{d}", "--data", "{d}/convs.jsonl"], r"convs\.jsonl:2"),
    "unknown device": (
        ["eval", "--model", "{d}", "--data", "{d}/no_margin.jsonl", "--device", "tpu"],
        r"--device: device must be auto, cpu, cuda or cuda:N, got 'tpu'",
    ),
}
# Each subprocess pays the imports (seconds); these run through main() in the test's own process.
IN_PROCESS = {"margins missing", "no model there", "bad conversation line", "unknown device"}


@pytest.mark.parametrize("case", list(ERRORS))
def test_mistakes_end_in_one_clear_line(case, bad_files, tiny_llama, capsys):
    args, pattern = ERRORS[case]
    args = [a.format(tiny=TINY, d=bad_files) for a in args]
    if args[0] == "train":
        args += [f"model.path={tiny_llama}", "data.eval=", f"output_dir={bad_files}/run"]
    if case in IN_PROCESS:
        from rewardlab.cli.main import main

        code, stderr = main(args), capsys.readouterr().err  # an uncaught exception fails the test
    else:
        done = rewardlab(*args)
        code, stderr = done.returncode, done.stderr
    assert code != 0
    assert "Traceback" not in stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr[-3000:]
    assert lines[0].startswith(f"rewardlab {args[0]}: error: ")
    assert re.search(pattern, lines[0]), lines[0]
