//! What a person sees in a terminal: live progress per scenario (a spinner saying what it
//! is waiting for — its latest observation — and its elapsed time against the timeout),
//! a line per finished scenario, then a compact table per phase and the final line.
//!
//! Like nextest's reporter it only consumes events. Progress goes to stderr; spinners only
//! when stderr is a terminal; colours only on a terminal and never with `NO_COLOR` set.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::path::Path;
use std::time::Duration;

use console::Style;
use harness::events::{Event, EventKind, Subscriber};
use harness::runner::{RunRecord, exit};
use harness::scenario::Verdict;
use harness::source::Severity;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Whether to colour stderr (resp. stdout): a terminal, and `NO_COLOR` unset or empty
/// (<https://no-color.org>).
pub fn colours(is_terminal: bool) -> bool {
    is_terminal && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// Verdict words, coloured or plain.
#[derive(Clone)]
pub struct Palette {
    on: bool,
}

impl Palette {
    pub fn new(on: bool) -> Self {
        Palette { on }
    }

    fn style(&self, v: Verdict) -> Style {
        let s = Style::new().force_styling(self.on);
        match v {
            Verdict::Pass => s.green(),
            Verdict::Warn => s.yellow(),
            Verdict::Fail => s.red().bold(),
            Verdict::Error => s.magenta().bold(),
            Verdict::Skip => s.dim(),
        }
    }

    /// `PASS ` … `ERROR`, padded to five columns.
    pub fn verdict(&self, v: Verdict) -> String {
        self.style(v)
            .apply_to(format!("{:<5}", v.as_str().to_uppercase()))
            .to_string()
    }

    pub fn dim(&self, s: &str) -> String {
        Style::new()
            .force_styling(self.on)
            .dim()
            .apply_to(s)
            .to_string()
    }

    pub fn headline(&self, code: i32, text: &str) -> String {
        let s = Style::new().force_styling(self.on).bold();
        let s = match code {
            exit::OK => s.green(),
            exit::FAILED => s.red(),
            exit::WARNINGS_STRICT => s.yellow(),
            _ => s.magenta(),
        };
        s.apply_to(text).to_string()
    }
}

/// The progress subscriber: add it to a session with `SessionBuilder::subscribe`.
pub struct Progress {
    multi: MultiProgress,
    /// Spinners (stderr is a terminal) or plain lines.
    live: bool,
    bars: HashMap<String, ProgressBar>,
    palette: Palette,
    style: ProgressStyle,
}

impl Progress {
    /// Progress for a run whose scenarios each get `timeout`. Spinners when stderr is a
    /// terminal, else one line per event worth a line.
    pub fn stderr(timeout: Duration) -> Self {
        let tty = std::io::stderr().is_terminal();
        let target = if tty {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        };
        Self::with(target, tty, Palette::new(colours(tty)), timeout)
    }

    fn with(target: ProgressDrawTarget, live: bool, palette: Palette, timeout: Duration) -> Self {
        let template = format!(
            "  {{spinner}} {{prefix:<28}} {{elapsed:>4}} / {}  {{wide_msg}}",
            humantime::format_duration(timeout)
        );
        let style = ProgressStyle::with_template(&template)
            .unwrap_or_else(|_| ProgressStyle::default_spinner());
        Progress {
            multi: MultiProgress::with_draw_target(target),
            live,
            bars: HashMap::new(),
            palette,
            style,
        }
    }

    fn line(&self, s: &str) {
        if self.live {
            // Above the spinners; falls back to stderr when they are not drawn.
            if self.multi.println(s).is_err() {
                eprintln!("{s}");
            }
        } else {
            eprintln!("{s}");
        }
    }
}

impl Subscriber for Progress {
    fn on_event(&mut self, e: &Event) {
        match &e.kind {
            EventKind::RunStarted {
                run_id,
                lab,
                scenarios,
                ..
            } => self.line(&format!(
                "clusterproof {run_id} · lab {lab} · {} check(s)",
                scenarios.len()
            )),
            EventKind::PhaseStarted { phase } => self.line(&format!("── {phase}")),
            EventKind::ScenarioStarted { id, .. } if self.live => {
                let bar = self.multi.add(ProgressBar::new_spinner());
                bar.set_style(self.style.clone());
                bar.set_prefix(id.clone());
                bar.set_message("starting");
                bar.enable_steady_tick(Duration::from_millis(120));
                self.bars.insert(id.clone(), bar);
            }
            EventKind::Observation {
                scenario, message, ..
            } => {
                if let Some(bar) = self.bars.get(scenario) {
                    bar.set_message(message.clone());
                }
            }
            EventKind::ScenarioFinished { id, outcome, .. } => {
                if let Some(bar) = self.bars.remove(id) {
                    bar.finish_and_clear();
                    self.multi.remove(&bar);
                }
                let mut text = format!(
                    "  {} {id} {} {}",
                    self.palette.verdict(outcome.verdict),
                    self.palette
                        .dim(&format!("({:.2}s)", outcome.duration.as_secs_f64())),
                    outcome.message
                );
                if outcome.verdict >= Verdict::Warn {
                    for f in outcome
                        .findings
                        .iter()
                        .filter(|f| f.severity >= Severity::Warning)
                    {
                        text.push_str(&format!("\n        {f}"));
                    }
                }
                self.line(&text);
            }
            EventKind::RunInterrupted { reason } => {
                self.line(&format!(
                    "!! interrupted ({reason}): restoring and writing reports"
                ));
            }
            _ => {}
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        for bar in self.bars.values() {
            bar.finish_and_clear();
        }
        let _ = self.multi.clear();
    }
}

/// One row per phase: its verdict, counts, and its slowest scenario.
pub fn table(r: &RunRecord, palette: &Palette) -> String {
    let phases = harness::report::phases(r);
    let mut out = String::new();
    for (phase, scs) in &phases {
        let v = harness::report::phase_verdict(scs);
        let counts = harness::report::counts(scs.iter().copied());
        let slowest = scs
            .iter()
            .filter(|s| s.outcome.verdict != Verdict::Skip)
            .max_by(|a, b| a.outcome.duration.cmp(&b.outcome.duration))
            .map(|s| format!("slowest {} {:.2}s", s.id, s.outcome.duration.as_secs_f64()))
            .unwrap_or_default();
        out.push_str(&format!(
            "{:<10} {} {:<32} {}\n",
            phase.as_str(),
            palette.verdict(v),
            counts,
            palette.dim(&slowest)
        ));
    }
    out
}

/// `PASSED: 16 passed, 0 warned, … — reports in DIR`.
pub fn final_line(r: &RunRecord, report_dir: &Path, palette: &Palette) -> String {
    let code = r.exit_code;
    let word = match code {
        exit::OK => "PASSED",
        exit::FAILED => "FAILED",
        exit::WARNINGS_STRICT => "WARNINGS",
        _ => "NOT EVALUATED",
    };
    format!(
        "{}: {} passed, {} warned, {} failed, {} errors, {} skipped — reports in {}",
        palette.headline(code, word),
        r.count(Verdict::Pass),
        r.count(Verdict::Warn),
        r.count(Verdict::Fail),
        r.count(Verdict::Error),
        r.count(Verdict::Skip),
        report_dir.display()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use harness::runner::ScenarioRecord;
    use harness::scenario::{Outcome, Phase};

    fn record() -> RunRecord {
        let sc = |id: &str, phase, v, secs| ScenarioRecord {
            id: id.into(),
            phase,
            proves: String::new(),
            outcome: Outcome {
                duration: Duration::from_secs_f64(secs),
                ..Outcome::new(v, "m")
            },
        };
        RunRecord {
            scenarios: vec![
                sc("preflight::a", Phase::Preflight, Verdict::Pass, 0.5),
                sc("preflight::b", Phase::Preflight, Verdict::Pass, 1.5),
                sc("verify::c", Phase::Verify, Verdict::Fail, 0.25),
                sc("verify::d", Phase::Verify, Verdict::Skip, 9.0),
            ],
            exit_code: exit::FAILED,
            ..Default::default()
        }
    }

    #[test]
    fn the_table_has_a_row_per_phase_with_its_worst_verdict_and_slowest_scenario() {
        let t = table(&record(), &Palette::new(false));
        let rows: Vec<&str> = t.lines().collect();
        assert_eq!(rows.len(), 2, "{t}");
        assert!(rows[0].starts_with("preflight  PASS  2 passed"), "{t}");
        assert!(rows[0].ends_with("slowest preflight::b 1.50s"), "{t}");
        assert!(
            rows[1].starts_with("verify     FAIL  1 failed, 1 skipped"),
            "{t}"
        );
        // A skipped scenario is never the slowest.
        assert!(rows[1].ends_with("slowest verify::c 0.25s"), "{t}");
    }

    #[test]
    fn colours_only_when_asked() {
        let plain = final_line(&record(), Path::new("out"), &Palette::new(false));
        assert_eq!(
            plain,
            "FAILED: 2 passed, 0 warned, 1 failed, 0 errors, 1 skipped — reports in out"
        );
        let coloured = final_line(&record(), Path::new("out"), &Palette::new(true));
        assert!(coloured.contains("\u{1b}["), "{coloured:?}");
        assert!(!colours(false));
    }
}
