"""The wire formats `tamis.adapters.remote.RemoteEncoder` speaks, as pure functions: what a server's
``/info`` or model list says (`RemoteInfo`), and what its embedding, rerank and error bodies hold."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx
import numpy as np

from tamis._errors import RemoteInferenceError

__all__ = [
    "DEFAULT_PAYLOAD_LIMIT",
    "RemoteInfo",
    "check_rows",
    "excerpt",
    "first_model",
    "info_from_openai",
    "info_from_tei",
    "json_or_none",
    "parse_embeddings",
    "probe_info",
    "remote_fingerprint",
    "rerank_scores",
    "retry_after",
    "stack",
]

#: TEI's default ``--payload-limit`` (bytes of request body), used when /info does not say
DEFAULT_PAYLOAD_LIMIT = 2_000_000


@dataclass(frozen=True, slots=True)
class RemoteInfo:
    """What tamis learned about a server.

    Attributes:
        api: ``"tei"`` or ``"openai"``.
        model_id: the model the server runs.
        revision: the model's revision / sha, if the server says.
        dim: embedding dimension.
        fingerprint: tamis serve's model fingerprint, or a hash of (model id, revision, dim).
        max_client_batch_size: most texts per request (None: no limit known).
        max_batch_tokens: most tokens per request (None: no limit known).
        max_input_length: longest input in tokens (longer is truncated by the server).
        payload_limit: largest request body in bytes.
        query_prompt: the prompt name the server applies to queries (tamis serve with a model
            that has a ``"query"`` prompt), or None.
    """

    api: str
    model_id: str
    revision: str | None
    dim: int
    fingerprint: str
    max_client_batch_size: int | None
    max_batch_tokens: int | None
    max_input_length: int
    payload_limit: int
    query_prompt: str | None = None


def info_from_tei(data: Mapping[str, Any], dim: int | None) -> RemoteInfo | None:
    """RemoteInfo from a TEI/tamis ``/info`` body; None when the dimension is unknown (probe first)."""
    tamis_meta = data.get("tamis") if isinstance(data.get("tamis"), Mapping) else None
    if tamis_meta and dim is None:
        dim = int(tamis_meta["dim"])
    if dim is None:
        return None
    model_id = str(data.get("model_id") or "unknown")
    revision = data.get("model_sha") or data.get("revision")
    fp = str(tamis_meta["fingerprint"]) if tamis_meta else remote_fingerprint(model_id, revision, dim)
    prompts = (tamis_meta or {}).get("prompts") or {}
    return RemoteInfo(
        api="tei", model_id=model_id, revision=None if revision is None else str(revision), dim=dim,
        fingerprint=fp,
        max_client_batch_size=_opt_int(data.get("max_client_batch_size")),
        max_batch_tokens=_opt_int(data.get("max_batch_tokens")),
        max_input_length=int(data.get("max_input_length") or 512),
        payload_limit=int(_opt_int(data.get("payload_limit")) or DEFAULT_PAYLOAD_LIMIT),
        query_prompt="query" if "query" in prompts else None,
    )


def info_from_openai(model_id: str, dim: int) -> RemoteInfo:
    """RemoteInfo for an OpenAI-compatible server, which says nothing about its limits."""
    return RemoteInfo(
        api="openai", model_id=model_id, revision=None, dim=dim,
        fingerprint=remote_fingerprint(model_id, None, dim), max_client_batch_size=None,
        max_batch_tokens=None, max_input_length=512, payload_limit=DEFAULT_PAYLOAD_LIMIT,
    )


def parse_embeddings(info: RemoteInfo, resp: httpx.Response, n: int, url: str) -> np.ndarray:
    """The unit rows of an embedding response to ``n`` texts (TEI: a list of lists; OpenAI: ``data``)."""
    try:
        data = resp.json()
        if info.api == "tei":
            rows = data
        else:
            items = sorted(data["data"], key=lambda d: d.get("index", 0))
            rows = [d["embedding"] for d in items]
        arr = np.asarray(rows, dtype=np.float32)
    except (ValueError, KeyError, TypeError) as exc:
        raise RemoteInferenceError(
            f"{url} answered with a body that is not a list of {n} embeddings: {exc}",
            status=resp.status_code, body=excerpt(resp), url=url,
        ) from exc
    if arr.ndim != 2 or arr.shape[0] != n:
        raise RemoteInferenceError(
            f"{url} returned embeddings of shape {arr.shape} for {n} texts",
            status=resp.status_code, body=excerpt(resp), url=url,
        )
    check_rows(arr, info.dim, url, resp)
    norms = np.linalg.norm(arr, axis=1, keepdims=True)
    return np.ascontiguousarray(arr / norms, dtype=np.float32)


def check_rows(arr: np.ndarray, dim: int, url: str, resp: httpx.Response) -> None:
    """RemoteInferenceError unless every row of ``arr`` is ``dim``-d (0: not known yet), finite and not all
    zero: a vector that cannot be a text's embedding is never stored (a re-run would call it unchanged)."""
    n = len(arr)

    def fail(what: str, rows: np.ndarray) -> None:
        idx = np.flatnonzero(rows)
        raise RemoteInferenceError(
            f"{url} returned {what} for {idx.size} of {n} texts (rows {idx[:10].tolist()}); the server is "
            "broken or overloaded: check its logs, then run again (nothing of this request was stored)",
            status=resp.status_code, body=excerpt(resp), url=url,
        )

    if dim and arr.shape[1] != dim:
        raise RemoteInferenceError(
            f"{url} returned {arr.shape[1]}-d embeddings; the server reported {dim}-d ones (has its model "
            "changed? open the collection again)", status=resp.status_code, body=excerpt(resp), url=url,
        )
    finite = np.isfinite(arr).all(axis=1)
    if not finite.all():
        fail("embeddings that are not finite (NaN or Infinity)", ~finite)
    zero = np.linalg.norm(arr, axis=1) <= 1e-12
    if zero.any():
        fail("all-zero embeddings", zero)


