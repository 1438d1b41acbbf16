//! `clusterproof bench` smoke test: at 5 nodes, with a short poll interval and few
//! transitions, it runs to the end and its JSON carries every measurement and every target
//! with `{name, value, limit, unit, met}`. No timed assertions: whether a target is met is
//! the bench's output, not this test's verdict (the process exits 0 or 1 either way).
//!
//! The poller needs a real kubectl: `$KUBECTL` if set, else `kubectl` on `PATH`. Without one
//! the test fails, unless `CLUSTERPROOF_SKIP_KUBECTL=1` says to skip it.

use std::process::Command;

fn kubectl() -> Option<String> {
    if let Ok(k) = std::env::var("KUBECTL")
        && !k.is_empty()
    {
        return Some(k);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join("kubectl"))
        .find(|p| p.is_file())
        .map(|p| p.display().to_string())
}

#[test]
fn bench_at_5_nodes_reports_every_target() {
    let Some(kubectl) = kubectl() else {
        assert_eq!(
            std::env::var("CLUSTERPROOF_SKIP_KUBECTL").as_deref(),
            Ok("1"),
            "no kubectl on PATH (set KUBECTL, or CLUSTERPROOF_SKIP_KUBECTL=1 to skip)"
        );
        return;
    };
    let out = Command::new(env!("CARGO_BIN_EXE_clusterproof"))
        .args([
            "bench",
            "--nodes",
            "5",
            "--json",
            "--poll-interval",
            "300ms",
            "--transitions",
            "4",
            "--poll-transitions",
            "2",
            "--kubectl",
            &kubectl,
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let code = out.status.code().unwrap_or(-1);
    assert!(
        code == 0 || code == 1,
        "bench exited {code} (0: every target met, 1: some not; anything else: it could not measure):\n{stderr}"
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("stdout is not one JSON object: {e}\n{stderr}"));

    let sizes = v["sizes"].as_array().expect("a sizes list");
    assert_eq!(sizes.len(), 1, "{v:#}");
    let s = &sizes[0];
    assert_eq!(s["nodes"], 5);
    for step in ["preflight", "verify"] {
        for field in [
            "exit_code",
            "wall_ms",
            "peak_rss_mb",
            "kube_requests",
            "proxmox_requests",
        ] {
            assert!(s[step][field].is_number(), "{step}.{field} missing: {s:#}");
        }
        assert!(s[step]["peak_rss_mb"].as_f64().unwrap() > 0.0, "{s:#}");
    }
    assert!(s["verify"]["kube_requests"].as_u64().unwrap() > 0, "{s:#}");
    for lat in ["node_not_ready", "pod_ready"] {
        assert_eq!(s[lat]["transitions"], 4, "{lat}: {s:#}");
    }
    assert!(s["poller"]["polls"].as_u64().unwrap() > 0, "{s:#}");

    let targets = v["targets"].as_array().expect("a targets list");
    let names: Vec<&str> = targets.iter().filter_map(|t| t["name"].as_str()).collect();
    for want in [
        "preflight wall time",
        "verify wall time",
        "verify Kubernetes requests",
        "harness peak RSS",
        "node NotReady detection latency p99",
        "pod Ready detection latency p99",
        "poller mean / harness p99",
    ] {
        assert!(
            names.iter().any(|n| n.starts_with(want)),
            "no target {want:?} in {names:?}"
        );
    }
    for t in targets {
        assert!(t["value"].is_number() || t["value"].is_null(), "{t}");
        assert!(t["limit"].is_number(), "{t}");
        assert!(t["unit"].is_string(), "{t}");
        assert!(t["met"].is_boolean(), "{t}");
    }
    let all_met = targets.iter().all(|t| t["met"] == true);
    assert_eq!(
        code == 0,
        all_met,
        "exit code {code} agrees with the targets"
    );
}
