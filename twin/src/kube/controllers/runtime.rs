//! The container runtime behind each kubelet: containerd's containers of a pod and the
//! kubelet's restart policy, rendered into the pod's `containerStatuses`.
//!
//! Every container starts as soon as the pod's sandbox exists (the node's CNI is up, or the
//! pod uses the host network) and runs until it exits. A container that exits is seen by
//! the kubelet at its next PLEG relist (1 s, `pkg/kubelet/kubelet.go` `plegRelistPeriod`) and
//! shows `terminated` until then; the kubelet then restarts it (`restartPolicy: Always`)
//! under its per-container back-off (`pkg/kubelet/kubelet.go`: `backOffPeriod` 10 s,
//! `MaxContainerBackOff` 300 s; `k8s.io/client-go/util/flowcontrol/backoff.go`, no
//! jitter): the first exit restarts at once and arms a 10 s window; an exit inside the window
//! waits in `CrashLoopBackOff` ("back-off 10s restarting failed container=NAME
//! pod=POD_NS(UID)", `kuberuntime_manager.go` `doBackOff`) until the window ends, then
//! restarts and doubles the window (20 s, 40 s, … 5m0s). A container that ran for more than
//! twice the maximum (10 min) before exiting starts over at 10 s. `restartCount` counts
//! restarts and `lastState.terminated` keeps the previous run.
//!
//! After a reboot of the node (its kubelet comes back in a new boot) the old containers are
//! gone: each restarts with `lastState.terminated` `exitCode: 255, reason: Unknown`, as
//! containerd reports containers it lost, and the pod gets a new sandbox.
//!
//! All durations are multiplied by the twin's `time_scale`.

use std::collections::BTreeMap;
use std::time::Instant;

use serde_json::{Value, json};

use super::{Clock, Wake, name_of, ns_of, uid_of};

/// The kubelet's initial container back-off, seconds.
pub(crate) const BACKOFF_INITIAL_SECS: f64 = 10.0;
/// `MaxContainerBackOff`, seconds.
pub(crate) const BACKOFF_MAX_SECS: f64 = 300.0;
/// How soon the kubelet notices a container exit (its PLEG relist period), seconds.
const PLEG_RELIST_SECS: f64 = 1.0;
/// How long a crash-looping container runs before it exits, seconds. CoreDNS's `loop`
/// plugin, the failure `crashloop-pod` plays, exits about this long after start.
pub(crate) const CRASH_RUN_SECS: f64 = 2.0;
/// How a crash-looping container exits.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Crash {
    pub exit_code: i64,
    pub run_secs: f64,
}

/// What containerd holds for one pod.
#[derive(Clone, Debug, Default)]
pub(crate) struct PodRuntime {
    /// The node boot the containers run in.
    pub boot: u64,
    /// When the sandbox was created (the pod's containers may start).
    pub sandbox_at: Option<Instant>,
    pub containers: BTreeMap<String, Ctr>,
}

/// One container of a pod, across its restarts.
#[derive(Clone, Debug)]
pub(crate) struct Ctr {
    pub restarts: u32,
    pub state: State,
    /// `lastState.terminated` of the previous run.
    pub last: Option<Value>,
    /// The kubelet's back-off entry: the window and when it was last moved.
    pub backoff: Option<(f64, Instant)>,
    /// Counts the containers created for this one (each gets a new container id).
    pub seq: u32,
}

#[derive(Clone, Debug)]
pub(crate) enum State {
    Running {
        since: Instant,
    },
    /// Exited; the kubelet has not synced the pod since.
    Exited {
        at: Instant,
        term: Value,
    },
    /// Exited inside the back-off window: restarts at `until`.
    BackOff {
        at: Instant,
        until: Instant,
        term: Value,
    },
}

impl Ctr {
    fn new(now: Instant) -> Ctr {
        Ctr {
            restarts: 0,
            state: State::Running { since: now },
            last: None,
            backoff: None,
            seq: 1,
        }
    }

    pub fn running(&self) -> bool {
        matches!(self.state, State::Running { .. })
    }

