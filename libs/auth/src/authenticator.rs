//! Turning the `authorization` metadata of a call into a [`Principal`], or refusing it.
//!
//! The checks, in order (the first failure is the reason reported):
//! 1. a `Bearer` value of at most 16 KiB; a cached result for the same token text is
//!    returned while strictly before its `exp`;
//! 2. three canonical base64url segments; header and payload JSON objects without
//!    duplicate members;
//! 3. `alg` is not `none`; no `crit` header (no extension is understood, RFC 7515 4.1.11);
//! 4. the unverified `iss` picks a configured issuer (a string, matched exactly);
//! 5. `alg` is on that issuer's allow-list, and `typ` matches when one is configured;
//! 6. a signature is present; the key comes from the issuer's JWKS by `kid` and must be
//!    of the type `alg` requires (see the `jwks` module);
//! 7. `jsonwebtoken` verifies the signature and the registered claims with nothing left
//!    to its defaults: `exp`, `iss`, `aud` and `sub` required, `nbf` checked, the
//!    configured leeway (30 s at most), the issuer and audience pinned;
//! 8. then, on the verified payload: `exp`, `nbf` and `iat` must be JSON numbers (a
//!    string is refused, never coerced); `iat` may not be in the future beyond the
//!    leeway; `sub` a non-empty string; the agency claim a non-empty string; the roles
//!    claim an array of strings or one string.
//!
//! Roles that are not Caseline's are ignored; a token with none is still authenticated
//! (authorization refuses it later). The `Display` of every refusal is safe to return to
//! the caller; its `reason()` goes to the audit record.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, Validation};
use serde_json::{Map, Value};

use crate::cache::{self, TokenCache};
use crate::config::{AuthConfig, IssuerConfig};
use crate::error::{AuthError, ConfigError};
use crate::jwks::{IssuerKeys, KeySet, Source};
use crate::principal::{Principal, Role};
use crate::token::{self, Round, numeric_date};

/// Longest `sub` and agency values accepted: ids, not documents.
const MAX_ID_LEN: usize = 256;

/// Validates bearer tokens against the configured issuers. Cheap to clone: clones share
/// key sets and the validation cache.
#[derive(Clone)]
pub struct Authenticator {
    inner: Arc<Inner>,
}

struct Inner {
    issuers: HashMap<String, Issuer>,
    leeway: Duration,
    cache: TokenCache,
    /// The time the cache (step 1) and the claim checks (step 8) go by.
    clock: Box<dyn Fn() -> SystemTime + Send + Sync>,
}

struct Issuer {
    config: IssuerConfig,
    /// One `Validation` per allowed algorithm: `jsonwebtoken` wants every algorithm of a
    /// validation to fit the key, so each token is checked against its own.
    validations: Vec<(Algorithm, Validation)>,
    keys: IssuerKeys,
}

impl fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut issuers: Vec<_> = self.inner.issuers.keys().collect();
        issuers.sort();
        f.debug_struct("Authenticator")
            .field("issuers", &issuers)
            .field("leeway", &self.inner.leeway)
            .field("cached_tokens", &self.inner.cache.len())
            .finish()
    }
}

impl Authenticator {
    /// Validates `config`, reads JWKS files and inline key sets (each must hold a key
    /// for one of its issuer's algorithms) and prepares the HTTP client. JWKS URLs are
    /// fetched lazily, on the first token of their issuer, so that a service can start
    /// while its identity provider is still starting.
    pub async fn new(config: AuthConfig) -> Result<Self, ConfigError> {
        Self::with_clock(config, SystemTime::now).await
    }

