//! The lab suite: one test per scenario of the catalog, named by its id (`dod::workers_ready`),
//! for `cargo nextest run` (and `cargo test --test lab`). A custom harness (libtest-mimic).
//!
//! - No environment: against the built-in twin, every phase.
//! - `CLUSTERPROOF_LAB=lab.toml`: against that lab. Preflight and verify run; provisioning
//!   only with `CLUSTERPROOF_PROVISION=1`, chaos only with `CLUSTERPROOF_CHAOS=1` (their tests
//!   are ignored otherwise). Secrets come from the environment variables or files the lab
//!   file names (docs/ci.md), never from this suite's arguments.
//!
//! The checks (preflight, provision, verify) run as one session, once: per process, and
//! under nextest (which runs each test in its own process) once per `cargo nextest run` — the
//! first test process runs it under a file lock in `target/tmp/lab/<NEXTEST_RUN_ID>/checks/`,
//! the others wait on the lock and read its `result.json`. Each test then reports its
//! scenario's outcome. A chaos test runs its own session (its experiment, and on the twin
//! the provisioning it needs), so nextest's serial `chaos` group orders the experiments.
//!
//! Reports: `target/tmp/lab/…`; each test prints where.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use clusterproof::session::Session;
use harness::runner::{RunRecord, ScenarioRecord};
use harness::scenario::{Phase, Verdict};
use libtest_mimic::{Arguments, Failed, Trial};

/// Where the suite runs, from the environment.
#[derive(Clone)]
struct Mode {
    /// `None`: the twin.
    lab: Option<PathBuf>,
    provision: bool,
    chaos: bool,
}

impl Mode {
    fn from_env() -> Self {
        let on = |k: &str| std::env::var(k).is_ok_and(|v| v == "1");
        Mode {
            lab: std::env::var_os("CLUSTERPROOF_LAB")
                .filter(|v| !v.is_empty())
                .map(PathBuf::from),
            provision: on("CLUSTERPROOF_PROVISION"),
            chaos: on("CLUSTERPROOF_CHAOS"),
        }
    }

    /// Whether `phase` runs, and if not, why.
    fn runs(&self, phase: Phase) -> Result<(), &'static str> {
        match (phase, &self.lab) {
            (_, None) => Ok(()),
            (Phase::Provision, Some(_)) if !self.provision => {
                Err("provisioning a lab needs CLUSTERPROOF_PROVISION=1")
            }
            (Phase::Chaos, Some(_)) if !self.chaos => {
                Err("chaos on a lab needs CLUSTERPROOF_CHAOS=1")
            }
            _ => Ok(()),
        }
    }

    fn check_phases(&self) -> Vec<Phase> {
        [Phase::Preflight, Phase::Provision, Phase::Verify]
            .into_iter()
            .filter(|p| self.runs(*p).is_ok())
            .collect()
    }

    fn builder(&self) -> clusterproof::session::SessionBuilder {
        let twin = twin::TwinOptions {
            exe: Some(PathBuf::from(env!("CARGO_BIN_EXE_clusterproof"))),
            ..Default::default()
        };
        Session::builder()
            .lab_or_twin(self.lab.clone(), twin)
            .allow_changes(self.provision || self.chaos)
    }
}

fn reports_root() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("lab")
}

/// Run a session to the end: its record and report directory, or why it could not run.
fn run_session(b: clusterproof::session::SessionBuilder) -> Result<(RunRecord, PathBuf), String> {
    let rt = clusterproof::runtime().map_err(|e| format!("no async runtime: {e}"))?;
    rt.block_on(async {
        let session = b
            .build()
            .await
            .map_err(|e| format!("the session did not start: {e}"))?;
        for n in session.notes() {
            eprintln!("{n}");
        }
        let o = session
            .run()
            .await
            .map_err(|e| format!("the session did not finish: {e}"))?;
        eprintln!(
            "{}",
            clusterproof::terminal::final_line(
                &o.record,
                &o.report_dir,
                &clusterproof::terminal::Palette::new(false)
            )
        );
        Ok((o.record, o.report_dir))
    })
}

