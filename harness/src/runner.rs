//! Runs scenarios: phases in order, the scenarios of one phase concurrently, each in its own
//! task with a timeout, panics turned into `error` outcomes. A phase with a failure or error
//! stops the phases after it (their scenarios are recorded as skipped), unless
//! [`RunOptions::keep_going`]. An interrupt (Ctrl-C)
//! ends the run early, recording what did not finish, so reports are always complete.

use std::future::Future;

use futures::FutureExt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::events::{Event, EventBus, EventKind, ScenarioInfo, Subscriber};
use crate::scenario::{Context, Lab, Outcome, Phase, Scenario, Verdict};

#[derive(Debug, Clone)]
pub struct RunOptions {
    /// The command line the run was started with (for reports).
    pub command: String,
    pub run_id: String,
    pub scenario_timeout: Duration,
    /// Go on to later phases after a failed one (`--keep-going`): every verdict, for the
    /// fault matrix and for a person diagnosing a broken cluster.
    pub keep_going: bool,
}

/// One scenario's result.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ScenarioRecord {
    pub id: String,
    pub phase: Phase,
    pub proves: String,
    pub outcome: Outcome,
}

/// Everything a report needs, built only from events. `result.json` is this record, and
/// reads back into it (`clusterproof report DIR` re-renders the other reports from it).
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct RunRecord {
    pub run_id: String,
    pub command: String,
    pub lab: String,
    pub inputs: Vec<String>,
    pub started: String,
    pub finished: String,
    pub duration_secs: f64,
    pub interrupted: Option<String>,
    /// Facts every report shows (e.g. TLS verification disabled).
    pub notices: Vec<String>,
    pub scenarios: Vec<ScenarioRecord>,
    pub exit_code: i32,
    /// The events reports draw, in order: phase and scenario starts, observations, marks
    /// and an interruption (finished scenarios are in `scenarios`).
    pub timeline: Vec<Event>,
}

impl RunRecord {
    pub fn count(&self, v: Verdict) -> usize {
        self.scenarios
            .iter()
            .filter(|s| s.outcome.verdict == v)
            .count()
    }

    pub fn worst(&self) -> Option<Verdict> {
        self.scenarios.iter().map(|s| s.outcome.verdict).max()
    }

    /// The record these events describe: what the [`Recorder`] builds while they happen
    /// (so a run killed before writing `result.json` can be reported from `events.jsonl`).
    pub fn from_events<'a>(events: impl IntoIterator<Item = &'a Event>) -> RunRecord {
        let mut rec = Recorder::default();
        for e in events {
            rec.on_event(e);
        }
        rec.record()
    }

    /// The timeline events of one scenario (observations and marks).
    pub fn timeline_of<'a>(&'a self, scenario: &'a str) -> impl Iterator<Item = &'a Event> + 'a {
        self.timeline.iter().filter(move |e| match &e.kind {
            EventKind::Observation { scenario: s, .. } | EventKind::Mark { scenario: s, .. } => {
                s == scenario
            }
            _ => false,
        })
    }

    /// When the scenario started, in seconds since the run started (None: it never ran).
    pub fn started_at(&self, scenario: &str) -> Option<f64> {
        self.timeline.iter().find_map(|e| match &e.kind {
            EventKind::ScenarioStarted { id, .. } if id == scenario => Some(e.t),
            _ => None,
        })
    }
}

/// The subscriber that turns events into a [`RunRecord`].
#[derive(Clone, Default)]
pub struct Recorder(Arc<Mutex<RunRecord>>);

