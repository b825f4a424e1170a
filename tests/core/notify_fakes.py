"""Fake servers on 127.0.0.1 for notification tests: a tiny SMTP server and a robot HTTP server
that checks each platform's signature the way the platform documents it, computed here on its own."""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import socketserver
import threading
import urllib.parse
from email import message_from_bytes, policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

# Robot server ------------------------------------------------------------------------------------


def expected_dingtalk_sign(secret: str, timestamp_ms: str) -> str:
    return base64.b64encode(hmac.new(secret.encode(), f"{timestamp_ms}\n{secret}".encode(), hashlib.sha256).digest()).decode()


def expected_feishu_sign(secret: str, timestamp_s: str) -> str:
    return base64.b64encode(hmac.new(f"{timestamp_s}\n{secret}".encode(), b"", hashlib.sha256).digest()).decode()


class RobotServer:
    """Answers like DingTalk (``/robot/send?access_token=``), WeCom (``/cgi-bin/webhook/send?key=``)
    and Feishu (``/open-apis/bot/v2/hook/<id>``). ``secrets`` maps a token / hook id to its signing
    secret; a request with a wrong signature gets the platform's "sign not match" answer.
    ``script`` maps a token to a list of canned replies used first (e.g. a rate-limit answer)."""

    def __init__(self):
        self.secrets: dict[str, str] = {}
        self.script: dict[str, list] = {}
        self.requests: list[dict] = []
        self.lock = threading.Lock()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                length = int(self.headers.get("Content-Length", 0))
                raw = self.rfile.read(length)
                parts = urllib.parse.urlsplit(self.path)
                query = {k: v[0] for k, v in urllib.parse.parse_qs(parts.query).items()}
                body = json.loads(raw.decode("utf-8"))
                reply = owner.handle(parts.path, query, body)
                data = json.dumps(reply).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def url(self, platform: str, token: str) -> str:
        base = f"http://127.0.0.1:{self.port}"
        return {"dingtalk": f"{base}/robot/send?access_token={token}",
                "wecom": f"{base}/cgi-bin/webhook/send?key={token}",
                "feishu": f"{base}/open-apis/bot/v2/hook/{token}"}[platform]

    def handle(self, path: str, query: dict, body: dict) -> dict:
        if path == "/robot/send":
            platform, token = "dingtalk", query.get("access_token", "")
        elif path == "/cgi-bin/webhook/send":
            platform, token = "wecom", query.get("key", "")
        else:
            platform, token = "feishu", path.rsplit("/", 1)[-1]
        record = {"platform": platform, "token": token, "query": query, "body": body, "signature_ok": None}
        secret = self.secrets.get(token)
        if platform == "dingtalk" and secret is not None:
            record["signature_ok"] = query.get("sign") == expected_dingtalk_sign(secret, query.get("timestamp", ""))
        if platform == "feishu" and secret is not None:
            record["signature_ok"] = body.get("sign") == expected_feishu_sign(secret, body.get("timestamp", ""))
        with self.lock:
            self.requests.append(record)
            canned = self.script.get(token)
            if canned:
                return canned.pop(0)
        if record["signature_ok"] is False:
            return ({"errcode": 310000, "errmsg": "sign not match"} if platform == "dingtalk"
                    else {"code": 19021, "msg": "sign match fail or timestamp is not within one hour from current time"})
        if platform == "wecom" and token.startswith("bad"):
            return {"errcode": 93000, "errmsg": "invalid webhook url"}
        return {"code": 0, "msg": "success", "data": {}} if platform == "feishu" else {"errcode": 0, "errmsg": "ok"}

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


# SMTP server -------------------------------------------------------------------------------------


class SmtpServer:
    """Just enough SMTP (EHLO, AUTH PLAIN, MAIL, RCPT, DATA) to receive messages into ``messages``."""

    def __init__(self, username: str | None = None, password: str | None = None):
        self.messages: list = []
        self.envelopes: list = []
        owner = self

        class Handler(socketserver.StreamRequestHandler):
            def reply(self, line: str):
                self.wfile.write((line + "\r\n").encode())

            def handle(self):
                self.reply("220 fake ESMTP")
                sender, recipients, authed = None, [], username is None
                while True:
                    line = self.rfile.readline()
                    if not line:
                        return
                    command = line.decode().strip()
                    verb = command.split(" ", 1)[0].upper()
                    if verb == "EHLO":
                        self.wfile.write(b"250-fake\r\n250-AUTH PLAIN\r\n250 8BITMIME\r\n")
                    elif verb == "HELO":
                        self.reply("250 fake")
                    elif verb == "AUTH":
                        _mech, _sp, initial = command[5:].partition(" ")
                        decoded = base64.b64decode(initial).split(b"\0")
                        if decoded[1:] == [username.encode(), password.encode()]:
                            authed = True
                            self.reply("235 ok")
                        else:
                            self.reply("535 authentication failed")
                    elif verb == "MAIL":
                        if not authed:
                            self.reply("530 authentication required")
                            continue
                        sender, recipients = command[10:].strip("<>"), []
                        self.reply("250 ok")
                    elif verb == "RCPT":
                        recipients.append(command[8:].strip("<>"))
                        self.reply("250 ok")
                    elif verb == "DATA":
                        self.reply("354 go on")
                        data = b""
                        while True:
                            chunk = self.rfile.readline()
                            if chunk in (b".\r\n", b".\n", b""):
                                break
                            data += chunk[1:] if chunk.startswith(b"..") else chunk
                        owner.messages.append(message_from_bytes(data, policy=policy.default))
                        owner.envelopes.append((sender, recipients))
                        self.reply("250 queued")
                    elif verb == "QUIT":
                        self.reply("221 bye")
                        return
                    else:
                        self.reply("250 ok")

        class Server(socketserver.ThreadingTCPServer):
            daemon_threads = True
            allow_reuse_address = True

        self.server = Server(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()
