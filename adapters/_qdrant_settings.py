"""`CollectionSettings` as qdrant-client requests: create-collection arguments, payload indexes, search params.

Everything here is sent to a server as is (checked by tests/adapters/test_qdrant_server.py against
qdrant-client's own request models, through a REST server on 127.0.0.1). qdrant-client's local mode
ignores what it has no notion of (shards, replication, quantization, on_disk, strict mode, payload
indexes: it scans), and warns about search params, so `search_params` sends none to it.
"""

from __future__ import annotations

from typing import Any

from qdrant_client import models

from tamis.stores import CollectionSettings, PayloadIndex, SearchParams

__all__ = ["create_arguments", "payload_indexes", "search_params"]

_DISTANCE = {"cosine": models.Distance.COSINE, "dot": models.Distance.DOT, "euclid": models.Distance.EUCLID}
_SCHEMA = {
    "keyword": models.PayloadSchemaType.KEYWORD,
    "integer": models.PayloadSchemaType.INTEGER,
    "float": models.PayloadSchemaType.FLOAT,
    "bool": models.PayloadSchemaType.BOOL,
    "datetime": models.PayloadSchemaType.DATETIME,
    "uuid": models.PayloadSchemaType.UUID,
    "text": models.PayloadSchemaType.TEXT,
}
_BINARY = {
    "one_bit": models.BinaryQuantizationEncoding.ONE_BIT,
    "one_and_half_bits": models.BinaryQuantizationEncoding.ONE_AND_HALF_BITS,
    "two_bits": models.BinaryQuantizationEncoding.TWO_BITS,
}


_INDEX_PARAMS = {
    "keyword": (models.KeywordIndexParams, models.KeywordIndexType.KEYWORD),
    "integer": (models.IntegerIndexParams, models.IntegerIndexType.INTEGER),
    "float": (models.FloatIndexParams, models.FloatIndexType.FLOAT),
    "bool": (models.BoolIndexParams, models.BoolIndexType.BOOL),
    "datetime": (models.DatetimeIndexParams, models.DatetimeIndexType.DATETIME),
    "uuid": (models.UuidIndexParams, models.UuidIndexType.UUID),
    "text": (models.TextIndexParams, models.TextIndexType.TEXT),
}


def _tier(tier: str | None) -> models.Memory | None:
    return None if tier is None else models.Memory(tier)


def _quantization(settings: CollectionSettings) -> Any:
    q = settings.quantization
    kw = {"always_ram": q.always_ram, "memory": _tier(settings.memory.quantization)}
    if q.type == "scalar":
        return models.ScalarQuantization(
            scalar=models.ScalarQuantizationConfig(type=models.ScalarType.INT8, quantile=q.quantile, **kw)
        )
    if q.type == "binary":
        return models.BinaryQuantization(
            binary=models.BinaryQuantizationConfig(encoding=None if q.encoding is None else _BINARY[q.encoding], **kw)
        )
    if q.type == "product":
        return models.ProductQuantization(
            product=models.ProductQuantizationConfig(compression=models.CompressionRatio(q.compression), **kw)
        )
    if q.type == "turbo":
        turbo = models.TurboQuantQuantizationConfig(bits=None if q.bits is None else _turbo_bits(q.bits), **kw)
        return models.TurboQuantization(turbo=turbo)
    return None


def _turbo_bits(bits: str) -> Any:
    return next(b for b in models.TurboQuantBitSize if b.value.replace("bits", "").replace("_", ".") == bits)


def create_arguments(
    dim: int, distance: str, settings: CollectionSettings, *, hnsw_m: int, hnsw_ef_construct: int
) -> dict[str, Any]:
    """Keyword arguments of ``QdrantClient.create_collection`` (besides the name and metadata)."""
    threshold = settings.indexing_threshold_kb
    strict = None
    if settings.strict_mode is not None:
        strict = models.StrictModeConfig(enabled=settings.strict_mode)
    tiers = settings.memory
    return {
        "vectors_config": models.VectorParams(
            size=dim, distance=_DISTANCE[distance], on_disk=settings.on_disk_vectors, memory=_tier(tiers.vectors)
        ),
        "shard_number": settings.shard_number,
        "replication_factor": settings.replication_factor,
        "write_consistency_factor": settings.write_consistency_factor,
        "on_disk_payload": settings.on_disk_payload,
        "hnsw_config": models.HnswConfigDiff(
            m=settings.hnsw_m or hnsw_m,
            ef_construct=settings.hnsw_ef_construct or hnsw_ef_construct,
            on_disk=settings.hnsw_on_disk,
            memory=_tier(tiers.hnsw),
        ),
        "payload": None if tiers.payload is None else models.PayloadStorageParams(memory=_tier(tiers.payload)),
        "id_tracker": None if tiers.id_tracker is None else models.IdTrackerParams(memory=_tier(tiers.id_tracker)),
        "optimizers_config": None if threshold is None else models.OptimizersConfigDiff(indexing_threshold=threshold),
        "quantization_config": _quantization(settings),
        "strict_mode_config": strict,
    }


def _schema(index: PayloadIndex, tier: str | None) -> Any:
    """The index's field schema: the plain type, or its params object for a tenant field or a memory tier."""
    if tier is None and not index.is_tenant:
        return _SCHEMA[index.type]
    cls, kind = _INDEX_PARAMS[index.type]
    kw: dict[str, Any] = {"type": kind, "memory": _tier(tier)}
    if index.is_tenant:
        kw["is_tenant"] = True
    return cls(**kw)


def payload_indexes(settings: CollectionSettings) -> list[tuple[str, Any]]:
    """(field name, field schema) of every payload index to create (tamis's own ``doc_id`` / ``chunk`` first)."""
    return [(i.key, _schema(i, settings.memory.payload_indexes)) for i in settings.indexes()]


def search_params(params: SearchParams) -> models.SearchParams:
    """The server's search params: ``hnsw_ef``, ``exact``, and the quantization's rescore / oversampling."""
    quant = None
    if params.rescore is not None or params.oversampling is not None:
        quant = models.QuantizationSearchParams(rescore=params.rescore, oversampling=params.oversampling)
    return models.SearchParams(hnsw_ef=params.hnsw_ef, exact=params.exact, quantization=quant)
