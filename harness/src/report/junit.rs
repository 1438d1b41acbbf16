//! `junit.xml`: one `<testsuite>` per phase, one `<testcase>` per scenario; metrics and run
//! facts as properties, evidence and findings in `<system-out>`.
//!
//! Written with quick-junit (the writer nextest uses): it escapes text and strips ANSI and
//! control characters, so the XML stays valid whatever a scenario observed. junit-report was
//! rejected because it writes such text unsanitised into CDATA (`shared/reference/rust-stack.md` §3).

use std::time::Duration;

use quick_junit::{NonSuccessKind, Property, Report, TestCase, TestCaseStatus, TestSuite};

use super::ReportError;
use crate::runner::{RunRecord, ScenarioRecord};
use crate::scenario::{Phase, Verdict};

pub fn render(record: &RunRecord) -> Result<String, ReportError> {
    let mut report = Report::new("clusterproof");
    let started = chrono::DateTime::parse_from_rfc3339(&record.started).ok();
    if let Some(ts) = started {
        report.set_timestamp(ts);
    }
    report.set_time(Duration::from_secs_f64(record.duration_secs.max(0.0)));
    for phase in Phase::ALL {
        let cases: Vec<&ScenarioRecord> = record
            .scenarios
            .iter()
            .filter(|s| s.phase == phase)
            .collect();
        if cases.is_empty() {
            continue;
        }
        let mut suite = TestSuite::new(phase.as_str());
        suite.add_property(Property::new("run-id", record.run_id.as_str()));
        suite.add_property(Property::new("lab", record.lab.as_str()));
        suite.add_property(Property::new("command", record.command.as_str()));
        for n in &record.notices {
            suite.add_property(Property::new("notice", n.as_str()));
        }
        if let Some(reason) = &record.interrupted {
            suite.add_property(Property::new("interrupted", reason.as_str()));
        }
        if let Some(ts) = started {
            suite.set_timestamp(ts);
        }
        suite.set_time(
            cases
                .iter()
                .map(|c| c.outcome.duration)
                .max()
                .unwrap_or_default(),
        );
        for s in cases {
            suite.add_test_case(case(s));
        }
        report.add_test_suite(suite);
    }
    report
        .to_string()
        .map_err(|e| ReportError::Junit(e.to_string()))
}

fn case(s: &ScenarioRecord) -> TestCase {
    let o = &s.outcome;
    let status = match o.verdict {
        Verdict::Pass | Verdict::Warn => TestCaseStatus::success(),
        Verdict::Skip => {
            let mut st = TestCaseStatus::skipped();
            st.set_message(o.message.as_str());
            st
        }
        Verdict::Fail | Verdict::Error => {
            let kind = if o.verdict == Verdict::Fail {
                NonSuccessKind::Failure
            } else {
                NonSuccessKind::Error
            };
            let mut st = TestCaseStatus::non_success(kind);
            st.set_message(o.message.as_str())
                .set_type(o.verdict.as_str());
            if let Some(r) = &o.remediation {
                st.set_description(format!("remediation: {r}"));
            }
            st
        }
    };
    let mut tc = TestCase::new(s.id.as_str(), status);
    tc.set_classname(s.phase.as_str());
    tc.set_time(o.duration);
    tc.add_property(Property::new("verdict", o.verdict.as_str()));
    tc.add_property(Property::new("proves", s.proves.as_str()));
    for (name, m) in &o.metrics {
        tc.add_property(Property::new(
            format!("metric:{name}"),
            format!("{} {}", m.value, m.unit),
        ));
    }
    tc.set_system_out(system_out(s));
    tc
}

fn system_out(s: &ScenarioRecord) -> String {
    let o = &s.outcome;
    let mut out = format!("{}: {}\n", o.verdict, o.message);
    for e in &o.evidence {
        out.push_str(&format!("evidence: {e}\n"));
    }
    for f in &o.findings {
        out.push_str(&format!("{f}\n"));
    }
    if let Some(r) = &o.remediation {
        out.push_str(&format!("remediation: {r}\n"));
    }
    out
}
