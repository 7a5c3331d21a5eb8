//! The scanners: pure functions over the message text, no host calls.
//!
//! Hand-written (no regex crate: it would multiply the component's size).
//! All patterns are ASCII, so every span starts and ends on a char boundary.

use std::cmp::Reverse;

/// What was found.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    /// `john@example.com`, also `john [at] example [dot] com` and the like.
    Email,
    /// 7 or more digits in phone-number shape: `+44 20 7946 0958`, `(555) 123-4567`, `555.123.4567`.
    Phone,
    /// paypal.me, cash.app, venmo, revolut.me, wise.com/pay, ko-fi, ...
    PaymentLink,
    /// Messenger links: wa.me, t.me, m.me, signal.me, discord.gg, ...
    ContactLink,
    /// A Bitcoin, Litecoin or Ethereum address.
    Wallet,
}

impl Kind {
    /// The text that replaces a finding.
    pub fn placeholder(self) -> &'static str {
        match self {
            Kind::Email => "[email hidden]",
            Kind::Phone => "[phone hidden]",
            Kind::PaymentLink => "[payment link hidden]",
            Kind::ContactLink => "[contact link hidden]",
            Kind::Wallet => "[wallet address hidden]",
        }
    }

    /// A human name, for reject reasons and logs.
    pub fn label(self) -> &'static str {
        match self {
            Kind::Email => "e-mail address",
            Kind::Phone => "phone number",
            Kind::PaymentLink => "payment link",
            Kind::ContactLink => "messenger link",
            Kind::Wallet => "crypto wallet address",
        }
    }
}

/// Which scanners run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Options {
    /// Look for e-mail addresses.
    pub emails: bool,
    /// Look for phone numbers.
    pub phones: bool,
    /// Look for payment links, messenger links and wallet addresses.
    pub links: bool,
    /// The fewest digits that make a phone number.
    pub min_phone_digits: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            emails: true,
            phones: true,
            links: true,
            min_phone_digits: 7,
        }
    }
}

/// One finding: `text[start..end]` is a `kind`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Finding {
    /// Byte offset of the first byte.
    pub start: usize,
    /// Byte offset after the last byte.
    pub end: usize,
    /// What it is.
    pub kind: Kind,
}

/// All findings in `text`, sorted, overlapping ones merged (the earlier,
/// longer one gives the kind).
pub fn scan(text: &str, opts: &Options) -> Vec<Finding> {
    let mut found = Vec::new();
    let urls = url_tokens(text);
    if opts.links {
        links(text, &mut found);
        wallets(text, &mut found);
    }
    if opts.emails {
        emails(text, &mut found);
    }
    if opts.phones {
        phones(text, opts.min_phone_digits.max(1), &urls, &mut found);
    }
    found.sort_by_key(|f| (f.start, Reverse(f.end)));
    let mut merged: Vec<Finding> = Vec::with_capacity(found.len());
    for f in found {
        match merged.last_mut() {
            Some(last) if f.start < last.end => last.end = last.end.max(f.end),
            _ => merged.push(f),
        }
    }
    merged
}

/// `text` with each finding replaced by its kind's placeholder.
pub fn mask(text: &str, findings: &[Finding]) -> String {
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for f in findings {
        out.push_str(&text[at..f.start]);
        out.push_str(f.kind.placeholder());
        at = f.end;
    }
    out.push_str(&text[at..]);
    out
}

// ---------------------------------------------------------------- tokens

/// Maximal runs of non-whitespace, with surrounding punctuation trimmed.
fn tokens(text: &str) -> impl Iterator<Item = (usize, usize)> + '_ {
    let b = text.as_bytes();
    let mut i = 0;
    std::iter::from_fn(move || {
        loop {
            while i < b.len() && is_space(b[i]) {
                i += 1;
            }
            if i >= b.len() {
                return None;
            }
            let mut s = i;
            while i < b.len() && !is_space(b[i]) {
                i += 1;
            }
            let mut e = i;
            while s < e && b"([{<\"'*_`".contains(&b[s]) {
                s += 1;
            }
            while e > s && b".,;:!?)]}>\"'*_`".contains(&b[e - 1]) {
                e -= 1;
            }
            if s < e {
                return Some((s, e));
            }
        }
    })
}

