"""Data parallelism inside a trial: torch.distributed DDP over the processes torchrun starts.

``--nproc N`` re-runs the same command under torchrun's elastic launcher (:mod:`torch.distributed.run`,
standalone rendezvous on this machine), which starts N processes with ``RANK``/``WORLD_SIZE``/``LOCAL_RANK``
set. In each, :func:`setup` joins the process group (NCCL on CUDA, gloo on the CPU) and a gloo *control*
group (job announcements, stop decisions; long timeout, CPU tensors whatever the backend).

Rank 0 is the *leader*: it runs the command itself (a ``train``, or a study worker with its Optuna trials,
store writes and progress). The other ranks are *followers*: :func:`follow` waits for the leader to announce
each run (spec data, seed, checkpoint directory) and trains it with it, until the leader announces the end.

Inside :func:`deconstruct.train.train`, with a world of W processes and a global batch of B:

- every rank draws the same global batch from the same sampler RNG (the single-process sample stream, so a
  checkpoint has one sampler state) and trains on its own shard, rows ``[rank·B/W, (rank+1)·B/W)``;
- DDP averages the gradients: with equal shards that is the gradient of the global batch's mean loss, so W
  processes take the same steps as one, up to floating-point reduction order (tested with gloo: W = 2 vs 1);
- the training loss is averaged over ranks; only the leader evaluates, saves checkpoints, calls callbacks;
- whether to stop (a callback raised, e.g. Optuna pruned the trial; the time budget ran out) is the leader's
  decision, broadcast at each evaluation (and each step when ``train.seconds`` is set).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from deconstruct._errors import DeconstructError

CONTROL_TIMEOUT = timedelta(days=7)  #: followers may wait this long for the leader's next run (a study's gaps)


@dataclass
class Dist:
    """This process's place in the world."""

    rank: int
    world: int
    local_rank: int
    backend: str
    control: Any  # the gloo group for job announcements and stop decisions

    @property
    def leader(self) -> bool:
        return self.rank == 0

    def shard(self, batch_size: int) -> slice:
        """This rank's rows of a global batch of ``batch_size``."""
        check_batch(batch_size, self.world)
        n = batch_size // self.world
        return slice(self.rank * n, (self.rank + 1) * n)

    def announce(self, job: dict[str, Any] | None) -> None:
        """Leader: tell the followers which run to train next (None: the command is over)."""
        import torch.distributed as dist

        dist.broadcast_object_list([job], src=0, group=self.control)

    def receive(self) -> dict[str, Any] | None:
        import torch.distributed as dist

        box: list[Any] = [None]
        dist.broadcast_object_list(box, src=0, group=self.control)
        return box[0]

    def decide(self, stop: bool) -> bool:
        """The leader's ``stop`` on every rank (a collective: all ranks call it at the same step)."""
        import torch
        import torch.distributed as dist

        flag = torch.tensor([1 if stop else 0], dtype=torch.int32)
        dist.broadcast(flag, src=0, group=self.control)
        return bool(flag.item())

    def mean(self, value: Any) -> Any:
        """The mean over ranks of a tensor (in place)."""
        import torch.distributed as dist

        dist.all_reduce(value, op=dist.ReduceOp.SUM)
        return value.div_(self.world)


def check_batch(batch_size: int, world: int) -> None:
    if batch_size % world:
        raise DeconstructError(
            f"train.batch_size {batch_size} does not split over {world} processes; use a multiple of {world} "
            "(the global batch is shared out, not multiplied)"
        )


_CURRENT: Dist | None = None


def current() -> Dist | None:
    """The world this process trains in (None: a single process)."""
    return _CURRENT


def launched() -> bool:
    """True inside a process that torchrun started (its environment names a world of several processes)."""
    return "LOCAL_RANK" in os.environ and int(os.environ.get("WORLD_SIZE", "1")) > 1


def setup(device: str | None = None) -> Dist:
    """Join the world torchrun started: NCCL on CUDA (one device per local rank), gloo on the CPU."""
    global _CURRENT
    import torch
    import torch.distributed as dist

    local = int(os.environ["LOCAL_RANK"])
    cuda = torch.cuda.is_available() and not str(device or os.environ.get("DECONSTRUCT_DEVICE", "auto")).startswith(("cpu", "mps"))
    if cuda:
        torch.cuda.set_device(local)
    backend = "nccl" if cuda else "gloo"
    dist.init_process_group(backend, device_id=torch.device("cuda", local) if cuda else None)
    control = dist.new_group(backend="gloo", timeout=CONTROL_TIMEOUT)
    _CURRENT = Dist(rank=dist.get_rank(), world=dist.get_world_size(), local_rank=local, backend=backend, control=control)
    return _CURRENT


def teardown(announce_end: bool = True) -> None:
    """Leave the world; the leader first tells the followers the command is over (not after a failure: they
    may be inside a collective, and torchrun stops them when the leader exits with an error)."""
    global _CURRENT
    import torch.distributed as dist

    ctx, _CURRENT = _CURRENT, None
    if ctx is None:
        return
    if ctx.leader and announce_end:
        ctx.announce(None)
    dist.destroy_process_group()


def follow(ctx: Dist) -> None:
    """Follower: train each run the leader announces, until it announces the end."""
    from deconstruct.spec import load_spec
    from deconstruct.train._loop import train

    while (job := ctx.receive()) is not None:
        resolved = load_spec(job["spec"])
        if resolved.config_hash() != job["config_hash"]:  # the leader's spec did not survive the trip
            raise DeconstructError(f"rank {ctx.rank}: received configuration {resolved.config_hash()}, "
                                   f"not the leader's {job['config_hash']}")
        try:
            train(resolved, seed=job["seed"], device=job["device"], checkpoint_dir=job["checkpoint_dir"],
                  with_diagnostics=False)
        except DeconstructError:  # the leader failed the same way (a non-finite loss, a batch that does not
            continue  # split, a foreign checkpoint) and records it: on to its next run


def launch(argv: list[str], nproc: int) -> int:
    """Run ``deconstruct ARGV`` in ``nproc`` processes on this machine under torchrun (standalone elastic
    rendezvous, no restarts); returns rank 0's exit code (the first failure's otherwise)."""
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import parse_args, run

    args = parse_args(["--standalone", "--nnodes", "1", "--nproc-per-node", str(nproc), "--max-restarts", "0",
                       "--module", "deconstruct"])
    args.training_script_args = list(argv)  # set here: torchrun's parser would take --nproc for its own option
    try:
        run(args)
    except ChildFailedError as exc:
        codes = {rank: f.exitcode for rank, f in exc.failures.items()}
        code = codes.get(0, next(iter(codes.values()), 1))
        return code if isinstance(code, int) and code > 0 else 1
    return 0
