//! The trust layer as operators meet it through the `caseline` binary: dev tokens from
//! `caseline token`, a server configured with a real issuer and master key, and no
//! child's data in the logs even at trace level.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use caseline_auth::{DevKey, Role};
use caseline_e2e::{authed, seed};
use caseline_eventlog::{EventLog, Uuid};
use caseline_proto::prost::Message;
use caseline_proto::tonic::Code;
use caseline_proto::v1::audit_service_client::AuditServiceClient;
use caseline_proto::v1::{
    ListBreakGlassUsesRequest, ReplayAccessHistoryRequest, VerifyIntegrityRequest,
    verify_integrity_request::Scope,
};
use caseline_vault::{MasterKey, SqliteKeyStore, Vault};
use common::{BIN, serve, stop};

fn token_command(data_dir: &Path, extra: &[&str]) -> std::process::Output {
    std::process::Command::new(BIN)
        .args(["token", "--data-dir"])
        .arg(data_dir)
        .args(extra)
        .output()
        .unwrap()
}

async fn verify_everything(addr: std::net::SocketAddr, token: &str) -> Result<bool, Code> {
    let mut client = AuditServiceClient::new(caseline_e2e::connect(addr).await);
    client
        .verify_integrity(authed(
            VerifyIntegrityRequest {
                scope: Some(Scope::Everything(true)),
            },
            token,
        ))
        .await
        .map(|r| r.into_inner().intact)
        .map_err(|s| s.code())
}

