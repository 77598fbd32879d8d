//! Reading a bearer token before and around verification: the `authorization` value, the
//! compact JWS shape, strict JSON, claim paths and NumericDates.
//!
//! Nothing here decides that a token is valid; it only refuses what is not even shaped
//! like one. Header and payload must be JSON objects without duplicate members, so that
//! the checks made here and those of `jsonwebtoken` read the same values.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::de::{Deserializer, MapAccess, Visitor};
use serde_json::{Map, Value};

use crate::error::AuthError;

/// Far above any real access token (Keycloak tokens with many roles stay under 8 KiB),
/// small enough that parsing garbage costs nothing.
pub(crate) const MAX_TOKEN_LEN: usize = 16 * 1024;

/// The latest `exp` taken seriously (9999-12-31); later values are malformed, which keeps
/// `SystemTime` arithmetic from overflowing.
const MAX_NUMERIC_DATE: u64 = 253_402_300_799;

/// The token of a `Bearer` authorization value (scheme case-insensitive, RFC 6750).
pub(crate) fn bearer_token(authorization: Option<&str>) -> Result<&str, AuthError> {
    let value = authorization.map(str::trim).unwrap_or_default();
    if value.is_empty() {
        return Err(AuthError::MissingToken);
    }
    let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(AuthError::NotBearer);
    }
    let token = rest.trim_start_matches(' ');
    if token.is_empty() {
        return Err(AuthError::MissingToken);
    }
    if token.len() > MAX_TOKEN_LEN || token.contains(char::is_whitespace) {
        return Err(AuthError::Malformed);
    }
    Ok(token)
}

/// A token split and decoded, not verified.
#[derive(Debug)]
pub(crate) struct Unverified {
    pub header: Map<String, Value>,
    pub claims: Map<String, Value>,
    pub has_signature: bool,
}

/// Splits a compact JWS into exactly three base64url segments and decodes header and
/// payload as JSON objects.
pub(crate) fn parse(token: &str) -> Result<Unverified, AuthError> {
    let mut parts = token.split('.');
    let (Some(header), Some(payload), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(AuthError::Malformed);
    };
    let header = strict_object(&b64(header)?)?;
    let claims = strict_object(&b64(payload)?)?;
    // The signature is only decoded here to refuse bad base64 early; verification
    // decodes it again.
    let has_signature = !b64(signature)?.is_empty();
    Ok(Unverified {
        header,
        claims,
        has_signature,
    })
}

fn b64(segment: &str) -> Result<Vec<u8>, AuthError> {
    // URL_SAFE_NO_PAD refuses padding, the standard alphabet and non-canonical trailing
    // bits, so one token has exactly one encoding.
    URL_SAFE_NO_PAD
        .decode(segment)
        .map_err(|_| AuthError::Malformed)
}

/// A JSON object whose top-level member names are unique.
fn strict_object(bytes: &[u8]) -> Result<Map<String, Value>, AuthError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let map = de
        .deserialize_map(UniqueMembers)
        .map_err(|_| AuthError::Malformed)?;
    de.end().map_err(|_| AuthError::Malformed)?;
    Ok(map)
}

struct UniqueMembers;

impl<'de> Visitor<'de> for UniqueMembers {
    type Value = Map<String, Value>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a json object with unique member names")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Self::Value, A::Error> {
        let mut map = Map::new();
        while let Some((key, value)) = access.next_entry::<String, Value>()? {
            if map.contains_key(&key) {
                return Err(serde::de::Error::custom("duplicate member"));
            }
            map.insert(key, value);
        }
        Ok(map)
    }
}

/// The value at a claim path: a top-level member named exactly `path` (namespaced claims
/// such as `https://example.org/roles` contain dots), else the dotted walk through nested
/// objects (`realm_access.roles`).
pub(crate) fn claim_at<'a>(claims: &'a Map<String, Value>, path: &str) -> Option<&'a Value> {
    if let Some(v) = claims.get(path) {
        return Some(v);
    }
    let mut segments = path.split('.');
    let mut current = claims.get(segments.next()?)?;
    for segment in segments {
        current = current.as_object()?.get(segment)?;
    }
    Some(current)
}

/// How a fractional NumericDate is turned into whole seconds: always towards the stricter
/// outcome for the claim in question.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Round {
    /// `exp`: earlier is stricter.
    Down,
    /// `nbf`, `iat`: later is stricter.
    Up,
}

