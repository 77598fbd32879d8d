//! The master key from configuration and the development key file.

// Test code: a failed unwrap is a failed test, with its location.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use caseline_vault::{
    Error, KEY_STORE_FILE, MASTER_KEY_FILE, MasterKey, SecretText, SqliteKeyStore, Vault,
};
use uuid::Uuid;

/// Seals with one master key and opens with the other, over one store: true when both
/// are the same key.
async fn same_key(a: MasterKey, b: MasterKey) -> bool {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(
        SqliteKeyStore::open(dir.path().join(KEY_STORE_FILE))
            .await
            .unwrap(),
    );
    let case = Uuid::new_v4();
    let sealed = Vault::new(a, store.clone())
        .seal_text(case, &SecretText::new("x"))
        .await
        .unwrap();
    match Vault::new(b, store).open(case, &sealed).await {
        Ok(_) => true,
        Err(Error::WrongMasterKey { .. }) => false,
        Err(e) => panic!("unexpected {e:?}"),
    }
}

#[tokio::test]
async fn the_dev_key_file_is_created_once_and_reused() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("caseline-data");
    let first = MasterKey::load_or_create(&data_dir).unwrap();
    let path = data_dir.join(MASTER_KEY_FILE);
    let text = std::fs::read_to_string(&path).unwrap();
    let again = MasterKey::load_or_create(&data_dir).unwrap();
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        text,
        "file rewritten"
    );
    assert!(same_key(first, again).await);
    // The file is the configuration format: base64 of 32 bytes.
    let from_text = MasterKey::from_base64(&text).unwrap();
    assert!(same_key(from_text, MasterKey::from_file(&path).unwrap()).await);
    // No temporary file is left behind.
    let names: Vec<_> = std::fs::read_dir(&data_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, [MASTER_KEY_FILE]);
}

#[cfg(unix)]
#[test]
fn the_dev_key_file_is_readable_by_its_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    MasterKey::load_or_create(dir.path()).unwrap();
    let mode = std::fs::metadata(dir.path().join(MASTER_KEY_FILE))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "mode {mode:o}");
}

#[tokio::test]
async fn racing_creators_agree_on_one_key_file() {
    let dir = tempfile::tempdir().unwrap();
    let keys: Vec<MasterKey> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|_| s.spawn(|| MasterKey::load_or_create(dir.path()).unwrap()))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let path = dir.path().join(MASTER_KEY_FILE);
    for key in keys {
        assert!(same_key(key, MasterKey::from_file(&path).unwrap()).await);
    }
    // One key file and no temporary files left behind.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
}

#[tokio::test]
async fn different_keys_do_not_open_each_other() {
    assert!(
        !same_key(
            MasterKey::generate().unwrap(),
            MasterKey::generate().unwrap()
        )
        .await
    );
}

#[test]
fn a_bad_key_file_is_reported_without_its_content() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("master.key");
    let secretish = "c2VjcmV0LWJ1dC10b28tc2hvcnQ=";
    std::fs::write(&path, secretish).unwrap();
    let message = MasterKey::from_file(&path).unwrap_err().to_string();
    assert!(message.starts_with("invalid master key: "), "{message}");
    assert!(message.contains("must be 32 bytes, got 20"), "{message}");
    assert!(!message.contains(secretish), "{message}");

    std::fs::write(&path, "%%%not-base64%%%").unwrap();
    let message = MasterKey::from_file(&path).unwrap_err().to_string();
    assert!(message.ends_with("not valid standard base64"), "{message}");
    assert!(!message.contains("not-base64"), "{message}");

    let missing = MasterKey::from_file(dir.path().join("absent.key")).unwrap_err();
    assert!(matches!(missing, Error::InvalidMasterKey { .. }));
}

#[test]
fn configured_keys_are_base64_of_32_bytes() {
    let text = MasterKey::generate_base64().unwrap();
    assert_eq!(format!("{text:?}"), "<redacted>");
    assert_eq!(text.expose().trim().len(), 44);
    MasterKey::from_base64(text.expose()).unwrap();
    assert!(MasterKey::from_base64("").is_err());
}
