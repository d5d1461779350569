"""The conformance checks of the mixer contract beyond shapes and causality (plugins/README.md, "The mixer
contract"): positions under RoPE, ``attention_weights`` rows, the FLOPs convention. Collected into
:mod:`deconstruct.testing`, which documents them."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from deconstruct.testing import MixerCase


def check_positions(case: MixerCase) -> None:
    """Under ``positions: rope`` a token-mixing mixer must see token order: reordering the tokens before the
    last position changes the last output (set-like mixing without Rotary would silently get no positions)."""
    import torch

    if case.ignores_positions:
        return
    module = case.build_with(positions="rope")
    module.eval()
    x, qk = case.inputs(module)
    T = x.shape[1]
    t = T - 1
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():
        y = module(x, qk)[:, t]
        other = x.clone()
        other[:, :t] = torch.randn(other[:, :t].shape, generator=g).to(x.device)
        if (module(other, qk)[:, t] - y).abs().max().item() <= case.atol:
            return  # the output at t does not depend on other tokens: no token mixing, nothing to order
        perm = torch.arange(t - 1, -1, -1, device=x.device)  # the earlier tokens, reversed
        shuffled = x.clone()
        shuffled[:, :t] = x[:, perm]
        qk2 = qk
        if qk is not None and getattr(module, "qk_source", "hidden") == "static":
            qk2 = qk.clone()
            qk2[:, :t] = qk[:, perm]
        diff = (module(shuffled, qk2)[:, t] - y).abs().max().item()
    assert diff > case.atol, (
        f"mixer {case.name!r} ignores token order under positions: rope (reordering the tokens before position "
        f"{t} leaves its output there unchanged); apply deconstruct.model.Rotary to queries and keys when "
        f"ctx.positions == 'rope' (see plugins/README.md, 'Positions'), or set ignores_positions with the reason"
    )


def check_weights(case: MixerCase) -> None:
    """``attention_weights(x, qk)``, when provided: (B, H, T, T), finite, causal, rows are distributions."""
    import torch

    module, ctx = case.build()
    if not hasattr(module, "attention_weights"):
        return
    module.eval()
    x, qk = case.inputs(module)
    B, T = x.shape[0], x.shape[1]
    with torch.no_grad():
        A = module.attention_weights(x, qk)
    assert A.dim() == 4 and A.shape[0] == B and tuple(A.shape[2:]) == (T, T), (
        f"mixer {case.name!r}: attention_weights returned shape {tuple(A.shape)}; it must be (B, H, T, T)"
    )
    A = A.float()
    assert torch.isfinite(A).all(), f"mixer {case.name!r}: attention_weights has non-finite entries"
    if ctx.causal:
        above = A.triu(1).abs().max().item()
        assert above <= case.atol, f"mixer {case.name!r}: attention_weights puts weight {above:.3g} on future tokens"
    if case.signed_weights:
        return
    assert A.min().item() >= -case.atol, f"mixer {case.name!r}: attention_weights has negative entries ({A.min().item():.3g})"
    rows = (A.sum(-1) - 1).abs().max().item()
    assert rows <= 1e-3, (
        f"mixer {case.name!r}: attention_weights rows sum to 1 ± {rows:.3g}, not 1; diagnostics (entropy, sink) "
        f"read them as distributions (set signed_weights if they are not meant to be)"
    )


def check_flops(case: MixerCase) -> None:
    """``flops_per_token(T)``, when provided: a positive int within a sanity bound, not decreasing in T."""
    module, ctx = case.build()
    fn = getattr(module, "flops_per_token", None)
    if fn is None:
        return
    T = case.seq_len
    params = sum(p.numel() for p in module.parameters())
    flops, longer = fn(T), fn(2 * T)
    assert isinstance(flops, int) and flops > 0, f"mixer {case.name!r}: flops_per_token({T}) = {flops!r}; it must be a positive int"
    assert flops >= params, (
        f"mixer {case.name!r}: flops_per_token({T}) = {flops} is below its {params} parameters; count "
        f"2 FLOPs per multiply-accumulate of every projection, per token"
    )
    bound = 2 * params + 16 * T * ctx.d_model
    assert flops <= bound, (
        f"mixer {case.name!r}: flops_per_token({T}) = {flops} exceeds 2·params + 16·T·d = {bound}; count per "
        f"token, with (T+1)/2 keys per causal query"
    )
    assert longer >= flops, f"mixer {case.name!r}: flops_per_token(2T) = {longer} is below flops_per_token(T) = {flops}"