    /// Restart after an exit at `exit_at`, at `now`: flowcontrol's `Next` moves the window.
    fn restart(&mut self, exit_at: Instant, now: Instant, term: Value, clock: Clock) {
        let secs = match self.backoff {
            Some((secs, last))
                if exit_at.saturating_duration_since(last) <= clock.dur(2.0 * BACKOFF_MAX_SECS) =>
            {
                (secs * 2.0).min(BACKOFF_MAX_SECS)
            }
            _ => BACKOFF_INITIAL_SECS,
        };
        self.backoff = Some((secs, now));
        self.last = Some(term);
        self.restarts += 1;
        self.seq += 1;
        self.state = State::Running { since: now };
    }

    /// Advance this container to `clock.now`, taking every transition that is due.
    fn advance(
        &mut self,
        crash: Option<&Crash>,
        clock: Clock,
        wake: &mut Wake,
        started_at: &dyn Fn(Instant) -> String,
    ) {
        loop {
            match self.state.clone() {
                State::Running { since } => {
                    let Some(c) = crash else { return };
                    let exit_at = since + clock.dur(c.run_secs);
                    if clock.now < exit_at {
                        wake.at(exit_at);
                        return;
                    }
                    let term = json!({"exitCode": c.exit_code, "reason": "Error",
                        "startedAt": started_at(since), "finishedAt": started_at(exit_at)});
                    self.state = State::Exited { at: exit_at, term };
                }
                State::Exited { at, term } => {
                    let sync = at + clock.dur(PLEG_RELIST_SECS);
                    if clock.now < sync {
                        wake.at(sync);
                        return;
                    }
                    // doBackOff: inside the window (and the entry not expired) → wait.
                    match self.backoff {
                        Some((secs, last))
                            if at.saturating_duration_since(last)
                                <= clock.dur(2.0 * BACKOFF_MAX_SECS)
                                && sync.saturating_duration_since(at) < clock.dur(secs) =>
                        {
                            self.state = State::BackOff {
                                at,
                                until: at + clock.dur(secs),
                                term,
                            };
                        }
                        _ => self.restart(at, sync, term, clock),
                    }
                }
                State::BackOff { at, until, term } => {
                    if clock.now < until {
                        wake.at(until);
                        return;
                    }
                    self.restart(at, until, term, clock);
                }
            }
        }
    }
}

impl PodRuntime {
    /// Start, run, crash and restart the pod's containers up to `clock.now`. `sandbox`: the
    /// pod's network can be set up now. `boot`: the node's current boot. Returns whether the
    /// pod got a new sandbox (a new pod IP).
    #[allow(clippy::too_many_arguments)]
    pub fn advance(
        &mut self,
        pod: &Value,
        sandbox: bool,
        boot: u64,
        died_at: Option<&str>,
        crash: Option<&Crash>,
        clock: Clock,
        wake: &mut Wake,
    ) -> bool {
        let mut new_sandbox = false;
        if self.boot != boot && self.sandbox_at.is_some() {
            // The node rebooted: containerd lost every container of the old boot.
            let finished = died_at
                .map(str::to_string)
                .unwrap_or_else(|| clock.time_at(clock.now));
            for c in self.containers.values_mut() {
                let started = match &c.state {
                    State::Running { since } => clock.time_at(*since),
                    State::Exited { term, .. } | State::BackOff { term, .. } => {
                        term["startedAt"].as_str().unwrap_or_default().to_string()
                    }
                };
                c.last = Some(json!({"exitCode": 255, "reason": "Unknown",
                    "startedAt": started, "finishedAt": finished}));
                c.restarts += 1;
                c.seq += 1;
                // The kubelet's back-off lives in its memory: a new kubelet starts afresh.
                c.backoff = None;
                c.state = State::Running { since: clock.now };
            }
            self.sandbox_at = None;
        }
        self.boot = boot;
        if self.sandbox_at.is_none() {
            if !sandbox {
                return false;
            }
            self.sandbox_at = Some(clock.now);
            new_sandbox = true;
        }
        let started_at = |t: Instant| clock.time_at(t);
        for c in containers(pod) {
            let name = c["name"].as_str().unwrap_or_default().to_string();
            let ctr = self
                .containers
                .entry(name)
                .or_insert_with(|| Ctr::new(clock.now));
            ctr.advance(crash, clock, wake, &started_at);
        }
        new_sandbox
    }

