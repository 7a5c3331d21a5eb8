//! Build helper for chat-host plugins (native; used by `scripts/build-plugins.sh`).
//!
//! ```text
//! componentize new IN.wasm OUT.wasm      core module (or component) -> validated component
//! componentize wit FILE.wasm...          print each component's imports and exports
//! componentize print FILE.wasm           print the component's world as WIT
//! componentize check FILE.wasm EXPORT... fail unless the component exports exactly these
//!                                        hook interfaces (short names: access, rate-limit, ...)
//! ```
//!
//! A `wasm32-wasip1` module gets the WASI preview1 reactor adapter (from
//! `wasi-preview1-component-adapter-provider`, the version matching the
//! host's wasmtime); a `wasm32-unknown-unknown` module needs none; a module
//! already a component (`wasm32-wasip2`) is validated and copied.

use anyhow::{Context, Result, bail};
use std::path::Path;
use wit_component::{ComponentEncoder, DecodedWasm, WitPrinter};

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("new") if args.len() == 3 => new(Path::new(&args[1]), Path::new(&args[2])),
        Some("wit") if args.len() >= 2 => {
            for f in &args[1..] {
                let (imports, exports) = interfaces(Path::new(f))?;
                println!("{f}");
                for i in imports {
                    println!("  import {i}");
                }
                for e in exports {
                    println!("  export {e}");
                }
            }
            Ok(())
        }
        Some("print") if args.len() == 2 => print(Path::new(&args[1])),
        Some("check") if args.len() >= 2 => check(Path::new(&args[1]), &args[2..]),
        _ => bail!(
            "usage: componentize new IN OUT | wit FILE... | print FILE | check FILE [EXPORT...]"
        ),
    }
}

fn is_component(bytes: &[u8]) -> bool {
    wasmparser::Parser::is_component(bytes)
}

fn imports_wasi_preview1(module: &[u8]) -> Result<bool> {
    for payload in wasmparser::Parser::new(0).parse_all(module) {
        if let wasmparser::Payload::ImportSection(reader) = payload? {
            for import in reader.into_imports() {
                if import?.module == "wasi_snapshot_preview1" {
                    return Ok(true);
                }
            }
        }
    }
    Ok(false)
}

fn new(input: &Path, output: &Path) -> Result<()> {
    let bytes = std::fs::read(input).with_context(|| format!("read {}", input.display()))?;
    let component = if is_component(&bytes) {
        wasmparser::Validator::new_with_features(wasmparser::WasmFeatures::all())
            .validate_all(&bytes)
            .with_context(|| format!("{} is not a valid component", input.display()))?;
        bytes
    } else {
        let mut encoder = ComponentEncoder::default()
            .module(&bytes)
            .with_context(|| {
                format!(
                    "{}: no usable component-type section (built without the SDK?)",
                    input.display()
                )
            })?
            .validate(true);
        if imports_wasi_preview1(&bytes)? {
            encoder = encoder.adapter(
                wasi_preview1_component_adapter_provider::WASI_SNAPSHOT_PREVIEW1_ADAPTER_NAME,
                wasi_preview1_component_adapter_provider::WASI_SNAPSHOT_PREVIEW1_REACTOR_ADAPTER,
            )?;
        }
        encoder
            .encode()
            .with_context(|| format!("componentize {}", input.display()))?
    };
    let tmp = output.with_extension("wasm.tmp");
    std::fs::write(&tmp, &component).with_context(|| format!("write {}", tmp.display()))?;
    std::fs::rename(&tmp, output)?;
    Ok(())
}

/// The component's imported and exported interfaces and functions, as
/// `package:name/interface@version` (or a bare name).
fn interfaces(file: &Path) -> Result<(Vec<String>, Vec<String>)> {
    let bytes = std::fs::read(file).with_context(|| format!("read {}", file.display()))?;
    let decoded =
        wit_component::decode(&bytes).with_context(|| format!("decode {}", file.display()))?;
    let (resolve, world) = match decoded {
        DecodedWasm::Component(resolve, world) => (resolve, world),
        DecodedWasm::WitPackage(..) => {
            bail!("{} is a WIT package, not a component", file.display())
        }
    };
    let w = &resolve.worlds[world];
    let name = |key: &wit_parser::WorldKey| resolve.name_world_key(key);
    let imports = w.imports.keys().map(name).collect();
    let exports = w.exports.keys().map(name).collect();
    Ok((imports, exports))
}

fn print(file: &Path) -> Result<()> {
    let bytes = std::fs::read(file)?;
    let DecodedWasm::Component(resolve, world) = wit_component::decode(&bytes)? else {
        bail!("not a component");
    };
    let mut printer = WitPrinter::default();
    printer.print(&resolve, resolve.worlds[world].package.unwrap(), &[])?;
    println!("{}", printer.output);
    Ok(())
}

fn check(file: &Path, expected: &[String]) -> Result<()> {
    let (_, exports) = interfaces(file)?;
    let mut want: Vec<String> = expected
        .iter()
        .map(|e| {
            if e.contains(':') {
                e.clone()
            } else {
                format!("chat:plugin/{e}@0.1.0")
            }
        })
        .collect();
    let mut got = exports.clone();
    want.sort();
    got.sort();
    if want != got {
        bail!("{}: exports {got:?}, expected {want:?}", file.display());
    }
    Ok(())
}
