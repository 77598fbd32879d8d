#![allow(clippy::unwrap_used)]
//! Every token the authenticator must refuse, and the ones it must accept.
//!
//! Tokens are signed for real with the RSA 2048, EC P-256 and Ed25519 keys in
//! `tests/keys` (test-only keys, see its README). Headers and payloads are built as raw
//! JSON so that tokens no well-behaved library would produce (`alg: none`, strings for
//! NumericDates, duplicate members, `crit`) can be tested too. Each refusal asserts the
//! audit reason, so a token refused for the wrong reason fails its test.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use caseline_auth::{AuthConfig, AuthError, Authenticator, DevKey, IssuerConfig, JwkSet, Role};
use jsonwebtoken::jwk::{
    AlgorithmParameters, CommonParameters, Jwk, OctetKeyParameters, OctetKeyType,
};
use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpListener;

const ISSUER: &str = "https://idp.test/realms/caseline";
const AUDIENCE: &str = "caseline-api";
const RSA_PUBLIC_PEM: &[u8] = include_bytes!("keys/rsa.pub.pem");
/// The dev-mode HMAC secret the JWKS publishes: 32 random-looking bytes.
const HMAC_SECRET: &[u8; 32] = b"k7Qv2pXz9LmN4rTs8WyB1cDe6FgHj3Ka";

// ---------------------------------------------------------------- keys and tokens

struct Keys {
    rsa: EncodingKey,
    rsa_other: EncodingKey,
    ec: EncodingKey,
    ed: EncodingKey,
}

fn keys() -> Keys {
    Keys {
        rsa: EncodingKey::from_rsa_pem(include_bytes!("keys/rsa.pem")).unwrap(),
        rsa_other: EncodingKey::from_rsa_pem(include_bytes!("keys/rsa-other.pem")).unwrap(),
        ec: EncodingKey::from_ec_pem(include_bytes!("keys/ec-p256.pem")).unwrap(),
        ed: EncodingKey::from_ed_pem(include_bytes!("keys/ed25519.pem")).unwrap(),
    }
}

fn public_jwk(key: &EncodingKey, alg: Algorithm, kid: &str) -> Jwk {
    let mut jwk = Jwk::from_encoding_key(key, alg).unwrap();
    jwk.common.key_id = Some(kid.to_owned());
    jwk
}

fn hmac_jwk(kid: &str) -> Jwk {
    Jwk {
        common: CommonParameters {
            key_id: Some(kid.to_owned()),
            ..CommonParameters::default()
        },
        algorithm: AlgorithmParameters::OctetKey(OctetKeyParameters {
            key_type: OctetKeyType::Octet,
            value: URL_SAFE_NO_PAD.encode(HMAC_SECRET),
        }),
    }
}

