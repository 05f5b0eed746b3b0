"""Bad input and unsafe or missing models, through every verb of the command line: each ends in one line
on stderr with exit status 2, and every verb that loads weights refuses a pickle-only checkpoint."""

from __future__ import annotations

import json
import shutil

import pytest

from rewardlab.cli.main import VERBS, build_parser, main
from tests.component.test_eval_bon import bon_rows
from tests.component.test_safety import write_trap
from tests.conftest import REPO, synthetic_pairs, write_jsonl
from tests.rm_helpers import make_tiny_rm

TINY, GENRM, STAR = (REPO / "configs" / f"tiny_{n}.yaml" for n in ("bt", "genrm", "star"))
LONE = "a\ud800b"


@pytest.fixture(scope="module")
def files(tiny_llama, tmp_path_factory):
    """A tiny RM, a pickle-only copy of it (whose unpickling would write a marker), and data of every kind."""
    d = tmp_path_factory.mktemp("cli-inputs")
    rm = make_tiny_rm(tiny_llama, d / "rm")
    pickled = d / "pickled"
    pickled.mkdir()
    for f in rm.iterdir():
        if f.suffix != ".safetensors":
            shutil.copy(f, pickled / f.name)
    write_trap(pickled / "pytorch_model.bin", d / "marker")
    pairs = write_jsonl(d / "pairs.jsonl", synthetic_pairs(24))
    write_jsonl(d / "convs.jsonl", [{"prompt": "hi", "response": "hello"}])
    write_jsonl(d / "bon.jsonl", bon_rows(2, 3))
    write_jsonl(d / "prompts.jsonl", [{"id": "x", "prompt": "hi"}])
    (d / "empty.jsonl").write_text("")
    bad = dict(synthetic_pairs(3)[2], chosen=LONE)  # json.dumps writes the valid JSON escape "\ud800"
    (d / "surrogate.jsonl").write_text("".join(json.dumps(r) + "\n" for r in [*synthetic_pairs(2), bad]))
    (d / "surrogate_convs.jsonl").write_text(json.dumps({"prompt": "hi", "response": LONE}) + "\n")
    return {"d": d, "rm": rm, "pickled": pickled, "pairs": pairs, "llama": tiny_llama}


def run_cli(args, capsys) -> tuple[int, str]:
    """``rewardlab ARGS`` in this process: the exit status and stderr (an uncaught exception fails the test)."""
    code = main([str(a) for a in args])
    return code, capsys.readouterr().err


def one_line(code: int, err: str, verb: str) -> str:
    assert code == 2, err[-3000:]
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err[-3000:]
    assert lines[0].startswith(f"rewardlab {verb}: error: ")
    return lines[0]


def verb_args(model: str, f: dict) -> dict[str, list]:
    """Every way a verb takes a model, with ``model`` in that place."""
    d = f["d"]
    recipe = [f"data.train={f['pairs']}", "data.eval=", f"output_dir={d / 'runs'}"]
    return {
        "train": ["train", TINY, f"model.path={model}", *recipe],
        "train genrm": ["train", GENRM, f"model.path={model}", *recipe],
        "star": ["star", STAR, f"model.path={model}", *recipe],
        "eval": ["eval", "--model", model, "--data", f["pairs"], "--out", d / "e.json"],
        "eval --judge": ["eval", "--model", model, "--judge", "indicator", "--data", f["pairs"], "--out", d / "j.json"],
        "eval --implicit": ["eval", "--model", f["llama"], "--implicit", "ratio", "--reference", model,
                            "--data", f["pairs"], "--out", d / "i.json"],
        "score": ["score", "--model", model, "--data", d / "convs.jsonl"],
        "rewardbench": ["rewardbench", "--model", model, "--data", f["pairs"], "--out", d / "rb.json"],
        "suite": ["suite", "--model", model, "--data", f["pairs"], "--out", d / "suite"],
        "audit": ["audit", "--model", model, "--out", d / "audit.html"],
        "serve": ["serve", "--model", model, "--port", "1"],  # refused before a server starts
        "bon --proxy": ["bon", "--proxy", model, "--data", d / "bon.jsonl", "--out", d / "bon"],
        "bon --gold-model": ["bon", "--proxy", f["rm"], "--gold-model", model, "--data", d / "bon.jsonl",
                             "--out", d / "bon"],
        "sample": ["sample", "--policy", model, "--prompts", d / "prompts.jsonl", "--out", d / "cand.jsonl"],
        "export": ["export", "--model", model, "--out", d / "exported"],
    }


MODEL_VERBS = list(verb_args("M", {"d": REPO, "pairs": "P", "llama": "L", "rm": "R"}))


def test_every_verb_that_loads_a_model_is_covered():
    covered = {case.split()[0] for case in MODEL_VERBS}
    # variants, assets, dtype and pairs load no model
    assert covered == set(VERBS) - {"variants", "assets", "dtype", "pairs"}, set(VERBS) - covered


@pytest.mark.parametrize("case", MODEL_VERBS)
def test_every_verb_refuses_a_pickle_only_checkpoint(case, files, capsys, monkeypatch):
    monkeypatch.chdir(REPO)  # the judge recipes name their prompt file relative to the repository
    args = verb_args(str(files["pickled"]), files)[case]
    line = one_line(*run_cli(args, capsys), args[0])
    assert f"{files['pickled']}: weights are pickle files (pytorch_model.bin)" in line
    assert "--trust-checkpoint" in line
    assert not (files["d"] / "marker").exists()


@pytest.mark.parametrize("case", MODEL_VERBS)
def test_every_verb_names_a_missing_model_directory(case, files, capsys, monkeypatch):
    monkeypatch.chdir(REPO)  # as above; the missing path is relative, as a user types it
    args = verb_args("runs/no-such-run/final", files)[case]
    line = one_line(*run_cli(args, capsys), args[0])
    assert "model directory runs/no-such-run/final does not exist" in line


