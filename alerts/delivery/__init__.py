"""Delivery channels (I/O): each implements `alerts.notice.Channel` — `send(notice)` returns when the receiver
accepted the notice or raises `DeliveryError` (permanent or transient), within the channel's timeout.

Index: `alerts.delivery.webhook.WebhookChannel` (signed JSON POST), `alerts.delivery.email.EmailChannel` (SMTP
with STARTTLS), `alerts.delivery.mqtt` and `alerts.delivery.alertmanager` (see those modules).
"""