    /// As [`Authenticator::new`], with the cache and the checks of `exp`, `nbf` and
    /// `iat` after verification going by `clock`, so that a test can move past a
    /// token's expiry instead of waiting for it. (`jsonwebtoken`'s own check of `exp`
    /// and `nbf` still goes by the system clock: a token is refused if either says so.)
    pub async fn with_clock(
        config: AuthConfig,
        clock: impl Fn() -> SystemTime + Send + Sync + 'static,
    ) -> Result<Self, ConfigError> {
        config.validate()?;
        let needs_http = config.issuers.iter().any(|i| i.jwks_url.is_some());
        let client = if needs_http {
            Some(crate::jwks::http_client()?)
        } else {
            None
        };
        let leeway = config.leeway.as_secs();
        let mut issuers = HashMap::with_capacity(config.issuers.len());
        for issuer in config.issuers {
            let algorithms = issuer.allowed_algorithms(config.dev_mode)?;
            let (source, initial) = match (&issuer.jwks_file, &issuer.jwks_url, &issuer.jwks_inline)
            {
                (Some(path), _, _) => {
                    let bytes =
                        tokio::fs::read(path)
                            .await
                            .map_err(|source| ConfigError::JwksRead {
                                path: path.clone(),
                                source,
                            })?;
                    let set = KeySet::from_json(&bytes).map_err(|_| ConfigError::JwksParse {
                        issuer: issuer.issuer.clone(),
                    })?;
                    (Source::File(path.clone()), Some(set))
                }
                (None, Some(url), _) => (
                    Source::Url {
                        url: url.clone(),
                        client: client
                            .clone()
                            .ok_or_else(|| ConfigError::HttpClient("not built".into()))?,
                    },
                    None,
                ),
                (None, None, Some(set)) => (Source::Inline, Some(KeySet::from_jwk_set(set))),
                (None, None, None) => return Err(ConfigError::JwksSource(issuer.issuer.clone())),
            };
            if let Some(set) = &initial
                && !set.serves_any(&algorithms)
            {
                return Err(ConfigError::JwksNoUsableKey(issuer.issuer.clone()));
            }
            let validations = algorithms
                .iter()
                .map(|alg| (*alg, validation(&issuer, *alg, leeway)))
                .collect();
            let keys = IssuerKeys::new(&issuer.issuer, source, initial);
            issuers.insert(
                issuer.issuer.clone(),
                Issuer {
                    config: issuer,
                    validations,
                    keys,
                },
            );
        }
        Ok(Authenticator {
            inner: Arc::new(Inner {
                issuers,
                leeway: config.leeway,
                cache: TokenCache::new(cache::DEFAULT_CAPACITY),
                clock: Box::new(clock),
            }),
        })
    }

    /// The principal of a valid bearer token. `authorization` is the raw value of the
    /// gRPC `authorization` metadata (`None` when absent).
    pub async fn authenticate(&self, authorization: Option<&str>) -> Result<Principal, AuthError> {
        let result = self.check(authorization).await;
        if let Err(error) = &result {
            tracing::debug!(reason = error.reason(), "bearer token refused");
        }
        result
    }

    async fn check(&self, authorization: Option<&str>) -> Result<Principal, AuthError> {
        let raw = token::bearer_token(authorization)?;
        let cache_key = cache::key(raw);
        if let Some(principal) = self.inner.cache.get(&cache_key, (self.inner.clock)()) {
            return Ok(principal);
        }

        let parsed = token::parse(raw)?;
        let alg_name = match parsed.header.get("alg") {
            Some(Value::String(alg)) => alg.as_str(),
            Some(_) => return Err(AuthError::Malformed),
            None => return Err(AuthError::AlgorithmNotAllowed),
        };
        if alg_name.eq_ignore_ascii_case("none") {
            return Err(AuthError::AlgorithmNotAllowed);
        }
        if parsed.header.contains_key("crit") {
            return Err(AuthError::UnsupportedCritical);
        }
        let issuer = match parsed.claims.get("iss") {
            Some(Value::String(iss)) => self
                .inner
                .issuers
                .get(iss)
                .ok_or(AuthError::UnknownIssuer)?,
            Some(_) => return Err(AuthError::InvalidClaim("iss")),
            None => return Err(AuthError::MissingClaim("iss")),
        };
        let (alg, validation) = issuer
            .validations
            .iter()
            .find(|(alg, _)| alg_name.parse::<Algorithm>().is_ok_and(|a| a == *alg))
            .ok_or(AuthError::AlgorithmNotAllowed)?;
        if let Some(want) = &issuer.config.typ {
            match parsed.header.get("typ") {
                Some(Value::String(typ)) if same_typ(typ, want) => {}
                _ => return Err(AuthError::WrongType),
            }
        }
        let kid = match parsed.header.get("kid") {
            None => None,
            Some(Value::String(kid)) => Some(kid.as_str()),
            Some(_) => return Err(AuthError::Malformed),
        };
        if !parsed.has_signature {
            return Err(AuthError::BadSignature);
        }

        let key = issuer.keys.key_for(kid, *alg).await?;
        jsonwebtoken::decode::<Value>(raw, &key, validation)
            .map_err(|e| jwt_error(e.kind(), &parsed.claims))?;

        // The payload parsed above is the one just verified (same bytes), and has unique
        // member names, so it is safe to read the rest from it.
        let now = (self.inner.clock)();
        let principal = principal(&issuer.config, &parsed.claims, now, self.inner.leeway)?;
        self.inner.cache.insert(cache_key, &principal, now);
        Ok(principal)
    }
}

