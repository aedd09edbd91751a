"""Stage 1 — devices that POST their readings over HTTP (airrohr's "send to own API"): decoding and identity of a
POST body, pure. The listener, its authentication and bounds are the shell's (aqnet.http); the pipeline
submission is ingest's (ingest.intake)."""

from sensors.http.airrohr import AIRROHR_PATH, Refusal, check_airrohr_post, post_origin

__all__ = ["AIRROHR_PATH", "Refusal", "check_airrohr_post", "post_origin"]
