//! Host implementations of the imported interfaces, one file each, and the linker.

use wasmtime::Engine;
use wasmtime::component::{HasSelf, Linker};

use super::bindings::Plugin;
use super::store_data::PluginState;

mod audit;
mod host;
mod kv;

pub use kv::{MAX_KEY, check_key, check_ttl, check_value};

/// A linker with WASI p2 (async) and the `chat:plugin` imports.
pub fn linker(engine: &Engine) -> anyhow::Result<Linker<PluginState>> {
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
    Plugin::add_to_linker::<PluginState, HasSelf<PluginState>>(&mut linker, |state| state)?;
    Ok(linker)
}
