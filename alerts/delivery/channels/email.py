"""E-mail delivery (I/O): one multipart (text + HTML) message per alert transition over SMTP, with STARTTLS.
Implements `alerts.delivery.notice.Channel`; smtplib runs in a worker thread (`asyncio.to_thread`).

Contract:
- With `starttls` (the default) the session is upgraded before anything else: a server that does not offer
  STARTTLS gets neither AUTH nor the message (permanent DeliveryError naming the server). The server's
  certificate is verified against `ca_file` (or the system's CAs) and its host name.
- Message-ID is deterministic per transition: the alert's first transition (raised) is
  `<aqnet-alert-<id>@<sender domain>>`, later ones `<aqnet-alert-<id>-<event_id>@<sender domain>>` with
  `In-Reply-To` and `References` pointing at the first, so mail clients thread an alert's transitions (and a
  retried delivery keeps its Message-ID).
- SMTP 4xx replies, timeouts, disconnections and connection errors: transient. 5xx replies (refused sender or
  recipients, authentication), a missing STARTTLS or a certificate that does not verify: permanent. Each socket
  operation gives up after the time left of `timeout_s`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import smtplib
import ssl
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, tzinfo
from email.message import EmailMessage
from email.utils import format_datetime, parseaddr

from alerts.delivery.messages import DEFAULT_TZ, Language, render
from alerts.delivery.notice import DeliveryError, Notice

__all__ = ["EmailChannel", "message_id", "thread_id"]

log = logging.getLogger(__name__)


def _domain(sender: str) -> str:
    address = parseaddr(sender)[1]
    return address.rpartition("@")[2] or "aqnet.localdomain"


def thread_id(alert_id: int, sender: str) -> str:
    """The Message-ID of an alert's first transition, which later ones reply to: `<aqnet-alert-<id>@domain>`."""
    return f"<aqnet-alert-{alert_id}@{_domain(sender)}>"


def message_id(notice: Notice, sender: str) -> str:
    """The Message-ID of one transition (the thread id for 'raised')."""
    if notice.transition == "raised":
        return thread_id(notice.alert_id, sender)
    return f"<aqnet-alert-{notice.alert_id}-{notice.event_id}@{_domain(sender)}>"


