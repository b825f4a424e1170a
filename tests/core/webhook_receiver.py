"""A fake webhook receiver on 127.0.0.1 for the webhook tests: records requests, can fail, be slow or gone."""
from __future__ import annotations

import json
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Receiver:
    """Answers ``status`` (200 unless told), after ``delay`` seconds; records every request first.

    ``applied`` is the receiver's idempotent effect: one entry per distinct ``X-Yiti-Delivery``.
    """

    def __init__(self, status: int = 200, delay: float = 0.0, before_answer=None):
        self.status, self.delay, self.before_answer = status, delay, before_answer
        self.requests: list[dict] = []
        self.applied: dict[str, dict] = {}
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                raw = self.rfile.read(int(self.headers["Content-Length"]))
                entry = {"headers": dict(self.headers), "raw": raw, "body": json.loads(raw), "path": self.path,
                         "at": time.monotonic()}
                with receiver.lock:
                    receiver.requests.append(entry)
                    status = receiver.status
                    if 200 <= status < 300:
                        receiver.applied.setdefault(self.headers["X-Yiti-Delivery"], entry["body"])
                if receiver.before_answer is not None:
                    receiver.before_answer()
                if receiver.delay:
                    time.sleep(receiver.delay)
                answer = b'{"ok": true}' if status < 300 else b"boom"
                try:
                    self.send_response(status)
                    self.send_header("Content-Length", str(len(answer)))
                    self.end_headers()
                    self.wfile.write(answer)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the sender gave up (time-out) or was killed mid-call: what the tests provoke

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def ids(self) -> list[str]:
        with self.lock:
            return [r["headers"]["X-Yiti-Delivery"] for r in self.requests]

    def duplicates(self) -> int:
        return sum(n - 1 for n in Counter(self.ids).values())

    def close(self):
        self.server.shutdown()
        self.server.server_close()
