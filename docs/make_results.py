"""Regenerate docs/results.md (and the README's quickstart table) from the store: every number on the page
is read from the studies' runs, never typed.

    python docs/make_results.py --run            # run every study of the page first (hours on 2 cores)
    python docs/make_results.py                  # rewrite the page from what the store holds
    python docs/make_results.py --storage sqlite:///results.db --only quickstart

For each study the page gives the command, the machine and versions, the compute it took (the sum of its
runs' wall time, from the store), the report's main table (``deconstruct report NAME --format markdown``),
the HTML report beside it (docs/results/NAME.html), and one paragraph per claim of the paper: *agrees*,
*does not agree* or *cannot tell at this size*, with the paired interval that decides and the table rows it
rests on. A claim is a comparison of two configurations over the seeds they share:

- ``worse`` / ``better``: the 95 % Student-t interval of the paired difference (in the study's objective)
  lies on the paper's side of 0 → agrees; on the other side → does not; spans 0 → cannot tell, and the
  number of seeds that would separate it at the observed spread is given.
- ``similar``: the interval lies inside ±``margin`` (relative to the reference row) → agrees; entirely
  outside → does not; otherwise cannot tell.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "results.md"
HTML_DIR = ROOT / "docs" / "results"
DEFAULT_STORAGE = "sqlite:///results.db"


@dataclass(frozen=True)
class Claim:
    text: str  # what the paper found, in one sentence
    a: dict[str, Any]  # the configuration the claim is about (searched values)
    b: dict[str, Any]  # the reference configuration
    expect: str  # "worse" | "better" | "similar" (a relative to b, in the objective's direction)
    margin: float = 0.02  # for "similar": the relative difference still called similar


@dataclass(frozen=True)
class Study:
    name: str
    spec: str
    paper: str
    claims: list[Claim] = field(default_factory=list)
    metric: str | None = None  # report this metric instead of the objective (e.g. accuracy)
    note: str = ""  # what to read the findings with (no numbers: those come from the tables)


def _xue(kind: str, layout: str) -> dict[str, Any]:
    return {"model.mixer.kind": kind, "model.layout": layout}


STANDARD = _xue("attention", "uniform")
STUDIES = [
    Study("quickstart", "studies/quickstart.yaml", "Xue et al. 2025 (the quickstart's two principles)", [
        Claim("No token mixing in any layer is worse than standard attention.", _xue("mlp", "uniform"), STANDARD, "worse"),
        Claim("Relaxing every other layer costs less than relaxing all of them.", _xue("mlp", "hybrid"), _xue("mlp", "uniform"), "better"),
    ]),
    Study("deconstructing-attention", "studies/deconstructing-attention.yaml", "Xue, Moosavi & Aletras 2025, arXiv 2510.11602", [
        Claim("Uniform no-mixing (mlp) collapses against standard attention.", _xue("mlp", "uniform"), STANDARD, "worse"),
        Claim("Uniform non-approximate attention collapses against standard attention.", _xue("non_approximate", "uniform"), STANDARD, "worse"),
        *[Claim(f"Hybrid {k} stays close to standard attention (within 2 %).", _xue(k, "hybrid"), STANDARD, "similar")
          for k in ("mlp", "approximate", "non_approximate", "static_qk", "random_qk", "fixed_text_qk")],
        Claim("Hybrid mlp is better than uniform mlp.", _xue("mlp", "hybrid"), _xue("mlp", "uniform"), "better"),
    ]),
    Study("approximate-normalisation", "studies/approximate-normalisation.yaml",
          "Xue et al. 2025, the approximate variant's normaliser (why this tool deviates from the paper's text)", [
        Claim("The paper's per-order normalisation trains worse than one normaliser (uniform).",
              {"model.mixer.normalization": "separate", "model.layout": "uniform"},
              {"model.mixer.normalization": "single", "model.layout": "uniform"}, "worse"),
        Claim("The paper's per-order normalisation trains worse than one normaliser (hybrid).",
              {"model.mixer.normalization": "separate", "model.layout": "hybrid"},
              {"model.mixer.normalization": "single", "model.layout": "hybrid"}, "worse"),
    ]),
    Study("deconstructing-attention-layouts", "studies/deconstructing-attention-layouts.yaml", "Xue et al. 2025, layout ablation", [
        Claim("For mlp, keeping standard attention in the top half beats keeping only the last layer.",
              _xue("mlp", "top"), _xue("mlp", "last"), "better"),
        Claim("For mlp, the paper's main hybrid (even layers standard) is as good as the odd-layer variant.",
              _xue("mlp", "hybrid"), _xue("mlp", "odd"), "similar"),
    ]),
    Study("minimal-transformer", "studies/minimal-transformer.yaml", "Bermeitinger et al. 2024, arXiv 2410.13732", [
        Claim("Symmetric QK costs little against separate W_Q, W_K.", {"model.mixer.kind": "symmetric_qk", "model.channel_mixer": "mlp"},
              {"model.mixer.kind": "attention", "model.channel_mixer": "mlp"}, "similar", 0.03),
        Claim("Collapsed QK (one head) costs little against separate W_Q, W_K.", {"model.mixer.kind": "collapsed_qk", "model.channel_mixer": "mlp"},
              {"model.mixer.kind": "attention", "model.channel_mixer": "mlp"}, "similar", 0.03),
        Claim("Removing the MLP hurts.", {"model.mixer.kind": "attention", "model.channel_mixer": "none"},
              {"model.mixer.kind": "attention", "model.channel_mixer": "mlp"}, "worse"),
    ]),
    Study("probes", "studies/probes.yaml", "Arora et al. 2023 (MQAR); Dong et al. 2025", [
        Claim("Associative recall needs token mixing: mlp is far below attention.", {"model.mixer.kind": "mlp"},
              {"model.mixer.kind": "attention"}, "worse"),
        Claim("Frozen random Q/K maps fail retrieval (Dong et al. 2025).", {"model.mixer.kind": "frozen_qk"},
              {"model.mixer.kind": "attention"}, "worse"),
    ], metric=None, note="Read these with the configurations table: when standard attention itself stays near chance "
                         "accuracy, this budget (800 steps of a 2-layer, width-64 model) does not train MQAR at all, "
                         "and no principle can be told apart from another here, however many seeds; the spec's "
                         "header gives the GPU-sized recipe (Zoology trains far longer)."),
    Study("heads", "studies/heads.yaml", "Ainslie et al. 2023 (GQA); Ye et al. 2024 (DiffAttn); Lim et al. 2025 (GDA)", [
        Claim("Grouped key/value heads (GQA, 2 groups) stay close to multi-head attention.",
              {"model.mixer": {"kind": "attention", "kv_heads": 2}}, {"model.mixer": {"kind": "attention"}}, "similar"),
        Claim("Differential attention models language better than standard attention (Ye et al. 2024).",
              {"model.mixer": {"kind": "differential"}}, {"model.mixer": {"kind": "attention"}}, "better"),
        Claim("Grouped differential attention (3 signal : 1 noise heads) is at least as good as the 1:1 split (Lim et al. 2025).",
              {"model.mixer": {"kind": "differential", "signal_ratio": 3}}, {"model.mixer": {"kind": "differential"}}, "better"),
    ]),
]


# -- reading the store -------------------------------------------------------------------------------------------
def study_data(name: str, storage: str, metric: str | None) -> tuple[dict[str, Any], str]:
    """The report of ``name`` as data and as markdown (the tool's own report, not a copy of its logic)."""
    from deconstruct.report import build_report, render, to_data

    report = build_report([name], storage, metric=metric)
    return to_data(report)["studies"][0], render(report, "markdown")


def find(configs: list[dict[str, Any]], values: dict[str, Any]) -> dict[str, Any] | None:
    """The configuration one of whose search points has ``values``."""
    for c in configs:
        for p in c.get("search_points") or []:
            if all(p.get(k) == v or str(p.get(k)) == str(v) for k, v in values.items()):
                return c
    return None


def paired(a: dict[str, Any], b: dict[str, Any]) -> list[float]:
    """a − b per seed, over the seeds both configurations completed."""
    va, vb = dict(zip(a["seeds"], a["values"], strict=False)), dict(zip(b["seeds"], b["values"], strict=False))
    return [va[s] - vb[s] for s in sorted(set(va) & set(vb))]


def verdict(claim: Claim, diffs: list[float], ref_mean: float, direction: str) -> tuple[str, str]:
    """(verdict, the interval that decides, in words)."""
    from deconstruct.report import mean_ci

    if len(diffs) < 2:
        return "cannot tell at this size", f"{len(diffs)} paired seed(s): no interval"
    iv = mean_ci(diffs)
    lo, hi, est = iv.low, iv.high, iv.estimate
    sign = 1.0 if direction == "minimize" else -1.0  # "worse" = higher loss, or lower accuracy
    text = f"Δ = {est:+.4f}, 95 % CI [{lo:+.4f}, {hi:+.4f}] over {len(diffs)} paired seeds"
    if claim.expect in ("worse", "better"):
        want = 1.0 if claim.expect == "worse" else -1.0
        side_lo, side_hi = sorted((sign * want * lo, sign * want * hi))
        if side_lo > 0:
            return "agrees", text
        if side_hi < 0:
            return "does not agree", text
        sd = _sd(diffs)
        need = math.ceil((2.0 * sd / abs(est)) ** 2) + 1 if est else None
        more = f"; at this spread about {need} seeds would separate it" if need else ""
        return "cannot tell at this size", text + more
    bound = claim.margin * abs(ref_mean)
    if -bound <= lo and hi <= bound:
        return "agrees", text + f" (inside ±{bound:.4f}, {claim.margin:.0%} of the reference)"
    if lo > bound or hi < -bound:
        return "does not agree", text + f" (outside ±{bound:.4f})"
    return "cannot tell at this size", text + f" (straddles ±{bound:.4f})"


def _sd(xs: list[float]) -> float:
    m = sum(xs) / len(xs)
    return math.sqrt(sum((x - m) ** 2 for x in xs) / max(1, len(xs) - 1))


# -- the page ------------------------------------------------------------------------------------------------
def machine() -> str:
    import torch

    return (f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPU cores, Python {platform.python_version()}, "
            f"torch {torch.__version__}")


def section(study: Study, storage: str) -> str:
    data, markdown = study_data(study.name, storage, study.metric)
    configs = data["configurations"]
    compute = sum(c.get("wall_seconds_total") or 0.0 for c in configs)
    runs = data["runs"]
    code = sorted({c["deconstruct"] for conf in configs for c in conf.get("code") or []})
    lines = [f"## {study.name}", "", f"Paper: {study.paper}. Spec: [`{study.spec}`](../{study.spec}).", "",
             "```bash", f"deconstruct study run {study.spec} --storage {storage}",
             f"deconstruct report {study.name} --storage {storage} --format markdown", "```", "",
             f"Runs: {runs.get('completed', 0)} completed of {runs.get('total', 0)}; compute: "
             f"{compute / 60:.1f} min of run wall time (from the store); deconstruct "
             f"{'; '.join(code) or data['versions'].get('deconstruct')}, torch {data['versions'].get('torch')}. "
             f"HTML report: [results/{study.name}.html](results/{study.name}.html).", "",
             "### Findings", ""]
    if study.note:
        lines += [study.note, ""]
    for claim in study.claims:
        a, b = find(configs, claim.a), find(configs, claim.b)
        if a is None or b is None:
            lines.append(f"- **not run** — {claim.text} (the store has no runs of one side)")
            continue
        v, why = verdict(claim, paired(a, b), b["mean"], data["direction"])
        lines.append(f"- **{v}** — {claim.text} {why}; rows #{a['rank']} (`{a['configuration']}`) vs "
                     f"#{b['rank']} (`{b['configuration']}`) of the configurations table below.")
    body = re.sub(r"^# .*\n", "", markdown, count=1).replace("\n## ", "\n### ")
    return "\n".join(lines) + "\n\n### The report\n" + body + "\n"


def quickstart_block(storage: str) -> str:
    data, _ = study_data("quickstart", storage, None)
    rows = ["| configuration | val loss (nats/byte), mean ± 95 % CI | n | parameters |", "|---|---|---|---|"]
    for c in data["configurations"]:
        half = (c["ci_high"] - c["ci_low"]) / 2 if c.get("ci_high") is not None else None
        label = c["configuration"].replace("|", "\\|")  # a markdown cell cannot hold a bare |
        rows.append(f"| {label} | {c['mean']:.3f}" + (f" ± {half:.3f}" if half is not None else "")
                    + f" | {c['n']} | {c['params']:,} |")
    return "\n".join(rows)


def write_readme(storage: str) -> None:
    readme = ROOT / "README.md"
    text = readme.read_text()
    start, end = "<!-- results:quickstart -->", "<!-- /results:quickstart -->"
    if start in text and end in text:
        head, rest = text.split(start, 1)
        _, tail = rest.split(end, 1)
        readme.write_text(head + start + "\n" + quickstart_block(storage) + "\n" + end + tail)


def _stored(storage: str) -> list[Any]:
    from deconstruct.store import Store

    return Store(storage).studies()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--storage", default=os.environ.get("DECONSTRUCT_STORAGE", DEFAULT_STORAGE))
    ap.add_argument("--run", action="store_true", help="run (or resume) every study first")
    ap.add_argument("--only", nargs="*", help="study names (default: all)")
    ap.add_argument("--out", type=Path, default=PAGE)
    ap.add_argument("--no-readme", action="store_true", help="leave the README's quickstart table alone")
    args = ap.parse_args(argv)
    chosen = [s for s in STUDIES if not args.only or s.name in args.only]
    stored = {x.name for x in _stored(args.storage)}  # opens the store for writing: upgrades its schema
    exe = [sys.executable, "-m", "deconstruct"]
    if args.run:
        for s in chosen:
            subprocess.run([*exe, "study", "run", str(ROOT / s.spec), "--storage", args.storage], check=False)
    html_dir = args.out.parent / "results"
    html_dir.mkdir(parents=True, exist_ok=True)
    parts = ["# Results: does deconstruct find what the papers found?", "",
             "Generated by `python docs/make_results.py` from the store (never typed by hand). Machine: "
             f"{machine()}.", ""]
    for s in chosen:
        if s.name not in stored:  # not run yet: say so on the page
            parts.append(f"## {s.name}\n\nNot run yet. Run `python docs/make_results.py --run --only {s.name}`.\n")
            continue
        parts.append(section(s, args.storage))
        subprocess.run([*exe, "report", s.name, "--storage", args.storage, "--format", "html",
                        "--out", str(html_dir / f"{s.name}.html")], check=False, capture_output=True)
    args.out.write_text("\n".join(parts))
    if not args.no_readme and any(s.name == "quickstart" for s in chosen) and "quickstart" in stored:
        write_readme(args.storage)
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