fn is_space(c: u8) -> bool {
    c.is_ascii_whitespace()
}

/// Tokens that are URLs (`scheme://...` or `www....`): digits in them are
/// not phone numbers.
fn url_tokens(text: &str) -> Vec<(usize, usize)> {
    tokens(text)
        .filter(|&(s, e)| {
            let t = &text[s..e];
            t.contains("://") || t.get(..4).is_some_and(|p| p.eq_ignore_ascii_case("www."))
        })
        .collect()
}

// ---------------------------------------------------------------- links

/// (domain, required path prefixes (empty = none), kind)
const LINKS: &[(&str, &[&str], Kind)] = &[
    ("paypal.me", &[], Kind::PaymentLink),
    (
        "paypal.com",
        &[
            "/paypalme",
            "/pools",
            "/donate",
            "/send",
            "/pay",
            "/cgi-bin/webscr",
            "/qrcodes",
        ],
        Kind::PaymentLink,
    ),
    ("cash.app", &[], Kind::PaymentLink),
    ("cash.me", &[], Kind::PaymentLink),
    ("venmo.com", &[], Kind::PaymentLink),
    ("revolut.me", &[], Kind::PaymentLink),
    ("revolut.com", &["/pay"], Kind::PaymentLink),
    ("monzo.me", &[], Kind::PaymentLink),
    ("wise.com", &["/pay"], Kind::PaymentLink),
    ("buy.stripe.com", &[], Kind::PaymentLink),
    ("checkout.stripe.com", &[], Kind::PaymentLink),
    ("ko-fi.com", &[], Kind::PaymentLink),
    ("buymeacoffee.com", &[], Kind::PaymentLink),
    ("payoneer.com", &["/pay", "/r/"], Kind::PaymentLink),
    ("wa.me", &["/"], Kind::ContactLink),
    ("wa.link", &["/"], Kind::ContactLink),
    ("api.whatsapp.com", &[], Kind::ContactLink),
    ("chat.whatsapp.com", &[], Kind::ContactLink),
    ("t.me", &["/"], Kind::ContactLink),
    ("telegram.me", &["/"], Kind::ContactLink),
    ("telegram.dog", &["/"], Kind::ContactLink),
    ("m.me", &["/"], Kind::ContactLink),
    ("signal.me", &[], Kind::ContactLink),
    ("signal.group", &[], Kind::ContactLink),
    ("discord.gg", &["/"], Kind::ContactLink),
    ("line.me", &["/"], Kind::ContactLink),
];

fn links(text: &str, out: &mut Vec<Finding>) {
    for (s, e) in tokens(text) {
        // Every domain of `LINKS` has a dot: most words are skipped without a search.
        if !text[s..e].contains('.') {
            continue;
        }
        let lower = text[s..e].to_ascii_lowercase();
        let t = lower.as_bytes();
        'patterns: for &(domain, paths, kind) in LINKS {
            for (idx, _) in lower.match_indices(domain) {
                // The domain must start a host name or be a subdomain's tail.
                if idx > 0 && (t[idx - 1].is_ascii_alphanumeric() || t[idx - 1] == b'-') {
                    continue;
                }
                let after = idx + domain.len();
                if after < t.len() && (t[after].is_ascii_alphanumeric() || t[after] == b'-') {
                    continue;
                }
                if after + 1 < t.len() && t[after] == b'.' && t[after + 1].is_ascii_alphanumeric() {
                    continue; // paypal.me.example.com
                }
                let rest = &lower[after..];
                if !paths.is_empty() && !paths.iter().any(|p| rest.starts_with(p) && rest.len() > 1)
                {
                    continue;
                }
                // Extend left over subdomains and the scheme.
                let mut start = idx;
                while start > 0
                    && (t[start - 1].is_ascii_alphanumeric() || matches!(t[start - 1], b'.' | b'-'))
                {
                    start -= 1;
                }
                for scheme in ["https://", "http://"] {
                    if lower[..start].ends_with(scheme) {
                        start -= scheme.len();
                    }
                }
                out.push(Finding {
                    start: s + start,
                    end: e,
                    kind,
                });
                break 'patterns;
            }
        }
    }
}

