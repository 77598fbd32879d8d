//! The vault over every key store backend, written once and run on each.
//!
//! Each test body in `suite` takes a [`Harness`]; `key_store_tests!` instantiates the
//! bodies for a backend. SQLite and PostgreSQL always run (PostgreSQL from
//! `CASELINE_TEST_DATABASE_URL`, default `postgres://postgres@127.0.0.1:5432/postgres`,
//! one schema per test; a missing server fails the tests with instructions, never skips
//! them).

// Test code: a failed unwrap is a failed test, with its location.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use caseline_vault::{KeyStore, MasterKey, SecretText, Vault};

/// What the suite needs from a backend beyond the [`KeyStore`] contract.
#[async_trait::async_trait]
pub trait Harness: Send + Sync {
    fn store(&self) -> Arc<dyn KeyStore>;
    /// A second, independent store on the same storage, as another process opens it.
    async fn another_store(&self) -> Arc<dyn KeyStore>;
    /// Drops the store and opens it again on the same storage.
    async fn reopen(&mut self);
    /// Raw SQL behind the store's back: deletes the case's row.
    async fn raw_delete(&self, case_id: uuid::Uuid) -> Result<(), String>;
    /// Raw SQL behind the store's back: sets the case's wrapped key (and clears the
    /// shred mark).
    async fn raw_set_key(&self, case_id: uuid::Uuid, key: &[u8]) -> Result<(), String>;
}

/// Plaintext no formatted output may ever contain.
pub const CANARY: &str = "CANARY-Zephyrine-Quillfeather-1999-12-31";

pub fn vault(store: Arc<dyn KeyStore>, master_b64: &SecretText) -> Vault {
    Vault::new(MasterKey::from_base64(master_b64.expose()).unwrap(), store)
}

pub fn uncached_vault(store: Arc<dyn KeyStore>, master_b64: &SecretText) -> Vault {
    Vault::with_key_cache_ttl(
        MasterKey::from_base64(master_b64.expose()).unwrap(),
        store,
        Duration::ZERO,
    )
}

