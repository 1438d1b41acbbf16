//! `report.html`: one self-contained page — inline CSS, inline SVG, no script, no font, no
//! URL — that a person reads at a glance: the verdict, what to fix, a table per phase, and
//! each scenario's message, evidence, findings, remediation and metrics; a scenario that put
//! marks on the timeline gets an SVG of them beside its metrics.
//!
//! Written with maud: every text that came from a scenario, a lab or a user is escaped.

use maud::{DOCTYPE, Markup, PreEscaped, html};

use super::timeline::{self, Timeline};
use crate::runner::{RunRecord, ScenarioRecord};
use crate::scenario::Verdict;

pub fn render(r: &RunRecord) -> String {
    let headline = super::headline(r);
    let worst = r.worst().unwrap_or(Verdict::Skip);
    let page = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { "clusterproof " (headline) " — " (r.lab) }
                style { (PreEscaped(CSS)) }
            }
            body {
                header class={ "verdict " (vclass(worst)) } {
                    h1 { "clusterproof: " (headline) }
                    p class="counts" { (super::counts(&r.scenarios)) }
                    p class="command" { code { (r.command) } " on lab " strong { (r.lab) } }
                }
                @if let Some(reason) = &r.interrupted {
                    p class="interrupted" { "The run was interrupted: " (reason) ". Unfinished checks are reported as errors." }
                }
                @for n in &r.notices {
                    p class="notice" { strong { "Notice: " } (n) }
                }
                (fixes(r))
                @for (phase, scs) in super::phases(r) {
                    @let pv = super::phase_verdict(&scs);
                    section class="phase" id={ "phase-" (phase.as_str()) } {
                        h2 { (phase.as_str()) " " (badge(pv)) span class="phase-counts" { (super::counts(scs.iter().copied())) } }
                        table class="scenarios" {
                            thead { tr { th { "verdict" } th { "scenario" } th { "result" } th { "proves" } th class="num" { "time" } } }
                            tbody {
                                @for sc in &scs {
                                    tr class={ "scenario " (vclass(sc.outcome.verdict)) } id={ "scenario-" (sc.id) } data-scenario=(sc.id) data-verdict=(sc.outcome.verdict.as_str()) {
                                        td { (badge(sc.outcome.verdict)) }
                                        td { code { (sc.id) } }
                                        td { (sc.outcome.message) }
                                        td class="proves" { (sc.proves) }
                                        td class="num" { (format!("{:.2}s", sc.outcome.duration.as_secs_f64())) }
                                    }
                                }
                            }
                        }
                        @for sc in &scs {
                            (detail(r, sc))
                        }
                    }
                }
                (facts(r))
            }
        }
    };
    page.into_string()
}

