//! The development identity: an Ed25519 key in the data directory that signs tokens for
//! the `caseline-dev` issuer, so a developer can call the API without an identity
//! provider.
//!
//! Rules: the key is created once, atomically (written to a temporary file, then linked
//! into place, so a concurrent start never sees half a key and both end up with the same
//! one), readable by its owner only (0600 on unix; a key file readable by others is
//! refused), and reused on every later start. Its issuer verifies EdDSA only, from an
//! inline key set. It is only ever trusted when a service runs in dev mode.

use std::fmt;
use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::SigningKey;
use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::{DecodePrivateKey as _, EncodePrivateKey as _};
use jsonwebtoken::jwk::{
    AlgorithmParameters, CommonParameters, EllipticCurve, Jwk, JwkSet, KeyAlgorithm,
    OctetKeyPairParameters, OctetKeyPairType, PublicKeyUse, ThumbprintHash,
};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use zeroize::Zeroize as _;

use crate::config::IssuerConfig;
use crate::error::ConfigError;
use crate::principal::Role;

/// The development signing key and the tokens it issues.
pub struct DevKey {
    encoding: EncodingKey,
    public: Jwk,
    kid: String,
}

impl fmt::Debug for DevKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DevKey")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl DevKey {
    /// Issuer and audience of development tokens.
    pub const ISSUER: &'static str = "caseline-dev";
    /// The key's file name inside the data directory (PKCS#8 PEM).
    pub const FILE_NAME: &'static str = "dev-signing-key.pem";

    /// Loads the key from `data_dir`, creating the directory and the key if needed.
    pub fn load_or_create(data_dir: &Path) -> Result<Self, ConfigError> {
        let path = data_dir.join(Self::FILE_NAME);
        let io = |source| ConfigError::DevKeyIo {
            path: path.clone(),
            source,
        };
        match fs::read(&path) {
            Ok(pem) => return Self::from_file(&path, pem),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io(e)),
        }
        fs::create_dir_all(data_dir).map_err(io)?;
        create(data_dir, &path)?;
        let pem = fs::read(&path).map_err(io)?;
        Self::from_file(&path, pem)
    }

    fn from_file(path: &Path, mut pem: Vec<u8>) -> Result<Self, ConfigError> {
        let bad = |detail: &str| ConfigError::DevKey {
            path: path.to_owned(),
            detail: detail.to_owned(),
        };
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = fs::metadata(path)
                .map_err(|source| ConfigError::DevKeyIo {
                    path: path.to_owned(),
                    source,
                })?
                .permissions()
                .mode();
            if mode & 0o077 != 0 {
                return Err(bad("is accessible to other users; expected mode 0600"));
            }
        }
        let parsed = std::str::from_utf8(&pem)
            .ok()
            .and_then(|s| SigningKey::from_pkcs8_pem(s).ok());
        pem.zeroize();
        let signing = parsed.ok_or_else(|| bad("is not a pkcs#8 ed25519 private key"))?;
        Self::from_signing_key(&signing).map_err(|_| bad("cannot be used for signing"))
    }

    fn from_signing_key(signing: &SigningKey) -> Result<Self, jsonwebtoken::errors::Error> {
        let der = signing
            .to_pkcs8_der()
            .map_err(|_| jsonwebtoken::errors::ErrorKind::InvalidEddsaKey)?;
        let encoding = EncodingKey::from_ed_der(der.as_bytes());
        let mut public = Jwk {
            common: CommonParameters {
                public_key_use: Some(PublicKeyUse::Signature),
                key_algorithm: Some(KeyAlgorithm::EdDSA),
                ..CommonParameters::default()
            },
            algorithm: AlgorithmParameters::OctetKeyPair(OctetKeyPairParameters {
                key_type: OctetKeyPairType::OctetKeyPair,
                curve: EllipticCurve::Ed25519,
                x: URL_SAFE_NO_PAD.encode(signing.verifying_key().as_bytes()),
            }),
        };
        // RFC 7638 thumbprint: the same key always gets the same kid.
        let kid = public.thumbprint(ThumbprintHash::SHA256)?;
        public.common.key_id = Some(kid.clone());
        Ok(DevKey {
            encoding,
            public,
            kid,
        })
    }

    /// The key id (the RFC 7638 thumbprint of the public key).
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The public key set of the dev issuer.
    pub fn jwks(&self) -> JwkSet {
        JwkSet {
            keys: vec![self.public.clone()],
        }
    }

    /// The issuer that trusts this key: EdDSA only, `typ` JWT, default claim names.
    pub fn issuer_config(&self) -> IssuerConfig {
        let mut config = IssuerConfig::new(Self::ISSUER, Self::ISSUER);
        config.jwks_inline = Some(self.jwks());
        config.algorithms = vec!["EdDSA".to_owned()];
        config.typ = Some("JWT".to_owned());
        config
    }

    /// A signed token for a development identity, valid from now for `ttl` (rounded up
    /// to whole seconds).
    pub fn issue(
        &self,
        sub: &str,
        roles: &[Role],
        agency: &str,
        agency_type: Option<&str>,
        ttl: Duration,
    ) -> Result<String, ConfigError> {
        if sub.is_empty() {
            return Err(ConfigError::DevToken("sub is empty"));
        }
        if agency.is_empty() {
            return Err(ConfigError::DevToken("agency is empty"));
        }
        if ttl.is_zero() {
            return Err(ConfigError::DevToken("ttl is zero"));
        }
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_err(|_| ConfigError::DevToken("the clock is before 1970"))?
            .as_secs();
        let ttl_secs = ttl.as_secs() + u64::from(ttl.subsec_nanos() > 0);
        let exp = now
            .checked_add(ttl_secs)
            .ok_or(ConfigError::DevToken("ttl is too long"))?;
        let mut claims = serde_json::json!({
            "iss": Self::ISSUER,
            "aud": Self::ISSUER,
            "sub": sub,
            "iat": now,
            "nbf": now,
            "exp": exp,
            "roles": roles.iter().map(|r| r.as_str()).collect::<Vec<_>>(),
            "agency": agency,
        });
        if let Some(t) = agency_type {
            claims["agency_type"] = serde_json::Value::from(t);
        }
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(self.kid.clone());
        header.typ = Some("JWT".to_owned());
        jsonwebtoken::encode(&header, &claims, &self.encoding)
            .map_err(|_| ConfigError::DevToken("signing failed"))
    }
}