// ---------------------------------------------------------------- wallets

fn wallets(text: &str, out: &mut Vec<Finding>) {
    let b = text.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if !b[i].is_ascii_alphanumeric() {
            i += 1;
            continue;
        }
        let s = i;
        while i < b.len() && b[i].is_ascii_alphanumeric() {
            i += 1;
        }
        if is_wallet(&text[s..i]) {
            out.push(Finding {
                start: s,
                end: i,
                kind: Kind::Wallet,
            });
        }
    }
}

fn is_wallet(w: &str) -> bool {
    let b = w.as_bytes();
    // Ethereum (and EVM chains): 0x + 40 hex digits.
    if b.len() == 42 && (w.starts_with("0x") || w.starts_with("0X")) {
        return b[2..].iter().all(u8::is_ascii_hexdigit);
    }
    // Bech32 / bech32m segwit addresses (bc1..., ltc1...), one case throughout.
    const BECH32: &[u8] = b"qpzry9x8gf2tvdw0s3jn54khce6mua7l";
    for hrp in ["bc1", "ltc1"] {
        let one_case =
            !b.iter().any(u8::is_ascii_uppercase) || !b.iter().any(u8::is_ascii_lowercase);
        if b.len() >= hrp.len() && b[..hrp.len()].eq_ignore_ascii_case(hrp.as_bytes()) && one_case {
            let data = &b[hrp.len()..];
            return (14..=74).contains(&b.len())
                && data
                    .iter()
                    .all(|c| BECH32.contains(&c.to_ascii_lowercase()));
        }
    }
    // Base58 legacy addresses: 1... / 3... (Bitcoin), L... / M... (Litecoin).
    const BASE58: &[u8] = b"123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";
    if (26..=35).contains(&b.len())
        && matches!(b[0], b'1' | b'3' | b'L' | b'M')
        && b.iter().all(|c| BASE58.contains(c))
    {
        let body = &b[1..];
        return body.iter().any(u8::is_ascii_uppercase)
            && body.iter().any(u8::is_ascii_lowercase)
            && body.iter().any(u8::is_ascii_digit);
    }
    false
}

// ---------------------------------------------------------------- e-mails

/// One byte of the normalized text and the span of the original it stands for.
struct Norm {
    bytes: Vec<u8>,
    span: Vec<(usize, usize)>,
    /// The byte is a `@` or `.` spelled out (`[at]`, ` dot `, ...).
    spelled: Vec<bool>,
    /// The byte is an unbracketed ` at ` (weak evidence).
    weak: Vec<bool>,
}

fn is_blank(c: u8) -> bool {
    c == b' ' || c == b'\t'
}

/// A spelled-out `@` / `.` starting at `i`: `[at]`, `(dot)`, `{ at }`,
/// ` @ ` (spaces on both sides), ` at `, ` dot `; returns the byte, where it
/// ends, and whether it is an unbracketed word (weak).
fn marker(b: &[u8], i: usize) -> Option<(u8, usize, bool)> {
    let mut j = i;
    while j < b.len() && is_blank(b[j]) {
        j += 1;
    }
    let lead = j > i;
    let skip_blanks = |mut k: usize| {
        while k < b.len() && is_blank(b[k]) {
            k += 1;
        }
        k
    };
    let word = |k: usize| -> Option<(u8, usize)> {
        for (w, c) in [(&b"at"[..], b'@'), (&b"dot"[..], b'.')] {
            if b.len() >= k + w.len() && b[k..k + w.len()].eq_ignore_ascii_case(w) {
                return Some((c, k + w.len()));
            }
        }
        None
    };
    if j >= b.len() {
        return None;
    }
    if let Some(close) = match b[j] {
        b'[' => Some(b']'),
        b'(' => Some(b')'),
        b'{' => Some(b'}'),
        b'<' => Some(b'>'),
        _ => None,
    } {
        let (c, k) = word(skip_blanks(j + 1))?;
        let k = skip_blanks(k);
        if k < b.len() && b[k] == close {
            return Some((c, skip_blanks(k + 1), false));
        }
        return None;
    }
    if !lead {
        return None;
    }
    if b[j] == b'@' && j + 1 < b.len() && is_blank(b[j + 1]) {
        return Some((b'@', skip_blanks(j + 1), false));
    }
    let (c, k) = word(j)?;
    if k < b.len() && is_blank(b[k]) {
        return Some((c, skip_blanks(k), c == b'@'));
    }
    None
}

