//! `metrics.prom`: the run as OpenMetrics text, for a node-exporter textfile collector (or
//! any scraper of the OpenMetrics text format).
//!
//! Every family is a gauge (the textfile collector parses the Prometheus text format, which
//! knows no `info` or `stateset`; the `# UNIT` and `# EOF` lines are comments to it) with
//! `# TYPE`, `# UNIT` (when it has one) and `# HELP`; units are base units and the family
//! name ends in `_<unit>` (OpenMetrics 1.0 "UNIT", "Suffixes"). No sample has a timestamp:
//! the textfile collector refuses them, so the run's time is a gauge of its own. Each
//! scenario metric becomes one family named after it, with `lab`, `phase` and `scenario`
//! labels. `reports/README.md` lists the families.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::runner::RunRecord;
use crate::scenario::{Metric, Phase, Verdict};

/// The verdicts a `*_verdict` family has one sample for, in this order.
const VERDICTS: [Verdict; 5] = [
    Verdict::Pass,
    Verdict::Warn,
    Verdict::Fail,
    Verdict::Error,
    Verdict::Skip,
];

struct Family {
    name: String,
    unit: Option<String>,
    help: String,
    /// Labels, value.
    samples: Vec<(Vec<(&'static str, String)>, f64)>,
}

impl Family {
    fn new(name: impl Into<String>, unit: Option<&str>, help: impl Into<String>) -> Self {
        Family {
            name: name.into(),
            unit: unit.map(str::to_string),
            help: help.into(),
            samples: Vec::new(),
        }
    }

    fn write(&self, out: &mut String) {
        let _ = writeln!(out, "# TYPE {} gauge", self.name);
        if let Some(u) = &self.unit {
            let _ = writeln!(out, "# UNIT {} {u}", self.name);
        }
        let _ = writeln!(out, "# HELP {} {}", self.name, escape_help(&self.help));
        for (labels, value) in &self.samples {
            let ls: Vec<String> = labels
                .iter()
                .map(|(k, v)| format!("{k}=\"{}\"", escape_label(v)))
                .collect();
            let _ = writeln!(out, "{}{{{}}} {}", self.name, ls.join(","), number(*value));
        }
    }
}

pub fn render(r: &RunRecord) -> String {
    let lab = || ("lab", r.lab.clone());
    let run_verdict = if r.interrupted.is_some() {
        Verdict::Error
    } else {
        r.worst().unwrap_or(Verdict::Skip)
    };
    let mut families = Vec::new();

    let mut f = Family::new(
        "clusterproof_run_verdict",
        None,
        "The run's verdict: 1 for the one it had, 0 for the others (error also when interrupted, skip when nothing was evaluated).",
    );
    for v in VERDICTS {
        f.samples.push((
            vec![lab(), ("verdict", v.as_str().into())],
            f64::from(u8::from(v == run_verdict)),
        ));
    }
    families.push(f);

    let mut f = Family::new(
        "clusterproof_run_exit_code",
        None,
        "The run's exit code: 0 all pass, 1 a check failed, 2 bad input, 3 not evaluated, 4 warnings with --strict.",
    );
    f.samples.push((vec![lab()], f64::from(r.exit_code)));
    families.push(f);

    let mut f = Family::new(
        "clusterproof_run_timestamp_seconds",
        Some("seconds"),
        "When the run finished, in seconds since the Unix epoch.",
    );
    let finished = chrono::DateTime::parse_from_rfc3339(&r.finished)
        .map(|t| t.timestamp_millis() as f64 / 1000.0)
        .unwrap_or(f64::NAN);
    f.samples.push((vec![lab()], finished));
    families.push(f);

    let mut f = Family::new(
        "clusterproof_run_duration_seconds",
        Some("seconds"),
        "How long the run took.",
    );
    f.samples.push((vec![lab()], r.duration_secs));
    families.push(f);

    let mut f = Family::new(
        "clusterproof_phase_verdict",
        None,
        "Each phase's verdict (its worst scenario's): 1 for the one it had, 0 for the others.",
    );
    for (phase, scs) in super::phases(r) {
        let pv = super::phase_verdict(&scs);
        for v in VERDICTS {
            f.samples.push((
                vec![
                    lab(),
                    ("phase", phase.as_str().into()),
                    ("verdict", v.as_str().into()),
                ],
                f64::from(u8::from(v == pv)),
            ));
        }
    }
    families.push(f);

    let mut verdicts = Family::new(
        "clusterproof_scenario_verdict",
        None,
        "Each scenario's verdict: 1 for the one it had, 0 for the others.",
    );
    let mut durations = Family::new(
        "clusterproof_scenario_duration_seconds",
        Some("seconds"),
        "How long each scenario ran.",
    );
    // Scenario metrics: one family per (name, unit), samples from every scenario reporting it.
    let mut measured: BTreeMap<String, Family> = BTreeMap::new();
    for sc in &r.scenarios {
        let labels = |phase: Phase| {
            vec![
                lab(),
                ("phase", phase.as_str().to_string()),
                ("scenario", sc.id.clone()),
            ]
        };
        for v in VERDICTS {
            let mut l = labels(sc.phase);
            l.push(("verdict", v.as_str().into()));
            verdicts
                .samples
                .push((l, f64::from(u8::from(v == sc.outcome.verdict))));
        }
        durations
            .samples
            .push((labels(sc.phase), sc.outcome.duration.as_secs_f64()));
        for (name, m) in &sc.outcome.metrics {
            let (family, unit, value) = metric_family(name, m);
            measured
                .entry(family.clone())
                .or_insert_with(|| {
                    Family::new(
                        family,
                        unit.as_deref(),
                        format!("Scenario metric `{name}` (reported in {}).", unit_word(m)),
                    )
                })
                .samples
                .push((labels(sc.phase), value));
        }
    }
    families.push(verdicts);
    families.push(durations);
    families.extend(measured.into_values());

    let mut out = String::new();
    for f in &families {
        f.write(&mut out);
    }
    out.push_str("# EOF\n");
    out
}

fn unit_word(m: &Metric) -> &str {
    if m.unit.is_empty() {
        "no unit"
    } else {
        &m.unit
    }
}

/// The family name, base unit and value in that unit of a scenario metric.
/// `provision_seconds` in `s` → `clusterproof_provision_seconds`; `planned_memory` in
/// `bytes` → `clusterproof_planned_memory_bytes`; `detect` in `ms` → seconds.
pub fn metric_family(name: &str, m: &Metric) -> (String, Option<String>, f64) {
    let (unit, factor): (Option<&'static str>, f64) = match m.unit.as_str() {
        "s" | "sec" | "secs" | "second" | "seconds" => (Some("seconds"), 1.0),
        "ms" | "milliseconds" => (Some("seconds"), 1e-3),
        "bytes" | "byte" | "B" => (Some("bytes"), 1.0),
        "KiB" => (Some("bytes"), 1024.0),
        "MiB" => (Some("bytes"), 1024.0 * 1024.0),
        "GiB" => (Some("bytes"), 1024.0 * 1024.0 * 1024.0),
        "%" | "percent" => (Some("ratio"), 0.01),
        "ratio" => (Some("ratio"), 1.0),
        _ => (None, 1.0),
    };
    let mut base = sanitize(name);
    // A name that already says its unit keeps one suffix, in the base unit.
    let given = sanitize(&m.unit);
    for suffix in [unit.unwrap_or(""), given.as_str()] {
        if !suffix.is_empty()
            && let Some(stripped) = base.strip_suffix(&format!("_{suffix}"))
        {
            base = stripped.to_string();
        }
    }
    // Keep clear of the run/phase/scenario families.
    if ["run_", "phase_", "scenario_"]
        .iter()
        .any(|p| base.starts_with(p))
    {
        base = format!("metric_{base}");
    }
    // A unit with no base unit here is kept as given; `count` (or none) is no unit.
    let unit: Option<String> = match unit {
        Some(u) => Some(u.to_string()),
        None if !given.is_empty() && given != "count" => Some(given),
        None => None,
    };
    let mut family = format!("clusterproof_{base}");
    match &unit {
        Some(u) => {
            family.push('_');
            family.push_str(u);
        }
        // A suffix the text format reserves for counters and histograms is avoided.
        None if RESERVED_SUFFIXES.iter().any(|s| family.ends_with(s)) => family.push_str("_value"),
        None => {}
    }
    (family, unit, m.value * factor)
}

/// Sample-name suffixes OpenMetrics gives meaning to (counter, histogram, summary, info).
pub const RESERVED_SUFFIXES: [&str; 8] = [
    "_total", "_created", "_count", "_sum", "_bucket", "_gcount", "_gsum", "_info",
];

/// Lower snake case of `[a-z0-9_]`, never starting with a digit or `_`.
fn sanitize(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('_') {
            out.push('_');
        }
    }
    let out = out.trim_matches('_').to_string();
    match out.chars().next() {
        Some(c) if c.is_ascii_digit() => format!("m_{out}"),
        _ => out,
    }
}

fn escape_label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn escape_help(v: &str) -> String {
    v.replace('\\', "\\\\").replace('\n', "\\n")
}

/// A value as OpenMetrics writes numbers (`+Inf`, `-Inf`, `NaN`).
fn number(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v == f64::INFINITY {
        "+Inf".into()
    } else if v == f64::NEG_INFINITY {
        "-Inf".into()
    } else {
        format!("{v}")
    }
}
