//! Which issuers are trusted, and how their tokens are read.
//!
//! Rules enforced by [`AuthConfig::validate`] (called by `Authenticator::new`): at least
//! one issuer, no issuer twice, leeway at most 30 s, exactly one key source per issuer,
//! algorithms only from RS256, ES256 and EdDSA (HS256 only in dev mode), non-empty claim
//! paths, and JWKS URLs over https (plain http only to a loopback host or in dev mode).

use std::collections::HashSet;
use std::path::PathBuf;
use std::time::Duration;

use jsonwebtoken::Algorithm;
use jsonwebtoken::jwk::JwkSet;

use crate::error::ConfigError;

/// The largest clock-skew allowance accepted.
pub const MAX_LEEWAY: Duration = Duration::from_secs(30);

/// Algorithms an issuer may list outside dev mode.
const PRODUCTION_ALGORITHMS: [&str; 3] = ["RS256", "ES256", "EdDSA"];

/// Everything the [`crate::Authenticator`] needs.
#[derive(Clone, Debug)]
pub struct AuthConfig {
    /// The trusted issuers; a token's `iss` picks one.
    pub issuers: Vec<IssuerConfig>,
    /// Clock-skew allowance for `exp`, `nbf` and `iat`; at most 30 s.
    pub leeway: Duration,
    /// Development mode: HS256 may appear in an issuer's algorithm list and JWKS URLs may
    /// use plain http to any host. Never set in production.
    pub dev_mode: bool,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            issuers: Vec::new(),
            leeway: MAX_LEEWAY,
            dev_mode: false,
        }
    }
}

impl AuthConfig {
    /// A production configuration (30 s leeway, no dev mode) for these issuers.
    pub fn new(issuers: Vec<IssuerConfig>) -> Self {
        AuthConfig {
            issuers,
            ..AuthConfig::default()
        }
    }

    /// Checks every rule of the module docs without touching files or the network.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.leeway > MAX_LEEWAY {
            return Err(ConfigError::LeewayTooLarge(self.leeway));
        }
        if self.issuers.is_empty() {
            return Err(ConfigError::NoIssuers);
        }
        let mut seen = HashSet::new();
        let mut agencies = HashSet::new();
        for issuer in &self.issuers {
            issuer.validate(self.dev_mode)?;
            if !seen.insert(issuer.issuer.as_str()) {
                return Err(ConfigError::DuplicateIssuer(issuer.issuer.clone()));
            }
        }
        for issuer in &self.issuers {
            // A person is a subject of an agency: with several issuers, each agency must
            // belong to exactly one, or one issuer could mint another's members.
            if self.issuers.len() > 1 {
                let Some(listed) = &issuer.agencies else {
                    return Err(ConfigError::AgenciesRequired(issuer.issuer.clone()));
                };
                for agency in listed {
                    if !agencies.insert(agency.as_str()) {
                        return Err(ConfigError::SharedAgency {
                            agency: agency.clone(),
                        });
                    }
                }
            }
        }
        Ok(())
    }
}

/// One trusted token issuer (an OpenID provider realm, or the dev issuer).
#[derive(Clone, Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IssuerConfig {
    /// The exact `iss` value of its tokens.
    pub issuer: String,
    /// The audience Caseline's tokens carry in `aud`.
    pub audience: String,
    /// A JWKS document on disk, read once at start.
    #[serde(default)]
    pub jwks_file: Option<PathBuf>,
    /// A JWKS endpoint, fetched on first use and cached.
    #[serde(default)]
    pub jwks_url: Option<String>,
    /// A key set given in code (the dev issuer); never read from a configuration file.
    #[serde(skip)]
    pub jwks_inline: Option<JwkSet>,
    /// Allowed `alg` values; default RS256, ES256, EdDSA.
    #[serde(default = "default_algorithms")]
    pub algorithms: Vec<String>,
    /// If set, the header `typ` must equal it (case-insensitive, an `application/`
    /// prefix ignored), e.g. `JWT` or `at+jwt`.
    #[serde(default)]
    pub typ: Option<String>,
    /// Dotted path to the roles (an array of strings, or one string), e.g.
    /// `realm_access.roles`. A top-level claim whose name is the whole path wins.
    #[serde(default = "default_roles_claim")]
    pub roles_claim: String,
    /// Path to the agency id claim (a string; required in every token).
    #[serde(default = "default_agency_claim")]
    pub agency_claim: String,
    /// Path to the agency type claim (a string; optional).
    #[serde(default = "default_agency_type_claim")]
    pub agency_type_claim: String,
    /// The agencies this issuer vouches for; a token naming another is refused.
    /// Required, and disjoint, when more than one issuer is configured.
    #[serde(default)]
    pub agencies: Option<Vec<String>>,
}

