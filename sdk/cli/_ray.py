"""The ``--ray [ADDRESS]`` options of ``tamis index`` and ``tamis train``: the hooks into `tamis.distributed`.

``--ray`` alone starts a local Ray cluster (or joins the one ``RAY_ADDRESS`` names); ``--ray ADDRESS``
joins that cluster. The work itself is `tamis.distributed.index_distributed`, or for training
`tamis.distributed.RayWorkers` handed to the training entry point.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from tamis._errors import ConfigError, TamisError
from tamis.cli._app import _fail, _print_index_report
from tamis.cli._qdrant_options import settings_from_cli, store_options

#: what ``--ray`` without an address means: a local cluster (or $RAY_ADDRESS, which Ray reads itself)
LOCAL = "local"

RayOpt = Annotated[
    str | None,
    typer.Option(
        "--ray", is_flag=False, flag_value=LOCAL, metavar="[ADDRESS]",
        help="Run on a Ray cluster (the ray extra: pip install 'tamis\\[ray]'): --ray alone for a local one, --ray ADDRESS to join one.",
    ),
]
ActorsOpt = Annotated[int, typer.Option("--actors", help="With --ray: encoder actors (one model each; one per GPU).")]
RayBatchOpt = Annotated[int, typer.Option("--ray-batch-size", help="With --ray: documents per block sent to an actor (bigger blocks pad less).")]


def ray_config(address: str, *, actors: int, batch_size: int) -> Any:
    """The `RayConfig` of the command-line options."""
    from tamis.distributed import RayConfig

    return RayConfig(address=None if address == LOCAL else address, num_actors=actors, batch_size=batch_size)


def training_workers(address: str | None, *, actors: int, batch_size: int) -> Any:
    """``tamis train ... --ray``: the `RayWorkers` a training run scores and mines with (None without --ray)."""
    if address is None:
        return None
    from tamis.distributed import RayWorkers

    return RayWorkers(ray_config(address, actors=actors, batch_size=batch_size))


def index_with_ray(
    *, data: Path, collection: str, ray: str, actors: int, ray_batch_size: int, json_out: bool,
    skip_invalid: bool, title_field: str, encoder_url: str | None, batch_size: int, verbose: bool, **options: Any,
) -> None:
    """``tamis index ... --ray``: `index_distributed` with the command's options, and its report."""
    from tamis.distributed import index_distributed

    try:
        if encoder_url is not None:
            raise ConfigError("--ray encodes in actors with the model of their own: drop --encoder-url")
        options.pop("encoder_api_key", None)
        # --timeout / --retries of `index` are the remote encoder's (--encoder-url): refused, never ignored;
        # the store's client options are the global ones (`tamis --timeout 30 --retries 8 index ... --ray`)
        given = [flag for key, flag in (("timeout", "--timeout"), ("retries", "--retries")) if options.pop(key) is not None]
        if given:
            raise ConfigError(f"{' and '.join(given)} of `tamis index` belong to --encoder-url, which --ray does not take; "
                              "for the Qdrant client's timeout and retries use the global options: "
                              "`tamis --timeout 30 --retries 8 index ... --ray`")
        settings = settings_from_cli(options.pop("config"), options.pop("set_"), options.pop("index_field"),
                                     options.pop("tenant_field"))
        report = index_distributed(
            data, collection, config=ray_config(ray, actors=actors, batch_size=ray_batch_size),
            on_invalid="skip" if skip_invalid else "raise", title_field=title_field or None, settings=settings,
            store_options=store_options(options.get("url"), options.get("store")), **options,
        )
    except TamisError as exc:
        _fail(exc)
        return
    _print_index_report(report, collection, json_out, how="indexed on Ray", note=f" ({actors} actors)")