pub fn master() -> SecretText {
    MasterKey::generate_base64().unwrap()
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

pub mod suite {
    use std::collections::HashSet;
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, Instant};

    use caseline_vault::{Error, KeyState, Opened, Sealed, SecretText, Vault, WrappedKey};
    use uuid::Uuid;

    use super::{CANARY, Harness, contains, master, uncached_vault, vault};

    pub async fn seal_open_round_trip(h: &mut dyn Harness) {
        let v = vault(h.store(), &master());
        let case = Uuid::new_v4();
        for text in [
            CANARY,
            "",
            "Åsa Ødegård — 2012-02-29 ✓",
            &"note ".repeat(2000),
        ] {
            let sealed = v.seal_text(case, &SecretText::new(text)).await.unwrap();
            assert!(text.is_empty() || !contains(sealed.as_bytes(), text.as_bytes()));
            // Through the bytes an event payload stores.
            let stored = Sealed::from_bytes(sealed.as_bytes().to_vec()).unwrap();
            assert_eq!(stored, sealed);
            let opened = v.open_text(case, &stored).await.unwrap();
            assert_eq!(opened.into_plain().unwrap().expose(), text);
        }
        let bytes = [0u8, 1, 2, 255];
        let sealed = v.seal(case, &bytes).await.unwrap();
        let opened = v.open(case, &sealed).await.unwrap();
        assert_eq!(opened.into_plain().unwrap().expose(), bytes);
        // Not text: open_text refuses it rather than guessing.
        let not_text = v.seal(case, &[0xff, 0xfe]).await.unwrap();
        assert!(matches!(
            v.open_text(case, &not_text).await,
            Err(Error::Corrupt { .. })
        ));
        // The same plaintext seals differently every time (fresh nonces).
        let a = v.seal_text(case, &SecretText::new(CANARY)).await.unwrap();
        let b = v.seal_text(case, &SecretText::new(CANARY)).await.unwrap();
        assert_ne!(a, b);
    }

    pub async fn formatting_never_reveals_plaintext_or_keys(h: &mut dyn Harness) {
        let master_b64 = master();
        let v = vault(h.store(), &master_b64);
        let case = Uuid::new_v4();
        let text = SecretText::new(CANARY);
        let sealed = v.seal_text(case, &text).await.unwrap();
        let opened = v.open_text(case, &sealed).await.unwrap();
        let tampered = {
            let mut bytes = sealed.as_bytes().to_vec();
            *bytes.last_mut().unwrap() ^= 1;
            Sealed::from_bytes(bytes).unwrap()
        };
        let err = v.open(case, &tampered).await.unwrap_err();
        let wrapped = match h.store().get(case).await.unwrap() {
            KeyState::Active(w) => w,
            other => panic!("expected an active key, got {other:?}"),
        };
        let master_key = caseline_vault::MasterKey::from_base64(master_b64.expose()).unwrap();

        let printed = [
            format!("{sealed:?}"),
            format!("{sealed}"),
            format!("{text:?}"),
            format!("{text}"),
            format!("{opened:?}"),
            format!("{v:?}"),
            format!("{master_key:?}"),
            format!("{master_b64:?}"),
            format!("{master_b64}"),
            format!("{wrapped:?}"),
            format!("{:?}", h.store()),
            format!("{err:?}"),
            err.to_string(),
        ];
        for p in &printed {
            assert!(!p.contains(CANARY), "plaintext printed: {p}");
            assert!(!p.contains(master_b64.expose()), "master key printed: {p}");
        }
        assert_eq!(
            format!("{sealed:?}"),
            format!("Sealed(<{} bytes>)", sealed.as_bytes().len())
        );
        assert_eq!(format!("{text:?}"), "<redacted>");
        assert_eq!(format!("{text}"), "<redacted>");
        assert_eq!(format!("{opened:?}"), "Plain(<redacted>)");
        assert_eq!(format!("{master_key:?}"), "MasterKey(<redacted>)");
        assert!(format!("{v:?}").starts_with("Vault {"));
        assert_eq!(format!("{wrapped:?}"), "WrappedKey(<73 bytes>)");
    }

    pub async fn a_value_of_another_case_does_not_open(h: &mut dyn Harness) {
        let v = vault(h.store(), &master());
        let (mine, other, keyless) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        let sealed = v.seal_text(mine, &SecretText::new(CANARY)).await.unwrap();
        v.seal_text(other, &SecretText::new("other")).await.unwrap();
        match v.open(other, &sealed).await {
            Err(Error::Tampered { case_id }) => assert_eq!(case_id, other),
            other => panic!("expected tampered, got {other:?}"),
        }
        match v.open(keyless, &sealed).await {
            Err(Error::MissingKey { case_id }) => assert_eq!(case_id, keyless),
            other => panic!("expected a missing key, got {other:?}"),
        }
        // Opening never creates a key.
        assert_eq!(h.store().get(keyless).await.unwrap(), KeyState::Missing);
        assert!(v.open(mine, &sealed).await.is_ok());
    }

    pub async fn every_tampered_byte_is_refused(h: &mut dyn Harness) {
        let v = vault(h.store(), &master());
        let case = Uuid::new_v4();
        let sealed = v.seal_text(case, &SecretText::new(CANARY)).await.unwrap();
        let original = sealed.as_bytes().to_vec();
        for i in 0..original.len() {
            let mut bytes = original.clone();
            bytes[i] ^= 0x5a;
            match Sealed::from_bytes(bytes) {
                // The version byte: caught by the framing check.
                Err(Error::Corrupt { .. }) => assert_eq!(i, 0),
                Err(other) => panic!("byte {i}: unexpected {other:?}"),
                Ok(s) => match v.open(case, &s).await {
                    Err(e @ Error::Tampered { .. }) => assert!(!e.to_string().contains(CANARY)),
                    other => panic!("byte {i}: expected tampered, got {other:?}"),
                },
            }
        }
        for len in [original.len() - 1, caseline_vault::SEALED_OVERHEAD] {
            let s = Sealed::from_bytes(&original[..len]).unwrap();
            assert!(matches!(
                v.open(case, &s).await,
                Err(Error::Tampered { .. })
            ));
        }
        assert!(matches!(
            Sealed::from_bytes(&original[..caseline_vault::SEALED_OVERHEAD - 1]),
            Err(Error::Corrupt { .. })
        ));
        assert!(matches!(
            Sealed::from_bytes(Vec::new()),
            Err(Error::Corrupt { .. })
        ));
    }

    pub async fn shred_erases_for_good(h: &mut dyn Harness) {
        let master_b64 = master();
        let v = vault(h.store(), &master_b64);
        let case = Uuid::new_v4();
        let sealed = v.seal_text(case, &SecretText::new(CANARY)).await.unwrap();
        assert!(!v.open_text(case, &sealed).await.unwrap().is_erased());

        v.shred(case).await.unwrap();
        assert_eq!(v.open_text(case, &sealed).await.unwrap(), Opened::Erased);
        assert_eq!(v.open(case, &sealed).await.unwrap(), Opened::Erased);
        match v.seal_text(case, &SecretText::new("more")).await {
            Err(Error::Shredded { case_id }) => assert_eq!(case_id, case),
            other => panic!("expected shredded, got {other:?}"),
        }
        v.shred(case).await.expect("shredding again is a no-op");

        // A vault with nothing cached (another process, a restart) agrees.
        let fresh = uncached_vault(h.another_store().await, &master_b64);
        assert_eq!(fresh.open(case, &sealed).await.unwrap(), Opened::Erased);
        assert!(matches!(
            fresh.seal(case, b"x").await,
            Err(Error::Shredded { .. })
        ));
        fresh.shred(case).await.unwrap();
        // The store never hands out a key again.
        let store = h.store();
        assert_eq!(store.get(case).await.unwrap(), KeyState::Shredded);
        assert_eq!(
            store
                .create(case, WrappedKey::new(vec![1; 73]))
                .await
                .unwrap(),
            KeyState::Shredded
        );
        // Other cases are untouched.
        let other = Uuid::new_v4();
        let kept = v.seal_text(other, &SecretText::new("kept")).await.unwrap();
        v.shred(case).await.unwrap();
        assert_eq!(
            v.open_text(other, &kept)
                .await
                .unwrap()
                .into_plain()
                .unwrap()
                .expose(),
            "kept"
        );
    }

    pub async fn a_case_shredded_before_any_seal_never_gets_a_key(h: &mut dyn Harness) {
        let v = vault(h.store(), &master());
        let case = Uuid::new_v4();
        v.shred(case).await.unwrap();
        assert_eq!(h.store().get(case).await.unwrap(), KeyState::Shredded);
        assert!(matches!(
            v.seal(case, b"x").await,
            Err(Error::Shredded { .. })
        ));
    }

    pub async fn another_master_key_cannot_open(h: &mut dyn Harness) {
        let v = vault(h.store(), &master());
        let case = Uuid::new_v4();
        let sealed = v.seal_text(case, &SecretText::new(CANARY)).await.unwrap();
        let wrong = vault(h.another_store().await, &master());
        match wrong.open(case, &sealed).await {
            Err(e @ Error::WrongMasterKey { .. }) => {
                assert!(e.to_string().contains(&case.to_string()));
            }
            other => panic!("expected wrong master key, got {other:?}"),
        }
        // Nor seal with a key it cannot unwrap (and so cannot replace).
        assert!(matches!(
            wrong.seal(case, b"x").await,
            Err(Error::WrongMasterKey { .. })
        ));
        assert!(v.open(case, &sealed).await.is_ok());
    }

    pub async fn concurrent_first_seals_agree_on_one_key(h: &mut dyn Harness) {
        let master_b64 = master();
        // Two vaults over two independent store handles: two processes.
        let vaults = [
            vault(h.store(), &master_b64),
            vault(h.another_store().await, &master_b64),
        ];
        let case = Uuid::new_v4();
        let tasks: Vec<_> = (0..32)
            .map(|i| {
                let v: Vault = vaults[i % 2].clone();
                tokio::spawn(async move {
                    let text = SecretText::new(format!("value {i}"));
                    (i, v.seal_text(case, &text).await.unwrap())
                })
            })
            .collect();
        let mut sealed = Vec::new();
        for task in tasks {
            sealed.push(task.await.unwrap());
        }
        // Every value opens under the one key the store kept, read afresh.
        let fresh = uncached_vault(h.store(), &master_b64);
        for (i, s) in &sealed {
            let opened = fresh
                .open_text(case, s)
                .await
                .unwrap()
                .into_plain()
                .unwrap();
            assert_eq!(opened.expose(), format!("value {i}"));
        }
    }

    pub async fn racing_creates_return_the_first_key(h: &mut dyn Harness) {
        let stores = [h.store(), h.another_store().await];
        let case = Uuid::new_v4();
        let tasks: Vec<_> = (0..16u8)
            .map(|i| {
                let store = Arc::clone(&stores[usize::from(i) % 2]);
                tokio::spawn(async move { store.create(case, WrappedKey::new(vec![i; 73])).await })
            })
            .collect();
        let mut seen = HashSet::new();
        for task in tasks {
            match task.await.unwrap().unwrap() {
                KeyState::Active(w) => seen.insert(w.as_bytes().to_vec()),
                other => panic!("expected an active key, got {other:?}"),
            };
        }
        assert_eq!(seen.len(), 1, "racing creates saw different keys");
        let stored = match h.store().get(case).await.unwrap() {
            KeyState::Active(w) => w.as_bytes().to_vec(),
            other => panic!("expected an active key, got {other:?}"),
        };
        assert!(seen.contains(&stored));
    }

    pub async fn keys_survive_reopen(h: &mut dyn Harness) {
        let master_b64 = master();
        let (kept, shredded) = (Uuid::new_v4(), Uuid::new_v4());
        let (a, b) = {
            let v = vault(h.store(), &master_b64);
            let a = v.seal_text(kept, &SecretText::new(CANARY)).await.unwrap();
            let b = v
                .seal_text(shredded, &SecretText::new("gone"))
                .await
                .unwrap();
            v.shred(shredded).await.unwrap();
            (a, b)
        };
        h.reopen().await;
        let v = vault(h.store(), &master_b64);
        let opened = v.open_text(kept, &a).await.unwrap().into_plain().unwrap();
        assert_eq!(opened.expose(), CANARY);
        assert_eq!(v.open_text(shredded, &b).await.unwrap(), Opened::Erased);
        // The same key keeps being used after reopening.
        let c = v.seal_text(kept, &SecretText::new("later")).await.unwrap();
        h.reopen().await;
        let v = vault(h.store(), &master_b64);
        assert!(!v.open(kept, &a).await.unwrap().is_erased());
        assert!(!v.open(kept, &c).await.unwrap().is_erased());
    }

    pub async fn another_process_sees_a_shred_within_the_ttl(h: &mut dyn Harness) {
        let master_b64 = master();
        let ttl = Duration::from_millis(300);
        let mk = || caseline_vault::MasterKey::from_base64(master_b64.expose()).unwrap();
        // `here` counts its TTL on a clock that stands still until the test moves it.
        let start = Instant::now();
        let elapsed = Arc::new(Mutex::new(Duration::ZERO));
        let clock = {
            let elapsed = Arc::clone(&elapsed);
            move || start + *elapsed.lock().unwrap()
        };
        let here = Vault::with_key_cache_clock(mk(), h.store(), ttl, clock);
        let there = Vault::with_key_cache_ttl(mk(), h.another_store().await, ttl);
        let case = Uuid::new_v4();
        let sealed = here
            .seal_text(case, &SecretText::new(CANARY))
            .await
            .unwrap();
        // `here` now holds the key in its cache.
        assert!(!here.open(case, &sealed).await.unwrap().is_erased());
        there.shred(case).await.unwrap();
        // Once the TTL has passed by its clock, `here` asks the store again.
        *elapsed.lock().unwrap() = ttl;
        assert_eq!(here.open(case, &sealed).await.unwrap(), Opened::Erased);
        assert!(matches!(
            here.seal(case, b"x").await,
            Err(Error::Shredded { .. })
        ));
    }

    pub async fn the_store_refuses_changes_other_than_shredding(h: &mut dyn Harness) {
        let v = vault(h.store(), &master());
        let (live, shredded) = (Uuid::new_v4(), Uuid::new_v4());
        v.seal(live, b"x").await.unwrap();
        v.seal(shredded, b"x").await.unwrap();
        v.shred(shredded).await.unwrap();
        let refused = |r: Result<(), String>, what: &str| match r {
            Err(e) => assert!(e.contains("only by shredding"), "{what}: {e}"),
            Ok(()) => panic!("{what} was allowed"),
        };
        refused(h.raw_delete(live).await, "deleting a key");
        refused(h.raw_delete(shredded).await, "deleting a tombstone");
        refused(h.raw_set_key(live, &[9; 73]).await, "replacing a key");
        refused(h.raw_set_key(shredded, &[9; 73]).await, "reviving a case");
        assert_eq!(h.store().get(shredded).await.unwrap(), KeyState::Shredded);
        assert!(matches!(
            h.store().get(live).await.unwrap(),
            KeyState::Active(_)
        ));
    }
}

