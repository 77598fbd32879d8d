//! Keyed digests and payload fields: what a service may store in event ids and
//! payloads (an id derived from a request holding a child's name, a sealed field)
//! without letting anyone read it or test a guess against it.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use caseline_vault::{Error, KEY_STORE_FILE, MasterKey, SecretText, SqliteKeyStore, Vault};
use uuid::Uuid;

async fn vault(dir: &std::path::Path, master: &SecretText) -> Vault {
    let store = SqliteKeyStore::open(dir.join(KEY_STORE_FILE))
        .await
        .unwrap();
    Vault::new(
        MasterKey::from_base64(master.expose()).unwrap(),
        Arc::new(store),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_digest_is_stable_per_case_and_dies_with_its_key() {
    let dir = tempfile::tempdir().unwrap();
    let master = MasterKey::generate_base64().unwrap();
    let v = vault(dir.path(), &master).await;
    let (a, b) = (Uuid::new_v4(), Uuid::new_v4());

    let d = v.keyed_digest(a, b"Ada Example").await.unwrap();
    assert_eq!(d, v.keyed_digest(a, b"Ada Example").await.unwrap());
    assert_ne!(d, v.keyed_digest(a, b"Ada Exampld").await.unwrap());
    assert_ne!(d, v.keyed_digest(b, b"Ada Example").await.unwrap());
    // Not a plain hash of the data: without the case's key it cannot be recomputed.
    use sha2::Digest as _;
    assert_ne!(
        d.as_slice(),
        sha2::Sha256::digest(b"Ada Example").as_slice()
    );

    // Another vault over the same store and master key agrees (a restart, a replica).
    let again = vault(dir.path(), &master).await;
    assert_eq!(d, again.keyed_digest(a, b"Ada Example").await.unwrap());

    v.shred(a).await.unwrap();
    assert!(matches!(
        v.keyed_digest(a, b"Ada Example").await,
        Err(Error::Shredded { .. })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payload_field_stores_no_text_as_no_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let master = MasterKey::generate_base64().unwrap();
    let v = vault(dir.path(), &master).await;
    let (case, other) = (Uuid::new_v4(), Uuid::new_v4());

    assert!(v.seal_field(case, "").await.unwrap().is_empty());
    let open = |bytes: Vec<u8>, owner| {
        let v = &v;
        async move { v.open_field(owner, &bytes).await }
    };
    let empty = open(Vec::new(), case).await.unwrap().into_plain().unwrap();
    assert_eq!(empty.expose(), "");

    let sealed = v.seal_field(case, "Ada Example").await.unwrap();
    assert!(!sealed.windows(3).any(|w| w == b"Ada"));
    let text = open(sealed.clone(), case)
        .await
        .unwrap()
        .into_plain()
        .unwrap();
    assert_eq!(text.expose(), "Ada Example");
    assert!(matches!(
        open(sealed.clone(), other).await,
        Err(Error::Tampered { .. } | Error::MissingKey { .. })
    ));
    v.shred(case).await.unwrap();
    assert!(open(sealed, case).await.unwrap().is_erased());
}
