//! An issuer's verification keys: where they come from, which one verifies a token, and
//! when they are fetched again.
//!
//! Rules:
//! - A key is only ever used with the algorithm its type implies: RSA (2048 to 4096 bits)
//!   for RS256, EC P-256 for ES256, OKP Ed25519 for EdDSA, `oct` (32 bytes or more) for
//!   HS256. A JWK `alg`, `use` or `key_ops` that says otherwise excludes it. So an RSA
//!   public key can never become an HMAC secret.
//! - A token with a `kid` uses the key with that `kid`; without one, the key set must
//!   hold exactly one key for the token's algorithm.
//! - Key sets are cached. A file is read at start, a URL is fetched on first use (so a
//!   service may start before its identity provider; a failed first fetch is retried no
//!   sooner than 5 s later). An unknown `kid` causes at most one re-fetch per issuer per
//!   minute, whatever the number of concurrent callers; within that minute unknown keys
//!   are refused without fetching. A failed fetch keeps the previous keys and refuses
//!   the token that asked for it (`jwks_unavailable`).
//! - Fetches have a 5 s connect and 10 s total timeout, follow no redirects and read at
//!   most 1 MiB.

use std::path::PathBuf;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::{
    AlgorithmParameters, EllipticCurve, Jwk, JwkSet, KeyAlgorithm, KeyOperations, PublicKeyUse,
};
use jsonwebtoken::{Algorithm, DecodingKey};
use tokio::time::Instant;

use crate::error::{AuthError, ConfigError};

/// The least time between two fetches caused by unknown keys.
pub(crate) const UNKNOWN_KID_REFRESH_INTERVAL: Duration = Duration::from_secs(60);
/// The least time between a failed first fetch and the next attempt.
pub(crate) const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(5);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);
const MAX_JWKS_BYTES: usize = 1024 * 1024;

/// What a key may verify.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum KeyKind {
    Rsa,
    P256,
    Ed25519,
    Oct,
}

impl KeyKind {
    fn verifies(self, alg: Algorithm) -> bool {
        matches!(
            (self, alg),
            (KeyKind::Rsa, Algorithm::RS256)
                | (KeyKind::P256, Algorithm::ES256)
                | (KeyKind::Ed25519, Algorithm::EdDSA)
                | (KeyKind::Oct, Algorithm::HS256)
        )
    }
}

#[derive(Clone, Debug)]
struct VerifyKey {
    kid: Option<String>,
    kind: KeyKind,
    /// The JWK's own `alg`, if it named one.
    alg: Option<Algorithm>,
    key: DecodingKey,
}

impl VerifyKey {
    fn verifies(&self, alg: Algorithm) -> bool {
        self.kind.verifies(alg) && self.alg.is_none_or(|a| a == alg)
    }
}

/// The usable keys of one JWKS document.
#[derive(Clone, Debug, Default)]
pub(crate) struct KeySet {
    keys: Vec<VerifyKey>,
}

/// The outcome of looking a token's key up.
#[derive(Debug)]
pub(crate) enum Selection<'a> {
    Found(&'a DecodingKey),
    /// No key with that `kid` (or, without a `kid`, none for the algorithm).
    NotFound,
    /// The `kid` exists but is not a key for the token's algorithm.
    Mismatch,
    /// Several keys fit and the token does not say which.
    Ambiguous,
}

impl KeySet {
    /// Parses a JWKS document. Keys that cannot be used for verification (encryption keys,
    /// unsupported types or curves, weak or broken keys) are skipped, not fatal: identity
    /// providers publish such keys next to their signing keys.
    pub(crate) fn from_json(bytes: &[u8]) -> Result<KeySet, serde_json::Error> {
        #[derive(serde::Deserialize)]
        struct Document {
            keys: Vec<serde_json::Value>,
        }
        let doc: Document = serde_json::from_slice(bytes)?;
        let keys = doc
            .keys
            .into_iter()
            .filter_map(|v| serde_json::from_value::<Jwk>(v).ok())
            .filter_map(|jwk| usable_key(&jwk))
            .collect();
        Ok(KeySet { keys })
    }

