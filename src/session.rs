//! One run session — what `clusterproof preflight|provision|verify|chaos|run` and the nextest
//! lab suite (`tests/lab.rs`) both do: start the built-in twin or load a lab file, select the
//! scenarios (phases, `--only` with prerequisites), connect, run, write every report, and
//! work out the exit code.
//!
//! ```no_run
//! # async fn f() -> Result<(), clusterproof::session::SessionError> {
//! use clusterproof::session::Session;
//! use harness::scenario::Phase;
//! let outcome = Session::builder()
//!     .twin(twin::TwinOptions::default())
//!     .phases(&[Phase::Preflight])
//!     .only(["preflight::dns"])
//!     .out_dir("reports/dns")
//!     .build()
//!     .await?
//!     .run()
//!     .await?;
//! println!("exit {} — reports in {}", outcome.exit_code, outcome.report_dir.display());
//! # Ok(()) }
//! ```

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use harness::catalog::NoMatch;
use harness::events::{Event, EventBus, EventKind, JsonlWriter, Subscriber};
use harness::report::ReportError;
use harness::runner::{self, Recorder, RunOptions, RunRecord, exit};
use harness::scenario::{ConnectError, ConnectOptions, Lab, Need, Phase, Scenario};
use harness::spec::{LabSpec, Overrides, SpecError};
use twin::faults::Fault;

pub use harness::model::lab::{ChaosTarget, StopMode as ChaosMode};

/// What `clusterproof chaos node-failure` asks of the chaos phase: it overrides the lab
/// file's `chaos.target`, `chaos.mode` and `chaos.seed` for this run.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ChaosRequest {
    /// `None`: the lab's `chaos.target` (default a worker).
    pub target: Option<ChaosTarget>,
    /// `None`: the lab's `chaos.mode` (default stop).
    pub mode: Option<ChaosMode>,
    /// Seed for picking the victim among the candidates; `None`: the lab's, else random.
    pub seed: Option<u64>,
}

/// Why a session could not run. [`SessionError::exit_code`] is the process exit code.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("--fault switches a fault of the built-in twin; it cannot be used with --lab")]
    FaultWithLab,
    #[error(transparent)]
    NoMatch(#[from] NoMatch),
    #[error(
        "this build has no scenarios in phase {0}; nothing to evaluate (see `clusterproof list`)"
    )]
    NoScenarios(String),
    #[error("starting the built-in twin: {0}")]
    Twin(#[from] twin::TwinError),
    #[error("provisioning the built-in twin failed: {0}")]
    TwinSetup(String),
    #[error(transparent)]
    Spec(#[from] SpecError),
    #[error("{lab}: {source}")]
    Connect {
        lab: String,
        #[source]
        source: ConnectError,
    },
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("writing reports to {dir}: {source}")]
    Report {
        dir: String,
        #[source]
        source: ReportError,
    },
}

impl SessionError {
    /// 2 for inputs that cannot be used, 3 when the harness could not evaluate.
    pub fn exit_code(&self) -> i32 {
        match self {
            SessionError::FaultWithLab
            | SessionError::NoMatch(_)
            | SessionError::Spec(_)
            | SessionError::Connect { .. } => exit::BAD_INPUT,
            SessionError::NoScenarios(_)
            | SessionError::Twin(_)
            | SessionError::TwinSetup(_)
            | SessionError::Io { .. }
            | SessionError::Report { .. } => exit::NOT_EVALUATED,
        }
    }
}

/// What a finished session produced.
#[derive(Debug, Clone)]
pub struct RunOutcome {
    /// What result.json holds.
    pub record: RunRecord,
    /// The process exit code (also `record.exit_code`).
    pub exit_code: i32,
    /// Where the reports are.
    pub report_dir: PathBuf,
}

enum Target {
    Twin(Box<twin::TwinOptions>),
    Lab(PathBuf),
}

