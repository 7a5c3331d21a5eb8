//! `CHAT_PLUGIN_DIR`: every `<name>.wasm` with its `<name>.toml` is loaded at
//! start; the directory is watched and a changed pair is reloaded (a broken
//! one is refused and the old version keeps serving).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use notify::{RecursiveMode, Watcher};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::error::PluginError;
use super::manifest::Manifest;
use super::registry::PluginRegistry;

/// Changes settle this long before a reload (editors and copies write in steps).
const DEBOUNCE: Duration = Duration::from_millis(150);

/// Outcome of [`load_one`].
#[derive(Debug, PartialEq, Eq)]
pub enum Loaded {
    /// A new version (or a first one) is serving.
    New,
    /// The files hold what is already loaded; nothing changed.
    Unchanged,
}

/// Loads `<dir>/<name>.wasm` with `<dir>/<name>.toml`, unless they hold the version already loaded.
pub fn load_one(registry: &PluginRegistry, dir: &Path, name: &str) -> Result<Loaded, PluginError> {
    let read =
        |path: PathBuf| std::fs::read(&path).map_err(|source| PluginError::Io { path, source });
    let text = read(dir.join(format!("{name}.toml")))?;
    let manifest = Manifest::parse(&String::from_utf8_lossy(&text))?;
    if manifest.name != name {
        return Err(PluginError::NameMismatch {
            expected: name.to_owned(),
            found: manifest.name,
        });
    }
    let wasm = read(dir.join(format!("{name}.wasm")))?;
    if let Some(current) = registry.get(name)
        && current.manifest == manifest
        && *current.wasm == *wasm
    {
        return Ok(Loaded::Unchanged);
    }
    registry.load(&wasm, manifest).map(|_| Loaded::New)
}

/// Names of the plugins present in `dir` (a `.wasm` file).
fn names_in(dir: &Path) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let path = e.path();
            (path.extension()? == "wasm").then(|| path.file_stem()?.to_str().map(str::to_owned))?
        })
        .collect()
}

/// Loads every plugin of `dir`; returns the names loaded. Failures are logged.
pub fn load_all(registry: &PluginRegistry, dir: &Path) -> Vec<String> {
    let mut loaded = Vec::new();
    for name in names_in(dir) {
        match load_one(registry, dir, &name) {
            Ok(_) => loaded.push(name),
            Err(e) => tracing::error!(plugin = %name, error = %e, "plugin refused"),
        }
    }
    loaded
}

/// Watches `dir` until `stop`, reloading changed plugins and unloading removed
/// ones; returns the watching task.
pub fn watch(
    registry: Arc<PluginRegistry>,
    dir: PathBuf,
    stop: CancellationToken,
) -> anyhow::Result<JoinHandle<()>> {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<PathBuf>();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        // Only changes count: reading the files during a reload reports `Access`
        // events, which would otherwise trigger the next reload, forever.
        if let Ok(event) = event
            && !matches!(event.kind, notify::EventKind::Access(_))
        {
            for path in event.paths {
                let _ = tx.send(path);
            }
        }
    })?;
    watcher.watch(&dir, RecursiveMode::NonRecursive)?;
    Ok(tokio::spawn(async move {
        let _watcher = watcher;
        loop {
            let first = tokio::select! {
                path = rx.recv() => match path { Some(p) => p, None => return },
                () = stop.cancelled() => return,
            };
            let mut changed = BTreeSet::new();
            let mut note = |p: PathBuf| {
                if matches!(
                    p.extension().and_then(|e| e.to_str()),
                    Some("wasm" | "toml")
                ) && let Some(stem) = p.file_stem().and_then(|s| s.to_str())
                {
                    changed.insert(stem.to_owned());
                }
            };
            note(first);
            let settle = tokio::time::sleep(DEBOUNCE);
            tokio::pin!(settle);
            loop {
                tokio::select! {
                    path = rx.recv() => match path { Some(p) => note(p), None => break },
                    () = &mut settle => break,
                }
            }
            for name in changed {
                let (registry, dir) = (registry.clone(), dir.clone());
                let result = tokio::task::spawn_blocking(move || {
                    if dir.join(format!("{name}.wasm")).exists() {
                        load_one(&registry, &dir, &name).map(|loaded| match loaded {
                            Loaded::New => format!("{name} reloaded"),
                            Loaded::Unchanged => String::new(),
                        })
                    } else if registry.remove(&name) {
                        Ok(format!("{name} removed"))
                    } else {
                        Ok(String::new())
                    }
                })
                .await;
                match result {
                    Ok(Ok(what)) if !what.is_empty() => tracing::info!("plugin directory: {what}"),
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => {
                        tracing::error!(error = %e, "plugin change refused; the previous version keeps serving")
                    }
                    Err(e) => tracing::error!(error = %e, "plugin reload task failed"),
                }
            }
        }
    }))
}