    pub(crate) fn from_jwk_set(set: &JwkSet) -> KeySet {
        KeySet {
            keys: set.keys.iter().filter_map(usable_key).collect(),
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether any key can verify one of these algorithms.
    pub(crate) fn serves_any(&self, algorithms: &[Algorithm]) -> bool {
        self.keys
            .iter()
            .any(|k| algorithms.iter().any(|a| k.verifies(*a)))
    }

    pub(crate) fn select(&self, kid: Option<&str>, alg: Algorithm) -> Selection<'_> {
        let mut fitting = match kid {
            Some(kid) => {
                let mut named = self
                    .keys
                    .iter()
                    .filter(|k| k.kid.as_deref() == Some(kid))
                    .peekable();
                if named.peek().is_none() {
                    return Selection::NotFound;
                }
                let fitting: Vec<_> = named.filter(|k| k.verifies(alg)).collect();
                if fitting.is_empty() {
                    return Selection::Mismatch;
                }
                fitting
            }
            None => self.keys.iter().filter(|k| k.verifies(alg)).collect(),
        };
        match fitting.len() {
            0 => Selection::NotFound,
            1 => Selection::Found(&fitting.remove(0).key),
            _ => Selection::Ambiguous,
        }
    }
}

/// A verification key from a JWK, or `None` when it must not be used.
fn usable_key(jwk: &Jwk) -> Option<VerifyKey> {
    let common = &jwk.common;
    if common
        .public_key_use
        .as_ref()
        .is_some_and(|u| *u != PublicKeyUse::Signature)
    {
        return None;
    }
    if common
        .key_operations
        .as_ref()
        .is_some_and(|ops| !ops.contains(&KeyOperations::Verify))
    {
        return None;
    }
    let alg = match common.key_algorithm {
        None => None,
        Some(KeyAlgorithm::RS256) => Some(Algorithm::RS256),
        Some(KeyAlgorithm::ES256) => Some(Algorithm::ES256),
        Some(KeyAlgorithm::EdDSA) => Some(Algorithm::EdDSA),
        Some(KeyAlgorithm::HS256) => Some(Algorithm::HS256),
        // Another algorithm (RS384, RSA-OAEP, ...): never used for our tokens.
        Some(_) => return None,
    };
    let (kind, key) = match &jwk.algorithm {
        AlgorithmParameters::RSA(p) => {
            let n = strip_leading_zeros(decode(&p.n)?);
            let e = strip_leading_zeros(decode(&p.e)?);
            if n.is_empty() {
                return None;
            }
            let bits = n.len() * 8 - n.first().map_or(8, |b| b.leading_zeros() as usize);
            if !(2048..=4096).contains(&bits) || e.is_empty() || e.len() > 8 {
                return None;
            }
            (KeyKind::Rsa, DecodingKey::from_rsa_raw_components(&n, &e))
        }
        AlgorithmParameters::EllipticCurve(p) => {
            if p.curve != EllipticCurve::P256 {
                return None;
            }
            let (x, y) = (decode(&p.x)?, decode(&p.y)?);
            if x.len() != 32 || y.len() != 32 {
                return None;
            }
            (
                KeyKind::P256,
                DecodingKey::from_ec_components(&p.x, &p.y).ok()?,
            )
        }
        AlgorithmParameters::OctetKeyPair(p) => {
            if p.curve != EllipticCurve::Ed25519 {
                return None;
            }
            let x: [u8; 32] = decode(&p.x)?.try_into().ok()?;
            let vk = ed25519_dalek::VerifyingKey::from_bytes(&x).ok()?;
            if vk.is_weak() {
                return None;
            }
            (
                KeyKind::Ed25519,
                DecodingKey::from_ed_components(&p.x).ok()?,
            )
        }
        AlgorithmParameters::OctetKey(p) => {
            let secret = decode(&p.value)?;
            if secret.len() < 32 {
                return None;
            }
            (KeyKind::Oct, DecodingKey::from_secret(&secret))
        }
        // `Other` and whatever later versions add.
        _ => return None,
    };
    if alg.is_some_and(|a| !kind.verifies(a)) {
        return None;
    }
    Some(VerifyKey {
        kid: common.key_id.clone(),
        kind,
        alg,
        key,
    })
}

fn decode(b64: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(b64).ok()
}

fn strip_leading_zeros(mut bytes: Vec<u8>) -> Vec<u8> {
    let zeros = bytes.iter().take_while(|b| **b == 0).count();
    bytes.drain(..zeros);
    bytes
}

/// Where an issuer's key set comes from.
#[derive(Debug)]
pub(crate) enum Source {
    /// Given in code; never changes.
    Inline,
    /// Read at start; read again on an unknown `kid` (so keys rotate by replacing the file).
    File(PathBuf),
    Url {
        url: String,
        client: reqwest::Client,
    },
}

/// Why a fetch is wanted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Cause {
    /// There are no keys yet.
    FirstUse,
    /// A token names a key the cached set does not hold.
    UnknownKey,
}

