//! `clusterproof bench`: time to a verdict, API footprint and detection latency of the
//! harness against sized twins, side by side with the polling loop it replaces
//! (`kubectl get nodes -o json` every 10 s). The method is in `docs/bench.md`.
//!
//! For each size the bench starts a twin in-process and provisions it with `clusterproof
//! provision` as a child process; then it runs `preflight` and `verify` as child processes
//! (this very binary, through [`bench_child`]), reading each child's wall time, peak RSS
//! (`wait4`) and the requests it sent (the twin's accounting, clients only). Detection latency: the bench causes node and
//! pod Ready transitions on the twin and compares the twin's own timestamps
//! ([`twin::kube::KubeTwin::transitions`]) with when a kube-runtime watcher — the harness's
//! watch machinery, as the chaos observer uses it — recorded each one, and with when the real
//! `kubectl` run every `--poll-interval` first showed it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::Api;
use kube::runtime::{WatchStreamExt, watcher};
use serde::Serialize;
use serde_json::json;
use twin::kube::TransitionKind;

/// `clusterproof bench` arguments.
#[derive(clap::Args, Debug, Clone)]
pub struct BenchArgs {
    /// Twin sizes to measure, in nodes (3 control planes, the rest workers).
    #[arg(
        long,
        value_name = "N,N,…",
        value_delimiter = ',',
        default_value = "5,50,500"
    )]
    pub nodes: Vec<u32>,
    /// Print one JSON object (every measurement and the `targets` list) instead of the table.
    #[arg(long)]
    pub json: bool,
    /// The reference poller's interval (the user's bash loop polls every 10 s).
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = harness::model::lab::parse_duration)]
    pub poll_interval: Duration,
    /// Node NotReady transitions (and as many pod Ready transitions) measured for the harness
    /// at each size.
    #[arg(long, value_name = "N", default_value_t = 50)]
    pub transitions: u32,
    /// Node NotReady transitions the poller comparison spreads over three poll intervals.
    #[arg(long, value_name = "N", default_value_t = 10)]
    pub poll_transitions: u32,
    /// The `kubectl` the poller runs.
    #[arg(long, value_name = "PATH", default_value = "kubectl")]
    pub kubectl: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("bench: --nodes needs at least one size of 1 node or more")]
    NoSizes,
    #[error("bench: cannot find the clusterproof binary: {0}")]
    Exe(std::io::Error),
    #[error("bench: starting the {size}-node twin: {source}")]
    Twin {
        size: u32,
        #[source]
        source: twin::TwinError,
    },
    #[error("bench: {what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "bench: `clusterproof {command}` of the {size}-node twin exited {code}; its output ends:\n{log}"
    )]
    Child {
        command: String,
        size: u32,
        code: i32,
        log: String,
    },
    #[error("bench: {0}")]
    Kube(#[from] harness::kube::KubeError),
    #[error("bench: {0}")]
    Measure(String),
}

/// One child process: its wall time, exit code, peak RSS and what it sent.
#[derive(Debug, Clone, Serialize)]
pub struct Step {
    pub exit_code: i32,
    pub wall_ms: f64,
    /// Peak resident set of the process (`ru_maxrss` from `wait4`).
    pub peak_rss_mb: f64,
    pub kube_requests: u64,
    pub proxmox_requests: u64,
}

/// Latencies of one kind of transition, in milliseconds.
#[derive(Debug, Clone, Serialize, Default)]
pub struct Latencies {
    /// Transitions the twin made.
    pub transitions: usize,
    /// Of those, recorded by the observer.
    pub detected: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub mean_ms: f64,
    pub max_ms: f64,
}

/// Milliseconds to one decimal, `-` when there is no value.
fn ms1(v: f64) -> String {
    if v.is_finite() {
        format!("{v:.1} ms")
    } else {
        "-".into()
    }
}

impl Latencies {
    /// `p50 / p99 (detected/transitions)`, a table cell.
    fn cell(&self) -> String {
        format!(
            "{} / {} ({}/{})",
            ms1(self.p50_ms),
            ms1(self.p99_ms),
            self.detected,
            self.transitions
        )
    }

    fn of(transitions: usize, mut ms: Vec<f64>) -> Latencies {
        ms.sort_by(|a, b| a.total_cmp(b));
        let pick = |q: f64| {
            if ms.is_empty() {
                f64::NAN
            } else {
                // Nearest rank.
                let rank = ((q * ms.len() as f64).ceil() as usize).clamp(1, ms.len());
                ms[rank - 1]
            }
        };
        Latencies {
            transitions,
            detected: ms.len(),
            p50_ms: pick(0.50),
            p99_ms: pick(0.99),
            mean_ms: if ms.is_empty() {
                f64::NAN
            } else {
                ms.iter().sum::<f64>() / ms.len() as f64
            },
            max_ms: ms.last().copied().unwrap_or(f64::NAN),
        }
    }
}