fn normalize(text: &str) -> Norm {
    let b = text.as_bytes();
    let mut n = Norm {
        bytes: Vec::with_capacity(b.len()),
        span: Vec::new(),
        spelled: Vec::new(),
        weak: Vec::new(),
    };
    let mut i = 0;
    while i < b.len() {
        let at_marker_start = is_blank(b[i]) || matches!(b[i], b'[' | b'(' | b'{' | b'<');
        if at_marker_start && let Some((c, end, weak)) = marker(b, i) {
            n.bytes.push(c);
            n.span.push((i, end));
            n.spelled.push(true);
            n.weak.push(weak);
            i = end;
            continue;
        }
        n.bytes.push(b[i]);
        n.span.push((i, i + 1));
        n.spelled.push(false);
        n.weak.push(false);
        i += 1;
    }
    n
}

fn is_local(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b"._%+-'".contains(&c)
}

fn is_domain(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'.' || c == b'-'
}

fn valid_domain(d: &[u8]) -> bool {
    let labels: Vec<&[u8]> = d.split(|&c| c == b'.').collect();
    labels.len() >= 2
        && labels
            .iter()
            .all(|l| !l.is_empty() && l[0] != b'-' && l[l.len() - 1] != b'-')
        && labels
            .last()
            .is_some_and(|tld| tld.len() >= 2 && tld.iter().all(u8::is_ascii_alphabetic))
}

fn emails(text: &str, out: &mut Vec<Finding>) {
    if !text
        .bytes()
        .any(|c| c == b'@' || c == b' ' || c == b'[' || c == b'(' || c == b'{' || c == b'<')
    {
        return;
    }
    let n = normalize(text);
    let b = &n.bytes;
    for (i, _) in b.iter().enumerate().filter(|(_, c)| **c == b'@') {
        let mut s = i;
        while s > 0 && is_local(b[s - 1]) {
            s -= 1;
        }
        while s < i && b[s] == b'.' {
            s += 1;
        }
        if s == i {
            continue;
        }
        let mut e = i + 1;
        while e < b.len() && is_domain(b[e]) {
            e += 1;
        }
        while e > i + 1 && matches!(b[e - 1], b'.' | b'-') {
            e -= 1;
        }
        if e <= i + 1 || !valid_domain(&b[i + 1..e]) {
            continue;
        }
        // "meet at cafe.com" is not an address; "john at gmail dot com" is.
        if n.weak[i] && !(i + 1..e).any(|k| b[k] == b'.' && n.spelled[k]) {
            continue;
        }
        out.push(Finding {
            start: n.span[s].0,
            end: n.span[e - 1].1,
            kind: Kind::Email,
        });
    }
}

// ---------------------------------------------------------------- phones

fn is_sep(c: u8) -> bool {
    matches!(c, b' ' | b'-' | b'.' | b'(' | b')' | b'/' | b'\t')
}

const CURRENCY: &[&str] = &["$", "€", "£", "¥", "₹", "₽", "₺", "₩", "¢"];
const CURRENCY_CODES: &[&[u8; 3]] = &[
    b"USD", b"EUR", b"GBP", b"JPY", b"CHF", b"CAD", b"AUD", b"NZD", b"INR", b"RUB", b"CNY", b"PLN",
    b"SEK", b"NOK", b"DKK", b"BRL", b"MXN", b"TRY", b"ZAR", b"HKD", b"SGD", b"CZK", b"HUF", b"UAH",
];

