-- 0005_api_tokens: bearer tokens of the HTTP API, each with one role (technician, officer, reader).
-- Only the token's hash is stored: the secret is shown once, when `aqnet tokens create` issues it.
--
-- Why sha256 and not bcrypt/argon2: a token is 32 random bytes from the OS CSPRNG (256 bits of entropy), not a
-- password a person chose, so there is no dictionary to try and a brute force of 2^256 is out of reach whatever
-- the hash's cost; a slow KDF only defends low-entropy secrets. A fast, unsalted digest also lets every request
-- find its token with one indexed equality lookup (token_hash UNIQUE) instead of checking each row in turn.

CREATE TABLE api_tokens (
    id           bigserial PRIMARY KEY,
    name         text NOT NULL CHECK (name <> ''),
    role         text NOT NULL CHECK (role IN ('technician', 'officer', 'reader')),
    token_hash   text NOT NULL UNIQUE CHECK (token_hash ~ '^[0-9a-f]{64}$'),
    created_at   timestamptz NOT NULL DEFAULT now(),
    created_by   text NOT NULL,
    last_used_at timestamptz,
    revoked_at   timestamptz
);
COMMENT ON TABLE api_tokens IS
    'HTTP API bearer tokens: sha256 (hex) of the secret, never the secret; a revoked token is kept, not deleted, '
    'so the audit log''s actor names stay traceable.';
COMMENT ON COLUMN api_tokens.role IS
    'technician: registry and maintenance writes; officer: alert operations; reader: GET only. All roles read.';
COMMENT ON COLUMN api_tokens.last_used_at IS 'Last authenticated request, updated at most once a minute.';
