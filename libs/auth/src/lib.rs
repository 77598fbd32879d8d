//! Authentication: JWT bearer tokens validated against configured issuers, and the
//! [`Principal`] they establish.
//!
//! This crate answers one question, "who is calling?", for every gRPC call: it takes the
//! raw `authorization` metadata and returns a [`Principal`] or an [`AuthError`] (which
//! the server turns into `UNAUTHENTICATED`, and the audit log records by
//! [`AuthError::reason`]). Whether that principal may do what it asks is decided
//! elsewhere (`caseline-policy`).
//!
//! The rules (each has a test in `tests/bad_tokens.rs` or in the module that owns it):
//! - Only configured issuers are trusted; a token's unverified `iss` picks the issuer,
//!   whose keys and rules then verify it.
//! - Algorithms: RS256, ES256 and EdDSA, per issuer allow-list; HS256 only in dev mode;
//!   `none` never. The key must be of the type the algorithm needs, so a public key can
//!   never be used as an HMAC secret.
//! - `exp`, `iss`, `aud` and `sub` are required; `nbf` and `iat` are checked; the leeway
//!   is at most 30 s; NumericDates given as strings are refused; a configured `typ` must
//!   match; any `crit` header is refused.
//! - Keys come from a JWKS file, URL or inline set, are cached, and are re-fetched on an
//!   unknown `kid` at most once a minute per issuer (see the `jwks` module).
//! - Valid results are cached by SHA-256 of the token, never past the token's `exp`.
//! - Roles come from a configurable claim path (`realm_access.roles` for Keycloak);
//!   unknown role names are ignored; the `agency` claim is required.
//! - [`DevKey`] issues development tokens for the `caseline-dev` issuer.
#![forbid(unsafe_code)]

mod authenticator;
mod cache;
mod config;
mod dev;
mod error;
mod jwks;
mod principal;
mod token;

pub use authenticator::Authenticator;
pub use config::{AuthConfig, IssuerConfig, MAX_LEEWAY};
pub use dev::DevKey;
pub use error::{AuthError, ConfigError};
/// The JWKS type of [`IssuerConfig::jwks_inline`], re-exported so callers need no direct
/// `jsonwebtoken` dependency.
pub use jsonwebtoken::jwk::JwkSet;
pub use principal::{Principal, Role, UnknownRole};