class EmailChannel:
    """Sends each notice as an e-mail to `to` through the SMTP server `host:port`.

    Args:
        name: the configured channel name (alert_outbox.channel).
        host, port: the SMTP server (submission port 587 with STARTTLS by default).
        sender: the From address; its domain names the Message-IDs.
        to: the recipients.
        starttls: require STARTTLS before AUTH and DATA.
        ca_file: CA bundle that signs the server's certificate (None: the system's).
        username, password: SMTP AUTH (only over TLS when starttls).
        timeout_s: the whole SMTP session gives up after this.
        language, tz: message language and the network's time zone.
        clock: the Date header's time (injected for tests).
    """

    type = "email"
    carries_links = True  #: reaches officers: notices carry the signed acknowledgement link

    def __init__(self, name: str, host: str, port: int = 587, *, sender: str, to: Sequence[str],
                 starttls: bool = True, ca_file: str | None = None, username: str | None = None,
                 password: str | None = None, timeout_s: float = 20.0, language: Language = "es",
                 tz: str | tzinfo = DEFAULT_TZ, clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        if not to:
            raise ValueError(f"e-mail channel {name}: expected at least one recipient")
        if username is not None and password is None:
            raise ValueError(f"e-mail channel {name}: username {username!r} given without a password")
        self.name = name
        self.host, self.port = host, port
        self.sender, self.to = sender, list(to)
        self.starttls, self.ca_file = starttls, ca_file
        self.username, self._password = username, password
        self.timeout_s = timeout_s
        self.language: Language = language
        self.tz = tz
        self._clock = clock
        self._where = f"e-mail {name} (smtp {host}:{port})"

    def build(self, notice: Notice) -> EmailMessage:
        """The e-mail of a notice: headers, text and HTML alternatives."""
        rendered = render(notice, self.language, tz=self.tz)
        msg = EmailMessage()
        msg["Subject"] = rendered.subject
        msg["From"] = self.sender
        msg["To"] = ", ".join(self.to)
        msg["Date"] = format_datetime(self._clock())
        msg["Message-ID"] = message_id(notice, self.sender)
        if notice.transition != "raised":
            root = thread_id(notice.alert_id, self.sender)
            msg["In-Reply-To"] = root
            msg["References"] = root
        msg["Auto-Submitted"] = "auto-generated"  # RFC 3834: no auto-replies
        msg["X-Aqnet-Alert"] = str(notice.alert_id)
        msg["X-Aqnet-Event"] = notice.transition
        msg.set_content(rendered.text)
        if rendered.html:
            msg.add_alternative(rendered.html, subtype="html")
        msg["Content-Language"] = self.language  # after the content: set_content replaces Content-* headers
        return msg

    async def send(self, notice: Notice) -> None:
        """Deliver the notice's e-mail; DeliveryError (transient or permanent) if the server did not accept it."""
        await asyncio.to_thread(self._send_blocking, self.build(notice))

    def _send_blocking(self, msg: EmailMessage) -> None:
        deadline = time.monotonic() + self.timeout_s
        try:
            smtp = smtplib.SMTP(self.host, self.port, timeout=self.timeout_s)
            try:
                self._session(smtp, msg, deadline)
            finally:
                smtp.close()
        except DeliveryError:
            raise
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [code for code, _ in exc.recipients.values()]
            detail = "; ".join(f"{rcpt}: {code} {text.decode(errors='replace')}"
                               for rcpt, (code, text) in exc.recipients.items())
            raise self._by_code(min(codes), f"recipients refused ({detail})") from None
        except smtplib.SMTPResponseException as exc:
            text = exc.smtp_error.decode(errors="replace") if isinstance(exc.smtp_error, bytes) else exc.smtp_error
            raise self._by_code(exc.smtp_code, f"{exc.smtp_code} {text}") from None
        except ssl.SSLCertVerificationError as exc:
            raise DeliveryError(f"{self._where}: server certificate not verified (ca_file {self.ca_file or 'system'}):"
                                f" {exc.verify_message}; not retried", permanent=True) from None
        except (TimeoutError, smtplib.SMTPServerDisconnected, smtplib.SMTPException, OSError) as exc:
            raise DeliveryError(f"{self._where}: {type(exc).__name__}: {exc}; will retry") from None

    def _session(self, smtp: smtplib.SMTP, msg: EmailMessage, deadline: float) -> None:
        def step() -> None:  # each socket operation gets only the time left
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"SMTP session took longer than {self.timeout_s:g} s")
            if smtp.sock is not None:
                smtp.sock.settimeout(left)

        step()
        smtp.ehlo()
        if self.starttls:
            if not smtp.has_extn("starttls"):
                raise DeliveryError(f"{self._where}: the server does not offer STARTTLS; refusing to authenticate "
                                    "or send in clear (not retried: fix the server or the channel's starttls)",
                                    permanent=True)
            step()
            smtp.starttls(context=ssl.create_default_context(cafile=self.ca_file))
            step()
            smtp.ehlo()
        if self.username is not None:
            step()
            smtp.login(self.username, self._password or "")
        step()
        refused = smtp.send_message(msg, from_addr=self.sender, to_addrs=self.to)
        if refused:  # others accepted it: retrying would send them a second copy, so it counts as delivered
            log.warning("%s: %s accepted for some recipients but refused for %s", self._where, msg["Message-ID"],
                        ", ".join(f"{rcpt} ({code})" for rcpt, (code, _) in refused.items()))
        with contextlib.suppress(smtplib.SMTPException, OSError):  # the message is accepted: QUIT may fail
            smtp.quit()

    def _by_code(self, code: int, what: str) -> DeliveryError:
        if 400 <= code < 500:
            return DeliveryError(f"{self._where}: {what}; will retry")
        return DeliveryError(f"{self._where}: {what}; not retried", permanent=True)

    async def close(self) -> None:
        """Nothing held between sends (one SMTP session per message)."""
