-- SHA-256 of what the sender asked for (see migrations/mysql/0004_message_request_hash.sql).
ALTER TABLE chat_message ADD COLUMN request_hash TEXT NULL;
