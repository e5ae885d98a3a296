"""A small Qdrant REST server on 127.0.0.1 for the calls tamis makes, with faults injected on demand.

No Qdrant server binary exists here, so this one speaks the REST API of the calls `QdrantClientStore`
makes (collections, aliases, payload indexes, points: upsert / retrieve / delete / count / scroll /
query), parses every request body with qdrant-client's own request models (a body a real server
would reject fails here too), and executes it on qdrant-client's local mode (a real Qdrant
implementation, in process). It records each request, emulates strict mode (a filter on a key
without a payload index is refused, as ``unindexed_filtering_retrieve=false`` does), and injects
faults: an HTTP status (503, 429 with ``Retry-After``), a reset connection, or a stall longer than
the client's timeout.
"""

from __future__ import annotations

import json
import re
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from qdrant_client import QdrantClient, models


@dataclass
class Fault:
    """What the next matching requests get instead of an answer."""

    kind: str  # "status", "reset" or "stall"
    times: int = 1
    status: int = 503
    retry_after: int | None = None
    stall_s: float = 3.0
    path: str = ""  # a substring of "METHOD /path"; "" matches any request


@dataclass
class Recorded:
    method: str
    path: str
    body: Any
    query: str = ""


@dataclass
class FakeQdrant:
    """The server; ``url`` to connect to, ``requests`` received, `fail` to plan faults."""

    local: QdrantClient = field(default_factory=lambda: QdrantClient(":memory:"))
    requests: list[Recorded] = field(default_factory=list)
    faults: list[Fault] = field(default_factory=list)
    indexes: dict[str, dict[str, Any]] = field(default_factory=dict)
    strict: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)
    url: str = ""

    def fail(self, kind: str, **kw: Any) -> None:
        self.faults.append(Fault(kind, **kw))

    def bodies(self, method: str, pattern: str) -> list[Any]:
        return [r.body for r in self.requests if r.method == method and re.fullmatch(pattern, r.path)]

    def take_fault(self, what: str) -> Fault | None:
        with self.lock:
            for f in self.faults:
                if f.times > 0 and f.path in what:
                    f.times -= 1
                    return f
        return None

    # -- the API -----------------------------------------------------------------------------------
    def _check_strict(self, name: str, flt: models.Filter | None) -> None:
        physical = self._physical(name)
        if physical not in self.strict or flt is None:
            return
        for cond in (flt.must or []) + (flt.should or []) + (flt.must_not or []):
            key = getattr(cond, "key", None)
            if key is not None and key not in self.indexes.get(physical, {}):
                raise _Refused(400, f"Bad request: Index required but not found for \"{key}\" of one of the "
                               "following types: [keyword, integer]. Help: Create an index for this key")

    def _physical(self, name: str) -> str:
        for alias in self.local.get_aliases().aliases:
            if alias.alias_name == name:
                return alias.collection_name
        return name

    def handle(self, method: str, path: str, body: Any) -> Any:
        m = re.fullmatch(r"/collections/([^/]+)(/.*)?", path)
        name, rest = (m.group(1), m.group(2) or "") if m else (None, "")
        if method == "GET" and path == "/":
            return {"title": "qdrant - vector search engine (fake)", "version": "1.20.0"}
        if method == "GET" and path == "/collections":
            return self.local.get_collections().model_dump(mode="json")
        if method == "GET" and path == "/aliases":
            return self.local.get_aliases().model_dump(mode="json")
        if method == "POST" and path == "/collections/aliases":
            ops = models.ChangeAliasesOperation(**body).actions
            return self.local.update_collection_aliases(change_aliases_operations=ops)
        assert name is not None, path
        if method == "GET" and rest == "/exists":
            return {"exists": self.local.collection_exists(name)}
        if method == "PUT" and rest == "":
            req = models.CreateCollection(**body)
            if self.local.collection_exists(name):
                raise _Refused(409, f"Wrong input: Collection `{name}` already exists!")
            self.local.create_collection(name, vectors_config=req.vectors, metadata=req.metadata)
            if req.strict_mode_config is not None and req.strict_mode_config.enabled:
                self.strict.add(name)
            return True
        if method == "GET" and rest == "":
            return self.local.get_collection(name).model_dump(mode="json")
        if method == "PATCH" and rest == "":
            req = models.UpdateCollection(**body)
            return self.local.update_collection(name, metadata=req.metadata)
        if method == "DELETE" and rest == "":
            return self.local.delete_collection(name)
        if method == "PUT" and rest == "/index":
            req = models.CreateFieldIndex(**body)
            self.indexes.setdefault(self._physical(name), {})[req.field_name] = req.field_schema
            return {"operation_id": 0, "status": "completed"}
        if method == "PUT" and rest == "/points":
            req = models.PointsBatch(**body) if "batch" in body else models.PointsList(**body)
            points = req.batch if isinstance(req, models.PointsBatch) else req.points
            return self.local.upsert(name, points=points).model_dump(mode="json")
        if method == "POST" and rest == "/points":
            req = models.PointRequest(**body)
            found = self.local.retrieve(name, ids=req.ids, with_payload=req.with_payload, with_vectors=req.with_vector)
            return [r.model_dump(mode="json") for r in found]
        if method == "POST" and rest == "/points/delete":
            sel = models.PointIdsList(**body)
            return self.local.delete(name, points_selector=sel).model_dump(mode="json")
        if method == "POST" and rest == "/points/count":
            req = models.CountRequest(**body)
            self._check_strict(name, req.filter)
            return self.local.count(name, count_filter=req.filter, exact=bool(req.exact)).model_dump(mode="json")
        if method == "POST" and rest == "/points/scroll":
            req = models.ScrollRequest(**body)
            self._check_strict(name, req.filter)
            records, nxt = self.local.scroll(
                name, scroll_filter=req.filter, limit=req.limit or 10, offset=req.offset,
                with_payload=req.with_payload if req.with_payload is not None else True,
                with_vectors=req.with_vector or False,
            )
            return {"points": [r.model_dump(mode="json") for r in records], "next_page_offset": nxt}
        if method == "POST" and rest == "/points/query/batch":
            req = models.QueryRequestBatch(**body)
            for q in req.searches:
                self._check_strict(name, q.filter)
            answers = self.local.query_batch_points(name, requests=[q.model_copy(update={"params": None}) for q in req.searches])
            return [a.model_dump(mode="json") for a in answers]
        if method == "POST" and rest == "/points/query":
            req = models.QueryRequest(**body)
            self._check_strict(name, req.filter)
            return self.local.query_points(
                name, query=req.query, limit=req.limit or 10, offset=req.offset, query_filter=req.filter,
                score_threshold=req.score_threshold, with_payload=req.with_payload,
            ).model_dump(mode="json")
        raise _Refused(404, f"no route {method} {path}")


