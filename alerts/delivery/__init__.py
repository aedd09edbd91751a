"""Stage 4, delivery — who hears about an alert transition and what it says to them: the outbox dispatcher (I/O,
asyncio, psycopg 3 async through `storage.alert_outbox`), and the pure parts it uses: the `Notice` a channel is
given, each channel's filter (`routing`), the rendered messages and JSON payload (`messages`), and the HMAC
signatures of webhook bodies and acknowledgement links (`signing`). The channels are `alerts.delivery.channels`.

Index: `alerts.delivery.dispatch` (Dispatcher), `alerts.delivery.notice` (Notice, Channel, DeliveryError),
`alerts.delivery.routing`, `alerts.delivery.messages`, `alerts.delivery.signing`.
"""

from __future__ import annotations

from alerts.delivery.dispatch import ChannelRun, Dispatcher, DispatchRun
from alerts.delivery.notice import Channel, DeliveryError, Notice
from alerts.delivery.signing import MAX_ACK_LINK_TTL_H, verify_ack_token

__all__ = ["MAX_ACK_LINK_TTL_H", "Channel", "ChannelRun", "DeliveryError", "DispatchRun", "Dispatcher", "Notice",
           "verify_ack_token"]
