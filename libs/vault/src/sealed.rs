//! The sealed-value format and the AEAD it is built on.
//!
//! A sealed value is `version (1 byte) || nonce (24 bytes) || ciphertext || tag (16
//! bytes)`, XChaCha20-Poly1305 under the case's data key, with a fresh random nonce per
//! value (192 bits: random nonces never collide in practice). The associated data binds
//! the value to its purpose, format version and case id, so a value copied into another
//! case's event does not open there.

use std::fmt;

use chacha20poly1305::aead::{Aead, Generate, KeyInit, Payload};
use chacha20poly1305::{Key, XChaCha20Poly1305, XNonce};
use uuid::Uuid;
use zeroize::{Zeroize, Zeroizing};

use crate::Error;

/// The current (and only) format version.
const VERSION: u8 = 1;
const NONCE_LEN: usize = 24;
const TAG_LEN: usize = 16;
/// Bytes a sealed value adds to its plaintext.
pub const SEALED_OVERHEAD: usize = 1 + NONCE_LEN + TAG_LEN;

/// What a ciphertext is for, mixed into its associated data so a value of one kind is
/// never accepted as another.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Purpose {
    /// A field of an event payload, under a case's data key.
    Field,
    /// A case's data key, under the master key.
    CaseKey,
    /// The key of [`Cipher::digest`], derived from a case's data key.
    Digest,
}

impl Purpose {
    fn label(self) -> &'static [u8] {
        match self {
            Self::Field => b"caseline.sealed-field",
            Self::CaseKey => b"caseline.case-key",
            Self::Digest => b"caseline.keyed-digest",
        }
    }
}

fn associated_data(purpose: Purpose, case_id: Uuid) -> Vec<u8> {
    let label = purpose.label();
    let mut aad = Vec::with_capacity(label.len() + 2 + 16);
    aad.extend_from_slice(label);
    aad.push(0);
    aad.push(VERSION);
    aad.extend_from_slice(case_id.as_bytes());
    aad
}

/// A 256-bit XChaCha20-Poly1305 key, ready to use; zeroed on drop.
#[derive(Clone)]
pub(crate) struct Cipher(XChaCha20Poly1305);

impl Cipher {
    pub(crate) fn new(bytes: &[u8; 32]) -> Self {
        let mut key = Key::from(*bytes);
        let cipher = XChaCha20Poly1305::new(&key);
        key.as_mut_slice().zeroize();
        Self(cipher)
    }

    /// Encrypts `plaintext` into the sealed format.
    pub(crate) fn encrypt(
        &self,
        purpose: Purpose,
        case_id: Uuid,
        plaintext: &[u8],
    ) -> Result<Vec<u8>, Error> {
        let nonce = XNonce::try_generate().map_err(|_| Error::Random)?;
        let aad = associated_data(purpose, case_id);
        let ciphertext = self
            .0
            .encrypt(
                &nonce,
                Payload {
                    msg: plaintext,
                    aad: &aad,
                },
            )
            // Only a plaintext beyond XChaCha20's 256 GiB limit gets here.
            .map_err(|_| Error::Corrupt {
                reason: "plaintext too long",
            })?;
        let mut out = Vec::with_capacity(1 + NONCE_LEN + ciphertext.len());
        out.push(VERSION);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ciphertext);
        Ok(out)
    }

    /// HMAC-SHA256 of `data` under a key derived from this one for `case_id`: the
    /// ChaCha20 keystream at a nonce reserved for the purpose (random sealing nonces
    /// never meet it), so the digest is as secret as the key and dies with it.
    pub(crate) fn digest(&self, case_id: Uuid, data: &[u8]) -> Result<[u8; 32], Error> {
        use hmac::{Hmac, Mac};
        const DIGEST_NONCE: [u8; NONCE_LEN] = *b"caseline.digest.key.v1..";
        let aad = associated_data(Purpose::Digest, case_id);
        let stream = Zeroizing::new(
            self.0
                .encrypt(
                    &XNonce::from(DIGEST_NONCE),
                    Payload {
                        msg: &[0u8; 32],
                        aad: &aad,
                    },
                )
                .map_err(|_| Error::Corrupt {
                    reason: "digest key derivation failed",
                })?,
        );
        let mut mac =
            Hmac::<sha2::Sha256>::new_from_slice(&stream[..32]).map_err(|_| Error::Corrupt {
                reason: "digest key has the wrong length",
            })?;
        mac.update(&aad);
        mac.update(data);
        Ok(mac.finalize().into_bytes().into())
    }

    /// Decrypts bytes of the sealed format; `None` when authentication fails. The
    /// caller has checked the format with [`check_format`].
    pub(crate) fn decrypt(
        &self,
        purpose: Purpose,
        case_id: Uuid,
        sealed: &[u8],
    ) -> Option<Zeroizing<Vec<u8>>> {
        let nonce = XNonce::try_from(sealed.get(1..1 + NONCE_LEN)?).ok()?;
        let aad = associated_data(purpose, case_id);
        self.0
            .decrypt(
                &nonce,
                Payload {
                    msg: sealed.get(1 + NONCE_LEN..)?,
                    aad: &aad,
                },
            )
            .ok()
            .map(Zeroizing::new)
    }
}

