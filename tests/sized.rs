//! `clusterproof verify` on its own, against an already provisioned twin of 5 and of 200
//! nodes: it passes all six Definition-of-Done scenarios at both sizes, and the number of
//! Kubernetes requests it sends (the twin's own accounting, clients only) does not grow with
//! the cluster — within 10 % between 5 and 200 nodes. That is what makes a scheduled verify
//! cheap on a production API server: it watches and lists, it does not GET node by node, and
//! `dod::connectivity` dials a fixed sample of pairs on a large cluster.
//!
//! The twin here is the test profile's (a debug build); since its controllers do work in
//! proportion to what changed, 200 nodes take about 20 s here. `clusterproof bench --nodes
//! 5,50,500` (docs/bench.md, release build) measures the same count and the wall times up
//! to 500 nodes.
//!
//! Each size: start the twin (a generated template for that size), `provision --yes --lab` as
//! one process, then `verify --lab` as another (the scheduled use: no state but the lab
//! file), with the counters read around the second.

use std::process::Command;
use std::time::{Duration, Instant};

struct Footprint {
    nodes: u32,
    hosts: usize,
    requests: u64,
    by_resource: std::collections::BTreeMap<String, u64>,
    wall: Duration,
}

fn clusterproof(args: &[&str], out: &std::path::Path) -> (i32, String) {
    let o = tokio::task::block_in_place(|| {
        Command::new(env!("CARGO_BIN_EXE_clusterproof"))
            .args(args)
            .arg("--out")
            .arg(out)
            .output()
            .unwrap()
    });
    (
        o.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        ),
    )
}

async fn verify_footprint(size: twin::TwinSize) -> Footprint {
    harness::proxmox::tls::install_default_provider();
    let t = twin::Twin::start(twin::TwinOptions {
        exe: Some(env!("CARGO_BIN_EXE_clusterproof").into()),
        size,
        ..Default::default()
    })
    .await
    .unwrap();
    let lab = t.lab_path().to_str().unwrap().to_string();
    let (code, text) = clusterproof(&["provision", "--yes", "--lab", &lab], &t.dir().join("p"));
    assert_eq!(code, 0, "provision of {size} failed:\n{text}");
    assert_eq!(
        t.omni.list("ClusterMachineStatuses.omni.sidero.dev").len() as u32,
        size.nodes(),
        "provision of {size} connected every machine"
    );

    let before = t.kube.request_counts();
    let started = Instant::now();
    let out = t.dir().join("v");
    let (code, text) = clusterproof(&["verify", "--lab", &lab], &out);
    let wall = started.elapsed();
    let after = t.kube.request_counts();
    assert_eq!(code, 0, "verify of {size} failed:\n{text}");
    let result: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("result.json")).unwrap()).unwrap();
    let dod: Vec<_> = result["scenarios"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["id"].as_str().unwrap_or("").starts_with("dod::"))
        .collect();
    assert_eq!(dod.len(), 6, "six DoD scenarios ran:\n{text}");
    for s in dod {
        assert!(
            s["outcome"]["verdict"] == "pass" || s["outcome"]["verdict"] == "warn",
            "{s}\n{text}"
        );
    }
    let mut by_resource = std::collections::BTreeMap::new();
    for (k, n) in &after.by_key {
        let was = before.by_key.get(k).copied().unwrap_or(0);
        if *n > was {
            let key = format!(
                "{} {}{}",
                k.verb,
                k.resource,
                if k.subresource.is_empty() {
                    String::new()
                } else {
                    format!("/{}", k.subresource)
                }
            );
            *by_resource.entry(key).or_insert(0) += n - was;
        }
    }
    let hosts = t.proxmox.host_count();
    t.shutdown().await;
    Footprint {
        nodes: size.nodes(),
        hosts,
        requests: after.total - before.total,
        by_resource,
        wall,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_sends_as_many_requests_for_200_nodes_as_for_5() {
    let small = verify_footprint(twin::TwinSize::SEED).await;
    let large = verify_footprint(twin::TwinSize::parse("200").unwrap()).await;
    for f in [&small, &large] {
        // Printed for the record (`cargo nextest run --no-capture --test sized`).
        println!(
            "verify at {:>3} nodes on {:>2} hosts: {} Kubernetes requests, {:.2?} wall; {:?}",
            f.nodes, f.hosts, f.requests, f.wall, f.by_resource
        );
    }
    assert_eq!((small.nodes, large.nodes), (5, 200), "the twins' sizes");
    let (s, l) = (small.requests as f64, large.requests as f64);
    assert!(
        (l - s).abs() <= s * 0.10,
        "verify sent {} requests at 5 nodes and {} at 200 (more than 10 % apart):\n5: {:?}\n200: {:?}",
        small.requests,
        large.requests,
        small.by_resource,
        large.by_resource
    );
}
