//! Layered configuration: built-in defaults → `config/default.toml` →
//! `config/$APP_ENV.toml` → `APP_SECTION__KEY` environment variables →
//! command-line flags. Later layers win. Every value keeps the layer it came
//! from, so errors and `websessions config` can name it.

mod report;
mod settings;
mod validate;

use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};

pub use report::effective_config;
pub use settings::*;
pub use validate::{DEVELOPMENT_KEY_MARK, decode_key, is_development_key};

/// Where to look and which profile to use.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// `development` (default), `test` or `production`.
    pub profile: String,
    /// The folder holding `default.toml` and the profile files.
    pub dir: PathBuf,
    /// Read `APP_…` variables (tests turn this off: env is process-global).
    pub read_env: bool,
    /// Flag overrides as dotted key → value, the last layer.
    pub overrides: Vec<(String, String)>,
}

impl LoadOptions {
    /// The options a process run from the shell uses: `APP_ENV` and
    /// `APP_CONFIG_DIR` from the environment.
    pub fn from_env() -> Self {
        Self {
            profile: std::env::var("APP_ENV").unwrap_or_else(|_| "development".into()),
            dir: std::env::var_os("APP_CONFIG_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from("config")),
            read_env: true,
            overrides: Vec::new(),
        }
    }

    /// A profile read from a given folder, without environment variables.
    pub fn profile_in(profile: &str, dir: impl AsRef<Path>) -> Self {
        Self {
            profile: profile.into(),
            dir: dir.as_ref().to_path_buf(),
            read_env: false,
            overrides: Vec::new(),
        }
    }
}

/// The loaded settings plus the figment that knows where each value came from.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub settings: Settings,
    pub profile: String,
    pub figment: Figment,
}

/// A configuration that cannot be used; the message names the key and the
/// layer it came from.
#[derive(Debug, thiserror::Error)]
#[error("configuration error: {0}")]
pub struct ConfigError(pub String);

pub const PROFILES: [&str; 3] = ["development", "test", "production"];

pub fn load(options: &LoadOptions) -> Result<Loaded, ConfigError> {
    if !PROFILES.contains(&options.profile.as_str()) {
        return Err(ConfigError(format!(
            "APP_ENV = `{}` is not a profile (expected development, test or production)",
            options.profile
        )));
    }
    let figment = build_figment(options);
    let settings: Settings = figment.extract().map_err(|e| describe(&e))?;
    validate::validate(&settings, &options.profile, &figment)?;
    Ok(Loaded {
        settings,
        profile: options.profile.clone(),
        figment,
    })
}

fn build_figment(options: &LoadOptions) -> Figment {
    let mut figment = Figment::from(Serialized::defaults(Settings::default()))
        .merge(Toml::file(options.dir.join("default.toml")))
        .merge(Toml::file(
            options.dir.join(format!("{}.toml", options.profile)),
        ));
    if options.read_env {
        // APP_ENV and APP_CONFIG_DIR choose the layers; they are not keys.
        figment = figment.merge(
            Env::prefixed("APP_")
                .ignore(&["ENV", "CONFIG_DIR"])
                .split("__"),
        );
    }
    for (key, value) in &options.overrides {
        figment = figment.merge(Serialized::default(key, value).key(key));
    }
    figment
}

/// Turns a figment error into one line per problem naming key and layer,
/// without echoing values (a pasted secret must not end up in a log).
fn describe(error: &figment::Error) -> ConfigError {
    use figment::error::Kind;
    let lines: Vec<String> = error
        .clone()
        .into_iter()
        .map(|e| {
            let key = e.path.join(".");
            let layer = e
                .metadata
                .as_ref()
                .map(|m| layer_name(m, &e.path))
                .unwrap_or_else(|| "built-in defaults".into());
            let what = match &e.kind {
                Kind::UnknownField(field, _) => {
                    // figment's path already ends with the unknown field.
                    let full = if key.ends_with(field.as_str()) {
                        key.clone()
                    } else {
                        format!("{key}.{field}")
                    };
                    return format!("unknown key `{full}` (from {layer})");
                }
                Kind::InvalidType(_, expected) => format!("expected {expected}"),
                Kind::InvalidValue(_, expected) => format!("expected {expected}"),
                Kind::UnknownVariant(_, expected) => {
                    format!("expected one of {}", expected.join(", "))
                }
                Kind::MissingField(field) => return format!("missing key `{key}.{field}`"),
                Kind::Message(msg) if !is_secret_key(&key) => msg.clone(),
                _ => "invalid value".into(),
            };
            format!("key `{key}` (from {layer}): {what}")
        })
        .collect();
    ConfigError(lines.join("; "))
}

/// "config/development.toml", "environment variable APP_SESSION__BACKEND", ...
pub(crate) fn layer_name(metadata: &figment::Metadata, path: &[String]) -> String {
    match &metadata.source {
        Some(figment::Source::File(file)) => file.display().to_string(),
        Some(figment::Source::Custom(custom)) => custom.clone(),
        _ if metadata.name.contains("environment") => {
            let keys: Vec<String> = path.iter().map(|k| k.to_ascii_uppercase()).collect();
            format!("environment variable APP_{}", keys.join("__"))
        }
        _ if metadata.name.ends_with("Settings") => "built-in defaults".into(),
        _ => "command-line flag".into(),
    }
}

pub(crate) fn is_secret_key(key: &str) -> bool {
    key.contains("secret") || key.ends_with(".url")
}