/// The reference poller: `kubectl get nodes -o json` every `interval_ms`.
#[derive(Debug, Clone, Serialize)]
pub struct Poller {
    pub interval_ms: f64,
    /// kubectl processes run.
    pub polls: u64,
    /// Mean wall time of one kubectl process.
    pub process_ms: f64,
    /// Kubernetes requests the polls sent (everything but watches in the window).
    pub requests: u64,
    /// Node NotReady transitions, as the poller saw them.
    pub node_not_ready: Latencies,
    /// The harness's watch on the same transitions, in the same window.
    pub harness_node_not_ready: Latencies,
    /// Kubernetes requests of the harness's watch in the same window.
    pub harness_requests: u64,
}

/// Everything measured at one size.
#[derive(Debug, Clone, Serialize)]
pub struct SizeResult {
    pub nodes: u32,
    pub hosts: usize,
    pub provision_wall_ms: f64,
    pub preflight: Step,
    pub verify: Step,
    /// Node NotReady transitions (CNI broken on a node) recorded by the harness's watch.
    pub node_not_ready: Latencies,
    /// Pod Ready transitions (a Deployment's new pods) recorded by the harness's watch.
    pub pod_ready: Latencies,
    pub poller: Poller,
}

/// A target and whether it holds.
#[derive(Debug, Clone, Serialize)]
pub struct Target {
    pub name: String,
    pub value: f64,
    pub limit: f64,
    pub unit: String,
    pub met: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    pub sizes: Vec<SizeResult>,
    pub targets: Vec<Target>,
}

/// `clusterproof bench`: run, print the table (or the JSON object); exit 0 when every
/// target holds, 1 when one does not, 3 when the bench could not measure.
pub fn main(a: BenchArgs) -> i32 {
    let rt = match crate::runtime() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return harness::runner::exit::NOT_EVALUATED;
        }
    };
    let json = a.json;
    match rt.block_on(run(&a)) {
        Ok(report) => {
            if json {
                match serde_json::to_string_pretty(&report) {
                    Ok(j) => println!("{j}"),
                    Err(e) => {
                        eprintln!("error: the bench report does not serialize: {e}");
                        return harness::runner::exit::NOT_EVALUATED;
                    }
                }
            } else {
                print!("{}", table(&report));
            }
            if report.targets.iter().all(|t| t.met) {
                harness::runner::exit::OK
            } else {
                1
            }
        }
        Err(e) => {
            eprintln!("error: {e}");
            harness::runner::exit::NOT_EVALUATED
        }
    }
}

/// Measure every size and work out the targets.
pub async fn run(a: &BenchArgs) -> Result<BenchReport, BenchError> {
    let mut sizes: Vec<u32> = a.nodes.iter().copied().filter(|n| *n > 0).collect();
    sizes.sort_unstable();
    sizes.dedup();
    if sizes.is_empty() {
        return Err(BenchError::NoSizes);
    }
    let exe = std::env::current_exe().map_err(BenchError::Exe)?;
    let mut results = Vec::new();
    for n in sizes {
        eprintln!("bench: {n} nodes …");
        let r = measure_size(a, &exe, n).await?;
        eprintln!(
            "bench: {n} nodes: preflight {:.0} ms, verify {:.0} ms, node NotReady p99 {:.1} ms",
            r.preflight.wall_ms, r.verify.wall_ms, r.node_not_ready.p99_ms
        );
        results.push(r);
    }
    let targets = targets(&results);
    Ok(BenchReport {
        sizes: results,
        targets,
    })
}

