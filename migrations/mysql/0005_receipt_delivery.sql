-- Delivery: a user's receipts not yet acknowledged by any of their devices, and
-- a user's receipts after a resume cursor, each read by index on connect.
ALTER TABLE chat_message_receipt
    ADD KEY idx_receipt_undelivered (user_id, delivered_at, message_id),
    ADD KEY idx_receipt_user (user_id, message_id);
