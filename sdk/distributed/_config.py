"""`RayConfig`: where the Ray cluster is and how the work is spread over it; `start_ray` joins or starts it.

Ray is an extra (``pip install "tamis[ray]"``), imported here only when a distributed run asks for it.
"""

from __future__ import annotations

import logging
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from tamis._errors import ConfigError

__all__ = ["RayConfig"]


class RayConfig(BaseModel):
    """How a distributed run uses Ray (`tamis.index_distributed`, ``tamis index --ray``, ``tamis train --ray``).

    Attributes:
        address: the cluster to join (``"auto"``, ``"ray://head:10001"``, ``"10.0.0.5:6379"``); None
            joins the one this process already started, or starts a local one.
        num_actors: encoder actors, one model each (one per GPU on a GPU cluster).
        num_cpus_per_actor: CPUs each actor reserves; its torch threads on CPU.
        num_gpus_per_actor: GPUs each actor reserves; None: 1 when the cluster has GPUs, else 0.
        batch_size: documents per block handed to an actor (its chunks are encoded and written together).
            The encoder sorts a block's texts by length before batching them (the in-process ingest sorts the
            whole corpus), so bigger blocks pad less: 1,024 ran 18 % behind the in-process ingest on 1 CPU
            where 256 ran 30 % behind (benchmarks/RESULTS.md).
        encode_batch_size: texts per forward pass inside an actor; None: 32 on CPU, 128 on a GPU. An actor
            sorts only its block by length, not the corpus, so on CPU finer batches pad less: blocks of
            1,024 at 64 a pass encode 13 % slower than the whole sorted corpus, at 32 as fast
            (benchmarks/RESULTS.md).
        max_buffered_bytes: object-store bytes the pipeline may hold ahead of the writer; when the
            store writes slower than the actors encode, they wait instead of buffering the corpus.
        max_tasks_in_flight_per_actor: blocks queued at an actor beyond the one it encodes.
        runtime_env: Ray's runtime environment for the workers (``pip``, ``env_vars``, ``working_dir``).
        read_cpus: CPUs a read task reserves (0: reading is light, the actors hold the cores).
        num_cpus: CPUs of a local cluster started here (ignored when joining one).
        init_options: anything else for ``ray.init``.

    Example:
        >>> RayConfig(num_actors=4, batch_size=512).num_actors
        4
    """

    model_config = ConfigDict(extra="forbid")

    address: str | None = None
    num_actors: int = Field(1, ge=1)
    num_cpus_per_actor: float = Field(1.0, gt=0)
    num_gpus_per_actor: float | None = Field(None, ge=0)
    batch_size: int = Field(1024, ge=1)
    encode_batch_size: int | None = Field(None, ge=1)
    max_buffered_bytes: int = Field(256 * 2**20, ge=2**20)
    max_tasks_in_flight_per_actor: int = Field(2, ge=1)
    runtime_env: dict[str, Any] | None = None
    read_cpus: float = Field(0.0, ge=0)
    num_cpus: int | None = Field(None, ge=1)
    init_options: dict[str, Any] = Field(default_factory=dict)


def import_ray() -> Any:
    """The ``ray`` module, or an ImportError naming the extra."""
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError as exc:  # pragma: no cover - the extra is installed in the test environment
        raise ImportError('distributed runs need Ray: pip install "tamis[ray]"') from exc
    return ray


def start_ray(config: RayConfig) -> bool:
    """Join (or start) the cluster ``config`` names; True when this call started Ray (the caller shuts it down)."""
    ray = import_ray()
    if ray.is_initialized():
        return False
    options: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False, **config.init_options}
    if config.runtime_env is not None:
        options["runtime_env"] = config.runtime_env
    if config.address is None and config.num_cpus is not None:
        options["num_cpus"] = config.num_cpus
    try:
        ray.init(address=config.address, **options)
    except (ConnectionError, ValueError) as exc:
        raise ConfigError(f"cannot join the Ray cluster at {config.address!r}: {exc}") from exc
    return True


def gpus_per_actor(config: RayConfig) -> float:
    """``config.num_gpus_per_actor``, or 1 when the cluster has GPUs and 0 when it has none."""
    if config.num_gpus_per_actor is not None:
        return config.num_gpus_per_actor
    ray = import_ray()
    return 1.0 if ray.cluster_resources().get("GPU", 0) >= 1 else 0.0


def limit_buffering(config: RayConfig) -> None:
    """Cap the object-store memory of the running pipelines (Ray Data's backpressure does the rest)."""
    ray = import_ray()
    ctx = ray.data.DataContext.get_current()
    limits = ctx.execution_options.resource_limits
    ctx.execution_options.resource_limits = limits.copy(object_store_memory=config.max_buffered_bytes)
    ctx.enable_progress_bars = False
    logging.getLogger("ray.data").setLevel(logging.INFO)
