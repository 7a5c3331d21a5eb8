-- Delivery indexes (see migrations/mysql/0005_receipt_delivery.sql).
CREATE INDEX idx_receipt_undelivered ON chat_message_receipt (user_id, delivered_at, message_id);
CREATE INDEX idx_receipt_user ON chat_message_receipt (user_id, message_id);
