//! Running the real `caseline` binary from tests.
#![allow(clippy::unwrap_used, dead_code)]

use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::process::{Child, Command};

pub const BIN: &str = env!("CARGO_BIN_EXE_caseline");

/// A running `caseline serve`, its standard error drained as it runs (a full pipe
/// would block the server's logging).
pub struct Served {
    child: Child,
    stderr: tokio::task::JoinHandle<String>,
}

/// Starts `caseline serve` with `args` and returns it with the address it announced.
pub async fn serve(args: &[&str], envs: &[(&str, &str)]) -> (Served, std::net::SocketAddr) {
    let mut child = Command::new(BIN)
        .arg("serve")
        .args(args)
        .args(["--listen", "127.0.0.1:0"])
        .env_remove("CASELINE_MASTER_KEY")
        .envs(envs.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
    let line = tokio::time::timeout(Duration::from_secs(30), stdout.next_line())
        .await
        .expect("no address announced within 30 s")
        .unwrap();
    let Some(line) = line else {
        let mut stderr = String::new();
        child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut stderr)
            .await
            .unwrap();
        panic!("serve exited before announcing its address: {stderr}");
    };
    let addr = line.strip_prefix("listening on ").unwrap().parse().unwrap();
    let mut pipe = child.stderr.take().unwrap();
    let stderr = tokio::spawn(async move {
        let mut text = String::new();
        let _ = pipe.read_to_string(&mut text).await;
        text
    });
    (Served { child, stderr }, addr)
}

/// Stops the server with SIGTERM and returns everything it wrote to standard error.
pub async fn stop(served: Served) -> String {
    let Served { mut child, stderr } = served;
    let pid = child.id().unwrap().to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "{status}");
    stderr.await.unwrap()
}
