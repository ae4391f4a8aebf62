"""Data-parallel training across processes with PyTorch DDP, launched by ``torchrun``.

``torchrun`` starts one process per device and tells each its place through
environment variables (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``,
``MASTER_ADDR``/``MASTER_PORT``). :func:`init_distributed` reads them and joins
the process group: ``gloo`` on CPUs, ``nccl`` on GPUs (one GPU per process,
``cuda:LOCAL_RANK``). Without those variables everything here is a no-op, so
the same code runs single-process.

One machine, two processes (CPU or two GPUs)::

    torchrun --standalone --nproc_per_node 2 -m molgen train --data mols.smi --out runs/ddp

Several machines (run on each, with its own ``--node_rank``)::

    torchrun --nnodes 2 --node_rank 0 --nproc_per_node 4 \\
        --master_addr node0.example --master_port 29500 -m molgen train --data mols.smi --out runs/ddp

Semantics (see :class:`molgen.train.Trainer`): every rank walks the same
batches in the same order and takes its share of each batch, so a step of N
processes sees the same molecules as a single-process step, the step count,
the epoch count and the checkpoint format are those of a single-process run,
and only rank 0 writes files.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from molgen.errors import ConfigError

__all__ = [
    "DistInfo",
    "any_true",
    "barrier",
    "check_in_sync",
    "current",
    "init_distributed",
    "mean_over_ranks",
    "shutdown",
]


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def launched_by_torchrun() -> bool:
    """Whether this process is one of several started by ``torchrun``."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def current() -> DistInfo:
    """This process's place in the process group (single process when there is none)."""
    if not (dist.is_available() and dist.is_initialized()):
        return DistInfo()
    return DistInfo(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def init_distributed(device: torch.device) -> tuple[DistInfo, torch.device, bool]:
    """Join the process group when launched by ``torchrun``.

    Returns ``(info, device, started)``: on CUDA each process takes
    ``cuda:LOCAL_RANK``; ``started`` tells whether this call created the group
    (and so should :func:`shutdown` it).
    """
    if not launched_by_torchrun():
        return DistInfo(), device, False
    if not dist.is_available():
        raise ConfigError("this PyTorch build has no torch.distributed; run without torchrun")
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda":
        if local_rank >= torch.cuda.device_count():
            raise ConfigError(
                f"torchrun started more processes per node than there are GPUs ({torch.cuda.device_count()}); "
                "lower --nproc_per_node"
            )
        device = torch.device(f"cuda:{local_rank}")
        torch.cuda.set_device(device)
    started = False
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        started = True
    return current(), device, started


def any_true(flag: bool, device: torch.device) -> bool:
    """True on every rank when ``flag`` is true on at least one (a collective: all ranks must call it)."""
    if not current().enabled:
        return flag
    value = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item())


def mean_over_ranks(values: dict[str, float], device: torch.device) -> dict[str, float]:
    """Average a dict of floats (same keys on every rank) across ranks."""
    info = current()
    if not info.enabled or not values:
        return values
    keys = sorted(values)
    tensor = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64, device=device)
    dist.all_reduce(tensor)
    return {k: float(v) / info.world_size for k, v in zip(keys, tensor.tolist(), strict=True)}


def barrier() -> None:
    if current().enabled:
        dist.barrier()


def check_in_sync(model: torch.nn.Module, device: torch.device) -> None:
    """Raise if the ranks' weights differ (DDP keeps them equal; this verifies it)."""
    info = current()
    if not info.enabled:
        return
    with torch.no_grad():
        local = torch.stack(
            [p.detach().double().sum() for p in model.parameters()] or [torch.zeros((), dtype=torch.float64)]
        ).to(device)
        gathered = [torch.empty_like(local) for _ in range(info.world_size)]
        dist.all_gather(gathered, local)
    if any(not torch.equal(gathered[0], other) for other in gathered[1:]):
        raise RuntimeError("distributed ranks hold different weights; this is a molgen bug, please report it")


def shutdown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
