//! The runner's guarantees: phases in order and gated, panics and timeouts become `error`
//! outcomes, an interrupt still yields a complete record, and exit codes follow DESIGN §6.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use harness::events::{EventBus, EventKind, FnSubscriber};
use harness::runner::{self, Recorder, RunOptions, exit};
use harness::scenario::{Context, Lab, Meta, Need, Outcome, Phase, Scenario, Verdict};
use harness::spec::{LabSpec, Overrides};

/// A scenario whose behaviour the test chooses.
struct Fake {
    meta: &'static Meta,
    act: Act,
}

/// A scenario's declaration, made at run time (real scenarios declare a `static`).
fn meta(
    id: &'static str,
    phase: Phase,
    needs: &'static [Need],
    after: &'static [&'static Meta],
) -> &'static Meta {
    Box::leak(Box::new(Meta {
        id,
        module: "test",
        phase,
        proves: "test",
        needs,
        after,
    }))
}

#[derive(Clone)]
enum Act {
    Return(Verdict),
    Panic,
    /// Wait until the test releases it (never, for the timeout and interrupt tests).
    Wait(Arc<tokio::sync::Notify>),
}

impl Scenario for Fake {
    fn meta(&self) -> &'static Meta {
        self.meta
    }
    fn run<'a>(&'a self, cx: &'a Context) -> BoxFuture<'a, Outcome> {
        Box::pin(async move {
            cx.events.observe(format!("{} running", self.id()));
            match &self.act {
                Act::Return(v) => Outcome::new(*v, "as told"),
                Act::Panic => panic!("boom in {}", self.id()),
                Act::Wait(n) => {
                    n.notified().await;
                    Outcome::pass("released")
                }
            }
        })
    }
}

fn fake(id: &'static str, phase: Phase, act: Act) -> Arc<dyn Scenario> {
    Arc::new(Fake {
        meta: meta(id, phase, &[Need::Spec], &[]),
        act,
    })
}

fn lab() -> Arc<Lab> {
    let seed = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/seed/lab.toml");
    Arc::new(Lab::offline(
        LabSpec::load(&seed, &Overrides::default()).unwrap(),
    ))
}

fn opts(timeout: Duration) -> RunOptions {
    RunOptions {
        command: "test".into(),
        run_id: "r".into(),
        scenario_timeout: timeout,
        keep_going: false,
    }
}

async fn go(
    s: Vec<Arc<dyn Scenario>>,
    timeout: Duration,
    interrupt: impl std::future::Future<Output = String>,
) -> (harness::runner::RunRecord, Vec<String>) {
    go_with(s, opts(timeout), interrupt).await
}

async fn go_with(
    s: Vec<Arc<dyn Scenario>>,
    opts: RunOptions,
    interrupt: impl std::future::Future<Output = String>,
) -> (harness::runner::RunRecord, Vec<String>) {
    let bus = EventBus::new();
    let rec = Recorder::default();
    bus.subscribe(rec.clone());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s2 = Arc::clone(&seen);
    bus.subscribe(FnSubscriber(move |e| {
        let tag = match &e.kind {
            EventKind::PhaseStarted { phase } => format!("phase {phase}"),
            EventKind::ScenarioFinished { id, outcome, .. } => format!("{id} {}", outcome.verdict),
            EventKind::RunInterrupted { .. } => "interrupted".into(),
            _ => return,
        };
        s2.lock().unwrap().push(tag);
    }));
    runner::run(lab(), s, &bus, &opts, interrupt).await;
    let events = seen.lock().unwrap().clone();
    (rec.record(), events)
}

#[tokio::test]
async fn a_failed_phase_skips_the_phases_after_it() {
    let (r, events) = go(
        vec![
            fake("verify::a", Phase::Verify, Act::Return(Verdict::Pass)),
            fake("preflight::a", Phase::Preflight, Act::Return(Verdict::Fail)),
            fake("preflight::b", Phase::Preflight, Act::Return(Verdict::Pass)),
        ],
        Duration::from_secs(5),
        std::future::pending(),
    )
    .await;
    assert_eq!(events[0], "phase preflight");
    assert!(!events.contains(&"phase verify".to_string()), "{events:?}");
    let v = r.scenarios.iter().find(|s| s.id == "verify::a").unwrap();
    assert_eq!(v.outcome.verdict, Verdict::Skip);
    assert!(
        v.outcome.message.contains("preflight phase did not pass"),
        "{}",
        v.outcome.message
    );
    assert_eq!(runner::exit_code(&r, false), exit::FAILED);
}

#[tokio::test]
async fn keep_going_runs_the_phases_after_a_failed_one() {
    let (r, events) = go_with(
        vec![
            fake("verify::a", Phase::Verify, Act::Return(Verdict::Pass)),
            fake("preflight::a", Phase::Preflight, Act::Return(Verdict::Fail)),
        ],
        RunOptions {
            keep_going: true,
            ..opts(Duration::from_secs(5))
        },
        std::future::pending(),
    )
    .await;
    assert!(events.contains(&"phase verify".to_string()), "{events:?}");
    let v = r.scenarios.iter().find(|s| s.id == "verify::a").unwrap();
    assert_eq!(v.outcome.verdict, Verdict::Pass);
    assert_eq!(runner::exit_code(&r, false), exit::FAILED);
}

