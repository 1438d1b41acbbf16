//! The fault matrix: `clusterproof preflight --fault F` against the built-in twin, for every
//! fault the twin knows. The scenario the fault names must give its verdict (fail, or warn
//! for `ceph-degraded`) with a diagnosis naming the cause; every other scenario must pass;
//! the exit code must follow. Without faults, everything passes.

use twin::faults::{Expect, Fault};

mod common;

fn preflight(faults: &[Fault]) -> (i32, serde_json::Value, String) {
    common::run_twin(&["preflight"], faults)
}

fn verdicts(result: &serde_json::Value) -> Vec<(String, String)> {
    result["scenarios"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["id"].as_str().unwrap().to_string(),
                s["outcome"]["verdict"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// Words the diagnosis must contain for each fault: the cause, named.
fn diagnosis_words(f: Fault) -> &'static [&'static str] {
    match f {
        Fault::DnsPublicOnHosts => &["1.1.1.1", "instead of the LAN resolver", "Registering"],
        Fault::DnsLanWrongAnswer => &[
            "LAN view",
            "100.64.0.20",
            "not Omni's LAN IP",
            "Registering",
        ],
        Fault::StorageMissing => &[
            "no matches for the condition",
            "vm_ssd",
            "storage_selector mismatch",
        ],
        Fault::StorageInactive => &["vm_ssd", "not active"],
        Fault::CephDown => &["HEALTH_ERR", "no Ceph OSD is up"],
        Fault::CephDegraded => &["HEALTH_WARN", "OSD_DOWN"],
        Fault::RamExhausted => &["do not fit", "free above the headroom"],
        Fault::ProviderDisconnected => &[
            "disconnected",
            "Provider disconnected → service account key expired",
        ],
        Fault::OmniAuthExpired => &[
            "does not accept clusterproof's key",
            "expired or was revoked",
        ],
        // Verify-phase faults: `preflight` does not run their scenarios.
        Fault::CiliumMtuAutodetect
        | Fault::CrashloopPod
        | Fault::NodeNeverReady
        | Fault::CrossNodeDrop => &[],
        // Chaos faults: `preflight` does not run chaos::node_failure (tests/chaos.rs does).
        Fault::NodeNeverRecovers | Fault::VmStartFailsOnce | Fault::VictimHaManaged => &[],
    }
}

#[test]
fn without_faults_every_preflight_check_passes() {
    let (code, result, text) = preflight(&[]);
    assert_eq!(code, 0, "{text}");
    let v = verdicts(&result);
    assert_eq!(v.len(), 6, "{v:?}");
    assert!(v.iter().all(|(_, verdict)| verdict == "pass"), "{v:?}");
}

#[test]
fn each_fault_is_caught_by_its_scenario_and_only_there() {
    // `preflight --fault F` runs only the preflight scenarios: the faults caught there. The
    // verify-phase faults (caught by `dod::…`) are covered by the DoD fault matrix.
    for fault in Fault::ALL
        .into_iter()
        .filter(|f| f.caught_by().0.starts_with("preflight::"))
    {
        let (scenario, expect) = fault.caught_by();
        let (code, result, text) = preflight(&[fault]);
        let v = verdicts(&result);
        let want = match expect {
            Expect::Fail => "fail",
            Expect::Warn => "warn",
        };
        for (id, verdict) in &v {
            if id == scenario {
                assert_eq!(verdict, want, "{fault}: {id} should {want}\n{text}");
            } else {
                assert_eq!(verdict, "pass", "{fault}: {id} should stay green\n{text}");
            }
        }
        assert!(
            v.iter().any(|(id, _)| id == scenario),
            "{fault}: {scenario} did not run"
        );
        assert_eq!(
            code,
            if expect == Expect::Fail { 1 } else { 0 },
            "{fault}: exit code\n{text}"
        );
        // The diagnosis: message, evidence and remediation of the catching scenario.
        let s = result["scenarios"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["id"] == scenario)
            .unwrap();
        let diagnosis = format!(
            "{} {} {} {}",
            s["outcome"]["message"],
            s["outcome"]["evidence"],
            s["outcome"]["remediation"],
            s["outcome"]["findings"]
        );
        for w in diagnosis_words(fault) {
            assert!(
                diagnosis.contains(w),
                "{fault}: the diagnosis does not mention {w:?}:\n{diagnosis}"
            );
        }
    }
}
