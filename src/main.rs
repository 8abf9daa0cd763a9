//! `websessions`: parse the command line, start logging, run the command.

use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = websessions::cli::Cli::parse();
    // Logging starts once the configuration (and so `server.log_format`)
    // is known, inside `run`.
    match websessions::cli::run(cli).await {
        // A log collector reading JSON gets the fatal error as JSON too.
        Err(error) if websessions::telemetry::is_json() => {
            tracing::error!(
                error = format!("{error:#}"),
                "websessions stopped on an error"
            );
            std::process::exit(1);
        }
        other => other,
    }
}
