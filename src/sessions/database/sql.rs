//! The statements of each database kind. Every statement binds the same
//! values in the same order on every kind, so the store's code is shared and
//! only the text differs.
//!
//! Times travel as unix milliseconds from the application's clock (the same
//! clock the file and memory stores use). SQLite and MySQL store them as
//! integers; PostgreSQL stores a real `timestamptz` and converts at the edge.

/// One kind's statements. Comments list the bound values, in order.
#[derive(Debug)]
pub(super) struct Sql {
    /// id_hash, data, expires_ms
    pub insert: &'static str,
    /// id_hash, now_ms: frees a key whose session has expired, so `create`
    /// may take it over (resurrects nothing: that session is gone anyway).
    pub delete_expired_key: &'static str,
    /// data, expires_ms, id_hash, now_ms
    pub update: &'static str,
    /// expires_ms, id_hash, now_ms
    pub touch: &'static str,
    /// data, expires_ms, id_hash, old_data, now_ms: a compare-and-swap.
    pub swap_update: &'static str,
    /// id_hash, old_data, now_ms: a compare-and-delete.
    pub swap_delete: &'static str,
    /// id_hash, now_ms → (data, expires_ms)
    pub load: &'static str,
    /// id_hash
    pub delete: &'static str,
    /// → count
    pub count: &'static str,
    /// now_ms → count
    pub count_expired: &'static str,
    /// now_ms
    pub purge: &'static str,
    pub clear: &'static str,
    /// id_hash → (data, expires_ms), expired or not
    pub at_rest: &'static str,
    /// → count (0 or 1): does sqlx's bookkeeping table exist?
    pub migrations_table_exists: &'static str,
    /// → version of each successfully applied migration
    pub applied_migrations: &'static str,
    /// Column types, for the "at rest" panel.
    pub columns: &'static str,
}

#[cfg(feature = "sqlite")]
pub(super) const SQLITE: Sql = Sql {
    insert: "INSERT INTO sessions (id_hash, data, expires_at) VALUES (?, ?, ?)",
    delete_expired_key: "DELETE FROM sessions WHERE id_hash = ? AND expires_at <= ?",
    update: "UPDATE sessions SET data = ?, expires_at = ? WHERE id_hash = ? AND expires_at > ?",
    touch: "UPDATE sessions SET expires_at = ? WHERE id_hash = ? AND expires_at > ?",
    swap_update: "UPDATE sessions SET data = ?, expires_at = ? \
        WHERE id_hash = ? AND data = ? AND expires_at > ?",
    swap_delete: "DELETE FROM sessions WHERE id_hash = ? AND data = ? AND expires_at > ?",
    load: "SELECT data, expires_at FROM sessions WHERE id_hash = ? AND expires_at > ?",
    delete: "DELETE FROM sessions WHERE id_hash = ?",
    count: "SELECT COUNT(*) FROM sessions",
    count_expired: "SELECT COUNT(*) FROM sessions WHERE expires_at <= ?",
    purge: "DELETE FROM sessions WHERE expires_at <= ?",
    clear: "DELETE FROM sessions",
    at_rest: "SELECT data, expires_at FROM sessions WHERE id_hash = ?",
    migrations_table_exists: "SELECT COUNT(*) FROM sqlite_master \
        WHERE type = 'table' AND name = '_sqlx_migrations'",
    applied_migrations: "SELECT version FROM _sqlx_migrations WHERE success",
    columns: "data BLOB (JSON), expires_at INTEGER (unix ms)",
};

