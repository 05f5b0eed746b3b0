"""The gold-labelled pair builder: every pair at the gap, splits by instruction and source, the counts,
the learning-curve subsets, the files it writes, and the pair counts of the real AlpacaEval file."""

from __future__ import annotations

import dataclasses
import json

import pytest

from rewardlab.data import DataError, load_pairs
from rewardlab.data.bon import load_bon_records
from rewardlab.data.bon_pairs import (
    ID_SOURCES,
    OOD_SOURCES,
    bon_pairs_from_file,
    build_bon_pairs,
    instruction_of,
    settings_problems,
    split_order,
    take_instructions,
    take_pairs,
    training_splits,
    write_bon_pairs,
)
from tests.conftest import BON16, requires_shared, write_jsonl


def rec(i, source, gold, samples=None):
    samples = samples or [f"answer {k} of {i}" for k in range(len(gold))]
    return {"id": str(i), "dataset": source, "instruction": f"question {i}", "samples": samples,
            "gold_preference": gold}


ROWS = [
    rec(0, "oasst", [1.0, 1.9, 1.3, None]),           # 1>0 (0.9), 1>2 (0.6)
    rec(1, "selfinstruct", [1.1, 1.2, None, 1.4]),    # max gap 0.3: no pair
    rec(2, "koala", [2.0, 1.0, 1.5, 1.0]),            # 0>1, 0>3 (1.0), 0>2, 2>1, 2>3 (0.5): 5 pairs
    rec(3, "helpful_base", [1.0, 2.0], samples=["same", "same "]),  # identical texts: skipped
    rec(4, "somewhere", [1.0, 2.0]),                  # neither list: left out
    rec(5, "vicuna", [None, 1.7, None, None]),        # one label
    *[rec(10 + k, "selfinstruct", [1.0, 1.6, 2.0]) for k in range(10)],  # 1>0 (0.6), 2>0 (1.0) each
]


@pytest.fixture
def records(tmp_path):
    return load_bon_records(write_jsonl(tmp_path / "bon.jsonl", ROWS))[0]


def test_every_pair_at_the_gap_with_its_margin_in_split_order(records):
    built = build_bon_pairs(records, min_gap=0.5, heldout_fraction=0.25, seed=0)
    every = built.train + built.heldout + built.ood
    assert sorted(p.id for p in every if instruction_of(p.id) in {"0", "2"}) == \
        ["0:1>0", "0:1>2", "2:0>1", "2:0>2", "2:0>3", "2:2>1", "2:2>3"]
    by_id = {p.id: p for p in every}
    assert by_id["0:1>2"].margin == pytest.approx(0.6) and by_id["0:1>2"].subset == "oasst"
    assert by_id["0:1>2"].chosen[0]["content"] == "answer 1 of 0"
    assert by_id["0:1>2"].rejected[0]["content"] == "answer 2 of 0"
    assert all(p.margin >= 0.5 for p in every)
    # ID instructions in split order: the first round(0.25 * 12) = 3 are held out
    id_order = split_order([str(i) for i in (0, 1, 3, *range(10, 20))], seed=0)
    assert built.instructions["heldout"] == id_order[:3] and built.instructions["train"] == id_order[3:]
    assert built.instructions["ood"] == split_order(["2", "5"], seed=0)
    # pairs come instruction by instruction in split order, widest gap first within one
    order = [instruction_of(p.id) for p in built.train]
    assert order == sorted(order, key=built.instructions["train"].index)
    assert [p.id for p in built.ood] == ["2:0>1", "2:0>3", "2:0>2", "2:2>1", "2:2>3"]


def test_stats_count_instructions_pairs_and_what_was_dropped(records):
    built = build_bon_pairs(records, min_gap=0.5, heldout_fraction=0.25, seed=0)
    s = built.stats
    assert s["instructions"] == {"read": 16, "train": 10, "heldout": 3, "ood": 2, "other_source": 1}
    assert sum(s["instructions_with_pairs"].values()) == 12  # 0, 2, 4's pair is dropped, 10..19
    assert s["pairs"]["ood"] == {"total": 5, "by_source": {"koala": 5}}
    assert s["pairs"]["train"]["total"] + s["pairs"]["heldout"]["total"] == 2 + 20
    assert s["dropped_pairs"] == {"identical_texts": 1, "other_source": 1}
    assert s["instructions_without_pairs"] == {"fewer_than_two_labels": 1, "no_gap": 2}  # 5; 1 and 3
    assert (s["min_gap"], s["heldout_fraction"], s["seed"]) == (0.5, 0.25, 0)
    assert (s["id_sources"], s["ood_sources"]) == (list(ID_SOURCES), list(OOD_SOURCES))


