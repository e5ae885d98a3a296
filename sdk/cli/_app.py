"""The ``tamis`` typer app and what its commands share: options, consoles, logging, errors, progress bars.

The commands live one module per group (`_collections`, `_calibrate`, `_train`, `_demo`, `_serve`) and
register on `app` when `tamis.cli` imports them. Each command imports the SDK inside its function, so
``tamis --help`` loads only typer and rich.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

app = typer.Typer(
    name="tamis",
    help="tamis — a fine sieve for retrieval on Qdrant: index, search, calibrate, train.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
out = Console(soft_wrap=True)
err = Console(stderr=True)
logger = logging.getLogger("tamis")

# -- shared options -----------------------------------------------------------------------------
CollectionOpt = Annotated[str, typer.Option("--collection", "-c", help="Collection name.")]
PathOpt = Annotated[
    Path | None, typer.Option("--path", help="Data directory of the embedded store (default: $TAMIS_HOME or ~/.tamis).")
]
UrlOpt = Annotated[str | None, typer.Option("--url", help="Qdrant server URL (uses qdrant-client).", envvar="QDRANT_URL")]
ApiKeyOpt = Annotated[
    str | None, typer.Option("--api-key", help="Qdrant API key (better: set QDRANT_API_KEY).", envvar="QDRANT_API_KEY", show_envvar=True)
]
StoreOpt = Annotated[str | None, typer.Option("--store", help="Store name: edge (default), qdrant, or a plugin's.")]
ModelOpt = Annotated[
    str | None, typer.Option("--model", "-m", help="Model name or folder (default: the collection's, or all-MiniLM-L6-v2).")
]
BackendOpt = Annotated[str, typer.Option("--backend", help="auto | torch | onnx | onnx-int8 (auto: torch on GPU; on CPU the faster one, measured once per model and machine).")]
DeviceOpt = Annotated[str, typer.Option("--device", help="auto | cpu | cuda | cuda:N | mps.")]
VerboseOpt = Annotated[bool, typer.Option("--verbose", "-v", help="Log progress details.")]
EncoderUrlOpt = Annotated[
    str | None,
    typer.Option("--encoder-url", help="Embed with an inference server (TEI, OpenAI-compatible, tamis serve) instead of a local model.",
                 envvar="TAMIS_ENCODER_URL"),
]
EncoderApiKeyOpt = Annotated[
    str | None,
    typer.Option("--encoder-api-key", help="The inference server's API key (better: set TAMIS_ENCODER_API_KEY).",
                 envvar="TAMIS_ENCODER_API_KEY", show_envvar=True),
]

EncoderTimeoutOpt = Annotated[
    float | None,
    typer.Option("--timeout", help="With --encoder-url: seconds per connect / read; a request may take 3x this in all."),
]
EncoderRetriesOpt = Annotated[
    int | None, typer.Option("--retries", help="With --encoder-url: further tries of a failed request (default 5).")
]


def encoder_options(timeout: float | None, retries: int | None) -> dict[str, Any]:
    """The RemoteEncoder options of --timeout / --retries (only those given)."""
    return {k: v for k, v in (("timeout", timeout), ("max_retries", retries)) if v is not None}


def _setup_logging(verbose: bool) -> None:
    from rich.logging import RichHandler

    if not any(isinstance(h, RichHandler) for h in logger.handlers):
        handler = RichHandler(console=err, show_time=False, show_path=False)
        logger.addHandler(handler)
    logger.setLevel(logging.INFO if verbose else logging.WARNING)


def _open(
    name: str, *, path: Path | None, url: str | None, api_key: str | None, store: str | None,
    model: str | None, backend: str, device: str, create: bool = False,
    encoder_url: str | None = None, encoder_api_key: str | None = None, encoder_options: dict[str, Any] | None = None,
    hybrid: bool = False, settings: Any = None,
) -> Any:
    from tamis.cli._qdrant_options import store_options
    from tamis.collection import open_collection

    if encoder_options and encoder_url is None:
        from tamis._errors import ConfigError

        raise ConfigError("--timeout and --retries apply to a remote encoder: give --encoder-url too")
    return open_collection(
        name, path=path, url=url, api_key=api_key, store=store, model=model, backend=backend, device=device, create=create,
        encoder_url=encoder_url, encoder_api_key=encoder_api_key if encoder_url else None,
        encoder_options=encoder_options or None, hybrid=hybrid, settings=settings,
        store_options=store_options(url, store),
    )


def _fail(exc: BaseException) -> None:
    err.print(f"[bold red]error:[/] {type(exc).__name__}: {exc}", highlight=False, markup=True)
    raise typer.Exit(code=2)


def _print_index_report(report: Any, collection: str, json_out: bool, how: str = "indexed", note: str = "") -> None:
    """The end of `tamis index` (in process or on Ray): the report as JSON, or one line and the skips."""
    if json_out:
        import json

        out.print_json(json.dumps(report.to_dict()))
        return
    rate = report.encoded / report.seconds if report.seconds else 0.0
    out.print(
        f"[green]{how}[/]{note} {report.documents:,} documents ({report.chunks:,} chunks) into [bold]{collection}[/]: "
        f"{report.encoded:,} encoded ({rate:,.0f}/s), {report.unchanged:,} unchanged, "
        f"{report.points:,} points in all, {report.seconds:.1f}s"
    )
    if report.skipped:
        out.print(f"[yellow]skipped[/] {sum(report.skipped.values()):,} invalid records: {report.skipped}")


def _progress() -> Progress:
    return Progress(
        TextColumn("[progress.description]{task.description}"), BarColumn(), MofNCompleteColumn(),
        TimeElapsedColumn(), TimeRemainingColumn(), console=err, transient=False,
    )


def main() -> None:
    """Console-script entry point."""
    args = sys.argv[1:]
    # `--ray [ADDRESS]` (tamis.cli._ray): typer has no optional-value options; alone, it means a local cluster
    for i, arg in enumerate(args):
        if arg == "--ray" and (i + 1 == len(args) or args[i + 1].startswith("-")):
            args.insert(i + 1, "local")
            break
    app(args=args)
