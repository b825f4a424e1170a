"""E-mail through the admin's SMTP server: multipart/alternative (text + HTML) in the reader's language."""
from __future__ import annotations

import smtplib
import socket
import ssl
from email.message import EmailMessage
from email.utils import formataddr, make_msgid

from flask import current_app
from flask_babel import force_locale
from flask_babel import gettext as _

from core.extensions import db
from core.notify.models import MailSettings
from core.notify.robots import SendError

SECURITY = ("none", "starttls", "ssl")


def settings() -> MailSettings:
    """The SMTP settings row (an empty, disabled one until an admin saves it)."""
    row = db.session.get(MailSettings, 1)
    if row is None:
        row = MailSettings(id=1, enabled=False, host="", port=587, security="starttls", sender="")
    return row


def base_url(row: MailSettings | None = None) -> str:
    """The portal's address for links in messages: the admin's setting, else ``BASE_URL``; no slash at the end."""
    row = row or db.session.get(MailSettings, 1)
    value = (row.base_url if row is not None and row.base_url else None) or current_app.config["YITI"]["BASE_URL"] or ""
    return value.rstrip("/")


def absolute(url: str, base: str) -> str:
    """``url`` made absolute with ``base`` (empty when there is no base or no page)."""
    if not url or not base:
        return url if url.startswith(("http://", "https://")) else ""
    return base + url if url.startswith("/") else url


def language_of(user) -> str:
    languages = current_app.config["YITI"]["LANGUAGES"]
    return user.language if user.language in languages else current_app.config["YITI"]["DEFAULT_LANGUAGE"]


def _one_line(text: str | None) -> str:
    """``text`` on one line: a header value with a line break is refused (and would be an injection)."""
    return " ".join((text or "").split())


def compose(row: MailSettings, user, notification, kind_label_of, message_id_key: str) -> EmailMessage:
    """The e-mail for ``notification`` to ``user``, rendered in ``user``'s language."""
    base = base_url(row)
    link = absolute(notification.url, base)
    with force_locale(language_of(user)):
        context = {"user": user, "notification": notification, "link": link, "kind": kind_label_of(notification.kind),
                   "settings_link": absolute("/account/notifications", base)}
        # Straight from the Jinja environment: a worker has no request, so no page context processors.
        text = current_app.jinja_env.get_template("notify/email.txt").render(**context)
        html = current_app.jinja_env.get_template("notify/email.html").render(**context)
        subject = f"[{_('Yiti OA')}] {_one_line(notification.title)}"
    message = EmailMessage()
    message["Subject"] = subject
    message["From"] = row.sender
    message["To"] = formataddr((_one_line(user.display_name), user.email))
    domain = row.sender.rpartition("@")[2] or "localhost"
    message["Message-ID"] = make_msgid(idstring=message_id_key, domain=domain)
    message.set_content(text)
    message.add_alternative(html, subtype="html")
    return message


def send(row: MailSettings, message: EmailMessage) -> None:
    """Hand ``message`` to the SMTP server; raise ``SendError`` (``config`` for login/TLS/refusals)."""
    if not row.enabled or not row.host or not row.sender:
        raise SendError("config", _("E-mail is not set up."))
    timeout = current_app.config["YITI"]["NOTIFY_TIMEOUT_SECONDS"]
    context = ssl.create_default_context()
    try:
        if row.security == "ssl":
            client = smtplib.SMTP_SSL(row.host, row.port, timeout=timeout, context=context)
        else:
            client = smtplib.SMTP(row.host, row.port, timeout=timeout)
        with client:
            if row.security == "starttls":
                client.starttls(context=context)
            if row.username:
                client.login(row.username, row.password or "")
            client.send_message(message)
    except smtplib.SMTPAuthenticationError:
        raise SendError("config", _("The SMTP server refused the user name or password.")) from None
    except smtplib.SMTPNotSupportedError:
        raise SendError("config", _("The SMTP server does not support the chosen security or login.")) from None
    except smtplib.SMTPRecipientsRefused:
        raise SendError("config", _("The SMTP server refused the recipient's address.")) from None
    except smtplib.SMTPSenderRefused:
        raise SendError("config", _("The SMTP server refused the sender address.")) from None
    except ssl.SSLError as exc:
        raise SendError("config", _("TLS failed: %(reason)s", reason=exc.reason or exc.__class__.__name__)) from None
    except smtplib.SMTPResponseException as exc:
        kind = "other" if 400 <= exc.smtp_code < 500 else "config"
        raise SendError(kind, _("SMTP error %(code)s.", code=exc.smtp_code)) from None
    except (smtplib.SMTPException, socket.timeout, TimeoutError, OSError) as exc:
        raise SendError("other", _("Could not reach the SMTP server: %(reason)s", reason=exc.__class__.__name__)) from None