/// An amount of money, not a phone number: a currency sign or code right
/// before or after.
fn near_currency(text: &str, start: usize, end: usize) -> bool {
    let before = text[..start].trim_end_matches([' ', '\t']);
    let after = text[end..].trim_start_matches([' ', '\t']);
    if CURRENCY
        .iter()
        .any(|c| before.ends_with(c) || after.starts_with(c))
    {
        return true;
    }
    let (bb, ab) = (before.as_bytes(), after.as_bytes());
    let code_after = ab.len() >= 3
        && CURRENCY_CODES
            .iter()
            .any(|c| ab[..3].eq_ignore_ascii_case(&c[..]))
        && ab.get(3).is_none_or(|c| !c.is_ascii_alphabetic());
    let code_before = bb.len() >= 3
        && CURRENCY_CODES
            .iter()
            .any(|c| bb[bb.len() - 3..].eq_ignore_ascii_case(&c[..]))
        && (bb.len() == 3 || !bb[bb.len() - 4].is_ascii_alphabetic());
    code_after || code_before
}

/// Digit groups and the separator run before each (empty for the first).
fn is_date(groups: &[(usize, &[u8])]) -> bool {
    if groups.len() < 3 {
        return false;
    }
    let g = &groups[..3];
    let sep = g[1].1;
    if sep.len() != 1 || !matches!(sep[0], b'-' | b'.' | b'/') || g[2].1 != sep {
        return false;
    }
    let l: Vec<usize> = g.iter().map(|x| x.0).collect();
    (l[0] == 4 && l[1] <= 2 && l[2] <= 2) || (l[2] == 4 && l[0] <= 2 && l[1] <= 2)
}

fn is_ipv4(groups: &[(usize, &[u8])]) -> bool {
    groups.len() == 4 && groups.iter().all(|g| g.0 <= 3) && groups[1..].iter().all(|g| g.1 == b".")
}

fn is_decimal(groups: &[(usize, &[u8])], plus: bool) -> bool {
    !plus && groups.len() == 2 && groups[1].1 == b"." && groups[0].0 <= 3 && groups[1].0 >= 5
}

