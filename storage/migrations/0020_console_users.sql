-- 0020_console_users: people who sign in to the web console (issue 23), each with one role, and their sessions.
--
-- Roles: technician, officer and reader are the API tokens' roles (0005_api_tokens) and mean the same thing
-- (aqnet.http.roles holds the one table of what each may do); admin manages the console's users.
-- Passwords are stored as argon2id hashes (argon2-cffi's PHC string, `$argon2id$v=19$m=…,t=…,p=…$salt$hash`),
-- never in clear: a person's password has little entropy, so a slow, memory-hard hash is what protects it.
-- Lockout: `failed_logins` counts consecutive wrong passwords; at the configured limit `locked_until` is set
-- and no password is accepted before then (`aqnet users reset-password` clears it).
-- A session is a random 256-bit secret held in an HTTP-only cookie; only its sha256 is stored (as for API
-- tokens, a fast hash is right for a random secret), with the synchronizer CSRF token of its forms.

CREATE TABLE console_users (
    id                  bigserial PRIMARY KEY,
    username            text NOT NULL UNIQUE CHECK (username ~ '^[a-z0-9][a-z0-9._@-]{0,63}$'),
    role                text NOT NULL CHECK (role IN ('technician', 'officer', 'reader', 'admin')),
    password_hash       text NOT NULL CHECK (password_hash LIKE '$argon2id$%'),
    created_at          timestamptz NOT NULL DEFAULT now(),
    created_by          text NOT NULL,
    password_changed_at timestamptz NOT NULL DEFAULT now(),
    disabled_at         timestamptz,
    failed_logins       integer NOT NULL DEFAULT 0 CHECK (failed_logins >= 0),
    locked_until        timestamptz,
    last_login_at       timestamptz
);
COMMENT ON TABLE console_users IS
    'Web console accounts (issue 23): one role each; argon2id password hashes; a disabled user is kept, not '
    'deleted, so the audit trail''s actor names stay traceable.';
COMMENT ON COLUMN console_users.failed_logins IS 'Consecutive wrong passwords since the last successful sign-in.';
COMMENT ON COLUMN console_users.locked_until IS 'No sign-in before this time (set at the lockout limit).';

CREATE TABLE console_sessions (
    id_hash      text PRIMARY KEY CHECK (id_hash ~ '^[0-9a-f]{64}$'),
    user_id      bigint NOT NULL REFERENCES console_users (id) ON DELETE CASCADE,
    csrf_token   text NOT NULL CHECK (length(csrf_token) >= 32),
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL,
    last_seen_at timestamptz NOT NULL DEFAULT now(),
    CHECK (created_at < expires_at)
);
CREATE INDEX console_sessions_user_idx ON console_sessions (user_id);
COMMENT ON TABLE console_sessions IS
    'Signed-in console sessions: sha256 (hex) of the cookie''s secret, never the secret; deleted on sign-out, '
    'when the user is disabled or their password is reset, and once expired.';

-- Grafana's read-only role reads every table by default privilege (0001); never the password hashes or the
-- sessions (as api_tokens in 0008).
REVOKE SELECT ON console_users, console_sessions FROM aqnet_readonly;

-- Decisions taken in the console are recorded as such (issue 21's validation by people, issue 23's console).
ALTER TABLE validation_decisions DROP CONSTRAINT validation_decisions_via_check;
ALTER TABLE validation_decisions ADD CONSTRAINT validation_decisions_via_check
    CHECK (via IN ('cli', 'api', 'console'));
COMMENT ON COLUMN validation_decisions.via IS 'cli (aqnet validation ...), api (HTTP) or console (the web console).';
