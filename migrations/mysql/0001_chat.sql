-- Core chat tables. Times are milliseconds since the Unix epoch (UTC), BIGINT,
-- so both databases and every client read the same instant without time-zone rules.
-- Ids compare byte-wise (utf8mb4_bin): `Alice` and `alice` are two users.

CREATE TABLE chat_user (
    id           VARCHAR(64)   NOT NULL,
    display_name VARCHAR(200)  NOT NULL,
    avatar_url   VARCHAR(2048) NULL,
    role         VARCHAR(16)   NOT NULL,
    created_at   BIGINT        NOT NULL,
    updated_at   BIGINT        NOT NULL,
    PRIMARY KEY (id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

CREATE TABLE chat_thread (
    id         VARCHAR(64)  NOT NULL,
    title      VARCHAR(500) NOT NULL,
    created_at BIGINT       NOT NULL,
    PRIMARY KEY (id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

CREATE TABLE chat_participant (
    thread_id            VARCHAR(64) NOT NULL,
    user_id              VARCHAR(64) NOT NULL,
    last_read_message_id BIGINT      NULL,
    joined_at            BIGINT      NOT NULL,
    PRIMARY KEY (thread_id, user_id),
    KEY idx_participant_user (user_id),
    CONSTRAINT fk_participant_thread FOREIGN KEY (thread_id) REFERENCES chat_thread (id),
    CONSTRAINT fk_participant_user FOREIGN KEY (user_id) REFERENCES chat_user (id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

CREATE TABLE chat_message (
    id                BIGINT      NOT NULL AUTO_INCREMENT,
    thread_id         VARCHAR(64) NOT NULL,
    sender_id         VARCHAR(64) NOT NULL,
    body              TEXT        NOT NULL,
    client_message_id VARCHAR(64) NOT NULL,
    created_at        BIGINT      NOT NULL,
    PRIMARY KEY (id),
    UNIQUE KEY uq_message_client (sender_id, client_message_id),
    KEY idx_message_thread (thread_id, id),
    CONSTRAINT fk_message_thread FOREIGN KEY (thread_id) REFERENCES chat_thread (id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

CREATE TABLE chat_message_receipt (
    message_id   BIGINT      NOT NULL,
    user_id      VARCHAR(64) NOT NULL,
    delivered_at BIGINT      NULL,
    read_at      BIGINT      NULL,
    PRIMARY KEY (message_id, user_id),
    KEY idx_receipt_unread (user_id, read_at, message_id),
    CONSTRAINT fk_receipt_message FOREIGN KEY (message_id) REFERENCES chat_message (id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
