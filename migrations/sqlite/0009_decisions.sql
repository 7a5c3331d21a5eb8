-- Plugin decisions that changed a message (see migrations/mysql/0009_decisions.sql).
CREATE TABLE chat_decision (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    thread_id      TEXT    NOT NULL,
    message_id     INTEGER NULL,
    user_id        TEXT    NOT NULL,
    plugin         TEXT    NOT NULL,
    plugin_version TEXT    NOT NULL,
    hook           TEXT    NOT NULL,
    verdict        TEXT    NOT NULL,
    reason         TEXT    NULL,
    input_sha256   TEXT    NOT NULL,
    created_at     INTEGER NOT NULL
);
CREATE INDEX idx_decision_thread ON chat_decision (thread_id, id);
