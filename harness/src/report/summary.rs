//! `summary.md`: a short Markdown report that fits a CI step summary.

use crate::runner::RunRecord;
use crate::scenario::Verdict;

pub fn render(r: &RunRecord) -> String {
    let mut s = String::new();
    let headline = match r.worst() {
        _ if r.interrupted.is_some() => "INTERRUPTED",
        Some(Verdict::Fail) => "FAILED",
        Some(Verdict::Error) => "COULD NOT EVALUATE",
        Some(Verdict::Warn) => "PASSED WITH WARNINGS",
        Some(Verdict::Pass) => "PASSED",
        Some(Verdict::Skip) | None => "NOTHING EVALUATED",
    };
    s.push_str(&format!("# clusterproof: {headline}\n\n"));
    s.push_str(&format!(
        "Run `{}` of lab `{}` · `{}` · {:.2}s · exit code {}\n\n",
        r.run_id, r.lab, r.command, r.duration_secs, r.exit_code
    ));
    for n in &r.notices {
        s.push_str(&format!("> **Notice:** {n}\n\n"));
    }
    if let Some(reason) = &r.interrupted {
        s.push_str(&format!(
            "> The run was interrupted: {reason}. Unfinished checks are reported as errors.\n\n"
        ));
    }
    s.push_str(&format!(
        "{} passed, {} warned, {} failed, {} errors, {} skipped\n\n",
        r.count(Verdict::Pass),
        r.count(Verdict::Warn),
        r.count(Verdict::Fail),
        r.count(Verdict::Error),
        r.count(Verdict::Skip)
    ));
    s.push_str("| verdict | scenario | result | proves |\n|---|---|---|---|\n");
    for sc in &r.scenarios {
        s.push_str(&format!(
            "| {} | `{}` | {} | {} |\n",
            sc.outcome.verdict.as_str().to_uppercase(),
            sc.id,
            cell(&sc.outcome.message),
            cell(&sc.proves)
        ));
    }
    let with_detail: Vec<_> = r
        .scenarios
        .iter()
        .filter(|sc| !matches!(sc.outcome.verdict, Verdict::Pass | Verdict::Skip))
        .collect();
    if !with_detail.is_empty() {
        s.push_str("\n## What to fix\n");
        for sc in with_detail {
            s.push_str(&format!("\n### `{}` — {}\n\n", sc.id, sc.outcome.verdict));
            for f in &sc.outcome.findings {
                s.push_str(&format!(
                    "- `{}` {} [{}]: {}",
                    f.location, f.severity, f.rule, f.message
                ));
                if !f.fix.is_empty() {
                    s.push_str(&format!(" — fix: {}", f.fix));
                }
                s.push('\n');
            }
            for e in &sc.outcome.evidence {
                s.push_str(&format!("- evidence: {e}\n"));
            }
            if let Some(rem) = &sc.outcome.remediation {
                s.push_str(&format!("\n**Remediation:** {rem}\n"));
            }
        }
    }
    s
}

/// Make text safe inside a Markdown table cell.
fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}