    /// A digest of everything [`PodRuntime::statuses`] renders from the runtime's side
    /// (boot, sandbox, each container's run, restarts and back-off): equal digests and an
    /// unchanged pod render the same status.
    pub fn digest(&self) -> u64 {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        (self.boot, self.sandbox_at).hash(&mut h);
        for (name, c) in &self.containers {
            (
                name,
                c.restarts,
                c.seq,
                c.backoff.map(|(s, t)| (s.to_bits(), t)),
            )
                .hash(&mut h);
            match &c.state {
                State::Running { since } => (0u8, since).hash(&mut h),
                State::Exited { at, .. } => (1u8, at).hash(&mut h),
                State::BackOff { at, until, .. } => (2u8, at, until).hash(&mut h),
            }
            c.last.as_ref().map(Value::to_string).hash(&mut h);
        }
        h.finish()
    }

    pub fn started(&self) -> bool {
        self.sandbox_at.is_some()
    }

    /// Whether the container named `name` runs (it can accept connections).
    pub fn running(&self, name: &str) -> bool {
        self.containers.get(name).is_some_and(Ctr::running)
    }

    /// `containerStatuses` (and `initContainerStatuses`), as the kubelet reports them.
    pub fn statuses(&self, pod: &Value, clock: Clock) -> (Vec<Value>, Vec<Value>) {
        let init_containers: Vec<&Value> = pod["spec"]["initContainers"]
            .as_array()
            .into_iter()
            .flatten()
            .collect();
        let initializing = !self.started() && !init_containers.is_empty();
        let init: Vec<Value> = init_containers
            .iter()
            .map(|c| {
                let name = c["name"].as_str().unwrap_or_default();
                match self.sandbox_at {
                    // Init containers run to completion as the sandbox comes up.
                    Some(at) => {
                        let id = container_id(pod, name, 1);
                        let t = clock.time_at(at);
                        json!({"name": name, "image": normalized_image(&c["image"]),
                            "imageID": image_id(&c["image"]), "containerID": id,
                            "ready": true, "started": false, "restartCount": 0,
                            "state": {"terminated": {"exitCode": 0, "reason": "Completed",
                                "startedAt": t, "finishedAt": t, "containerID": id}},
                            "lastState": {}})
                    }
                    None => waiting_status(c, "PodInitializing"),
                }
            })
            .collect();
        let main = containers(pod)
            .map(|c| {
                let name = c["name"].as_str().unwrap_or_default();
                let Some(ctr) = self.containers.get(name) else {
                    return waiting_status(
                        c,
                        if initializing {
                            "PodInitializing"
                        } else {
                            "ContainerCreating"
                        },
                    );
                };
                let id = container_id(pod, name, ctr.seq);
                let state = match &ctr.state {
                    State::Running { since } => {
                        json!({"running": {"startedAt": clock.time_at(*since)}})
                    }
                    State::Exited { term, .. } => {
                        let mut t = term.clone();
                        t["containerID"] = json!(id);
                        json!({"terminated": t})
                    }
                    State::BackOff { .. } => {
                        let secs = ctr.backoff.map_or(BACKOFF_INITIAL_SECS, |(s, _)| s);
                        json!({"waiting": {"reason": "CrashLoopBackOff", "message": format!(
                            "back-off {} restarting failed container={name} pod={}_{}({})",
                            go_duration(secs), name_of(pod), ns_of(pod), uid_of(pod))}})
                    }
                };
                // In back-off the last state is the run that just exited (this container id);
                // otherwise the run before the current one.
                let last = match (&ctr.state, &ctr.last) {
                    (State::BackOff { term, .. }, _) => {
                        let mut t = term.clone();
                        t["containerID"] = json!(id);
                        json!({"terminated": t})
                    }
                    (_, Some(t)) => {
                        let mut t = t.clone();
                        t["containerID"] = json!(container_id(pod, name, ctr.seq - 1));
                        json!({"terminated": t})
                    }
                    (_, None) => json!({}),
                };
                let running = ctr.running();
                json!({"name": name, "image": normalized_image(&c["image"]),
                    "imageID": image_id(&c["image"]), "containerID": id,
                    "ready": running, "started": running, "restartCount": ctr.restarts,
                    "state": state, "lastState": last})
            })
            .collect();
        (main, init)
    }
}

