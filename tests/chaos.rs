//! `chaos::node_failure` against the twin, through the real binary: it passes in every mode for
//! a worker and a control-plane victim with every metric; `--dry-run` sends no mutating
//! request; the lab is restored after a SIGKILL at many points (by `chaos recover`, and a new
//! run refuses before it) and after SIGTERM or Ctrl-C (by the run itself); two runs at once →
//! one injects, the other names the holder; an unhealthy cluster or an HA-managed victim → a
//! refusal with no VM touched; the twin's faults get their diagnosis; and time to detect
//! follows the twin's node grace period.
//!
//! Each test starts the twin in this process (so killing the harness leaves it running) and
//! provisions it with `clusterproof provision --yes --lab`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use twin::faults::Fault;

const EXE: &str = env!("CARGO_BIN_EXE_clusterproof");
/// The chaos command.
const CHAOS: &[&str] = &["chaos", "node-failure"];

struct Lab {
    twin: twin::Twin,
    lab: String,
    n: std::cell::Cell<u32>,
}

fn output_text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

impl Lab {
    async fn start(opts: twin::TwinOptions) -> Lab {
        harness::proxmox::tls::install_default_provider();
        let twin = twin::Twin::start(twin::TwinOptions {
            exe: Some(EXE.into()),
            ..opts
        })
        .await
        .unwrap();
        let lab = twin.lab_path().to_str().unwrap().to_string();
        let l = Lab {
            twin,
            lab,
            n: 0.into(),
        };
        let (code, _, text) = l.cli(&["provision", "--yes"]);
        assert_eq!(code, 0, "provisioning the twin failed:\n{text}");
        l
    }

    async fn with_faults(faults: &[Fault]) -> Lab {
        Lab::start(twin::TwinOptions {
            faults: faults.to_vec(),
            ..Default::default()
        })
        .await
    }

    fn out(&self) -> PathBuf {
        self.n.set(self.n.get() + 1);
        self.twin.dir().join(format!("run-{}", self.n.get()))
    }

    fn command(&self, args: &[&str], out: &Path) -> Command {
        let mut c = Command::new(EXE);
        c.args(args).args(["--lab", &self.lab]);
        if args[0] != "chaos" || args.get(1) != Some(&"recover") {
            c.arg("--out").arg(out);
        }
        c
    }

    /// Run the CLI to the end: exit code, result.json (Null if none), terminal text.
    fn cli(&self, args: &[&str]) -> (i32, serde_json::Value, String) {
        let out = self.out();
        let o = tokio::task::block_in_place(|| self.command(args, &out).output().unwrap());
        let result = std::fs::read_to_string(out.join("result.json"))
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or(serde_json::Value::Null);
        (o.status.code().unwrap_or(-1), result, output_text(&o))
    }

    fn chaos(&self, extra: &[&str]) -> (i32, serde_json::Value, String) {
        let args: Vec<&str> = CHAOS.iter().chain(extra).copied().collect();
        self.cli(&args)
    }

    fn spawn_chaos(&self, extra: &[&str]) -> (Child, PathBuf) {
        let out = self.out();
        let args: Vec<&str> = CHAOS.iter().chain(extra).copied().collect();
        let child = self
            .command(&args, &out)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        (child, out)
    }

    fn journal(&self) -> PathBuf {
        self.twin.dir().join("state").join("chaos-journal.json")
    }

    /// Every VM of the twin's Proxmox, asked through the API the harness uses: (name, status,
    /// qmpstatus).
    async fn vms(&self) -> Vec<(String, String, String)> {
        let lab = harness::model::lab::LabFile::load(Path::new(&self.lab)).unwrap();
        let px =
            harness::proxmox::ProxmoxClient::new(&lab.proxmox, Duration::from_secs(10)).unwrap();
        let mut out = Vec::new();
        for v in px.cluster_vms().await.unwrap() {
            let (Some(vmid), Some(node)) = (v.vmid, v.node.clone()) else {
                continue;
            };
            let st = px.vm_status(&node, vmid).await.unwrap();
            out.push((
                v.name.unwrap_or_default(),
                st.status,
                st.qmpstatus.unwrap_or_default(),
            ));
        }
        out
    }