#[derive(Debug, Default)]
struct FetchState {
    last_unknown_key_fetch: Option<Instant>,
    last_failure: Option<Instant>,
}

impl FetchState {
    /// Whether a fetch for `cause` may happen at `now`; records it if so.
    fn admit(&mut self, cause: Cause, now: Instant) -> bool {
        match cause {
            Cause::FirstUse => self
                .last_failure
                .is_none_or(|t| now.saturating_duration_since(t) >= RETRY_AFTER_FAILURE),
            Cause::UnknownKey => {
                let allowed = self.last_unknown_key_fetch.is_none_or(|t| {
                    now.saturating_duration_since(t) >= UNKNOWN_KID_REFRESH_INTERVAL
                });
                if allowed {
                    self.last_unknown_key_fetch = Some(now);
                }
                allowed
            }
        }
    }
}

/// The cached keys, with a generation number bumped by every successful fetch so that a
/// caller can tell whether someone else fetched while it waited.
#[derive(Debug, Default)]
struct Snapshot {
    generation: u64,
    keys: Option<Arc<KeySet>>,
}

/// One issuer's keys and the rules for fetching them.
#[derive(Debug)]
pub(crate) struct IssuerKeys {
    issuer: String,
    source: Source,
    current: RwLock<Snapshot>,
    /// Serialises fetches; held across one fetch at most.
    fetch: tokio::sync::Mutex<FetchState>,
}

impl IssuerKeys {
    pub(crate) fn new(issuer: &str, source: Source, initial: Option<KeySet>) -> Self {
        IssuerKeys {
            issuer: issuer.to_owned(),
            source,
            current: RwLock::new(Snapshot {
                generation: 0,
                keys: initial.map(Arc::new),
            }),
            fetch: tokio::sync::Mutex::new(FetchState::default()),
        }
    }

    fn snapshot(&self) -> (u64, Option<Arc<KeySet>>) {
        let s = self.current.read().unwrap_or_else(PoisonError::into_inner);
        (s.generation, s.keys.clone())
    }

    /// The key that must verify a token with this `kid` and `alg`.
    pub(crate) async fn key_for(
        &self,
        kid: Option<&str>,
        alg: Algorithm,
    ) -> Result<DecodingKey, AuthError> {
        let (mut generation, mut keys) = self.snapshot();
        let first_use = keys.is_none();
        if first_use {
            self.fetch(Cause::FirstUse, generation).await?;
            (generation, keys) = self.snapshot();
        }
        let keys = keys.ok_or(AuthError::JwksUnavailable)?;
        match keys.select(kid, alg) {
            Selection::Found(key) => return Ok(key.clone()),
            Selection::Mismatch => return Err(AuthError::KeyMismatch),
            Selection::Ambiguous => return Err(AuthError::AmbiguousKey),
            // Keys fetched a moment ago for this very call are as fresh as they get.
            Selection::NotFound if first_use => return Err(AuthError::UnknownKey),
            Selection::NotFound => {}
        }
        let Some(fresh) = self.fetch(Cause::UnknownKey, generation).await? else {
            return Err(AuthError::UnknownKey);
        };
        match fresh.select(kid, alg) {
            Selection::Found(key) => Ok(key.clone()),
            Selection::Mismatch => Err(AuthError::KeyMismatch),
            Selection::Ambiguous => Err(AuthError::AmbiguousKey),
            Selection::NotFound => Err(AuthError::UnknownKey),
        }
    }

