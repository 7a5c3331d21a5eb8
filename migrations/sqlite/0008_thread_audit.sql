-- A thread under audit (see migrations/mysql/0008_thread_audit.sql).
ALTER TABLE chat_thread ADD COLUMN audit_since INTEGER NULL;
ALTER TABLE chat_thread ADD COLUMN audit_by TEXT NULL;
ALTER TABLE chat_thread ADD COLUMN audit_case TEXT NULL;