type Interrupt = Pin<Box<dyn Future<Output = String> + Send>>;

/// Builds a [`Session`]; see the module docs.
pub struct SessionBuilder {
    target: Target,
    phases: Vec<Phase>,
    command: Option<String>,
    only: Vec<String>,
    keep_going: bool,
    strict: bool,
    yes: bool,
    dry_run: bool,
    out_dir: Option<PathBuf>,
    reports_root: PathBuf,
    scenario_timeout: Duration,
    chaos: Option<ChaosRequest>,
    subscribers: Vec<Box<dyn Subscriber>>,
    interrupt: Option<Interrupt>,
    /// `lab_or_twin` was given a lab file and twin faults.
    fault_with_lab: bool,
}

impl Default for SessionBuilder {
    fn default() -> Self {
        SessionBuilder {
            target: Target::Twin(Box::default()),
            phases: Phase::ALL.to_vec(),
            command: None,
            only: Vec::new(),
            keep_going: false,
            strict: false,
            yes: false,
            dry_run: false,
            out_dir: None,
            reports_root: PathBuf::from("reports"),
            scenario_timeout: Duration::from_secs(15 * 60),
            chaos: None,
            subscribers: Vec::new(),
            interrupt: None,
            fault_with_lab: false,
        }
    }
}

impl SessionBuilder {
    /// Run against this lab file.
    pub fn lab(mut self, lab_file: impl Into<PathBuf>) -> Self {
        self.target = Target::Lab(lab_file.into());
        self.fault_with_lab = false;
        self
    }

    /// Run against the built-in twin, started for the session (the default, with the
    /// default options: its `omnictl`/`cilium` CLIs need `exe`, the clusterproof binary).
    pub fn twin(mut self, opts: twin::TwinOptions) -> Self {
        self.target = Target::Twin(Box::new(opts));
        self
    }

    /// Run against the twin when `lab` is `None`, else against the lab file.
    pub fn lab_or_twin(self, lab: Option<PathBuf>, twin: twin::TwinOptions) -> Self {
        match lab {
            Some(l) => {
                let mut s = self.lab(l);
                s.fault_with_lab = !twin.faults.is_empty();
                s
            }
            None => self.twin(twin),
        }
    }

    /// The phases to run (default: all four, in order).
    pub fn phases(mut self, phases: &[Phase]) -> Self {
        self.phases = phases.to_vec();
        self
    }

    /// The command as reports show it, without `clusterproof` and flags, e.g. `verify`
    /// (default: the phases, or `run` for all of them).
    pub fn command(mut self, command: impl Into<String>) -> Self {
        self.command = Some(command.into());
        self
    }

    /// `--only`: ids or globs; their prerequisites are pulled in ([`Session::notes`]).
    pub fn only<S: Into<String>>(mut self, patterns: impl IntoIterator<Item = S>) -> Self {
        self.only = patterns.into_iter().map(Into::into).collect();
        self
    }

    pub fn keep_going(mut self, yes: bool) -> Self {
        self.keep_going = yes;
        self
    }

    /// Exit 4 on warnings.
    pub fn strict(mut self, yes: bool) -> Self {
        self.strict = yes;
        self
    }

    /// `--yes`: the run may change the lab (always so on the twin).
    pub fn allow_changes(mut self, yes: bool) -> Self {
        self.yes = yes;
        self
    }

    pub fn dry_run(mut self, yes: bool) -> Self {
        self.dry_run = yes;
        self
    }

