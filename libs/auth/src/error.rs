//! Why a token was refused, and why a configuration was rejected.
//!
//! [`AuthError`]'s `Display` text is written to be sent to the caller as is: lowercase,
//! short, naming at most a claim, never echoing the token or a claim's value. Its
//! [`AuthError::reason`] is the stable machine code for audit records and metrics.

use std::path::PathBuf;

/// A token that was not accepted. Every variant means the call is unauthenticated.
/// Deliberately not `#[non_exhaustive]`: the server maps it with a full `match`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No `authorization` metadata, or an empty value.
    #[error("missing bearer token")]
    MissingToken,
    /// The `authorization` value does not use the `Bearer` scheme.
    #[error("authorization is not a bearer token")]
    NotBearer,
    /// Not a compact JWS: wrong number of segments, bad base64url, not JSON objects,
    /// duplicate members, oversized.
    #[error("token is malformed")]
    Malformed,
    /// `alg` is `none`, unknown, or not on the issuer's allow-list.
    #[error("token algorithm is not accepted")]
    AlgorithmNotAllowed,
    /// The header carries `crit`: no extension is understood here, so per RFC 7515 the
    /// token must be refused.
    #[error("token has an unsupported critical header")]
    UnsupportedCritical,
    /// The header `typ` differs from the issuer's configured one.
    #[error("token type is not accepted")]
    WrongType,
    /// `iss` names no configured issuer (or does not match the one verified).
    #[error("token issuer is not accepted")]
    UnknownIssuer,
    /// `aud` does not contain the issuer's configured audience.
    #[error("token audience is not accepted")]
    WrongAudience,
    /// A required claim is absent (`exp`, `iss`, `aud`, `sub`, `agency`).
    #[error("token is missing the {0} claim")]
    MissingClaim(&'static str),
    /// A claim has the wrong JSON type or an impossible value (e.g. `exp` as a string).
    #[error("token {0} claim is malformed")]
    InvalidClaim(&'static str),
    /// The signing key is not in the issuer's key set, even after a refresh.
    #[error("token signing key is not known")]
    UnknownKey,
    /// The token names no `kid` and the key set holds several keys for its algorithm.
    #[error("token does not identify its signing key")]
    AmbiguousKey,
    /// The key named by `kid` is of another type than `alg` requires (e.g. an HS256
    /// token naming an RSA key).
    #[error("token algorithm does not match its signing key")]
    KeyMismatch,
    /// The issuer's key could not be used to verify (a broken key in the key set).
    #[error("token signing key is not usable")]
    UnusableKey,
    /// The signature is absent or does not verify.
    #[error("token signature is invalid")]
    BadSignature,
    /// `exp` is in the past, beyond the leeway.
    #[error("token expired")]
    Expired,
    /// `nbf` is in the future, beyond the leeway.
    #[error("token is not yet valid")]
    NotYetValid,
    /// `iat` is in the future, beyond the leeway.
    #[error("token is issued in the future")]
    IssuedInFuture,
    /// The issuer's key set could not be fetched, so no token of it can be checked.
    #[error("token signing keys are unavailable")]
    JwksUnavailable,
    /// The agency is not one this issuer may vouch for.
    #[error("token agency is not accepted from this issuer")]
    AgencyNotAllowed,
}

impl AuthError {
    /// A short, stable machine code for audit records and metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            AuthError::MissingToken => "no_token",
            AuthError::NotBearer => "not_bearer",
            AuthError::Malformed => "malformed",
            AuthError::AlgorithmNotAllowed => "alg_not_allowed",
            AuthError::UnsupportedCritical => "unsupported_crit",
            AuthError::WrongType => "bad_typ",
            AuthError::UnknownIssuer => "unknown_issuer",
            AuthError::WrongAudience => "bad_audience",
            AuthError::MissingClaim(_) => "missing_claim",
            AuthError::InvalidClaim(_) => "bad_claim",
            AuthError::UnknownKey => "unknown_kid",
            AuthError::AmbiguousKey => "ambiguous_key",
            AuthError::KeyMismatch => "alg_key_mismatch",
            AuthError::UnusableKey => "unusable_key",
            AuthError::BadSignature => "bad_signature",
            AuthError::Expired => "expired",
            AuthError::NotYetValid => "not_yet_valid",
            AuthError::IssuedInFuture => "iat_in_future",
            AuthError::JwksUnavailable => "jwks_unavailable",
            AuthError::AgencyNotAllowed => "agency_not_allowed",
        }
    }
}