fn default_algorithms() -> Vec<String> {
    PRODUCTION_ALGORITHMS
        .iter()
        .map(|a| a.to_string())
        .collect()
}

fn default_roles_claim() -> String {
    "roles".to_owned()
}

fn default_agency_claim() -> String {
    "agency".to_owned()
}

fn default_agency_type_claim() -> String {
    "agency_type".to_owned()
}

impl IssuerConfig {
    /// An issuer with the defaults for everything but its identity and key source.
    pub fn new(issuer: impl Into<String>, audience: impl Into<String>) -> Self {
        IssuerConfig {
            issuer: issuer.into(),
            audience: audience.into(),
            jwks_file: None,
            jwks_url: None,
            jwks_inline: None,
            algorithms: default_algorithms(),
            typ: None,
            roles_claim: default_roles_claim(),
            agency_claim: default_agency_claim(),
            agency_type_claim: default_agency_type_claim(),
            agencies: None,
        }
    }

    fn validate(&self, dev_mode: bool) -> Result<(), ConfigError> {
        if self.issuer.is_empty() {
            return Err(ConfigError::EmptyIssuer);
        }
        let empty = |field| ConfigError::EmptyField {
            issuer: self.issuer.clone(),
            field,
        };
        if self.audience.is_empty() {
            return Err(empty("audience"));
        }
        if self.typ.as_deref().is_some_and(str::is_empty) {
            return Err(empty("typ"));
        }
        let sources = usize::from(self.jwks_file.is_some())
            + usize::from(self.jwks_url.is_some())
            + usize::from(self.jwks_inline.is_some());
        if sources != 1 {
            return Err(ConfigError::JwksSource(self.issuer.clone()));
        }
        if let Some(url) = &self.jwks_url {
            check_jwks_url(url, dev_mode).map_err(|detail| ConfigError::JwksUrl {
                issuer: self.issuer.clone(),
                detail,
            })?;
        }
        self.allowed_algorithms(dev_mode)?;
        for (field, path) in [
            ("roles_claim", &self.roles_claim),
            ("agency_claim", &self.agency_claim),
            ("agency_type_claim", &self.agency_type_claim),
        ] {
            if path.is_empty() || path.split('.').any(str::is_empty) {
                return Err(ConfigError::ClaimPath {
                    issuer: self.issuer.clone(),
                    field,
                });
            }
        }
        Ok(())
    }

    /// The parsed allow-list; refuses anything outside the accepted set.
    pub(crate) fn allowed_algorithms(&self, dev_mode: bool) -> Result<Vec<Algorithm>, ConfigError> {
        if self.algorithms.is_empty() {
            return Err(ConfigError::NoAlgorithms(self.issuer.clone()));
        }
        let mut out = Vec::with_capacity(self.algorithms.len());
        for name in &self.algorithms {
            let accepted =
                PRODUCTION_ALGORITHMS.contains(&name.as_str()) || (dev_mode && name == "HS256");
            let alg = match name.parse::<Algorithm>() {
                Ok(alg) if accepted => alg,
                _ => {
                    return Err(ConfigError::Algorithm {
                        issuer: self.issuer.clone(),
                        algorithm: name.clone(),
                    });
                }
            };
            if !out.contains(&alg) {
                out.push(alg);
            }
        }
        Ok(out)
    }
}