/// The checks session, run by the first process of a nextest run under a file lock and read
/// back by the others; without nextest, run by this process.
fn checks(mode: &Mode) -> Result<(RunRecord, PathBuf), String> {
    let b = mode
        .builder()
        .phases(&mode.check_phases())
        .command("lab suite: checks");
    let Some(run) = std::env::var_os("NEXTEST_RUN_ID") else {
        return run_session(b.reports_root(reports_root()));
    };
    let dir = reports_root()
        .join(PathBuf::from(run).file_name().unwrap_or_default())
        .join("checks");
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let lock = std::fs::File::create(dir.join("lock"))
        .map_err(|e| format!("{}/lock: {e}", dir.display()))?;
    // Held until this process has the record; a process that dies releases it, and the next
    // one finds no result.json and runs the session itself.
    lock.lock()
        .map_err(|e| format!("cannot lock {}/lock: {e}", dir.display()))?;
    let result = dir.join("result.json");
    if let Ok(text) = std::fs::read_to_string(&result) {
        let record: RunRecord = serde_json::from_str(&text)
            .map_err(|e| format!("{}: not a run record: {e}", result.display()))?;
        return Ok((record, dir));
    }
    run_session(b.out_dir(&dir))
}

/// A chaos test's own session: its experiment (on the twin, after provisioning it).
fn chaos(mode: &Mode, id: &str) -> Result<(RunRecord, PathBuf), String> {
    let (phases, only): (&[Phase], Vec<String>) = match mode.lab {
        None => (
            &[Phase::Provision, Phase::Chaos],
            vec!["provision::*".into(), id.into()],
        ),
        Some(_) => (&[Phase::Chaos], vec![id.into()]),
    };
    run_session(
        mode.builder()
            .phases(phases)
            .only(only)
            .command(format!("lab suite: {id}"))
            .reports_root(reports_root()),
    )
}

/// The test's verdict on its scenario's record.
fn verdict(id: &str, rec: Option<&ScenarioRecord>, dir: &Path) -> Result<(), Failed> {
    let Some(rec) = rec else {
        return Err(format!("{id} is not in the run record ({})", dir.display()).into());
    };
    let o = &rec.outcome;
    let mut text = format!(
        "{} {id}: {}\n",
        o.verdict.as_str().to_uppercase(),
        o.message
    );
    for e in &o.evidence {
        text.push_str(&format!("  evidence: {e}\n"));
    }
    for f in &o.findings {
        text.push_str(&format!("  {f}\n"));
    }
    if let Some(r) = &o.remediation {
        text.push_str(&format!("  remediation: {r}\n"));
    }
    text.push_str(&format!("  reports: {}\n", dir.display()));
    match o.verdict {
        Verdict::Pass | Verdict::Warn => {
            let _ = std::io::stderr().write_all(text.as_bytes());
            Ok(())
        }
        // Not proven: a failure, an error, or not run because something before it did not pass.
        Verdict::Fail | Verdict::Error | Verdict::Skip => Err(text.into()),
    }
}

type Shared = Arc<OnceLock<Result<(RunRecord, PathBuf), String>>>;

fn main() {
    let args = Arguments::from_args();
    let mode = Mode::from_env();
    let shared: Shared = Arc::new(OnceLock::new());
    let mut checks_wanted = false;
    let mut trials = Vec::new();
    for s in scenarios::catalog() {
        let id = s.id();
        let phase = s.phase();
        let ignored = mode.runs(phase).is_err();
        let (m, sh) = (mode.clone(), Arc::clone(&shared));
        let trial = Trial::test(id, move || {
            if let Err(why) = m.runs(phase) {
                return Err(format!("{id} is not run here: {why}").into());
            }
            let result = if phase == Phase::Chaos {
                chaos(&m, id)
            } else {
                sh.get()
                    .cloned()
                    .unwrap_or_else(|| Err("the checks did not run".into()))
            };
            let (record, dir) = result.map_err(Failed::from)?;
            verdict(id, record.scenarios.iter().find(|r| r.id == id), &dir)
        })
        .with_ignored_flag(ignored);
        if phase != Phase::Chaos && !args.is_filtered_out(&trial) && !args.is_ignored(&trial) {
            checks_wanted = true;
        }
        trials.push(trial);
    }
    // Listing (nextest lists first) runs nothing.
    if !args.list && checks_wanted {
        let _ = shared.set(checks(&mode));
    }
    libtest_mimic::run(&args, trials).exit();
}
