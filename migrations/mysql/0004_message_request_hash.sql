-- SHA-256 of what the sender asked for (thread and trimmed body), so a retried
-- clientMessageId is recognised even when a message hook rewrote the stored body.
ALTER TABLE chat_message ADD COLUMN request_hash CHAR(64) NULL;