/// The `jsonwebtoken` validation for one issuer and algorithm. Every field is set here,
/// because the crate's defaults accept a missing `aud` or `iss`, skip `nbf` and allow
/// 60 s of skew.
fn validation(issuer: &IssuerConfig, alg: Algorithm, leeway: u64) -> Validation {
    let mut v = Validation::new(alg);
    v.algorithms = vec![alg];
    v.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    v.leeway = leeway;
    v.reject_tokens_expiring_in_less_than = 0;
    v.validate_exp = true;
    v.validate_nbf = true;
    v.validate_aud = true;
    v.set_audience(&[&issuer.audience]);
    v.set_issuer(&[&issuer.issuer]);
    v.sub = None;
    v
}

/// `typ` values compare case-insensitively and without an `application/` prefix
/// (RFC 7515 4.1.9).
fn same_typ(got: &str, want: &str) -> bool {
    fn bare(t: &str) -> &str {
        match t.get(..12) {
            Some(p) if p.eq_ignore_ascii_case("application/") => &t[12..],
            _ => t,
        }
    }
    bare(got).eq_ignore_ascii_case(bare(want))
}

fn jwt_error(kind: &ErrorKind, claims: &Map<String, Value>) -> AuthError {
    match kind {
        ErrorKind::InvalidSignature => AuthError::BadSignature,
        ErrorKind::ExpiredSignature => AuthError::Expired,
        ErrorKind::ImmatureSignature => AuthError::NotYetValid,
        ErrorKind::InvalidAudience => AuthError::WrongAudience,
        ErrorKind::InvalidIssuer => AuthError::UnknownIssuer,
        // The crate reports a claim of the wrong type as missing: tell them apart.
        ErrorKind::MissingRequiredClaim(name) => {
            let name = registered_claim(name);
            if claims.contains_key(name) {
                AuthError::InvalidClaim(name)
            } else {
                AuthError::MissingClaim(name)
            }
        }
        ErrorKind::InvalidClaimFormat(name) => AuthError::InvalidClaim(registered_claim(name)),
        ErrorKind::InvalidAlgorithm
        | ErrorKind::MissingAlgorithm
        | ErrorKind::UnsupportedAlgorithm
        | ErrorKind::InvalidAlgorithmName => AuthError::KeyMismatch,
        ErrorKind::InvalidKeyFormat
        | ErrorKind::InvalidRsaKey(_)
        | ErrorKind::InvalidEcdsaKey
        | ErrorKind::InvalidEddsaKey => AuthError::UnusableKey,
        _ => AuthError::Malformed,
    }
}

fn registered_claim(name: &str) -> &'static str {
    match name {
        "exp" => "exp",
        "nbf" => "nbf",
        "iss" => "iss",
        "aud" => "aud",
        "sub" => "sub",
        _ => "registered",
    }
}

