//! One typed configuration for every server: defaults, then a TOML file (`--config` /
//! `CASELINE_CONFIG`), then `CASELINE_*` variables and flags. With no file at all a
//! server runs with `--dev` only; without it, the file must name token issuers.
//!
//! ```toml
//! listen = "0.0.0.0:50051"
//! data_dir = "/var/lib/caseline"
//! event_log = "postgres://caseline@db/caseline"
//! state_store = "postgres://caseline@db/caseline"
//! instance = "caseline-1"
//! drain_seconds = 10                  # calls in flight get this long after SIGTERM
//! refused_per_minute = 120            # refused calls recorded per address and minute
//!
//! [auth]
//! leeway_seconds = 30
//!
//! [[auth.issuers]]
//! issuer = "https://id.example.org/realms/caseline"
//! audience = "caseline"
//! jwks_url = "https://id.example.org/realms/caseline/protocol/openid-connect/certs"
//! roles_claim = "realm_access.roles"
//!
//! [vault]
//! master_key_file = "/run/secrets/caseline-master-key"   # or CASELINE_MASTER_KEY
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use caseline_auth::IssuerConfig;
use serde::Deserialize;

/// The configuration file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub listen: Option<SocketAddr>,
    pub data_dir: Option<PathBuf>,
    pub event_log: Option<String>,
    /// The mutable store beside the log: data keys and projection checkpoints.
    pub state_store: Option<String>,
    /// Names this server in access records; default `<binary>@<HOSTNAME>/<pid>`.
    pub instance: Option<String>,
    /// Seconds the calls in flight may run after SIGTERM or SIGINT before they are cut
    /// off; default 10, at most 300.
    pub drain_seconds: Option<u64>,
    /// Calls refused before anyone is authenticated that are answered and recorded per
    /// peer address and minute; default 120.
    pub refused_per_minute: Option<u32>,
    #[serde(default)]
    pub auth: AuthSection,
    #[serde(default)]
    pub vault: VaultSection,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthSection {
    /// Clock leeway for `exp`/`nbf`/`iat`, at most 30 s (the default).
    pub leeway_seconds: Option<u64>,
    #[serde(default)]
    pub issuers: Vec<IssuerConfig>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VaultSection {
    /// A file holding the base64 master key. `CASELINE_MASTER_KEY` takes precedence.
    pub master_key_file: Option<PathBuf>,
}

impl FileConfig {
    /// Reads and parses `path`; the error names the file and what is wrong.
    pub fn load(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read configuration {}: {e}", path.display()))?;
        // Only the message and where: toml's own text quotes the line, which may hold a
        // password (a PostgreSQL URL).
        toml::from_str(&text).map_err(|e| {
            let at = e.span().map_or(String::new(), |span| {
                let line = text[..span.start].lines().count().max(1);
                format!(" (line {line})")
            });
            format!(
                "invalid configuration {}{at}: {}",
                path.display(),
                e.message()
            )
        })
    }

    pub fn leeway(&self) -> Duration {
        Duration::from_secs(self.auth.leeway_seconds.unwrap_or(30))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_example_parses() {
        let doc = include_str!("config.rs");
        let example: String = doc
            .lines()
            .skip_while(|l| !l.starts_with("//! ```toml"))
            .skip(1)
            .take_while(|l| !l.starts_with("//! ```"))
            .map(|l| l.trim_start_matches("//!").trim_start())
            .collect::<Vec<_>>()
            .join("\n");
        let config: FileConfig = toml::from_str(&example).expect("example parses");
        assert_eq!(config.auth.issuers.len(), 1);
        assert_eq!(config.auth.issuers[0].roles_claim, "realm_access.roles");
        assert_eq!(config.leeway(), Duration::from_secs(30));
        assert!(config.vault.master_key_file.is_some());
        assert_eq!(config.drain_seconds, Some(10));
    }

    #[test]
    fn a_malformed_file_is_reported_without_its_text() {
        let dir = std::env::temp_dir().join(format!("caseline-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("bad.toml");
        std::fs::write(
            &path,
            "instance = \"a\"\nevent_log = \"postgres://caseline:s3cr3t-pw@db/caseline\" x\n",
        )
        .unwrap();
        let err = FileConfig::load(&path).unwrap_err();
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(!err.contains("s3cr3t-pw"), "{err}");
        assert!(err.contains("line 2"), "{err}");
    }

    #[test]
    fn unknown_keys_are_refused() {
        let err = toml::from_str::<FileConfig>("listn = \"127.0.0.1:1\"").unwrap_err();
        assert!(err.to_string().contains("listn"), "{err}");
    }
}
