"""The decoder-only Transformer that every spec builds (nanoGPT-sized and -styled).

Pre-norm blocks: x = x + mixer(norm1(x)); x = x + channel(norm2(x)) — or, with ``model.parallel`` (GPT-J,
Wang & Komatsuzaki 2021; PaLM, Chowdhery et al. 2022), x = x + mixer(norm1(x)) + channel(norm1(x)). The
token mixer of each block is built from the registry entry its layer plan resolved — standard attention
included — so no variant is special-cased here. A mixer may
ask for its queries/keys from another stream by setting ``qk_source``:

- ``hidden``      its own input (standard);
- ``static``      the token embeddings E of the current input (no context);
- ``random``      a frozen random sequence ε passed through the model's own blocks up to this layer;
- ``fixed_text``  the embeddings of one fixed real token sequence, passed through the blocks likewise.

There is one random stream per model: ε ~ N(0, σ²) with σ the largest ``random_std`` among its layers, drawn
from a fixed generator (seed 1234) so the attention map is the same for every input and every run.

A task with non-token inputs (e.g. ``icl_regression``) supplies ``io = (read_in, read_out)`` through its
options (``TaskOptions.io``): ``read_in`` then takes the place of the token embedding ``wte`` (positions are
still added) and ``read_out`` that of the vocabulary ``head`` (never tied). The modules simply occupy those
two slots, so the token path does no extra work.
"""

from __future__ import annotations

import math
from typing import cast

import torch
from torch import nn

from deconstruct._errors import RunError
from deconstruct.model._layers import make_norm
from deconstruct.spec import LayerPlan, MixerContext, ResolvedSpec
from deconstruct.tasks import TaskOptions

FIXED_STREAMS = ("random", "fixed_text")


class Block(nn.Module):
    """One pre-norm block: token mixer then channel mixer, each with a residual connection."""

    def __init__(self, ctx: MixerContext, plan: LayerPlan, norm: str, parallel: bool = False):
        super().__init__()
        self.plan, self.parallel = plan, parallel
        self.norm1 = make_norm(norm, ctx.d_model, ctx.bias)
        self.mixer = plan.mixer_entry.make(ctx, plan.options)
        assert plan.channel_entry is not None  # set by resolve()
        channel = plan.channel_entry.make(ctx, plan.channel_options)
        self.channel = channel
        self.norm2 = make_norm(norm, ctx.d_model, ctx.bias) if channel is not None and not parallel else None
        self.qk_source: str = getattr(self.mixer, "qk_source", "hidden")
        # static queries/keys: the token embeddings with the model's learned positions (unless turned off)
        self.static_positions: bool = bool(getattr(self.mixer, "static_positions", True))

    def forward(self, x: torch.Tensor, qk: torch.Tensor | None = None, mix: bool = True) -> torch.Tensor:
        # x: (B, T, d); qk: (B or 1, T, d) alternative source of queries/keys, or None.
        # mix=False leaves the token mixer's residual branch out (the "skip mixer" evaluation).
        if self.parallel:  # both branches read the same normalised input; their outputs are summed
            h = self.norm1(x)
            y = x + self.mixer(h, None if qk is None else self.norm1(qk)) if mix else x
            return y if self.channel is None else y + self.channel(h)
        if mix:
            x = x + self.mixer(self.norm1(x), None if qk is None else self.norm1(qk))
        if self.channel is not None:
            assert self.norm2 is not None  # built together with the channel mixer
            x = x + self.channel(self.norm2(x))
        return x