fn targets(sizes: &[SizeResult]) -> Vec<Target> {
    let (Some(small), Some(large)) = (sizes.first(), sizes.last()) else {
        return Vec::new();
    };
    let at = |what: &str| format!("{what} at {} nodes", large.nodes);
    let le = |name: String, value: f64, limit: f64, unit: &str| Target {
        met: value.is_finite() && value <= limit,
        name,
        value: round(value),
        limit,
        unit: unit.into(),
    };
    let (s, l) = (
        small.verify.kube_requests as f64,
        large.verify.kube_requests as f64,
    );
    let growth = if s > 0.0 {
        (l - s).abs() / s * 100.0
    } else {
        f64::NAN
    };
    let rss = large.preflight.peak_rss_mb.max(large.verify.peak_rss_mb);
    let ratio = large.poller.node_not_ready.mean_ms / large.node_not_ready.p99_ms;
    vec![
        le(
            at("preflight wall time"),
            large.preflight.wall_ms,
            1000.0,
            "ms",
        ),
        le(at("verify wall time"), large.verify.wall_ms, 2000.0, "ms"),
        le(
            format!(
                "verify Kubernetes requests at {} nodes vs {} nodes",
                large.nodes, small.nodes
            ),
            growth,
            10.0,
            "%",
        ),
        le(at("harness peak RSS"), rss, 150.0, "MB"),
        le(
            at("node NotReady detection latency p99"),
            large.node_not_ready.p99_ms,
            250.0,
            "ms",
        ),
        le(
            at("pod Ready detection latency p99"),
            large.pod_ready.p99_ms,
            250.0,
            "ms",
        ),
        Target {
            name: at("poller mean / harness p99 node NotReady latency"),
            met: ratio.is_finite() && ratio >= 20.0,
            value: round(ratio),
            limit: 20.0,
            unit: "x".into(),
        },
    ]
}

fn round(v: f64) -> f64 {
    (v * 10.0).round() / 10.0
}

async fn measure_size(a: &BenchArgs, exe: &Path, n: u32) -> Result<SizeResult, BenchError> {
    let size = twin::TwinSize::parse(&n.to_string()).map_err(BenchError::Measure)?;
    let t = twin::Twin::start(twin::TwinOptions {
        exe: Some(exe.to_path_buf()),
        size,
        ..Default::default()
    })
    .await
    .map_err(|source| BenchError::Twin { size: n, source })?;
    let r = measure_twin(a, exe, n, &t).await;
    t.shutdown().await;
    r
}

async fn measure_twin(
    a: &BenchArgs,
    exe: &Path,
    n: u32,
    t: &twin::Twin,
) -> Result<SizeResult, BenchError> {
    let lab = t.lab_path().to_path_buf();
    // Preflight runs before the deploy, as in the plan (after it, the cluster's own VMs
    // would count against the RAM budget); verify on the provisioned cluster.
    let preflight = child(exe, t, n, "preflight", &[], &lab, &[0, 1, 4]).await?;
    let provision = child(exe, t, n, "provision", &["--yes"], &lab, &[0, 4]).await?;
    let verify = child(exe, t, n, "verify", &[], &lab, &[0, 1, 4]).await?;
    let kubeconfig = t.dir().join("bench-kubeconfig");
    std::fs::write(
        &kubeconfig,
        t.kube.kubeconfig_yaml("clusterproof-bench", "clusterproof"),
    )
    .map_err(|source| BenchError::Io {
        what: "write the bench kubeconfig".into(),
        source,
    })?;
    let client = harness::kube::KubeClient::from_kubeconfig(&kubeconfig).await?;
    let watch = Watch::start(&client).await?;
    let node_not_ready = node_cycles(t, &watch, a.transitions).await?;
    let pod_ready = pod_rollout(t, &watch, a.transitions).await?;
    let poller = poller(a, t, &watch, &kubeconfig).await?;
    Ok(SizeResult {
        nodes: n,
        hosts: t.proxmox.host_count(),
        provision_wall_ms: provision.wall_ms,
        preflight,
        verify,
        node_not_ready,
        pod_ready,
        poller,
    })
}