/// Writes a new key next to `path` and links it into place unless a key is already
/// there (another process won the race: its key is the one used).
fn create(dir: &Path, path: &Path) -> Result<(), ConfigError> {
    let io = |source| ConfigError::DevKeyIo {
        path: path.to_owned(),
        source,
    };
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| ConfigError::DevKey {
        path: path.to_owned(),
        detail: format!("no system randomness: {e}"),
    })?;
    let signing = SigningKey::from_bytes(&seed);
    seed.zeroize();
    let pem = signing
        .to_pkcs8_pem(LineEnding::LF)
        .map_err(|_| ConfigError::DevKey {
            path: path.to_owned(),
            detail: "cannot encode the new key".to_owned(),
        })?;

    let tmp = temp_path(dir);
    let written = write_private(&tmp, pem.as_bytes());
    let placed = written.and_then(|()| match fs::hard_link(&tmp, path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        // No hard links on this file system: a rename is atomic too, but replaces, so
        // only use it when nothing is there yet.
        Err(_) if !path.exists() => fs::rename(&tmp, path),
        Err(e) => Err(e),
    });
    let _ = fs::remove_file(&tmp);
    placed.map_err(io)?;
    sync_dir(dir);
    Ok(())
}

fn temp_path(dir: &Path) -> PathBuf {
    let mut nonce = [0u8; 8];
    // A collision only makes create_new fail, never overwrites: a weak nonce is enough.
    let _ = getrandom::fill(&mut nonce);
    dir.join(format!(
        ".{}.{}.{}.tmp",
        DevKey::FILE_NAME,
        std::process::id(),
        u64::from_le_bytes(nonce)
    ))
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

/// Makes the new directory entry durable; best effort, as not every platform can.
fn sync_dir(dir: &Path) {
    #[cfg(unix)]
    if let Ok(d) = fs::File::open(dir) {
        let _ = d.sync_all();
    }
    #[cfg(not(unix))]
    let _ = dir;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_once_then_reused() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let a = DevKey::load_or_create(&data).unwrap();
        let b = DevKey::load_or_create(&data).unwrap();
        assert_eq!(a.kid(), b.kid());
        assert_eq!(a.jwks(), b.jwks());
        let leftovers: Vec<_> = fs::read_dir(&data)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(leftovers, [DevKey::FILE_NAME], "no temporary file is left");
        let pem = fs::read_to_string(data.join(DevKey::FILE_NAME)).unwrap();
        assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"));
    }

    #[cfg(unix)]
    #[test]
    fn owner_only_and_refused_when_others_can_read() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        DevKey::load_or_create(dir.path()).unwrap();
        let path = dir.path().join(DevKey::FILE_NAME);
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        let err = DevKey::load_or_create(dir.path()).unwrap_err();
        assert!(matches!(err, ConfigError::DevKey { .. }), "{err}");
    }

    #[test]
    fn concurrent_creation_ends_with_one_key() {
        let dir = tempfile::tempdir().unwrap();
        let kids: Vec<String> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8)
                .map(|_| s.spawn(|| DevKey::load_or_create(dir.path()).map(|k| k.kid().to_owned())))
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap().unwrap())
                .collect()
        });
        assert!(kids.windows(2).all(|w| w[0] == w[1]), "{kids:?}");
    }

    #[test]
    fn a_corrupt_key_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        write_private(&dir.path().join(DevKey::FILE_NAME), b"not a key").unwrap();
        assert!(matches!(
            DevKey::load_or_create(dir.path()),
            Err(ConfigError::DevKey { .. })
        ));
    }

    #[test]
    fn issuing_checks_its_inputs_and_debug_hides_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let key = DevKey::load_or_create(dir.path()).unwrap();
        let ttl = Duration::from_secs(60);
        assert!(key.issue("", &[], "a", None, ttl).is_err());
        assert!(key.issue("u", &[], "", None, ttl).is_err());
        assert!(key.issue("u", &[], "a", None, Duration::ZERO).is_err());
        let token = key.issue("u", &[Role::Admin], "a", None, ttl).unwrap();
        assert_eq!(token.split('.').count(), 3);
        let debug = format!("{key:?}");
        assert!(debug.contains(key.kid()) && !debug.contains("PRIVATE"));
        let config = key.issuer_config();
        assert_eq!(config.issuer, "caseline-dev");
        assert_eq!(config.audience, "caseline-dev");
        assert_eq!(config.algorithms, ["EdDSA"]);
        assert_eq!(config.typ.as_deref(), Some("JWT"));
        assert_eq!(
            config.jwks_inline.unwrap().keys[0].common.key_id.as_deref(),
            Some(key.kid())
        );
    }
}