/// The checks `jsonwebtoken` does not make, and the principal they allow.
fn principal(
    issuer: &IssuerConfig,
    claims: &Map<String, Value>,
    now: SystemTime,
    leeway: Duration,
) -> Result<Principal, AuthError> {
    let now_secs = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let exp = match claims.get("exp") {
        None => return Err(AuthError::MissingClaim("exp")),
        Some(v) => numeric_date(v, Round::Down).ok_or(AuthError::InvalidClaim("exp"))?,
    };
    if exp.saturating_add(leeway.as_secs()) < now_secs {
        return Err(AuthError::Expired);
    }
    if let Some(v) = claims.get("nbf") {
        let nbf = numeric_date(v, Round::Up).ok_or(AuthError::InvalidClaim("nbf"))?;
        if nbf > now_secs.saturating_add(leeway.as_secs()) {
            return Err(AuthError::NotYetValid);
        }
    }
    if let Some(v) = claims.get("iat") {
        let iat = numeric_date(v, Round::Up).ok_or(AuthError::InvalidClaim("iat"))?;
        if iat > now_secs.saturating_add(leeway.as_secs()) {
            return Err(AuthError::IssuedInFuture);
        }
    }
    let subject = id_claim(claims.get("sub"), "sub")?;
    let agency = id_claim(token::claim_at(claims, &issuer.agency_claim), "agency")?;
    if let Some(agencies) = &issuer.agencies
        && !agencies.contains(&agency)
    {
        return Err(AuthError::AgencyNotAllowed);
    }
    let agency_type = match token::claim_at(claims, &issuer.agency_type_claim) {
        None | Some(Value::Null) => None,
        Some(v) => Some(id_claim(Some(v), "agency_type")?),
    };
    let roles = roles(token::claim_at(claims, &issuer.roles_claim))?;
    Ok(Principal {
        subject,
        issuer: issuer.issuer.clone(),
        roles,
        agency,
        agency_type,
        expires_at: UNIX_EPOCH + Duration::from_secs(exp),
    })
}

fn id_claim(value: Option<&Value>, name: &'static str) -> Result<String, AuthError> {
    match value {
        None | Some(Value::Null) => Err(AuthError::MissingClaim(name)),
        Some(Value::String(s)) if !s.is_empty() && s.len() <= MAX_ID_LEN => Ok(s.clone()),
        Some(_) => Err(AuthError::InvalidClaim(name)),
    }
}

