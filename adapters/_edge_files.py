"""The files of an `EdgeStore` data directory, apart from the shards themselves.

Layout of a data directory::

    <path>/
        aliases.json                  {"aliases": {alias: collection}}, replaced atomically
        collections/
            <name>/
                tamis.json            {"format", "dim", "distance", "metadata"}, replaced atomically
                shard/                the Edge shard (segments + write-ahead log)
            .tmp-*, .trash-*          a collection being created / deleted (never listed)

Every JSON file is replaced atomically (temp file, fsync, rename, fsync of the folder): readers see
the old or the new file, never half of one.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tamis._errors import CollectionNotFoundError, ConfigError, StoreError

__all__ = ["FORMAT", "Layout", "free_bytes", "fsync_dir", "require_free", "unallocated_wal", "write_json_atomic"]

logger = logging.getLogger(__name__)

#: version of the ``tamis.json`` format
FORMAT = 1
_STALE_TMP_S = 3600.0


#: a Qdrant Edge shard maps write-ahead-log segments of this size; a write into one the disk cannot hold
#: kills the process with SIGBUS, so the space is checked before a shard is created or opened
WAL_SEGMENT_BYTES = 32 * 1024 * 1024
#: a new shard starts with this many segments
WAL_SEGMENTS = 2
#: kept free on top of what a write is estimated to need (segment files grow in steps of ~1 MB)
FREE_MARGIN_BYTES = 8 * 1024 * 1024
_MIB = 1024 * 1024


def free_bytes(path: Path) -> int:
    """Bytes free for this process on the file system of ``path``."""
    return shutil.disk_usage(path).free


def require_free(path: Path, needed: int, what: str) -> None:
    """`StoreError` unless the disk of ``path`` has ``needed`` bytes free (plus the margin) to ``what``."""
    needed += FREE_MARGIN_BYTES
    try:
        free = free_bytes(path)
    except OSError:  # cannot tell: let the write itself say
        return
    if free < needed:
        raise StoreError(
            f"not enough disk space to {what} in {str(path)!r}: {needed / _MIB:,.1f} MiB needed, "
            f"{free / _MIB:,.1f} MiB free; free some space, or move the data directory (TAMIS_HOME, "
            "--path) to a larger disk"
        )


def unallocated_wal(shard_dir: Path) -> int:
    """Bytes of the shard's write-ahead-log segments not yet on disk (sparse): what opening it may write."""
    total = 0
    try:
        for f in (shard_dir / "wal").iterdir():
            st = f.stat()
            total += max(0, st.st_size - st.st_blocks * 512)
    except OSError:
        pass
    return total


