-- Web console sessions (sqlite). Keep in step with ../postgres/0008_console_sessions.sql.
--
-- A person signs in to the console with an API token and gets a session cookie; the session
-- is stored here so that every `runpermit serve` sharing the database knows it. Only the
-- SHA-256 of the cookie secret is kept. A session is in force while it is not ended (sign-out),
-- not expired, and its token is neither revoked nor expired.
CREATE TABLE console_sessions (
    id_hash    TEXT    NOT NULL PRIMARY KEY,
    token_id   TEXT    NOT NULL REFERENCES tokens (id),
    csrf       TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    ended_at   INTEGER
);
CREATE INDEX console_sessions_token_idx ON console_sessions (token_id);
