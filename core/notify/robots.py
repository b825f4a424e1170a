"""Group robots: DingTalk custom robot, WeCom group robot, Feishu (Lark) custom bot.

Each platform signs differently:

* DingTalk: ``sign = base64(HMAC-SHA256(key=secret, msg=f"{timestamp}\\n{secret}"))`` with the
  timestamp in milliseconds; ``timestamp`` and the URL-encoded ``sign`` go in the query string.
* Feishu: ``sign = base64(HMAC-SHA256(key=f"{timestamp}\\n{secret}", msg=b""))`` with the
  timestamp in seconds; both go in the JSON body. The key and message roles are swapped.
* WeCom: the ``key`` in the URL is the credential; there is no signature.

User text (titles, bodies, names) is made inert before it goes into a platform's markdown: no
links, images, tags or mentions (``<at id=all>``, ``<@userid>``, ``<font>``) can be smuggled into a
group chat through a notification's title.

Replies are classified into ``ok``, a *rate limit* (retried later), a *configuration error*
(bad signature, keyword, key, IP: never retried, shown to the admin) or any other failure
(retried with backoff). Webhook URLs and secrets are credentials: they are never logged and
never appear in an error message.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import http.client
import json
import socket
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass

from flask import current_app
from flask_babel import gettext as _

DINGTALK_CONFIG_CODES = {310000, 300001, 300005, 400101, 400102, 400013}
DINGTALK_RATE_CODES = {130101, 410100}
WECOM_CONFIG_CODES = {93000, 93004, 93008, 40008, 40058}
WECOM_RATE_CODES = {45009, 45033}
FEISHU_CONFIG_CODES = {19001, 19002, 19021, 19022, 19024}
FEISHU_RATE_CODES = {9499, 11232, 11233}
WECOM_MAX_BYTES = 4096  # WeCom refuses markdown content longer than this (UTF-8 bytes, not characters)


class SendError(Exception):
    """Sending failed; ``kind`` is ``config`` (not retried), ``rate`` (retried later) or ``other``.

    The message is safe to store and show: it never contains the URL or the secret.
    """

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind
        self.message = message


@dataclass(frozen=True)
class Card:
    """What a robot posts: a title, a body (plain text; lines starting "- " show as a list) and an
    optional absolute link back. ``build_request`` makes title and body inert markdown."""

    title: str
    text: str
    url: str = ""
    link_label: str = ""


# Signatures ------------------------------------------------------------------------------------


def dingtalk_sign(secret: str, timestamp_ms: int) -> str:
    """DingTalk's signature (base64, not yet URL-encoded)."""
    digest = hmac.new(secret.encode("utf-8"), f"{timestamp_ms}\n{secret}".encode("utf-8"), hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def feishu_sign(secret: str, timestamp_s: int) -> str:
    """Feishu's signature: the HMAC *key* is ``timestamp\\nsecret`` and the message is empty."""
    digest = hmac.new(f"{timestamp_s}\n{secret}".encode("utf-8"), b"", hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


# URLs ------------------------------------------------------------------------------------------


def allowed_hosts() -> list[str]:
    return [host.lower() for host in current_app.config["YITI"]["ROBOT_HOSTS"]]


def check_url(platform: str, url: str) -> str | None:
    """Why ``url`` cannot be this platform's robot webhook (a translated message), or ``None``."""
    if any(ord(char) <= 0x20 or ord(char) >= 0x7F for char in url or ""):
        return _("Not a valid URL.")  # spaces, control or non-ASCII characters: no HTTP client would send it
    try:
        parts = urllib.parse.urlsplit(url or "")
        host = (parts.hostname or "").lower()
        parts.port  # noqa: B018  (raises ValueError for a malformed port)
    except ValueError:
        return _("Not a valid URL.")
    if parts.scheme not in ("https", "http") or not host or parts.username or parts.password:
        return _("Not a valid URL.")
    if host not in allowed_hosts():
        return _("Robots may only post to these hosts: %(hosts)s.", hosts=", ".join(allowed_hosts()))
    if parts.scheme == "http" and host not in ("127.0.0.1", "localhost", "::1"):
        return _("Use an https:// address.")
    query = urllib.parse.parse_qs(parts.query)
    if platform == "dingtalk" and not query.get("access_token"):
        return _("A DingTalk robot address contains access_token=….")
    if platform == "wecom" and not query.get("key"):
        return _("A WeCom robot address contains key=….")
    if platform == "feishu" and "/bot/v2/hook/" not in parts.path:
        return _("A Feishu robot address looks like https://open.feishu.cn/open-apis/bot/v2/hook/….")
    return None


def mask_url(url: str) -> str:
    """The address with its credentials hidden, for pages: ``https://oapi.dingtalk.com/robot/send?…``."""
    parts = urllib.parse.urlsplit(url or "")
    path = parts.path
    if "/hook/" in path:
        path = path.rsplit("/", 1)[0] + "/…"
    return f"{parts.scheme}://{parts.netloc}{path}" + ("?…" if parts.query else "")


# Messages --------------------------------------------------------------------------------------


#: Characters that turn text into markup on some platform: links and images (``[..](..)``) and
#: tags (WeCom ``<font>``, ``<@userid>``; Feishu ``<at id=all>``). Shown as their full-width twins.
_INERT = str.maketrans({"<": "\uff1c", ">": "\uff1e", "[": "\uff3b", "]": "\uff3d"})


def inert(text: str) -> str:
    """``text`` as it reads, but unable to link, embed, tag or mention anyone in a robot's markdown."""
    return (text or "").translate(_INERT)


def _markdown_url(url: str) -> str:
    """``url`` with the characters that could end a markdown link (or start another) percent-encoded."""
    return urllib.parse.quote(url, safe=":/?#&=%+,;@!$'*~-._")


def _clip(text: str, max_bytes: int) -> str:
    """``text`` cut to at most ``max_bytes`` of UTF-8 (with "…" when cut), never inside a character."""
    data = text.encode("utf-8")
    if len(data) <= max_bytes:
        return text
    return data[:max(0, max_bytes - 3)].decode("utf-8", "ignore") + "…"


def _with_keyword(text: str, keyword: str | None) -> str:
    return text if not keyword or keyword in text else f"{text}\n\n{keyword}"


def build_request(robot, card: Card, now_ms: int) -> tuple[str, dict]:
    """``(url, json body)`` for ``robot`` posting ``card`` at ``now_ms`` (milliseconds since the epoch)."""
    title = " ".join((card.title or "").split())  # one line: a title cannot start a heading or a paragraph
    card = Card(title=inert(title), text=inert(card.text), url=_markdown_url(card.url) if card.url else "",
                link_label=inert(card.link_label))
    link = f"\n\n[{card.link_label}]({card.url})" if card.url else ""
    if robot.platform == "dingtalk":
        url = robot.webhook_url
        if robot.secret:
            separator = "&" if "?" in url else "?"
            sign = urllib.parse.quote_plus(dingtalk_sign(robot.secret, now_ms))
            url = f"{url}{separator}timestamp={now_ms}&sign={sign}"
        text = _with_keyword(f"#### {card.title}\n\n{card.text}{link}", robot.keyword)
        return url, {"msgtype": "markdown", "markdown": {"title": title, "text": text}}
    if robot.platform == "wecom":
        head, keyword = f"**{card.title}**\n", f"\n\n{robot.keyword}" if robot.keyword else ""
        room = WECOM_MAX_BYTES - len(f"{head}{link}{keyword}".encode("utf-8"))
        text = _with_keyword(f"{head}{_clip(card.text, room)}{link}", robot.keyword)  # the link and keyword survive
        return robot.webhook_url, {"msgtype": "markdown", "markdown": {"content": text}}
    if robot.platform == "feishu":
        elements = [{"tag": "markdown", "content": _with_keyword(card.text, robot.keyword)}]
        if card.url:
            elements.append({"tag": "action", "actions": [{
                "tag": "button", "type": "primary", "url": card.url,
                "text": {"tag": "plain_text", "content": card.link_label}}]})
        body = {"msg_type": "interactive", "card": {
            "config": {"wide_screen_mode": True},
            "header": {"title": {"tag": "plain_text", "content": title}},
            "elements": elements}}
        if robot.secret:
            timestamp = now_ms // 1000
            body = {"timestamp": str(timestamp), "sign": feishu_sign(robot.secret, timestamp), **body}
        return robot.webhook_url, body
    raise ValueError(f"unknown robot platform {robot.platform!r}")


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A redirect could lead outside the allowed hosts: treat it as a failure instead."""

    def redirect_request(self, *args, **kwargs):
        return None


_OPENER = urllib.request.build_opener(_NoRedirect)


def post(robot, card: Card, now_ms: int) -> None:
    """Post ``card`` through ``robot``; return on success, raise ``SendError`` otherwise."""
    problem = check_url(robot.platform, robot.webhook_url)
    if problem:
        raise SendError("config", problem)
    url, body = build_request(robot, card, now_ms)
    data = json.dumps(body, ensure_ascii=False).encode("utf-8")
    request = urllib.request.Request(url, data=data, method="POST",
                                     headers={"Content-Type": "application/json; charset=utf-8"})
    timeout = current_app.config["YITI"]["NOTIFY_TIMEOUT_SECONDS"]
    try:
        with _OPENER.open(request, timeout=timeout) as response:
            status, raw = response.status, response.read(65536)
    except urllib.error.HTTPError as exc:
        status, raw = exc.code, exc.read(65536) if exc.fp else b""
    except (urllib.error.URLError, socket.timeout, TimeoutError, ConnectionError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise SendError("other", _("Could not reach the robot's server: %(reason)s",
                                   reason=reason.__class__.__name__ if not isinstance(reason, str) else reason)) from None
    except http.client.InvalidURL:  # its message holds the URL, credentials and all: never pass it on
        raise SendError("config", _("Not a valid URL.")) from None
    except (http.client.HTTPException, ValueError) as exc:  # a garbled answer; the messages may quote the URL
        raise SendError("other", _("Could not reach the robot's server: %(reason)s",
                                   reason=exc.__class__.__name__)) from None
    classify(robot.platform, status, raw)


def classify(platform: str, status: int, raw: bytes) -> None:
    """Raise ``SendError`` unless the reply says the message was accepted."""
    if status == 429:
        raise SendError("rate", _("The platform says messages are sent too fast (HTTP 429)."))
    if 300 <= status < 400:  # never followed (it could lead off the allowed hosts), and retrying will not help
        raise SendError("config", _("The address answers with a redirect (HTTP %(status)s), which robots do not "
                                    "follow. Check the webhook address.", status=status))
    try:
        reply = json.loads(raw.decode("utf-8") or "{}")
    except (UnicodeDecodeError, ValueError):
        reply = None
    if not isinstance(reply, dict):
        kind = "config" if status in (400, 401, 403, 404) else "other"
        raise SendError(kind, _("Unexpected reply from the platform (HTTP %(status)s).", status=status))
    if platform == "feishu":
        code = reply.get("code", reply.get("StatusCode"))
        message = reply.get("msg", reply.get("StatusMessage", ""))
        config_codes, rate_codes = FEISHU_CONFIG_CODES, FEISHU_RATE_CODES
    else:
        code, message = reply.get("errcode"), reply.get("errmsg", "")
        config_codes, rate_codes = ((DINGTALK_CONFIG_CODES, DINGTALK_RATE_CODES) if platform == "dingtalk"
                                    else (WECOM_CONFIG_CODES, WECOM_RATE_CODES))
    if status < 300 and code == 0:
        return
    detail = _("Platform error %(code)s: %(message)s", code=code, message=str(message)[:300])
    if code in rate_codes:
        raise SendError("rate", detail)
    if code in config_codes or status in (400, 401, 403, 404):
        raise SendError("config", detail)
    raise SendError("other", detail)