    async fn assert_all_vms_running(&self, context: &str) {
        let vms = self.vms().await;
        assert!(!vms.is_empty());
        for (name, status, qmp) in &vms {
            assert!(
                status == "running" && qmp != "paused",
                "{context}: VM {name} is {status} ({qmp})"
            );
        }
    }

    /// `clusterproof verify` passes: the cluster is healthy.
    fn assert_healthy(&self, context: &str) {
        let (code, _, text) = self.cli(&["verify", "--yes"]);
        assert_eq!(code, 0, "{context}: verify did not pass:\n{text}");
    }
}

fn outcome(result: &serde_json::Value) -> &serde_json::Value {
    &result["scenarios"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["id"] == "chaos::node_failure"))
        .unwrap_or_else(|| panic!("no chaos::node_failure in {result}"))["outcome"]
}

fn metric(result: &serde_json::Value, name: &str) -> Option<f64> {
    outcome(result)["metrics"][name]["value"].as_f64()
}

fn proxmox_power_requests(t: &twin::Twin) -> u64 {
    t.proxmox
        .request_counts()
        .matching(|k| k.method == "POST" && k.path.contains("/status/"))
}

/// A point of the experiment, as a substring of an `events.jsonl` line.
const POINTS: &[&str] = &[
    "stage: checking the cluster is healthy",
    "created DaemonSet and Service clusterproof-netexec",
    "stage: planning",
    "stage: deploying the canary",
    "stage: injecting",
    r#""lane":"vm","state":"down""#,
    r#""lane":"node","state":"down""#,
    r#""lane":"omni","state":"down""#,
    r#""lane":"pods","state":"down""#,
    r#""lane":"pods","state":"up""#,
    "stage: restoring the VM",
    r#""lane":"vm","state":"up""#,
    "stage: checking the Definition of Done again",
];

/// Wait until `events.jsonl` in `out` has a line containing `point` (or the child ended).
fn wait_for_point(child: &mut Child, out: &Path, point: &str) -> bool {
    let deadline = Instant::now() + Duration::from_secs(60);
    let file = out.join("events.jsonl");
    while Instant::now() < deadline {
        if std::fs::read_to_string(&file).is_ok_and(|t| t.lines().any(|l| l.contains(point))) {
            return true;
        }
        if child.try_wait().unwrap().is_some() {
            return false;
        }
        // Bounded poll of a file another process appends to.
        std::thread::sleep(Duration::from_millis(5));
    }
    false
}