    /// Where the reports go. Default: `<reports root>/<run-id>/`, with `latest` beside it.
    pub fn out_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.out_dir = Some(dir.into());
        self
    }

    /// Without [`out_dir`](Self::out_dir): the folder that gets `<run-id>/` and `latest`
    /// (default `reports`).
    pub fn reports_root(mut self, dir: impl Into<PathBuf>) -> Self {
        self.reports_root = dir.into();
        self
    }

    pub fn scenario_timeout(mut self, t: Duration) -> Self {
        self.scenario_timeout = t;
        self
    }

    /// The node-failure experiment's parameters (`chaos node-failure`).
    pub fn chaos(mut self, request: ChaosRequest) -> Self {
        self.chaos = Some(request);
        self
    }

    /// Another consumer of the run's events (a progress printer).
    pub fn subscribe(mut self, s: impl Subscriber + 'static) -> Self {
        self.subscribers.push(Box::new(s));
        self
    }

    /// Resolving ends the run early, with this reason (Ctrl-C). Default: never.
    pub fn interrupt(mut self, f: impl Future<Output = String> + Send + 'static) -> Self {
        self.interrupt = Some(Box::pin(f));
        self
    }

    /// Select the scenarios, start the twin (if no lab file), load and connect the lab, and
    /// create the report directory. Nothing is sent to the lab yet.
    pub async fn build(self) -> Result<Session, SessionError> {
        if self.fault_with_lab {
            return Err(SessionError::FaultWithLab);
        }
        let faults: &[Fault] = match &self.target {
            Target::Twin(o) => &o.faults,
            Target::Lab(_) => &[],
        };
        let faults = faults.to_vec();
        let (selected, mut notes) = select(&self.phases, &self.only)?;
        // The built-in twin starts empty: checks of a running cluster need it provisioned
        // first — a setup step of the twin's own (also under --dry-run: the twin is not the
        // user's lab), not part of what this run reports.
        let mut setup = Vec::new();
        if matches!(self.target, Target::Twin(_))
            && !selected.iter().any(|s| s.phase() <= Phase::Provision)
            && selected.iter().any(|s| s.phase() >= Phase::Verify)
        {
            setup = scenarios::catalog()
                .into_iter()
                .filter(|s| s.phase() == Phase::Provision)
                .collect();
            notes.push(format!(
                "the built-in twin starts empty: provisioning it first ({})",
                setup.iter().map(|s| s.id()).collect::<Vec<_>>().join(", ")
            ));
        }
        let twin = match &self.target {
            Target::Lab(_) => None,
            Target::Twin(opts) => Some(twin::Twin::start((**opts).clone()).await?),
        };
        let lab_file = match (&self.target, &twin) {
            (Target::Lab(l), _) => l.clone(),
            (_, Some(t)) => t.lab_path().to_path_buf(),
            (Target::Twin(_), None) => unreachable!("the twin is started above"),
        };
        match connect(&self, &lab_file, twin.is_some(), &selected) {
            Ok((lab, run_id, report_dir)) => Ok(Session {
                command: self.command_line(&faults),
                builder: self,
                setup,
                selected,
                notes,
                twin,
                lab,
                run_id,
                report_dir,
            }),
            Err(e) => {
                if let Some(t) = twin {
                    t.shutdown().await;
                }
                Err(e)
            }
        }
    }

    /// `clusterproof verify (twin) --fault F --dry-run …` as reports show it.
    fn command_line(&self, faults: &[Fault]) -> String {
        let name = self.command.clone().unwrap_or_else(|| {
            if self.phases == Phase::ALL {
                "run".into()
            } else {
                let p: Vec<&str> = self.phases.iter().map(|p| p.as_str()).collect();
                p.join("+")
            }
        });
        let mut s = format!("clusterproof {name}");
        if matches!(self.target, Target::Twin(_)) {
            s.push_str(" (twin)");
            for f in faults {
                s.push_str(&format!(" --fault {f}"));
            }
        }
        if let Some(c) = &self.chaos {
            if let Some(t) = &c.target {
                s.push_str(&format!(" --target {t}"));
            }
            if let Some(m) = c.mode {
                s.push_str(&format!(" --mode {m}"));
            }
            if let Some(seed) = c.seed {
                s.push_str(&format!(" --seed {seed}"));
            }
        }
        if self.dry_run {
            s.push_str(" --dry-run");
        }
        if self.yes {
            s.push_str(" --yes");
        }
        if self.keep_going {
            s.push_str(" --keep-going");
        }
        for p in &self.only {
            s.push_str(&format!(" --only {p}"));
        }
        s
    }
}

