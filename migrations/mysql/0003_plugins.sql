-- Plugins uploaded or changed through the admin API, so every instance (and the
-- next start) runs the same versions. Plugins of CHAT_PLUGIN_DIR are not stored
-- unless an admin changes them.

CREATE TABLE chat_plugin (
    name       VARCHAR(64) NOT NULL,
    manifest   TEXT        NOT NULL,
    wasm       LONGBLOB    NOT NULL,
    updated_at BIGINT      NOT NULL,
    PRIMARY KEY (name)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