/// The issuer's published keys: one of each type.
fn jwks(k: &Keys) -> JwkSet {
    JwkSet {
        keys: vec![
            public_jwk(&k.rsa, Algorithm::RS256, "rsa-1"),
            public_jwk(&k.ec, Algorithm::ES256, "ec-1"),
            public_jwk(&k.ed, Algorithm::EdDSA, "ed-1"),
        ],
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn claims() -> Value {
    let now = now();
    json!({
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "user-1",
        "exp": now + 300,
        "iat": now,
        "nbf": now,
        "agency": "police-north",
        "agency_type": "police",
        "roles": ["police_investigator"],
    })
}

fn with(mut base: Value, patch: Value) -> Value {
    for (k, v) in patch.as_object().unwrap() {
        base[k] = v.clone();
    }
    base
}

fn without(mut base: Value, claim: &str) -> Value {
    base.as_object_mut().unwrap().remove(claim);
    base
}

fn header(alg: &str, kid: &str) -> Value {
    json!({"alg": alg, "typ": "JWT", "kid": kid})
}

fn b64(text: &str) -> String {
    URL_SAFE_NO_PAD.encode(text)
}

/// Signs raw header and payload text, whatever they contain.
fn sign_text(header: &str, payload: &str, key: &EncodingKey, alg: Algorithm) -> String {
    let message = format!("{}.{}", b64(header), b64(payload));
    let signature = jsonwebtoken::crypto::sign(message.as_bytes(), key, alg).unwrap();
    format!("{message}.{signature}")
}

fn sign(header: &Value, claims: &Value, key: &EncodingKey, alg: Algorithm) -> String {
    sign_text(&header.to_string(), &claims.to_string(), key, alg)
}

fn rs256(claims: &Value) -> String {
    sign(
        &header("RS256", "rsa-1"),
        claims,
        &keys().rsa,
        Algorithm::RS256,
    )
}

fn segments(token: &str) -> Vec<String> {
    token.split('.').map(str::to_owned).collect()
}

fn bearer(token: &str) -> Option<String> {
    Some(format!("Bearer {token}"))
}

// ---------------------------------------------------------------- authenticators

fn issuer_with(set: JwkSet) -> IssuerConfig {
    let mut issuer = IssuerConfig::new(ISSUER, AUDIENCE);
    issuer.jwks_inline = Some(set);
    issuer.typ = Some("JWT".to_owned());
    issuer
}

async fn authenticator(issuer: IssuerConfig) -> Authenticator {
    Authenticator::new(AuthConfig::new(vec![issuer]))
        .await
        .unwrap()
}

async fn standard() -> Authenticator {
    authenticator(issuer_with(jwks(&keys()))).await
}

/// Dev mode with HS256 allowed next to RS256, so HS256 tokens reach key selection.
async fn dev_mode_with_hs256(set: JwkSet) -> Authenticator {
    let mut issuer = issuer_with(set);
    issuer.algorithms = vec!["RS256".to_owned(), "HS256".to_owned()];
    let mut config = AuthConfig::new(vec![issuer]);
    config.dev_mode = true;
    Authenticator::new(config).await.unwrap()
}

async fn assert_refused(auth: &Authenticator, authorization: Option<&str>, reason: &str) {
    match auth.authenticate(authorization).await {
        Ok(p) => panic!("accepted ({p:?}), expected refusal {reason}"),
        Err(e) => {
            assert_eq!(e.reason(), reason, "refused for another reason: {e}");
            // Safe to send to the caller: never the token, never a claim value.
            let msg = e.to_string();
            if let Some(token) = authorization {
                assert!(!msg.contains(token) || token.is_empty(), "{msg}");
            }
            assert!(
                !msg.contains("user-1") && !msg.contains("police-north"),
                "{msg}"
            );
        }
    }
}

// ---------------------------------------------------------------- refusals, one test each

/// `name: "reason" => |keys| authorization value;` — each line is one test against the
/// standard issuer (inline JWKS rsa-1, ec-1, ed-1; default algorithms; typ JWT).
macro_rules! refused {
    ($($name:ident: $reason:literal => $make:expr;)*) => {$(
        #[tokio::test]
        async fn $name() {
            let auth = standard().await;
            let make: fn(&Keys) -> Option<String> = $make;
            let authorization = make(&keys());
            assert_refused(&auth, authorization.as_deref(), $reason).await;
        }
    )*};
}

refused! {
    no_token: "no_token" => |_| None;
    empty_authorization: "no_token" => |_| Some(String::new());
    bearer_without_token: "no_token" => |_| Some("Bearer ".to_owned());
    not_bearer_basic: "not_bearer" => |_| Some("Basic dXNlcjpwYXNzd29yZA==".to_owned());
    not_bearer_bare_token: "not_bearer" => |_| Some(rs256(&claims()));
    garbage: "malformed" => |_| bearer("garbage");
    four_segments: "malformed" => |_| bearer(&format!("{}.c2ln", rs256(&claims())));
    two_segments: "malformed" => |_| {
        let s = segments(&rs256(&claims()));
        bearer(&format!("{}.{}", s[0], s[1]))
    };
    bad_base64_payload: "malformed" => |_| {
        let s = segments(&rs256(&claims()));
        bearer(&format!("{}.{}*.{}", s[0], s[1], s[2]))
    };
    bad_base64_padding: "malformed" => |_| {
        let s = segments(&rs256(&claims()));
        bearer(&format!("{}.{}.{}==", s[0], s[1], s[2]))
    };
    duplicate_claim: "malformed" => |k| {
        let payload = claims().to_string().replacen('{', r#"{"sub":"admin","#, 1);
        bearer(&sign_text(&header("RS256", "rsa-1").to_string(), &payload, &k.rsa, Algorithm::RS256))
    };
    alg_none: "alg_not_allowed" => |_| {
        let token = format!(
            "{}.{}.",
            b64(&json!({"alg": "none", "typ": "JWT", "kid": "rsa-1"}).to_string()),
            b64(&claims().to_string())
        );
        bearer(&token)
    };
    alg_none_capitalised_with_signature: "alg_not_allowed" => |_| {
        let s = segments(&rs256(&claims()));
        let h = b64(&json!({"alg": "None", "typ": "JWT", "kid": "rsa-1"}).to_string());
        bearer(&format!("{h}.{}.{}", s[1], s[2]))
    };
    alg_missing: "alg_not_allowed" => |_| {
        let s = segments(&rs256(&claims()));
        let h = b64(&json!({"typ": "JWT", "kid": "rsa-1"}).to_string());
        bearer(&format!("{h}.{}.{}", s[1], s[2]))
    };
    hs256_signed_with_rsa_public_key_as_secret: "alg_not_allowed" => |_| {
        let key = EncodingKey::from_secret(RSA_PUBLIC_PEM);
        bearer(&sign(&header("HS256", "rsa-1"), &claims(), &key, Algorithm::HS256))
    };
    hs256_with_guessable_secret: "alg_not_allowed" => |_| {
        let key = EncodingKey::from_secret(b"secret");
        bearer(&sign(&header("HS256", "rsa-1"), &claims(), &key, Algorithm::HS256))
    };
    alg_outside_allow_list_rs384: "alg_not_allowed" => |k| {
        bearer(&sign(&header("RS384", "rsa-1"), &claims(), &k.rsa, Algorithm::RS384))
    };
    alg_outside_allow_list_ps256: "alg_not_allowed" => |k| {
        bearer(&sign(&header("PS256", "rsa-1"), &claims(), &k.rsa, Algorithm::PS256))
    };
    es256_token_naming_the_rsa_key: "alg_key_mismatch" => |k| {
        bearer(&sign(&header("ES256", "rsa-1"), &claims(), &k.ec, Algorithm::ES256))
    };
    signature_stripped: "bad_signature" => |_| {
        let s = segments(&rs256(&claims()));
        bearer(&format!("{}.{}.", s[0], s[1]))
    };
    signature_flipped: "bad_signature" => |_| {
        let s = segments(&rs256(&claims()));
        let mut sig = URL_SAFE_NO_PAD.decode(&s[2]).unwrap();
        sig[100] ^= 0x01;
        bearer(&format!("{}.{}.{}", s[0], s[1], URL_SAFE_NO_PAD.encode(sig)))
    };
    ed25519_signature_flipped: "bad_signature" => |k| {
        let s = segments(&sign(&header("EdDSA", "ed-1"), &claims(), &k.ed, Algorithm::EdDSA));
        let mut sig = URL_SAFE_NO_PAD.decode(&s[2]).unwrap();
        sig[0] ^= 0x80;
        bearer(&format!("{}.{}.{}", s[0], s[1], URL_SAFE_NO_PAD.encode(sig)))
    };
    payload_swapped_under_valid_signature: "bad_signature" => |_| {
        let honest = segments(&rs256(&claims()));
        let forged = segments(&rs256(&with(claims(), json!({"sub": "admin", "roles": ["admin"]}))));
        bearer(&format!("{}.{}.{}", honest[0], forged[1], honest[2]))
    };
    valid_token_from_another_key_with_same_kid: "bad_signature" => |k| {
        bearer(&sign(&header("RS256", "rsa-1"), &claims(), &k.rsa_other, Algorithm::RS256))
    };
    wrong_aud: "bad_audience" => |_| bearer(&rs256(&with(claims(), json!({"aud": "another-api"}))));
    aud_array_without_ours: "bad_audience" => |_| {
        bearer(&rs256(&with(claims(), json!({"aud": ["another-api", "account"]}))))
    };
    missing_aud: "missing_claim" => |_| bearer(&rs256(&without(claims(), "aud")));
    wrong_iss: "unknown_issuer" => |_| {
        bearer(&rs256(&with(claims(), json!({"iss": "https://evil.test/realms/caseline"}))))
    };
    missing_iss: "missing_claim" => |_| bearer(&rs256(&without(claims(), "iss")));
    iss_as_array: "bad_claim" => |_| bearer(&rs256(&with(claims(), json!({"iss": [ISSUER]}))));
    missing_sub: "missing_claim" => |_| bearer(&rs256(&without(claims(), "sub")));
    sub_as_number: "bad_claim" => |_| bearer(&rs256(&with(claims(), json!({"sub": 42}))));
    missing_exp: "missing_claim" => |_| bearer(&rs256(&without(claims(), "exp")));
    expired_beyond_leeway: "expired" => |_| {
        let t = now();
        bearer(&rs256(&with(claims(), json!({"exp": t - 60, "iat": t - 600, "nbf": t - 600}))))
    };
    exp_as_string: "bad_claim" => |_| {
        bearer(&rs256(&with(claims(), json!({"exp": (now() + 300).to_string()}))))
    };
    nbf_as_string: "bad_claim" => |_| bearer(&rs256(&with(claims(), json!({"nbf": now().to_string()}))));
    iat_as_string: "bad_claim" => |_| bearer(&rs256(&with(claims(), json!({"iat": now().to_string()}))));
    nbf_in_future: "not_yet_valid" => |_| bearer(&rs256(&with(claims(), json!({"nbf": now() + 120}))));
    iat_in_future: "iat_in_future" => |_| bearer(&rs256(&with(claims(), json!({"iat": now() + 120}))));
    wrong_typ: "bad_typ" => |k| {
        let h = json!({"alg": "RS256", "typ": "dpop+jwt", "kid": "rsa-1"});
        bearer(&sign(&h, &claims(), &k.rsa, Algorithm::RS256))
    };
    missing_typ: "bad_typ" => |k| {
        let h = json!({"alg": "RS256", "kid": "rsa-1"});
        bearer(&sign(&h, &claims(), &k.rsa, Algorithm::RS256))
    };
    unknown_crit: "unsupported_crit" => |k| {
        let h = json!({"alg": "RS256", "typ": "JWT", "kid": "rsa-1", "crit": ["x-must-understand"], "x-must-understand": true});
        bearer(&sign(&h, &claims(), &k.rsa, Algorithm::RS256))
    };
    unknown_kid_inline_keys: "unknown_kid" => |k| {
        bearer(&sign(&header("RS256", "rsa-9"), &claims(), &k.rsa, Algorithm::RS256))
    };
    missing_agency: "missing_claim" => |_| bearer(&rs256(&without(claims(), "agency")));
    roles_as_object: "bad_claim" => |_| bearer(&rs256(&with(claims(), json!({"roles": {"admin": true}}))));
}

// ---------------------------------------------------------------- refusals needing another setup

#[tokio::test]
async fn hs256_with_rsa_public_key_as_secret_in_dev_mode() {
    // Even with HS256 allowed, the RSA key is never an HMAC secret.
    let k = keys();
    let auth = dev_mode_with_hs256(jwks(&k)).await;
    let key = EncodingKey::from_secret(RSA_PUBLIC_PEM);
    let named = sign(&header("HS256", "rsa-1"), &claims(), &key, Algorithm::HS256);
    assert_refused(&auth, bearer(&named).as_deref(), "alg_key_mismatch").await;
    let unnamed = sign(
        &json!({"alg": "HS256", "typ": "JWT"}),
        &claims(),
        &key,
        Algorithm::HS256,
    );
    assert_refused(&auth, bearer(&unnamed).as_deref(), "unknown_kid").await;
}

#[tokio::test]
async fn hs256_with_guessable_secret_in_dev_mode() {
    let k = keys();
    let mut set = jwks(&k);
    set.keys.push(hmac_jwk("hmac-1"));
    let auth = dev_mode_with_hs256(set).await;
    for guess in [&b"secret"[..], b"", b"caseline", b"password"] {
        let key = EncodingKey::from_secret(guess);
        let token = sign(
            &header("HS256", "hmac-1"),
            &claims(),
            &key,
            Algorithm::HS256,
        );
        assert_refused(&auth, bearer(&token).as_deref(), "bad_signature").await;
    }
    // The real secret is accepted, so the refusals above are about the secret.
    let real = EncodingKey::from_secret(HMAC_SECRET);
    let token = sign(
        &header("HS256", "hmac-1"),
        &claims(),
        &real,
        Algorithm::HS256,
    );
    auth.authenticate(bearer(&token).as_deref()).await.unwrap();
}

#[tokio::test]
async fn no_kid_with_several_keys_for_the_algorithm() {
    let k = keys();
    let mut set = jwks(&k);
    set.keys
        .push(public_jwk(&k.rsa_other, Algorithm::RS256, "rsa-2"));
    let auth = authenticator(issuer_with(set)).await;
    let token = sign(
        &json!({"alg": "RS256", "typ": "JWT"}),
        &claims(),
        &k.rsa,
        Algorithm::RS256,
    );
    assert_refused(&auth, bearer(&token).as_deref(), "ambiguous_key").await;
}

#[tokio::test]
async fn a_cached_token_is_refused_once_expired() {
    let mut config = AuthConfig::new(vec![issuer_with(jwks(&keys()))]);
    config.leeway = Duration::ZERO;
    // The authenticator's clock is the system's until the test sets it.
    let set: Arc<Mutex<Option<SystemTime>>> = Arc::default();
    let clock = {
        let set = Arc::clone(&set);
        move || set.lock().unwrap().unwrap_or_else(SystemTime::now)
    };
    let auth = Authenticator::with_clock(config, clock).await.unwrap();
    let exp = now() + 60;
    let token = rs256(&with(claims(), json!({"exp": exp})));
    let authorization = bearer(&token);
    auth.authenticate(authorization.as_deref()).await.unwrap();
    auth.authenticate(authorization.as_deref()).await.unwrap();
    // Just past exp by the authenticator's clock.
    let past_exp = UNIX_EPOCH + Duration::from_secs(exp) + Duration::from_millis(1100);
    *set.lock().unwrap() = Some(past_exp);
    assert_refused(&auth, authorization.as_deref(), "expired").await;
}

// ---------------------------------------------------------------- accepted tokens

#[tokio::test]
async fn rs256_is_accepted() {
    let auth = standard().await;
    let p = auth
        .authenticate(bearer(&rs256(&claims())).as_deref())
        .await
        .unwrap();
    assert_eq!(p.subject, "user-1");
    assert_eq!(p.issuer, ISSUER);
    assert_eq!(p.agency, "police-north");
    assert_eq!(p.agency_type.as_deref(), Some("police"));
    assert_eq!(p.roles, [Role::PoliceInvestigator]);
    assert!(p.expires_at > SystemTime::now());
}

#[tokio::test]
async fn es256_is_accepted() {
    let k = keys();
    let auth = standard().await;
    let token = sign(&header("ES256", "ec-1"), &claims(), &k.ec, Algorithm::ES256);
    let p = auth.authenticate(bearer(&token).as_deref()).await.unwrap();
    assert_eq!(p.subject, "user-1");
}

#[tokio::test]
async fn eddsa_is_accepted_with_and_without_kid() {
    let k = keys();
    let auth = standard().await;
    let named = sign(&header("EdDSA", "ed-1"), &claims(), &k.ed, Algorithm::EdDSA);
    assert_eq!(
        auth.authenticate(bearer(&named).as_deref())
            .await
            .unwrap()
            .subject,
        "user-1"
    );
    // No kid: the key set holds exactly one Ed25519 key.
    let unnamed = sign(
        &json!({"alg": "EdDSA", "typ": "JWT"}),
        &claims(),
        &k.ed,
        Algorithm::EdDSA,
    );
    assert_eq!(
        auth.authenticate(bearer(&unnamed).as_deref())
            .await
            .unwrap()
            .subject,
        "user-1"
    );
}

#[tokio::test]
async fn expired_within_leeway_is_accepted() {
    let auth = standard().await;
    let t = now();
    let token = rs256(&with(
        claims(),
        json!({"exp": t - 10, "iat": t - 600, "nbf": t - 600}),
    ));
    auth.authenticate(bearer(&token).as_deref()).await.unwrap();
}

#[tokio::test]
async fn lenient_forms_that_are_still_valid() {
    let auth = standard().await;
    let k = keys();
    let t = now();
    // aud as an array holding ours; scheme in lower case; typ with the media-type prefix;
    // iat and nbf slightly ahead, within the leeway; no iat or nbf at all.
    let token = rs256(&with(
        claims(),
        json!({"aud": ["account", AUDIENCE], "iat": t + 10, "nbf": t + 10}),
    ));
    auth.authenticate(Some(&format!("bearer {token}")))
        .await
        .unwrap();
    let h = json!({"alg": "RS256", "typ": "application/jwt", "kid": "rsa-1"});
    let token = sign(
        &h,
        &without(without(claims(), "iat"), "nbf"),
        &k.rsa,
        Algorithm::RS256,
    );
    auth.authenticate(bearer(&token).as_deref()).await.unwrap();
}

#[tokio::test]
async fn keycloak_realm_access_roles() {
    let mut issuer = issuer_with(jwks(&keys()));
    issuer.roles_claim = "realm_access.roles".to_owned();
    let auth = authenticator(issuer).await;
    let keycloak = with(
        without(claims(), "roles"),
        json!({
            "typ": "Bearer",
            "azp": "caseline-cli",
            "realm_access": {"roles": [
                "supervisor", "offline_access", "uma_authorization", "social_worker",
                "default-roles-caseline", "supervisor"
            ]},
            "resource_access": {"account": {"roles": ["manage-account"]}},
        }),
    );
    let p = auth
        .authenticate(bearer(&rs256(&keycloak)).as_deref())
        .await
        .unwrap();
    assert_eq!(p.roles, [Role::SocialWorker, Role::Supervisor]);
}

#[tokio::test]
async fn a_token_without_caseline_roles_is_still_authenticated() {
    let auth = standard().await;
    for roles in [json!(["offline_access"]), json!([]), json!(null)] {
        let token = rs256(&with(claims(), json!({ "roles": roles })));
        let p = auth.authenticate(bearer(&token).as_deref()).await.unwrap();
        assert!(p.roles.is_empty());
    }
    let p = auth
        .authenticate(bearer(&rs256(&without(claims(), "roles"))).as_deref())
        .await
        .unwrap();
    assert!(p.roles.is_empty());
}

#[tokio::test]
async fn jwks_file_is_read_at_start() {
    let k = keys();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("jwks.json");
    std::fs::write(&path, serde_json::to_vec(&jwks(&k)).unwrap()).unwrap();
    let mut issuer = IssuerConfig::new(ISSUER, AUDIENCE);
    issuer.jwks_file = Some(path.clone());
    let auth = authenticator(issuer.clone()).await;
    auth.authenticate(bearer(&rs256(&claims())).as_deref())
        .await
        .unwrap();

    // A missing or empty file stops the start instead of refusing every token later.
    std::fs::write(&path, br#"{"keys": []}"#).unwrap();
    assert!(
        Authenticator::new(AuthConfig::new(vec![issuer.clone()]))
            .await
            .is_err()
    );
    issuer.jwks_file = Some(dir.path().join("absent.json"));
    assert!(
        Authenticator::new(AuthConfig::new(vec![issuer]))
            .await
            .is_err()
    );
}

#[tokio::test]
async fn dev_key_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let key = DevKey::load_or_create(dir.path()).unwrap();
    let again = DevKey::load_or_create(dir.path()).unwrap();
    assert_eq!(key.kid(), again.kid());

    let token = key
        .issue(
            "dev-user",
            &[Role::Supervisor, Role::SocialWorker, Role::Supervisor],
            "social-east",
            Some("social_services"),
            Duration::from_secs(600),
        )
        .unwrap();
    // Issued by the first, verified with the issuer of the reloaded key.
    let auth = authenticator(again.issuer_config()).await;
    let p = auth.authenticate(bearer(&token).as_deref()).await.unwrap();
    assert_eq!(p.subject, "dev-user");
    assert_eq!(p.issuer, DevKey::ISSUER);
    assert_eq!(p.agency, "social-east");
    assert_eq!(p.agency_type.as_deref(), Some("social_services"));
    assert_eq!(p.roles, [Role::SocialWorker, Role::Supervisor]);

    // Another data directory, another key: its tokens are not this issuer's.
    let other_dir = tempfile::tempdir().unwrap();
    let other = DevKey::load_or_create(other_dir.path()).unwrap();
    assert_ne!(other.kid(), key.kid());
    let foreign = other
        .issue(
            "dev-user",
            &[Role::Admin],
            "social-east",
            None,
            Duration::from_secs(600),
        )
        .unwrap();
    assert_refused(&auth, bearer(&foreign).as_deref(), "unknown_kid").await;
}

#[tokio::test]
async fn configuration_rules_are_enforced_at_start() {
    let k = keys();
    let mut config = AuthConfig::new(vec![issuer_with(jwks(&k))]);
    config.leeway = Duration::from_secs(31);
    assert!(Authenticator::new(config).await.is_err());

    let mut hs = issuer_with(jwks(&k));
    hs.algorithms = vec!["HS256".to_owned()];
    assert!(Authenticator::new(AuthConfig::new(vec![hs])).await.is_err());

    // A key set with no key for the issuer's algorithms is a configuration error.
    let mut ec_only = issuer_with(jwks(&k));
    ec_only.algorithms = vec!["ES256".to_owned()];
    ec_only.jwks_inline = Some(JwkSet {
        keys: vec![public_jwk(&k.rsa, Algorithm::RS256, "rsa-1")],
    });
    assert!(
        Authenticator::new(AuthConfig::new(vec![ec_only]))
            .await
            .is_err()
    );
}

#[tokio::test]
async fn the_issuer_is_chosen_by_iss() {
    let k = keys();
    let mut second = IssuerConfig::new("https://other-idp.test", AUDIENCE);
    second.jwks_inline = Some(JwkSet {
        keys: vec![public_jwk(&k.rsa_other, Algorithm::RS256, "rsa-1")],
    });
    second.agencies = Some(vec!["helpline-north".into()]);
    let mut first = issuer_with(jwks(&k));
    first.agencies = Some(vec!["police-north".into()]);
    // Several issuers must each name the agencies they vouch for, and no agency twice.
    let mut unlisted = second.clone();
    unlisted.agencies = None;
    assert!(
        AuthConfig::new(vec![first.clone(), unlisted])
            .validate()
            .is_err()
    );
    let mut shared = second.clone();
    shared.agencies = Some(vec!["police-north".into()]);
    assert!(
        AuthConfig::new(vec![first.clone(), shared])
            .validate()
            .is_err()
    );
    let auth = Authenticator::new(AuthConfig::new(vec![first, second]))
        .await
        .unwrap();
    // The second issuer may not vouch for the first issuer's agency: one issuer cannot
    // mint another's team members.
    let impostor = with(
        claims(),
        json!({"iss": "https://other-idp.test", "agency": "police-north"}),
    );
    let impostor = sign(
        &header("RS256", "rsa-1"),
        &impostor,
        &k.rsa_other,
        Algorithm::RS256,
    );
    assert_refused(&auth, bearer(&impostor).as_deref(), "agency_not_allowed").await;
    let theirs = with(
        claims(),
        json!({"iss": "https://other-idp.test", "agency": "helpline-north"}),
    );
    let ok = sign(
        &header("RS256", "rsa-1"),
        &theirs,
        &k.rsa_other,
        Algorithm::RS256,
    );
    assert_eq!(
        auth.authenticate(bearer(&ok).as_deref())
            .await
            .unwrap()
            .issuer,
        "https://other-idp.test"
    );
    // Signed by the first issuer's key but claiming the second issuer.
    let forged = sign(&header("RS256", "rsa-1"), &theirs, &k.rsa, Algorithm::RS256);
    assert_refused(&auth, bearer(&forged).as_deref(), "bad_signature").await;
}

// ---------------------------------------------------------------- JWKS over HTTP

/// A JWKS endpoint on 127.0.0.1:0 that counts the requests it answers.
struct JwksServer {
    url: String,
    hits: Arc<AtomicUsize>,
    body: Arc<Mutex<String>>,
    status: Arc<Mutex<u16>>,
}

impl JwksServer {
    async fn start(set: &JwkSet) -> JwksServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!(
            "http://{}/realms/caseline/certs",
            listener.local_addr().unwrap()
        );
        let hits = Arc::new(AtomicUsize::new(0));
        let body = Arc::new(Mutex::new(serde_json::to_string(set).unwrap()));
        let status = Arc::new(Mutex::new(200));
        let (h, b, s) = (hits.clone(), body.clone(), status.clone());
        tokio::spawn(async move {
            loop {
                let Ok((mut socket, _)) = listener.accept().await else {
                    return;
                };
                let (h, b, s) = (h.clone(), b.clone(), s.clone());
                tokio::spawn(async move {
                    let mut request = Vec::new();
                    let mut buf = [0u8; 1024];
                    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                        match socket.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => request.extend_from_slice(&buf[..n]),
                        }
                    }
                    h.fetch_add(1, Ordering::SeqCst);
                    let body = b.lock().unwrap().clone();
                    let status = *s.lock().unwrap();
                    let response = format!(
                        "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = socket.write_all(response.as_bytes()).await;
                    let _ = socket.shutdown().await;
                });
            }
        });
        JwksServer {
            url,
            hits,
            body,
            status,
        }
    }

    fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }

    fn serve(&self, set: &JwkSet) {
        *self.body.lock().unwrap() = serde_json::to_string(set).unwrap();
    }

    async fn authenticator(&self) -> Authenticator {
        let mut issuer = IssuerConfig::new(ISSUER, AUDIENCE);
        issuer.jwks_url = Some(self.url.clone());
        authenticator(issuer).await
    }
}