/// Scenarios chosen for a run, and what to tell the user about them.
type Chosen = (Vec<Arc<dyn Scenario>>, Vec<String>);

/// The scenarios of `phases`, narrowed by `--only` patterns, and what to tell the user
/// about prerequisites pulled in.
pub fn select(phases: &[Phase], only: &[String]) -> Result<Chosen, SessionError> {
    let mut selected: Vec<Arc<dyn Scenario>> = scenarios::catalog()
        .into_iter()
        .filter(|s| phases.contains(&s.phase()))
        .collect();
    let mut notes = Vec::new();
    if !only.is_empty() {
        let selection = harness::catalog::select(&selected, only)?;
        for id in &selection.pulled_in {
            let of: Vec<&str> = selection
                .scenarios
                .iter()
                .filter(|s| s.meta().after_ids().any(|d| d == *id))
                .map(|s| s.id())
                .collect();
            notes.push(format!(
                "also running {id} (a prerequisite of {})",
                of.join(", ")
            ));
        }
        selected = selection.scenarios;
    }
    if selected.is_empty() {
        let names: Vec<&str> = phases.iter().map(|p| p.as_str()).collect();
        return Err(SessionError::NoScenarios(names.join(", ")));
    }
    Ok((selected, notes))
}

fn connect(
    b: &SessionBuilder,
    lab_file: &Path,
    on_twin: bool,
    selected: &[Arc<dyn Scenario>],
) -> Result<(Lab, String, PathBuf), SessionError> {
    let mut spec = LabSpec::load(lab_file, &Overrides::default())?;
    if let Some(r) = &b.chaos {
        if let Some(t) = &r.target {
            spec.lab.chaos.target = t.clone();
        }
        if let Some(m) = r.mode {
            spec.lab.chaos.mode = m;
        }
        if r.seed.is_some() {
            spec.lab.chaos.seed = r.seed;
        }
    }
    let run_id = run_id();
    let report_dir = match &b.out_dir {
        Some(d) => d.clone(),
        None => b.reports_root.join(&run_id),
    };
    std::fs::create_dir_all(&report_dir).map_err(|source| SessionError::Io {
        what: format!(
            "cannot create the report directory {}",
            report_dir.display()
        ),
        source,
    })?;
    if b.out_dir.is_none() {
        point_latest(&report_dir, &run_id);
    }
    let needs: Vec<Need> = selected
        .iter()
        .flat_map(|s| s.needs().iter().copied())
        .collect();
    let opts = ConnectOptions {
        needs,
        allow_changes: b.yes || on_twin,
        dry_run: b.dry_run,
    };
    let lab = Lab::connect(spec, opts).map_err(|source| SessionError::Connect {
        lab: lab_file.display().to_string(),
        source,
    })?;
    Ok((lab, run_id, report_dir))
}

/// A session ready to run: the lab connected (the twin started), the scenarios chosen.
pub struct Session {
    builder: SessionBuilder,
    command: String,
    /// Provisioning the built-in twin before a run that needs a running cluster.
    setup: Vec<Arc<dyn Scenario>>,
    selected: Vec<Arc<dyn Scenario>>,
    notes: Vec<String>,
    twin: Option<twin::Twin>,
    lab: Lab,
    run_id: String,
    report_dir: PathBuf,
}

impl Session {
    pub fn builder() -> SessionBuilder {
        SessionBuilder::default()
    }

    /// What the user should be told before the run (prerequisites pulled in by `--only`).
    pub fn notes(&self) -> &[String] {
        &self.notes
    }

