-- 0011_http_device_credentials: per-device HTTP basic credentials of the sensors that POST (airrohr "send to own
-- API"), issued by `aqnet sensors credentials ID --http`. The username is the sensor id; the password is shown
-- once and only its scrypt hash is kept (storage/device_credentials.py: `scrypt$n$r$p$salt$hash`, base64).
-- One row per sensor: issuing again replaces the hash (the old password stops working), revoking deletes it.

CREATE TABLE http_device_credentials (
    sensor_id   text PRIMARY KEY REFERENCES sensors (id),
    secret_hash text NOT NULL CHECK (secret_hash LIKE 'scrypt$%'),
    created_at  timestamptz NOT NULL DEFAULT now(),
    created_by  text NOT NULL
);
COMMENT ON TABLE http_device_credentials IS
    'HTTP basic credentials of push sensors: scrypt hash of the password, never the password. The daemon accepts '
    'a POST only from the sensor its credentials name, and only for that sensor''s own readings.';
