//! Configuration: the embedded defaults, an optional file, environment variables and flags,
//! merged once at start-up into one typed, validated [`Config`] that is passed explicitly.
//!
//! Layers, later wins: `config.default.toml` (embedded, commented: the reference for every
//! key) → `--config FILE` → `AUDITRELAY_<SECTION>__<KEY>` → command-line flags.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use auditrelay_core::{FormatConfig, Region};
use serde::{Deserialize, Deserializer};

/// The embedded defaults; also the documentation of every key.
pub const DEFAULT_TOML: &str = include_str!("../config.default.toml");

#[derive(Debug, Clone, Deserialize)]
pub struct Config {
    pub server: ServerConfig,
    pub regions: RegionsConfig,
    pub ingest: IngestConfig,
    pub retention: RetentionConfig,
    pub delivery: DeliveryConfig,
    pub signing: SigningConfig,
    pub format: FormatSection,
    pub log: LogConfig,
    /// Set by `--dev`: relaxes the endpoint rules for local development.
    #[serde(default)]
    pub dev: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    #[serde(deserialize_with = "duration")]
    pub shutdown_grace: Duration,
    #[serde(deserialize_with = "duration")]
    pub request_timeout: Duration,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegionsConfig {
    #[serde(deserialize_with = "regions")]
    pub list: Vec<Region>,
}

impl RegionsConfig {
    /// The region of requests that name none: the first configured one.
    pub fn default_region(&self) -> &Region {
        &self.list[0]
    }

    pub fn get(&self, name: &str) -> Option<&Region> {
        self.list.iter().find(|r| r.as_str() == name)
    }

