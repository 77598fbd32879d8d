//! Serde for log positions in projection state: as decimal text, so snapshots stay
//! JSON and a map keyed by position stays a JSON object.
//!
//! `#[serde(with = "caseline_projection::positions")]` on a `Position`;
//! `#[serde(with = "caseline_projection::positions::keys")]` on a
//! `BTreeMap<Position, V>`.

use caseline_eventlog::Position;
use serde::{Deserialize, Deserializer, Serializer};

pub fn serialize<S: Serializer>(position: &Position, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(position)
}

pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Position, D::Error> {
    let text = String::deserialize(d)?;
    text.parse().map_err(serde::de::Error::custom)
}

/// A `BTreeMap<Position, V>` as a JSON object keyed by decimal positions.
pub mod keys {
    use std::collections::BTreeMap;

    use caseline_eventlog::Position;
    use serde::ser::SerializeMap;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer, V: Serialize>(
        map: &BTreeMap<Position, V>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        let mut out = s.serialize_map(Some(map.len()))?;
        for (position, value) in map {
            out.serialize_entry(&position.to_string(), value)?;
        }
        out.end()
    }

    pub fn deserialize<'de, D: Deserializer<'de>, V: Deserialize<'de>>(
        d: D,
    ) -> Result<BTreeMap<Position, V>, D::Error> {
        let raw = BTreeMap::<String, V>::deserialize(d)?;
        raw.into_iter()
            .map(|(k, v)| {
                k.parse::<Position>()
                    .map(|p| (p, v))
                    .map_err(serde::de::Error::custom)
            })
            .collect()
    }
}