def stack(parts: list[np.ndarray], dim: int) -> np.ndarray:
    """The rows of ``parts`` (one per request) as one (n, dim) array; RemoteInferenceError if the
    server changed its dimension since discovery."""
    out = np.vstack(parts) if parts else np.zeros((0, dim), dtype=np.float32)
    if out.shape[1] != dim:
        raise RemoteInferenceError(f"the server returned {out.shape[1]}-d embeddings; it reported {dim}-d before")
    return out


def remote_fingerprint(model_id: str, revision: Any, dim: int) -> str:
    """The fingerprint of a served model that does not report one: a hash of (id, revision, dim)."""
    return hashlib.sha256(f"remote:{model_id}@{revision or ''}:{dim}".encode()).hexdigest()[:32]


def probe_info(api: str, data: Mapping[str, Any]) -> RemoteInfo:
    """A provisional RemoteInfo good enough to send the dimension probe."""
    return RemoteInfo(
        api=api, model_id=str(data.get("model_id") or "unknown"), revision=None, dim=0, fingerprint="",
        max_client_batch_size=None, max_batch_tokens=None, max_input_length=512, payload_limit=DEFAULT_PAYLOAD_LIMIT,
    )


def first_model(data: Any, url: str) -> str:
    """The first model an OpenAI ``/v1/models`` body lists."""
    try:
        return str(data["data"][0]["id"])
    except (KeyError, IndexError, TypeError) as exc:
        raise RemoteInferenceError(
            f"{url} lists no model; pass model= naming the served model", url=url, body=json.dumps(data)[:500]
        ) from exc


def _opt_int(value: Any) -> int | None:
    try:
        return None if value is None else int(value)
    except (TypeError, ValueError):
        return None


def json_or_none(resp: httpx.Response, optional: bool, url: str) -> Any:
    """The JSON body of ``resp``; when it is not JSON, None if ``optional``, else RemoteInferenceError."""
    try:
        return resp.json()
    except ValueError as exc:
        if optional:
            return None
        raise RemoteInferenceError(
            f"{url} did not answer JSON", status=resp.status_code, body=excerpt(resp), url=url
        ) from exc


def retry_after(resp: httpx.Response) -> float:
    """Seconds a ``Retry-After`` header asks to wait (0 without one, or one that is a date)."""
    value = resp.headers.get("retry-after")
    try:
        return max(0.0, float(value)) if value is not None else 0.0
    except ValueError:
        return 0.0


def excerpt(resp: httpx.Response) -> str:
    """The start of a response body, for error messages."""
    try:
        return resp.text[:500]
    except Exception:  # pragma: no cover - undecodable body
        return ""


def rerank_scores(resp: httpx.Response, n: int, url: str) -> list[float]:
    """The scores of a TEI ``/rerank`` body, in input order."""
    try:
        scores = [0.0] * n
        for item in resp.json():
            scores[int(item["index"])] = float(item["score"])
        return scores
    except (ValueError, KeyError, TypeError, IndexError) as exc:
        raise RemoteInferenceError(
            f"{url} answered with a body that is not a rerank result: {exc}",
            status=resp.status_code, body=excerpt(resp), url=url,
        ) from exc
