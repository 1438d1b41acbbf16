//! `summary.md`: Markdown that fits a CI step summary and reads at a glance — the verdict
//! line, what to fix (failures first, each with its remediation, findings and evidence),
//! then one table per phase with the scenarios that need attention on top.

use super::{counts, headline, needing_attention, phase_verdict, phases};
use crate::runner::RunRecord;
use crate::scenario::Verdict;

pub fn render(r: &RunRecord) -> String {
    let mut s = String::new();
    let worst = if r.interrupted.is_some() {
        Verdict::Error
    } else {
        r.worst().unwrap_or(Verdict::Skip)
    };
    s.push_str(&format!(
        "# {} clusterproof: {}\n\n",
        symbol(worst),
        headline(r)
    ));
    s.push_str(&format!("**{}**\n\n", counts(&r.scenarios)));
    s.push_str(&format!(
        "`{}` on lab `{}` · run `{}` · {:.2}s · exit code {}\n\n",
        r.command, r.lab, r.run_id, r.duration_secs, r.exit_code
    ));
    if let Some(reason) = &r.interrupted {
        s.push_str(&format!(
            "> **Interrupted:** {}. Unfinished checks are reported as errors.\n\n",
            md(reason)
        ));
    }
    for n in &r.notices {
        s.push_str(&format!("> **Notice:** {}\n\n", md(n)));
    }
    let todo = needing_attention(r);
    if !todo.is_empty() {
        s.push_str("## What to fix\n");
        for sc in todo {
            let o = &sc.outcome;
            s.push_str(&format!(
                "\n### {} `{}` — {}\n\n{}\n",
                symbol(o.verdict),
                sc.id,
                o.verdict.as_str().to_uppercase(),
                md(&o.message)
            ));
            if let Some(rem) = &o.remediation {
                s.push_str(&format!("\n**Remediation:** {}\n", md(rem)));
            }
            if !o.findings.is_empty() || !o.evidence.is_empty() {
                s.push('\n');
            }
            for f in &o.findings {
                s.push_str(&format!(
                    "- `{}` {} [{}]: {}",
                    f.location,
                    f.severity,
                    f.rule,
                    md(&f.message)
                ));
                if !f.fix.is_empty() {
                    s.push_str(&format!(" — fix: {}", md(&f.fix)));
                }
                s.push('\n');
            }
            for e in &o.evidence {
                s.push_str(&format!("- evidence: {}\n", md(e)));
            }
        }
        s.push('\n');
    }
    for (phase, scs) in phases(r) {
        let pv = phase_verdict(&scs);
        // A phase skipped whole, for one reason: one line, not a table of the same reason.
        let first = &scs[0].outcome.message;
        if pv == Verdict::Skip && scs.iter().all(|sc| &sc.outcome.message == first) {
            let ids: Vec<String> = scs.iter().map(|sc| format!("`{}`", sc.id)).collect();
            s.push_str(&format!(
                "## {} {phase} — {} skipped\n\n{}: {}\n\n",
                symbol(pv),
                scs.len(),
                md(first),
                ids.join(", ")
            ));
            continue;
        }
        s.push_str(&format!(
            "## {} {phase} — {}\n\n",
            symbol(pv),
            counts(scs.iter().copied())
        ));
        s.push_str("| | scenario | result | proves | time |\n|---|---|---|---|---:|\n");
        for sc in scs {
            s.push_str(&format!(
                "| {} {} | `{}` | {} | {} | {:.2}s |\n",
                symbol(sc.outcome.verdict),
                sc.outcome.verdict.as_str().to_uppercase(),
                sc.id,
                cell(&sc.outcome.message),
                cell(&sc.proves),
                sc.outcome.duration.as_secs_f64()
            ));
        }
        s.push('\n');
    }
    s
}

/// A verdict's sign, readable in any Markdown renderer.
fn symbol(v: Verdict) -> &'static str {
    match v {
        Verdict::Pass => "✅",
        Verdict::Warn => "⚠️",
        Verdict::Fail => "❌",
        Verdict::Error => "⛔",
        Verdict::Skip => "⏭️",
    }
}

/// Observed text as Markdown shows it: outside `code spans`, `<` and `>` as entities, so a
/// renderer that allows inline HTML (GitHub's) neither hides `<worker>` as a tag nor runs
/// markup; inside them (where entities are not decoded) as they are.
fn md(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut in_code = false;
    for c in text.chars() {
        match c {
            '`' => {
                in_code = !in_code;
                out.push(c);
            }
            '<' if !in_code => out.push_str("&lt;"),
            '>' if !in_code => out.push_str("&gt;"),
            _ => out.push(c),
        }
    }
    out
}

/// Make text safe inside a Markdown table cell.
fn cell(text: &str) -> String {
    md(text).replace('|', "\\|").replace('\n', " ")
}
