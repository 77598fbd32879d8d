//! Plaintext in wrappers that never print it.
//!
//! `Debug` and `Display` print `<redacted>`; the value comes out only through
//! `expose()`, so every place that reads a child's data is greppable. Memory is zeroed
//! when a wrapper is dropped.

use std::fmt;

use zeroize::Zeroizing;

const REDACTED: &str = "<redacted>";

/// Text to seal, or text opened: a name, a date of birth, a note.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct SecretText(Zeroizing<String>);

impl SecretText {
    pub fn new(text: impl Into<String>) -> Self {
        Self(Zeroizing::new(text.into()))
    }

    /// The plaintext. Never log it or put it in an error.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl From<String> for SecretText {
    fn from(text: String) -> Self {
        Self::new(text)
    }
}

impl From<&str> for SecretText {
    fn from(text: &str) -> Self {
        Self::new(text)
    }
}

impl fmt::Debug for SecretText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl fmt::Display for SecretText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

/// Opened bytes: the plaintext of [`crate::Vault::open`].
#[derive(Clone, PartialEq, Eq, Default)]
pub struct SecretBytes(Zeroizing<Vec<u8>>);

impl SecretBytes {
    pub fn new(bytes: impl Into<Vec<u8>>) -> Self {
        Self(Zeroizing::new(bytes.into()))
    }

    pub(crate) fn from_zeroizing(bytes: Zeroizing<Vec<u8>>) -> Self {
        Self(bytes)
    }

    /// The plaintext. Never log it or put it in an error.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    /// The text these bytes hold, if they are UTF-8 (consumed either way, so no copy of
    /// the plaintext is left behind unzeroed).
    pub(crate) fn into_text(mut self) -> Option<SecretText> {
        let bytes = std::mem::take(&mut *self.0);
        match String::from_utf8(bytes) {
            Ok(text) => Some(SecretText::new(text)),
            Err(e) => {
                // Dropping a plain Vec would not zero it.
                drop(Zeroizing::new(e.into_bytes()));
                None
            }
        }
    }
}

impl fmt::Debug for SecretBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl fmt::Display for SecretBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formatting_never_shows_the_value() {
        let text = SecretText::new("Canary Childname 2017-03-04");
        assert_eq!(format!("{text:?}"), "<redacted>");
        assert_eq!(format!("{text}"), "<redacted>");
        assert_eq!(format!("{:?}", Some(&text)), "Some(<redacted>)");
        assert_eq!(text.expose(), "Canary Childname 2017-03-04");

        let bytes = SecretBytes::new(b"Canary".to_vec());
        assert_eq!(format!("{bytes:?} {bytes}"), "<redacted> <redacted>");
        assert_eq!(bytes.expose(), b"Canary");
    }

    #[test]
    fn bytes_become_text_only_when_utf8() {
        let text = SecretBytes::new("Ünïcode".as_bytes().to_vec()).into_text();
        assert_eq!(
            text.map(|t| t.expose().to_owned()).as_deref(),
            Some("Ünïcode")
        );
        assert!(SecretBytes::new(vec![0xff, 0xfe]).into_text().is_none());
    }
}
