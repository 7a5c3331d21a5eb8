//! The statements MySQL/MariaDB and SQLite spell differently; everything else is shared SQL.

/// Which SQL database a [`super::sql::SqlStore`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// MySQL or MariaDB.
    MySql,
    /// The embedded SQLite file.
    Sqlite,
}

impl Dialect {
    /// The dialect of a database URL.
    pub fn from_url(url: &str) -> Option<Self> {
        if url.starts_with("mysql:") || url.starts_with("mariadb:") {
            Some(Self::MySql)
        } else if url.starts_with("sqlite:") {
            Some(Self::Sqlite)
        } else {
            None
        }
    }

    /// Insert-or-update of a user profile.
    pub fn upsert_user(self) -> &'static str {
        match self {
            Self::MySql => {
                "INSERT INTO chat_user (id, display_name, name_key, avatar_url, role, created_at, updated_at) \
                 VALUES (?, ?, ?, ?, ?, ?, ?) ON DUPLICATE KEY UPDATE display_name = VALUES(display_name), \
                 name_key = VALUES(name_key), avatar_url = VALUES(avatar_url), role = VALUES(role), \
                 updated_at = VALUES(updated_at)"
            }
            Self::Sqlite => {
                "INSERT INTO chat_user (id, display_name, name_key, avatar_url, role, created_at, updated_at) \
                 VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET display_name = excluded.display_name, \
                 name_key = excluded.name_key, avatar_url = excluded.avatar_url, role = excluded.role, \
                 updated_at = excluded.updated_at"
            }
        }
    }

    /// Adds a participant unless present.
    pub fn insert_participant(self) -> &'static str {
        match self {
            Self::MySql => {
                "INSERT IGNORE INTO chat_participant (thread_id, user_id, joined_at) VALUES (?, ?, ?)"
            }
            Self::Sqlite => {
                "INSERT OR IGNORE INTO chat_participant (thread_id, user_id, joined_at) VALUES (?, ?, ?)"
            }
        }
    }

    /// The id the connection's last INSERT generated.
    pub fn last_insert_id(self) -> &'static str {
        match self {
            Self::MySql => "SELECT LAST_INSERT_ID()",
            Self::Sqlite => "SELECT last_insert_rowid()",
        }
    }

    /// Insert-or-update of a thread's audit head.
    pub fn upsert_audit_head(self) -> &'static str {
        match self {
            Self::MySql => {
                "INSERT INTO chat_audit_head (thread_id, seq, head_mac, key_id) VALUES (?, ?, ?, ?) \
                 ON DUPLICATE KEY UPDATE seq = VALUES(seq), head_mac = VALUES(head_mac), key_id = VALUES(key_id)"
            }
            Self::Sqlite => {
                "INSERT INTO chat_audit_head (thread_id, seq, head_mac, key_id) VALUES (?, ?, ?, ?) \
                 ON CONFLICT (thread_id) DO UPDATE SET seq = excluded.seq, head_mac = excluded.head_mac, key_id = excluded.key_id"
            }
        }
    }

    /// Insert-or-replace of a stored plugin.
    pub fn upsert_plugin(self) -> &'static str {
        match self {
            Self::MySql => {
                "INSERT INTO chat_plugin (name, manifest, wasm, updated_at) VALUES (?, ?, ?, ?) \
                 ON DUPLICATE KEY UPDATE manifest = VALUES(manifest), wasm = VALUES(wasm), updated_at = VALUES(updated_at)"
            }
            Self::Sqlite => {
                "INSERT INTO chat_plugin (name, manifest, wasm, updated_at) VALUES (?, ?, ?, ?) \
                 ON CONFLICT (name) DO UPDATE SET manifest = excluded.manifest, wasm = excluded.wasm, updated_at = excluded.updated_at"
            }
        }
    }

    /// The condition that a thread's title (`chat_thread t`) matches the
    /// bound [`Dialect::title_query`]: MySQL's FULLTEXT index in boolean mode,
    /// SQLite's FTS5 table `chat_thread_title`.
    pub fn title_match(self) -> &'static str {
        match self {
            Self::MySql => "MATCH (t.title) AGAINST (? IN BOOLEAN MODE)",
            Self::Sqlite => {
                "t.id IN (SELECT thread_id FROM chat_thread_title WHERE chat_thread_title MATCH ?)"
            }
        }
    }

    /// The full-text query of a title search: every word is the start of a
    /// word of the title (`+word*` in MySQL's boolean mode, `"word"*` in FTS5;
    /// the words hold only letters, digits and `_`, none of either syntax).
    pub fn title_query(self, words: &[String]) -> String {
        let term = |w: &String| match self {
            Self::MySql => format!("+{w}*"),
            Self::Sqlite => format!("\"{w}\"*"),
        };
        words.iter().map(term).collect::<Vec<_>>().join(" ")
    }

    /// Opens a transaction that will write. SQLite takes the write lock at once
    /// (`BEGIN IMMEDIATE`), so concurrent writers wait on `busy_timeout` instead
    /// of failing when a read lock cannot be upgraded.
    pub fn begin_write(self) -> &'static str {
        match self {
            Self::MySql => "BEGIN",
            Self::Sqlite => "BEGIN IMMEDIATE",
        }
    }

    /// The suffix of a `SELECT` that locks the rows it reads for writing, until
    /// the transaction ends (SQLite's write transaction holds the whole file).
    pub fn lock_exclusive(self) -> &'static str {
        match self {
            Self::MySql => " FOR UPDATE",
            Self::Sqlite => "",
        }
    }

    /// The suffix of a `SELECT` that keeps the rows it reads from being written
    /// until the transaction ends.
    pub fn lock_shared(self) -> &'static str {
        match self {
            Self::MySql => " LOCK IN SHARE MODE",
            Self::Sqlite => "",
        }
    }

    /// Opens a transaction whose reads all see one snapshot (InnoDB's consistent
    /// read; SQLite's deferred read transaction in WAL mode).
    pub fn begin_snapshot(self) -> &'static str {
        match self {
            Self::MySql => "START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY",
            Self::Sqlite => "BEGIN",
        }
    }
}