fn containers(pod: &Value) -> impl Iterator<Item = &Value> {
    pod["spec"]["containers"].as_array().into_iter().flatten()
}

fn waiting_status(c: &Value, reason: &str) -> Value {
    json!({"name": c["name"].clone(), "image": normalized_image(&c["image"]), "imageID": "",
        "ready": false, "started": false, "restartCount": 0,
        "state": {"waiting": {"reason": reason}}, "lastState": {}})
}

/// A container id as containerd makes them: 64 hex digits, new for every container.
fn container_id(pod: &Value, name: &str, seq: u32) -> String {
    format!(
        "containerd://{}",
        hex_digest(&format!("{}/{name}/{seq}", uid_of(pod)))
    )
}

fn hex_digest(s: &str) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(s.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The image reference as containerd reports it: fully qualified (`docker.io/library/…`).
fn normalized_image(image: &Value) -> String {
    let image = image.as_str().unwrap_or_default();
    let first = image.split('/').next().unwrap_or_default();
    let has_registry =
        image.contains('/') && (first.contains('.') || first.contains(':') || first == "localhost");
    let mut out = if has_registry {
        image.to_string()
    } else if image.contains('/') {
        format!("docker.io/{image}")
    } else {
        format!("docker.io/library/{image}")
    };
    let last = out.rsplit('/').next().unwrap_or_default();
    if !last.contains(':') && !last.contains('@') {
        out.push_str(":latest");
    }
    out
}

/// `imageID`: the repository with the image's digest.
fn image_id(image: &Value) -> String {
    let full = normalized_image(image);
    let repo = match full.split_once('@') {
        Some((r, _)) => r.to_string(),
        None => {
            let (head, last) = full.rsplit_once('/').unwrap_or(("", &full));
            let name = last.split(':').next().unwrap_or(last);
            format!("{head}/{name}")
        }
    };
    format!("{repo}@sha256:{}", hex_digest(&full))
}

/// A duration as Go's `time.Duration.String` prints whole seconds: `10s`, `1m20s`, `5m0s`.
pub(crate) fn go_duration(secs: f64) -> String {
    let s = secs.round() as u64;
    match (s / 3600, s % 3600 / 60, s % 60) {
        (0, 0, sec) => format!("{sec}s"),
        (0, m, sec) => format!("{m}m{sec}s"),
        (h, m, sec) => format!("{h}h{m}m{sec}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn pod() -> Value {
        json!({"metadata": {"name": "coredns-x", "namespace": "kube-system", "uid": "u-1"},
            "spec": {"containers": [{"name": "coredns", "image": "registry.k8s.io/coredns/coredns:v1.12.1"}]}})
    }

    /// Step a stepped clock through a crash loop: the exits, what the status shows between
    /// them, and when the kubelet restarts.
    #[test]
    fn crash_loop_backs_off_10s_doubling_to_5m() {
        let t0 = Instant::now();
        let at = |secs: f64| Clock {
            now: t0 + Duration::from_secs_f64(secs),
            scale: 1.0,
            t: Default::default(),
        };
        let crash = Crash {
            exit_code: 1,
            run_secs: CRASH_RUN_SECS,
        };
        let p = pod();
        let mut rt = PodRuntime::default();
        let mut observe = |secs: f64| {
            let mut wake = Wake::default();
            rt.advance(&p, true, 1, None, Some(&crash), at(secs), &mut wake);
            let (s, _) = rt.statuses(&p, at(secs));
            (
                s[0].clone(),
                wake.0.map(|w| w.duration_since(t0).as_secs_f64()),
            )
        };
        let (s, next) = observe(0.0);
        assert_eq!(
            (
                s["restartCount"].as_i64(),
                s["state"]["running"].is_object()
            ),
            (Some(0), true)
        );
        assert_eq!(next, Some(2.0), "wakes when the container exits");
        // Exited at 2 s, seen by the kubelet 1 s later.
        let (s, _) = observe(2.5);
        assert_eq!(s["state"]["terminated"]["exitCode"], 1);
        assert_eq!(s["state"]["terminated"]["reason"], "Error");
        // First exit: restarted at once when synced (3 s), window 10 s.
        let (s, _) = observe(3.0);
        assert_eq!(
            (
                s["restartCount"].as_i64(),
                s["state"]["running"].is_object()
            ),
            (Some(1), true)
        );
        assert_eq!(s["lastState"]["terminated"]["exitCode"], 1);
        // Second exit at 5 s → back-off 10s until 15 s.
        let (s, next) = observe(6.0);
        assert_eq!(s["state"]["waiting"]["reason"], "CrashLoopBackOff");
        let msg = s["state"]["waiting"]["message"].as_str().unwrap();
        assert!(
            msg.starts_with(
                "back-off 10s restarting failed container=coredns pod=coredns-x_kube-system(u-1)"
            ),
            "{msg}"
        );
        assert_eq!(next, Some(15.0));
        assert!(!s["ready"].as_bool().unwrap());
        let (s, _) = observe(15.0);
        assert_eq!(
            (
                s["restartCount"].as_i64(),
                s["state"]["running"].is_object()
            ),
            (Some(2), true)
        );
        // The windows that follow: each exit 2 s after the restart, then wait the window.
        let mut restart_at = 15.0;
        let mut windows = Vec::new();
        for _ in 0..7 {
            let exit = restart_at + CRASH_RUN_SECS;
            let (s, next) = observe(exit + PLEG_RELIST_SECS);
            let msg = s["state"]["waiting"]["message"]
                .as_str()
                .unwrap()
                .to_string();
            windows.push(msg.split_whitespace().nth(1).unwrap().to_string());
            restart_at = next.unwrap();
            let (s, _) = observe(restart_at);
            assert!(s["state"]["running"].is_object());
        }
        assert_eq!(
            windows,
            ["20s", "40s", "1m20s", "2m40s", "5m0s", "5m0s", "5m0s"]
        );
        let (s, _) = observe(restart_at);
        assert_eq!(s["restartCount"], 9);
    }

    #[test]
    fn a_reboot_restarts_every_container_with_unknown_255() {
        let t0 = Instant::now();
        let clock = Clock {
            now: t0,
            scale: 1.0,
            t: Default::default(),
        };
        let p = pod();
        let mut rt = PodRuntime::default();
        let mut wake = Wake::default();
        assert!(rt.advance(&p, true, 1, None, None, clock, &mut wake));
        assert!(!rt.advance(&p, true, 1, None, None, clock, &mut wake));
        // New boot, but no network yet: not started.
        assert!(!rt.advance(
            &p,
            false,
            2,
            Some("2025-01-01T00:00:00Z"),
            None,
            clock,
            &mut wake
        ));
        assert!(!rt.running("coredns") || !rt.started());
        assert!(rt.advance(
            &p,
            true,
            2,
            Some("2025-01-01T00:00:00Z"),
            None,
            clock,
            &mut wake
        ));
        let (s, _) = rt.statuses(&p, clock);
        assert_eq!(s[0]["restartCount"], 1);
        assert_eq!(s[0]["lastState"]["terminated"]["exitCode"], 255);
        assert_eq!(s[0]["lastState"]["terminated"]["reason"], "Unknown");
        assert_eq!(
            s[0]["lastState"]["terminated"]["finishedAt"],
            "2025-01-01T00:00:00Z"
        );
    }

    #[test]
    fn images_are_reported_fully_qualified() {
        assert_eq!(
            normalized_image(&json!("nginx:1.27")),
            "docker.io/library/nginx:1.27"
        );
        assert_eq!(
            normalized_image(&json!("coredns/coredns")),
            "docker.io/coredns/coredns:latest"
        );
        assert_eq!(
            normalized_image(&json!("registry.k8s.io/e2e-test-images/agnhost:2.53")),
            "registry.k8s.io/e2e-test-images/agnhost:2.53"
        );
        let id = image_id(&json!("registry.k8s.io/coredns/coredns:v1.12.1"));
        assert!(
            id.starts_with("registry.k8s.io/coredns/coredns@sha256:"),
            "{id}"
        );
        assert_eq!(go_duration(80.0), "1m20s");
        assert_eq!(go_duration(300.0), "5m0s");
    }
}
