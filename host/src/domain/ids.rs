//! Ids and their rules: user and thread ids are 1-64 chars of `[A-Za-z0-9_.:-]`;
//! message ids are positive integers, sent as decimal strings.

/// A stored message id: increasing per cluster, sent as a decimal string.
pub type MessageId = i64;

/// True for 1-64 chars of `[A-Za-z0-9_.:-]` (user and thread ids).
pub fn is_valid_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'-'))
}

/// Parses a message id from its wire form: a decimal string of a positive integer
/// (no sign, no spaces, at most 19 digits).
pub fn parse_message_id(value: &str) -> Option<MessageId> {
    let digits =
        !value.is_empty() && value.len() <= 19 && value.bytes().all(|b| b.is_ascii_digit());
    digits
        .then(|| value.parse::<MessageId>().ok())
        .flatten()
        .filter(|id| *id > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids() {
        assert!(is_valid_id("user_1.a:b-c"));
        assert!(!is_valid_id(""));
        assert!(!is_valid_id("bad id"));
        assert!(!is_valid_id(&"a".repeat(65)));
        assert!(is_valid_id(&"a".repeat(64)));
    }

    #[test]
    fn message_ids() {
        assert_eq!(parse_message_id("42"), Some(42));
        for bad in ["", "-1", "0", "1.5", "abc", "99999999999999999999", " 1"] {
            assert_eq!(parse_message_id(bad), None, "{bad}");
        }
    }
}
