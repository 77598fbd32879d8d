//! The master key: the one secret from configuration, which wraps every case's data key.
//!
//! Rules: the key is 32 bytes, written as standard base64; it never prints (`Debug` is
//! redacted) and cannot be read back out of a [`MasterKey`]. Losing it loses every
//! sealed field; leaking it (together with the key store) exposes them.

use std::fmt;
use std::fs::OpenOptions;
use std::io::{ErrorKind, Write};
use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chacha20poly1305::aead::Generate;
use uuid::Uuid;
use zeroize::Zeroizing;

use crate::sealed::{Cipher, Purpose};
use crate::{Error, SecretText, WrappedKey};

/// The file [`MasterKey::load_or_create`] keeps in the data directory.
pub const MASTER_KEY_FILE: &str = "master.key";

/// Generates a fresh random 32-byte key.
pub(crate) fn random_key() -> Result<Zeroizing<[u8; 32]>, Error> {
    <[u8; 32]>::try_generate()
        .map(Zeroizing::new)
        .map_err(|_| Error::Random)
}

/// The key that wraps (encrypts) every case's data key.
pub struct MasterKey {
    cipher: Cipher,
}

impl MasterKey {
    /// A fresh random master key (for tests and for generating configuration).
    pub fn generate() -> Result<Self, Error> {
        Ok(Self {
            cipher: Cipher::new(&*random_key()?),
        })
    }

    /// A fresh random master key as the base64 text configuration takes.
    pub fn generate_base64() -> Result<SecretText, Error> {
        Ok(SecretText::new(STANDARD.encode(*random_key()?)))
    }

    /// The key from configuration: 32 bytes in standard base64 (surrounding whitespace
    /// ignored), e.g. the output of `openssl rand -base64 32`.
    pub fn from_base64(encoded: &str) -> Result<Self, Error> {
        // The decoder's own message quotes the offending character: say less.
        let bytes = Zeroizing::new(
            STANDARD
                .decode(encoded.trim())
                .map_err(|_| Error::invalid_master_key("not valid standard base64"))?,
        );
        let key: Zeroizing<[u8; 32]> =
            Zeroizing::new(bytes.as_slice().try_into().map_err(|_| {
                Error::invalid_master_key(format!("must be 32 bytes, got {}", bytes.len()))
            })?);
        Ok(Self {
            cipher: Cipher::new(&key),
        })
    }

    /// The key from a file holding its base64 text.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, Error> {
        let path = path.as_ref();
        let text = Zeroizing::new(std::fs::read_to_string(path).map_err(|e| {
            Error::invalid_master_key(format!("cannot read {}: {e}", path.display()))
        })?);
        warn_if_readable_by_others(path);
        Self::from_base64(&text).map_err(|e| match e {
            Error::InvalidMasterKey { reason } => {
                Error::invalid_master_key(format!("{}: {reason}", path.display()))
            }
            e => e,
        })
    }

    /// For development: the key in `data_dir`'s [`MASTER_KEY_FILE`], generated on first
    /// use. The file is created atomically with mode 0600 (on unix): written in full
    /// under a temporary name, then linked into place only if no other process got
    /// there first, in which case that process's key is used.
    pub fn load_or_create(data_dir: impl AsRef<Path>) -> Result<Self, Error> {
        let dir = data_dir.as_ref();
        let path = dir.join(MASTER_KEY_FILE);
        if path.exists() {
            return Self::from_file(&path);
        }
        let cannot = |what: &str, e: std::io::Error| {
            Error::invalid_master_key(format!("cannot {what} {}: {e}", path.display()))
        };
        std::fs::create_dir_all(dir).map_err(|e| cannot("create the directory of", e))?;
        let text = Self::generate_base64()?;
        let tmp = dir.join(format!(
            ".{MASTER_KEY_FILE}.{}.tmp",
            Uuid::new_v4().simple()
        ));
        let written = write_new_private(&tmp, text.expose()).and_then(|()| {
            // Unlike rename, a hard link never replaces an existing file.
            std::fs::hard_link(&tmp, &path)
        });
        let _ = std::fs::remove_file(&tmp);
        match written {
            Ok(()) => {
                sync_dir(dir);
                tracing::info!(path = %path.display(), "generated a development master key");
                Self::from_base64(text.expose())
            }
            Err(e) if e.kind() == ErrorKind::AlreadyExists => Self::from_file(&path),
            Err(e) => Err(cannot("create", e)),
        }
    }

    /// Wraps a new random data key for `case_id`: the key ready to use, and its
    /// wrapped form for the key store.
    pub(crate) fn new_case_key(&self, case_id: Uuid) -> Result<(Cipher, WrappedKey), Error> {
        let key = random_key()?;
        let wrapped = self
            .cipher
            .encrypt(Purpose::CaseKey, case_id, key.as_slice())?;
        Ok((Cipher::new(&key), WrappedKey::new(wrapped)))
    }

    /// Unwraps the stored data key of `case_id`.
    pub(crate) fn unwrap_case_key(
        &self,
        case_id: Uuid,
        wrapped: &WrappedKey,
    ) -> Result<Cipher, Error> {
        let unusable = || Error::WrongMasterKey { case_id };
        crate::sealed::check_format(wrapped.as_bytes()).map_err(|_| unusable())?;
        let key = self
            .cipher
            .decrypt(Purpose::CaseKey, case_id, wrapped.as_bytes())
            .ok_or_else(unusable)?;
        let key: Zeroizing<[u8; 32]> =
            Zeroizing::new(key.as_slice().try_into().map_err(|_| unusable())?);
        Ok(Cipher::new(&key))
    }
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MasterKey(<redacted>)")
    }
}