def test_no_instruction_in_two_splits_and_bon_records_are_the_held_out_ones(records):
    built = build_bon_pairs(records, heldout_fraction=0.25)
    seen = {name: {instruction_of(p.id) for p in getattr(built, name)} for name in ("train", "heldout", "ood")}
    assert not (seen["train"] & seen["heldout"]) and not (seen["train"] & seen["ood"])
    bon_ids = {r.id for r in built.bon_heldout_id + built.bon_heldout_ood}
    assert bon_ids == set(built.instructions["heldout"]) | set(built.instructions["ood"])
    assert not bon_ids & seen["train"] and not bon_ids & set(built.instructions["train"])
    assert all(r.subset in OOD_SOURCES for r in built.bon_heldout_ood)


def test_the_split_depends_on_seed_and_ids_only(records):
    a = build_bon_pairs(records, min_gap=0.5, heldout_fraction=0.25, seed=0)
    assert build_bon_pairs(records, min_gap=0.9, heldout_fraction=0.25, seed=0).instructions == a.instructions
    assert build_bon_pairs(list(reversed(records)), heldout_fraction=0.25).instructions == a.instructions
    others = [build_bon_pairs(records, heldout_fraction=0.25, seed=s).instructions["heldout"] for s in (1, 2, 3)]
    assert any(h != a.instructions["heldout"] for h in others)
    wider = build_bon_pairs(records, min_gap=0.9, heldout_fraction=0.25)
    assert all(p.margin >= 0.9 for p in wider.train + wider.heldout + wider.ood)


def test_custom_source_lists(records):
    built = build_bon_pairs(records, id_sources=["selfinstruct", "koala"], ood_sources=[], heldout_fraction=0.0)
    assert built.heldout == [] and built.ood == [] and built.bon_heldout_ood == []
    assert {p.subset for p in built.train} == {"selfinstruct", "koala"}
    assert built.stats["instructions"]["other_source"] == 4


def test_take_pairs_grouped_and_spread(records):
    train = build_bon_pairs(records, heldout_fraction=0.0).train
    first, n = take_pairs(train, 5)
    assert first == train[:5] and n == 3  # whole instructions: 2 + 2 + the first of a third
    bigger, _ = take_pairs(train, 9)
    assert bigger[:5] == first  # a larger subset contains the smaller one
    everything, n_all = take_pairs(train, None)
    assert everything == train and n_all == 11
    spread, n_spread = take_pairs(train, 11, spread=True)
    assert n_spread == 11 and len({instruction_of(p.id) for p in spread}) == 11
    assert take_pairs(train, 0) == ([], 0)
    with pytest.raises(ValueError):
        take_pairs(train, -1)


@pytest.mark.parametrize("kwargs, message", [
    ({"min_gap": 0}, "min_gap must be > 0"),
    ({"heldout_fraction": 1.0}, "heldout_fraction must be in [0, 1)"),
    ({"id_sources": []}, "id_sources must name at least one source"),
    ({"ood_sources": ["oasst"]}, "id_sources and ood_sources both list ['oasst']"),
])
def test_bad_settings_are_refused(records, kwargs, message):
    settings = {"min_gap": 0.5, "heldout_fraction": 0.3, "id_sources": ID_SOURCES, "ood_sources": OOD_SOURCES}
    problems = settings_problems(**{**settings, **kwargs})
    assert len(problems) == 1 and problems[0].startswith(message), problems
    with pytest.raises(ValueError, match="must|list"):
        build_bon_pairs(records, **kwargs)


def test_repeated_instruction_ids_are_refused(records):
    with pytest.raises(DataError, match="instruction id '0' appears"):
        build_bon_pairs([*records, dataclasses.replace(records[0], subset="koala")], source="b.jsonl")


def test_written_files_read_back(records, tmp_path):
    from rewardlab.bon.data import load_bon_items

    built = build_bon_pairs(records, heldout_fraction=0.25)
    paths = write_bon_pairs(built, tmp_path / "out")
    assert sorted(p.name for p in paths.values()) == sorted(
        ["train.jsonl", "heldout.jsonl", "ood.jsonl", "bon_heldout_id.jsonl", "bon_heldout_ood.jsonl", "stats.json"])
    for name in ("train", "heldout", "ood"):
        pairs, _ = load_pairs(paths[name], format="explicit")
        assert [(p.id, p.margin, p.subset, p.chosen, p.rejected, p.prompt) for p in pairs] == \
            [(p.id, p.margin, p.subset, p.chosen, p.rejected, p.prompt) for p in getattr(built, name)]
    items, _ = load_bon_items(paths["bon_heldout_ood"])
    assert [it.id for it in items] == built.instructions["ood"]
    again, _ = load_bon_records(paths["bon_heldout_id"])
    assert again == built.bon_heldout_id
    stats = json.loads(paths["stats"].read_text())
    assert stats["pairs"] == built.stats["pairs"] and stats["instruction_ids"] == built.instructions


