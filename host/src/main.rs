//! The `chat-host` binary: configuration -> telemetry -> app.

use chat_host::config::{Command, Config};
use chat_host::{app, telemetry};
use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = Config::parse();
    telemetry::init_tracing();
    match config.command.unwrap_or(Command::Serve) {
        Command::Migrate => app::migrate(&config).await,
        Command::Serve => app::run(config, telemetry::install_metrics()?).await,
    }
}
