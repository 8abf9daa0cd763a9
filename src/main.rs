//! `websessions`: parse the command line, start logging, run the command.

use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = websessions::cli::Cli::parse();
    websessions::telemetry::init("info");
    websessions::cli::run(cli).await
}
