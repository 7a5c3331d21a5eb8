-- Audit key ids (see migrations/mysql/0006_audit_key_id.sql).
ALTER TABLE chat_audit_entry ADD COLUMN key_id TEXT NOT NULL DEFAULT 'legacy';
ALTER TABLE chat_audit_head ADD COLUMN key_id TEXT NOT NULL DEFAULT 'legacy';
