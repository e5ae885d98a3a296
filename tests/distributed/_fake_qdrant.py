"""A small Qdrant REST server on 127.0.0.1 for the server-only path (no Qdrant binary exists here).

It speaks the REST calls the qdrant-client store makes, parsing every request body with
qdrant-client's own request models and answering from a qdrant-client local-mode collection, so the
driver and the actors write to it concurrently over HTTP as they would to a Qdrant server. It
records which process sent each upsert (through the connection's owner), to prove who wrote, and
every write request (method, path and query, body, sender).
"""

from __future__ import annotations

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib.metadata import version
from typing import Any

import psutil
from qdrant_client import QdrantClient, models


class _Server(ThreadingHTTPServer):
    request_queue_size = 128  # the actors and the driver connect at once (the default listen backlog is 5)
    daemon_threads = True


class FakeQdrant:
    def __init__(self) -> None:
        self.local = QdrantClient(location=":memory:")
        self.lock = threading.Lock()
        self.upserts_by_pid: dict[int, int] = {}
        self.errors: list[str] = []
        #: every request: (method, path with its query string, body, pid of the sender)
        self.requests: list[tuple[str, str, Any, int]] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _answer(self) -> None:
                n = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(n) or b"null")
                try:
                    with fake.lock:
                        if self.command in ("PUT", "POST", "PATCH"):
                            fake.requests.append((self.command, self.path, body, fake._who(self.client_address[1])))
                        result = fake.route(self.command, self.path.split("?")[0], body, self.client_address[1])
                    code, out = 200, {"result": result, "status": "ok", "time": 0.0}
                    if self.path == "/":  # the version check reads the root's fields unwrapped
                        out = result
                except KeyError as exc:
                    code, out = 404, {"status": {"error": f"Not found: {exc}"}, "time": 0.0}
                except Exception as exc:  # a bad request: answer it as Qdrant would, and keep it for the test
                    fake.errors.append(f"{self.command} {self.path}: {exc!r}")
                    code, out = 400, {"status": {"error": repr(exc)}, "time": 0.0}
                data = json.dumps(out, default=_json).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_PUT = do_POST = do_PATCH = do_DELETE = _answer

        self.server = _Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        # qdrant-client checks the server's version in a thread of its own: let it finish while the server is up
        for t in threading.enumerate():
            if "check_compatibility" in t.name:
                t.join(10)
        self.server.shutdown()
        self.server.server_close()

    def _who(self, port: int) -> int:
        for c in psutil.net_connections(kind="tcp"):
            if c.laddr and c.laddr.port == port and c.pid is not None:
                return c.pid
        return -1

    def route(self, method: str, path: str, body: Any, port: int) -> Any:  # noqa: C901 - one table of routes
        lc = self.local
        if path == "/":
            return {"title": "fake qdrant", "version": version("qdrant-client")}  # no compatibility warning
        if (method, path) == ("GET", "/collections"):
            return lc.get_collections()
        if (method, path) == ("GET", "/aliases"):
            return lc.get_aliases()
        if (method, path) == ("POST", "/collections/aliases"):
            return lc.update_collection_aliases(models.ChangeAliasesOperation(**body).actions)
        m = re.fullmatch(r"/collections/([^/]+)(/.*)?", path)
        if m is None:
            raise KeyError(path)
        name, rest = m.group(1), m.group(2) or ""
        if rest == "/exists":
            return {"exists": lc.collection_exists(name)}
        if rest == "" and method == "GET":
            if not lc.collection_exists(name):
                raise KeyError(name)
            return lc.get_collection(name)
        if rest == "" and method == "PUT":
            req = models.CreateCollection(**body)
            return lc.create_collection(name, vectors_config=req.vectors, hnsw_config=req.hnsw_config, metadata=req.metadata)
        if rest == "" and method == "PATCH":
            return lc.update_collection(name, metadata=models.UpdateCollection(**body).metadata)
        if rest == "" and method == "DELETE":
            return lc.delete_collection(name)
        if rest == "/aliases":
            return lc.get_collection_aliases(name)
        if rest == "/index" and method == "PUT":  # a payload index: checked, then a no-op (local mode has none)
            models.CreateFieldIndex(**body)
            if not lc.collection_exists(name):
                raise KeyError(name)
            return {"operation_id": 0, "status": "completed"}
        if rest == "/points" and method == "PUT":
            pid = self._who(port)
            self.upserts_by_pid[pid] = self.upserts_by_pid.get(pid, 0) + 1
            batch = models.PointsBatch(**body).batch if "batch" in body else models.PointsList(**body).points
            return lc.upsert(name, points=batch)
        if rest == "/points" and method == "POST":
            req = models.PointRequest(**body)
            return lc.retrieve(name, ids=req.ids, with_payload=req.with_payload, with_vectors=req.with_vector)
        if rest == "/points/delete":
            return lc.delete(name, points_selector=models.PointIdsList(**body) if "points" in body else models.FilterSelector(**body))
        if rest == "/points/count":
            req = models.CountRequest(**body)
            return lc.count(name, count_filter=req.filter, exact=True)
        if rest == "/points/scroll":
            req = models.ScrollRequest(**body)
            pts, nxt = lc.scroll(name, scroll_filter=req.filter, limit=req.limit or 10, offset=req.offset,
                                 with_payload=req.with_payload, with_vectors=req.with_vector)
            return {"points": pts, "next_page_offset": nxt}
        raise KeyError(f"{method} {path}")


def _json(obj: Any) -> Any:
    if hasattr(obj, "model_dump"):
        return obj.model_dump(mode="json", exclude_unset=False)
    raise TypeError(type(obj).__name__)
