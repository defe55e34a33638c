"""Data-parallel training across processes: `torchrun --nproc-per-node N -m nst train ...`.

torchrun sets RANK, WORLD_SIZE and LOCAL_RANK (and MASTER_ADDR/PORT), which select this
mode; without them the run is one process and nothing here touches torch.distributed. The
process group starts with env:// initialisation, the gloo backend on CPU and nccl on CUDA,
where each process takes cuda:<LOCAL_RANK>. The network is wrapped in
DistributedDataParallel, which averages gradients over the processes; each rank takes its
share of every global batch (nst.train.data), and only rank 0 writes checkpoints, samples,
logs and MLflow records.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

from nst import NstError


@dataclass(frozen=True)
class World:
    """This process's place among the training processes."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def world_from_env() -> World:
    """The World torchrun describes in the environment, or a single process."""
    try:
        world = World(
            int(os.environ.get("RANK", "0")),
            int(os.environ.get("WORLD_SIZE", "1")),
            int(os.environ.get("LOCAL_RANK", "0")),
        )
    except ValueError:
        raise NstError(
            "RANK, WORLD_SIZE and LOCAL_RANK must be integers (set by torchrun)"
        ) from None
    if not 0 <= world.rank < world.world_size:
        raise NstError(f"RANK={world.rank} outside WORLD_SIZE={world.world_size}")
    return world


def device_for(world: World, device: torch.device) -> torch.device:
    """cuda:<LOCAL_RANK> for distributed CUDA runs; the configured device otherwise."""
    if world.distributed and device.type == "cuda":
        return torch.device("cuda", world.local_rank)
    return device


def start(world: World, device: torch.device) -> None:
    """Join the process group (env:// init; nccl on CUDA, gloo on CPU)."""
    if not world.distributed or dist.is_initialized():
        return
    backend = "nccl" if device.type == "cuda" else "gloo"
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group(backend=backend, init_method="env://")


def stop(world: World) -> None:
    if world.distributed and dist.is_initialized():
        dist.destroy_process_group()


def wrap(model: nn.Module, world: World, device: torch.device) -> nn.Module:
    """DistributedDataParallel around `model` when distributed; `model` itself otherwise."""
    if not world.distributed:
        return model
    from torch.nn.parallel import DistributedDataParallel

    ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=ids)


def mean_over_ranks(values: torch.Tensor, world: World) -> torch.Tensor:
    """The mean of `values` over the processes (itself in one process): the global batch's
    losses for logging and for the non-finite check, which every rank then makes alike."""
    if not world.distributed:
        return values
    out = values.detach().clone()
    dist.all_reduce(out, op=dist.ReduceOp.SUM)
    return out / world.world_size


def barrier(world: World) -> None:
    if world.distributed:
        dist.barrier()
