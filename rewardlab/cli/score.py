"""``rewardlab score --model DIR --data PATH [--out FILE.jsonl]``."""

from __future__ import annotations

import sys
from pathlib import Path

from rewardlab.cli.common import add_common_model_args, load_scorer


def add_parser(sub) -> None:
    p = sub.add_parser(
        "score",
        help="rewards for a JSONL of conversations",
        description="One JSON object per input line, in order, with a 'score' field. Input "
        "lines: {'messages': [...]}, {'conversation': [...]}, {'prompt', "
        "'response'}, or a bare list of messages; the last turn is judged.",
    )
    add_common_model_args(p)
    p.add_argument("--data", required=True, help="conversations to score")
    p.add_argument("--out", default="-", help="output JSONL (default: standard output)")
    p.set_defaults(run=run)


def run(args) -> int:
    from rewardlab import jsonout
    from rewardlab.data import load_conversations

    items = load_conversations(args.data)
    scorer = load_scorer(args, progress=args.out != "-")
    seqs = [scorer.encoder.encode_conversation(conv, where).ids for where, conv in items]
    for (where, _), ids in zip(items, seqs, strict=True):
        scorer.check_length(ids, where)
    scores = scorer.score_ids(seqs)
    text = "".join(
        jsonout.dumps({"id": where, "score": s}) + "\n"
        for (where, _), s in zip(items, scores.tolist(), strict=True)
    )
    if args.out == "-":
        sys.stdout.write(text)
    else:
        Path(args.out).write_text(text)
        print(f"wrote {len(items)} scores to {args.out}", file=sys.stderr)
    return 0
