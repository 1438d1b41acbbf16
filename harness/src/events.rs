//! The event timeline. Every observation and action is an [`Event`] with a monotonic and a
//! wall timestamp. Subscribers (the `events.jsonl` writer, the progress printer, the run
//! recorder that feeds the reports) only consume events; they never drive the run.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::scenario::{Outcome, Phase};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Event {
    /// 0, 1, 2, ... in emission order.
    pub seq: u64,
    /// Seconds since the run started (monotonic clock).
    pub t: f64,
    /// Wall-clock time, RFC 3339 UTC.
    pub wall: String,
    #[serde(flatten)]
    pub kind: EventKind,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ScenarioInfo {
    pub id: String,
    pub phase: Phase,
    pub proves: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum EventKind {
    RunStarted {
        run_id: String,
        command: String,
        lab: String,
        inputs: Vec<String>,
        scenarios: Vec<ScenarioInfo>,
    },
    /// A fact about the run every report must carry (e.g. TLS verification disabled).
    Notice {
        message: String,
    },
    PhaseStarted {
        phase: Phase,
    },
    ScenarioStarted {
        id: String,
        phase: Phase,
    },
    Observation {
        scenario: String,
        message: String,
        #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
        data: serde_json::Value,
    },
    /// A change of state that reports draw on the scenario's timeline (a VM stopped, a node
    /// NotReady, a probe failed). `reports/README.md` says how each lane is drawn.
    Mark {
        scenario: String,
        lane: Lane,
        state: MarkState,
        label: String,
    },
    ScenarioFinished {
        id: String,
        phase: Phase,
        proves: String,
        outcome: Outcome,
    },
    RunInterrupted {
        reason: String,
    },
    RunFinished {
        exit_code: i32,
    },
}

/// The row of a timeline a [`EventKind::Mark`] belongs to: what changed state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Lane {
    /// The Proxmox VM (stopped, started).
    Vm,
    /// The Kubernetes node (NotReady, Ready).
    Node,
    /// The Omni machine (disconnected, connected).
    Omni,
    /// The workload's pods (evicted, replaced).
    Pods,
    /// The Cilium agent on the node.
    Cilium,
    /// Requests to the Kubernetes API server: every `down` mark is one failed probe.
    ApiProbe,
    /// Requests to the canary workload: every `down` mark is one failed probe.
    CanaryProbe,
}

impl Lane {
    pub const ALL: [Lane; 7] = [
        Lane::Vm,
        Lane::Node,
        Lane::Omni,
        Lane::Pods,
        Lane::Cilium,
        Lane::ApiProbe,
        Lane::CanaryProbe,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Lane::Vm => "vm",
            Lane::Node => "node",
            Lane::Omni => "omni",
            Lane::Pods => "pods",
            Lane::Cilium => "cilium",
            Lane::ApiProbe => "api_probe",
            Lane::CanaryProbe => "canary_probe",
        }
    }

    /// Probe lanes draw each failure as a tick; the others draw spans from `down` (or
    /// `degraded`) to the next `up`.
    pub fn is_probe(self) -> bool {
        matches!(self, Lane::ApiProbe | Lane::CanaryProbe)
    }
}

/// The state a [`EventKind::Mark`] reports for its lane.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MarkState {
    Down,
    Degraded,
    Up,
    /// A moment worth showing that changes no state (e.g. "victim chosen").
    Info,
}

impl MarkState {
    pub fn as_str(self) -> &'static str {
        match self {
            MarkState::Down => "down",
            MarkState::Degraded => "degraded",
            MarkState::Up => "up",
            MarkState::Info => "info",
        }
    }
}

/// Something that consumes events.
pub trait Subscriber: Send {
    fn on_event(&mut self, event: &Event);
}

struct Inner {
    seq: u64,
    subscribers: Vec<Box<dyn Subscriber>>,
}

/// Fans events out to subscribers, in order, stamping each with seq and time.
#[derive(Clone)]
pub struct EventBus {
    start: Instant,
    inner: Arc<Mutex<Inner>>,
}

impl Default for EventBus {
    fn default() -> Self {
        Self::new()
    }
}

impl EventBus {
    pub fn new() -> Self {
        EventBus {
            start: Instant::now(),
            inner: Arc::new(Mutex::new(Inner {
                seq: 0,
                subscribers: Vec::new(),
            })),
        }
    }

    pub fn subscribe(&self, s: impl Subscriber + 'static) {
        self.lock().subscribers.push(Box::new(s));
    }

    pub fn emit(&self, kind: EventKind) {
        let mut inner = self.lock();
        let event = Event {
            seq: inner.seq,
            t: self.start.elapsed().as_secs_f64(),
            wall: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            kind,
        };
        inner.seq += 1;
        for s in inner.subscribers.iter_mut() {
            s.on_event(&event);
        }
    }

    pub fn emitter(&self, scenario: &str) -> Emitter {
        Emitter {
            bus: self.clone(),
            scenario: scenario.to_string(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A subscriber that panicked must not take the timeline down with it.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A scenario's handle on the timeline.
#[derive(Clone)]
pub struct Emitter {
    bus: EventBus,
    scenario: String,
}

impl Emitter {
    pub fn observe(&self, message: impl Into<String>) {
        self.observe_with(message, serde_json::Value::Null);
    }

    pub fn observe_with(&self, message: impl Into<String>, data: serde_json::Value) {
        self.bus.emit(EventKind::Observation {
            scenario: self.scenario.clone(),
            message: message.into(),
            data,
        });
    }

    /// Put a state change on this scenario's timeline, e.g.
    /// `mark(Lane::Node, MarkState::Down, "node w1 NotReady")`.
    pub fn mark(&self, lane: Lane, state: MarkState, label: impl Into<String>) {
        self.bus.emit(EventKind::Mark {
            scenario: self.scenario.clone(),
            lane,
            state,
            label: label.into(),
        });
    }
}

/// Writes `events.jsonl`: one JSON object per line, flushed as it happens, so a killed run
/// still leaves its timeline.
pub struct JsonlWriter<W: Write + Send> {
    out: W,
    failed: bool,
}

impl<W: Write + Send> JsonlWriter<W> {
    pub fn new(out: W) -> Self {
        JsonlWriter { out, failed: false }
    }
}

impl<W: Write + Send> Subscriber for JsonlWriter<W> {
    fn on_event(&mut self, event: &Event) {
        if self.failed {
            return;
        }
        let line = serde_json::to_string(event)
            .unwrap_or_else(|e| format!("{{\"event\":\"unserializable\",\"error\":\"{e}\"}}"));
        if writeln!(self.out, "{line}")
            .and_then(|_| self.out.flush())
            .is_err()
        {
            self.failed = true;
            tracing::warn!("could not write events.jsonl; the timeline is incomplete");
        }
    }
}

/// Forwards events to a closure (tests, ad-hoc subscribers).
pub struct FnSubscriber<F: FnMut(&Event) + Send>(pub F);

impl<F: FnMut(&Event) + Send> Subscriber for FnSubscriber<F> {
    fn on_event(&mut self, event: &Event) {
        (self.0)(event)
    }
}
