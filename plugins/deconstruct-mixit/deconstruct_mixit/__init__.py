"""MixiT, the Mixing Transformer's token mixer, as a deconstruct plugin (Dong, Noci, Khodak & Li 2025,
"Is Random Attention Sufficient for Sequence Modeling? Disentangling Trainable Components in the
Transformer", arXiv 2506.01115).

MixiT keeps the attention block but removes everything input-dependent from the attention map: no queries,
no keys, no softmax. Each head h mixes tokens with a fixed random lower-triangular map drawn at
initialisation and never trained; only the value and output projections learn::

    N_h       ~ N(0, σ²)                       (T_max × T_max, drawn once, kept as a buffer)
    drift_h,i = mean_{j ≤ i} N_h,ij            (row mean over the causal entries)
    A_h       = tril(I + c·(N_h − drift_h))
    out       = W_O · concat_h(A_h[:T, :T] · x W_V,h)

Every row of A_h sums to exactly 1: row i is 1 + c·(Σ_{j≤i} N_ij − (i+1)·drift_i) = 1. Row i only uses
columns j ≤ i, so cropping to a shorter sequence (T ≤ T_max) keeps this, and the map is causal. The defaults
c = 1 and σ = 1/√(T_max·d_head) are the initialisation of the authors' code (the identity plus a small
centred perturbation, which keeps the signal stable with depth). The paper finds that MixiT solves
memorisation and arithmetic tasks but fails retrieval and induction, which need input-dependent attention.

This module holds only the hooks and the typed options, and imports no torch: ``deconstruct`` imports every
plugin at start-up. The ``nn.Module`` lives in :mod:`deconstruct_mixit._mixit`.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from deconstruct import hookimpl

__version__ = "0.1.0"

PAPER = "Dong et al. 2025, Is Random Attention Sufficient for Sequence Modeling?, arXiv 2506.01115"


class MixiTOptions(BaseModel):
    """Options of the ``mixit`` mixer (Dong et al. 2025, arXiv 2506.01115, §MixiT)."""

    model_config = ConfigDict(extra="forbid")  # a misspelt option is an error, with a suggestion

    c: float = Field(1.0, ge=0, description="scale of the random part: A = tril(I + c·(N − drift)); 0 gives A = I")
    sigma: float | None = Field(None, gt=0, description="std of N; default 1/sqrt(T_max·d_head) (the authors' code)")


@hookimpl
def register_mixers(register: Any) -> None:
    register(
        "mixit",
        build="deconstruct_mixit._mixit:MixiT",  # MixiT(ctx, options), imported (with torch) on first build
        options=MixiTOptions,
        summary="fixed random map per head, tril(I + c(N − drift)); no Q/K, V and O trained",
        paper=PAPER,
        patterns=("causal_self",),  # the map is lower-triangular: causal self-mixing only
    )


@hookimpl
def register_commands(app: Any) -> None:
    """``deconstruct mixit show-map``: print one head's map, to see what the mixer does."""
    import typer

    mixit_app = typer.Typer(help="MixiT: fixed random attention maps (plugin deconstruct-mixit).", no_args_is_help=True)

    @mixit_app.command("show-map")
    def show_map(
        seq_len: int = typer.Option(8, "--seq-len", min=1, max=64, help="T_max: size of the map."),
        d_head: int = typer.Option(16, "--d-head", min=1, help="head width (sets the default sigma)."),
        c: float = typer.Option(1.0, "--c", min=0.0, help="scale of the random part."),
        sigma: float | None = typer.Option(None, "--sigma", help="std of N (default 1/sqrt(seq_len·d_head))."),
        seed: int = typer.Option(0, "--seed"),
        json_: bool = typer.Option(False, "--json", help="Print the map as JSON."),
    ) -> None:
        """Print one head's map A = tril(I + c·(N − drift)); every row sums to 1.

        \b
        Examples:
          deconstruct mixit show-map
          deconstruct mixit show-map --seq-len 6 --c 4 --json
        """
        import torch

        from deconstruct_mixit._mixit import default_sigma, mixing_map

        torch.manual_seed(seed)
        A = mixing_map(1, seq_len, c, sigma or default_sigma(seq_len, d_head))[0]  # (T, T)
        if json_:
            import json

            typer.echo(json.dumps({"map": A.tolist(), "row_sums": A.sum(-1).tolist()}))
            return
        for row in A.tolist():
            typer.echo(" ".join(f"{v:7.3f}" for v in row) + f"   Σ={sum(row):.3f}")

    app.add_typer(mixit_app, name="mixit")