/// A NumericDate (RFC 7519): a JSON number of seconds since the epoch, non-negative,
/// before year 10000. Strings and every other type are refused, never coerced.
pub(crate) fn numeric_date(value: &Value, round: Round) -> Option<u64> {
    let Value::Number(n) = value else {
        return None;
    };
    let secs = match n.as_u64() {
        Some(s) => s,
        None => {
            let f = n.as_f64()?;
            if !f.is_finite() || f < 0.0 || f > MAX_NUMERIC_DATE as f64 {
                return None;
            }
            // In range by the check above, so the cast cannot saturate.
            match round {
                Round::Down => f.floor() as u64,
                Round::Up => f.ceil() as u64,
            }
        }
    };
    (secs <= MAX_NUMERIC_DATE).then_some(secs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn enc(v: &str) -> String {
        URL_SAFE_NO_PAD.encode(v)
    }

    #[test]
    fn bearer_values() {
        let cases: [(Option<&str>, Result<&str, AuthError>); 11] = [
            (None, Err(AuthError::MissingToken)),
            (Some(""), Err(AuthError::MissingToken)),
            (Some("   "), Err(AuthError::MissingToken)),
            (Some("Bearer"), Err(AuthError::MissingToken)),
            (Some("Bearer   "), Err(AuthError::MissingToken)),
            (Some("Basic dXNlcjpwdw=="), Err(AuthError::NotBearer)),
            (Some("a.b.c"), Err(AuthError::NotBearer)),
            (Some("Bearer a.b.c"), Ok("a.b.c")),
            (Some("bearer a.b.c"), Ok("a.b.c")),
            (Some("BEARER  a.b.c "), Ok("a.b.c")),
            (Some("Bearer a.b c"), Err(AuthError::Malformed)),
        ];
        for (input, want) in cases {
            assert_eq!(bearer_token(input), want, "{input:?}");
        }
        let huge = format!("Bearer {}", "a".repeat(MAX_TOKEN_LEN + 1));
        assert_eq!(bearer_token(Some(&huge)), Err(AuthError::Malformed));
    }

    #[test]
    fn shape_is_three_canonical_base64url_segments_of_json_objects() {
        let h = enc(r#"{"alg":"RS256"}"#);
        let p = enc(r#"{"sub":"u"}"#);
        let ok = parse(&format!("{h}.{p}.c2ln")).unwrap();
        assert!(ok.has_signature);
        assert_eq!(ok.claims["sub"], "u");
        assert!(!parse(&format!("{h}.{p}.")).unwrap().has_signature);

        let bad = [
            format!("{h}.{p}"),
            format!("{h}.{p}.c2ln.c2ln"),
            format!("{h}.{p}.c2ln="),                   // padding
            format!("{h}.{p}.c2l+"),                    // standard alphabet
            format!("{h}.{p}.c2l"),                     // non-canonical trailing bits
            format!("{}.{p}.c2ln", enc("[1]")),         // header not an object
            format!("{h}.{}.c2ln", enc("\"x\"")),       // payload not an object
            format!("{h}.{}.c2ln", enc("{\"a\":1} x")), // trailing garbage
            format!("{h}.{}.c2ln", enc("{\"sub\":\"a\",\"sub\":\"b\"}")),
            format!("{}.{p}.c2ln", enc("{\"alg\":\"RS256\",\"alg\":\"none\"}")),
            "...".to_owned(),
        ];
        for t in bad {
            assert_eq!(parse(&t).unwrap_err(), AuthError::Malformed, "{t}");
        }
    }

    #[test]
    fn claim_paths() {
        let claims = json!({
            "roles": ["a"],
            "realm_access": {"roles": ["b"]},
            "https://caseline.example/agency": "police-north",
            "x": 1
        });
        let claims = claims.as_object().unwrap();
        assert_eq!(claim_at(claims, "roles"), Some(&json!(["a"])));
        assert_eq!(claim_at(claims, "realm_access.roles"), Some(&json!(["b"])));
        assert_eq!(
            claim_at(claims, "https://caseline.example/agency"),
            Some(&json!("police-north"))
        );
        assert_eq!(claim_at(claims, "realm_access.missing"), None);
        assert_eq!(claim_at(claims, "x.y"), None);
        assert_eq!(claim_at(claims, "nothing"), None);
    }

    #[test]
    fn numeric_dates_are_numbers_only() {
        assert_eq!(
            numeric_date(&json!(1_700_000_000), Round::Down),
            Some(1_700_000_000)
        );
        assert_eq!(numeric_date(&json!(1.5), Round::Down), Some(1));
        assert_eq!(numeric_date(&json!(1.5), Round::Up), Some(2));
        for bad in [
            json!("1700000000"),
            json!(-1),
            json!(-0.5),
            json!(null),
            json!(true),
            json!([1]),
            json!(1e300),
            json!(MAX_NUMERIC_DATE + 1),
        ] {
            assert_eq!(numeric_date(&bad, Round::Down), None, "{bad}");
        }
    }
}
