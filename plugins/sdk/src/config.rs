//! The plugin's `[config]` table (string values) and parsers for common value
//! shapes: booleans, durations (`"60s"`), rates (`"20/60s"`), lists (`"a, b"`).
//!
//! The `parse_*` functions are pure and usable anywhere; the other functions
//! read a key through the host and parse it.

use crate::RateLimit;

/// The raw value of `key`, if the manifest sets it.
pub fn get(key: &str) -> Option<String> {
    crate::sys::config(key)
}

/// The value of `key`, or `default` when it is absent.
pub fn get_or(key: &str, default: &str) -> String {
    get(key).unwrap_or_else(|| default.to_string())
}

/// `key` as a boolean (see [`parse_bool`]); `default` when absent or invalid
/// (an invalid value is logged as a warning).
pub fn bool_or(key: &str, default: bool) -> bool {
    parsed_or(key, default, parse_bool)
}

/// `key` as an unsigned integer (`_` separators allowed); `default` when
/// absent or invalid (logged).
pub fn u64_or(key: &str, default: u64) -> u64 {
    parsed_or(key, default, |s| s.trim().replace('_', "").parse().ok())
}

/// `key` as a duration in milliseconds (see [`parse_duration_ms`]); `None`
/// when absent or invalid (logged).
pub fn duration_ms(key: &str) -> Option<u64> {
    parsed(key, parse_duration_ms)
}

/// `key` as a rate limit (see [`parse_rate`]); `None` when absent, empty,
/// `"none"` or invalid (logged).
pub fn rate(key: &str) -> Option<RateLimit> {
    parsed(key, parse_rate)
}

/// `key` as a comma-separated list (see [`parse_list`]); empty when absent.
pub fn list(key: &str) -> Vec<String> {
    get(key).map(|v| parse_list(&v)).unwrap_or_default()
}

fn parsed<T>(key: &str, parse: impl Fn(&str) -> Option<T>) -> Option<T> {
    let raw = get(key)?;
    if raw.trim().is_empty() || raw.trim().eq_ignore_ascii_case("none") {
        return None;
    }
    let value = parse(&raw);
    if value.is_none() {
        crate::host::warn(&format!(
            "config: invalid value {raw:?} for key {key:?}, ignored"
        ));
    }
    value
}

fn parsed_or<T>(key: &str, default: T, parse: impl Fn(&str) -> Option<T>) -> T {
    parsed(key, parse).unwrap_or(default)
}

/// `true`/`false`, `yes`/`no`, `on`/`off`, `1`/`0` (any case).
pub fn parse_bool(s: &str) -> Option<bool> {
    match s.trim().to_ascii_lowercase().as_str() {
        "true" | "yes" | "on" | "1" => Some(true),
        "false" | "no" | "off" | "0" => Some(false),
        _ => None,
    }
}

/// A duration in milliseconds: a number followed by `ms`, `s`, `m`, `h` or
/// `d` (a bare number is milliseconds), e.g. `"500ms"`, `"60s"`, `"1.5m"`,
/// `"2h"`. Fractions are allowed; the result must be at least 1 ms.
pub fn parse_duration_ms(s: &str) -> Option<u64> {
    // Integer arithmetic only: float parsing would add ~20 KB to a component.
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '_'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let num = num.replace('_', "");
    let (int, frac) = num.split_once('.').unwrap_or((&num, ""));
    if (int.is_empty() && frac.is_empty()) || frac.contains('.') || frac.len() > 9 {
        return None;
    }
    let factor: u128 = match unit.trim() {
        "" | "ms" => 1,
        "s" | "sec" | "secs" => 1_000,
        "m" | "min" | "mins" => 60_000,
        "h" | "hour" | "hours" => 3_600_000,
        "d" | "day" | "days" => 86_400_000,
        _ => return None,
    };
    let int: u128 = if int.is_empty() { 0 } else { int.parse().ok()? };
    let frac_value: u128 = if frac.is_empty() {
        0
    } else {
        frac.parse().ok()?
    };
    let scale = 10u128.pow(frac.len() as u32);
    let ms = int.checked_mul(factor)? + (frac_value * factor + scale / 2) / scale;
    if ms == 0 {
        return None;
    }
    u64::try_from(ms).ok()
}