def fsync_dir(path: Path) -> None:
    """fsync a folder, so that a rename in it survives an OS crash."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_json_atomic(path: Path, data: Any) -> None:
    """Write ``data`` as JSON to ``path`` so that readers see the old or the new file, never half."""
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise _write_error(path, exc) from exc
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f, ensure_ascii=False, indent=1)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise _write_error(path, exc) from exc
        raise
    fsync_dir(path.parent)


def _write_error(path: Path, exc: OSError) -> StoreError:
    full = " (the disk is full: free some space)" if exc.errno == errno.ENOSPC else ""
    return StoreError(f"cannot write {str(path)!r}: {exc.strerror or exc}{full}; the previous version is intact")


def _read_json(path: Path) -> Any:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


class Layout:
    """Paths and JSON files of one data directory (created, and checked writable, on construction).

    Raises:
        StoreError: the directory cannot be created or written.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.collections = path / "collections"
        self.aliases_file = path / "aliases.json"
        try:
            self.collections.mkdir(parents=True, exist_ok=True)
            probe = tempfile.NamedTemporaryFile(dir=self.collections, prefix=".probe-")
            probe.close()
        except OSError as exc:
            raise StoreError(
                f"cannot use {str(path)!r} as the tamis data directory ({exc.strerror or exc}); "
                f"set TAMIS_HOME to a writable folder, or pass path= to a writable folder"
            ) from exc

    def remove_leftovers(self) -> None:
        """Remove what a crash left behind: trash of deleted collections, stale half-created ones."""
        now = time.time()
        for entry in self.collections.iterdir():
            if entry.name.startswith(".trash-") or (
                entry.name.startswith((".tmp-", ".probe-")) and now - entry.stat().st_mtime > _STALE_TMP_S
            ):
                logger.info("removing leftover %s", entry)
                if entry.is_dir():
                    shutil.rmtree(entry, ignore_errors=True)
                else:
                    entry.unlink(missing_ok=True)

    def dir(self, name: str) -> Path:
        """The folder of collection ``name``."""
        return self.collections / name

    def is_collection(self, name: str) -> bool:
        """True if ``name`` is a complete collection (its ``tamis.json`` exists)."""
        return (self.dir(name) / "tamis.json").is_file()

    def names(self) -> list[str]:
        """The collections, sorted (hidden folders of collections being made or deleted left out)."""
        return sorted(
            p.name
            for p in self.collections.iterdir()
            if not p.name.startswith(".") and self.is_collection(p.name)
        )

    def read_aliases(self) -> dict[str, str]:
        """{alias: collection}; `StoreError` if ``aliases.json`` is unreadable."""
        try:
            return dict(_read_json(self.aliases_file)["aliases"])
        except FileNotFoundError:
            return {}
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise StoreError(
                f"cannot read aliases from {str(self.aliases_file)!r} ({exc}); fix or delete the file "
                f"(aliases will then have to be set again)"
            ) from exc

    def write_aliases(self, aliases: dict[str, str]) -> None:
        """Replace ``aliases.json`` atomically."""
        write_json_atomic(self.aliases_file, {"aliases": aliases})

    def set_alias(self, alias: str, target: str) -> None:
        """Point ``alias`` at collection ``target`` (replacing its old target); hold the store's lock."""
        if not self.is_collection(target):
            raise CollectionNotFoundError(
                f"cannot point alias {alias!r} at {target!r}: no collection of that name in "
                f"{str(self.path)!r} (an alias must point at a collection, not at another alias)"
            )
        if self.is_collection(alias):
            raise ConfigError(
                f"cannot create alias {alias!r}: a collection of that name exists; pick another alias name"
            )
        aliases = self.read_aliases()
        aliases[alias] = target
        self.write_aliases(aliases)

    def delete_alias(self, alias: str) -> None:
        """Remove ``alias`` if it exists; hold the store's lock."""
        aliases = self.read_aliases()
        if aliases.pop(alias, None) is not None:
            self.write_aliases(aliases)

    def info(self, name: str) -> dict[str, Any]:
        """The ``tamis.json`` of collection ``name``."""
        try:
            return _read_json(self.dir(name) / "tamis.json")
        except FileNotFoundError:
            raise CollectionNotFoundError(f"no collection named {name!r} in {str(self.path)!r}") from None
        except (OSError, ValueError) as exc:
            raise StoreError(f"cannot read {str(self.dir(name) / 'tamis.json')!r}: {exc}") from exc

    def write_info(self, folder: Path, info: dict[str, Any]) -> None:
        """Write ``tamis.json`` into a collection's ``folder`` atomically."""
        write_json_atomic(folder / "tamis.json", info)

    def build(self, name: str, info: dict[str, Any], make_shard: Callable[[Path], None]) -> None:
        """Make collection ``name`` (its shard by ``make_shard(folder)``, then ``tamis.json``) in a
        hidden sibling folder and rename it into place, so a failure leaves no half-made collection."""
        require_free(self.collections, WAL_SEGMENTS * WAL_SEGMENT_BYTES, f"create collection {name!r}")
        tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{name}-", dir=self.collections))
        try:
            make_shard(tmp / "shard")
            self.write_info(tmp, info)
            os.rename(tmp, self.dir(name))
            fsync_dir(self.collections)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise

    def require_free_to_open(self, name: str) -> None:
        """`StoreError` unless opening collection ``name``'s shard can write what it may (its log segments)."""
        require_free(self.collections, unallocated_wal(self.dir(name) / "shard"), f"open collection {name!r}")

    def require_free_to_write(self, name: str, nbytes: int) -> None:
        """`StoreError` unless ``nbytes`` of new points fit (their log entry and their segment copy)."""
        require_free(self.collections, 3 * nbytes, f"write {nbytes / _MIB:,.1f} MiB of points into {name!r}")

    def trash(self, name: str, suffix: str) -> Path:
        """Move collection ``name`` out of the way (durably) before its files are removed."""
        trash = self.collections / f".trash-{name}-{suffix}"
        os.rename(self.dir(name), trash)
        fsync_dir(self.collections)
        return trash
