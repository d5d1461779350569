"""Validation loss of every attention principle variant, uniform and hybrid, after one short budget.

    python benchmarks/principles_table.py                      # the budget in studies/principles.yaml
    python benchmarks/principles_table.py --set train.steps=50 --kinds attention mlp approximate
    python benchmarks/principles_table.py --match               # every row parameter-matched (study.match)

Runs, once per configuration and with one seed (OMP_NUM_THREADS=1 by default),

    deconstruct train studies/principles.yaml --set model.mixer.kind=KIND --set model.layout=LAYOUT \\
        --skip-relaxed --format json

and prints a markdown table: val loss uniform / hybrid, the hybrid's skip_block_val_loss (its relaxed layers
removed at evaluation), parameters and wall time. Standard attention's hybrid is the same model as its
uniform (every layer standard), so it runs once. Progress goes to stderr, the table to stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SPEC = ROOT / "studies" / "principles.yaml"
KINDS = ["attention", "mlp", "approximate", "non_approximate", "static_qk", "random_qk", "fixed_text_qk",
         "frozen_qk", "symmetric_qk", "collapsed_qk", "collapsed_vo", "identity_vo"]


def run(kind: str, layout: str, sets: list[str], threads: int) -> dict:
    exe = shutil.which("deconstruct")
    cmd = [exe] if exe else [sys.executable, "-c", "from deconstruct.cli import main; main()"]
    cmd += ["train", str(SPEC), "--set", f"model.mixer.kind={kind}", "--set", f"model.layout={layout}",
            "--skip-relaxed", "--format", "json"]
    for s in sets:
        cmd += ["--set", s]
    tick = time.perf_counter()
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)} if threads else None
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env)
    if proc.returncode != 0:
        return {"error": (proc.stderr.strip().splitlines() or ["?"])[-1], "wall": time.perf_counter() - tick}
    data = json.loads(proc.stdout)
    data["wall"] = time.perf_counter() - tick
    return data


def matched_ratios(sets: list[str]) -> dict[tuple[str, str], float]:
    """(kind, layout) → the MLP ratio study.match {params: mlp_ratio} gives that configuration."""
    exe = shutil.which("deconstruct")
    cmd = [exe] if exe else [sys.executable, "-m", "deconstruct"]
    cmd += ["spec", "check", str(SPEC), "--format", "json", "--set", "study.match.params=mlp_ratio"]
    for s in sets:
        cmd += ["--set", s]
    configs = json.loads(subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, check=True).stdout)["configurations"]
    return {(c["params"]["model.mixer.kind"], c["params"]["model.layout"]): c["matched"] for c in configs}


def fmt(x: float | None) -> str:
    return "—" if x is None else f"{x:.4f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kinds", nargs="*", default=KINDS, help="mixer kinds (default: every named variant)")
    parser.add_argument("--set", dest="sets", action="append", default=[], help="extra --set PATH=VALUE for every run")
    parser.add_argument("--match", action="store_true",
                        help="parameter-match every row as study.match {params: mlp_ratio} would (the ratio per row "
                             "comes from `deconstruct spec check` of the spec with matching on)")
    parser.add_argument("--threads", type=int, default=1,
                        help="OMP_NUM_THREADS of each run (default 1: steadier timings on a shared machine; 0 = torch's default)")
    args = parser.parse_args()

    ratios = matched_ratios(args.sets) if args.match else {}
    rows = []
    for kind in args.kinds:
        row = {"kind": kind}
        for layout in ("uniform", "hybrid"):
            if kind == "attention" and layout == "hybrid":
                row[layout] = row["uniform"]  # every layer standard: the same model
                continue
            print(f"{kind:>16} {layout:<8}", end=" ", file=sys.stderr, flush=True)
            ratio = ratios.get((kind, layout))
            row[layout] = r = run(kind, layout, args.sets + ([f"model.mlp_ratio={ratio}"] if ratio else []), args.threads)
            print(r.get("error") or f"val_loss {r['val_loss']:.4f}  ({r['wall']:.1f} s)", file=sys.stderr)
        rows.append(row)

    print("| variant | val loss uniform | val loss hybrid | hybrid, skip relaxed | params uniform | params hybrid | s uniform | s hybrid |")
    print("|---|---|---|---|---|---|---|---|")
    for row in rows:
        u, h = row["uniform"], row["hybrid"]
        cells = [row["kind"] + (" (standard)" if row["kind"] == "attention" else "")]
        for r in (u, h):
            cells.append(r.get("error", "")[:60] or fmt(r["val_loss"]))
        cells.append(fmt(h.get("skip_block_val_loss")) if "error" not in h else "—")
        cells += [f"{r['params']:,}" if "params" in r else "—" for r in (u, h)]
        cells += [f"{r['wall']:.0f}" for r in (u, h)]
        print("| " + " | ".join(cells) + " |")
    settings = " ".join(f"--set {s}" for s in args.sets)
    matched = "; parameters matched through model.mlp_ratio (--match)" if args.match else ""
    print(f"\nspec: {SPEC.relative_to(ROOT)} {settings}".rstrip() + f"; one seed{matched}; wall seconds include start-up and evaluation")


if __name__ == "__main__":
    main()