def test_a_hub_id_offline_and_not_cached_says_so(files, capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    line = one_line(*run_cli(["eval", "--model", "someone/no-such-rm", "--data", files["pairs"]], capsys), "eval")
    assert "--model: model directory someone/no-such-rm does not exist, and as a hub id it is not in the local cache" \
        in line and "HF_HUB_OFFLINE=1" in line


@pytest.mark.parametrize("verb", ["train", "eval", "score"])
def test_a_lone_surrogate_is_one_line_naming_file_line_and_field(verb, files, capsys):
    d = files["d"]
    args = {"train": ["train", TINY, f"model.path={files['llama']}", f"data.train={d / 'surrogate.jsonl'}",
                      "data.eval=", f"output_dir={d / 'runs'}"],
            "eval": ["eval", "--model", files["rm"], "--data", d / "surrogate.jsonl", "--out", d / "s.json"],
            "score": ["score", "--model", files["rm"], "--data", d / "surrogate_convs.jsonl"]}[verb]
    line = one_line(*run_cli(args, capsys), verb)
    field = "response" if verb == "score" else "chosen"
    lineno = 1 if verb == "score" else 3
    assert f"surrogate{'_convs' if verb == 'score' else ''}.jsonl:{lineno}: field '{field}': not valid Unicode" in line


def test_lenient_eval_drops_and_counts_a_lone_surrogate(files, capsys):
    out = files["d"] / "lenient.json"
    code, _ = run_cli(["eval", "--model", files["rm"], "--data", files["d"] / "surrogate.jsonl", "--lenient",
                       "--out", out], capsys)
    assert code == 0
    summary = json.loads(out.read_text())
    assert summary["n"] == 2 and summary["data"]["dropped"] == {"bad_text": 1}


def test_an_empty_file_is_an_error_for_eval_and_train(files, capsys):
    d = files["d"]
    line = one_line(*run_cli(["eval", "--model", files["rm"], "--data", d / "empty.jsonl", "--out", d / "n.json"],
                             capsys), "eval")
    assert line.endswith("empty.jsonl: holds no records") and not (d / "n.json").exists()
    line = one_line(*run_cli(["train", TINY, f"model.path={files['llama']}", f"data.train={d / 'empty.jsonl'}",
                              "data.eval=", f"output_dir={d / 'runs'}"], capsys), "train")
    assert line.endswith("empty.jsonl: holds no records") and "truncation" not in line


@pytest.mark.parametrize(("extra", "needle"), [
    (["--host", "0.0.0.0"], "--host 0.0.0.0: serving beyond this machine needs an API key"),
    (["--api-key", "k", "--api-key-file", "KEYFILE"], "give the API key once"),
    (["--api-key-file", "NOFILE"], "--api-key-file NOFILE: cannot read it"),
    (["--api-key-file", "EMPTYFILE"], "the file is empty"),
    # accepted: the run gets as far as the model, which does not exist
    (["--host", "0.0.0.0", "--insecure-no-auth"], "model directory runs/nowhere does not exist"),
    (["--host", "0.0.0.0", "--api-key-file", "KEYFILE"], "model directory runs/nowhere does not exist"),
])
def test_serve_without_a_key_stays_on_loopback(extra, needle, files, capsys, monkeypatch):
    d = files["d"]
    monkeypatch.chdir(d)
    monkeypatch.delenv("REWARDLAB_API_KEY", raising=False)
    (d / "KEYFILE").write_text("s3cret\n")
    (d / "EMPTYFILE").write_text("\n")
    line = one_line(*run_cli(["serve", "--model", "runs/nowhere", *extra], capsys), "serve")
    assert needle in line


def test_serve_reads_the_key_from_a_file_or_the_environment(tmp_path, monkeypatch):
    from rewardlab.cli.serve import api_key

    args = build_parser().parse_args(["serve", "--model", "m", "--api-key-file", str(tmp_path / "k")])
    (tmp_path / "k").write_text("from-file\nignored\n")
    assert api_key(args) == "from-file"
    monkeypatch.setenv("REWARDLAB_API_KEY", "from-env")
    assert api_key(build_parser().parse_args(["serve", "--model", "m"])) == "from-env"


@pytest.mark.parametrize("verb", ["", *VERBS])
def test_help_texts_print_percent_signs_once(verb, capsys):
    """argparse %-formats argument and verb help, not descriptions: '95%%' there prints as written."""
    with pytest.raises(SystemExit):
        build_parser().parse_args([verb, "--help"] if verb else ["--help"])
    text = capsys.readouterr().out
    assert "%%" not in text and "%(" not in text


def test_eval_help_states_where_results_go(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["eval", "--help"])
    assert "default: eval.json in the current directory" in " ".join(capsys.readouterr().out.split())


def test_eval_on_a_directory_reports_what_it_did_not_read(files, tmp_path, capsys):
    data = tmp_path / "data"
    data.mkdir()
    write_jsonl(data / "a.jsonl", synthetic_pairs(12))
    write_jsonl(data / "B.JSONL", synthetic_pairs(12, 1))
    (data / "notes.txt").write_text("x\n")
    (data / "more").mkdir()
    code = main(["eval", "--model", str(files["rm"]), "--data", str(data), "--out", str(tmp_path / "e.json")])
    out = capsys.readouterr().out
    assert code == 0
    assert "read 24, kept 24, skipped 2 directory entries not read" in out
    report = json.loads((tmp_path / "e.json").read_text())["data"]
    assert report["read"] == 24 and set(report["skipped"]) == {str(data / "notes.txt"), str(data / "more")}