def test_training_splits_cap_and_report(records, tmp_path):
    path = write_jsonl(tmp_path / "bon.jsonl", ROWS)
    train, heldout, ood, report = training_splits(path, train_limit=3, eval_size=2, heldout_fraction=0.25)
    assert len(train) == 3 and len(heldout) == 2 and len(ood) == 2
    assert report["used"]["train"] == {"pairs": 3, "instructions": 2}
    assert report["used"]["ood"] == {"pairs": 2, "instructions": 1}  # koala's one instruction holds all 5
    assert report["source"] == str(path) and report["pairs"]["ood"]["total"] == 5


def test_whole_instructions_for_training_and_evaluation(records, tmp_path):
    """``train_instructions`` / ``eval_instructions`` take every pair of the first N instructions."""
    path = write_jsonl(tmp_path / "bon.jsonl", ROWS)
    everything = training_splits(path, heldout_fraction=0.25)
    train, heldout, ood, report = training_splits(path, train_instructions=2, eval_instructions=1,
                                                  heldout_fraction=0.25)
    first_two = list(dict.fromkeys(instruction_of(p.id) for p in everything[0]))[:2]
    assert train == [p for p in everything[0] if instruction_of(p.id) in first_two]
    assert report["used"]["train"]["instructions"] == 2 and report["used"]["ood"] == {"pairs": 5, "instructions": 1}
    assert {instruction_of(p.id) for p in heldout} == {instruction_of(everything[1][0].id)}
    assert take_instructions(everything[0], 0) == ([], 0)
    with pytest.raises(ValueError):
        take_instructions(everything[0], -1)


@requires_shared(BON16)
def test_the_alpacaeval_file_gives_the_published_pair_counts():
    built = bon_pairs_from_file(BON16, min_gap=0.5)
    s = built.stats
    by_source: dict[str, int] = {}
    for split in ("train", "heldout", "ood"):
        for k, v in s["pairs"][split]["by_source"].items():
            by_source[k] = by_source.get(k, 0) + v
    assert by_source == {"selfinstruct": 1886, "oasst": 1529, "koala": 1169, "helpful_base": 1023, "vicuna": 710}
    assert sum(by_source.values()) == 6317
    assert s["dropped_pairs"] == {"identical_texts": 0, "other_source": 0}
    assert sum(s["instructions_with_pairs"].values()) == 388
    assert s["instructions"] == {"read": 805, "train": 398, "heldout": 171, "ood": 236, "other_source": 0}
    assert {k: v["total"] for k, v in s["pairs"].items()} == {"train": 3102, "heldout": 1336, "ood": 1879}
    assert s["instructions_with_pairs"] == {"train": 185, "heldout": 85, "ood": 118}
    train_ids = {instruction_of(p.id) for p in built.train}
    bon = {r.id for r in built.bon_heldout_id + built.bon_heldout_ood}
    assert len(bon) == 171 + 236 and not bon & train_ids
    assert not train_ids & {instruction_of(p.id) for p in built.heldout + built.ood}
    held_out_texts = {r.instruction for r in built.bon_heldout_id + built.bon_heldout_ood}
    assert not held_out_texts & {p.prompt[0]["content"] for p in built.train}


def test_recipe_keys_match_the_builder_and_refuse_bad_combinations():
    from rewardlab.config import ConfigError, DataConfig, load_recipe

    d = DataConfig()
    assert (tuple(d.bon_id_sources), tuple(d.bon_ood_sources)) == (ID_SOURCES, OOD_SOURCES)
    r = load_recipe(None, ["data.bon_pairs=b.jsonl.gz", "data.bon_ood_sources=[]", "data.bon_min_gap=1"])
    assert (r.data.bon_ood_sources, r.data.bon_min_gap, r.data.train) == ([], 1.0, "")
    for overrides, message in [
        (["data.bon_pairs=b.jsonl.gz", "data.train=x.jsonl"], "data.bon_pairs makes the training and eval pairs"),
        (["data.bon_pairs=b.jsonl.gz", "data.bon_heldout_fraction=1"], "data.bon_heldout_fraction must be in"),
        (["data.bon_pairs=b.jsonl.gz", "data.bon_ood_sources=[oasst]"], "data.bon_id_sources and ood_sources"),
        ([], "data.train is required"),
        (["data.bon_pairs=b.jsonl.gz", "data.eval_size=5", "data.bon_eval_instructions=3"],
         "data.bon_eval_instructions and data.eval_size both cap"),
        (["data.bon_pairs=b.jsonl.gz", "data.bon_train_instructions=-1"], "data.bon_train_instructions and"),
    ]:
        with pytest.raises(ConfigError, match=message.replace(".", r"\.")):
            load_recipe(None, overrides)