    /// The configured regions as `us, eu`, for messages.
    pub fn names(&self) -> String {
        self.list
            .iter()
            .map(Region::as_str)
            .collect::<Vec<_>>()
            .join(", ")
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IngestConfig {
    pub max_body_bytes: usize,
    pub max_events: usize,
    #[serde(deserialize_with = "duration")]
    pub max_future_skew: Duration,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionConfig {
    #[serde(deserialize_with = "duration")]
    pub window: Duration,
    #[serde(deserialize_with = "duration")]
    pub prune_interval: Duration,
    pub prune_chunk: u32,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeliveryConfig {
    pub allow_http_endpoints: bool,
    pub allow_private_endpoints: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SigningConfig {
    /// How long a key made by `keys rotate` is published before it signs.
    #[serde(deserialize_with = "duration")]
    pub activation_delay: Duration,
}

/// The names rendered into every log line (CEF header, JSON `event_vendor`, …).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FormatSection {
    pub vendor: String,
    pub org_product: String,
    pub portal_product: String,
    pub host: String,
}

impl FormatSection {
    /// The core's rendering configuration; the CEF device version keeps its default.
    pub fn to_format_config(&self) -> FormatConfig {
        FormatConfig {
            vendor: self.vendor.clone(),
            org_product: self.org_product.clone(),
            portal_product: self.portal_product.clone(),
            host: self.host.clone(),
            ..FormatConfig::default()
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    pub format: LogFormat,
    pub level: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Auto,
    Pretty,
    Json,
}

/// Values given on the command line; they override every other layer.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub config_file: Option<PathBuf>,
    pub listen: Option<SocketAddr>,
    pub data_dir: Option<PathBuf>,
    pub dev: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("could not read the configuration: {0}")]
    Load(#[from] config::ConfigError),
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

impl Config {
    /// Loads every layer, reading the process environment.
    pub fn load(overrides: &Overrides) -> Result<Self, ConfigError> {
        Self::load_with_env(overrides, None)
    }

    /// Loads every layer; `env` replaces the process environment (for tests).
    pub fn load_with_env(
        overrides: &Overrides,
        env: Option<config::Map<String, String>>,
    ) -> Result<Self, ConfigError> {
        use config::{Environment, File, FileFormat};

        let mut builder =
            config::Config::builder().add_source(File::from_str(DEFAULT_TOML, FileFormat::Toml));
        if let Some(path) = &overrides.config_file {
            builder = builder.add_source(File::from(path.as_path()).format(FileFormat::Toml));
        }
        builder = builder.add_source(
            Environment::with_prefix("AUDITRELAY")
                .prefix_separator("_")
                .separator("__")
                .list_separator(",")
                .with_list_parse_key("regions.list")
                .try_parsing(true)
                .source(env),
        );
        if let Some(listen) = overrides.listen {
            builder = builder.set_override("server.listen", listen.to_string())?;
        }
        if let Some(dir) = &overrides.data_dir {
            builder =
                builder.set_override("server.data_dir", dir.to_string_lossy().into_owned())?;
        }
        if overrides.dev {
            builder = builder
                .set_override("dev", true)?
                .set_override("delivery.allow_http_endpoints", true)?
                .set_override("delivery.allow_private_endpoints", true)?;
        }
        let config: Config = builder.build()?.try_deserialize()?;
        config.validate()?;
        Ok(config)
    }

    /// Only the defaults with a data directory: what tests and `token` commands start from.
    pub fn for_data_dir(data_dir: &Path) -> Result<Self, ConfigError> {
        Self::load_with_env(
            &Overrides {
                data_dir: Some(data_dir.to_owned()),
                ..Overrides::default()
            },
            Some(config::Map::new()),
        )
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |msg: String| Err(ConfigError::Invalid(msg));
        if self.regions.list.is_empty() {
            return invalid("regions.list must name at least one region".into());
        }
        for (i, region) in self.regions.list.iter().enumerate() {
            if region.as_str() == Region::GLOBAL {
                return invalid(
                    "regions.list cannot contain `global`: it means every region".into(),
                );
            }
            if self.regions.list[..i].contains(region) {
                return invalid(format!("regions.list names `{region}` twice"));
            }
        }
        if self.retention.window < Duration::from_secs(3600) {
            return invalid("retention.window must be at least 1h".into());
        }
        if self.retention.prune_chunk == 0 || self.retention.prune_interval.is_zero() {
            return invalid(
                "retention.prune_chunk and retention.prune_interval must be above zero".into(),
            );
        }
        if self.ingest.max_events == 0 || self.ingest.max_body_bytes == 0 {
            return invalid(
                "ingest.max_events and ingest.max_body_bytes must be above zero".into(),
            );
        }
        if self.signing.activation_delay >= self.retention.window {
            return invalid(
                "signing.activation_delay must be shorter than retention.window".into(),
            );
        }
        let names = [
            ("format.vendor", &self.format.vendor),
            ("format.org_product", &self.format.org_product),
            ("format.portal_product", &self.format.portal_product),
            ("format.host", &self.format.host),
        ];
        for (key, value) in names {
            // Escaping keeps any character safe in a line, but an empty or multi-line name is
            // a configuration mistake, and the syslog host cannot hold a space.
            if value.trim().is_empty() || value.chars().any(char::is_control) {
                return invalid(format!(
                    "{key} must be non-empty text without control characters"
                ));
            }
        }
        if self.format.host.contains(char::is_whitespace) {
            return invalid("format.host cannot contain spaces".into());
        }
        Ok(())
    }

    pub fn database_path(&self) -> PathBuf {
        self.server.data_dir.join("auditrelay.db")
    }
}

/// Parses `500ms`, `30s`, `5m`, `2h`, `7d`.
pub fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit())?;
    let (number, unit) = s.split_at(split);
    let n: u64 = number.parse().ok()?;
    let unit_ms: u64 = match unit.trim() {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return None,
    };
    n.checked_mul(unit_ms).map(Duration::from_millis)
}

fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let s = String::deserialize(d)?;
    parse_duration(&s).ok_or_else(|| {
        serde::de::Error::custom(format!(
            "`{s}` is not a duration like 500ms, 30s, 5m, 2h or 7d"
        ))
    })
}

fn regions<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Region>, D::Error> {
    Vec::<String>::deserialize(d)?
        .into_iter()
        .map(|s| {
            Region::parse(s.trim()).ok_or_else(|| {
                serde::de::Error::custom(format!(
                    "`{s}` is not a region label (lowercase letters, digits and hyphens)"
                ))
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Option<config::Map<String, String>> {
        Some(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    #[test]
    fn defaults_load() {
        let c = Config::load_with_env(&Overrides::default(), env(&[])).unwrap();
        assert_eq!(c.server.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(c.regions.default_region().as_str(), "us");
        assert_eq!(c.retention.window, Duration::from_secs(7 * 86_400));
        assert!(!c.delivery.allow_http_endpoints && !c.dev);
        assert_eq!(c.signing.activation_delay, Duration::from_secs(600));
        let format = c.format.to_format_config();
        assert_eq!(
            (
                format.vendor.as_str(),
                format.org_product.as_str(),
                format.portal_product.as_str(),
                format.host.as_str()
            ),
            ("KongInc", "Konnect", "Dev-Portal", "konghq.com")
        );
        assert_eq!(format.version, FormatConfig::default().version);
    }

    #[test]
    fn signing_and_format_sections_are_configurable() {
        let c = Config::load_with_env(
            &Overrides::default(),
            env(&[
                ("AUDITRELAY_SIGNING__ACTIVATION_DELAY", "0s"),
                ("AUDITRELAY_FORMAT__VENDOR", "Acme"),
                ("AUDITRELAY_FORMAT__HOST", "audit.acme.test"),
            ]),
        )
        .unwrap();
        assert_eq!(c.signing.activation_delay, Duration::ZERO);
        let format = c.format.to_format_config();
        assert_eq!(
            (format.vendor.as_str(), format.host.as_str()),
            ("Acme", "audit.acme.test")
        );
        assert_eq!(format.org_product, "Konnect");
    }

    #[test]
    fn layers_override_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.toml");
        std::fs::write(
            &file,
            "[server]\nlisten = \"127.0.0.1:9000\"\n[retention]\nwindow = \"2d\"\n",
        )
        .unwrap();
        let overrides = Overrides {
            config_file: Some(file),
            dev: true,
            ..Overrides::default()
        };
        let c = Config::load_with_env(
            &overrides,
            env(&[
                ("AUDITRELAY_RETENTION__WINDOW", "3d"),
                ("AUDITRELAY_REGIONS__LIST", "eu,au"),
            ]),
        )
        .unwrap();
        assert_eq!(c.server.listen.port(), 9000, "file overrides defaults");
        assert_eq!(
            c.retention.window,
            Duration::from_secs(3 * 86_400),
            "env overrides file"
        );
        assert_eq!(
            c.regions
                .list
                .iter()
                .map(Region::as_str)
                .collect::<Vec<_>>(),
            ["eu", "au"]
        );
        assert!(c.dev && c.delivery.allow_http_endpoints && c.delivery.allow_private_endpoints);

        let flags = Overrides {
            listen: Some("127.0.0.1:9100".parse().unwrap()),
            ..Overrides::default()
        };
        let c = Config::load_with_env(&flags, env(&[("AUDITRELAY_SERVER__LISTEN", "127.0.0.1:1")]))
            .unwrap();
        assert_eq!(c.server.listen.port(), 9100, "flags override env");
    }

    #[test]
    fn rejects_bad_values() {
        for (key, value) in [
            ("AUDITRELAY_RETENTION__WINDOW", "30m"),
            ("AUDITRELAY_RETENTION__WINDOW", "seven days"),
            ("AUDITRELAY_REGIONS__LIST", "us,US"),
            ("AUDITRELAY_REGIONS__LIST", "us,global"),
            ("AUDITRELAY_REGIONS__LIST", "us,us"),
            ("AUDITRELAY_SERVER__LISTN", "127.0.0.1:1"),
            ("AUDITRELAY_SIGNING__ACTIVATION_DELAY", "soon"),
            ("AUDITRELAY_SIGNING__ACTIVATION_DELAY", "8d"),
            ("AUDITRELAY_SIGNING__DELAY", "1m"),
            ("AUDITRELAY_FORMAT__VENDOR", " "),
            ("AUDITRELAY_FORMAT__HOST", "kong hq"),
            ("AUDITRELAY_FORMAT__COLOUR", "red"),
        ] {
            let err = Config::load_with_env(&Overrides::default(), env(&[(key, value)]));
            assert!(err.is_err(), "{key}={value} should be rejected");
        }
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("7d"), Some(Duration::from_secs(604_800)));
        assert_eq!(parse_duration("5 m"), Some(Duration::from_secs(300)));
        for bad in ["", "5", "m", "5w", "-5s", "1.5h"] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
    }
}