fn rsa_only(k: &Keys) -> JwkSet {
    JwkSet {
        keys: vec![public_jwk(&k.rsa, Algorithm::RS256, "rsa-1")],
    }
}

#[tokio::test]
async fn unknown_kid_causes_exactly_one_refresh_then_is_refused() {
    let k = keys();
    let server = JwksServer::start(&rsa_only(&k)).await;
    let auth = server.authenticator().await;
    assert_eq!(server.hits(), 0, "fetched on first use, not at start");

    auth.authenticate(bearer(&rs256(&claims())).as_deref())
        .await
        .unwrap();
    assert_eq!(server.hits(), 1);
    auth.authenticate(bearer(&rs256(&with(claims(), json!({"sub": "user-2"})))).as_deref())
        .await
        .unwrap();
    assert_eq!(server.hits(), 1, "known keys are served from the cache");

    let unknown = sign(
        &header("RS256", "rsa-2"),
        &claims(),
        &k.rsa_other,
        Algorithm::RS256,
    );
    assert_refused(&auth, bearer(&unknown).as_deref(), "unknown_kid").await;
    assert_eq!(server.hits(), 2, "one refresh for the unknown kid");

    let another = sign(
        &header("RS256", "rsa-3"),
        &claims(),
        &k.rsa_other,
        Algorithm::RS256,
    );
    assert_refused(&auth, bearer(&another).as_deref(), "unknown_kid").await;
    assert_refused(&auth, bearer(&unknown).as_deref(), "unknown_kid").await;
    assert_eq!(server.hits(), 2, "no second refresh within the minute");
}