/// Checks the framing of sealed bytes: long enough, and a version this code reads.
pub(crate) fn check_format(bytes: &[u8]) -> Result<(), Error> {
    match bytes.first() {
        None => Err(Error::Corrupt { reason: "empty" }),
        Some(&VERSION) if bytes.len() >= SEALED_OVERHEAD => Ok(()),
        Some(&VERSION) => Err(Error::Corrupt {
            reason: "too short",
        }),
        Some(_) => Err(Error::Corrupt {
            reason: "unknown format version",
        }),
    }
}

/// A sealed value: the bytes an event payload stores in place of a plaintext field.
///
/// Only the vault holding the case's key can open it. `Debug` and `Display` show the
/// length, never the bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct Sealed(Vec<u8>);

impl Sealed {
    /// Reads sealed bytes back from a payload, checking length and format version.
    pub fn from_bytes(bytes: impl Into<Vec<u8>>) -> Result<Self, Error> {
        let bytes = bytes.into();
        check_format(&bytes)?;
        Ok(Self(bytes))
    }

    /// Built by the vault from a fresh encryption, so already well-formed.
    pub(crate) fn from_trusted(bytes: Vec<u8>) -> Self {
        Self(bytes)
    }

    /// The bytes to store in an event payload.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    pub fn into_bytes(self) -> Vec<u8> {
        self.0
    }
}

impl AsRef<[u8]> for Sealed {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl TryFrom<Vec<u8>> for Sealed {
    type Error = Error;

    fn try_from(bytes: Vec<u8>) -> Result<Self, Error> {
        Self::from_bytes(bytes)
    }
}

impl TryFrom<&[u8]> for Sealed {
    type Error = Error;

    fn try_from(bytes: &[u8]) -> Result<Self, Error> {
        Self::from_bytes(bytes)
    }
}

impl fmt::Debug for Sealed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sealed(<{} bytes>)", self.0.len())
    }
}

impl fmt::Display for Sealed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cipher() -> Cipher {
        Cipher::new(&[7; 32])
    }

    #[test]
    fn round_trip_and_framing() {
        let case = Uuid::new_v4();
        let bytes = cipher().encrypt(Purpose::Field, case, b"note").unwrap();
        assert_eq!(bytes.len(), SEALED_OVERHEAD + 4);
        assert_eq!(bytes[0], VERSION);
        let plain = cipher().decrypt(Purpose::Field, case, &bytes).unwrap();
        assert_eq!(plain.as_slice(), b"note");
    }

    #[test]
    fn nonces_are_fresh() {
        let case = Uuid::new_v4();
        let a = cipher().encrypt(Purpose::Field, case, b"same").unwrap();
        let b = cipher().encrypt(Purpose::Field, case, b"same").unwrap();
        assert_ne!(a[1..1 + NONCE_LEN], b[1..1 + NONCE_LEN]);
        assert_ne!(a, b);
    }

    #[test]
    fn purpose_and_case_are_bound() {
        let case = Uuid::new_v4();
        let bytes = cipher().encrypt(Purpose::Field, case, b"x").unwrap();
        assert!(cipher().decrypt(Purpose::CaseKey, case, &bytes).is_none());
        assert!(
            cipher()
                .decrypt(Purpose::Field, Uuid::new_v4(), &bytes)
                .is_none()
        );
        assert!(
            Cipher::new(&[8; 32])
                .decrypt(Purpose::Field, case, &bytes)
                .is_none()
        );
    }

    #[test]
    fn from_bytes_checks_framing() {
        let reason = |bytes: &[u8]| match Sealed::from_bytes(bytes) {
            Err(Error::Corrupt { reason }) => reason,
            other => panic!("expected corrupt, got {other:?}"),
        };
        assert_eq!(reason(&[]), "empty");
        assert_eq!(reason(&[VERSION; SEALED_OVERHEAD - 1]), "too short");
        assert_eq!(reason(&[9; 64]), "unknown format version");
        let ok = Sealed::from_bytes(vec![VERSION; SEALED_OVERHEAD]).unwrap();
        assert_eq!(
            format!("{ok:?}"),
            format!("Sealed(<{SEALED_OVERHEAD} bytes>)")
        );
        assert_eq!(format!("{ok}"), format!("{ok:?}"));
    }
}