class _Refused(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _handler(fake: FakeQdrant) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:  # quiet
            pass

        def _serve(self, method: str) -> None:
            length = int(self.headers.get("content-length") or 0)
            raw = self.rfile.read(length) if length else b""
            body = json.loads(raw) if raw else None
            path, _, query = self.path.partition("?")
            fake.requests.append(Recorded(method, path, body, query))
            fault = fake.take_fault(f"{method} {path}")
            if fault is not None and fault.kind == "reset":
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                self.connection.close()
                self.close_connection = True
                return
            if fault is not None and fault.kind == "stall":
                time.sleep(fault.stall_s)
            if fault is not None and fault.kind == "status":
                headers = {} if fault.retry_after is None else {"Retry-After": str(fault.retry_after)}
                self._reply(fault.status, {"status": {"error": "Service Unavailable (injected)"}, "time": 0}, headers)
                return
            try:
                with fake.lock:
                    result = fake.handle(method, path, body)
                if hasattr(result, "model_dump"):
                    result = result.model_dump(mode="json")
                # the root (version info) is the one answer not wrapped in {"result": ...}
                self._reply(200, result if path == "/" else {"result": result, "status": "ok", "time": 0.0})
            except _Refused as exc:
                self._reply(exc.status, {"status": {"error": str(exc)}, "time": 0})
            except ValueError as exc:
                status = 404 if "not found" in str(exc).lower() else 400
                self._reply(status, {"status": {"error": f"Not found: {exc}" if status == 404 else str(exc)}, "time": 0})

        def _reply(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:  # noqa: N802
            self._serve("GET")

        def do_POST(self) -> None:  # noqa: N802
            self._serve("POST")

        def do_PUT(self) -> None:  # noqa: N802
            self._serve("PUT")

        def do_PATCH(self) -> None:  # noqa: N802
            self._serve("PATCH")

        def do_DELETE(self) -> None:  # noqa: N802
            self._serve("DELETE")

    return Handler


class _Server(ThreadingHTTPServer):
    request_queue_size = 128  # many clients connect at once (the default listen backlog is 5)


def serve() -> Iterator[FakeQdrant]:
    """Run a `FakeQdrant` on a free port of 127.0.0.1 for the duration of the generator."""
    fake = FakeQdrant()
    server = _Server(("127.0.0.1", 0), _handler(fake))
    server.daemon_threads = True
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        # qdrant-client checks the server's version in a thread of its own: let it finish while the server
        # is up, or its failure lands as an unhandled-thread warning in whichever test runs next
        for t in threading.enumerate():
            if "check_compatibility" in t.name:
                t.join(10)
        server.shutdown()
        server.server_close()
        fake.local.close()
