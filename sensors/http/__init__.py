"""Stage 1 (sensors) — devices that POST their readings over HTTP: decoding and identity of a body. Pure.

Airrohr's "send to own API". The listener, its authentication and bounds are the shell's (aqnet.http); the pipeline
submission is ingest's (ingest.intake)."""

from sensors.http.airrohr import AIRROHR_PATH, Refusal, check_airrohr_post, post_origin

__all__ = ["AIRROHR_PATH", "Refusal", "check_airrohr_post", "post_origin"]