#[tokio::test]
async fn caseline_token_mints_tokens_the_dev_server_accepts() {
    let dir = tempfile::tempdir().unwrap();
    let (child, addr) = serve(
        &["--dev", "--data-dir", dir.path().to_str().unwrap()],
        &[("CASELINE_LOG", "warn")],
    )
    .await;

    let out = token_command(
        dir.path(),
        &[
            "--sub",
            "auditor-1",
            "--role",
            "auditor",
            "--agency",
            "oversight",
            "--ttl",
            "600",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    assert_eq!(token.split('.').count(), 3);
    assert_eq!(verify_everything(addr, &token).await, Ok(true));

    // A social worker's token is authentic but may not verify the log.
    let out = token_command(
        dir.path(),
        &[
            "--sub",
            "sw-1",
            "--role",
            "social_worker",
            "--agency",
            "social-north",
        ],
    );
    let social = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    assert_eq!(
        verify_everything(addr, &social).await,
        Err(Code::PermissionDenied)
    );

    // A token from another data directory's key is not accepted.
    let elsewhere = tempfile::tempdir().unwrap();
    let out = token_command(
        elsewhere.path(),
        &[
            "--sub",
            "auditor-1",
            "--role",
            "auditor",
            "--agency",
            "oversight",
        ],
    );
    let foreign = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    assert_eq!(
        verify_everything(addr, &foreign).await,
        Err(Code::Unauthenticated)
    );

    // Bad arguments say what is wrong.
    let out = token_command(
        dir.path(),
        &["--sub", "x", "--role", "janitor", "--agency", "a"],
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown role"));
    let out = token_command(
        dir.path(),
        &[
            "--sub", "x", "--role", "auditor", "--agency", "a", "--ttl", "999999",
        ],
    );
    assert!(!out.status.success());
    stop(child).await;
}

#[tokio::test]
async fn serve_runs_without_dev_on_a_configured_issuer_and_master_key() {
    let dir = tempfile::tempdir().unwrap();
    // An issuer of our own: its public keys in a JWKS file, as an identity provider
    // would publish them.
    let issuer_dir = tempfile::tempdir().unwrap();
    let issuer = DevKey::load_or_create(issuer_dir.path()).unwrap();
    let jwks = issuer_dir.path().join("jwks.json");
    std::fs::write(&jwks, serde_json::to_vec(&issuer.jwks()).unwrap()).unwrap();
    let config = dir.path().join("caseline.toml");
    std::fs::write(
        &config,
        format!(
            "data_dir = {data:?}\ninstance = \"caseline-test-1\"\n\n[[auth.issuers]]\nissuer = \"caseline-dev\"\naudience = \"caseline-dev\"\njwks_file = {jwks:?}\nalgorithms = [\"EdDSA\"]\n",
            data = dir.path().join("data"),
        ),
    )
    .unwrap();
    let config = config.to_str().unwrap();

    // Without a master key it refuses, and says what to set.
    let out = std::process::Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--config", config])
        .env_remove("CASELINE_MASTER_KEY")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("CASELINE_MASTER_KEY"), "{stderr}");

    let master = MasterKey::generate_base64().unwrap();
    let (child, addr) = serve(
        &["--config", config],
        &[
            ("CASELINE_MASTER_KEY", master.expose()),
            ("CASELINE_LOG", "info"),
        ],
    )
    .await;
    let token = issuer
        .issue(
            "auditor-1",
            &[Role::Auditor],
            "oversight",
            None,
            Duration::from_secs(300),
        )
        .unwrap();
    assert_eq!(verify_everything(addr, &token).await, Ok(true));
    // The server's own dev key is not trusted without --dev.
    let dev_token = DevKey::load_or_create(&dir.path().join("data"))
        .unwrap()
        .issue(
            "auditor-1",
            &[Role::Auditor],
            "oversight",
            None,
            Duration::from_secs(300),
        )
        .unwrap();
    assert_eq!(
        verify_everything(addr, &dev_token).await,
        Err(Code::Unauthenticated)
    );
    let stderr = stop(child).await;
    assert!(!stderr.contains("DEVELOPMENT MODE"), "{stderr}");
    assert!(
        !dir.path()
            .join("data")
            .join(caseline_vault::MASTER_KEY_FILE)
            .exists()
    );
}

/// A value that must never appear outside sealed storage and the hands of the one
/// person allowed to read it.
const CANARY: &str = "CANARY-Amelie-Okafor-2014-03-09";

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test]
async fn no_childs_data_reaches_the_logs_even_at_trace_level() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    // A case whose break-glass reason names the child, sealed as the trust layer seals
    // it, in the data directory the server will open.
    let case_id = Uuid::new_v4();
    {
        let log: Arc<dyn EventLog> =
            caseline_eventlog::open(&format!("sqlite:{}", data.join("events.sqlite").display()))
                .await
                .unwrap();
        let vault = Vault::new(
            MasterKey::load_or_create(data).unwrap(),
            Arc::new(
                SqliteKeyStore::open(data.join(caseline_vault::KEY_STORE_FILE))
                    .await
                    .unwrap(),
            ),
        );
        seed::add_member(&*log, case_id, "sw-1", "social-north", "social_worker").await;
        let reason = format!("{CANARY} missing since this morning");
        seed::break_glass(&*log, &vault, case_id, "pol-7", "police-north", &reason).await;
        log.close().await;
    }

    let (child, addr) = serve(
        &["--dev", "--data-dir", data.to_str().unwrap()],
        &[("CASELINE_LOG", "trace")],
    )
    .await;
    let key = DevKey::load_or_create(data).unwrap();
    let token = |sub: &str, role: Role, agency: &str| {
        key.issue(sub, &[role], agency, None, Duration::from_secs(300))
            .unwrap()
    };
    let mut client = AuditServiceClient::new(caseline_e2e::connect(addr).await);

    // The supervisor who must review it reads the reason: the canary went through the
    // server's vault and the trust layer, with everything logged at trace level.
    let supervisor = token("sup-1", Role::Supervisor, "police-north");
    let uses = client
        .list_break_glass_uses(authed(ListBreakGlassUsesRequest::default(), &supervisor))
        .await
        .unwrap()
        .into_inner()
        .uses;
    assert_eq!(uses.len(), 1);
    assert!(uses[0].reason.contains(CANARY));
    // The canary also rides in a break-glass header and a refused call.
    let mut request = authed(ListBreakGlassUsesRequest::default(), &supervisor);
    request.metadata_mut().insert(
        "x-caseline-purpose",
        "emergency_safeguarding".parse().unwrap(),
    );
    request.metadata_mut().insert(
        "x-caseline-break-glass-reason",
        format!("{CANARY} is in danger tonight").parse().unwrap(),
    );
    client.list_break_glass_uses(request).await.unwrap();
    let social = token("sw-1", Role::SocialWorker, "social-north");
    let mut refused = authed(
        ReplayAccessHistoryRequest {
            case_id: case_id.to_string(),
            ..Default::default()
        },
        &social,
    );
    refused
        .metadata_mut()
        .insert("x-caseline-purpose", "child_protection".parse().unwrap());
    refused.metadata_mut().insert(
        "x-caseline-break-glass-reason",
        format!("{CANARY} short").parse().unwrap(),
    );
    assert!(client.replay_access_history(refused).await.is_err());
    // The auditor replays the case: metadata only.
    let auditor = token("aud-1", Role::Auditor, "oversight");
    let mut stream = client
        .replay_access_history(authed(
            ReplayAccessHistoryRequest {
                case_id: case_id.to_string(),
                ..Default::default()
            },
            &auditor,
        ))
        .await
        .unwrap()
        .into_inner();
    let mut entries = 0;
    while let Some(entry) = stream.message().await.unwrap() {
        assert!(!contains(&entry.encode_to_vec(), CANARY.as_bytes()));
        entries += 1;
    }
    assert!(entries >= 3, "write, grant and access records: {entries}");

    let stderr = stop(child).await;
    assert!(
        stderr.contains("TRACE") || stderr.contains("DEBUG"),
        "trace logging was on"
    );
    assert!(!stderr.contains(CANARY), "the canary leaked into the logs");
    assert!(
        !stderr.contains("Amelie"),
        "part of the canary leaked into the logs"
    );
    // Nor is it anywhere in the stored files in the clear.
    for entry in std::fs::read_dir(data).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            let bytes = std::fs::read(&path).unwrap();
            assert!(
                !contains(&bytes, CANARY.as_bytes()),
                "{} holds the canary in the clear",
                path.display()
            );
        }
    }
}
