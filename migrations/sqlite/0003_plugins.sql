-- Plugins uploaded or changed through the admin API (mirrors migrations/mysql/0003_plugins.sql).

CREATE TABLE chat_plugin (
    name       TEXT    NOT NULL PRIMARY KEY,
    manifest   TEXT    NOT NULL,
    wasm       BLOB    NOT NULL,
    updated_at INTEGER NOT NULL
);
