//! Reports written from a [`RunRecord`](crate::runner::RunRecord): `junit.xml`,
//! `result.json`, `summary.md`, `report.html`, `metrics.prom` (plus `events.jsonl`, written
//! live by its subscriber). Reports only read the record; [`rerender`] rebuilds them all
//! from a report directory. The formats are described in `reports/README.md`.

pub mod html;
pub mod junit;
pub mod metrics;
pub mod summary;
pub mod timeline;

use std::path::{Path, PathBuf};

use crate::events::{Event, EventKind};
use crate::runner::{RunRecord, ScenarioRecord};
use crate::scenario::{Metric, Outcome, Phase, Verdict};

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("cannot write {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot render junit.xml: {0}")]
    Junit(String),
    #[error("cannot write result.json: {0}")]
    Json(String),
    #[error("{path}: {message}")]
    Read { path: PathBuf, message: String },
}

fn write(path: PathBuf, content: &[u8]) -> Result<(), ReportError> {
    // Write to a temporary name, then rename: a reader never sees half a report.
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, content)
        .and_then(|_| std::fs::rename(&tmp, &path))
        .map_err(|source| ReportError::Io { path, source })
}

/// Write every report of `record` into `dir` (which must exist). Each report is attempted
/// even if an earlier one failed; the first error is returned.
pub fn write_all(dir: &Path, record: &RunRecord) -> Result<(), ReportError> {
    let mut first_err = None;
    let mut keep = |r: Result<(), ReportError>| {
        if let Err(e) = r {
            first_err.get_or_insert(e);
        }
    };
    let json = serde_json::to_vec_pretty(record).map_err(|e| ReportError::Json(e.to_string()));
    keep(json.and_then(|j| write(dir.join("result.json"), &j)));
    keep(write(
        dir.join("summary.md"),
        summary::render(record).as_bytes(),
    ));
    keep(junit::render(record).and_then(|x| write(dir.join("junit.xml"), x.as_bytes())));
    keep(write(
        dir.join("report.html"),
        html::render(record).as_bytes(),
    ));
    keep(write(
        dir.join("metrics.prom"),
        metrics::render(record).as_bytes(),
    ));
    match first_err {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// What [`rerender`] read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RerenderSource {
    /// `result.json` (its timeline from `events.jsonl` when it had none).
    ResultJson,
    /// Only `events.jsonl`: a run killed before it wrote `result.json`.
    EventsOnly,
}

/// Re-render every report in `dir` from its `result.json` and `events.jsonl`. With no
/// `result.json` (a killed run), the record is rebuilt from the events and written too.
/// `events.jsonl` is never rewritten.
pub fn rerender(dir: &Path) -> Result<RerenderSource, ReportError> {
    let events_path = dir.join("events.jsonl");
    let events = match std::fs::read_to_string(&events_path) {
        Ok(text) => Some(read_events(&events_path, &text)?),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(read_err(&events_path, e.to_string())),
    };
    let result_path = dir.join("result.json");
    let (record, source) = match std::fs::read_to_string(&result_path) {
        Ok(text) => {
            let mut r: RunRecord = serde_json::from_str(&text)
                .map_err(|e| read_err(&result_path, format!("not a clusterproof result: {e}")))?;
            if r.timeline.is_empty()
                && let Some(ev) = &events
            {
                r.timeline = RunRecord::from_events(ev).timeline;
            }
            (r, RerenderSource::ResultJson)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => match &events {
            Some(ev) => {
                let mut r = RunRecord::from_events(ev);
                if !ev
                    .iter()
                    .any(|e| matches!(e.kind, EventKind::RunFinished { .. }))
                {
                    complete_unfinished(&mut r, ev);
                }
                (r, RerenderSource::EventsOnly)
            }
            None => {
                return Err(read_err(
                    dir,
                    "neither result.json nor events.jsonl is here; is this a clusterproof report directory?".into(),
                ));
            }
        },
        Err(e) => return Err(read_err(&result_path, e.to_string())),
    };
    write_all(dir, &record)?;
    Ok(source)
}

/// A run that ended without `run_finished` (killed): every scenario it announced but did not
/// finish is recorded as `error` (started) or `skip` (never started), and the run as
/// interrupted — the same rule as the runner's on Ctrl-C.
fn complete_unfinished(r: &mut RunRecord, events: &[Event]) {
    let announced = events.iter().find_map(|e| match &e.kind {
        EventKind::RunStarted { scenarios, .. } => Some(scenarios.clone()),
        _ => None,
    });
    for info in announced.unwrap_or_default() {
        if r.scenarios.iter().any(|s| s.id == info.id) {
            continue;
        }
        let outcome = if r.started_at(&info.id).is_some() {
            Outcome::error("no result: the run ended before this scenario finished")
        } else {
            Outcome::skip("not run: the run ended before this scenario started")
        };
        r.scenarios.push(ScenarioRecord {
            id: info.id,
            phase: info.phase,
            proves: info.proves,
            outcome,
        });
    }
    r.interrupted.get_or_insert_with(|| {
        "the run ended without finishing (events.jsonl has no run_finished)".into()
    });
    r.exit_code = crate::runner::exit_code(r, false);
}

fn read_err(path: &Path, message: String) -> ReportError {
    ReportError::Read {
        path: path.to_path_buf(),
        message,
    }
}

/// Every line of `events.jsonl`. A last line cut short (the run was killed mid-write) is
/// dropped; any other unreadable line is an error naming it.
fn read_events(path: &Path, text: &str) -> Result<Vec<Event>, ReportError> {
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let mut events = Vec::with_capacity(lines.len());
    for (i, line) in lines.iter().enumerate() {
        match serde_json::from_str::<Event>(line) {
            Ok(e) => events.push(e),
            Err(_) if i + 1 == lines.len() && !text.ends_with('\n') => {}
            Err(e) => {
                return Err(read_err(
                    path,
                    format!("line {}: not a clusterproof event: {e}", i + 1),
                ));
            }
        }
    }
    Ok(events)
}

/// The run's verdict in words, as the reports' headline.
pub fn headline(r: &RunRecord) -> &'static str {
    match r.worst() {
        _ if r.interrupted.is_some() => "INTERRUPTED",
        Some(Verdict::Fail) => "FAILED",
        Some(Verdict::Error) => "COULD NOT EVALUATE",
        Some(Verdict::Warn) => "PASSED WITH WARNINGS",
        Some(Verdict::Pass) => "PASSED",
        Some(Verdict::Skip) | None => "NOTHING EVALUATED",
    }
}

/// The phases that have scenarios, in run order, each with its scenarios — the ones that
/// need attention first (fail and error, then warn, pass, skip), otherwise in run order.
pub fn phases(r: &RunRecord) -> Vec<(Phase, Vec<&ScenarioRecord>)> {
    Phase::ALL
        .into_iter()
        .filter_map(|p| {
            let mut v: Vec<&ScenarioRecord> = r.scenarios.iter().filter(|s| s.phase == p).collect();
            v.sort_by_key(|s| attention(s.outcome.verdict));
            (!v.is_empty()).then_some((p, v))
        })
        .collect()
}

/// Sort rank: what a reader must look at first.
pub fn attention(v: Verdict) -> u8 {
    match v {
        Verdict::Fail => 0,
        Verdict::Error => 1,
        Verdict::Warn => 2,
        Verdict::Pass => 3,
        Verdict::Skip => 4,
    }
}

/// A phase's verdict: its worst scenario's (skip when nothing in it ran).
pub fn phase_verdict(scenarios: &[&ScenarioRecord]) -> Verdict {
    scenarios
        .iter()
        .map(|s| s.outcome.verdict)
        .max()
        .unwrap_or(Verdict::Skip)
}

/// Scenarios that did not pass (and were not skipped), failures first.
pub fn needing_attention(r: &RunRecord) -> Vec<&ScenarioRecord> {
    let mut v: Vec<&ScenarioRecord> = r
        .scenarios
        .iter()
        .filter(|s| !matches!(s.outcome.verdict, Verdict::Pass | Verdict::Skip))
        .collect();
    v.sort_by_key(|s| attention(s.outcome.verdict));
    v
}

/// `n passed, n warned, …` of a set of scenarios, leaving out zero counts (all zero: "none").
pub fn counts<'a>(scenarios: impl IntoIterator<Item = &'a ScenarioRecord> + Clone) -> String {
    let parts: Vec<String> = [
        (Verdict::Fail, "failed"),
        (Verdict::Error, "errors"),
        (Verdict::Warn, "warned"),
        (Verdict::Pass, "passed"),
        (Verdict::Skip, "skipped"),
    ]
    .into_iter()
    .filter_map(|(v, word)| {
        let n = scenarios
            .clone()
            .into_iter()
            .filter(|s| s.outcome.verdict == v)
            .count();
        (n > 0).then(|| format!("{n} {word}"))
    })
    .collect();
    if parts.is_empty() {
        "no scenarios".into()
    } else {
        parts.join(", ")
    }
}

/// A metric's value for a person: bytes in GiB/MiB, seconds with two decimals.
pub fn metric_text(m: &Metric) -> String {
    const GIB: f64 = (1u64 << 30) as f64;
    const MIB: f64 = (1u64 << 20) as f64;
    match m.unit.as_str() {
        "bytes" | "B" if m.value.abs() >= GIB => format!("{:.1} GiB", m.value / GIB),
        "bytes" | "B" if m.value.abs() >= MIB => format!("{:.1} MiB", m.value / MIB),
        "s" | "seconds" => format!("{:.2} s", m.value),
        "%" | "percent" => format!("{}%", m.value),
        "" => format!("{}", m.value),
        u => format!("{} {u}", m.value),
    }
}