fn phones(text: &str, min_digits: usize, urls: &[(usize, usize)], out: &mut Vec<Finding>) {
    let b = text.as_bytes();
    let n = b.len();
    let digit_at = |k: usize| k < n && b[k].is_ascii_digit();
    let mut i = 0;
    while i < n {
        let c = b[i];
        let starts = c.is_ascii_digit()
            || (c == b'+'
                && (digit_at(i + 1) || (i + 1 < n && b[i + 1] == b'(' && digit_at(i + 2))))
            || (c == b'('
                && (digit_at(i + 1) || (i + 1 < n && b[i + 1] == b'+' && digit_at(i + 2))));
        if !starts {
            i += 1;
            continue;
        }
        // Glued to a word or identifier: not a phone number (skip the whole word).
        if i > 0 && (b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_') {
            while i < n && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                i += 1;
            }
            continue;
        }
        let start = i;
        let plus = c == b'+';
        let mut j = if plus { i + 1 } else { i };
        let mut groups: Vec<(usize, &[u8])> = Vec::new();
        let mut end = start;
        loop {
            let sep_start = j;
            while j < n && is_sep(b[j]) && j - sep_start < 3 {
                j += 1;
            }
            let sep = &b[sep_start..j];
            let blanks = sep.iter().filter(|&&c| c == b' ' || c == b'\t').count();
            if !digit_at(j) || blanks > 2 || (sep.is_empty() && !groups.is_empty()) {
                break;
            }
            let g = j;
            while digit_at(j) {
                j += 1;
            }
            groups.push((j - g, sep));
            end = j;
        }
        let digits: usize = groups.iter().map(|g| g.0).sum();
        let glued_after = end < n && (b[end].is_ascii_alphabetic() || b[end] == b'_');
        let in_url = urls.iter().any(|&(s, e)| start >= s && start < e);
        if digits >= min_digits
            && !glued_after
            && !in_url
            && !is_date(&groups)
            && !is_ipv4(&groups)
            && !is_decimal(&groups, plus)
            && !near_currency(text, start, end)
        {
            out.push(Finding {
                start,
                end,
                kind: Kind::Phone,
            });
        }
        i = end.max(i + 1);
        // Do not restart inside the digits just read.
        while i < n && b[i].is_ascii_digit() {
            i += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn masked(text: &str) -> String {
        mask(text, &scan(text, &Options::default()))
    }

    fn unchanged(text: &str) {
        assert_eq!(masked(text), text, "should pass untouched: {text:?}");
    }

    #[test]
    fn plain_text_passes() {
        for t in [
            "",
            "Hello! Can you deliver the logo by Friday?",
            "I'll send 3 drafts, each 1200x800, at 10:30 tomorrow.",
            "The budget is $1,500,000 or 1 500 000 €, paid via the platform.",
            "Meeting on 2024-01-15 10:30 or 15.01.2024, whichever works.",
            "Server 192.168.100.200 answered in 0.1234567 s; pi is 3.14159265",
            "Version 1.2.3 fixes issue #42; see ticket 12345.",
            "Thanks @anna.smith and @bob, great work!",
            "meet at cafe.com tomorrow at noon",
            "I work at google.com now",
            "Unicode: héllo wörld 日本語 👋 — dash",
            "order id A1234567 and SKU_55512345",
            "see https://example.com/orders/123456789 for details",
            "We use PayPal through the platform only.",
        ] {
            unchanged(t);
        }
    }

    #[test]
    fn emails_are_masked() {
        assert_eq!(
            masked("mail me: john.doe+work@example.co.uk!"),
            "mail me: [email hidden]!"
        );
        assert_eq!(masked("JOHN@EXAMPLE.COM."), "[email hidden].");
        assert_eq!(masked("john [at] gmail [dot] com"), "[email hidden]");
        assert_eq!(
            masked("write john(at)gmail(dot)com now"),
            "write [email hidden] now"
        );
        assert_eq!(masked("john{at}mail.example.org"), "[email hidden]");
        assert_eq!(masked("john @ gmail.com"), "[email hidden]");
        assert_eq!(masked("john at gmail dot com"), "[email hidden]");
        assert_eq!(
            masked("a@b.c is not one, ü x@ex.io is"),
            "a@b.c is not one, ü [email hidden] is"
        );
        assert_eq!(
            masked("call 5551234567 NOW or 1 500 000 EUR"),
            "call [phone hidden] NOW or 1 500 000 EUR"
        );
        assert_eq!(
            masked("two: a@x.io, b@y.io"),
            "two: [email hidden], [email hidden]"
        );
    }

    #[test]
    fn phones_are_masked() {
        for (t, want) in [
            ("call +44 20 7946 0958 today", "call [phone hidden] today"),
            ("call (555) 123-4567", "call [phone hidden]"),
            ("+1 (555) 123-4567.", "[phone hidden]."),
            ("555.123.4567", "[phone hidden]"),
            ("555-1234", "[phone hidden]"),
            ("0171 1234567", "[phone hidden]"),
            ("+49(0)30 123456", "[phone hidden]"),
            ("06 12 34 56 78", "[phone hidden]"),
            ("5 5 5 1 2 3 4", "[phone hidden]"),
            (
                "mine is 07911123456, yours?",
                "mine is [phone hidden], yours?",
            ),
            ("+33.6.12.34.56.78", "[phone hidden]"),
            ("tel:+15551234567", "tel:[phone hidden]"),
        ] {
            assert_eq!(masked(t), want, "{t:?}");
        }
        unchanged("call 555-123");
        unchanged("room 123456");
    }

    #[test]
    fn phone_digit_minimum_is_configurable() {
        let opts = Options {
            min_phone_digits: 10,
            ..Options::default()
        };
        assert!(scan("555-1234", &opts).is_empty());
        assert_eq!(scan("555-123-4567", &opts).len(), 1);
    }

    #[test]
    fn payment_and_contact_links_are_masked() {
        for (t, want) in [
            (
                "pay me at paypal.me/johndoe.",
                "pay me at [payment link hidden].",
            ),
            (
                "https://www.paypal.com/paypalme/jd",
                "[payment link hidden]",
            ),
            ("(https://cash.app/$jd)", "([payment link hidden])"),
            (
                "venmo.com/u/jd or account.venmo.com/u/jd",
                "[payment link hidden] or [payment link hidden]",
            ),
            ("REVOLUT.ME/jd", "[payment link hidden]"),
            ("wise.com/pay/me/jd", "[payment link hidden]"),
            (
                "ko-fi.com/jd buymeacoffee.com/jd",
                "[payment link hidden] [payment link hidden]",
            ),
            ("https://buy.stripe.com/abc123", "[payment link hidden]"),
            (
                "text me: wa.me/15551234567",
                "text me: [contact link hidden]",
            ),
            ("https://t.me/jd", "[contact link hidden]"),
            ("join discord.gg/xyz", "join [contact link hidden]"),
        ] {
            assert_eq!(masked(t), want, "{t:?}");
        }
        unchanged("paypal.com is a company; wise.com too; t.me alone");
        unchanged("notpaypal.me/x and paypal.me.example.com/x");
    }

    #[test]
    fn wallets_are_masked() {
        for (t, want) in [
            (
                "btc: 1BvBMSEYstWetqTFn5Au4m4GFg7xJaNVN2",
                "btc: [wallet address hidden]",
            ),
            (
                "3J98t1WpEZ73CNmQviecrnyiWrnqRhWNLy",
                "[wallet address hidden]",
            ),
            (
                "bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq",
                "[wallet address hidden]",
            ),
            (
                "bitcoin:bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq?amount=1",
                "bitcoin:[wallet address hidden]?amount=1",
            ),
            (
                "eth 0x71C7656EC7ab88b098defB751B7401B5f6d8976F",
                "eth [wallet address hidden]",
            ),
        ] {
            assert_eq!(masked(t), want, "{t:?}");
        }
        unchanged("1stPlaceWinnerForBestCodeEver and 0x1234");
    }

    #[test]
    fn mixed_and_overlapping() {
        let t = "Reach me: jd@example.com / +1 555 123 4567 / paypal.me/jd — thanks";
        assert_eq!(
            masked(t),
            "Reach me: [email hidden] / [phone hidden] / [payment link hidden] — thanks"
        );
        let f = scan("paypal.me/5551234567", &Options::default());
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].kind, Kind::PaymentLink);
    }

    #[test]
    fn scanners_can_be_switched_off() {
        let t = "jd@example.com 555-123-4567 paypal.me/jd";
        let only = |emails, phones, links| {
            scan(
                t,
                &Options {
                    emails,
                    phones,
                    links,
                    ..Options::default()
                },
            )
            .iter()
            .map(|f| f.kind)
            .collect::<Vec<_>>()
        };
        assert_eq!(only(true, false, false), vec![Kind::Email]);
        assert_eq!(only(false, true, false), vec![Kind::Phone]);
        assert_eq!(only(false, false, true), vec![Kind::PaymentLink]);
    }

    #[test]
    fn never_panics_on_odd_input() {
        let odd = [
            "@",
            "@@",
            "a@",
            "@b.co",
            "[at]",
            " at ",
            "(",
            "+",
            "+(",
            "(+",
            "+((1",
            "1",
            "0x",
            "bc1",
            "..@..",
            "x [at",
            "é@é.é",
            "((((1111111",
            "1-2-3-4-5-6-7-8",
            "+1 (",
            "a@b.co\u{0}",
            "\u{a0}5551234567",
        ];
        for t in odd {
            let f = scan(t, &Options::default());
            let _ = mask(t, &f);
        }
        let long = "5".repeat(100_000) + &" a@b.cd".repeat(10_000);
        assert!(!scan(&long, &Options::default()).is_empty());
    }
}
