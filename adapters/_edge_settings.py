"""`CollectionSettings` on Qdrant Edge: the ``EdgeConfig`` of a new shard, its payload indexes, query params.

What qdrant-edge-py 0.9 applies (checked against its type stubs and by tests/adapters/test_settings.py):
HNSW ``m`` / ``ef_construct`` / ``on_disk``, ``on_disk`` vectors and payload, scalar int8 (quantile,
always_ram), binary (1, 1.5, 2 bits), product (x4..x64) and TurboQuant (1..8 bits) quantization,
``rescore`` / ``oversampling`` at query time, the indexing threshold, and keyword / integer / float /
bool / datetime / uuid / text payload indexes (``is_tenant`` on keyword ones). Edge is one local
shard: ``shard_number``, ``replication_factor``, ``write_consistency_factor`` and ``strict_mode``
are kept in the manifest (a push to a server applies them) but have no meaning here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import qdrant_edge as _qe

from tamis.stores import CollectionSettings, PayloadIndex, SearchParams

__all__ = ["edge_quantization", "index_operations", "make_shard", "search_params", "settings_config"]

_DISTANCE = {"cosine": _qe.Distance.Cosine, "dot": _qe.Distance.Dot, "euclid": _qe.Distance.Euclid}
_BINARY = {
    "one_bit": _qe.BinaryQuantizationEncoding.OneBit,
    "one_and_half_bits": _qe.BinaryQuantizationEncoding.OneAndHalfBits,
    "two_bits": _qe.BinaryQuantizationEncoding.TwoBits,
}
_TURBO = {
    "1": _qe.TurboQuantBitSize.Bits1,
    "1.5": _qe.TurboQuantBitSize.Bits1_5,
    "2": _qe.TurboQuantBitSize.Bits2,
    "4": _qe.TurboQuantBitSize.Bits4,
    "8": _qe.TurboQuantBitSize.Bits8,
}
_SCHEMA = {
    "keyword": _qe.PayloadSchemaType.Keyword,
    "integer": _qe.PayloadSchemaType.Integer,
    "float": _qe.PayloadSchemaType.Float,
    "bool": _qe.PayloadSchemaType.Bool,
    "datetime": _qe.PayloadSchemaType.Datetime,
    "uuid": _qe.PayloadSchemaType.Uuid,
    "text": _qe.PayloadSchemaType.Text,
}


def edge_quantization(settings: CollectionSettings) -> Any:
    """The engine's quantization config, or None."""
    q = settings.quantization
    if q.type == "scalar":
        return _qe.ScalarQuantizationConfig(_qe.ScalarType.Int8, quantile=q.quantile, always_ram=q.always_ram)
    if q.type == "binary":
        return _qe.BinaryQuantizationConfig(
            always_ram=q.always_ram, encoding=None if q.encoding is None else _BINARY[q.encoding]
        )
    if q.type == "product":
        return _qe.ProductQuantizationConfig(getattr(_qe.CompressionRatio, q.compression.upper()), always_ram=q.always_ram)  # type: ignore[union-attr]
    if q.type == "turbo":
        return _qe.TurboQuantQuantizationConfig(always_ram=q.always_ram, bits=None if q.bits is None else _TURBO[q.bits])
    return None


def settings_config(
    dim: int,
    distance: str,
    settings: CollectionSettings,
    *,
    hnsw_m: int,
    hnsw_ef_construct: int,
    indexing_threshold_kb: int | None,
    full_scan_threshold_kb: int,
) -> Any:
    """The ``EdgeConfig`` of a new shard: the store's defaults with ``settings`` on top."""
    threshold = settings.indexing_threshold_kb or indexing_threshold_kb
    return _qe.EdgeConfig(
        vectors=_qe.EdgeVectorParams(size=dim, distance=_DISTANCE[distance], on_disk=settings.on_disk_vectors),
        on_disk_payload=settings.on_disk_payload,
        hnsw_config=_qe.HnswIndexConfig(
            m=settings.hnsw_m or hnsw_m,
            ef_construct=settings.hnsw_ef_construct or hnsw_ef_construct,
            full_scan_threshold=full_scan_threshold_kb,
            on_disk=settings.hnsw_on_disk,
        ),
        quantization_config=edge_quantization(settings),
        optimizers=None if threshold is None else _qe.EdgeOptimizersConfig(indexing_threshold=threshold),
    )


def _schema(index: PayloadIndex) -> Any:
    if index.is_tenant and index.type == "keyword":
        return _qe.KeywordIndexParams(is_tenant=True)
    return _SCHEMA[index.type]


def index_operations(settings: CollectionSettings) -> list[Any]:
    """One ``create_field_index`` update per payload index of ``settings`` (tamis's own included)."""
    return [_qe.UpdateOperation.create_field_index(i.key, _schema(i)) for i in settings.indexes()]


def search_params(params: SearchParams) -> Any:
    """The engine's ``SearchParams``: ``hnsw_ef``, ``exact``, and the quantization's rescore / oversampling."""
    quant = None
    if params.rescore is not None or params.oversampling is not None:
        quant = _qe.QuantizationSearchParams(rescore=params.rescore, oversampling=params.oversampling)
    return _qe.SearchParams(hnsw_ef=params.hnsw_ef, exact=params.exact, quantization=quant)


def make_shard(shard_dir: Path, config: Any, settings: CollectionSettings) -> None:
    """Create the shard of a new collection in ``shard_dir`` with its payload indexes, and close it."""
    shard = _qe.EdgeShard.create(str(shard_dir), config)
    try:
        for op in index_operations(settings):
            shard.update(op)
    finally:
        shard.close()