    /// Fetches the key set if the rules allow it. `Ok(None)`: not allowed now (or the
    /// source cannot change). If another caller fetched since `seen_generation`, its
    /// result is returned without fetching again.
    async fn fetch(
        &self,
        cause: Cause,
        seen_generation: u64,
    ) -> Result<Option<Arc<KeySet>>, AuthError> {
        if matches!(self.source, Source::Inline) {
            return Ok(None);
        }
        let mut state = self.fetch.lock().await;
        let (generation, keys) = self.snapshot();
        if generation != seen_generation {
            return Ok(keys);
        }
        let now = Instant::now();
        if !state.admit(cause, now) {
            return match cause {
                Cause::FirstUse => Err(AuthError::JwksUnavailable),
                Cause::UnknownKey => Ok(None),
            };
        }
        // A document without one usable key (an identity provider's hiccup) must not
        // replace keys that work.
        let loaded = self.load().await.and_then(|set| {
            if set.len() == 0 {
                Err("no usable key in the jwks document".to_owned())
            } else {
                Ok(set)
            }
        });
        match loaded {
            Ok(set) => {
                tracing::info!(issuer = %self.issuer, keys = set.len(), ?cause, "jwks fetched");
                state.last_failure = None;
                let set = Arc::new(set);
                let mut current = self.current.write().unwrap_or_else(PoisonError::into_inner);
                current.generation += 1;
                current.keys = Some(set.clone());
                Ok(Some(set))
            }
            Err(error) => {
                tracing::warn!(issuer = %self.issuer, %error, ?cause, "jwks fetch failed");
                state.last_failure = Some(now);
                Err(AuthError::JwksUnavailable)
            }
        }
    }

    async fn load(&self) -> Result<KeySet, String> {
        let bytes = match &self.source {
            Source::Inline => return Err("inline key sets are not fetched".to_owned()),
            Source::File(path) => tokio::fs::read(path).await.map_err(|e| e.to_string())?,
            Source::Url { url, client } => fetch_url(client, url).await?,
        };
        KeySet::from_json(&bytes).map_err(|_| "not a jwks document".to_owned())
    }
}

