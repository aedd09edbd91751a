"""alerts.delivery.channels.email against a real SMTP server (aiosmtpd) requiring STARTTLS with an openssl-made CA."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path

import pytest

from alerts.delivery.channels.email import EmailChannel, message_id, thread_id
from alerts.delivery.notice import Channel, DeliveryError
from aqnet.localstack import free_port
from tests.alerts.delivery.test_messages import notice
from tests.fixtures.receivers import (  # noqa: F401 (fixtures)
    SmtpReceiver,
    smtp_pki,
    smtp_receiver,
    smtp_receiver_factory,
)

pytestmark = pytest.mark.integration
SENDER = "aqnet <alertas@aire.example.org>"


def channel(receiver: SmtpReceiver, **kwargs: object) -> EmailChannel:
    options: dict[str, object] = {"sender": SENDER, "to": ["oficiales@aire.example.org", "b@aire.example.org"],
                                  "ca_file": receiver.ca_file, "timeout_s": 5.0,
                                  "clock": lambda: datetime(2026, 11, 22, 19, 1, tzinfo=UTC)}
    options.update(kwargs)
    return EmailChannel("mail", receiver.host, receiver.port, **options)  # type: ignore[arg-type]


def _body(msg: EmailMessage, subtype: str) -> str:
    part = msg.get_body(preferencelist=(subtype,))
    assert part is not None and part.get_content_type() == f"text/{subtype}"
    return str(part.get_content())


async def test_sends_multipart_over_starttls(smtp_receiver: SmtpReceiver) -> None:  # noqa: F811
    ch = channel(smtp_receiver)
    assert isinstance(ch, Channel) and ch.type == "email"
    await ch.send(notice())
    [mail] = smtp_receiver.received
    assert mail.tls, "the message must travel over the STARTTLS-upgraded session"
    assert mail.mail_from == "alertas@aire.example.org"
    assert mail.rcpt_tos == ["oficiales@aire.example.org", "b@aire.example.org"]
    msg = mail.message
    assert msg.get_content_type() == "multipart/alternative"
    assert msg["Subject"] == "[aqnet] Activada: PM2.5 en nivel de prevención en KEN (Kennedy): 62.3 µg/m³ (24 h)"
    assert msg["Message-ID"] == "<aqnet-alert-12@aire.example.org>" == thread_id(12, SENDER)
    assert msg["In-Reply-To"] is None and msg["Auto-Submitted"] == "auto-generated"
    assert msg["Date"] == "Sun, 22 Nov 2026 19:01:00 +0000"
    assert "62.3 µg/m³" in _body(msg, "plain") and "92 % del periodo" in _body(msg, "plain")
    assert "https://aqnet.example/api/v1/alerts/ack/TOKEN" in _body(msg, "html")
    await ch.close()


async def test_transitions_thread_under_the_first_message(smtp_receiver: SmtpReceiver) -> None:  # noqa: F811
    ch = channel(smtp_receiver, language="en")
    await ch.send(notice())
    await ch.send(notice(transition="escalated", event_id=41, level="alert", from_level="prevention"))
    await ch.send(notice(transition="acknowledged", state="acknowledged", event_id=42, actor="Ana"))
    raised, escalated, acked = await smtp_receiver.wait_for(3)
    root = raised["Message-ID"]
    assert escalated["Message-ID"] == "<aqnet-alert-12-41@aire.example.org>"
    assert acked["Message-ID"] == message_id(notice(transition="acknowledged", event_id=42), SENDER)
    for reply in (escalated, acked):
        assert reply["In-Reply-To"] == root and reply["References"] == root
    assert escalated["Subject"].startswith("[aqnet] Escalated:") and escalated["Content-Language"] == "en"


async def test_authenticates_only_after_starttls(smtp_receiver_factory: Callable[..., SmtpReceiver]) -> None:  # noqa: F811
    receiver = smtp_receiver_factory(auth=("aqnet", "s3cret"))
    await channel(receiver, username="aqnet", password="s3cret").send(notice())
    [mail] = receiver.received
    assert mail.tls and mail.auth_user == "aqnet"
    with pytest.raises(DeliveryError, match="535") as err:
        await channel(receiver, username="aqnet", password="wrong").send(notice())
    assert err.value.permanent


async def test_server_without_starttls_is_refused_before_sending(
        smtp_receiver_factory: Callable[..., SmtpReceiver]) -> None:  # noqa: F811
    receiver = smtp_receiver_factory(starttls=False)
    with pytest.raises(DeliveryError, match=r"smtp 127\.0\.0\.1:\d+\): the server does not offer STARTTLS") as err:
        await channel(receiver, username="aqnet", password="pw").send(notice())
    assert err.value.permanent
    assert receiver.received == []
    # an explicit opt-out (a relay on localhost) sends in clear
    await channel(receiver, starttls=False).send(notice())
    assert [m.tls for m in receiver.received] == [False]


async def test_certificate_from_another_ca_is_refused(smtp_receiver: SmtpReceiver, smtp_pki: Path) -> None:  # noqa: F811
    with pytest.raises(DeliveryError, match="certificate not verified") as err:
        await channel(smtp_receiver, ca_file=str(smtp_pki / "other-ca.pem")).send(notice())
    assert err.value.permanent
    assert smtp_receiver.received == []


@pytest.mark.parametrize(("reply", "permanent"), [("451 4.3.0 try again later", False),
                                                   ("421 4.7.0 closing", False),
                                                   ("554 5.7.1 rejected", True),
                                                   ("552 5.3.4 too big", True)])
async def test_smtp_reply_classes(smtp_receiver: SmtpReceiver, reply: str, permanent: bool) -> None:  # noqa: F811
    smtp_receiver.fail_next(1, reply)
    with pytest.raises(DeliveryError, match=reply.split(maxsplit=1)[0]) as err:
        await channel(smtp_receiver).send(notice())
    assert err.value.permanent is permanent
    await channel(smtp_receiver).send(notice())
    assert len(smtp_receiver.received) == 1


async def test_connection_refused_is_transient(smtp_pki: Path) -> None:  # noqa: F811
    ch = EmailChannel("mail", "127.0.0.1", free_port(), sender=SENDER, to=["a@b.c"], ca_file=str(smtp_pki / "ca.pem"),
                      timeout_s=2.0)
    with pytest.raises(DeliveryError, match="ConnectionRefusedError.*will retry") as err:
        await ch.send(notice())
    assert not err.value.permanent


def test_bad_configuration_refused() -> None:
    with pytest.raises(ValueError, match="at least one recipient"):
        EmailChannel("m", "h", sender=SENDER, to=[])
    with pytest.raises(ValueError, match="without a password"):
        EmailChannel("m", "h", sender=SENDER, to=["a@b.c"], username="u")