impl Recorder {
    pub fn record(&self) -> RunRecord {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

impl Subscriber for Recorder {
    fn on_event(&mut self, e: &Event) {
        let mut r = self.0.lock().unwrap_or_else(|p| p.into_inner());
        r.finished = e.wall.clone();
        r.duration_secs = e.t;
        match &e.kind {
            EventKind::RunStarted {
                run_id,
                command,
                lab,
                inputs,
                ..
            } => {
                r.run_id = run_id.clone();
                r.command = command.clone();
                r.lab = lab.clone();
                r.inputs = inputs.clone();
                r.started = e.wall.clone();
            }
            EventKind::ScenarioFinished {
                id,
                phase,
                proves,
                outcome,
            } => r.scenarios.push(ScenarioRecord {
                id: id.clone(),
                phase: *phase,
                proves: proves.clone(),
                outcome: outcome.clone(),
            }),
            EventKind::RunInterrupted { reason } => {
                r.interrupted = Some(reason.clone());
                r.timeline.push(e.clone());
            }
            EventKind::Notice { message } => r.notices.push(message.clone()),
            EventKind::RunFinished { exit_code } => r.exit_code = *exit_code,
            EventKind::PhaseStarted { .. }
            | EventKind::ScenarioStarted { .. }
            | EventKind::Observation { .. }
            | EventKind::Mark { .. } => r.timeline.push(e.clone()),
        }
    }
}

/// Process exit codes (DESIGN §6).
pub mod exit {
    pub const OK: i32 = 0;
    pub const FAILED: i32 = 1;
    pub const BAD_INPUT: i32 = 2;
    pub const NOT_EVALUATED: i32 = 3;
    pub const WARNINGS_STRICT: i32 = 4;
}

/// 0 all pass, 1 a check failed, 3 the harness could not evaluate (errors, an interrupted
/// run, or nothing evaluated), 4 warnings only with `strict`.
pub fn exit_code(record: &RunRecord, strict: bool) -> i32 {
    let evaluated = record
        .scenarios
        .iter()
        .any(|s| s.outcome.verdict != Verdict::Skip);
    if record.count(Verdict::Fail) > 0 {
        exit::FAILED
    } else if record.count(Verdict::Error) > 0 || record.interrupted.is_some() || !evaluated {
        exit::NOT_EVALUATED
    } else if strict && record.count(Verdict::Warn) > 0 {
        exit::WARNINGS_STRICT
    } else {
        exit::OK
    }
}

/// Run `scenarios` against `lab`. `interrupt` resolving ends the run early.
pub async fn run(
    lab: Arc<Lab>,
    scenarios: Vec<Arc<dyn Scenario>>,
    bus: &EventBus,
    opts: &RunOptions,
    interrupt: impl Future<Output = String>,
) -> Vec<ScenarioRecord> {
    bus.emit(EventKind::RunStarted {
        run_id: opts.run_id.clone(),
        command: opts.command.clone(),
        lab: lab.spec.lab.name.clone(),
        inputs: lab
            .spec
            .input_files()
            .iter()
            .map(|p| p.display().to_string())
            .collect(),
        scenarios: scenarios
            .iter()
            .map(|s| ScenarioInfo {
                id: s.id().into(),
                phase: s.phase(),
                proves: s.proves().into(),
            })
            .collect(),
    });
    for message in &lab.notices {
        bus.emit(EventKind::Notice {
            message: message.clone(),
        });
    }
    let mut results = Vec::new();
    let mut stop_reason: Option<String> = None;
    // A chaos experiment left unfinished (its journal in the state directory): nothing that
    // could touch the lab runs until `chaos recover` has finished it.
    if scenarios.iter().any(|s| s.phase() != Phase::Preflight) {
        let state = &lab.spec.lab.state_dir;
        let refusal = match crate::chaos::journal::Journal::load(state) {
            Ok(None) => None,
            Ok(Some(j)) => Some(crate::chaos::journal::refusal(
                &j,
                state,
                &lab.spec.lab.path,
            )),
            Err(e) => Some(e.to_string()),
        };
        if let Some(why) = refusal {
            bus.emit(EventKind::Notice {
                message: format!("refusing to run: {why}"),
            });
            for s in &scenarios {
                results.push(finish(bus, &**s, Outcome::error(format!("refused: {why}")).remediation(
                    "run `clusterproof chaos recover --lab <lab file>`, which restores the VM the journal names, then run again",
                )));
            }
            return results;
        }
    }
    let mut interrupted = false;
    let cancel = crate::scenario::Cancel::default();
    tokio::pin!(interrupt);
    for phase in Phase::ALL {
        let in_phase: Vec<_> = scenarios
            .iter()
            .filter(|s| s.phase() == phase)
            .cloned()
            .collect();
        if in_phase.is_empty() {
            continue;
        }
        if let Some(reason) = &stop_reason {
            for s in in_phase {
                results.push(finish(
                    bus,
                    &*s,
                    Outcome::skip(format!("not run: {reason}")),
                ));
            }
            continue;
        }
        bus.emit(EventKind::PhaseStarted { phase });
        // Waves: a scenario starts once every scenario it comes `after` has finished; if one of
        // those did not pass, it is skipped. Scenarios of one wave run concurrently.
        let mut waiting: Vec<Arc<dyn Scenario>> = in_phase;
        let mut passed: Vec<&'static str> = Vec::new();
        let mut finished: Vec<&'static str> = Vec::new();
        let mut phase_failed = false;
        while !waiting.is_empty() {
            // A prerequisite that is not part of this run does not hold anything back.
            let (ready, rest): (Vec<_>, Vec<_>) = waiting.into_iter().partition(|s| {
                s.meta().after_ids().all(|d| {
                    finished.contains(&d)
                        || !scenarios.iter().any(|x| x.id() == d && x.phase() == phase)
                })
            });
            waiting = rest;
            if ready.is_empty() {
                // A cycle or a dependency on itself: run the rest rather than hang.
                let stuck = std::mem::take(&mut waiting);
                for s in stuck {
                    results.push(finish(
                        bus,
                        &*s,
                        Outcome::error(format!(
                            "its prerequisites {:?} never finish (a cycle)",
                            s.meta().after_ids().collect::<Vec<_>>()
                        )),
                    ));
                }
                break;
            }
            let mut pending = Vec::new();
            for s in ready {
                if let Some(dep) = s
                    .meta()
                    .after_ids()
                    .find(|d| finished.contains(d) && !passed.contains(d))
                {
                    finished.push(s.id());
                    results.push(finish(
                        bus,
                        &*s,
                        Outcome::skip(format!("not run: {dep} did not pass")),
                    ));
                    continue;
                }
                if let Some(reason) = &stop_reason {
                    finished.push(s.id());
                    results.push(finish(
                        bus,
                        &*s,
                        Outcome::skip(format!("not run: {reason}")),
                    ));
                    continue;
                }
                if let Some(missing) = s.needs().iter().find(|n| !lab.has(**n)) {
                    let msg =
                        format!("needs {missing:?}, which this run does not connect to (offline)");
                    finished.push(s.id());
                    results.push(finish(bus, &*s, Outcome::skip(msg)));
                    continue;
                }
                bus.emit(EventKind::ScenarioStarted {
                    id: s.id().into(),
                    phase,
                });
                let cx = Context {
                    lab: Arc::clone(&lab),
                    events: bus.emitter(s.id()),
                    cancel: cancel.clone(),
                };
                let timeout = s
                    .timeout(&lab)
                    .map_or(opts.scenario_timeout, |t| t.max(opts.scenario_timeout));
                let task_s = Arc::clone(&s);
                let task_cx = cx.clone();
                let handle = tokio::spawn(async move {
                    let start = Instant::now();
                    let out = match tokio::time::timeout(timeout, task_s.run(&task_cx)).await {
                        Ok(o) => o,
                        Err(_) => Outcome::error(format!(
                            "did not finish within {}",
                            humantime::format_duration(timeout)
                        )),
                    };
                    (out, start.elapsed())
                });
                pending.push((s, handle, Instant::now(), cx));
            }
            for (s, mut handle, started, cx) in pending {
                let mut joined = if interrupted {
                    None
                } else {
                    tokio::select! {
                        r = &mut handle => Some(r),
                        reason = &mut interrupt => {
                            bus.emit(EventKind::RunInterrupted { reason: reason.clone() });
                            stop_reason = Some(format!("run interrupted ({reason})"));
                            interrupted = true;
                            cancel.cancel(&reason);
                            None
                        }
                    }
                };
                if joined.is_none() {
                    // Interrupted: the scenario may end with what it observed, briefly; then it
                    // gets no more time (its restore stage still runs, below).
                    match tokio::time::timeout(CANCEL_GRACE, &mut handle).await {
                        Ok(r) => joined = Some(r),
                        Err(_) => handle.abort(),
                    }
                }
                let outcome = match joined {
                    Some(Ok((mut o, took))) => {
                        o.duration = took;
                        if let Some(reason) = cancel.reason()
                            && o.verdict != Verdict::Error
                        {
                            o.evidence.push(format!(
                                "verdict before the interrupt: {}: {}",
                                o.verdict, o.message
                            ));
                            o.verdict = Verdict::Error;
                            o.message = format!("run interrupted ({reason})");
                        }
                        o
                    }
                    Some(Err(e)) if e.is_panic() => {
                        let mut o = Outcome::error(format!(
                            "scenario panicked: {}",
                            panic_text(e.into_panic())
                        ));
                        o.duration = started.elapsed();
                        o
                    }
                    Some(Err(_)) | None => {
                        let mut o = Outcome::error(
                            stop_reason.clone().unwrap_or_else(|| "cancelled".into()),
                        );
                        o.duration = started.elapsed();
                        o
                    }
                };
                let outcome = restore_stage(&*s, &cx, outcome).await;
                phase_failed |= matches!(outcome.verdict, Verdict::Fail | Verdict::Error);
                finished.push(s.id());
                if matches!(outcome.verdict, Verdict::Pass | Verdict::Warn) {
                    passed.push(s.id());
                }
                results.push(finish(bus, &*s, outcome));
            }
        }
        if phase_failed && stop_reason.is_none() && !opts.keep_going {
            stop_reason = Some(format!("the {phase} phase did not pass"));
        }
    }
    results
}

/// How long an interrupted scenario may take to end by itself before it is aborted.
const CANCEL_GRACE: Duration = Duration::from_secs(5);

/// Run the scenario's restore stage, if it has one, in a task of its own (a panic in it is an
/// error, not a lost restore) with its own deadline, and fold what it did into `outcome`.
async fn restore_stage(s: &dyn Scenario, cx: &Context, mut outcome: Outcome) -> Outcome {
    let Some((deadline, fut)) = s.restore(cx) else {
        return outcome;
    };
    // The stage borrows the scenario and the context, so it runs here, to completion or its
    // deadline; a panic in it is caught and reported rather than unwinding the runner.
    let started = Instant::now();
    let result =
        tokio::time::timeout(deadline, std::panic::AssertUnwindSafe(fut).catch_unwind()).await;
    let took = started.elapsed();
    match result {
        Ok(Ok(Ok(lines))) => {
            outcome.evidence.extend(lines);
        }
        Ok(Ok(Err(why))) => {
            restore_failed(&mut outcome, &why);
        }
        Ok(Err(p)) => restore_failed(
            &mut outcome,
            &format!("the restore stage panicked: {}", panic_text(p)),
        ),
        Err(_) => restore_failed(
            &mut outcome,
            &format!(
                "the restore stage did not finish within {}",
                humantime::format_duration(deadline)
            ),
        ),
    }
    outcome.duration += took;
    outcome
}

fn restore_failed(outcome: &mut Outcome, why: &str) {
    outcome.evidence.push(format!(
        "verdict before the restore stage: {}: {}",
        outcome.verdict, outcome.message
    ));
    outcome.verdict = Verdict::Error;
    outcome.message = format!("the lab may still be changed: {why}");
    outcome.remediation = Some(
        "run `clusterproof chaos recover --lab <lab file>`: it finishes what the journal in the state directory says is left to undo".into(),
    );
}

fn finish(bus: &EventBus, s: &dyn Scenario, outcome: Outcome) -> ScenarioRecord {
    let rec = ScenarioRecord {
        id: s.id().into(),
        phase: s.phase(),
        proves: s.proves().into(),
        outcome,
    };
    bus.emit(EventKind::ScenarioFinished {
        id: rec.id.clone(),
        phase: rec.phase,
        proves: rec.proves.clone(),
        outcome: rec.outcome.clone(),
    });
    rec
}

fn panic_text(p: Box<dyn std::any::Any + Send>) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}
