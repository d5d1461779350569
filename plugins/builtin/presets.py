"""Named variants: presets over the principle axes of the ``attention`` mixer (see ``attention.py``).

``deconstruct variants list`` shows what each resolves to; ``deconstruct spec check`` shows it per layer.
The options a preset does not fix stay free: ``{kind: approximate, normalization: separate}``.

From Xue, Moosavi & Aletras 2025, "Deconstructing Attention", arXiv 2510.11602 (``mlp``, the no-mixing
variant, is its own mixer in ``mlp_mixer.py``):

| preset          | paper name      | relaxes                | fixes                      |
|-----------------|-----------------|------------------------|----------------------------|
| approximate     | Approximate     | mathematical form      | form: approximate          |
| non_approximate | Non-approximate | mathematical form      | form: non_approximate      |
| static_qk       | StaticEmbQK     | current-QK coupling    | qk_source: static          |
| random_qk       | RndEmbQK        | sequence dependency    | qk_source: random          |
| fixed_text_qk   | FixedSeqQK      | sequence dependency    | qk_source: fixed_text      |

From Dong et al. 2025, "Is Random Attention Sufficient for Sequence Modeling?": ``frozen_qk`` (qk: frozen).
From Bermeitinger et al. 2024, "Reducing the Transformer Architecture to a Minimum", arXiv 2410.13732:
``symmetric_qk``, ``collapsed_qk``, ``collapsed_vo``, ``identity_vo`` (and channel mixer ``none``).
"""

from __future__ import annotations

from typing import Any

from deconstruct.hookspecs import hookimpl

XUE = "Xue et al. 2025, Deconstructing Attention, arXiv 2510.11602"
BERMEITINGER = "Bermeitinger et al. 2024, Reducing the Transformer Architecture to a Minimum, arXiv 2410.13732"
DONG = "Dong et al. 2025, Is Random Attention Sufficient for Sequence Modeling?"

#: name -> (options fixed on the attention mixer, summary, paper)
PRESETS: dict[str, tuple[dict[str, Any], str, str]] = {
    "approximate": (
        {"form": "approximate"},
        "2nd-order Taylor linear attention φ(x)=[1, x/d^¼, x⊗x/(√2√d)], causal, linear time; deviates: one "
        "normaliser for the three orders (the paper's per-order one, normalization: separate, diverges)",
        XUE + "; Arora et al. 2024 (Based), arXiv 2402.18668",
    ),
    "non_approximate": (
        {"form": "non_approximate"},
        "no pairwise similarity: one score per token, causal prefix softmax, linear time",
        XUE,
    ),
    "static_qk": ({"qk_source": "static"}, "Q, K from the static token embeddings of the input (StaticEmbQK)", XUE),
    "random_qk": (
        {"qk_source": "random"},
        "Q, K from a frozen random sequence run through the model's blocks: one map for every input (RndEmbQK)",
        XUE,
    ),
    "fixed_text_qk": (
        {"qk_source": "fixed_text"},
        "Q, K from one fixed training text run through the model's blocks (FixedSeqQK)",
        XUE,
    ),
    "frozen_qk": ({"qk": "frozen"}, "W_Q, W_K random at init and never trained", DONG),
    "symmetric_qk": ({"qk": "symmetric"}, "W_K = W_Q: symmetric scores, half the QK parameters", BERMEITINGER),
    "collapsed_qk": ({"qk": "collapsed"}, "one W_QK (d×d) per head instead of W_Q, W_K", BERMEITINGER),
    "collapsed_vo": ({"vo": "collapsed"}, "one W_VO (d×d) per head instead of W_V, W_O", BERMEITINGER),
    "identity_vo": ({"vo": "identity"}, "W_V = W_O = I: each layer outputs convex combinations of its inputs", BERMEITINGER),
}


@hookimpl
def register_mixers(register: Any) -> None:
    register("standard", preset={"kind": "attention"}, summary="alias of attention with its defaults")
    for name, (fixed, summary, paper) in PRESETS.items():
        register(name, preset={"kind": "attention", **fixed}, summary=summary, paper=paper)