class Transformer(nn.Module):
    """Token embedding → L blocks → final norm → vocabulary logits."""

    fixed_random: torch.Tensor  # buffers registered in __init__ when a layer uses that stream
    fixed_tokens: torch.Tensor

    def __init__(
        self,
        resolved: ResolvedSpec,
        vocab_size: int,
        fixed_tokens: torch.Tensor | None = None,
        io: tuple[nn.Module, nn.Module] | None = None,
    ):
        super().__init__()
        m = resolved.spec.model
        ctx0 = resolved.context(1)
        self.d_model, self.vocab_size, self.max_seq_len = m.d_model, vocab_size, ctx0.max_seq_len
        self.causal = ctx0.causal
        # token embeddings E — or the task's read-in of real vectors (B, T, d_in) → (B, T, d)
        self.wte: nn.Module = nn.Embedding(vocab_size, m.d_model) if io is None else io[0]
        self.wpe = nn.Embedding(self.max_seq_len, m.d_model) if m.positions == "learned" else None
        self.drop = nn.Dropout(m.dropout)
        self.blocks = nn.ModuleList(Block(resolved.context(p), p, m.norm, m.parallel) for p in resolved.layers)
        self.norm_f = make_norm(m.norm, m.d_model, m.bias)
        self.head: nn.Module = nn.Linear(m.d_model, vocab_size, bias=False) if io is None else io[1]
        if m.tie_embeddings and io is None:
            self.head.weight = self.wte.weight

        # Fixed query/key streams (random_qk, fixed_text_qk): frozen inputs, recomputed every forward.
        sources = {b.qk_source for b in self.block_list()}
        self.streams = tuple(s for s in FIXED_STREAMS if s in sources)
        if "random" in sources:
            g = torch.Generator().manual_seed(1234)
            std = max((getattr(b.mixer, "random_std", 1.0) for b in self.block_list() if b.qk_source == "random"), default=1.0)
            self.register_buffer("fixed_random", torch.randn(self.max_seq_len, m.d_model, generator=g) * std)
        if "fixed_text" in sources:
            # without a text (e.g. a model built only to count parameters) the buffer is a placeholder and
            # the forward pass refuses to run: zeros would silently be a "fixed text" of one repeated token
            self.has_fixed_text = fixed_tokens is not None
            tokens = fixed_tokens if fixed_tokens is not None else torch.zeros(self.max_seq_len, dtype=torch.long)
            self.register_buffer("fixed_tokens", tokens[: self.max_seq_len].long().clone())
        self.detach_streams = any(getattr(b.mixer, "detach_stream", False) for b in self.block_list())

        self._init_weights(m.init_std, m.layers)

    def block_list(self) -> list[Block]:
        """The blocks, typed as such (iterating an nn.ModuleList yields plain nn.Modules to a type checker)."""
        return [cast(Block, b) for b in self.blocks]

    # -- initialisation -------------------------------------------------------------------------------------
    def _init_weights(self, std: float, n_layers: int) -> None:
        for name, mod in self.named_modules():
            if isinstance(mod, nn.Linear):
                # residual output projections are scaled down with depth (GPT-2)
                s = std / math.sqrt(2 * n_layers) if name.endswith(("out_proj", "down")) else std
                nn.init.normal_(mod.weight, 0.0, s)
                if mod.bias is not None:
                    nn.init.zeros_(mod.bias)
            elif isinstance(mod, nn.Embedding):
                nn.init.normal_(mod.weight, 0.0, std)
        for block in self.block_list():  # a mixer with special parameters (λ, frozen maps) re-initialises them
            for mod in (block.mixer, block.channel):
                if mod is not None and hasattr(mod, "init_weights"):
                    mod.init_weights()

    # -- forward ----------------------------------------------------------------------------------------------
    def embed(self, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """idx (B, T) → (E, x): token embeddings and the residual stream entering block 1.
        (With a task read-in, idx is (B, T, d_in) real vectors.)"""
        E = self.wte(idx)  # (B, T, d)
        x = E if self.wpe is None else E + self.wpe.weight[: idx.shape[1]]
        return E, self.drop(x)

    def _stream_inputs(self, T: int) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        out = {}
        for s in self.streams:
            if s == "random":
                E = self.fixed_random[:T].unsqueeze(0)  # (1, T, d)
                x = E if self.wpe is None else E + self.wpe.weight[:T]
            else:
                if not self.has_fixed_text:
                    raise ValueError("qk_source: fixed_text needs the fixed token sequence (build_model(..., "
                                     "fixed_tokens=task.fixed_tokens(T))); none was given")
                E, x = self.embed(self.fixed_tokens[:T].unsqueeze(0))
            out[s] = (E, x)
        return out

    def forward(
        self, idx: torch.Tensor, skip: frozenset[int] | set[int] = frozenset(),
        skip_mixer: frozenset[int] | set[int] = frozenset(),
    ) -> torch.Tensor:
        """idx (B, T) → logits (B, T, V). ``skip``: 0-based layers whose whole block is left out (the paper's
        "skip"); ``skip_mixer``: layers whose token mixer alone is left out (the channel mixer stays)."""
        E, x = self.embed(idx)
        streams = self._stream_inputs(idx.shape[1]) if self.streams else {}
        for i, block in enumerate(self.block_list()):
            if i in skip:
                continue
            mix = i not in skip_mixer
            src = block.qk_source
            qk = None if src == "hidden" else self.static_source(block, E) if src == "static" else streams[src][1]
            if streams:  # advance each fixed stream through this block (standard mixing on itself)
                streams = {s: (e, self._advance(block, e, h, mix)) for s, (e, h) in streams.items()}
            x = block(x, qk, mix)
        return self.head(self.norm_f(x))

    def static_source(self, block: Block, E: torch.Tensor) -> torch.Tensor:
        """Queries/keys of ``qk_source: static``: the token embeddings E (B, T, d), plus the learned
        positions when the model has them and the mixer keeps ``static_positions`` (RoPE, if used, is
        applied inside the mixer as for any query/key)."""
        if self.wpe is None or not block.static_positions:
            return E
        return E + self.wpe.weight[: E.shape[1]]

    def _advance(self, block: Block, E: torch.Tensor, h: torch.Tensor, mix: bool = True) -> torch.Tensor:
        src = block.qk_source
        h = block(h, self.static_source(block, E) if src == "static" else None, mix)
        return h.detach() if self.detach_streams else h

    # -- accounting -------------------------------------------------------------------------------------------
    def aux_loss(self) -> torch.Tensor | None:
        """Sum of auxiliary losses (e.g. MoH load balance) that mixers stored during the last forward."""
        losses = [b.mixer.aux_loss for b in self.block_list() if getattr(b.mixer, "aux_loss", None) is not None]
        return torch.stack(losses).sum() if losses else None

    def backends(self, device: torch.device | str, strict: bool = True) -> list[str]:
        """What computes each block's token mixing on ``device`` (one entry per layer): the mixer's
        ``backend_for(device)``, or ``pytorch`` for a mixer without one (plain PyTorch operations).
        A backend that cannot run there raises :class:`RunError`, or shows as ``unavailable`` unless strict."""
        device = torch.device(device)
        out = []
        for b in self.block_list():
            fn = getattr(b.mixer, "backend_for", None)
            try:
                out.append(str(fn(device)) if fn is not None else "pytorch")
            except RunError:
                if strict:
                    raise
                out.append("unavailable")
        return out

    def num_params(self, trainable_only: bool = False) -> int:
        """Unique parameters (a tied head counts once)."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad or not trainable_only)

    def flops_per_token(self, seq_len: int | None = None) -> int:
        """Analytic forward FLOPs per token: 2·(multiply-accumulates of every matmul) + mixing terms.

        Each mixer may define ``flops_per_token(seq_len)``; otherwise 2 × its parameters is used (a
        per-token linear map). Embedding lookups are free; the output head costs 2·d·V. A task's read-in and
        read-out count as per-token linear maps (2 × their parameters).
        """
        T = seq_len or self.max_seq_len
        if isinstance(self.wte, nn.Embedding):
            total = 2 * self.d_model * self.vocab_size
        else:
            total = 2 * sum(p.numel() for mod in (self.wte, self.head) for p in mod.parameters())
        for b in self.block_list():
            for mod in (b.mixer, b.channel):
                if mod is None:
                    continue
                fn = getattr(mod, "flops_per_token", None)
                total += int(fn(T)) if fn else 2 * sum(p.numel() for p in mod.parameters())
        return int(total)


def build_model(resolved: ResolvedSpec, vocab_size: int | None = None, fixed_tokens: torch.Tensor | None = None) -> Transformer:
    """Build the Transformer a resolved spec describes (on the CPU, in fp32). The task options' ``io``
    (if any) supplies the read-in/read-out for non-token inputs; built here, so ``spec check`` counts them."""
    options = cast(TaskOptions, resolved.task_options)
    io_fn = getattr(options, "io", None)
    io = io_fn(resolved.spec.model.d_model) if io_fn is not None else None
    if io is not None:
        return Transformer(resolved, 0, fixed_tokens=fixed_tokens, io=io)
    if vocab_size is None:
        vocab_size = int(options.vocab_size)
    return Transformer(resolved, vocab_size, fixed_tokens=fixed_tokens)
