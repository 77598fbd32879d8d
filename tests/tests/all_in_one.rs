//! The all-in-one server started in-process on port 0 with its own data directory.

// Test code: a failed unwrap is a failed test, with its location.
#![allow(clippy::unwrap_used)]

use caseline::serve::{AllInOne, ServeArgs};

async fn start(
    data_dir: &std::path::Path,
) -> (
    std::net::SocketAddr,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<()>,
) {
    let args = ServeArgs::dev("127.0.0.1:0".parse().unwrap(), data_dir.to_path_buf());
    let app = AllInOne::build(&args).await.expect("all-in-one builds");
    let addr = app.local_addr();
    assert_ne!(addr.port(), 0, "port 0 resolves to a real port");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        app.run_until_stopped(async {
            let _ = stopped.await;
        })
        .await
        .expect("server stops cleanly");
    });
    (addr, stop, task)
}

#[tokio::test]
async fn serves_health_and_reflection_for_the_five_services() {
    let dir = tempfile::tempdir().unwrap();
    let (addr, stop, task) = start(dir.path()).await;
    let channel = caseline_e2e::connect(addr).await;
    caseline_e2e::assert_all_services_serving(channel.clone()).await;
    caseline_e2e::assert_reflection_lists_everything(channel).await;
    stop.send(()).unwrap();
    task.await.unwrap();
    assert!(
        dir.path().join("events.sqlite").exists(),
        "the embedded log lives in the data directory"
    );
}

#[tokio::test]
async fn two_servers_run_side_by_side_on_their_own_ports_and_data() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (addr_a, stop_a, task_a) = start(a.path()).await;
    let (addr_b, stop_b, task_b) = start(b.path()).await;
    assert_ne!(addr_a, addr_b);
    caseline_e2e::assert_all_services_serving(caseline_e2e::connect(addr_b).await).await;
    caseline_e2e::assert_all_services_serving(caseline_e2e::connect(addr_a).await).await;
    stop_a.send(()).unwrap();
    stop_b.send(()).unwrap();
    task_a.await.unwrap();
    task_b.await.unwrap();
}

#[tokio::test]
async fn refuses_to_start_without_dev_or_issuers() {
    let dir = tempfile::tempdir().unwrap();
    let mut args = ServeArgs::dev("127.0.0.1:0".parse().unwrap(), dir.path().to_path_buf());
    args.dev = false;
    let err = AllInOne::build(&args)
        .await
        .expect_err("no issuers, no --dev");
    let msg = err.to_string();
    assert!(msg.contains("issuers") && msg.contains("--dev"), "{msg}");
}
