-- Plugin decisions that changed a message: a message hook's rewrite of a stored message
-- (message_id set) or its refusal of a send (message_id NULL), with the plugin's name and
-- version, the reason and the SHA-256 of the request (the thread and the body as sent).
-- The dispute view and the export show them per thread, newest first.
CREATE TABLE chat_decision (
    id             BIGINT       NOT NULL AUTO_INCREMENT,
    thread_id      VARCHAR(64)  NOT NULL,
    message_id     BIGINT       NULL,
    user_id        VARCHAR(64)  NOT NULL,
    plugin         VARCHAR(64)  NOT NULL,
    plugin_version VARCHAR(64)  NOT NULL,
    hook           VARCHAR(32)  NOT NULL,
    verdict        VARCHAR(16)  NOT NULL,
    reason         TEXT         NULL,
    input_sha256   CHAR(64)     NOT NULL,
    created_at     BIGINT       NOT NULL,
    PRIMARY KEY (id),
    KEY idx_decision_thread (thread_id, id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