/// A rate `LIMIT/WINDOW`, the window as in [`parse_duration_ms`] (a bare
/// unit means one of it): `"20/60s"`, `"5/m"`, `"100/1h"`. The limit may be 0
/// (nothing allowed).
pub fn parse_rate(s: &str) -> Option<RateLimit> {
    let (limit, window) = s.split_once('/')?;
    let limit: u32 = limit.trim().replace('_', "").parse().ok()?;
    let window = window.trim();
    let window_ms = if window.starts_with(|c: char| c.is_ascii_digit()) {
        parse_duration_ms(window)?
    } else {
        parse_duration_ms(&format!("1{window}"))?
    };
    Some(RateLimit { limit, window_ms })
}

/// A comma-separated list, items trimmed, empty items dropped.
pub fn parse_list(s: &str) -> Vec<String> {
    s.split(',')
        .map(str::trim)
        .filter(|x| !x.is_empty())
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration_ms("500"), Some(500));
        assert_eq!(parse_duration_ms("500ms"), Some(500));
        assert_eq!(parse_duration_ms("60s"), Some(60_000));
        assert_eq!(parse_duration_ms(" 1.5m "), Some(90_000));
        assert_eq!(parse_duration_ms("2h"), Some(7_200_000));
        assert_eq!(parse_duration_ms("7d"), Some(604_800_000));
        assert_eq!(parse_duration_ms("1_000"), Some(1000));
        assert_eq!(parse_duration_ms("0.25s"), Some(250));
        assert_eq!(parse_duration_ms(".5h"), Some(1_800_000));
        assert_eq!(parse_duration_ms("1.2.3s"), None);
        assert_eq!(parse_duration_ms("99999999999999999999999d"), None);
        assert_eq!(parse_duration_ms("0s"), None);
        assert_eq!(parse_duration_ms("10 parsecs"), None);
        assert_eq!(parse_duration_ms(""), None);
        assert_eq!(parse_duration_ms("s"), None);
    }

    #[test]
    fn rates() {
        assert_eq!(parse_rate("20/60s"), Some(RateLimit::new(20, 60_000)));
        assert_eq!(parse_rate(" 5 / m "), Some(RateLimit::new(5, 60_000)));
        assert_eq!(parse_rate("100/1h"), Some(RateLimit::new(100, 3_600_000)));
        assert_eq!(parse_rate("0/1s"), Some(RateLimit::new(0, 1000)));
        assert_eq!(parse_rate("20"), None);
        assert_eq!(parse_rate("-1/60s"), None);
        assert_eq!(parse_rate("x/60s"), None);
        assert_eq!(parse_rate("20/0s"), None);
    }

    #[test]
    fn bools_and_lists() {
        assert_eq!(parse_bool("TRUE"), Some(true));
        assert_eq!(parse_bool(" off"), Some(false));
        assert_eq!(parse_bool("maybe"), None);
        assert_eq!(
            parse_list(" send, typing,,join "),
            vec!["send", "typing", "join"]
        );
        assert!(parse_list("").is_empty());
    }

    #[test]
    fn through_the_mock_host() {
        crate::testing::reset();
        crate::testing::set_config("rate", "20/60s");
        crate::testing::set_config("bad", "twenty");
        crate::testing::set_config("flag", "yes");
        assert_eq!(rate("rate"), Some(RateLimit::new(20, 60_000)));
        assert_eq!(rate("bad"), None);
        assert_eq!(rate("absent"), None);
        assert!(bool_or("flag", false));
        assert!(bool_or("absent", true));
        assert_eq!(u64_or("absent", 7), 7);
        assert!(
            crate::testing::logs()
                .iter()
                .any(|(_, m)| m.contains("\"bad\""))
        );
    }
}