/// Caseline roles at the roles claim: unknown names ignored, sorted, deduplicated.
fn roles(value: Option<&Value>) -> Result<Vec<Role>, AuthError> {
    let names: Vec<&str> = match value {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(one)) => vec![one.as_str()],
        Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).collect(),
        Some(_) => return Err(AuthError::InvalidClaim("roles")),
    };
    let mut roles: Vec<Role> = names.into_iter().filter_map(|n| n.parse().ok()).collect();
    roles.sort();
    roles.dedup();
    Ok(roles)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn issuer() -> IssuerConfig {
        let mut i = IssuerConfig::new("https://idp.example", "caseline-api");
        i.roles_claim = "realm_access.roles".into();
        i
    }

    fn claims(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    fn now_secs() -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs()
    }

    fn base() -> Value {
        json!({
            "iss": "https://idp.example", "aud": "caseline-api", "sub": "user-1",
            "exp": now_secs() + 300, "iat": now_secs(), "nbf": now_secs(),
            "agency": "police-north", "agency_type": "police",
            "realm_access": {"roles": ["social_worker", "offline_access", "auditor", "auditor", 7]}
        })
    }

    fn check(v: Value) -> Result<Principal, AuthError> {
        principal(
            &issuer(),
            &claims(v),
            SystemTime::now(),
            Duration::from_secs(30),
        )
    }

    #[test]
    fn builds_the_principal() {
        let p = check(base()).unwrap();
        assert_eq!(p.subject, "user-1");
        assert_eq!(p.issuer, "https://idp.example");
        assert_eq!(p.agency, "police-north");
        assert_eq!(p.agency_type.as_deref(), Some("police"));
        assert_eq!(p.roles, vec![Role::SocialWorker, Role::Auditor]);
        let exp = base()["exp"].as_u64().unwrap();
        assert_eq!(p.expires_at, UNIX_EPOCH + Duration::from_secs(exp));
    }

    #[test]
    fn claim_rules() {
        let now = now_secs();
        let cases: Vec<(&str, Value, Result<(), AuthError>)> = vec![
            (
                "exp string",
                json!({"exp": (now + 300).to_string()}),
                Err(AuthError::InvalidClaim("exp")),
            ),
            (
                "nbf string",
                json!({"nbf": now.to_string()}),
                Err(AuthError::InvalidClaim("nbf")),
            ),
            (
                "iat string",
                json!({"iat": now.to_string()}),
                Err(AuthError::InvalidClaim("iat")),
            ),
            (
                "iat future",
                json!({"iat": now + 120}),
                Err(AuthError::IssuedInFuture),
            ),
            ("iat within leeway", json!({"iat": now + 20}), Ok(())),
            (
                "nbf future",
                json!({"nbf": now + 120}),
                Err(AuthError::NotYetValid),
            ),
            (
                "expired",
                json!({"exp": now - 120}),
                Err(AuthError::Expired),
            ),
            ("expired within leeway", json!({"exp": now - 10}), Ok(())),
            (
                "exp far future",
                json!({"exp": 1e20}),
                Err(AuthError::InvalidClaim("exp")),
            ),
            (
                "nbf null",
                json!({"iat": null, "nbf": null}),
                Err(AuthError::InvalidClaim("nbf")),
            ),
            (
                "sub empty",
                json!({"sub": ""}),
                Err(AuthError::InvalidClaim("sub")),
            ),
            (
                "sub number",
                json!({"sub": 42}),
                Err(AuthError::InvalidClaim("sub")),
            ),
            (
                "sub too long",
                json!({"sub": "x".repeat(300)}),
                Err(AuthError::InvalidClaim("sub")),
            ),
            (
                "agency missing",
                json!({"agency": null}),
                Err(AuthError::MissingClaim("agency")),
            ),
            (
                "agency array",
                json!({"agency": ["a"]}),
                Err(AuthError::InvalidClaim("agency")),
            ),
            (
                "agency_type number",
                json!({"agency_type": 3}),
                Err(AuthError::InvalidClaim("agency_type")),
            ),
            ("agency_type absent", json!({"agency_type": null}), Ok(())),
            (
                "roles object",
                json!({"realm_access": {"roles": {"a": 1}}}),
                Err(AuthError::InvalidClaim("roles")),
            ),
            (
                "roles single string",
                json!({"realm_access": {"roles": "supervisor"}}),
                Ok(()),
            ),
            ("roles absent", json!({"realm_access": {}}), Ok(())),
        ];
        for (name, patch, want) in cases {
            let mut v = base();
            for (k, val) in patch.as_object().unwrap() {
                v[k] = val.clone();
            }
            assert_eq!(check(v).map(|_| ()), want, "{name}");
        }
    }

    #[test]
    fn missing_agency_is_refused_and_absent_optional_claims_are_fine() {
        let mut v = base();
        let m = v.as_object_mut().unwrap();
        m.remove("agency");
        assert_eq!(check(v).unwrap_err(), AuthError::MissingClaim("agency"));

        let mut v = base();
        let m = v.as_object_mut().unwrap();
        for k in ["iat", "nbf", "agency_type", "realm_access"] {
            m.remove(k);
        }
        let p = check(v).unwrap();
        assert!(p.roles.is_empty() && p.agency_type.is_none());
    }

    #[test]
    fn typ_comparison() {
        assert!(same_typ("JWT", "jwt"));
        assert!(same_typ("application/at+jwt", "at+JWT"));
        assert!(!same_typ("at+jwt", "JWT"));
        assert!(!same_typ("", "JWT"));
        assert!(!same_typ("application/", "JWT"));
    }

    #[test]
    fn the_validation_sets_every_rule_explicitly() {
        let v = validation(&issuer(), Algorithm::RS256, 30);
        assert_eq!(v.algorithms, vec![Algorithm::RS256]);
        assert_eq!(v.leeway, 30);
        assert!(v.validate_exp && v.validate_nbf && v.validate_aud);
        for claim in ["exp", "iss", "aud", "sub"] {
            assert!(v.required_spec_claims.contains(claim), "{claim}");
        }
        assert_eq!(
            v.aud.unwrap().into_iter().collect::<Vec<_>>(),
            ["caseline-api"]
        );
        assert_eq!(
            v.iss.unwrap().into_iter().collect::<Vec<_>>(),
            ["https://idp.example"]
        );
    }

    #[test]
    fn crate_errors_map_to_reasons() {
        let with_exp = claims(json!({"exp": "soon"}));
        let empty = Map::new();
        assert_eq!(
            jwt_error(&ErrorKind::MissingRequiredClaim("exp".into()), &with_exp),
            AuthError::InvalidClaim("exp")
        );
        assert_eq!(
            jwt_error(&ErrorKind::MissingRequiredClaim("aud".into()), &empty),
            AuthError::MissingClaim("aud")
        );
        assert_eq!(
            jwt_error(&ErrorKind::InvalidSignature, &empty),
            AuthError::BadSignature
        );
        assert_eq!(
            jwt_error(&ErrorKind::InvalidAlgorithm, &empty),
            AuthError::KeyMismatch
        );
    }
}