fn signal(child: &Child, sig: &str) {
    let ok = Command::new("kill")
        .args([&format!("-{sig}"), &child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill -{sig} failed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passes_in_every_mode_for_a_worker_and_a_control_plane() {
    let lab = Lab::start(Default::default()).await;
    for target in ["worker", "control-plane"] {
        for mode in ["stop", "shutdown", "reset", "suspend"] {
            let (code, r, text) = lab.chaos(&["--yes", "--target", target, "--mode", mode]);
            let o = outcome(&r);
            assert_eq!(code, 0, "{target} {mode}: {o:#}\n{text}");
            assert_eq!(o["verdict"], "pass", "{target} {mode}: {o:#}");
            let mut want = vec![
                "time_to_detect_seconds",
                "time_to_recover_seconds",
                "api_availability_percent",
                "canary_availability_percent",
                "api_probes",
                "canary_probes",
            ];
            // A reset's outage is shorter than the grace period and Omni's link-down
            // interval: the node only blinks NotReady while its CNI comes back.
            if mode != "reset" {
                want.push("time_to_reschedule_seconds");
                want.push("time_to_omni_disconnect_seconds");
            }
            for m in want {
                assert!(metric(&r, m).is_some(), "{target} {mode}: no {m} in {o:#}");
            }
            assert!(metric(&r, "api_probes").unwrap() > 0.0);
            assert!(
                !lab.journal().exists(),
                "{target} {mode}: the journal is left"
            );
            lab.assert_all_vms_running(&format!("{target} {mode}"))
                .await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run_plans_and_sends_no_mutating_request() {
    let lab = Lab::start(Default::default()).await;
    let kube = lab.twin.kube.request_counts();
    let px = lab.twin.proxmox.request_counts();
    let (code, r, text) = lab.chaos(&["--dry-run", "--target", "control-plane"]);
    assert_eq!(code, 0, "{text}");
    let o = outcome(&r);
    assert!(
        o["message"]
            .as_str()
            .unwrap()
            .contains("dry run: would stop VM"),
        "{o:#}"
    );
    let kube = lab.twin.kube.request_counts().since(&kube);
    let px = lab.twin.proxmox.request_counts().since(&px);
    assert_eq!(kube.mutating, 0, "Kubernetes: {:?}", kube.by_key);
    assert_eq!(px.mutating, 0, "Proxmox: {:?}", px.by_key);
    assert!(px.total > 0, "the plan read Proxmox");
    assert!(!lab.journal().exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_at_any_point_then_recover_restores_the_lab() {
    let lab = Lab::start(Default::default()).await;
    let mut killed_with_journal = 0;
    for (seed, point) in POINTS.iter().enumerate() {
        let seed = seed.to_string();
        let (mut child, out) = lab.spawn_chaos(&["--yes", "--seed", &seed]);
        let reached = wait_for_point(&mut child, &out, point);
        if !reached {
            let o = child.wait_with_output().unwrap();
            panic!("point {point:?} never reached:\n{}", output_text(&o));
        }
        child.kill().unwrap();
        child.wait().unwrap();
        // A journal with something left to undo (not yet `restored`).
        let unfinished = std::fs::read_to_string(lab.journal())
            .ok()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            .is_some_and(|j| j["stage"] != "restored");
        if unfinished {
            killed_with_journal += 1;
            // Before recovery, a new run refuses and says how to recover.
            let (code, r, text) = lab.chaos(&["--yes"]);
            assert_ne!(
                code, 0,
                "after a kill at {point:?} a new run went ahead:\n{text}"
            );
            let msg = outcome(&r)["message"].to_string();
            assert!(
                msg.contains("chaos recover"),
                "after a kill at {point:?}: {msg}"
            );
        }
        let (code, _, text) = lab.cli(&["chaos", "recover"]);
        assert_eq!(code, 0, "recover after a kill at {point:?}:\n{text}");
        assert!(
            !lab.journal().exists(),
            "recover left the journal ({point:?})"
        );
        lab.assert_all_vms_running(&format!("after a kill at {point:?} and recover"))
            .await;
        lab.assert_healthy(&format!("after a kill at {point:?} and recover"));
    }
    assert!(
        killed_with_journal >= 7,
        "only {killed_with_journal} kills left a journal to recover"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_or_ctrl_c_restores_without_a_recover_step() {
    let lab = Lab::start(Default::default()).await;
    let points = [
        r#""lane":"vm","state":"down""#,
        r#""lane":"node","state":"down""#,
        r#""lane":"pods","state":"down""#,
        "stage: restoring the VM",
    ];
    for sig in ["TERM", "INT"] {
        for point in points {
            let (mut child, out) = lab.spawn_chaos(&["--yes"]);
            assert!(
                wait_for_point(&mut child, &out, point),
                "{point:?} never reached"
            );
            signal(&child, sig);
            let o = child.wait_with_output().unwrap();
            let text = output_text(&o);
            assert_eq!(o.status.code(), Some(3), "SIG{sig} at {point:?}:\n{text}");
            let r: serde_json::Value =
                serde_json::from_str(&std::fs::read_to_string(out.join("result.json")).unwrap())
                    .unwrap();
            assert!(r["interrupted"].is_string(), "SIG{sig}: {r}");
            assert!(
                !lab.journal().exists(),
                "SIG{sig} at {point:?} left the journal:\n{text}"
            );
            lab.assert_all_vms_running(&format!("SIG{sig} at {point:?}"))
                .await;
            lab.assert_healthy(&format!("SIG{sig} at {point:?}"));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_runs_at_once_one_injects_the_other_names_the_holder() {
    let lab = Lab::start(Default::default()).await;
    let before = proxmox_power_requests(&lab.twin);
    let (a, out_a) = lab.spawn_chaos(&["--yes"]);
    let (b, out_b) = lab.spawn_chaos(&["--yes"]);
    let (a, b) = tokio::task::block_in_place(|| {
        (a.wait_with_output().unwrap(), b.wait_with_output().unwrap())
    });
    let read = |out: &Path| -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(out.join("result.json")).unwrap()).unwrap()
    };
    let (ra, rb) = (read(&out_a), read(&out_b));
    let verdicts = [
        outcome(&ra)["verdict"].clone(),
        outcome(&rb)["verdict"].clone(),
    ];
    let passed = verdicts.iter().filter(|v| *v == "pass").count();
    assert_eq!(
        passed,
        1,
        "{ra:#}\n{rb:#}\n{}\n{}",
        output_text(&a),
        output_text(&b)
    );
    let refused = if verdicts[0] == "pass" { &rb } else { &ra };
    let msg = outcome(refused)["message"].as_str().unwrap();
    assert!(
        msg.contains("another chaos run holds the cluster lock")
            && msg.contains("clusterproof pid"),
        "{msg}"
    );
    // One stop and one start: the refused run touched no VM.
    assert_eq!(proxmox_power_requests(&lab.twin) - before, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unhealthy_cluster_is_refused_and_no_vm_is_touched() {
    let lab = Lab::with_faults(&[Fault::CrashloopPod]).await;
    let before = proxmox_power_requests(&lab.twin);
    let (code, r, text) = lab.chaos(&["--yes"]);
    assert_eq!(code, 1, "{text}");
    let msg = outcome(&r)["message"].as_str().unwrap().to_string();
    assert!(
        msg.contains("refusing to inject into an unhealthy cluster")
            && msg.contains("dod::core_pods"),
        "{msg}"
    );
    assert_eq!(
        proxmox_power_requests(&lab.twin),
        before,
        "a VM was touched"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ha_managed_victim_is_refused_and_no_vm_is_touched() {
    let lab = Lab::with_faults(&[Fault::VictimHaManaged]).await;
    let before = proxmox_power_requests(&lab.twin);
    let (code, r, text) = lab.chaos(&["--yes"]);
    assert_eq!(code, 1, "{text}");
    let msg = outcome(&r)["message"].as_str().unwrap().to_string();
    assert!(msg.contains("managed by Proxmox HA"), "{msg}");
    assert_eq!(
        proxmox_power_requests(&lab.twin),
        before,
        "a VM was touched"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_never_recovers_fails_and_says_the_vm_runs() {
    let lab = Lab::with_faults(&[Fault::NodeNeverRecovers]).await;
    let (code, r, text) = lab.chaos(&["--yes"]);
    assert_eq!(code, 1, "{text}");
    let msg = outcome(&r)["message"].as_str().unwrap().to_string();
    assert!(
        msg.contains("not recovered") && msg.contains("is running") && msg.contains("is not Ready"),
        "{msg}"
    );
    lab.assert_all_vms_running("node-never-recovers").await;
    assert!(!lab.journal().exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_start_is_retried_and_said() {
    let lab = Lab::with_faults(&[Fault::VmStartFailsOnce]).await;
    let (code, r, text) = lab.chaos(&["--yes"]);
    let o = outcome(&r);
    assert_eq!(code, 0, "{o:#}\n{text}");
    let evidence = o["evidence"].to_string();
    assert!(evidence.contains("retrying"), "{evidence}");
    lab.assert_all_vms_running("vm-start-fails-once").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn time_to_detect_follows_the_node_grace_period() {
    let mut detect = Vec::new();
    for factor in [1.0, 2.0] {
        let timing = twin::Timing::default();
        let lab = Lab::start(twin::TwinOptions {
            timing: twin::Timing {
                node_monitor_grace: timing.node_monitor_grace * factor,
                ..timing
            },
            ..Default::default()
        })
        .await;
        // The mean of a few runs smooths the heartbeat phase at the moment of the stop.
        let mut sum = 0.0;
        for seed in 0..3 {
            let (code, r, text) = lab.chaos(&["--yes", "--seed", &seed.to_string()]);
            assert_eq!(code, 0, "{text}");
            sum += metric(&r, "time_to_detect_seconds").unwrap();
        }
        detect.push(sum / 3.0);
    }
    let ratio = detect[1] / detect[0];
    println!(
        "time to detect: {:.3} s at the default grace, {:.3} s doubled: ratio {ratio:.2}",
        detect[0], detect[1]
    );
    assert!(
        (1.5..=2.5).contains(&ratio),
        "ratio {ratio:.2} ({detect:?})"
    );
}

/// A real run's `report.html`, opened in headless Chromium (Debian's `chromium`; `.ci/run`
/// installs it, `CLUSTERPROOF_SKIP_CHROMIUM=1` skips): the browser's DOM has the chaos row and
/// its timeline — the VM, node, Omni and pods lanes with the spans this run drew, and the
/// metrics beside it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_report_of_a_real_run_shows_its_timeline_in_chromium() {
    if std::env::var_os("CLUSTERPROOF_SKIP_CHROMIUM").is_some_and(|v| v == "1") {
        eprintln!("SKIPPED: CLUSTERPROOF_SKIP_CHROMIUM=1");
        return;
    }
    let lab = Lab::start(Default::default()).await;
    let (mut child, out) = lab.spawn_chaos(&["--yes", "--mode", "stop"]);
    let o = tokio::task::block_in_place(|| {
        child.wait().unwrap();
        child.wait_with_output().unwrap()
    });
    assert!(out.join("report.html").is_file(), "{}", output_text(&o));
    let profile = lab.twin.dir().join("chromium-profile");
    let dom = tokio::task::block_in_place(|| {
        Command::new("timeout")
            .arg("120")
            .arg("chromium")
            .args(["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"])
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg("--dump-dom")
            .arg(format!("file://{}", out.join("report.html").display()))
            .output()
            .unwrap_or_else(|e| {
                panic!("headless Chromium is needed (`apt-get install -y chromium`, or CLUSTERPROOF_SKIP_CHROMIUM=1): {e}")
            })
    });
    assert!(
        dom.status.success(),
        "chromium: {}",
        String::from_utf8_lossy(&dom.stderr)
    );
    let dom = String::from_utf8_lossy(&dom.stdout).to_string();
    assert!(
        dom.contains(r#"data-scenario="chaos::node_failure""#),
        "no chaos row"
    );
    assert!(dom.contains("<svg"), "no timeline");
    // Probe lanes appear only with failed probes; these four always change in a stop.
    for lane in ["vm", "node", "omni", "pods"] {
        assert!(
            dom.contains(&format!(r#"data-lane="{lane}""#)),
            "no {lane} lane in the DOM"
        );
    }
    // The VM, the node and Omni each went down and came back: a closed span each.
    assert!(
        dom.matches(r#"class="span down"#).count() >= 3,
        "spans: {dom}"
    );
    for m in [
        "time_to_detect_seconds",
        "time_to_recover_seconds",
        "api_availability_percent",
    ] {
        assert!(dom.contains(m), "no {m} beside the timeline");
    }
}

/// One control plane: stopping it loses etcd quorum — refused, no VM touched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_control_plane_whose_loss_costs_quorum_is_refused() {
    let lab = Lab::start(twin::TwinOptions {
        size: twin::TwinSize::parse("1+2").unwrap(),
        ..Default::default()
    })
    .await;
    let before = proxmox_power_requests(&lab.twin);
    let (code, r, text) = lab.chaos(&["--yes", "--target", "control-plane"]);
    assert_eq!(code, 1, "{text}");
    let msg = outcome(&r)["message"].as_str().unwrap().to_string();
    assert!(msg.contains("would lose etcd quorum"), "{msg}");
    assert_eq!(
        proxmox_power_requests(&lab.twin),
        before,
        "a VM was touched"
    );
    // A worker of the same cluster may go.
    let (code, r, text) = lab.chaos(&["--yes", "--target", "worker"]);
    assert_eq!(code, 0, "{}\n{text}", outcome(&r));
}
