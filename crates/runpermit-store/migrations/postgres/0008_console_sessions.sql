-- Web console sessions (postgres). Keep in step with ../sqlite/0008_console_sessions.sql.
--
-- A person signs in to the console with an API token and gets a session cookie; the session
-- is stored here so that every `runpermit serve` sharing the database knows it. Only the
-- SHA-256 of the cookie secret is kept. A session is in force while it is not ended (sign-out),
-- not expired, and its token is neither revoked nor expired.
CREATE TABLE console_sessions (
    id_hash    TEXT    NOT NULL PRIMARY KEY,
    token_id   TEXT    NOT NULL REFERENCES tokens (id),
    csrf       TEXT    NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    ended_at   BIGINT
);
CREATE INDEX console_sessions_token_idx ON console_sessions (token_id);