macro_rules! key_store_tests {
    ($harness:expr; $($test:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $test() {
                let mut harness = $harness;
                $crate::suite::$test(&mut harness).await;
            }
        )*
    };
}

macro_rules! common_suite {
    ($harness:expr) => {
        key_store_tests!($harness;
            seal_open_round_trip,
            formatting_never_reveals_plaintext_or_keys,
            a_value_of_another_case_does_not_open,
            every_tampered_byte_is_refused,
            shred_erases_for_good,
            a_case_shredded_before_any_seal_never_gets_a_key,
            another_master_key_cannot_open,
            concurrent_first_seals_agree_on_one_key,
            racing_creates_return_the_first_key,
            keys_survive_reopen,
            another_process_sees_a_shred_within_the_ttl,
            the_store_refuses_changes_other_than_shredding,
        );
    };
}

mod sqlite {
    use std::path::PathBuf;
    use std::sync::Arc;

    use caseline_vault::{KEY_STORE_FILE, KeyStore, SqliteKeyStore};
    use uuid::Uuid;

    pub struct SqliteHarness {
        dir: tempfile::TempDir,
        store: Arc<SqliteKeyStore>,
    }

    impl SqliteHarness {
        pub async fn new() -> Self {
            let dir = tempfile::tempdir().unwrap();
            let store = Arc::new(
                SqliteKeyStore::open(dir.path().join(KEY_STORE_FILE))
                    .await
                    .unwrap(),
            );
            Self { dir, store }
        }

