//! The documents that list the wire vocabulary list exactly what the code
//! declares: the event-stream kinds ([`EventKind::ALL`]) in `docs/protocol.md`
//! and `plugins/README.md`, the server -> client events
//! ([`ServerEvent::NAMES`]) in `docs/protocol.md`.

use std::collections::BTreeSet;
use std::path::Path;

use chat_host::domain::events::EventKind;
use chat_host::domain::server_events::ServerEvent;

fn read(relative: &str) -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    std::fs::read_to_string(root.join(relative)).unwrap_or_else(|e| panic!("{relative}: {e}"))
}

/// The backticked first cells of the table rows in the section `heading` (the
/// whole document when `None`) that look like `names`.
fn first_cells(
    doc: &str,
    heading: Option<&str>,
    looks_like: impl Fn(&str) -> bool,
) -> BTreeSet<String> {
    let section = match heading {
        Some(h) => {
            let start = doc.find(h).unwrap_or_else(|| panic!("no section {h:?}"));
            let rest = &doc[start + h.len()..];
            &rest[..rest.find("\n## ").unwrap_or(rest.len())]
        }
        None => doc,
    };
    section
        .lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .filter_map(|l| l.split_once('`'))
        .map(|(name, _)| name.to_owned())
        .filter(|name| looks_like(name))
        .collect()
}

fn is_kind(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
}

#[test]
fn the_protocol_and_the_plugin_guide_list_every_event_stream_kind() {
    let declared: BTreeSet<String> = EventKind::ALL
        .iter()
        .map(|k| k.as_str().to_owned())
        .collect();
    let protocol = first_cells(&read("docs/protocol.md"), Some("## Event stream"), is_kind);
    assert_eq!(protocol, declared, "docs/protocol.md § Event stream");
    let guide = first_cells(&read("plugins/README.md"), None, |n| {
        declared.contains(n) || is_kind(n) && n.contains('_')
    });
    assert_eq!(guide, declared, "plugins/README.md's table of event kinds");
}

#[test]
fn the_protocol_lists_every_server_event() {
    let declared: BTreeSet<String> = ServerEvent::NAMES.iter().map(|n| (*n).to_owned()).collect();
    let documented = first_cells(
        &read("docs/protocol.md"),
        Some("## Server → client events"),
        |n| n.starts_with("chat:"),
    );
    assert_eq!(
        documented, declared,
        "docs/protocol.md § Server → client events"
    );
}