#[tokio::test]
async fn a_refresh_without_usable_keys_keeps_the_keys_that_work() {
    let k = keys();
    let server = JwksServer::start(&rsa_only(&k)).await;
    let auth = server.authenticator().await;
    auth.authenticate(bearer(&rs256(&claims())).as_deref())
        .await
        .unwrap();
    // The provider hiccups and publishes an empty set; an unknown kid forces a fetch.
    server.serve(&JwkSet { keys: vec![] });
    let unknown = sign(
        &header("RS256", "rsa-9"),
        &claims(),
        &k.rsa_other,
        Algorithm::RS256,
    );
    assert!(
        auth.authenticate(bearer(&unknown).as_deref())
            .await
            .is_err()
    );
    assert_eq!(server.hits(), 2);
    // Tokens of the working key are still accepted (a fresh token, not a cached one).
    let mut fresh = claims();
    fresh["jti"] = json!("fresh");
    auth.authenticate(bearer(&rs256(&fresh)).as_deref())
        .await
        .unwrap();
}

#[tokio::test]
async fn key_rotation_is_picked_up_by_the_refresh() {
    let k = keys();
    let server = JwksServer::start(&rsa_only(&k)).await;
    let auth = server.authenticator().await;
    auth.authenticate(bearer(&rs256(&claims())).as_deref())
        .await
        .unwrap();
    assert_eq!(server.hits(), 1);

    // The provider rotates: a new key is published next to the old one.
    let mut rotated = rsa_only(&k);
    rotated
        .keys
        .push(public_jwk(&k.rsa_other, Algorithm::RS256, "rsa-2"));
    server.serve(&rotated);
    let new_kid = sign(
        &header("RS256", "rsa-2"),
        &claims(),
        &k.rsa_other,
        Algorithm::RS256,
    );
    let p = auth
        .authenticate(bearer(&new_kid).as_deref())
        .await
        .unwrap();
    assert_eq!(p.subject, "user-1");
    assert_eq!(server.hits(), 2);

    // Both keys now verify without fetching; a further unknown kid within the minute
    // does not fetch again.
    auth.authenticate(bearer(&rs256(&with(claims(), json!({"sub": "user-3"})))).as_deref())
        .await
        .unwrap();
    let unknown = sign(
        &header("RS256", "rsa-3"),
        &claims(),
        &k.rsa_other,
        Algorithm::RS256,
    );
    assert_refused(&auth, bearer(&unknown).as_deref(), "unknown_kid").await;
    assert_eq!(server.hits(), 2);
}