        fn path(&self) -> PathBuf {
            self.dir.path().join(KEY_STORE_FILE)
        }

        fn raw(&self, sql: &str, params: impl rusqlite::Params) -> Result<(), String> {
            let conn = rusqlite::Connection::open(self.path()).unwrap();
            conn.busy_timeout(std::time::Duration::from_secs(10))
                .unwrap();
            conn.execute(sql, params)
                .map(|n| assert_eq!(n, 1))
                .map_err(|e| e.to_string())
        }
    }

    #[async_trait::async_trait]
    impl super::Harness for SqliteHarness {
        fn store(&self) -> Arc<dyn KeyStore> {
            self.store.clone()
        }

        async fn another_store(&self) -> Arc<dyn KeyStore> {
            Arc::new(SqliteKeyStore::open(self.path()).await.unwrap())
        }

        async fn reopen(&mut self) {
            self.store = Arc::new(SqliteKeyStore::open(self.path()).await.unwrap());
        }

        async fn raw_delete(&self, case_id: Uuid) -> Result<(), String> {
            self.raw(
                "DELETE FROM caseline_case_keys WHERE case_id = ?1",
                [case_id.as_bytes().as_slice()],
            )
        }

        async fn raw_set_key(&self, case_id: Uuid, key: &[u8]) -> Result<(), String> {
            self.raw(
                "UPDATE caseline_case_keys SET wrapped_key = ?2, shredded_at = NULL \
                 WHERE case_id = ?1",
                rusqlite::params![case_id.as_bytes().as_slice(), key],
            )
        }
    }