async fn fetch_url(client: &reqwest::Client, url: &str) -> Result<Vec<u8>, String> {
    let mut response = client
        .get(url)
        .header(
            reqwest::header::ACCEPT,
            "application/json, application/jwk-set+json",
        )
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if !response.status().is_success() {
        return Err(format!("http status {}", response.status().as_u16()));
    }
    if response
        .content_length()
        .is_some_and(|l| l > MAX_JWKS_BYTES as u64)
    {
        return Err("jwks document too large".to_owned());
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| e.to_string())? {
        if body.len() + chunk.len() > MAX_JWKS_BYTES {
            return Err("jwks document too large".to_owned());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// The HTTP client for JWKS URLs: rustls with the ring provider and the platform's
/// certificate verifier, passed to reqwest so no process-wide TLS default is needed.
pub(crate) fn http_client() -> Result<reqwest::Client, ConfigError> {
    use rustls_platform_verifier::BuilderVerifierExt as _;

    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ConfigError::HttpClient(e.to_string()))?
        .with_platform_verifier()
        .map_err(|e| ConfigError::HttpClient(e.to_string()))?
        .with_no_client_auth();
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(FETCH_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("caseline-auth/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| ConfigError::HttpClient(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn b64(bytes: &[u8]) -> String {
        URL_SAFE_NO_PAD.encode(bytes)
    }

    fn rsa_jwk(kid: &str, bits: usize) -> serde_json::Value {
        let mut n = vec![0xC5u8; bits / 8];
        n[0] = 0xC5;
        json!({"kty": "RSA", "kid": kid, "n": b64(&n), "e": "AQAB"})
    }

    fn ed_jwk(kid: &str) -> serde_json::Value {
        let sk = ed25519_dalek::SigningKey::from_bytes(&[7u8; 32]);
        json!({"kty": "OKP", "crv": "Ed25519", "kid": kid,
               "x": b64(sk.verifying_key().as_bytes())})
    }

    fn set(keys: Vec<serde_json::Value>) -> KeySet {
        KeySet::from_json(json!({ "keys": keys }).to_string().as_bytes()).unwrap()
    }

    #[test]
    fn an_rsa_key_with_an_empty_or_zero_modulus_is_skipped_not_a_panic() {
        for n in ["", "AA", "AAAA"] {
            let s = set(vec![json!({"kty": "RSA", "kid": "k", "n": n, "e": "AQAB"})]);
            assert_eq!(s.len(), 0, "{n:?}");
        }
    }

    #[test]
    fn keys_unfit_for_verification_are_skipped() {
        let mut enc = rsa_jwk("enc", 2048);
        enc["use"] = json!("enc");
        let mut oaep = rsa_jwk("oaep", 2048);
        oaep["alg"] = json!("RSA-OAEP");
        let mut sign_only = rsa_jwk("sign-only", 2048);
        sign_only["key_ops"] = json!(["sign"]);
        let mut ed_as_rs = ed_jwk("ed-as-rs");
        ed_as_rs["alg"] = json!("RS256");
        let s = set(vec![
            enc,
            oaep,
            sign_only,
            ed_as_rs,
            rsa_jwk("small", 1024),
            rsa_jwk("huge", 8192),
            json!({"kty": "EC", "crv": "P-384", "kid": "p384", "x": b64(&[1; 48]), "y": b64(&[1; 48])}),
            json!({"kty": "EC", "crv": "P-256", "kid": "short", "x": b64(&[1; 31]), "y": b64(&[1; 32])}),
            json!({"kty": "OKP", "crv": "Ed25519", "kid": "ed-short", "x": b64(&[1; 31])}),
            json!({"kty": "OKP", "crv": "Ed25519", "kid": "ed-weak", "x": b64(&[0; 32])}),
            json!({"kty": "oct", "kid": "oct-short", "k": b64(b"secret")}),
            json!({"kty": "XYZ", "kid": "other"}),
            json!({"kty": "RSA", "kid": "bad-b64", "n": "!!", "e": "AQAB"}),
            json!("not even an object"),
        ]);
        assert_eq!(s.len(), 0, "{s:?}");
    }

    #[test]
    fn selection_by_kid_and_algorithm() {
        let s = set(vec![
            rsa_jwk("rsa-1", 2048),
            rsa_jwk("rsa-2", 4096),
            ed_jwk("ed"),
            json!({"kty": "oct", "kid": "hmac", "k": b64(&[9; 32])}),
        ]);
        assert_eq!(s.len(), 4);
        assert!(matches!(
            s.select(Some("rsa-1"), Algorithm::RS256),
            Selection::Found(_)
        ));
        assert!(matches!(
            s.select(Some("ed"), Algorithm::EdDSA),
            Selection::Found(_)
        ));
        // The classic confusion: an HS256 token naming the RSA key.
        assert!(matches!(
            s.select(Some("rsa-1"), Algorithm::HS256),
            Selection::Mismatch
        ));
        assert!(matches!(
            s.select(Some("hmac"), Algorithm::RS256),
            Selection::Mismatch
        ));
        assert!(matches!(
            s.select(Some("nope"), Algorithm::RS256),
            Selection::NotFound
        ));
        // No kid: exactly one key for the algorithm, or refused.
        assert!(matches!(
            s.select(None, Algorithm::RS256),
            Selection::Ambiguous
        ));
        assert!(matches!(
            s.select(None, Algorithm::EdDSA),
            Selection::Found(_)
        ));
        assert!(matches!(
            s.select(None, Algorithm::ES256),
            Selection::NotFound
        ));
        assert!(s.serves_any(&[Algorithm::ES256, Algorithm::EdDSA]));
        assert!(!s.serves_any(&[Algorithm::ES256]));
    }

    #[test]
    fn a_jwk_alg_narrows_the_key() {
        let mut k = json!({"kty": "oct", "kid": "h", "k": b64(&[9; 32]), "alg": "HS256"});
        assert!(matches!(
            set(vec![k.clone()]).select(Some("h"), Algorithm::HS256),
            Selection::Found(_)
        ));
        k["alg"] = json!("HS512");
        assert_eq!(set(vec![k]).len(), 0);
    }

    #[test]
    fn not_a_jwks_document() {
        for bad in ["", "{}", "[]", "{\"keys\": {}}", "null"] {
            assert!(KeySet::from_json(bad.as_bytes()).is_err(), "{bad}");
        }
    }

    #[test]
    fn fetch_admission() {
        let t0 = Instant::now();
        let mut s = FetchState::default();
        assert!(s.admit(Cause::FirstUse, t0));
        s.last_failure = Some(t0);
        assert!(!s.admit(Cause::FirstUse, t0 + Duration::from_secs(4)));
        assert!(s.admit(Cause::FirstUse, t0 + RETRY_AFTER_FAILURE));

        assert!(s.admit(Cause::UnknownKey, t0));
        assert!(!s.admit(Cause::UnknownKey, t0 + Duration::from_secs(1)));
        assert!(!s.admit(Cause::UnknownKey, t0 + Duration::from_secs(59)));
        assert!(s.admit(Cause::UnknownKey, t0 + Duration::from_secs(60)));
        assert!(!s.admit(Cause::UnknownKey, t0 + Duration::from_secs(61)));
    }

    #[test]
    fn the_http_client_builds_without_a_process_wide_tls_provider() {
        http_client().unwrap();
    }
}
