//! The command line: `serve` (the default), `migrate`, `sessions …`,
//! `config`, `keygen`.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context as _;
use base64::Engine as _;
use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;

use crate::config::{self, Backend, LoadOptions, Loaded};
#[cfg(any(feature = "sqlite", feature = "postgres", feature = "mysql"))]
use crate::sessions::database::{DatabaseOptions, DatabaseStore};
use crate::sessions::store::Capability;
use crate::startup::Application;

#[derive(Debug, Parser)]
#[command(
    name = "websessions",
    version,
    about = "A web site that teaches and demonstrates web sessions",
    long_about = "A web site that teaches and demonstrates web sessions: storing, reading, saving and deleting per-visitor data, with one configuration switch between storage backends.\n\nConfiguration comes from config/default.toml, then config/$APP_ENV.toml (APP_ENV = development, test or production; development by default), then APP_SECTION__KEY environment variables (e.g. APP_SESSION__BACKEND=memory), then flags. Run `websessions config` to see the result."
)]
pub struct Cli {
    /// Folder holding default.toml and the profile files [env: APP_CONFIG_DIR; default: ./config]
    #[arg(long, global = true, value_name = "DIR")]
    pub config_dir: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the site (the default command)
    Serve {
        /// Session backend, overriding session.backend: file, database, cookie, redis, memcached or memory
        #[arg(long, value_name = "NAME")]
        backend: Option<Backend>,
        /// Address to listen on, overriding server.bind (e.g. 0.0.0.0:8080)
        #[arg(long, value_name = "ADDR")]
        bind: Option<SocketAddr>,
    },
    /// Apply the database migrations of the configured database
    Migrate,
    /// Inspect or clean the configured session store
    Sessions {
        #[command(subcommand)]
        action: SessionsCommand,
    },
    /// Print the effective configuration, secrets masked, with the source of each value
    Config,
    /// Print a fresh base64 64-byte secret key for session.secret_key
    Keygen,
}

#[derive(Debug, Subcommand)]
pub enum SessionsCommand {
    /// How many sessions the store holds, and how many of them are expired
    Stats,
    /// Delete expired sessions and print how many
    PurgeExpired,
    /// Delete every session of the configured store and print how many
    Clear {
        /// Confirm: every visitor is logged out
        #[arg(long)]
        yes: bool,
    },
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let command = cli.command.unwrap_or(Command::Serve {
        backend: None,
        bind: None,
    });
    let mut options = LoadOptions::from_env();
    if let Some(dir) = cli.config_dir {
        options.dir = dir;
    }
    match command {
        Command::Keygen => {
            let key: [u8; 64] = std::array::from_fn(|_| rand::random());
            println!("{}", base64::engine::general_purpose::STANDARD.encode(key));
            Ok(())
        }
        Command::Config => {
            let loaded = load(&options)?;
            print!("{}", config::effective_config(&loaded));
            Ok(())
        }
        Command::Serve { backend, bind } => {
            if let Some(backend) = backend {
                options
                    .overrides
                    .push(("session.backend".into(), backend.to_string()));
            }
            if let Some(bind) = bind {
                options
                    .overrides
                    .push(("server.bind".into(), bind.to_string()));
            }
            serve(load(&options)?).await
        }
        Command::Migrate => {
            let loaded = load(&options)?;
            crate::sessions::NotCompiled::check(loaded.settings.session.backend)?;
            match loaded.settings.session.backend {
                #[cfg(any(feature = "sqlite", feature = "postgres", feature = "mysql"))]
                Backend::Database => migrate(&loaded.settings.session.database.options()).await,
                other => {
                    println!("The {other} backend keeps no schema: there is nothing to migrate.");
                    Ok(())
                }
            }
        }
        Command::Sessions { action } => sessions(load(&options)?, action).await,
    }
}

/// Loads the configuration, then starts logging in its `server.log_format`
/// (a configuration that cannot be read is reported on stderr, as text).
fn load(options: &LoadOptions) -> anyhow::Result<Loaded> {
    let loaded = config::load(options)?;
    crate::telemetry::init_with(loaded.settings.server.log_format, "info");
    Ok(loaded)
}

