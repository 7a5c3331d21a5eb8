-- The admin console's search (GET /admin/threads, GET /admin/users) by index, never by
-- scanning chat_thread or chat_message:
--
-- * chat_thread carries its activity: last_activity_at (the newest message's time, or the
--   creation time when it has none), message_count and last_message_id, kept by every
--   insert_message in its transaction. idx_thread_activity orders and pages the list and
--   bounds the date range.
-- * Titles are searched word by word with a FULLTEXT index in boolean mode (`+word*`).
--   A full-text search follows the column's collation, so the title becomes
--   case-insensitive (utf8mb4_unicode_ci); nothing compares titles otherwise. The index
--   is built without InnoDB's stopword list (the setting is kept with the index), so
--   `the` or `for` are found like any word; words shorter than innodb_ft_min_token_size
--   (3) are not indexed, whatever the session.
-- * chat_user.name_key is the display name folded for a case-insensitive prefix search
--   (lowercase; whitespace and control characters as spaces), by range on
--   idx_user_name_key. The store computes it on every profile write. Here the names of
--   printable ASCII are folded with LOWER(), which is the same fold for them; the others
--   stay NULL and the store folds them when it starts (SqlStore::fold_names).
-- * chat_participant needs nothing: InnoDB's idx_participant_user (user_id) carries the
--   primary key, so it is (user_id, thread_id) already.
ALTER TABLE chat_thread
    ADD COLUMN last_activity_at BIGINT NOT NULL DEFAULT 0,
    ADD COLUMN message_count    BIGINT NOT NULL DEFAULT 0,
    ADD COLUMN last_message_id  BIGINT NULL;

UPDATE chat_thread t
LEFT JOIN (
    SELECT thread_id, COUNT(*) AS n, MAX(id) AS last_id, MAX(created_at) AS last_at
    FROM chat_message GROUP BY thread_id
) m ON m.thread_id = t.id
SET t.message_count = COALESCE(m.n, 0),
    t.last_message_id = m.last_id,
    t.last_activity_at = GREATEST(t.created_at, COALESCE(m.last_at, t.created_at));

ALTER TABLE chat_thread ADD KEY idx_thread_activity (last_activity_at, id);

ALTER TABLE chat_thread MODIFY title VARCHAR(500) CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci NOT NULL;

SET SESSION innodb_ft_enable_stopword = OFF;
ALTER TABLE chat_thread ADD FULLTEXT KEY ft_thread_title (title);
SET SESSION innodb_ft_enable_stopword = DEFAULT;

ALTER TABLE chat_user
    ADD COLUMN name_key VARCHAR(400) NULL,
    ADD KEY idx_user_name_key (name_key, id);

UPDATE chat_user SET name_key = LOWER(display_name) WHERE display_name NOT REGEXP '[^ -~]';