/// Run `clusterproof <command> --lab <lab> <extra…>` as a child and measure it; fail the
/// bench when its exit code is not one of `accept` (the error carries the log's end: the
/// twin's directory goes with the twin).
async fn child(
    exe: &Path,
    t: &twin::Twin,
    n: u32,
    command: &str,
    extra: &[&str],
    lab: &Path,
    accept: &[i32],
) -> Result<Step, BenchError> {
    let out = t.dir().join(format!("bench-{command}"));
    let log = t.dir().join(format!("bench-{command}.log"));
    let file = std::fs::File::create(&log).map_err(|source| BenchError::Io {
        what: format!("create {}", log.display()),
        source,
    })?;
    let err = file.try_clone().map_err(|source| BenchError::Io {
        what: format!("open {}", log.display()),
        source,
    })?;
    // Through `clusterproof bench-child`, a small process of its own: a child spawned
    // straight from this process would carry the bench's (and the twin's) peak RSS in its
    // `ru_maxrss` — Linux records the old address space's high-water mark at `execve`, and
    // a spawned child's old address space is this one's.
    let report = t.dir().join(format!("bench-{command}.measure.json"));
    // Only this run's measurement may be read back.
    let _ = std::fs::remove_file(&report);
    let mut cmd = std::process::Command::new(exe);
    cmd.arg("bench-child")
        .arg("--report")
        .arg(&report)
        .arg("--")
        .arg(exe)
        .arg(command)
        .args(extra)
        .arg("--lab")
        .arg(lab)
        .arg("--out")
        .arg(&out)
        .stdin(std::process::Stdio::null())
        .stdout(file)
        .stderr(err);
    let kube_before = t.kube.request_counts();
    let pve_before = t.proxmox.request_counts();
    let mut launcher = tokio::process::Command::from(cmd)
        .spawn()
        .map_err(|source| BenchError::Io {
            what: format!("start `clusterproof {command}`"),
            source,
        })?;
    let status = launcher.wait().await.map_err(|source| BenchError::Io {
        what: format!("wait for `clusterproof {command}`"),
        source,
    })?;
    let kube = t.kube.request_counts().since(&kube_before);
    let pve = t.proxmox.request_counts().since(&pve_before);
    let measured: Measured = std::fs::read_to_string(&report)
        .ok()
        .and_then(|j| serde_json::from_str(&j).ok())
        .ok_or_else(|| {
            BenchError::Measure(format!(
                "`clusterproof bench-child` for {command} exited {status} without its report {}",
                report.display()
            ))
        })?;
    let code = measured.exit_code;
    if !accept.contains(&code) {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        return Err(BenchError::Child {
            command: command.into(),
            size: n,
            code,
            log: lines[lines.len().saturating_sub(30)..].join("\n"),
        });
    }
    Ok(Step {
        exit_code: code,
        wall_ms: measured.wall_ms,
        peak_rss_mb: measured.max_rss_kib as f64 / 1024.0,
        kube_requests: kube.total,
        proxmox_requests: pve.total,
    })
}

/// What `clusterproof bench-child` measured of its command.
#[derive(Debug, Serialize, serde::Deserialize)]
struct Measured {
    exit_code: i32,
    /// From spawning the command to reaping it.
    wall_ms: f64,
    /// `ru_maxrss` of the command (`wait4`), KiB.
    max_rss_kib: i64,
}

/// `clusterproof bench-child --report FILE -- COMMAND…`: run COMMAND, wait for it with
/// `wait4`, and write its exit code, wall time and peak RSS as JSON to FILE; exit with its
/// exit code. The bench runs each measured child through it: this process is small when it
/// spawns COMMAND, so COMMAND's `ru_maxrss` is its own.
pub fn bench_child(report: &Path, command: &[String]) -> i32 {
    let Some((program, args)) = command.split_first() else {
        eprintln!("error: bench-child needs a command after --");
        return harness::runner::exit::NOT_EVALUATED;
    };
    let started = Instant::now();
    let child = match std::process::Command::new(program).args(args).spawn() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: bench-child: cannot start {program}: {e}");
            return harness::runner::exit::NOT_EVALUATED;
        }
    };
    let (exit_code, max_rss_kib) = match wait4(child.id()) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: bench-child: waiting for {program}: {e}");
            return harness::runner::exit::NOT_EVALUATED;
        }
    };
    let m = Measured {
        exit_code,
        wall_ms: started.elapsed().as_secs_f64() * 1000.0,
        max_rss_kib,
    };
    let written = serde_json::to_string(&m)
        .map_err(std::io::Error::other)
        .and_then(|j| std::fs::write(report, j));
    if let Err(e) = written {
        eprintln!("error: bench-child: writing {}: {e}", report.display());
        return harness::runner::exit::NOT_EVALUATED;
    }
    exit_code
}

/// Reap `pid`: its exit code (128 + signal when killed) and peak RSS in KiB.
fn wait4(pid: u32) -> std::io::Result<(i32, i64)> {
    let pid = libc::pid_t::try_from(pid).map_err(std::io::Error::other)?;
    let mut status: libc::c_int = 0;
    // SAFETY: an all-zero rusage is a valid value; wait4 only writes into the two pointers,
    // which live for the call.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: see above; pid is our own child, not yet reaped.
        let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
        if r == pid {
            break;
        }
        let e = std::io::Error::last_os_error();
        if e.kind() != std::io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
    let code = if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else if libc::WIFSIGNALED(status) {
        128 + libc::WTERMSIG(status)
    } else {
        -1
    };
    // Linux reports ru_maxrss in KiB.
    Ok((code, usage.ru_maxrss))
}

/// A node's Ready status or a pod's Ready, as the watch recorded it.
#[derive(Debug, Clone)]
struct Seen {
    at: DateTime<Utc>,
    name: String,
    ready: bool,
}