/// Only http(s) URLs with a host; plain http only to loopback unless in dev mode, since
/// whoever can alter the key set can mint any identity.
fn check_jwks_url(url: &str, dev_mode: bool) -> Result<(), &'static str> {
    let parsed = reqwest::Url::parse(url).map_err(|_| "not a valid url")?;
    let Some(host) = parsed.host_str().filter(|h| !h.is_empty()) else {
        return Err("the url has no host");
    };
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err("credentials in the url are not allowed");
    }
    match parsed.scheme() {
        "https" => Ok(()),
        "http" if dev_mode => Ok(()),
        "http" => {
            let bare = host.trim_start_matches('[').trim_end_matches(']');
            let loopback = host.eq_ignore_ascii_case("localhost")
                || bare
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback());
            if loopback {
                Ok(())
            } else {
                Err("plain http is only allowed to a loopback host or in dev mode")
            }
        }
        _ => Err("the scheme must be https or http"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn issuer() -> IssuerConfig {
        let mut i = IssuerConfig::new("https://idp.example/realms/caseline", "caseline-api");
        i.jwks_url = Some("https://idp.example/certs".into());
        i
    }

    fn config(i: IssuerConfig) -> AuthConfig {
        AuthConfig::new(vec![i])
    }

    #[test]
    fn defaults_are_the_documented_ones() {
        let c = AuthConfig::default();
        assert_eq!(c.leeway, Duration::from_secs(30));
        assert!(!c.dev_mode);
        let toml_like = serde_json::json!({
            "issuer": "https://idp.example", "audience": "caseline-api",
            "jwks_url": "https://idp.example/certs"
        });
        let i: IssuerConfig = serde_json::from_value(toml_like).unwrap();
        assert_eq!(i.algorithms, ["RS256", "ES256", "EdDSA"]);
        assert_eq!(i.roles_claim, "roles");
        assert_eq!(i.agency_claim, "agency");
        assert_eq!(i.agency_type_claim, "agency_type");
        assert!(i.typ.is_none() && i.jwks_inline.is_none());
        config(i).validate().unwrap();
    }

    #[test]
    fn unknown_fields_are_refused() {
        let v = serde_json::json!({
            "issuer": "a", "audience": "b", "jwks_url": "https://x/certs", "leeway": 600
        });
        assert!(serde_json::from_value::<IssuerConfig>(v).is_err());
    }

    #[test]
    fn leeway_above_thirty_seconds_is_refused() {
        let mut c = config(issuer());
        c.leeway = Duration::from_secs(31);
        assert!(matches!(c.validate(), Err(ConfigError::LeewayTooLarge(_))));
        c.leeway = Duration::from_secs(30);
        c.validate().unwrap();
    }

    #[test]
    fn no_issuer_and_duplicate_issuers_are_refused() {
        assert!(matches!(
            AuthConfig::new(vec![]).validate(),
            Err(ConfigError::NoIssuers)
        ));
        assert!(matches!(
            AuthConfig::new(vec![issuer(), issuer()]).validate(),
            Err(ConfigError::DuplicateIssuer(_))
        ));
    }

    #[test]
    fn exactly_one_key_source() {
        let mut none = issuer();
        none.jwks_url = None;
        assert!(matches!(
            config(none).validate(),
            Err(ConfigError::JwksSource(_))
        ));
        let mut two = issuer();
        two.jwks_file = Some("keys.json".into());
        assert!(matches!(
            config(two).validate(),
            Err(ConfigError::JwksSource(_))
        ));
    }

    #[test]
    fn algorithms_outside_the_allow_list_are_refused() {
        for bad in [
            "none", "HS256", "HS512", "RS384", "PS256", "ES384", "rs256", "",
        ] {
            let mut i = issuer();
            i.algorithms = vec![bad.to_owned()];
            assert!(
                matches!(config(i).validate(), Err(ConfigError::Algorithm { .. })),
                "{bad}"
            );
        }
        let mut empty = issuer();
        empty.algorithms.clear();
        assert!(matches!(
            config(empty).validate(),
            Err(ConfigError::NoAlgorithms(_))
        ));
    }

    #[test]
    fn hs256_only_in_dev_mode() {
        let mut i = issuer();
        i.algorithms = vec!["HS256".into()];
        let mut c = config(i);
        assert!(c.validate().is_err());
        c.dev_mode = true;
        c.validate().unwrap();
    }

    #[test]
    fn jwks_urls_must_be_https_except_loopback_or_dev() {
        let cases = [
            ("https://idp.example/certs", false, true),
            ("http://idp.example/certs", false, false),
            ("http://idp.example/certs", true, true),
            ("http://127.0.0.1:8080/certs", false, true),
            ("http://[::1]:8080/certs", false, true),
            ("http://localhost/certs", false, true),
            ("ftp://idp.example/certs", true, false),
            ("file:///etc/jwks.json", true, false),
            ("https://user:pw@idp.example/certs", false, false),
            ("not a url", false, false),
        ];
        for (url, dev, ok) in cases {
            let mut i = issuer();
            i.jwks_url = Some(url.into());
            let mut c = config(i);
            c.dev_mode = dev;
            assert_eq!(c.validate().is_ok(), ok, "{url} dev={dev}");
        }
    }

    #[test]
    fn empty_fields_and_claim_paths_are_refused() {
        let mut a = issuer();
        a.audience.clear();
        assert!(config(a).validate().is_err());
        let mut b = issuer();
        b.issuer.clear();
        assert!(config(b).validate().is_err());
        let mut c = issuer();
        c.roles_claim = "realm_access..roles".into();
        assert!(config(c).validate().is_err());
        let mut d = issuer();
        d.agency_claim.clear();
        assert!(config(d).validate().is_err());
        let mut e = issuer();
        e.typ = Some(String::new());
        assert!(config(e).validate().is_err());
    }
}
