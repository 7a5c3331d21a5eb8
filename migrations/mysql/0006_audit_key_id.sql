-- Audit key ids: every entry and head names the key that sealed it, so the key can be
-- rotated (the current key seals, old keys verify). The rows written before this
-- migration get 'legacy': sealed with CHAT_AUDIT_KEY or, when it was unset, a key derived
-- from CHAT_JWT_SECRET (see docs/operations.md, "Audit keys"). New rows always name
-- their key; the default only labels the old ones.
ALTER TABLE chat_audit_entry ADD COLUMN key_id VARCHAR(64) NOT NULL DEFAULT 'legacy';
ALTER TABLE chat_audit_head ADD COLUMN key_id VARCHAR(64) NOT NULL DEFAULT 'legacy';
