"""The ``--ray [ADDRESS]`` options of ``tamis index``: the hook into `tamis.distributed`.

``--ray`` alone starts a local Ray cluster (or joins the one ``RAY_ADDRESS`` names); ``--ray ADDRESS``
joins that cluster. The work itself is `tamis.distributed.index_distributed`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from tamis._errors import ConfigError, TamisError
from tamis.cli._app import _fail, out

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
RayBatchOpt = Annotated[int, typer.Option("--ray-batch-size", help="With --ray: documents per block sent to an actor.")]


def ray_config(address: str, *, actors: int, batch_size: int) -> Any:
    """The `RayConfig` of the command-line options."""
    from tamis.distributed import RayConfig

    return RayConfig(address=None if address == LOCAL else address, num_actors=actors, batch_size=batch_size)


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
        # options of the in-process ingest that the Ray one does not take: refused if set, never ignored
        unsupported = {"hybrid": "--hybrid", "config": "--config", "set_": "--set", "index_field": "--index-field",
                       "tenant_field": "--tenant-field", "timeout": "--timeout", "retries": "--retries"}
        given = [flag for key, flag in unsupported.items() if options.pop(key, None) not in (None, False, [], ())]
        if given:
            raise ConfigError(f"--ray does not take {', '.join(given)} yet: create the collection with them in "
                              "process first (`tamis index` on a small part), then index the rest with --ray")
        report = index_distributed(
            data, collection, config=ray_config(ray, actors=actors, batch_size=ray_batch_size),
            on_invalid="skip" if skip_invalid else "raise", title_field=title_field or None, **options,
        )
    except TamisError as exc:
        _fail(exc)
        return
    if json_out:
        out.print_json(json.dumps(report.to_dict()))
        return
    rate = report.encoded / report.seconds if report.seconds else 0.0
    out.print(
        f"[green]indexed on Ray[/] ({actors} actors) {report.documents:,} documents ({report.chunks:,} chunks) into "
        f"[bold]{collection}[/]: {report.encoded:,} encoded ({rate:,.0f}/s), {report.unchanged:,} unchanged, "
        f"{report.points:,} points in all, {report.seconds:.1f}s"
    )
    if report.skipped:
        out.print(f"[yellow]skipped[/] {sum(report.skipped.values()):,} invalid records: {report.skipped}")