    /// The ids of the scenarios that will run, in catalog order.
    pub fn scenario_ids(&self) -> Vec<&'static str> {
        self.selected.iter().map(|s| s.id()).collect()
    }

    pub fn report_dir(&self) -> &Path {
        &self.report_dir
    }

    pub fn run_id(&self) -> &str {
        &self.run_id
    }

    /// The command line reports show.
    pub fn command_line(&self) -> &str {
        &self.command
    }

    /// The node-failure request of `chaos node-failure`, for the chaos scenarios.
    pub fn chaos(&self) -> Option<&ChaosRequest> {
        self.builder.chaos.as_ref()
    }

    /// The twin this session started, if it runs against the twin.
    pub fn twin(&self) -> Option<&twin::Twin> {
        self.twin.as_ref()
    }

    pub fn scenario_timeout(&self) -> Duration {
        self.builder.scenario_timeout
    }

    /// Run every selected scenario, write the reports (result.json, events.jsonl,
    /// junit.xml, summary.md, report.html, metrics.prom) and stop the twin.
    pub async fn run(self) -> Result<RunOutcome, SessionError> {
        let Session {
            builder,
            command,
            setup,
            selected,
            twin,
            lab,
            run_id,
            report_dir,
            ..
        } = self;
        let result = match provision_twin(&lab, setup, &run_id).await {
            Ok(()) => run_inner(builder, command, selected, lab, run_id, &report_dir).await,
            Err(e) => Err(e),
        };
        if let Some(t) = twin {
            t.shutdown().await;
        }
        let record = result?;
        Ok(RunOutcome {
            exit_code: record.exit_code,
            record,
            report_dir,
        })
    }
}

/// Run the twin's setup scenarios (its provisioning) with a lab of their own that may change
/// it: any that does not pass is an error of the session.
async fn provision_twin(
    lab: &Lab,
    setup: Vec<Arc<dyn Scenario>>,
    run_id: &str,
) -> Result<(), SessionError> {
    if setup.is_empty() {
        return Ok(());
    }
    let needs: Vec<Need> = setup
        .iter()
        .flat_map(|s| s.needs().iter().copied())
        .collect();
    let twin_lab = Lab::connect(
        lab.spec.clone(),
        ConnectOptions {
            needs,
            allow_changes: true,
            dry_run: false,
        },
    )
    .map_err(|source| SessionError::Connect {
        lab: lab.spec.lab.path.display().to_string(),
        source,
    })?;
    let opts = RunOptions {
        command: "provisioning the built-in twin".into(),
        run_id: format!("{run_id}-setup"),
        scenario_timeout: Duration::from_secs(120),
        keep_going: false,
    };
    let records = runner::run(
        Arc::new(twin_lab),
        setup,
        &EventBus::new(),
        &opts,
        std::future::pending(),
    )
    .await;
    match records.iter().find(|r| {
        !matches!(
            r.outcome.verdict,
            harness::scenario::Verdict::Pass | harness::scenario::Verdict::Warn
        )
    }) {
        None => Ok(()),
        Some(r) => Err(SessionError::TwinSetup(format!(
            "{}: {}: {}",
            r.id, r.outcome.verdict, r.outcome.message
        ))),
    }
}

async fn run_inner(
    b: SessionBuilder,
    command: String,
    selected: Vec<Arc<dyn Scenario>>,
    lab: Lab,
    run_id: String,
    out: &Path,
) -> Result<RunRecord, SessionError> {
    let events =
        std::fs::File::create(out.join("events.jsonl")).map_err(|source| SessionError::Io {
            what: format!("cannot create {}/events.jsonl", out.display()),
            source,
        })?;
    let bus = EventBus::new();
    let recorder = Recorder::default();
    bus.subscribe(JsonlWriter::new(std::io::BufWriter::new(events)));
    bus.subscribe(recorder.clone());
    for s in b.subscribers {
        bus.subscribe(Boxed(s));
    }
    let opts = RunOptions {
        command,
        run_id,
        scenario_timeout: b.scenario_timeout,
        keep_going: b.keep_going,
    };
    let interrupt = b
        .interrupt
        .unwrap_or_else(|| Box::pin(std::future::pending()));
    runner::run(Arc::new(lab), selected, &bus, &opts, interrupt).await;
    let code = runner::exit_code(&recorder.record(), b.strict);
    bus.emit(EventKind::RunFinished { exit_code: code });
    // Taken after RunFinished, so result.json and a re-render from events.jsonl agree.
    let record = recorder.record();
    harness::report::write_all(out, &record).map_err(|source| SessionError::Report {
        dir: out.display().to_string(),
        source,
    })?;
    Ok(record)
}