/// The harness's watches: every node, and the pods of the bench's namespace, recording each
/// change of Ready with the time it arrived.
struct Watch {
    nodes: Arc<Mutex<Vec<Seen>>>,
    pods: Arc<Mutex<Vec<Seen>>>,
    changed: Arc<tokio::sync::Notify>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Watch {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

const BENCH_NS: &str = "clusterproof-bench";
const BENCH_APP: &str = "bench-pods";

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Watch {
    async fn start(client: &harness::kube::KubeClient) -> Result<Watch, BenchError> {
        let nodes = Arc::new(Mutex::new(Vec::new()));
        let pods = Arc::new(Mutex::new(Vec::new()));
        let changed = Arc::new(tokio::sync::Notify::new());
        let (synced_tx, mut synced) = tokio::sync::mpsc::channel::<()>(2);
        let mut tasks = Vec::new();
        {
            let (log, changed, synced) =
                (Arc::clone(&nodes), Arc::clone(&changed), synced_tx.clone());
            let api: Api<Node> = Api::all(client.client());
            tasks.push(tokio::spawn(async move {
                let mut s = std::pin::pin!(
                    watcher::watcher(api, watcher::Config::default()).default_backoff()
                );
                let mut last: BTreeMap<String, bool> = BTreeMap::new();
                while let Some(ev) = s.next().await {
                    let n = match ev {
                        Ok(watcher::Event::Apply(n) | watcher::Event::InitApply(n)) => n,
                        Ok(watcher::Event::InitDone) => {
                            let _ = synced.try_send(());
                            continue;
                        }
                        _ => continue,
                    };
                    let at = Utc::now();
                    let name = n.metadata.name.clone().unwrap_or_default();
                    let ready = harness::kube::node_ready(&n) == Some("True");
                    if last.insert(name.clone(), ready) != Some(ready) {
                        lock(&log).push(Seen { at, name, ready });
                        changed.notify_waiters();
                    }
                }
            }));
        }
        {
            let (log, changed, synced) = (Arc::clone(&pods), Arc::clone(&changed), synced_tx);
            let api: Api<Pod> = Api::namespaced(client.client(), BENCH_NS);
            let cfg = watcher::Config::default().labels(&format!("app={BENCH_APP}"));
            tasks.push(tokio::spawn(async move {
                let mut s = std::pin::pin!(watcher::watcher(api, cfg).default_backoff());
                let mut last: BTreeMap<String, bool> = BTreeMap::new();
                while let Some(ev) = s.next().await {
                    let p = match ev {
                        Ok(watcher::Event::Apply(p) | watcher::Event::InitApply(p)) => p,
                        Ok(watcher::Event::InitDone) => {
                            let _ = synced.try_send(());
                            continue;
                        }
                        _ => continue,
                    };
                    let at = Utc::now();
                    let name =
                        format!("{BENCH_NS}/{}", p.metadata.name.clone().unwrap_or_default());
                    let ready = p
                        .status
                        .as_ref()
                        .and_then(|s| s.conditions.as_ref())
                        .is_some_and(|cs| {
                            cs.iter().any(|c| c.type_ == "Ready" && c.status == "True")
                        });
                    if last.insert(name.clone(), ready) != Some(ready) {
                        lock(&log).push(Seen { at, name, ready });
                        changed.notify_waiters();
                    }
                }
            }));
        }
        let w = Watch {
            nodes,
            pods,
            changed,
            tasks,
        };
        for _ in 0..2 {
            tokio::time::timeout(Duration::from_secs(30), synced.recv())
                .await
                .map_err(|_| BenchError::Measure("the watches did not sync within 30 s".into()))?;
        }
        Ok(w)
    }

    /// Wait (on the watches' notifications) until `cond` holds over what they recorded, up to
    /// `within`; whether it held.
    async fn wait(&self, within: Duration, cond: impl Fn(&[Seen], &[Seen]) -> bool) -> bool {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let notified = self.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if cond(&lock(&self.nodes), &lock(&self.pods)) {
                return true;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return false;
            }
        }
    }
}

/// The last Ready status recorded for `name`.
fn last_ready(seen: &[Seen], name: &str) -> Option<bool> {
    seen.iter().rev().find(|s| s.name == name).map(|s| s.ready)
}

/// How long one transition may take to show before the bench calls it missed.
const SEEN_WITHIN: Duration = Duration::from_secs(10);

/// Break and heal nodes' CNI `count` times (cycling over the nodes): NotReady, then Ready
/// again, each waited for on the watch; the NotReady latencies.
async fn node_cycles(t: &twin::Twin, w: &Watch, count: u32) -> Result<Latencies, BenchError> {
    let names = node_names(t);
    if names.is_empty() {
        return Err(BenchError::Measure("the twin has no nodes".into()));
    }
    let since = Utc::now();
    for i in 0..count as usize {
        let name = &names[i % names.len()];
        set_broken(t, name, true)?;
        w.wait(SEEN_WITHIN, |nodes, _| {
            last_ready(nodes, name) == Some(false)
        })
        .await;
        set_broken(t, name, false)?;
        w.wait(SEEN_WITHIN, |nodes, _| {
            last_ready(nodes, name) == Some(true)
        })
        .await;
    }
    Ok(match_latencies(
        &t.kube.transitions(),
        TransitionKind::Node,
        since,
        &lock(&w.nodes),
        false,
        "",
    ))
}

fn set_broken(t: &twin::Twin, name: &str, broken: bool) -> Result<(), BenchError> {
    t.kube
        .set_cni_broken(name, broken)
        .map_err(|e| BenchError::Measure(e.to_string()))
}

fn node_names(t: &twin::Twin) -> Vec<String> {
    let mut names: Vec<String> = t
        .kube
        .transitions()
        .into_iter()
        .filter(|x| x.kind == TransitionKind::Node)
        .map(|x| x.name)
        .collect();
    names.sort();
    names.dedup();
    names
}

/// Pair each twin transition (of `kind`, after `since`, to Ready `to_ready`) with the watch's
/// record of the same object reaching that state, in order per object.
fn match_latencies(
    transitions: &[twin::kube::Transition],
    kind: TransitionKind,
    since: DateTime<Utc>,
    seen: &[Seen],
    to_ready: bool,
    prefix: &str,
) -> Latencies {
    let mut by_name: BTreeMap<&str, Vec<&Seen>> = BTreeMap::new();
    for s in seen.iter().filter(|s| s.ready == to_ready) {
        by_name.entry(&s.name).or_default().push(s);
    }
    let mut used: BTreeMap<&str, usize> = BTreeMap::new();
    let mut ms = Vec::new();
    let mut total = 0;
    for x in transitions
        .iter()
        .filter(|x| x.kind == kind && x.at >= since - chrono::Duration::milliseconds(1))
        .filter(|x| (x.to == "True") == to_ready && x.name.starts_with(prefix))
    {
        total += 1;
        let list = by_name
            .get(x.name.as_str())
            .map(Vec::as_slice)
            .unwrap_or(&[]);
        let from = used.entry(x.name.as_str()).or_insert(0);
        // The watch's record may carry a time a hair before the twin's (the twin takes its
        // timestamp after the write it announces): allow 5 ms.
        let floor = x.at - chrono::Duration::milliseconds(5);
        if let Some(off) = list[*from..].iter().position(|s| s.at >= floor) {
            let s = list[*from + off];
            *from += off + 1;
            ms.push(((s.at - x.at).num_microseconds().unwrap_or(0) as f64 / 1000.0).max(0.0));
        }
    }
    Latencies::of(total, ms)
}

/// A Deployment of `count` pods in the bench's namespace: each pod's turning Ready.
async fn pod_rollout(t: &twin::Twin, w: &Watch, count: u32) -> Result<Latencies, BenchError> {
    let since = Utc::now();
    let put = |v: serde_json::Value| {
        t.kube
            .put_object(v)
            .map_err(|e| BenchError::Measure(format!("creating the bench pods: {e}")))
    };
    put(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": BENCH_NS}}))?;
    put(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": BENCH_APP, "namespace": BENCH_NS},
        "spec": {
            "replicas": count,
            "selector": {"matchLabels": {"app": BENCH_APP}},
            "template": {
                "metadata": {"labels": {"app": BENCH_APP}},
                "spec": {
                    "tolerations": [{"operator": "Exists"}],
                    "containers": [{"name": "pause", "image": "registry.k8s.io/pause:3.10"}]
                }
            }
        }
    }))?;
    let want = count as usize;
    w.wait(Duration::from_secs(60), |_, pods| {
        pods.iter().filter(|s| s.ready).count() >= want
    })
    .await;
    Ok(match_latencies(
        &t.kube.transitions(),
        TransitionKind::Pod,
        since,
        &lock(&w.pods),
        true,
        &format!("{BENCH_NS}/"),
    ))
}

