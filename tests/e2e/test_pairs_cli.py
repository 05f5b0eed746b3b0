"""``rewardlab pairs`` as a user runs it: the files it promises, readable by ``eval`` / ``bon`` readers,
its summary on stdout, every option documented, and bad settings ending in one line."""

from __future__ import annotations

import json

import pytest

from rewardlab.data import load_pairs
from tests.component.test_bon_pairs_training import bon_rows
from tests.conftest import write_jsonl
from tests.e2e.test_cli import rewardlab


def test_pairs_writes_the_splits_the_bon_files_and_the_stats(tmp_path):
    from rewardlab.bon.data import load_bon_items

    data = write_jsonl(tmp_path / "bon.jsonl.gz", bon_rows())
    out = tmp_path / "pairs"
    done = rewardlab("pairs", "--data", data, "--out", out, "--heldout-fraction", "0.25", "--seed", "3")
    assert done.returncode == 0, done.stderr[-3000:]
    lines = {line.split()[0]: line for line in done.stdout.splitlines()[1:4]}
    assert lines["train"].startswith("  train       9 instructions (9 with pairs),    36 pairs: ")
    assert lines["ood"].startswith("  ood         8 instructions (8 with pairs),    32 pairs: ")
    assert "koala 16" in lines["ood"] and "vicuna 16" in lines["ood"]
    names = {p.name for p in out.iterdir()}
    assert names == {"train.jsonl", "heldout.jsonl", "ood.jsonl", "bon_heldout_id.jsonl", "bon_heldout_ood.jsonl",
                     "stats.json"}
    stats = json.loads((out / "stats.json").read_text())
    assert (stats["seed"], stats["heldout_fraction"]) == (3, 0.25)
    train, report = load_pairs(out / "train.jsonl")  # format detected: explicit
    assert report.kept == 36 and all(p.margin is not None and p.subset for p in train)
    held_out = {it.id for name in ("bon_heldout_id", "bon_heldout_ood")
                for it in load_bon_items(out / f"{name}.jsonl")[0]}
    assert held_out == set(stats["instruction_ids"]["heldout"]) | set(stats["instruction_ids"]["ood"])
    assert not held_out & {p.id.rsplit(":", 1)[0] for p in train}


@pytest.mark.parametrize("args, message", [
    (["--min-gap", "0"], "min_gap must be > 0"),
    (["--ood-sources", "oasst,koala"], "id_sources and ood_sources both list ['oasst']"),
])
def test_bad_settings_end_in_one_line(tmp_path, args, message):
    done = rewardlab("pairs", "--data", tmp_path / "absent.jsonl", "--out", tmp_path / "out", *args)
    assert done.returncode == 2 and done.stderr.strip() == f"rewardlab pairs: error: {message}" + (
        ", got 0.0" if "min_gap" in message else "")
    assert not (tmp_path / "out").exists()


def test_a_missing_file_is_one_line(tmp_path):
    done = rewardlab("pairs", "--data", tmp_path / "absent.jsonl", "--out", tmp_path / "out")
    assert done.returncode == 2 and "absent.jsonl" in done.stderr and "Traceback" not in done.stderr


def test_help_documents_every_option(capsys):
    from rewardlab.cli.main import build_parser

    parser = build_parser()
    with pytest.raises(SystemExit):
        parser.parse_args(["pairs", "--help"])
    text = capsys.readouterr().out
    sub = next(a for a in parser._actions if a.dest == "verb").choices["pairs"]
    for action in sub._actions:
        assert action.help and all(flag in text for flag in action.option_strings)
