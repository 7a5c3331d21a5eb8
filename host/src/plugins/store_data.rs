//! What each plugin instance's wasmtime `Store` holds: WASI (no files, no network,
//! no environment; stdout/stderr into the host log), memory limits, and the host
//! services granted to this plugin.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use wasmtime::ResourceLimiter;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};
use wasmtime_wasi::{ResourceTable, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use super::kv_cache::KvCache;
use crate::audit::AuditLog;
use crate::state::PluginKv;

/// Host services of one plugin, shared by all its instances.
pub struct PluginEnv {
    /// The plugin's name: log tag and key-value namespace.
    pub name: Arc<str>,
    /// The manifest's `[config]` table.
    pub config: BTreeMap<String, String>,
    /// Backs the plugin's key-value store.
    pub state: Arc<dyn PluginKv>,
    /// Recent reads and writes of that store.
    pub kv_cache: KvCache,
    /// Backs `audit.append`.
    pub audit: Arc<AuditLog>,
    /// Drives the first instantiation from synchronous loading code.
    pub runtime: tokio::runtime::Handle,
}

impl PluginEnv {
    /// Runs `fut` to completion from synchronous code (loading a plugin).
    pub fn block_on<F: Future>(&self, fut: F) -> F::Output {
        if tokio::runtime::Handle::try_current().is_ok() {
            tokio::task::block_in_place(|| self.runtime.block_on(fut))
        } else {
            self.runtime.block_on(fut)
        }
    }
}

/// The data of one plugin instance's store.
pub struct PluginState {
    wasi: WasiCtx,
    table: ResourceTable,
    /// The linear-memory cap of this instance, and whether a call hit it.
    pub memory: MemoryCap,
    /// Host services of the plugin.
    pub env: Arc<PluginEnv>,
    /// When the current call's time is up (checked at every epoch tick).
    pub deadline: Instant,
    /// The participants of the thread of the current call (`host.participants`).
    pub participants: Option<Participants>,
}

/// The user ids of a thread's participants, shared by every hook call of one event.
pub type Participants = Arc<[String]>;

impl PluginState {
    /// Fresh store data for an instance of the plugin.
    pub fn new(env: Arc<PluginEnv>, memory: MemoryCap) -> Self {
        let mut wasi = WasiCtxBuilder::new();
        wasi.stdout(LogStream {
            plugin: env.name.clone(),
            stream: "stdout",
        })
        .stderr(LogStream {
            plugin: env.name.clone(),
            stream: "stderr",
        });
        Self {
            wasi: wasi.build(),
            table: ResourceTable::new(),
            memory,
            env,
            deadline: Instant::now(),
            participants: None,
        }
    }
}

/// Caps an instance's linear memory. A growth past the cap traps (rather than
/// `memory.grow` returning -1, which guests rarely handle) and sets [`MemoryCap::hit`],
/// so the fault is told apart from other traps without reading wasmtime's text.
#[derive(Debug)]
pub struct MemoryCap {
    bytes: usize,
    /// A growth past the cap was refused since the flag was last cleared.
    pub hit: bool,
}

impl MemoryCap {
    /// A cap of `bytes`.
    pub fn new(bytes: usize) -> Self {
        Self { bytes, hit: false }
    }
}

impl ResourceLimiter for MemoryCap {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.bytes || maximum.is_some_and(|max| desired > max) {
            self.hit = true;
            wasmtime::bail!("memory cap of {} bytes reached", self.bytes);
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(maximum.is_none_or(|max| desired <= max))
    }
}

impl WasiView for PluginState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// A guest's stdout or stderr, written line by line into the host log.
#[derive(Clone)]
struct LogStream {
    plugin: Arc<str>,
    stream: &'static str,
}

impl IsTerminal for LogStream {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for LogStream {
    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(tokio::io::sink())
    }

    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(LineWriter {
            out: self.clone(),
            line: Vec::new(),
        })
    }
}

/// Longest line kept; longer output is cut.
const MAX_LINE: usize = 4096;

struct LineWriter {
    out: LogStream,
    line: Vec<u8>,
}

impl LineWriter {
    fn emit(&mut self) {
        if !self.line.is_empty() {
            let text = String::from_utf8_lossy(&self.line);
            tracing::info!(plugin = %self.out.plugin, stream = self.out.stream, "{}", text.trim_end());
            self.line.clear();
        }
    }
}

#[async_trait::async_trait]
impl Pollable for LineWriter {
    async fn ready(&mut self) {}
}

impl OutputStream for LineWriter {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        for &b in bytes.iter() {
            if b == b'\n' {
                self.emit();
            } else if self.line.len() < MAX_LINE {
                self.line.push(b);
            }
        }
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        self.emit();
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(MAX_LINE)
    }
}
