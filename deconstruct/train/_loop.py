"""Training: one configuration, one seed. Plain PyTorch, as lean as a hand-written loop.

AdamW (no decay on vectors), linear warm-up then cosine decay, global gradient clipping, fixed seeds,
evaluation every ``eval_every`` steps on a fixed set of validation batches (the same for every run, so
runs can be compared pairwise), and once at the end on the task's named evaluation sets (``eval_sets``,
fixed windows too). A non-finite loss raises :class:`RunError`.
"""

from __future__ import annotations

import math
import time
import warnings
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Protocol, cast

import torch
import torch.nn.functional as F

from deconstruct._errors import RunError
from deconstruct.metrics import find, measures
from deconstruct.model import build_model, model_cost
from deconstruct.spec import ResolvedSpec
from deconstruct.tasks import TaskOptions
from deconstruct.train._checkpoint import Checkpointer
from deconstruct.train._diagnostics import collect_diagnostics
from deconstruct.train._distributed import current as distributed
from deconstruct.train._preempt import Preempted, pending, preemptible

DIAGNOSTIC_SEQUENCES = 4  # attention indicators are measured on this many validation sequences
EVAL_SEED = 1234  # validation windows are drawn from this seed: identical across runs and configurations


class Callback(Protocol):
    """Hooks into a run; every method is optional. Raising stops the run (pruning does exactly that).

    ``on_start`` receives the run's shape (steps, params, device, tokens_per_step) and the live objects
    (``model``, trained in place; ``val_batches``; ``eval_sets``; ``autocast``) for callers that inspect the trained
    model; a run resumed from a checkpoint also passes ``resumed_from`` (the step) and ``history`` (the curve so far).
    """

    def on_start(self, info: dict[str, Any]) -> None: ...
    def on_step(self, step: int, loss: float, tokens_per_second: float) -> None: ...
    def on_eval(self, step: int, metrics: dict[str, float]) -> None: ...


@dataclass
class TrainResult:
    val_loss: float
    params: int
    flops_per_token: int
    tokens: int
    tokens_per_second: float
    seconds: float
    device: str
    steps: int
    seed: int
    config_hash: str
    peak_memory_bytes: int = 0
    metrics: dict[str, Any] = field(default_factory=dict)  # e.g. bits_per_byte, skip_block_val_loss, attention_backend
    data: dict[str, Any] | None = None  # what the task read (its content hash, tokenizer): task.data_identity
    history: list[tuple[int, str, float]] = field(default_factory=list)  # (step, name, value)
    diagnostics: list[tuple[int, int, str, float]] = field(default_factory=list)  # (layer, head, name, value)

    def values(self) -> dict[str, Any]:
        """Every per-run metric of this run by its name in :mod:`deconstruct.metrics`: the measured fields
        (``seconds`` as ``train_seconds``), then ``metrics``."""
        own = {m.name: getattr(self, f.name) for f in fields(self) if (m := find(f.name)) is not None}
        return {**own, **self.metrics}

    def to_dict(self, with_history: bool = False) -> dict[str, Any]:
        d = asdict(self)
        d.update(d.pop("metrics"))
        if not with_history:
            d.pop("history")
            d.pop("diagnostics")
        return d


def pick_device(requested: str = "auto") -> torch.device:
    """auto: cuda, then mps, then cpu."""
    if requested != "auto":
        return torch.device(requested)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def autocast_for(device: torch.device, precision: str):
    """bf16 autocast on CUDA (and wherever asked for explicitly); fp32 on the CPU by default."""
    use_bf16 = precision == "bf16" or (
        precision == "auto" and device.type == "cuda" and torch.cuda.is_bf16_supported()
    )
    return torch.autocast(device.type, dtype=torch.bfloat16) if use_bf16 else nullcontext()


def lr_at(step: int, total: int, lr: float, warmup: int, min_ratio: float) -> float:
    """Linear warm-up for ``warmup`` steps, then cosine from ``lr`` to ``lr·min_ratio`` at ``total``."""
    if step < warmup:
        return lr * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return lr * (min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress))))


