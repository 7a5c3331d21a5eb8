-- Append-only audit trail, mirroring migrations/mysql/0002_audit.sql.

CREATE TABLE chat_audit_entry (
    id         INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
    thread_id  TEXT    NOT NULL,
    seq        INTEGER NOT NULL,
    plugin     TEXT    NOT NULL,
    kind       TEXT    NOT NULL,
    actor_id   TEXT    NOT NULL,
    detail     TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    prev_mac   TEXT    NOT NULL,
    mac        TEXT    NOT NULL,
    UNIQUE (thread_id, seq)
);

CREATE TABLE chat_audit_head (
    thread_id TEXT    NOT NULL PRIMARY KEY,
    seq       INTEGER NOT NULL,
    head_mac  TEXT    NOT NULL
);