    common_suite!(SqliteHarness::new().await);

    #[cfg(unix)]
    #[tokio::test]
    async fn the_key_store_file_is_private() {
        use std::os::unix::fs::PermissionsExt;
        let h = SqliteHarness::new().await;
        let mode = std::fs::metadata(h.path()).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "mode {mode:o}");
    }

    #[tokio::test]
    async fn the_key_store_is_its_own_wal_file() {
        let h = SqliteHarness::new().await;
        let conn = rusqlite::Connection::open(h.path()).unwrap();
        let mode: String = conn
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode.to_lowercase(), "wal");
        let tables: Vec<String> = conn
            .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(tables, ["caseline_case_keys"]);
    }
}

mod postgres {
    use std::sync::Arc;

    use caseline_eventlog::postgres::{ScratchSchema, test_database_url};
    use caseline_vault::{KeyStore, PostgresKeyStore};
    use tokio_postgres::NoTls;
    use uuid::Uuid;

    /// One schema per test in the database of `CASELINE_TEST_DATABASE_URL`.
    pub struct PgHarness {
        admin: tokio_postgres::Client,
        store: Arc<PostgresKeyStore>,
        /// Dropped last: the schema goes with everything in it.
        schema: ScratchSchema,
    }

    impl PgHarness {
        pub async fn new() -> Self {
            let schema = ScratchSchema::for_test("caseline_test").await;
            let (admin, conn) = tokio_postgres::connect(&test_database_url(), NoTls)
                .await
                .unwrap();
            tokio::spawn(conn);
            let store = Arc::new(Self::open(&schema).await);
            Self {
                admin,
                store,
                schema,
            }
        }

