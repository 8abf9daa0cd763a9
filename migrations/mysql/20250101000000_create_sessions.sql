-- One row per session. The key is hex(SHA-256("ws-id" || id)), never the id;
-- data holds the encoded record (data and expiry, no id).
-- expires_at is unix milliseconds, compared against the application's clock.
CREATE TABLE sessions (
    id_hash    CHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL PRIMARY KEY,
    data       MEDIUMBLOB NOT NULL,
    expires_at BIGINT     NOT NULL,
    -- Purge and the expired count scan by expiry.
    INDEX sessions_expires_at (expires_at)
) ENGINE = InnoDB;