def make_optimizer(model: torch.nn.Module, train: Any, device: torch.device) -> torch.optim.Optimizer:
    decay = [p for p in model.parameters() if p.requires_grad and p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.dim() < 2]
    groups = [{"params": decay, "weight_decay": train.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(
        groups, lr=train.lr, betas=(train.beta1, train.beta2), fused=device.type == "cuda" or None
    )


class CompiledOrEager:
    """``model`` through ``torch.compile`` (the whole model, as nanoGPT), falling back to the eager model the
    first time compilation fails; ``reason`` then says why in one line (``None`` while compiled)."""

    def __init__(self, model: torch.nn.Module):
        self.model = model
        self.compiled: Any = torch.compile(model)
        self.reason: str | None = None

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.reason is None:
            try:
                return self.compiled(x)
            except Exception as exc:  # dynamo/inductor failures (no compiler, an unsupported op, …)
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
                self.reason = f"{type(exc).__name__}: {first}"[:300]
                warnings.warn(f"train.compile: running eagerly, the model could not be compiled ({self.reason})",
                              RuntimeWarning, stacklevel=2)
        return self.model(x)


def build_task(resolved: ResolvedSpec) -> Any:
    """The task a resolved spec names, built from the registry entry resolution kept."""
    assert resolved.task_entry is not None  # set by resolve()
    return resolved.task_entry.make(resolved.task_options)


def token_loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Cross entropy over the labelled positions (targets −100 are ignored): the loss of token tasks."""
    return F.cross_entropy(logits.flatten(0, 1).float(), y.flatten(), ignore_index=-100)


@torch.no_grad()
def evaluate(
    model: torch.nn.Module,
    batches: list[tuple[torch.Tensor, torch.Tensor]],
    ctx: Any,
    skip: frozenset[int] = frozenset(),
    accuracy: bool = False,
    task: Any = None,
    skip_mixer: frozenset[int] = frozenset(),
) -> dict[str, float]:
    """Mean loss over the labelled positions of ``batches`` (and accuracy there, if asked). A ``task`` with
    ``evaluate_batch`` (non-token tasks) scores the batches itself: every entry is reported as sum / count.
    ``skip`` leaves whole blocks out, ``skip_mixer`` only their token mixers (0-based layer indices)."""
    skips = {"skip": skip, "skip_mixer": skip_mixer} if skip or skip_mixer else {}
    was_training = model.training
    model.eval()
    score = getattr(task, "evaluate_batch", None)
    if score is not None:
        sums: dict[str, list[float]] = {}
        for x, y in batches:
            with ctx:
                out = model(x, **skips)
            for name, (value, n) in score(out, x, y).items():
                acc = sums.setdefault(name, [0.0, 0])
                acc[0] += value
                acc[1] += n
        model.train(was_training)
        return {name: value / max(1, n) for name, (value, n) in sums.items()}
    total, correct, count = 0.0, 0, 0
    for x, y in batches:
        with ctx:
            logits = model(x, **skips)
        labelled = y != -100
        loss = F.cross_entropy(logits.float().flatten(0, 1), y.flatten(), ignore_index=-100, reduction="sum")
        total += loss.item()
        count += int(labelled.sum())
        if accuracy:
            correct += int((logits.argmax(-1)[labelled] == y[labelled]).sum())
    model.train(was_training)
    out = {"val_loss": total / max(1, count)}
    if accuracy:
        out["accuracy"] = correct / max(1, count)
    return out


def skip_evaluations(model: torch.nn.Module, resolved: ResolvedSpec, val_batches: list[Any], amp: Any, task: Any,
                     val_loss: float) -> dict[str, float]:
    """``skip_block_val_loss`` and ``skip_mixer_val_loss`` of a trained model (``val_loss`` when no layer is
    relaxed). The paper's skip removes the relaxed layers (whole blocks); skipping only their token mixers
    keeps the channel mixers, and asks whether the relaxed layers' *mixing* is what the model relies on."""
    relaxed = frozenset(i - 1 for i in resolved.relaxed_layers)
    none: frozenset[int] = frozenset()
    out = {}
    for name, blocks, mixers in (("skip_block_val_loss", relaxed, none), ("skip_mixer_val_loss", none, relaxed)):
        out[name] = (evaluate(model, val_batches, amp, skip=blocks, skip_mixer=mixers, task=task)["val_loss"]
                     if relaxed else val_loss)
    return out


def validation_batches(task: Any, t: Any, dev: torch.device) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The fixed validation batches (drawn from :data:`EVAL_SEED`: identical across runs and configurations)."""
    val_gen = torch.Generator().manual_seed(EVAL_SEED)
    return [tuple(z.to(dev) for z in task.get_batch("val", t.batch_size, val_gen)) for _ in range(t.eval_batches)]  # type: ignore[misc]


def total_steps(resolved: ResolvedSpec) -> int:
    """The optimizer steps of one run: ``train.steps``, or as many as ``train.tokens`` or ``train.flops``
    (training FLOPs = 3 × forward FLOPs/token × tokens, see :mod:`deconstruct.model._cost`) allow."""
    t = resolved.spec.train
    tokens_per_step = t.batch_size * int(cast(TaskOptions, resolved.task_options).seq_len)
    if t.flops is not None:
        return max(1, int(t.flops // (model_cost(resolved).train_flops_per_token * tokens_per_step)))
    if t.tokens is not None:
        return max(1, t.tokens // tokens_per_step)
    return t.steps


@preemptible
def train(
    resolved: ResolvedSpec,
    *,
    seed: int = 0,
    callback: Any = None,
    skip_relaxed: bool = False,
    task: Any = None,
    device: str | None = None,
    with_diagnostics: bool = True,
    checkpoint_dir: str | Path | None = None,
) -> TrainResult:
    """Train ``resolved`` once with ``seed``; evaluate; return a :class:`TrainResult`.

    With ``checkpoint_dir`` and ``train.checkpoint_every`` set, the training state is saved there every N steps
    and at the end, and a run that finds a checkpoint there resumes from it (see :mod:`._checkpoint`).
    Inside a torchrun world (``--nproc``), the leader announces the run to the followers and the ranks train
    it data-parallel (see :mod:`._distributed`); only the leader evaluates, saves and calls ``callback``.
    """
    t = resolved.spec.train
    ddp = distributed()
    leader = ddp is None or ddp.leader
    if ddp is not None and ddp.leader:
        ddp.announce({"spec": resolved.spec.model_dump(mode="json"), "config_hash": resolved.config_hash(), "seed": seed,
                      "device": device, "checkpoint_dir": None if checkpoint_dir is None else str(checkpoint_dir)})
    dev = pick_device(device or t.device)
    if ddp is not None and dev.type == "cuda":
        dev = torch.device("cuda", ddp.local_rank)
    torch.manual_seed(seed)
    task = task if task is not None else build_task(resolved)
    model = build_model(resolved, task.vocab_size, fixed_tokens=task.fixed_tokens(task.seq_len)).to(dev)
    model.train()
    backends = model.backends(dev)  # fails here, in one line, when a requested kernel cannot run on dev
    opt = make_optimizer(model, t, dev)
    amp = autocast_for(dev, t.precision)
    steps = total_steps(resolved)
    warmup = t.warmup_steps if t.warmup_steps is not None else max(1, steps // 10)
    B, T = t.batch_size, task.seq_len
    shard = ddp.shard(B) if ddp is not None else None  # this rank's rows of the global batch

    gen = torch.Generator().manual_seed(seed)  # the data sampler's state: part of a checkpoint
    val_batches = validation_batches(task, t, dev)
    eval_sets: dict[str, list[tuple[torch.Tensor, torch.Tensor]]] = {}
    for name in getattr(task, "eval_sets", ()):  # named evaluation sets: fixed windows, as for validation
        set_gen = torch.Generator().manual_seed(EVAL_SEED)
        eval_sets[name] = [_to(task.get_batch(name, B, set_gen), dev) for _ in range(t.eval_batches)]
    non_blocking = dev.type == "cuda"
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)

    history: list[tuple[int, str, float]] = []
    val_loss = float("nan")
    evals: dict[str, float] = {}
    train_seconds = 0.0
    step = 0
    key = resolved.config_hash()
    ckpt = Checkpointer(checkpoint_dir, t.checkpoint_every) if checkpoint_dir is not None and t.checkpoint_every else None
    saved = ckpt.load(key, seed) if ckpt is not None else None
    if saved is not None:  # resume: the next step is exactly the one the interrupted run would have taken
        model.load_state_dict(saved["model"])
        opt.load_state_dict(saved["optimizer"])
        gen.set_state(saved["sampler"])
        torch.set_rng_state(saved["rng"])
        if dev.type == "cuda" and saved.get("cuda_rng") is not None:
            torch.cuda.set_rng_state(saved["cuda_rng"], dev)
        step, history, evals = int(saved["step"]), [tuple(h) for h in saved["history"]], dict(saved["evals"])  # type: ignore[misc]
        val_loss, train_seconds = float(saved["val_loss"]), float(saved["train_seconds"])

    def checkpoint(step: int) -> dict[str, Any]:
        return {"step": step, "seed": seed, "config_hash": key, "spec": resolved.spec.model_dump(mode="json"),
                "model": model.state_dict(), "optimizer": opt.state_dict(), "schedule": {"steps": steps, "warmup": warmup},
                "sampler": gen.get_state(), "rng": torch.get_rng_state(),
                "cuda_rng": torch.cuda.get_rng_state(dev) if dev.type == "cuda" else None,
                "history": history, "evals": evals, "val_loss": val_loss, "train_seconds": train_seconds}

    net: torch.nn.Module = model
    if ddp is not None:  # averages gradients over ranks; static_graph tolerates parameters a mixer leaves unused
        net = torch.nn.parallel.DistributedDataParallel(model, device_ids=[dev.index] if dev.type == "cuda" else None,
                                                        static_graph=True)
    forward: Any = CompiledOrEager(net) if t.compile else net  # training steps only; evaluation is eager

    info = {"steps": steps, "params": model.num_params(), "device": str(dev), "tokens_per_step": B * T,
            "model": model, "val_batches": val_batches, "eval_sets": eval_sets, "autocast": amp}
    if saved is not None:
        info.update(resumed_from=step, history=list(history))
    if callback is not None and hasattr(callback, "on_start"):
        callback.on_start(info)
    on_step = getattr(callback, "on_step", None)
    on_eval = getattr(callback, "on_eval", None)

    accuracy = measures(resolved.spec.task.name, "accuracy")  # the task's runs carry it (deconstruct.metrics)
    loss_fn = getattr(task, "loss", None) or token_loss  # chosen once: the token path does no extra work per step
    start = time.perf_counter()
    first = step + 1
    for step in range(first, steps + 1):
        tick = time.perf_counter()
        lr = lr_at(step - 1, steps, t.lr, warmup, t.min_lr_ratio)
        for g in opt.param_groups:
            g["lr"] = lr
        x, y = task.get_batch("train", B, gen)
        if shard is not None:  # every rank draws the global batch (one sampler stream) and keeps its shard
            x, y = x[shard], y[shard]
        x, y = x.to(dev, non_blocking=non_blocking), y.to(dev, non_blocking=non_blocking)
        with amp:
            loss = loss_fn(forward(x), y)
            aux = model.aux_loss()
            if aux is not None:
                loss = loss + aux
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if t.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), t.grad_clip)
        opt.step()
        loss_value = loss.item() if ddp is None else ddp.mean(loss.detach().clone()).item()
        train_seconds += time.perf_counter() - tick
        if not math.isfinite(loss_value):
            raise RunError(f"loss became non-finite ({loss_value}) at step {step}; lower train.lr or check the mixer")
        if on_step is not None:
            on_step(step, loss_value, step * B * T / max(train_seconds, 1e-9))
        due = step % t.eval_every == 0 or step == steps
        if due and leader:
            evals = evaluate(model, val_batches, amp, accuracy=accuracy, task=task)
            val_loss = evals["val_loss"]
            history += [(step, "train_loss", loss_value), (step, "lr", lr)] + [(step, k, v) for k, v in evals.items()]
            if on_eval is not None:
                try:
                    on_eval(step, {**evals, "train_loss": loss_value})
                except BaseException:
                    if ddp is not None:  # pruned (or failed): the followers stop this run with the leader
                        ddp.decide(True)
                    raise
        if leader and ckpt is not None and ckpt.due(step):
            ckpt.save(checkpoint(step))
        if ddp is None and pending():  # the job is being preempted: stop at this step boundary
            raise _preempted(step, ckpt, checkpoint)
        out_of_time = t.seconds is not None and time.perf_counter() - start >= t.seconds
        if ddp is not None and (due or t.seconds is not None):
            out_of_time = ddp.decide(out_of_time)  # the leader's clock decides for every rank
        if out_of_time:
            if leader and history and history[-1][0] != step:
                evals = evaluate(model, val_batches, amp, accuracy=accuracy, task=task)
                val_loss = evals["val_loss"]
                history += [(step, "train_loss", loss_value)] + [(step, k, v) for k, v in evals.items()]
            break
    if not leader:  # a follower's part ends here: the leader evaluates and reports
        return TrainResult(val_loss=float("nan"), params=model.num_params(), flops_per_token=model.flops_per_token(T),
                           tokens=step * B * T, tokens_per_second=0.0, seconds=time.perf_counter() - start,
                           device=str(dev), steps=step, seed=seed, config_hash=key)
    if ckpt is not None and ckpt.saved_step != step:  # the end of the run is always saved
        ckpt.save(checkpoint(step))
    if ddp is None and pending():
        raise _preempted(step, ckpt, checkpoint)
    if not math.isfinite(val_loss):
        raise RunError(f"validation loss is non-finite ({val_loss}) after step {step}")

    metrics: dict[str, Any] = dict(task.metrics(val_loss))
    metrics["attention_backend"] = ",".join(backends)  # per layer, as spec check shows it
    if t.compile:
        metrics["compile"] = "compiled" if forward.reason is None else f"eager: {forward.reason}"
    metrics.update({k: v for k, v in evals.items() if k != "val_loss"})
    for name, batches in eval_sets.items():  # named evaluation sets (lm's eval:), scored once, at the end
        metrics.update(task.eval_metrics(name, evaluate(model, batches, amp, task=task)["val_loss"]))
    if skip_relaxed:
        metrics.update(skip_evaluations(model, resolved, val_batches, amp, task, val_loss))
    diagnostics = collect_diagnostics(model, val_batches[0][0][:DIAGNOSTIC_SEQUENCES]) if with_diagnostics else []
    seconds = time.perf_counter() - start
    peak = torch.cuda.max_memory_allocated(dev) if dev.type == "cuda" else _rss_peak()
    return TrainResult(
        val_loss=val_loss,
        params=model.num_params(),
        flops_per_token=model.flops_per_token(T),
        tokens=step * B * T,
        tokens_per_second=step * B * T / max(train_seconds, 1e-9),
        seconds=seconds,
        device=str(dev),
        steps=step,
        seed=seed,
        config_hash=resolved.config_hash(),
        peak_memory_bytes=int(peak),
        metrics=metrics,
        data=getattr(task, "data_identity", None),
        history=history,
        diagnostics=diagnostics,
    )


def _to(batch: tuple[torch.Tensor, torch.Tensor], dev: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    return batch[0].to(dev), batch[1].to(dev)


def _preempted(step: int, ckpt: Checkpointer | None, state: Any) -> Preempted:
    """Save the run at this step boundary (when it checkpoints) and say so."""
    if ckpt is None:
        return Preempted(f"preempted at step {step}, without a checkpoint (train.checkpoint_every is not set): "
                         "the run will start over")
    if ckpt.saved_step != step:
        ckpt.save(state(step))
    return Preempted(f"preempted at step {step}; its state is saved in {ckpt.directory}")


def _rss_peak() -> int:
    try:
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB
    except Exception:  # pragma: no cover - non-Unix
        return 0
