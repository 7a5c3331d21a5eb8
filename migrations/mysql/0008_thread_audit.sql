-- A thread under audit (PUT /admin/threads/{id}/audit): since when, by whom, for which
-- case. While audit_since is set, every write of the thread's messages and receipts
-- seals evidence into its audit trail in the same transaction (host/src/domain/evidence.rs).
ALTER TABLE chat_thread
    ADD COLUMN audit_since BIGINT       NULL,
    ADD COLUMN audit_by    VARCHAR(64)  NULL,
    ADD COLUMN audit_case  VARCHAR(200) NULL;
