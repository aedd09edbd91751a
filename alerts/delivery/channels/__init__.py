"""Stage 4, delivery channels (I/O): each implements `alerts.delivery.notice.Channel` — `send(notice)` returns when
the receiver accepted the notice or raises `DeliveryError` (permanent or transient), within the channel's timeout.

Index (import the module you need; this index imports none, so that a daemon without e-mail never loads smtplib,
one without MQTT never loads paho): `alerts.delivery.channels.webhook.WebhookChannel` (signed JSON POST, httpx),
`alerts.delivery.channels.email.EmailChannel` (SMTP with STARTTLS), `alerts.delivery.channels.mqtt.MqttAlertChannel`
(retained state topics) and `alerts.delivery.channels.alertmanager.AlertmanagerChannel` (Alertmanager API v2).
"""

__all__: list[str] = []