#[tokio::test]
async fn a_panicking_scenario_is_an_error_and_the_others_still_report() {
    let (r, _) = go(
        vec![
            fake("preflight::p", Phase::Preflight, Act::Panic),
            fake(
                "preflight::ok",
                Phase::Preflight,
                Act::Return(Verdict::Pass),
            ),
        ],
        Duration::from_secs(5),
        std::future::pending(),
    )
    .await;
    let p = r.scenarios.iter().find(|s| s.id == "preflight::p").unwrap();
    assert_eq!(p.outcome.verdict, Verdict::Error);
    assert!(
        p.outcome.message.contains("boom in preflight::p"),
        "{}",
        p.outcome.message
    );
    assert_eq!(
        r.scenarios
            .iter()
            .find(|s| s.id == "preflight::ok")
            .unwrap()
            .outcome
            .verdict,
        Verdict::Pass
    );
    assert_eq!(runner::exit_code(&r, false), exit::NOT_EVALUATED);
}

#[tokio::test(start_paused = true)]
async fn a_scenario_over_its_timeout_is_an_error() {
    let never = Arc::new(tokio::sync::Notify::new());
    let (r, _) = go(
        vec![fake("preflight::slow", Phase::Preflight, Act::Wait(never))],
        Duration::from_secs(30),
        std::future::pending(),
    )
    .await;
    let s = &r.scenarios[0];
    assert_eq!(s.outcome.verdict, Verdict::Error);
    assert!(
        s.outcome.message.contains("did not finish within 30s"),
        "{}",
        s.outcome.message
    );
}

#[tokio::test]
async fn an_interrupt_ends_the_run_with_every_scenario_recorded() {
    let never = Arc::new(tokio::sync::Notify::new());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let interrupt = async move {
        rx.await.ok();
        "Ctrl-C".to_string()
    };
    let scenarios = vec![
        fake(
            "preflight::stuck",
            Phase::Preflight,
            Act::Wait(Arc::clone(&never)),
        ),
        fake("verify::later", Phase::Verify, Act::Return(Verdict::Pass)),
    ];
    let run = tokio::spawn(go(scenarios, Duration::from_secs(3600), interrupt));
    tx.send(()).unwrap();
    let (r, events) = run.await.unwrap();
    assert!(events.contains(&"interrupted".to_string()), "{events:?}");
    assert_eq!(r.interrupted.as_deref(), Some("Ctrl-C"));
    assert_eq!(r.scenarios.len(), 2, "every scenario has a record");
    assert_eq!(r.scenarios[0].outcome.verdict, Verdict::Error);
    assert_eq!(r.scenarios[1].outcome.verdict, Verdict::Skip);
    assert_eq!(runner::exit_code(&r, false), exit::NOT_EVALUATED);
}

#[tokio::test]
async fn scenarios_needing_a_driver_the_run_lacks_are_skipped() {
    let s: Arc<dyn Scenario> = Arc::new(Fake {
        meta: meta(
            "preflight::live",
            Phase::Preflight,
            &[Need::Spec, Need::Proxmox],
            &[],
        ),
        act: Act::Panic,
    });
    let (r, _) = go(
        vec![
            s,
            fake(
                "preflight::ok",
                Phase::Preflight,
                Act::Return(Verdict::Warn),
            ),
        ],
        Duration::from_secs(5),
        std::future::pending(),
    )
    .await;
    let live = &r
        .scenarios
        .iter()
        .find(|s| s.id == "preflight::live")
        .unwrap()
        .outcome;
    assert_eq!(live.verdict, Verdict::Skip);
    assert!(live.message.contains("Proxmox"), "{}", live.message);
    assert_eq!(runner::exit_code(&r, false), exit::OK);
    assert_eq!(runner::exit_code(&r, true), exit::WARNINGS_STRICT);
}

/// A scenario that records when it ran, and comes after others.
struct Step {
    meta: &'static Meta,
    verdict: Verdict,
    log: Arc<Mutex<Vec<&'static str>>>,
}

impl Scenario for Step {
    fn meta(&self) -> &'static Meta {
        self.meta
    }
    fn run<'a>(&'a self, _cx: &'a Context) -> BoxFuture<'a, Outcome> {
        Box::pin(async move {
            self.log.lock().unwrap().push(self.id());
            Outcome::new(self.verdict, "as told")
        })
    }
}

#[tokio::test]
async fn ordered_steps_run_after_their_prerequisites_and_are_skipped_when_one_fails() {
    let log = Arc::new(Mutex::new(Vec::new()));
    let step = |meta, verdict| -> Arc<dyn Scenario> {
        Arc::new(Step {
            meta,
            verdict,
            log: Arc::clone(&log),
        })
    };
    let decl = |id, after| meta(id, Phase::Provision, &[Need::Spec], after);
    let a = decl("provision::a", &[]);
    let b = decl("provision::b", Box::leak(Box::new([a])));
    let c = decl("provision::c", Box::leak(Box::new([b])));
    let absent = decl("provision::not_in_this_run", &[]);
    let other = decl("provision::other", Box::leak(Box::new([absent])));
    // Listed out of order on purpose.
    let (r, _) = go(
        vec![
            step(c, Verdict::Pass),
            step(b, Verdict::Fail),
            step(a, Verdict::Pass),
            step(other, Verdict::Pass),
        ],
        Duration::from_secs(5),
        std::future::pending(),
    )
    .await;
    let ran = log.lock().unwrap().clone();
    let pos = |id| ran.iter().position(|x| *x == id);
    assert!(pos("provision::a") < pos("provision::b"), "{ran:?}");
    assert_eq!(
        pos("provision::c"),
        None,
        "c comes after a failed step: {ran:?}"
    );
    assert!(
        pos("provision::other").is_some(),
        "a prerequisite outside the run holds nothing back"
    );
    let c = r.scenarios.iter().find(|s| s.id == "provision::c").unwrap();
    assert_eq!(c.outcome.verdict, Verdict::Skip);
    assert_eq!(c.outcome.message, "not run: provision::b did not pass");
}
