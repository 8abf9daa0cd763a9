-- One row per session. The key is hex(SHA-256("ws-id" || id)), never the id;
-- data holds the encoded record (data and expiry, no id).
-- expires_at is unix milliseconds, compared against the application's clock.
CREATE TABLE sessions (
    id_hash    TEXT    NOT NULL PRIMARY KEY CHECK (length(id_hash) = 64),
    data       BLOB    NOT NULL,
    expires_at INTEGER NOT NULL
) WITHOUT ROWID;

-- Purge and the expired count scan by expiry.
CREATE INDEX sessions_expires_at ON sessions (expires_at);