/// `websessions migrate`: applies what is pending and says what it did.
#[cfg(any(feature = "sqlite", feature = "postgres", feature = "mysql"))]
async fn migrate(settings: &DatabaseOptions) -> anyhow::Result<()> {
    let store = DatabaseStore::connect(settings)?;
    let report = store.migrate().await?;
    let kind = report.kind;
    if report.up_to_date() {
        println!(
            "The {kind} session database is up to date ({} migration(s) applied earlier): nothing to do.",
            report.total
        );
    } else {
        for m in &report.applied {
            println!("applied migration {} ({})", m.version, m.description);
        }
        println!(
            "The {kind} session database is now up to date: {} migration(s) applied.",
            report.applied.len()
        );
    }
    store.close().await;
    Ok(())
}

async fn serve(loaded: Loaded) -> anyhow::Result<()> {
    let settings = loaded.settings;
    let backend = settings.session.backend;
    let development_key = std::iter::once(&settings.session.secret_key)
        .chain(&settings.session.previous_secret_keys)
        .any(|key| config::is_development_key(key.expose()));
    let public = !settings.server.bind.ip().is_loopback();
    let app = Application::build(settings).await?;
    let addr = app.local_addr();
    if development_key && public {
        tracing::warn!(
            "the development key serves on http://{addr}, an address other machines can reach: anyone can forge CSRF tokens and cookie-backend sessions with it; run `websessions keygen` and set APP_SESSION__SECRET_KEY"
        );
    }
    let shutdown = CancellationToken::new();
    crate::shutdown::cancel_on_signal(shutdown.clone())
        .context("installing the Ctrl-C and SIGTERM handlers")?;
    tracing::info!(%backend, profile = %loaded.profile, "websessions listening on http://{addr}");
    // With JSON logs, stdout carries nothing but JSON lines: the log line
    // above already says where the site listens.
    let human = !crate::telemetry::is_json();
    if human {
        println!(
            "websessions: serving http://{addr}/ (backend: {backend}, profile: {}) — Ctrl-C stops",
            loaded.profile
        );
    }
    app.run_until(shutdown).await?;
    tracing::info!("websessions stopped");
    if human {
        println!("websessions: stopped");
    }
    Ok(())
}

async fn sessions(loaded: Loaded, action: SessionsCommand) -> anyhow::Result<()> {
    let backend = loaded.settings.session.backend;
    let Some(store) = crate::startup::open_store(&loaded.settings).await? else {
        println!(
            "The cookie backend keeps sessions in the visitors' browsers: the server cannot count or delete them. Rotating session.secret_key ends them all."
        );
        return Ok(());
    };
    let unsupported = |why: &str| println!("The {backend} backend cannot do this: {why}");
    match action {
        SessionsCommand::Stats => {
            let total = store.count().await.context("counting sessions")?;
            let expired = store
                .count_expired()
                .await
                .context("counting expired sessions")?;
            match (total, expired) {
                (Capability::Supported(total), Capability::Supported(expired)) => {
                    println!("backend: {backend}\nsessions: {total}\nexpired: {expired}")
                }
                (Capability::Unsupported(why), _) | (_, Capability::Unsupported(why)) => {
                    unsupported(why)
                }
            }
        }
        SessionsCommand::PurgeExpired => match store
            .purge_expired()
            .await
            .context("purging expired sessions")?
        {
            Capability::Supported(n) => println!("purged {n} expired sessions"),
            Capability::Unsupported(why) => unsupported(why),
        },
        SessionsCommand::Clear { yes } => {
            if !yes {
                anyhow::bail!(
                    "`sessions clear` deletes every session and logs everyone out: add --yes to confirm"
                );
            }
            match store.clear().await.context("clearing sessions")? {
                Capability::Supported(n) => println!("deleted {n} sessions"),
                Capability::Unsupported(why) => unsupported(why),
            }
        }
    }
    Ok(())
}