/// The poller and the harness's watch side by side: `kubectl get nodes -o json` every
/// interval while nodes turn NotReady at times spread over three intervals (each stays
/// NotReady until both have seen it).
async fn poller(
    a: &BenchArgs,
    t: &twin::Twin,
    w: &Watch,
    kubeconfig: &Path,
) -> Result<Poller, BenchError> {
    let mut names = node_names(t);
    names.truncate(a.poll_transitions.max(1) as usize);
    let interval = a.poll_interval.max(Duration::from_millis(100));
    let cache = t.dir().join("bench-kubectl-cache");
    let polls: Arc<Mutex<Vec<Poll>>> = Arc::default();
    let failures = Arc::new(Mutex::new(Vec::<String>::new()));
    // One poll before the window fills kubectl's discovery cache, as in a loop that has run
    // for a while.
    kubectl_nodes(&a.kubectl, kubeconfig, &cache)
        .await
        .map_err(BenchError::Measure)?;
    let before = t.kube.request_counts();
    let since = Utc::now();
    let task = {
        let (polls, failures) = (Arc::clone(&polls), Arc::clone(&failures));
        let (kubectl, kubeconfig) = (a.kubectl.clone(), kubeconfig.to_path_buf());
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let started = Instant::now();
                match kubectl_nodes(&kubectl, &kubeconfig, &cache).await {
                    Ok(state) => lock(&polls).push((
                        Utc::now(),
                        started.elapsed().as_secs_f64() * 1000.0,
                        state,
                    )),
                    Err(e) => lock(&failures).push(e),
                }
            }
        })
    };
    // The breaks, spread over three intervals (the poller's phase is whatever it is).
    let span = interval * 3;
    let step = span / (names.len() as u32 + 1);
    let window_start = tokio::time::Instant::now();
    for (i, name) in names.iter().enumerate() {
        tokio::time::sleep_until(window_start + step * (i as u32 + 1)).await;
        set_broken(t, name, true)?;
    }
    // Until the poller and the watch have both seen every break (bounded).
    let seen_by_poller = |n: &str| {
        lock(&polls)
            .iter()
            .any(|(at, _, s)| *at >= since && s.get(n) == Some(&false))
    };
    let deadline = tokio::time::Instant::now() + interval * 2 + SEEN_WITHIN;
    while !names.iter().all(|n| seen_by_poller(n)) && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50).min(interval / 4)).await;
    }
    task.abort();
    let _ = task.await;
    let after = t.kube.request_counts();
    for name in &names {
        set_broken(t, name, false)?;
    }
    w.wait(SEEN_WITHIN, |nodes, _| {
        names.iter().all(|n| last_ready(nodes, n) == Some(true))
    })
    .await;
    if let Some(e) = lock(&failures).first() {
        return Err(BenchError::Measure(format!(
            "the poller's kubectl failed: {e}"
        )));
    }
    let window = after.since(&before);
    let transitions: Vec<_> = t
        .kube
        .transitions()
        .into_iter()
        .filter(|x| x.kind == TransitionKind::Node && x.at >= since && x.to != "True")
        .filter(|x| names.contains(&x.name))
        .collect();
    let polls = lock(&polls).clone();
    // The poller's record: the end of the first poll after the change that shows it.
    let mut seen = Vec::new();
    for (at, _, state) in &polls {
        for (name, ready) in state {
            seen.push(Seen {
                at: *at,
                name: name.clone(),
                ready: *ready,
            });
        }
    }
    seen.sort_by_key(|s| s.at);
    let poller_lat = match_latencies(
        &transitions,
        TransitionKind::Node,
        since,
        &dedup_first(&seen),
        false,
        "",
    );
    let harness_lat = match_latencies(
        &transitions,
        TransitionKind::Node,
        since,
        &lock(&w.nodes),
        false,
        "",
    );
    let watches = window.matching(|k| k.verb == "WATCH");
    Ok(Poller {
        interval_ms: interval.as_secs_f64() * 1000.0,
        polls: polls.len() as u64,
        process_ms: if polls.is_empty() {
            f64::NAN
        } else {
            polls.iter().map(|p| p.1).sum::<f64>() / polls.len() as f64
        },
        requests: window.total - watches,
        node_not_ready: poller_lat,
        harness_node_not_ready: harness_lat,
        harness_requests: watches,
    })
}

