-- Core chat tables, mirroring migrations/mysql. Times are milliseconds since the Unix epoch (UTC).

CREATE TABLE chat_user (
    id           TEXT    NOT NULL PRIMARY KEY,
    display_name TEXT    NOT NULL,
    avatar_url   TEXT    NULL,
    role         TEXT    NOT NULL,
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL
);

CREATE TABLE chat_thread (
    id         TEXT    NOT NULL PRIMARY KEY,
    title      TEXT    NOT NULL,
    created_at INTEGER NOT NULL
);

CREATE TABLE chat_participant (
    thread_id            TEXT    NOT NULL REFERENCES chat_thread (id),
    user_id              TEXT    NOT NULL REFERENCES chat_user (id),
    last_read_message_id INTEGER NULL,
    joined_at            INTEGER NOT NULL,
    PRIMARY KEY (thread_id, user_id)
);
CREATE INDEX idx_participant_user ON chat_participant (user_id);

CREATE TABLE chat_message (
    id                INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
    thread_id         TEXT    NOT NULL REFERENCES chat_thread (id),
    sender_id         TEXT    NOT NULL,
    body              TEXT    NOT NULL,
    client_message_id TEXT    NOT NULL,
    created_at        INTEGER NOT NULL,
    UNIQUE (sender_id, client_message_id)
);
CREATE INDEX idx_message_thread ON chat_message (thread_id, id);

CREATE TABLE chat_message_receipt (
    message_id   INTEGER NOT NULL REFERENCES chat_message (id),
    user_id      TEXT    NOT NULL,
    delivered_at INTEGER NULL,
    read_at      INTEGER NULL,
    PRIMARY KEY (message_id, user_id)
);
CREATE INDEX idx_receipt_unread ON chat_message_receipt (user_id, read_at, message_id);
