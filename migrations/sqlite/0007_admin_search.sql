-- The admin console's search (see migrations/mysql/0007_admin_search.sql): thread
-- activity columns kept by insert_message, the activity index, the folded display name.
-- Titles are searched with FTS5 (prefix queries `"word"*`) in chat_thread_title, which
-- triggers keep in step with chat_thread; it holds the thread id, never the rowid, which
-- a VACUUM may renumber. Its tokenizer matches MariaDB's words (letters, digits and `_`)
-- and ignores case and diacritics like utf8mb4_unicode_ci.
ALTER TABLE chat_thread ADD COLUMN last_activity_at INTEGER NOT NULL DEFAULT 0;
ALTER TABLE chat_thread ADD COLUMN message_count INTEGER NOT NULL DEFAULT 0;
ALTER TABLE chat_thread ADD COLUMN last_message_id INTEGER NULL;

UPDATE chat_thread SET
    message_count = (SELECT COUNT(*) FROM chat_message m WHERE m.thread_id = chat_thread.id),
    last_message_id = (SELECT MAX(m.id) FROM chat_message m WHERE m.thread_id = chat_thread.id),
    last_activity_at = MAX(created_at, COALESCE(
        (SELECT MAX(m.created_at) FROM chat_message m WHERE m.thread_id = chat_thread.id), created_at));

CREATE INDEX idx_thread_activity ON chat_thread (last_activity_at, id);

CREATE VIRTUAL TABLE chat_thread_title USING fts5 (
    thread_id UNINDEXED,
    title,
    tokenize = "unicode61 remove_diacritics 2 tokenchars '_'"
);
INSERT INTO chat_thread_title (thread_id, title) SELECT id, title FROM chat_thread;

CREATE TRIGGER chat_thread_title_insert AFTER INSERT ON chat_thread BEGIN
    INSERT INTO chat_thread_title (thread_id, title) VALUES (new.id, new.title);
END;
CREATE TRIGGER chat_thread_title_update AFTER UPDATE OF id, title ON chat_thread BEGIN
    DELETE FROM chat_thread_title WHERE thread_id = old.id;
    INSERT INTO chat_thread_title (thread_id, title) VALUES (new.id, new.title);
END;
CREATE TRIGGER chat_thread_title_delete AFTER DELETE ON chat_thread BEGIN
    DELETE FROM chat_thread_title WHERE thread_id = old.id;
END;

ALTER TABLE chat_user ADD COLUMN name_key TEXT NULL;
UPDATE chat_user SET name_key = lower(display_name) WHERE display_name NOT GLOB '*[^ -~]*';
CREATE INDEX idx_user_name_key ON chat_user (name_key, id);

-- A covering index from a user to their threads (InnoDB's user_id index is that already).
CREATE INDEX idx_participant_user_thread ON chat_participant (user_id, thread_id);
DROP INDEX idx_participant_user;