/// Writes `text` and a newline to a new file readable by its owner only, durably.
fn write_new_private(path: &Path, text: &str) -> std::io::Result<()> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(text.as_bytes())?;
    file.write_all(b"\n")?;
    file.sync_all()
}

/// Makes a new directory entry durable; best effort (not every platform can).
fn sync_dir(dir: &Path) {
    #[cfg(unix)]
    if let Err(e) = std::fs::File::open(dir).and_then(|d| d.sync_all()) {
        tracing::warn!(dir = %dir.display(), error = %e, "cannot sync the master key's directory");
    }
    #[cfg(not(unix))]
    let _ = dir;
}

fn warn_if_readable_by_others(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = std::fs::metadata(path)
            && meta.permissions().mode() & 0o077 != 0
        {
            tracing::warn!(
                path = %path.display(),
                mode = format_args!("{:o}", meta.permissions().mode() & 0o777),
                "the master key file is accessible to other users; make it 0600"
            );
        }
    }
    #[cfg(not(unix))]
    let _ = path;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_is_checked() {
        let err = |s: &str| MasterKey::from_base64(s).unwrap_err().to_string();
        assert_eq!(
            err("not base64!"),
            "invalid master key: not valid standard base64"
        );
        assert_eq!(
            err(&STANDARD.encode([1u8; 16])),
            "invalid master key: must be 32 bytes, got 16"
        );
        let text = MasterKey::generate_base64().unwrap();
        MasterKey::from_base64(&format!("  {}\n", text.expose())).unwrap();
    }

    #[test]
    fn case_keys_unwrap_only_for_their_case_and_master() {
        let master = MasterKey::generate().unwrap();
        let case = Uuid::new_v4();
        let (_, wrapped) = master.new_case_key(case).unwrap();
        assert!(master.unwrap_case_key(case, &wrapped).is_ok());
        assert!(matches!(
            master.unwrap_case_key(Uuid::new_v4(), &wrapped),
            Err(Error::WrongMasterKey { .. })
        ));
        assert!(matches!(
            MasterKey::generate()
                .unwrap()
                .unwrap_case_key(case, &wrapped),
            Err(Error::WrongMasterKey { .. })
        ));
        assert!(matches!(
            master.unwrap_case_key(case, &WrappedKey::new(vec![1, 2, 3])),
            Err(Error::WrongMasterKey { .. })
        ));
    }
}
