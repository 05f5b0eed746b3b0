"""Summarise a ``benchmarks/gpu_check.sh`` run: every ratio against its target, each step's status.

    python benchmarks/gpu_summary.py OUT_DIR [--seconds S] [--dry-run 0|1]

Writes ``OUT_DIR/summary.json`` and prints it as a table.
"""

from __future__ import annotations

import argparse
import json
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

# (result file, what, path into the JSON, target, higher is better)
TARGETS = [
    ("train_bf16_lora.json", "training bf16 + LoRA, tokens/s vs TRL", ("comparison", "tokens_per_s_ratio"), 1.5),
    ("train_fp32_full.json", "training fp32 full, tokens/s vs TRL", ("comparison", "tokens_per_s_ratio"), 1.5),
    ("train_bf16_lora.json", "training bf16 + LoRA, max |loss - TRL's|", ("comparison", "loss_max_abs_diff"), None),
    ("train_fp32_full.json", "training fp32 full, max |loss - TRL's|", ("comparison", "loss_max_abs_diff"), None),
    ("score_135m.json", "scoring 135M fp32 vs naive", ("contenders", "rewardlab fp32", "speedup_vs_naive"), 3.0),
    ("score_135m.json", "scoring 135M bf16 vs naive", ("contenders", "rewardlab bf16", "speedup_vs_naive"), 6.0),
    ("score_1b.json", "scoring 1.1B bf16 MFU", ("contenders", "rewardlab bf16", "mfu"), 0.5),
    ("score_1b.json", "scoring 1.1B bf16 vs naive", ("contenders", "rewardlab bf16", "speedup_vs_naive"), None),
]


def dig(data, path):
    for key in path:
        if not isinstance(data, dict) or key not in data:
            return None
        data = data[key]
    return data


def tests_summary(xml: Path) -> dict | None:
    if not xml.exists():
        return None
    root = ET.parse(xml).getroot()
    suite = root if root.tag == "testsuite" else root.find("testsuite")
    failed = [f"{c.get('classname')}::{c.get('name')}" for c in suite.iter("testcase")
              if c.find("failure") is not None or c.find("error") is not None]
    return {k: int(suite.get(k, 0)) for k in ("tests", "failures", "errors", "skipped")} | {"failed": failed}


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("out")
    p.add_argument("--seconds", type=int, default=None, help="the whole check's wall time")
    p.add_argument("--dry-run", type=int, default=0)
    args = p.parse_args(argv)
    out = Path(args.out)
    steps = []
    if (out / "steps.tsv").exists():
        for line in (out / "steps.tsv").read_text().splitlines():
            name, rc, sec = line.split("\t")
            steps.append({"step": name, "exit": int(rc), "seconds": int(sec)})
    rows = []
    device = None
    for file, what, path, target in TARGETS:
        f = out / file
        data = json.loads(f.read_text()) if f.exists() else {}
        device = device or dig(data, ("machine", "gpu")) or dig(data, ("machine", "cpu"))
        value = dig(data, path)
        met = None if value is None or target is None else value >= target
        rows.append({"what": what, "value": value, "target": target, "met": met, "file": file})
    res = {"dry_run": bool(args.dry_run), "device": device, "seconds": args.seconds, "steps": steps,
           "figures": rows, "tests": tests_summary(out / "tests.xml")}
    (out / "summary.json").write_text(json.dumps(res, indent=2) + "\n")
    print(f"\n{'DRY RUN, ' if args.dry_run else ''}device: {device}; {args.seconds} s in all")
    for s in steps:
        print(f"  step {s['step']:<16} exit {s['exit']:<4} {s['seconds']:>5} s")
    for r in rows:
        v = "n/a" if r["value"] is None else f"{r['value']:.3f}"
        t = "" if r["met"] is None else f" (target >= {r['target']}: {'met' if r['met'] else 'NOT met'})"
        print(f"  {r['what']}: {v}{t}")
    if res["tests"]:
        t = res["tests"]
        print(f"  tests: {t['tests']} run, {t['failures']} failed, {t['errors']} errors, {t['skipped']} skipped")
        for name in t["failed"]:
            print(f"    FAILED {name}")
    print(f"wrote {out / 'summary.json'}")
    return res


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