/// A configuration that cannot be used. Messages are for operators and may name issuers
/// and files (never key material).
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("no token issuers are configured")]
    NoIssuers,
    #[error("leeway of {0:?} is above the 30 s maximum")]
    LeewayTooLarge(std::time::Duration),
    #[error("issuer {0:?} is configured more than once")]
    DuplicateIssuer(String),
    #[error(
        "issuer {0:?} needs an agencies list: with several issuers each must name the agencies it vouches for"
    )]
    AgenciesRequired(String),
    #[error("agency {agency:?} is listed by more than one issuer")]
    SharedAgency { agency: String },
    #[error("an issuer has an empty issuer field")]
    EmptyIssuer,
    #[error("issuer {issuer:?} has an empty {field}")]
    EmptyField { issuer: String, field: &'static str },
    #[error("issuer {0:?} needs exactly one of jwks_file and jwks_url")]
    JwksSource(String),
    #[error("issuer {0:?} has an empty algorithm list")]
    NoAlgorithms(String),
    #[error("issuer {issuer:?} lists algorithm {algorithm:?}, which is not accepted")]
    Algorithm { issuer: String, algorithm: String },
    #[error("issuer {issuer:?} has an invalid claim path in {field}")]
    ClaimPath { issuer: String, field: &'static str },
    #[error("issuer {issuer:?} has an unusable jwks_url: {detail}")]
    JwksUrl {
        issuer: String,
        detail: &'static str,
    },
    #[error("cannot read jwks file {path:?}")]
    JwksRead {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("jwks for issuer {issuer:?} is not a valid key set")]
    JwksParse { issuer: String },
    #[error("jwks for issuer {0:?} has no key usable with its algorithms")]
    JwksNoUsableKey(String),
    #[error("cannot build the jwks http client: {0}")]
    HttpClient(String),
    #[error("dev signing key {path:?}: {detail}")]
    DevKey { path: PathBuf, detail: String },
    #[error("dev signing key {path:?} cannot be read or written")]
    DevKeyIo {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot issue a dev token: {0}")]
    DevToken(&'static str),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_lowercase_without_trailing_punctuation_and_reasons_are_unique() {
        let all = [
            AuthError::MissingToken,
            AuthError::NotBearer,
            AuthError::Malformed,
            AuthError::AlgorithmNotAllowed,
            AuthError::UnsupportedCritical,
            AuthError::WrongType,
            AuthError::UnknownIssuer,
            AuthError::WrongAudience,
            AuthError::MissingClaim("exp"),
            AuthError::InvalidClaim("exp"),
            AuthError::UnknownKey,
            AuthError::AmbiguousKey,
            AuthError::KeyMismatch,
            AuthError::UnusableKey,
            AuthError::BadSignature,
            AuthError::Expired,
            AuthError::NotYetValid,
            AuthError::IssuedInFuture,
            AuthError::JwksUnavailable,
        ];
        let mut reasons = std::collections::HashSet::new();
        for e in &all {
            let msg = e.to_string();
            assert_eq!(msg, msg.to_lowercase(), "{msg}");
            assert!(!msg.ends_with(['.', '!', '?']), "{msg}");
            assert!(
                reasons.insert(e.reason()),
                "duplicate reason {}",
                e.reason()
            );
            assert!(
                e.reason()
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c == '_')
            );
        }
    }
}
