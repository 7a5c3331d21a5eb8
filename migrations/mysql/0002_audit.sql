-- Append-only audit trail for disputes, chained per thread with HMAC-SHA256:
-- mac(n) = HMAC(key, mac(n-1) | fields of n). The head row holds HMAC(key, "head" | seq | mac)
-- of the newest entry, so removing entries at the end is detected too.

CREATE TABLE chat_audit_entry (
    id         BIGINT       NOT NULL AUTO_INCREMENT,
    thread_id  VARCHAR(64)  NOT NULL,
    seq        BIGINT       NOT NULL,
    plugin     VARCHAR(64)  NOT NULL,
    kind       VARCHAR(64)  NOT NULL,
    actor_id   VARCHAR(64)  NOT NULL,
    detail     TEXT         NOT NULL,
    created_at BIGINT       NOT NULL,
    prev_mac   CHAR(64)     NOT NULL,
    mac        CHAR(64)     NOT NULL,
    PRIMARY KEY (id),
    UNIQUE KEY uq_audit_thread_seq (thread_id, seq)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

CREATE TABLE chat_audit_head (
    thread_id VARCHAR(64) NOT NULL,
    seq       BIGINT      NOT NULL,
    head_mac  CHAR(64)    NOT NULL,
    PRIMARY KEY (thread_id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
