"""A remote encoder that answers garbage or trickles: typed errors, and nothing bad stored.

A real HTTP server on 127.0.0.1 speaks TEI (``GET /info``, ``POST /embed``) with `FakeEncoder`
vectors, spoilt on purpose by its ``mode``.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np
import pytest
from faultkit import cli, write_jsonl

import tamis
from tamis import Document, FakeEncoder, RemoteInferenceError
from tamis.adapters.remote import RemoteEncoder

DIM = 32
FAKE = FakeEncoder(dim=DIM, name="remote")


class Server:
    """``mode``: "ok", "zeros" (rows of texts with "zero" in them are all-zero), "nan", "dim"
    (16-d rows in the second request only), "trickle" (the answer one byte every 0.3 s)."""

    def __init__(self) -> None:
        self.mode = "ok"
        self.posts = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _send(self, data: Any, *, trickle: bool = False) -> None:
                body = json.dumps(data).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if not trickle:
                    self.wfile.write(body)
                    return
                for i in range(len(body)):
                    try:
                        self.wfile.write(body[i : i + 1])
                        self.wfile.flush()
                    except OSError:
                        return
                    time.sleep(0.3)

            def do_GET(self) -> None:
                self._send({"model_id": "remote", "max_input_length": 128, "max_client_batch_size": 1000})

            def do_POST(self) -> None:
                texts = json.loads(self.rfile.read(int(self.headers["Content-Length"])))["inputs"]
                outer.posts += 1
                vecs = FAKE.encode(texts)
                if outer.mode == "zeros":
                    vecs[["zero" in t for t in texts]] = 0.0
                elif outer.mode == "nan":
                    vecs[-1, 3] = np.nan
                elif outer.mode == "dim" and outer.posts == 2:
                    vecs = vecs[:, :16]
                rows = [[None if np.isnan(x) else float(x) for x in row] for row in vecs]
                if outer.mode == "nan":
                    rows[-1][3] = "NaN"
                self._send(rows, trickle=outer.mode == "trickle" and outer.posts > 1)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server() -> Iterator[Server]:
    s = Server()
    yield s
    s.close()


def _docs(n: int) -> list[Document]:
    return [Document(f"d{i}", f"note {i} " + ("zero " if i % 5 else "") + "about lava") for i in range(n)]


# -- bug 5: zero / non-finite / wrong-dimension rows --------------------------------------------------
def test_bug5_all_zero_rows_are_a_typed_error_and_never_stored(server, data):
    docs = _docs(200)
    server.mode = "zeros"
    with tamis.open_collection("c", path=data, encoder_url=server.url, create=True) as col:
        with pytest.raises(RemoteInferenceError, match="zero"):
            col.index(docs, batch_size=50)
        stored = list(col.store.scroll(col.physical, with_payload=False, with_vectors=True)) if col.exists else []
        assert all(np.linalg.norm(r.vector) > 0.5 for r in stored)
    server.mode = "ok"
    with tamis.open_collection("c", path=data, encoder_url=server.url, create=True) as col:
        report = col.index(docs, batch_size=50)
        assert report.points == 200 and col.manifest["ingest"]["state"] == "complete"
        vecs = np.array([r.vector for r in col.store.scroll(col.physical, with_payload=False, with_vectors=True)])
        assert len(vecs) == 200 and np.all(np.linalg.norm(vecs, axis=1) > 0.5)


@pytest.mark.parametrize("mode", ["nan", "dim"])
def test_bug5_non_finite_or_wrong_dimension_rows_are_a_typed_error(server, mode):
    enc = RemoteEncoder(server.url, max_retries=0)
    assert enc.dim == DIM  # discovery (the probe) is healthy
    server.mode = mode
    with pytest.raises(RemoteInferenceError, match="finite" if mode == "nan" else "16"):
        enc.encode(["one text", "another text"], batch_size=1)


# -- weak spot: an overall deadline per request -------------------------------------------------------
def test_a_trickling_server_hits_the_deadline(server):
    enc = RemoteEncoder(server.url, timeout=2.0, deadline=1.0, max_retries=1, backoff=0.0)
    assert enc.dim == DIM
    server.mode = "trickle"
    t0 = time.monotonic()
    with pytest.raises(RemoteInferenceError, match="deadline"):
        enc.encode(["a text"])
    assert time.monotonic() - t0 < 6  # two tries of ~1 s, not the minutes the trickle would take


async def test_a_trickling_server_hits_the_deadline_async(server):
    enc = RemoteEncoder(server.url, timeout=2.0, deadline=1.0, max_retries=0)
    await enc.ainfo()
    server.mode = "trickle"
    t0 = time.monotonic()
    with pytest.raises(RemoteInferenceError, match="deadline"):
        await enc.aencode(["a text"])
    assert time.monotonic() - t0 < 4


def test_cli_takes_timeout_and_retries(server, tmp_path, data):
    src = write_jsonl(tmp_path / "c.jsonl", [{"_id": "a", "text": "lava"}])
    server.mode = "trickle"  # the probe is answered; every embedding trickles
    t0 = time.monotonic()
    res = cli("index", src, "-c", "c", "--path", data, "--encoder-url", server.url, "--timeout", "1", "--retries", "0")
    assert res.exit_code == 2, res.output
    assert "RemoteInferenceError" in res.stderr and time.monotonic() - t0 < 8