// PostgreSQL: `ts($n)` below is spelled out as
// `TIMESTAMPTZ 'epoch' + $n * INTERVAL '1 millisecond'`, exact for any
// realistic date; reading back goes through EXTRACT(EPOCH …), a numeric.
// Comparisons keep the column bare, so the expiry index is used.
#[cfg(feature = "postgres")]
pub(super) const POSTGRES: Sql = Sql {
    insert: "INSERT INTO sessions (id_hash, data, expires_at) \
        VALUES ($1, $2, TIMESTAMPTZ 'epoch' + $3 * INTERVAL '1 millisecond')",
    delete_expired_key: "DELETE FROM sessions WHERE id_hash = $1 \
        AND expires_at <= TIMESTAMPTZ 'epoch' + $2 * INTERVAL '1 millisecond'",
    update: "UPDATE sessions SET data = $1, \
        expires_at = TIMESTAMPTZ 'epoch' + $2 * INTERVAL '1 millisecond' \
        WHERE id_hash = $3 AND expires_at > TIMESTAMPTZ 'epoch' + $4 * INTERVAL '1 millisecond'",
    touch: "UPDATE sessions SET expires_at = TIMESTAMPTZ 'epoch' + $1 * INTERVAL '1 millisecond' \
        WHERE id_hash = $2 AND expires_at > TIMESTAMPTZ 'epoch' + $3 * INTERVAL '1 millisecond'",
    swap_update: "UPDATE sessions SET data = $1, \
        expires_at = TIMESTAMPTZ 'epoch' + $2 * INTERVAL '1 millisecond' \
        WHERE id_hash = $3 AND data = $4 \
        AND expires_at > TIMESTAMPTZ 'epoch' + $5 * INTERVAL '1 millisecond'",
    swap_delete: "DELETE FROM sessions WHERE id_hash = $1 AND data = $2 \
        AND expires_at > TIMESTAMPTZ 'epoch' + $3 * INTERVAL '1 millisecond'",
    load: "SELECT data, (EXTRACT(EPOCH FROM expires_at) * 1000)::BIGINT FROM sessions \
        WHERE id_hash = $1 AND expires_at > TIMESTAMPTZ 'epoch' + $2 * INTERVAL '1 millisecond'",
    delete: "DELETE FROM sessions WHERE id_hash = $1",
    count: "SELECT COUNT(*) FROM sessions",
    count_expired: "SELECT COUNT(*) FROM sessions \
        WHERE expires_at <= TIMESTAMPTZ 'epoch' + $1 * INTERVAL '1 millisecond'",
    purge: "DELETE FROM sessions \
        WHERE expires_at <= TIMESTAMPTZ 'epoch' + $1 * INTERVAL '1 millisecond'",
    clear: "DELETE FROM sessions",
    at_rest: "SELECT data, (EXTRACT(EPOCH FROM expires_at) * 1000)::BIGINT FROM sessions \
        WHERE id_hash = $1",
    migrations_table_exists: "SELECT COUNT(*) FROM information_schema.tables \
        WHERE table_schema = current_schema() AND table_name = '_sqlx_migrations'",
    applied_migrations: "SELECT version FROM _sqlx_migrations WHERE success",
    columns: "data BYTEA (JSON), expires_at TIMESTAMPTZ",
};

#[cfg(feature = "mysql")]
pub(super) const MYSQL: Sql = Sql {
    insert: "INSERT INTO sessions (id_hash, data, expires_at) VALUES (?, ?, ?)",
    delete_expired_key: "DELETE FROM sessions WHERE id_hash = ? AND expires_at <= ?",
    // sqlx always connects with CLIENT_FOUND_ROWS, so an UPDATE reports the
    // rows it *matched*: saving identical data still counts as written.
    update: "UPDATE sessions SET data = ?, expires_at = ? WHERE id_hash = ? AND expires_at > ?",
    touch: "UPDATE sessions SET expires_at = ? WHERE id_hash = ? AND expires_at > ?",
    swap_update: "UPDATE sessions SET data = ?, expires_at = ? \
        WHERE id_hash = ? AND data = ? AND expires_at > ?",
    swap_delete: "DELETE FROM sessions WHERE id_hash = ? AND data = ? AND expires_at > ?",
    load: "SELECT data, expires_at FROM sessions WHERE id_hash = ? AND expires_at > ?",
    delete: "DELETE FROM sessions WHERE id_hash = ?",
    count: "SELECT COUNT(*) FROM sessions",
    count_expired: "SELECT COUNT(*) FROM sessions WHERE expires_at <= ?",
    purge: "DELETE FROM sessions WHERE expires_at <= ?",
    clear: "DELETE FROM sessions",
    at_rest: "SELECT data, expires_at FROM sessions WHERE id_hash = ?",
    migrations_table_exists: "SELECT COUNT(*) FROM information_schema.tables \
        WHERE table_schema = DATABASE() AND table_name = '_sqlx_migrations'",
    applied_migrations: "SELECT version FROM _sqlx_migrations WHERE success",
    columns: "data MEDIUMBLOB (JSON), expires_at BIGINT (unix ms)",
};
