"""Multi-GPU and multi-node training through PyTorch's own DistributedDataParallel.

Nothing home-made: processes are started by ``torchrun`` (one per GPU, or per CPU
process with gloo), which sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``
and ``MASTER_PORT``; we call ``init_process_group(init_method="env://")`` with ``nccl``
on CUDA and ``gloo`` on CPU, wrap the model in ``DistributedDataParallel``, shard the
data with a ``DistributedSampler`` seeded like a single-process run, and sum
confusion matrices with ``all_reduce``.  Only rank 0 writes checkpoints and logs and
shows progress bars.

``--batch-size`` is per process: 2 processes with batch 4 see the same 8 images per
step as 1 process with batch 8 (DDP averages the gradients).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from fcn_edge.errors import FcnEdgeError

log = logging.getLogger("fcn_edge.train")


@dataclass
class DistContext:
    """Where this process stands: rank, world size, device, and whether it writes outputs."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    backend: str | None = None

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.distributed:
            dist.barrier()

    def all_reduce_sum(self, tensor: torch.Tensor) -> torch.Tensor:
        """Sum ``tensor`` over processes, in place (a no-op in one process)."""
        if self.distributed:
            if self.backend == "nccl" and tensor.device.type != "cuda":
                moved = tensor.to(self.device)
                dist.all_reduce(moved, op=dist.ReduceOp.SUM)
                tensor.copy_(moved.cpu())
            else:
                dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        return tensor

    def broadcast_object(self, obj):
        """Rank 0's ``obj`` (plain data) on every rank."""
        if not self.distributed:
            return obj
        holder = [obj]
        dist.broadcast_object_list(holder, src=0)
        return holder[0]

    def gather_objects(self, obj) -> list:
        """Every rank's ``obj`` (plain data), in rank order, on every rank."""
        if not self.distributed:
            return [obj]
        gathered: list = [None] * self.world_size
        dist.all_gather_object(gathered, obj)
        return gathered


def _env_int(name: str, default: str | None = None) -> int:
    """An integer torchrun put in the environment; one sentence (not a ValueError) when it is not one."""
    text = os.environ.get(name, default)
    try:
        value = int(str(text).strip())
    except (TypeError, ValueError):
        raise FcnEdgeError(f"the environment variable {name}={text!r} is not a whole number; it is set by torchrun "
                           "(unset RANK/WORLD_SIZE/LOCAL_RANK to train in one process)") from None
    if value < 0:
        raise FcnEdgeError(f"the environment variable {name}={value} is negative; it is set by torchrun")
    return value


def launched_by_torchrun() -> bool:
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ


def resolve_device(requested: str, local_rank: int = 0) -> torch.device:
    """``auto`` -> CUDA when available, else CPU; ``cuda`` -> this process's GPU (LOCAL_RANK)."""
    if requested == "auto":
        requested = "cuda" if torch.cuda.is_available() else "cpu"
    if requested.startswith("cuda"):
        if not torch.cuda.is_available():
            raise FcnEdgeError(f"--device {requested} was asked for but this torch ({torch.__version__}) sees no "
                               "CUDA GPU: use --device cpu, or install a CUDA build of torch")
        if requested == "cuda":
            return torch.device("cuda", local_rank % max(1, torch.cuda.device_count()))
        return torch.device(requested)
    if requested != "cpu":
        raise FcnEdgeError(f"unknown --device {requested!r}; use auto, cpu, cuda or cuda:N")
    return torch.device("cpu")


def setup(requested_device: str) -> DistContext:
    """Join the process group when started by torchrun; otherwise a one-process context."""
    if not launched_by_torchrun() or _env_int("WORLD_SIZE", "1") <= 1:
        return DistContext(device=resolve_device(requested_device))
    rank = _env_int("RANK")
    world = _env_int("WORLD_SIZE")
    local_rank = _env_int("LOCAL_RANK", "0")
    if rank >= world:
        raise FcnEdgeError(f"RANK={rank} is not below WORLD_SIZE={world}; these are set by torchrun")
    device = resolve_device(requested_device, local_rank)
    backend = "nccl" if device.type == "cuda" else "gloo"
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        try:
            dist.init_process_group(backend=backend, init_method="env://", rank=rank, world_size=world)
        except Exception as exc:  # noqa: BLE001 - rendezvous failures are user-fixable
            raise FcnEdgeError(f"could not join the {backend} process group (rank {rank} of {world}, "
                               f"MASTER_ADDR={os.environ.get('MASTER_ADDR')}, MASTER_PORT={os.environ.get('MASTER_PORT')}): "
                               f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from exc
    log.debug("rank %d/%d on %s (%s)", rank, world, device, backend)
    return DistContext(rank, world, local_rank, device, backend)


def teardown(context: DistContext) -> None:
    if context.distributed and dist.is_initialized():
        dist.destroy_process_group()