#[tokio::test]
async fn concurrent_unknown_kids_share_one_refresh() {
    let k = keys();
    let server = JwksServer::start(&rsa_only(&k)).await;
    let auth = server.authenticator().await;
    auth.authenticate(bearer(&rs256(&claims())).as_deref())
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for i in 0..16 {
        let auth = auth.clone();
        let token = sign(
            &header("RS256", &format!("unknown-{i}")),
            &claims(),
            &k.rsa_other,
            Algorithm::RS256,
        );
        tasks.push(tokio::spawn(async move {
            auth.authenticate(bearer(&token).as_deref()).await
        }));
    }
    for task in tasks {
        assert_eq!(task.await.unwrap().unwrap_err(), AuthError::UnknownKey);
    }
    assert_eq!(server.hits(), 2);
}

#[tokio::test]
async fn jwks_fetch_failures_refuse_the_token() {
    let k = keys();
    // An endpoint answering 500.
    let server = JwksServer::start(&rsa_only(&k)).await;
    *server.status.lock().unwrap() = 500;
    let auth = server.authenticator().await;
    assert_refused(
        &auth,
        bearer(&rs256(&claims())).as_deref(),
        "jwks_unavailable",
    )
    .await;
    // Retried no sooner than 5 s after a failure: no request storm against the provider.
    assert_refused(
        &auth,
        bearer(&rs256(&claims())).as_deref(),
        "jwks_unavailable",
    )
    .await;
    assert_eq!(server.hits(), 1);

    // An endpoint serving something that is not a key set.
    let server = JwksServer::start(&rsa_only(&k)).await;
    *server.body.lock().unwrap() = "<html>login</html>".to_owned();
    let auth = server.authenticator().await;
    assert_refused(
        &auth,
        bearer(&rs256(&claims())).as_deref(),
        "jwks_unavailable",
    )
    .await;

    // Nothing listening at all.
    let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/certs", closed.local_addr().unwrap());
    drop(closed);
    let mut issuer = IssuerConfig::new(ISSUER, AUDIENCE);
    issuer.jwks_url = Some(url);
    let auth = authenticator(issuer).await;
    assert_refused(
        &auth,
        bearer(&rs256(&claims())).as_deref(),
        "jwks_unavailable",
    )
    .await;
}
