//! The Definition of Done against the twin: `clusterproof run` provisions it and the six
//! `dod::*` scenarios pass; then the DoD fault matrix — each verify-phase fault of the twin is
//! caught by the scenario it names, with its diagnosis, while the other DoD scenarios stay green
//! (except the few a fault rightly breaks too, listed per fault) and the chaos experiment refuses
//! to inject, naming what is unhealthy.

use twin::faults::Fault;

mod common;

fn run(faults: &[Fault]) -> (i32, serde_json::Value, String) {
    common::run_twin(&["run", "--keep-going"], faults)
}

fn outcome<'a>(r: &'a serde_json::Value, id: &str) -> &'a serde_json::Value {
    &r["scenarios"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == id)
        .unwrap_or_else(|| panic!("{id} missing from {r}"))["outcome"]
}

/// Pass — or, for `dod::control_plane_ready`, the warning that one host runs enough control
/// planes to take etcd quorum with it: the seed's control-plane class pins no host, and the
/// provider (≤ v0.1.x) may stack them, so that warning is the right answer, not noise.
fn green(id: &str, o: &serde_json::Value) -> bool {
    o["verdict"] == "pass"
        || (id == "dod::control_plane_ready"
            && o["verdict"] == "warn"
            && o["message"]
                .as_str()
                .is_some_and(|m| m.contains("loses etcd quorum")))
}

/// The DoD scenario ids, read from the catalog (no hard-coded list).
fn dod_ids() -> Vec<&'static str> {
    scenarios::catalog()
        .iter()
        .map(|s| s.id())
        .filter(|id| id.starts_with("dod::"))
        .collect()
}

#[test]
fn a_provisioned_twin_meets_every_definition_of_done_item() {
    let (code, r, text) = run(&[]);
    assert_eq!(code, 0, "{text}");
    let ids = dod_ids();
    assert_eq!(ids.len(), 6, "{ids:?}");
    for id in ids {
        let o = outcome(&r, id);
        assert!(green(id, o), "{id}: {o}\n{text}");
    }
    let cp = outcome(&r, "dod::control_plane_ready");
    assert!(
        cp["evidence"].to_string().contains("[+]etcd ok"),
        "the etcd check is named: {cp}"
    );
    assert!(
        outcome(&r, "dod::connectivity")["message"]
            .as_str()
            .unwrap()
            .contains("pod-to-service")
    );
}

/// Words the catching scenario's diagnosis must contain, and the other scenarios the fault
/// rightly breaks as well.
fn expectation(f: Fault) -> (&'static [&'static str], &'static [&'static str]) {
    match f {
        Fault::CiliumMtuAutodetect => (
            &["MTU=1450", "auto-detects the MTU"],
            &["provision::cilium"],
        ),
        Fault::CrashloopPod => (&["coredns"], &[]),
        Fault::NodeNeverReady => (
            &["is not Ready", "Ready=False"],
            &["provision::cilium", "dod::workers_ready"],
        ),
        Fault::CrossNodeDrop => (&["path(s) failed", "timeout"], &[]),
        _ => (&[], &[]),
    }
}

#[test]
fn each_verify_fault_is_caught_by_its_dod_scenario() {
    for fault in Fault::ALL
        .into_iter()
        .filter(|f| f.caught_by().0.starts_with("dod::"))
    {
        let (scenario, _) = fault.caught_by();
        let (words, also) = expectation(fault);
        let (code, r, text) = run(&[fault]);
        assert_eq!(code, 1, "{fault}: exit code\n{text}");
        for s in r["scenarios"].as_array().unwrap() {
            let id = s["id"].as_str().unwrap();
            let verdict = s["outcome"]["verdict"].as_str().unwrap();
            if id == scenario {
                assert_eq!(verdict, "fail", "{fault}: {id} must fail\n{text}");
                let diagnosis = format!(
                    "{} {} {}",
                    s["outcome"]["message"], s["outcome"]["evidence"], s["outcome"]["remediation"]
                );
                for w in words {
                    assert!(
                        diagnosis.contains(w),
                        "{fault}: {id}'s diagnosis does not mention {w:?}:\n{diagnosis}"
                    );
                }
            } else if also.contains(&id) {
                assert_eq!(verdict, "fail", "{fault}: {id} fails too\n{text}");
            } else if id.starts_with("chaos::") {
                // The chaos gate: no VM is stopped in a cluster that fails its DoD.
                let msg = s["outcome"]["message"].as_str().unwrap();
                assert!(
                    verdict == "fail"
                        && msg.contains("refusing to inject into an unhealthy cluster")
                        && msg.contains(scenario),
                    "{fault}: {id} must refuse naming {scenario}, was {verdict}: {msg}"
                );
            } else {
                assert!(
                    green(id, &s["outcome"]),
                    "{fault}: {id} should stay green, was {verdict}: {}\n{text}",
                    s["outcome"]["message"]
                );
            }
        }
    }
}
