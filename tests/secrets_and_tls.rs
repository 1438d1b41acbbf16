//! What a person must be able to trust in every output: TLS verification turned off is
//! reported in every report, and the Proxmox token secret appears nowhere — not on the
//! terminal, not in any report file.

use std::process::Command;

// Multi-threaded: the twin must keep serving while this thread waits for the CLI.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn insecure_tls_is_reported_and_the_secret_never_appears() {
    let exe = Some(env!("CARGO_BIN_EXE_clusterproof").into());
    let t = twin::Twin::start(twin::TwinOptions {
        exe,
        ..Default::default()
    })
    .await
    .unwrap();
    let secret = std::fs::read_to_string(t.dir().join("proxmox-token-secret")).unwrap();
    assert!(secret.len() >= 32);
    // The twin's lab, with the pin replaced by `insecure = true`.
    let lab = std::fs::read_to_string(t.lab_path()).unwrap();
    let fp_line = lab
        .lines()
        .find(|l| l.starts_with("fingerprint = "))
        .unwrap()
        .to_string();
    let insecure_lab = t.dir().join("insecure.toml");
    std::fs::write(&insecure_lab, lab.replace(&fp_line, "insecure = true")).unwrap();
    let out = t.dir().join("out");
    let o = Command::new(env!("CARGO_BIN_EXE_clusterproof"))
        .args([
            "preflight",
            "--lab",
            insecure_lab.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ])
        .env("CLUSTERPROOF_LOG", "debug")
        .output()
        .unwrap();
    let terminal = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(o.status.code(), Some(0), "{terminal}");
    let summary = std::fs::read_to_string(out.join("summary.md")).unwrap();
    let junit = std::fs::read_to_string(out.join("junit.xml")).unwrap();
    let result = std::fs::read_to_string(out.join("result.json")).unwrap();
    assert!(
        summary.contains("**Notice:** TLS verification of the Proxmox API")
            && summary.contains("DISABLED"),
        "{summary}"
    );
    assert!(
        junit.contains(r#"<property name="notice" value="TLS verification of the Proxmox API"#),
        "{junit}"
    );
    assert!(
        result.contains("\"notices\": [\n    \"TLS verification"),
        "{result}"
    );
    for (what, text) in [
        ("terminal", &terminal),
        ("summary.md", &summary),
        ("junit.xml", &junit),
        ("result.json", &result),
    ] {
        assert!(
            !text.contains(secret.trim()),
            "the token secret leaked into {what}"
        );
    }
    let events = std::fs::read_to_string(out.join("events.jsonl")).unwrap();
    assert!(
        !events.contains(secret.trim()),
        "the token secret leaked into events.jsonl"
    );
    t.shutdown().await;
}

#[test]
fn fault_with_a_lab_file_is_refused() {
    let o = Command::new(env!("CARGO_BIN_EXE_clusterproof"))
        .args([
            "preflight",
            "--lab",
            "fixtures/seed/lab.toml",
            "--fault",
            "ceph-down",
        ])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("cannot be used with --lab"));
}

#[test]
fn an_unknown_fault_lists_the_known_ones() {
    let o = Command::new(env!("CARGO_BIN_EXE_clusterproof"))
        .args(["preflight", "--fault", "ceph-on-fire"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("unknown fault \"ceph-on-fire\"") && err.contains("ceph-degraded"),
        "{err}"
    );
}
