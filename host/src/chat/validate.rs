//! Payload validation shared by every use case: ids, bodies, limits.

use serde::de::DeserializeOwned;
use serde_json::Value;

use super::error::ChatError;
use crate::domain::ids::{MessageId, is_valid_id, parse_message_id};

/// Default and largest page size of `chat:history`.
pub const HISTORY_DEFAULT_LIMIT: u32 = 50;
/// Larger requested limits are capped to this.
pub const HISTORY_MAX_LIMIT: u32 = 100;

/// Decodes a payload into its typed form; any shape error is `invalid_payload`.
pub fn payload<T: DeserializeOwned>(value: Value) -> Result<T, ChatError> {
    if !value.is_object() {
        return Err(ChatError::invalid("the payload must be an object"));
    }
    serde_json::from_value(value).map_err(|e| ChatError::invalid(format!("invalid payload: {e}")))
}

/// Checks a user or thread id.
pub fn id(field: &str, value: &str) -> Result<(), ChatError> {
    if is_valid_id(value) {
        Ok(())
    } else {
        Err(ChatError::invalid(format!(
            "{field} must be 1-64 characters of A-Z a-z 0-9 _ . : -"
        )))
    }
}

/// Parses a message id: a decimal string of a positive integer.
pub fn message_id(field: &str, value: &str) -> Result<MessageId, ChatError> {
    parse_message_id(value)
        .ok_or_else(|| ChatError::invalid(format!("{field} must be a decimal string")))
}

/// Trims a body and checks it holds 1..=`max_chars` code points.
pub fn body(raw: &str, max_chars: usize) -> Result<String, ChatError> {
    let trimmed = raw.trim();
    let chars = trimmed.chars().count();
    if chars == 0 {
        return Err(ChatError::invalid("body must not be empty"));
    }
    if chars > max_chars {
        return Err(ChatError::invalid(format!(
            "body is {chars} characters; the limit is {max_chars}"
        )));
    }
    Ok(trimmed.to_owned())
}

/// Checks a `clientMessageId`: 1-64 code points.
pub fn client_message_id(value: &str) -> Result<(), ChatError> {
    if (1..=64).contains(&value.chars().count()) {
        Ok(())
    } else {
        Err(ChatError::invalid(
            "clientMessageId must be 1-64 characters",
        ))
    }
}

/// Longest avatar URL, in code points.
pub const AVATAR_URL_MAX_CHARS: usize = 2048;

/// Checks a profile's avatar URL: an absolute `https:` URL with a host (also
/// `http:` when `allow_http`, in dev mode), at most [`AVATAR_URL_MAX_CHARS`],
/// without whitespace, control characters or credentials. Anything a browser
/// would run or inline (`javascript:`, `data:`, `blob:`, ...) is refused.
pub fn avatar_url(value: &str, allow_http: bool) -> Result<(), ChatError> {
    let schemes = if allow_http {
        "an http: or https:"
    } else {
        "an https:"
    };
    let refuse = |why: &str| {
        Err(ChatError::invalid(format!(
            "avatarUrl must be {schemes} URL of at most {AVATAR_URL_MAX_CHARS} characters; {why}"
        )))
    };
    if value.is_empty() {
        return refuse("it is empty");
    }
    if value.chars().count() > AVATAR_URL_MAX_CHARS {
        return refuse("it is longer");
    }
    // The URL parser drops or escapes these silently; the stored text would not
    // be the URL that was checked.
    if value.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return refuse("it contains whitespace or control characters");
    }
    let Ok(url) = url::Url::parse(value) else {
        return refuse("it is not an absolute URL");
    };
    match url.scheme() {
        "https" => {}
        "http" if allow_http => {}
        other => return refuse(&format!("the scheme is {other}:")),
    }
    if url.host_str().is_none_or(str::is_empty) {
        return refuse("it has no host");
    }
    if !url.username().is_empty() || url.password().is_some() {
        return refuse("it carries credentials");
    }
    Ok(())
}

/// Resolves a history `limit`: absent is 50, over 100 is 100, below 1 or not an integer is invalid.
pub fn history_limit(limit: Option<&Value>) -> Result<u32, ChatError> {
    let Some(limit) = limit.filter(|v| !v.is_null()) else {
        return Ok(HISTORY_DEFAULT_LIMIT);
    };
    match limit.as_i64() {
        Some(n) if n >= 1 => Ok(n.min(i64::from(HISTORY_MAX_LIMIT)) as u32),
        _ => Err(ChatError::invalid("limit must be an integer of at least 1")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn message_ids_name_their_field() {
        assert_eq!(message_id("m", "42").unwrap(), 42);
        let err = message_id("beforeId", "x").unwrap_err();
        assert_eq!(err.code(), "invalid_payload");
        assert!(err.to_string().contains("beforeId"));
    }

    #[test]
    fn bodies_are_trimmed_and_counted_in_code_points() {
        assert_eq!(body("  hi \n", 10).unwrap(), "hi");
        assert!(body("   ", 10).is_err());
        assert!(body(&"😀".repeat(4000), 4000).is_ok());
        assert!(body(&"a".repeat(4001), 4000).is_err());
    }

    #[test]
    fn avatar_urls_are_web_urls_only() {
        let ok = "https://cdn.example/a/b.png?size=64#x";
        assert!(avatar_url(ok, false).is_ok());
        assert!(avatar_url("HTTPS://CDN.example/a.png", false).is_ok());
        assert!(avatar_url("http://localhost:8080/a.png", true).is_ok());
        let long = format!("https://a.example/{}", "x".repeat(AVATAR_URL_MAX_CHARS));
        for (bad, allow_http) in [
            ("http://cdn.example/a.png", false),
            ("javascript:alert(1)", true),
            ("JavaScript:alert(1)", true),
            ("data:image/svg+xml;base64,PHN2Zz4=", true),
            ("blob:https://a.example/1", true),
            ("file:///etc/passwd", true),
            ("//cdn.example/a.png", true),
            ("/a.png", true),
            ("https://", true),
            (" https://cdn.example/a.png", true),
            ("https://cdn.example/a b.png", true),
            ("java\tscript:alert(1)", true),
            ("https://user:pw@cdn.example/a.png", true),
            ("", true),
            (long.as_str(), true),
        ] {
            let err = avatar_url(bad, allow_http).expect_err(bad);
            assert_eq!(err.code(), "invalid_payload");
            assert!(err.to_string().starts_with("avatarUrl must be"), "{err}");
        }
    }

    #[test]
    fn limits() {
        assert_eq!(history_limit(None).unwrap(), 50);
        assert_eq!(history_limit(Some(&json!(500))).unwrap(), 100);
        assert_eq!(history_limit(Some(&json!(3))).unwrap(), 3);
        for bad in [json!(0), json!(-1), json!(1.5), json!("x")] {
            assert!(history_limit(Some(&bad)).is_err(), "{bad}");
        }
    }
}