struct Boxed(Box<dyn Subscriber>);

impl Subscriber for Boxed {
    fn on_event(&mut self, event: &Event) {
        self.0.on_event(event)
    }
}

/// `20260807T101500Z-3fa2`: sortable, and unique enough between runs in one folder.
pub fn run_id() -> String {
    let now = chrono::Utc::now();
    let salt = (std::process::id() ^ now.timestamp_subsec_nanos()) & 0xffff;
    format!("{}-{salt:04x}", now.format("%Y%m%dT%H%M%SZ"))
}

/// `reports/latest` → `<run-id>` (best effort: a missing link never fails a run).
fn point_latest(out: &Path, id: &str) {
    let Some(parent) = out.parent() else { return };
    let latest = parent.join("latest");
    let _ = std::fs::remove_file(&latest);
    #[cfg(unix)]
    if let Err(e) = std::os::unix::fs::symlink(id, &latest) {
        tracing::warn!("cannot point {} at {id}: {e}", latest.display());
    }
}

/// Resolves with a reason on Ctrl-C or SIGTERM (for [`SessionBuilder::interrupt`]).
pub async fn interrupted() -> String {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = match signal(SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => return wait_ctrl_c().await,
        };
        tokio::select! {
            r = wait_ctrl_c() => r,
            _ = term.recv() => "SIGTERM".into(),
        }
    }
    #[cfg(not(unix))]
    wait_ctrl_c().await
}

async fn wait_ctrl_c() -> String {
    match tokio::signal::ctrl_c().await {
        Ok(()) => "Ctrl-C".into(),
        Err(_) => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chaos_targets_parse_and_print_back() {
        for (s, t) in [
            ("worker", ChaosTarget::Worker),
            ("control-plane", ChaosTarget::ControlPlane),
            ("talos-w1", ChaosTarget::Node("talos-w1".into())),
        ] {
            assert_eq!(s.parse::<ChaosTarget>(), Ok(t.clone()));
            assert_eq!(t.to_string(), s);
        }
        assert!("".parse::<ChaosTarget>().is_err());
        assert!("w1; rm -rf /".parse::<ChaosTarget>().is_err());
    }

    #[test]
    fn only_pulls_in_prerequisites_and_says_so() {
        let (sel, notes) = select(&Phase::ALL, &["provision::cilium".into()]).unwrap();
        let ids: Vec<&str> = sel.iter().map(|s| s.id()).collect();
        assert!(ids.contains(&"provision::cilium"), "{ids:?}");
        let meta = scenarios::by_id("provision::cilium").unwrap().meta();
        assert!(meta.after_ids().count() > 0);
        for p in meta.after_ids() {
            assert!(ids.contains(&p), "{p} not pulled in: {ids:?}");
            assert!(notes.iter().any(|n| n.contains(p)), "{notes:?}");
        }
    }

    #[test]
    fn nothing_selected_is_an_error_with_its_exit_code() {
        let e = select(&[Phase::Preflight], &["nope::*".into()])
            .err()
            .unwrap();
        assert_eq!(e.exit_code(), exit::BAD_INPUT);
        assert!(e.to_string().contains("--only nope::*"), "{e}");
    }
}