        async fn open(schema: &ScratchSchema) -> PostgresKeyStore {
            PostgresKeyStore::connect_with(schema.config().unwrap(), 4)
                .await
                .unwrap()
        }

        async fn raw(
            &self,
            sql: &str,
            params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
        ) -> Result<(), String> {
            let sql = sql.replace("{schema}", self.schema.name());
            self.admin
                .execute(&sql, params)
                .await
                .map(|n| assert_eq!(n, 1))
                .map_err(|e| match e.as_db_error() {
                    Some(db) => db.message().to_owned(),
                    None => e.to_string(),
                })
        }
    }

    #[async_trait::async_trait]
    impl super::Harness for PgHarness {
        fn store(&self) -> Arc<dyn KeyStore> {
            self.store.clone()
        }

        async fn another_store(&self) -> Arc<dyn KeyStore> {
            Arc::new(Self::open(&self.schema).await)
        }

        async fn reopen(&mut self) {
            self.store = Arc::new(Self::open(&self.schema).await);
        }

        async fn raw_delete(&self, case_id: Uuid) -> Result<(), String> {
            self.raw(
                "DELETE FROM {schema}.caseline_case_keys WHERE case_id = $1",
                &[&case_id],
            )
            .await
        }

        async fn raw_set_key(&self, case_id: Uuid, key: &[u8]) -> Result<(), String> {
            self.raw(
                "UPDATE {schema}.caseline_case_keys SET wrapped_key = $2, shredded_at = NULL \
                 WHERE case_id = $1",
                &[&case_id, &key],
            )
            .await
        }
    }

    common_suite!(PgHarness::new().await);

    #[tokio::test]
    async fn truncating_the_key_table_is_refused() {
        let h = PgHarness::new().await;
        let err = h
            .admin
            .batch_execute(&format!("TRUNCATE {}.caseline_case_keys", h.schema.name()))
            .await
            .unwrap_err();
        let message = err.as_db_error().map(|d| d.message().to_owned());
        assert_eq!(
            message.as_deref(),
            Some("caseline case keys change only by shredding")
        );
    }

    #[tokio::test]
    async fn two_stores_starting_together_create_the_table_once() {
        // A fresh schema, migrated by several stores at once.
        let schema = ScratchSchema::for_test("caseline_test").await;
        let opens: Vec<_> = (0..4)
            .map(|_| {
                let config = schema.config().unwrap();
                tokio::spawn(
                    async move { PostgresKeyStore::connect_with(config, 4).await.unwrap() },
                )
            })
            .collect();
        for open in opens {
            open.await.unwrap();
        }
    }
}