/// "What to fix": every scenario that failed, errored or warned, failures first.
fn fixes(r: &RunRecord) -> Markup {
    let todo = super::needing_attention(r);
    html! {
        @if !todo.is_empty() {
            section class="fix" {
                h2 { "What to fix" }
                ol {
                    @for sc in todo {
                        li class={ "fix-item " (vclass(sc.outcome.verdict)) } {
                            (badge(sc.outcome.verdict)) " "
                            a href={ "#scenario-" (sc.id) } { code { (sc.id) } }
                            ": " (sc.outcome.message)
                            @if let Some(rem) = &sc.outcome.remediation {
                                p class="remediation" { strong { "Remediation: " } (rem) }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// A scenario's details: open when it needs attention or has a timeline.
fn detail(r: &RunRecord, sc: &ScenarioRecord) -> Markup {
    let o = &sc.outcome;
    let tl = timeline::build(r, sc);
    let open = tl.is_some() || !matches!(o.verdict, Verdict::Pass | Verdict::Skip);
    let has_detail = tl.is_some()
        || o.remediation.is_some()
        || !o.findings.is_empty()
        || !o.evidence.is_empty()
        || !o.metrics.is_empty();
    if !has_detail {
        // The table row says it all.
        return html! {};
    }
    html! {
        details class={ "detail " (vclass(o.verdict)) } id={ "detail-" (sc.id) } open[open] {
            summary { (badge(o.verdict)) " " code { (sc.id) } " — " (o.message) }
            p class="proves" { "Proves: " (sc.proves) }
            @if let Some(rem) = &o.remediation {
                p class="remediation" { strong { "Remediation: " } (rem) }
            }
            @if !o.findings.is_empty() {
                h4 { "Findings" }
                table class="findings" {
                    thead { tr { th { "where" } th { "severity" } th { "rule" } th { "problem" } th { "fix" } } }
                    tbody {
                        @for f in &o.findings {
                            tr class={ "finding sev-" (f.severity) } {
                                td { code { (f.location) } }
                                td { (f.severity) }
                                td { code { (f.rule) } }
                                td { (f.message) }
                                td { (f.fix) }
                            }
                        }
                    }
                }
            }
            @if !o.evidence.is_empty() {
                h4 { "Evidence" }
                ul class="evidence" { @for e in &o.evidence { li { (e) } } }
            }
            @match &tl {
                Some(t) => {
                    div class="timeline-row" {
                        figure class="timeline" {
                            (svg(t))
                            figcaption { "Timeline of " code { (sc.id) } ", seconds since it started. Bars: time a lane was down or degraded; ticks: failed probes; dots: other marks (hover for details)." }
                        }
                        (metrics(sc))
                    }
                }
                None => { (metrics(sc)) }
            }
        }
    }
}

fn metrics(sc: &ScenarioRecord) -> Markup {
    html! {
        @if !sc.outcome.metrics.is_empty() {
            table class="metrics" {
                thead { tr { th { "metric" } th class="num" { "value" } } }
                tbody {
                    @for (name, m) in &sc.outcome.metrics {
                        tr class="metric" data-metric=(name) {
                            td { code { (name) } }
                            td class="num" title={ (m.value) " " (m.unit) } { (super::metric_text(m)) }
                        }
                    }
                }
            }
        }
    }
}

/// Geometry of the timeline drawing, in SVG user units.
const LABEL_W: f64 = 110.0;
const PLOT_W: f64 = 640.0;
const LANE_H: f64 = 26.0;
const AXIS_H: f64 = 24.0;

fn svg(t: &Timeline) -> Markup {
    let height = LANE_H * t.lanes.len() as f64 + AXIS_H;
    let width = LABEL_W + PLOT_W + 16.0;
    let x = |secs: f64| LABEL_W + (secs / t.length).clamp(0.0, 1.0) * PLOT_W;
    let axis_y = LANE_H * t.lanes.len() as f64;
    html! {
        svg class="timeline" xmlns="http://www.w3.org/2000/svg" role="img"
            viewBox={ "0 0 " (n(width)) " " (n(height)) } width=(n(width)) height=(n(height)) {
            title { "Timeline: " (t.lanes.len()) " lane(s) over " (format!("{:.2}", t.length)) " s" }
            @for (i, row) in t.lanes.iter().enumerate() {
                @let y = LANE_H * i as f64;
                g class={ "lane lane-" (row.lane.as_str()) } data-lane=(row.lane.as_str()) {
                    rect class="lane-bg" x=(n(LABEL_W)) y=(n(y + 3.0)) width=(n(PLOT_W)) height=(n(LANE_H - 6.0)) {}
                    text class="lane-label" x="4" y=(n(y + LANE_H / 2.0 + 4.0)) { (row.lane.as_str()) }
                    @for s in &row.spans {
                        @let open = if s.closed_by.is_none() { " open" } else { "" };
                        rect class={ "span " (s.state.as_str()) (open) }
                            x=(n(x(s.from))) y=(n(y + 5.0)) width=(n((x(s.to) - x(s.from)).max(1.5))) height=(n(LANE_H - 10.0)) {
                            title {
                                (s.label) " at " (secs(s.from))
                                @match &s.closed_by {
                                    Some(c) => { " → " (c) " at " (secs(s.to)) " (" (secs(s.to - s.from)) ")" }
                                    None => { " — not back up when the scenario ended" }
                                }
                            }
                        }
                        @if s.closed_by.is_none() {
                            text class="open-label" x=(n(LABEL_W + PLOT_W - 4.0)) y=(n(y + LANE_H / 2.0 + 4.0)) { "still " (s.state.as_str()) }
                        }
                    }
                    @for p in &row.ticks {
                        line class="tick down" x1=(n(x(p.t))) x2=(n(x(p.t))) y1=(n(y + 4.0)) y2=(n(y + LANE_H - 4.0)) {
                            title { (p.label) " at " (secs(p.t)) }
                        }
                    }
                    @for p in &row.points {
                        circle class={ "mark " (p.state.as_str()) } cx=(n(x(p.t))) cy=(n(y + LANE_H / 2.0)) r="4" {
                            title { (p.label) " at " (secs(p.t)) }
                        }
                    }
                }
            }
            g class="axis" {
                line class="axis-line" x1=(n(LABEL_W)) x2=(n(LABEL_W + PLOT_W)) y1=(n(axis_y + 2.0)) y2=(n(axis_y + 2.0)) {}
                @for s in timeline::axis(t.length) {
                    line class="axis-tick" x1=(n(x(s))) x2=(n(x(s))) y1=(n(axis_y + 2.0)) y2=(n(axis_y + 6.0)) {}
                    text class="axis-label" x=(n(x(s))) y=(n(axis_y + 18.0)) { (axis_label(s)) }
                }
            }
        }
    }
}

/// A coordinate, short.
fn n(v: f64) -> String {
    format!("{v:.1}")
}

fn secs(v: f64) -> String {
    format!("{v:.2} s")
}

fn axis_label(v: f64) -> String {
    if v >= 1.0 || v == 0.0 {
        format!("{v}s")
    } else {
        format!("{:.0}ms", v * 1000.0)
    }
}

/// Run facts, last: what was run, where, when, from which inputs.
fn facts(r: &RunRecord) -> Markup {
    html! {
        section class="facts" {
            h2 { "Run" }
            dl {
                dt { "run id" } dd { code { (r.run_id) } }
                dt { "command" } dd { code { (r.command) } }
                dt { "lab" } dd { (r.lab) }
                dt { "started" } dd { time { (r.started) } }
                dt { "finished" } dd { time { (r.finished) } }
                dt { "duration" } dd { (format!("{:.2}s", r.duration_secs)) }
                dt { "exit code" } dd { (r.exit_code) }
                dt { "inputs" } dd { ul class="inputs" { @for i in &r.inputs { li { code { (i) } } } } }
            }
        }
    }
}

fn badge(v: Verdict) -> Markup {
    html! { span class={ "badge " (vclass(v)) } { (v.as_str().to_uppercase()) } }
}

fn vclass(v: Verdict) -> &'static str {
    match v {
        Verdict::Pass => "v-pass",
        Verdict::Skip => "v-skip",
        Verdict::Warn => "v-warn",
        Verdict::Fail => "v-fail",
        Verdict::Error => "v-error",
    }
}

/// The page's only style. System fonts only: nothing is fetched.
const CSS: &str = r#"
:root { --pass:#1a7f37; --warn:#9a6700; --fail:#cf222e; --error:#8250df; --skip:#6e7781; --line:#d0d7de; --bg2:#f6f8fa; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color:#1f2328; margin:0 auto; padding:16px 24px 48px; max-width:1200px; }
code { font-family: ui-monospace, "SFMono-Regular", Menlo, Consolas, monospace; font-size:0.92em; }
header.verdict { border-left:8px solid var(--skip); background:var(--bg2); padding:10px 16px; margin-bottom:16px; }
header.verdict h1 { margin:0 0 4px; font-size:24px; }
header.verdict p { margin:2px 0; }
header.v-pass { border-color:var(--pass); } header.v-pass h1 { color:var(--pass); }
header.v-warn { border-color:var(--warn); } header.v-warn h1 { color:var(--warn); }
header.v-fail { border-color:var(--fail); } header.v-fail h1 { color:var(--fail); }
header.v-error { border-color:var(--error); } header.v-error h1 { color:var(--error); }
.counts { font-weight:600; }
.notice, .interrupted { background:#fff8c5; border:1px solid #d4a72c; padding:6px 10px; border-radius:4px; }
.badge { display:inline-block; min-width:48px; text-align:center; font-size:11px; font-weight:700; color:#fff; border-radius:10px; padding:1px 8px; background:var(--skip); vertical-align:middle; }
.badge.v-pass { background:var(--pass); } .badge.v-warn { background:var(--warn); } .badge.v-fail { background:var(--fail); } .badge.v-error { background:var(--error); }
section.fix { border:2px solid var(--fail); border-radius:6px; padding:4px 16px 8px; margin:16px 0; }
section.fix h2 { color:var(--fail); }
.fix-item { margin:6px 0; }
.remediation { margin:4px 0 8px; }
h2 { font-size:18px; margin:20px 0 8px; }
.phase-counts { font-size:13px; font-weight:400; color:#57606a; margin-left:8px; }
table { border-collapse:collapse; width:100%; margin:6px 0 10px; }
th, td { border:1px solid var(--line); padding:4px 8px; text-align:left; vertical-align:top; }
th { background:var(--bg2); font-weight:600; }
td.num, th.num { text-align:right; white-space:nowrap; }
td.proves { color:#57606a; font-size:12px; }
tr.v-fail td:first-child, tr.v-error td:first-child { box-shadow: inset 4px 0 var(--fail); }
tr.v-warn td:first-child { box-shadow: inset 4px 0 var(--warn); }
tr.v-skip { color:#6e7781; }
details.detail { border:1px solid var(--line); border-radius:6px; padding:6px 12px; margin:6px 0; }
details.detail > summary { cursor:pointer; }
details.v-fail, details.v-error { border-color:var(--fail); }
details.v-warn { border-color:var(--warn); }
tr.sev-error td:nth-child(2) { color:var(--fail); font-weight:600; }
tr.sev-warning td:nth-child(2) { color:var(--warn); font-weight:600; }
.timeline-row { display:flex; flex-wrap:wrap; gap:16px; align-items:flex-start; }
.timeline-row table.metrics { width:auto; min-width:260px; }
figure.timeline { margin:0; }
figcaption { font-size:12px; color:#57606a; max-width:766px; }
svg.timeline { background:#fff; border:1px solid var(--line); }
svg .lane-bg { fill:var(--bg2); }
svg .lane-label { font:12px ui-monospace, Menlo, Consolas, monospace; fill:#1f2328; }
svg .span.down { fill:var(--fail); opacity:0.75; }
svg .span.degraded { fill:var(--warn); opacity:0.75; }
svg .span.open { opacity:0.45; }
svg .open-label { font:11px system-ui, sans-serif; fill:#fff; font-weight:700; text-anchor:end; }
svg .tick { stroke:var(--fail); stroke-width:2; }
svg .mark { stroke:#fff; stroke-width:1; }
svg .mark.up { fill:var(--pass); } svg .mark.down { fill:var(--fail); } svg .mark.degraded { fill:var(--warn); } svg .mark.info { fill:#0969da; }
svg .axis-line, svg .axis-tick { stroke:#57606a; stroke-width:1; }
svg .axis-label { font:11px system-ui, sans-serif; fill:#57606a; text-anchor:middle; }
section.facts dl { display:grid; grid-template-columns:max-content 1fr; gap:2px 16px; }
section.facts dt { font-weight:600; }
section.facts dd { margin:0; }
ul.inputs { margin:0; padding-left:18px; }
"#;
