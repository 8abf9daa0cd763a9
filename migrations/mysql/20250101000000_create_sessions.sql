-- One row per session. The key is hex(SHA-256("ws-id" || id)), never the id;
-- data holds the encoded record (data and expiry, no id).
-- expires_at is unix milliseconds, compared against the application's clock.
CREATE TABLE sessions (
    -- ascii: a 64-hex key needs no more; the default (non-binary) collation
    -- keeps it a string for clients (ascii_bin would make it BINARY).
    id_hash    CHAR(64) CHARACTER SET ascii NOT NULL PRIMARY KEY,
    data       MEDIUMBLOB NOT NULL,
    expires_at BIGINT     NOT NULL,
    -- Purge and the expired count scan by expiry.
    INDEX sessions_expires_at (expires_at)
) ENGINE = InnoDB;