/// One kubectl run: when it ended, how long it took, each node's Ready.
type Poll = (DateTime<Utc>, f64, BTreeMap<String, bool>);

/// A table row: its heading and how to print a size's cell.
type Row = (&'static str, Box<dyn Fn(&SizeResult) -> String>);

/// Keep, per name, only the records where its state changed (the first poll that shows it).
fn dedup_first(seen: &[Seen]) -> Vec<Seen> {
    let mut last: BTreeMap<&str, bool> = BTreeMap::new();
    seen.iter()
        .filter(|s| last.insert(&s.name, s.ready) != Some(s.ready))
        .cloned()
        .collect()
}

/// One `kubectl get nodes -o json`: each node's Ready.
async fn kubectl_nodes(
    kubectl: &Path,
    kubeconfig: &Path,
    cache: &Path,
) -> Result<BTreeMap<String, bool>, String> {
    let out = tokio::process::Command::new(kubectl)
        .args(["get", "nodes", "-o", "json", "--cache-dir"])
        .arg(cache)
        .env("KUBECONFIG", kubeconfig)
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|e| format!("cannot run {}: {e}", kubectl.display()))?;
    if !out.status.success() {
        return Err(format!(
            "{} exited {}: {}",
            kubectl.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)
        .map_err(|e| format!("kubectl's output is not JSON: {e}"))?;
    Ok(v["items"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|n| {
            let ready = n["status"]["conditions"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|c| c["type"] == "Ready" && c["status"] == "True");
            (
                n["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                ready,
            )
        })
        .collect())
}

/// The human table: one column per size, then the targets.
pub fn table(r: &BenchReport) -> String {
    use std::fmt::Write;
    let mut o = String::new();
    let ms = |v: f64| {
        if v.is_finite() {
            format!("{v:.0} ms")
        } else {
            "-".into()
        }
    };
    let rows: Vec<Row> = vec![
        (
            "nodes (Proxmox hosts)",
            Box::new(|s| format!("{} ({})", s.nodes, s.hosts)),
        ),
        ("provision wall", Box::new(move |s| ms(s.provision_wall_ms))),
        (
            "preflight wall (exit)",
            Box::new(move |s| format!("{} ({})", ms(s.preflight.wall_ms), s.preflight.exit_code)),
        ),
        (
            "preflight requests k8s/pve",
            Box::new(|s| {
                format!(
                    "{}/{}",
                    s.preflight.kube_requests, s.preflight.proxmox_requests
                )
            }),
        ),
        (
            "preflight peak RSS",
            Box::new(|s| format!("{:.1} MB", s.preflight.peak_rss_mb)),
        ),
        (
            "verify wall (exit)",
            Box::new(move |s| format!("{} ({})", ms(s.verify.wall_ms), s.verify.exit_code)),
        ),
        (
            "verify requests k8s/pve",
            Box::new(|s| format!("{}/{}", s.verify.kube_requests, s.verify.proxmox_requests)),
        ),
        (
            "verify peak RSS",
            Box::new(|s| format!("{:.1} MB", s.verify.peak_rss_mb)),
        ),
        (
            "node NotReady p50/p99 (n)",
            Box::new(|s| s.node_not_ready.cell()),
        ),
        ("pod Ready p50/p99 (n)", Box::new(|s| s.pod_ready.cell())),
        (
            "poller: interval, kubectl runs",
            Box::new(move |s| {
                format!(
                    "{}, {} × {}",
                    ms(s.poller.interval_ms),
                    s.poller.polls,
                    ms(s.poller.process_ms)
                )
            }),
        ),
        (
            "poller NotReady mean/p99 (n)",
            Box::new(move |s| {
                format!(
                    "{} / {} ({}/{})",
                    ms(s.poller.node_not_ready.mean_ms),
                    ms(s.poller.node_not_ready.p99_ms),
                    s.poller.node_not_ready.detected,
                    s.poller.node_not_ready.transitions
                )
            }),
        ),
        (
            "harness same window mean/p99",
            Box::new(move |s| {
                format!(
                    "{} / {}",
                    ms1(s.poller.harness_node_not_ready.mean_ms),
                    ms1(s.poller.harness_node_not_ready.p99_ms)
                )
            }),
        ),
        (
            "requests in window poller/harness",
            Box::new(|s| format!("{}/{}", s.poller.requests, s.poller.harness_requests)),
        ),
        (
            "latency ratio poller/harness (mean)",
            Box::new(|s| {
                let r = s.poller.node_not_ready.mean_ms / s.poller.harness_node_not_ready.mean_ms;
                if r.is_finite() {
                    format!("{r:.0}x")
                } else {
                    "-".into()
                }
            }),
        ),
    ];
    let width = rows
        .iter()
        .map(|(h, _)| h.chars().count())
        .max()
        .unwrap_or(0);
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|(_, f)| r.sizes.iter().map(f).collect())
        .collect();
    let col = cells
        .iter()
        .flatten()
        .map(|c| c.chars().count())
        .max()
        .unwrap_or(0)
        .max(8);
    for ((h, _), row) in rows.iter().zip(&cells) {
        let _ = write!(o, "{h:<width$}");
        for c in row {
            let _ = write!(o, "  {c:>col$}");
        }
        o.push('\n');
    }
    o.push('\n');
    let tw = r
        .targets
        .iter()
        .map(|t| t.name.chars().count())
        .max()
        .unwrap_or(0);
    for t in &r.targets {
        let _ = writeln!(
            o,
            "{:<4} {:<tw$}  {} {} (limit {} {})",
            if t.met { "MET" } else { "NOT" },
            t.name,
            t.value,
            t.unit,
            t.limit,
            t.unit
        );
    }
    o
}
