//! The module layering of `host/src/lib.rs`, checked: a top-level module may
//! refer (`crate::…`) only to modules of a lower layer. The table is parsed
//! from the layout map in `lib.rs`, so the documentation and the check are one.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// `module -> layer`, from the `| layer | modules | what |` table of lib.rs.
fn layers(lib: &str) -> BTreeMap<String, u32> {
    let mut layers = BTreeMap::new();
    for line in lib.lines().filter_map(|l| l.strip_prefix("//! |")) {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        let Some(Ok(layer)) = cells.first().map(|c| c.parse::<u32>()) else {
            continue;
        };
        for module in cells[1].split(',') {
            let name = module
                .trim()
                .trim_matches(|c| c == '[' || c == ']' || c == '`');
            layers.insert(name.to_owned(), layer);
        }
    }
    layers
}

/// Every `.rs` file under `dir`.
fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The names `crate::<name>` refers to in `text`.
fn references(text: &str) -> impl Iterator<Item = &str> {
    text.match_indices("crate::").filter_map(|(i, _)| {
        let before = text[..i].chars().next_back();
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            return None; // e.g. `other_crate::`
        }
        let rest = &text[i + "crate::".len()..];
        let end = rest
            .find(|c: char| !(c.is_alphanumeric() || c == '_'))
            .unwrap_or(rest.len());
        Some(&rest[..end])
    })
}

#[test]
fn no_module_refers_to_a_module_of_its_own_or_a_higher_layer() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let lib = std::fs::read_to_string(src.join("lib.rs")).unwrap();
    let layers = layers(&lib);
    assert!(
        layers.len() >= 10,
        "layout table not found in lib.rs: {layers:?}"
    );

    let mut files = Vec::new();
    sources(&src, &mut files);
    let mut violations = Vec::new();
    for file in files {
        let relative = file.strip_prefix(&src).unwrap();
        let top = relative
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_str()
            .unwrap();
        let module = top.trim_end_matches(".rs");
        if module == "lib" || module == "main" {
            continue;
        }
        let Some(&own) = layers.get(module) else {
            violations.push(format!(
                "{module} (src/{top}) is not in lib.rs's layout table"
            ));
            continue;
        };
        let text = std::fs::read_to_string(&file).unwrap();
        for used in references(&text) {
            if used == module {
                continue;
            }
            match layers.get(used) {
                Some(&layer) if layer < own => {}
                Some(&layer) => violations.push(format!(
                    "src/{} (layer {own}) refers to crate::{used} (layer {layer})",
                    relative.display()
                )),
                None => violations.push(format!(
                    "src/{} refers to crate::{used}, which is not in the layout table",
                    relative.display()
                )),
            }
        }
    }
    assert!(violations.is_empty(), "{}", violations.join("\n"));
}
