//! Reports of a run with a chaos timeline: the record keeps the marks a scenario emits
//! through its `Emitter`; `report.html` is self-contained, escapes what scenarios observed,
//! draws lanes, spans, ticks and dots, and a headless Chromium sees the scenario rows and
//! the SVG in its DOM; `metrics.prom` is OpenMetrics a real parser accepts, with names as
//! the spec wants; `summary.md` and the HTML's structure are snapshotted; `result.json`
//! reads back into the same reports.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use harness::events::{Event, EventBus, EventKind, Lane, MarkState, ScenarioInfo};
use harness::report::{self, html, metrics, summary};
use harness::runner::{self, Recorder, RunOptions, RunRecord};
use harness::scenario::{Context, Lab, Meta, Need, Outcome, Phase, Scenario, Verdict};
use harness::source::{Finding, Location};
use harness::spec::{LabSpec, Overrides};

// ---- a run, event by event, at chosen times ---------------------------------------------

struct Script {
    events: Vec<Event>,
}

impl Script {
    fn new() -> Self {
        Script { events: Vec::new() }
    }

    fn at(&mut self, t: f64, kind: EventKind) -> &mut Self {
        let seq = self.events.len() as u64;
        // A fixed wall clock: 2026-11-24T08:15:03Z plus t.
        let wall = chrono::DateTime::from_timestamp_millis(1_795_508_103_000 + (t * 1000.0) as i64)
            .unwrap()
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        self.events.push(Event { seq, t, wall, kind });
        self
    }

    fn mark(
        &mut self,
        t: f64,
        scenario: &str,
        lane: Lane,
        state: MarkState,
        label: &str,
    ) -> &mut Self {
        self.at(
            t,
            EventKind::Mark {
                scenario: scenario.into(),
                lane,
                state,
                label: label.into(),
            },
        )
    }

    fn scenario(
        &mut self,
        t: f64,
        id: &str,
        phase: Phase,
        proves: &str,
        outcome: Outcome,
    ) -> &mut Self {
        let start = t - outcome.duration.as_secs_f64();
        self.at(
            start,
            EventKind::ScenarioStarted {
                id: id.into(),
                phase,
            },
        );
        self.at(
            t,
            EventKind::ScenarioFinished {
                id: id.into(),
                phase,
                proves: proves.into(),
                outcome,
            },
        )
    }
}

fn outcome(verdict: Verdict, message: &str, secs: f64) -> Outcome {
    let mut o = Outcome::new(verdict, message);
    o.duration = Duration::from_secs_f64(secs);
    o
}

const NODE: &str = "chaos::node_failure";
const STUCK: &str = "chaos::node_never_recovers";

/// A run of five scenarios: a warning with a finding whose text needs escaping, a pass
/// with a metric, a verified cluster, a node failure that recovered and one that did not.
fn chaos_run() -> RunRecord {
    let mut s = Script::new();
    let info = |id: &str, phase| ScenarioInfo {
        id: id.into(),
        phase,
        proves: "p".into(),
    };
    s.at(
        0.0,
        EventKind::RunStarted {
            run_id: "20261124T081503Z-3fa2".into(),
            command: "clusterproof run (twin)".into(),
            lab: "twin".into(),
            inputs: vec!["lab.toml".into(), "clusters/talos-prod-01.yaml".into()],
            scenarios: vec![
                info("preflight::template", Phase::Preflight),
                info("preflight::ram_budget", Phase::Preflight),
                info("dod::all_nodes_ready", Phase::Verify),
                info(NODE, Phase::Chaos),
                info(STUCK, Phase::Chaos),
            ],
        },
    );
    s.at(
        0.0,
        EventKind::Notice {
            message: "TLS verification is disabled for <proxmox>".into(),
        },
    );
    s.at(
        0.001,
        EventKind::PhaseStarted {
            phase: Phase::Preflight,
        },
    );
    let file = Arc::new(std::path::PathBuf::from("clusters/talos-prod-01.yaml"));
    let mut warn = outcome(
        Verdict::Warn,
        "1 warning(s): label <script>alert(\"x\")</script> & more",
        0.02,
    );
    warn.findings.push(
        Finding::warning(
            "template.node-labels",
            Location::new(&file, 12, 7),
            "nodeLabels key `node-role.kubernetes.io/<worker>` is NodeRestriction-protected",
        )
        .fix("use a key outside kubernetes.io & k8s.io"),
    );
    warn.evidence.push("checked 3 documents".into());
    warn.remediation = Some("drop the protected label; \"kubectl label\" it after join".into());
    s.scenario(
        0.03,
        "preflight::template",
        Phase::Preflight,
        "Constraint: CNI disabled",
        warn,
    );
    s.scenario(
        0.05,
        "preflight::ram_budget",
        Phase::Preflight,
        "Risk: VM creation exhausts resources",
        outcome(Verdict::Pass, "5 VM(s), 56.0 GiB planned", 0.04).metric(
            "planned_memory",
            60_129_542_144.0,
            "bytes",
        ),
    );
    s.at(
        0.06,
        EventKind::PhaseStarted {
            phase: Phase::Verify,
        },
    );
    s.scenario(
        0.09,
        "dod::all_nodes_ready",
        Phase::Verify,
        "kubectl get nodes shows all 5 nodes Ready",
        outcome(Verdict::Pass, "5 of 5 nodes Ready", 0.03),
    );
    s.at(
        0.1,
        EventKind::PhaseStarted {
            phase: Phase::Chaos,
        },
    );
    // The chaos scenarios start at 0.1 s and each runs for 10 s.
    s.at(
        0.1,
        EventKind::ScenarioStarted {
            id: NODE.into(),
            phase: Phase::Chaos,
        },
    );
    s.at(
        0.1,
        EventKind::ScenarioStarted {
            id: STUCK.into(),
            phase: Phase::Chaos,
        },
    );
    s.at(
        0.2,
        EventKind::Observation {
            scenario: NODE.into(),
            message: "victim w1 on golf".into(),
            data: serde_json::Value::Null,
        },
    );
    s.mark(
        0.3,
        NODE,
        Lane::Vm,
        MarkState::Info,
        "victim: VM 104 (w1) on golf",
    );
    s.mark(1.1, NODE, Lane::Vm, MarkState::Down, "VM 104 stopped");
    s.mark(
        1.6,
        NODE,
        Lane::Omni,
        MarkState::Down,
        "machine w1 disconnected",
    );
    s.mark(
        2.1,
        NODE,
        Lane::ApiProbe,
        MarkState::Down,
        "GET /readyz: connection reset",
    );
    s.mark(
        2.4,
        NODE,
        Lane::CanaryProbe,
        MarkState::Down,
        "canary via w1: 503",
    );
    s.mark(
        2.6,
        NODE,
        Lane::CanaryProbe,
        MarkState::Down,
        "canary via w1: 503",
    );
    s.mark(3.1, NODE, Lane::Node, MarkState::Down, "node w1 NotReady");
    s.mark(
        4.0,
        NODE,
        Lane::Pods,
        MarkState::Degraded,
        "2 pods evicted from w1",
    );
    s.mark(
        5.0,
        NODE,
        Lane::Pods,
        MarkState::Up,
        "2 pods replaced on w2",
    );
    s.mark(6.1, NODE, Lane::Vm, MarkState::Up, "VM 104 started");
    s.mark(7.0, NODE, Lane::Omni, MarkState::Up, "machine w1 connected");
    s.mark(8.2, NODE, Lane::Node, MarkState::Up, "node w1 Ready");
    s.mark(1.2, STUCK, Lane::Vm, MarkState::Down, "VM 105 stopped");
    s.mark(3.3, STUCK, Lane::Node, MarkState::Down, "node w2 NotReady");
    s.at(
        10.1,
        EventKind::ScenarioFinished {
            id: NODE.into(),
            phase: Phase::Chaos,
            proves: "Cluster survives single node failure".into(),
            outcome: outcome(
                Verdict::Pass,
                "w1 recovered: Ready 8.2 s after the stop",
                10.0,
            )
            .metric("time_to_detect", 2.0, "s")
            .metric("time_to_recover", 7.1, "s")
            .metric("api_availability", 99.5, "%"),
        },
    );
    s.at(
        10.1,
        EventKind::ScenarioFinished {
            id: STUCK.into(),
            phase: Phase::Chaos,
            proves: "Cluster survives single node failure".into(),
            outcome: outcome(
                Verdict::Fail,
                "node w2 not Ready 10 s after the VM was started",
                10.0,
            )
            .remediation("check the VM's console in Proxmox: the node never rejoined")
            .evidence("VM 105 running, node w2 NotReady"),
        },
    );
    s.at(10.2, EventKind::RunFinished { exit_code: 1 });
    RunRecord::from_events(&s.events)
}

// ---- the record keeps what scenarios emit ------------------------------------------------

/// A chaos-like scenario that puts marks on the timeline through its `Emitter`.
struct Marker;

static MARKER: Meta = Meta {
    id: "chaos::marker",
    module: module_path!(),
    phase: Phase::Chaos,
    proves: "test",
    needs: &[Need::Spec],
    after: &[],
};

impl Scenario for Marker {
    fn meta(&self) -> &'static Meta {
        &MARKER
    }
    fn run<'a>(&'a self, cx: &'a Context) -> BoxFuture<'a, Outcome> {
        Box::pin(async move {
            cx.events.observe("stopping the VM");
            cx.events.mark(Lane::Vm, MarkState::Down, "VM stopped");
            cx.events.mark(Lane::Node, MarkState::Down, "node NotReady");
            cx.events.mark(Lane::Vm, MarkState::Up, "VM started");
            cx.events.mark(Lane::Node, MarkState::Up, "node Ready");
            Outcome::pass("recovered")
        })
    }
}

#[tokio::test]
async fn the_record_keeps_the_marks_a_scenario_emits() {
    let seed = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/seed/lab.toml");
    let lab = Arc::new(Lab::offline(
        LabSpec::load(&seed, &Overrides::default()).unwrap(),
    ));
    let bus = EventBus::new();
    let rec = Recorder::default();
    bus.subscribe(rec.clone());
    let opts = RunOptions {
        command: "test".into(),
        run_id: "r".into(),
        scenario_timeout: Duration::from_secs(5),
        keep_going: false,
    };
    runner::run(
        lab,
        vec![Arc::new(Marker)],
        &bus,
        &opts,
        std::future::pending(),
    )
    .await;
    let r = rec.record();
    let marks: Vec<(Lane, MarkState, &str)> = r
        .timeline_of("chaos::marker")
        .filter_map(|e| match &e.kind {
            EventKind::Mark {
                lane, state, label, ..
            } => Some((*lane, *state, label.as_str())),
            _ => None,
        })
        .collect();
    assert_eq!(
        marks,
        vec![
            (Lane::Vm, MarkState::Down, "VM stopped"),
            (Lane::Node, MarkState::Down, "node NotReady"),
            (Lane::Vm, MarkState::Up, "VM started"),
            (Lane::Node, MarkState::Up, "node Ready"),
        ]
    );
    let start = r.started_at("chaos::marker").expect("a start event");
    assert!(r.timeline_of("chaos::marker").all(|e| e.t >= start));
    assert!(
        r.timeline
            .windows(2)
            .all(|w| w[0].seq < w[1].seq && w[0].t <= w[1].t)
    );
    // The same marks, drawn: a closed span on each lane.
    let sc = &r.scenarios[0];
    let t = report::timeline::build(&r, sc).expect("a timeline");
    let lanes: Vec<Lane> = t.lanes.iter().map(|l| l.lane).collect();
    assert_eq!(lanes, vec![Lane::Vm, Lane::Node]);
    assert!(
        t.lanes
            .iter()
            .all(|l| l.spans.len() == 1 && l.spans[0].closed_by.is_some())
    );
}

// ---- the timeline model ------------------------------------------------------------------

#[test]
fn spans_run_from_down_to_up_and_probe_failures_are_ticks() {
    let r = chaos_run();
    let sc = r.scenarios.iter().find(|s| s.id == NODE).unwrap();
    let t = report::timeline::build(&r, sc).unwrap();
    assert!((t.length - 10.0).abs() < 1e-9, "{}", t.length);
    let lane = |l: Lane| t.lanes.iter().find(|x| x.lane == l).unwrap();
    let vm = lane(Lane::Vm);
    assert_eq!(vm.spans.len(), 1);
    assert!((vm.spans[0].from - 1.0).abs() < 1e-9 && (vm.spans[0].to - 6.0).abs() < 1e-9);
    assert_eq!(vm.spans[0].closed_by.as_deref(), Some("VM 104 started"));
    assert_eq!(vm.points.len(), 2, "the victim info and the start");
    let pods = lane(Lane::Pods);
    assert_eq!(pods.spans[0].state, MarkState::Degraded);
    assert_eq!(lane(Lane::CanaryProbe).ticks.len(), 2);
    assert!(lane(Lane::CanaryProbe).spans.is_empty());
    assert_eq!(lane(Lane::ApiProbe).ticks.len(), 1);
    // Lanes in their fixed order, only those with marks.
    let order: Vec<Lane> = t.lanes.iter().map(|l| l.lane).collect();
    assert_eq!(
        order,
        vec![
            Lane::Vm,
            Lane::Node,
            Lane::Omni,
            Lane::Pods,
            Lane::ApiProbe,
            Lane::CanaryProbe
        ]
    );
    // A node that never came back: its span stays open to the end of the scenario.
    let stuck = r.scenarios.iter().find(|s| s.id == STUCK).unwrap();
    let t = report::timeline::build(&r, stuck).unwrap();
    let node = t.lanes.iter().find(|l| l.lane == Lane::Node).unwrap();
    assert!(node.spans[0].closed_by.is_none());
    assert!((node.spans[0].to - 10.0).abs() < 1e-9);
    // Scenarios without marks have no timeline.
    let plain = r
        .scenarios
        .iter()
        .find(|s| s.id == "dod::all_nodes_ready")
        .unwrap();
    assert!(report::timeline::build(&r, plain).is_none());
}

// ---- report.html -------------------------------------------------------------------------

/// A minimal tag tree of an HTML document: enough to check nesting and to print an outline.
#[derive(Debug)]
struct Node {
    tag: String,
    attrs: BTreeMap<String, String>,
    text: String,
    children: Vec<Node>,
}

const VOID: [&str; 8] = ["meta", "link", "br", "hr", "img", "input", "source", "wbr"];

fn parse_html(doc: &str) -> Node {
    let mut stack = vec![Node {
        tag: "#root".into(),
        attrs: BTreeMap::new(),
        text: String::new(),
        children: Vec::new(),
    }];
    let mut rest = doc;
    while let Some(lt) = rest.find('<') {
        let text = &rest[..lt];
        if !text.trim().is_empty() {
            let top = stack.last_mut().unwrap();
            top.text.push_str(text);
        }
        rest = &rest[lt..];
        let gt = rest.find('>').expect("unclosed tag");
        let inner = &rest[1..gt];
        rest = &rest[gt + 1..];
        if inner.starts_with('!') {
            continue;
        }
        if let Some(name) = inner.strip_prefix('/') {
            let n = stack.pop().unwrap();
            assert_eq!(n.tag, name.trim(), "mismatched close tag");
            stack.last_mut().unwrap().children.push(n);
            continue;
        }
        let (tag, attrs) = parse_tag(inner);
        let node = Node {
            tag: tag.clone(),
            attrs,
            text: String::new(),
            children: Vec::new(),
        };
        if VOID.contains(&tag.as_str()) {
            stack.last_mut().unwrap().children.push(node);
        } else if tag == "style" {
            // CSS is not structure.
            let end = rest.find("</style>").unwrap();
            rest = &rest[end + "</style>".len()..];
            stack.last_mut().unwrap().children.push(node);
        } else {
            stack.push(node);
        }
    }
    assert_eq!(
        stack.len(),
        1,
        "unclosed elements: {:?}",
        stack.iter().map(|n| &n.tag).collect::<Vec<_>>()
    );
    stack.pop().unwrap()
}

fn parse_tag(inner: &str) -> (String, BTreeMap<String, String>) {
    let inner = inner.trim_end_matches('/');
    let name_end = inner.find(char::is_whitespace).unwrap_or(inner.len());
    let tag = inner[..name_end].to_ascii_lowercase();
    let mut attrs = BTreeMap::new();
    let mut s = inner[name_end..].trim_start();
    while !s.is_empty() {
        let key_end = s.find(['=', ' ']).unwrap_or(s.len());
        let key = s[..key_end].to_string();
        s = &s[key_end..];
        if let Some(after) = s.strip_prefix("=\"") {
            let end = after.find('"').unwrap();
            attrs.insert(key, after[..end].to_string());
            s = after[end + 1..].trim_start();
        } else {
            attrs.insert(key, String::new());
            s = s.trim_start();
        }
    }
    (tag, attrs)
}

impl Node {
    fn walk<'a>(&'a self, path: &mut Vec<&'a Node>, f: &mut dyn FnMut(&'a Node, &[&'a Node])) {
        f(self, path);
        path.push(self);
        for c in &self.children {
            c.walk(path, f);
        }
        path.pop();
    }

    fn has_class(&self, c: &str) -> bool {
        self.attrs
            .get("class")
            .is_some_and(|v| v.split_whitespace().any(|x| x == c))
    }

    /// Every element, with its ancestors.
    fn all(&self) -> Vec<(&Node, Vec<&Node>)> {
        let mut out = Vec::new();
        self.walk(&mut Vec::new(), &mut |n, path| out.push((n, path.to_vec())));
        out
    }

    fn outline(&self, depth: usize, out: &mut String) {
        if self.tag != "#root" {
            let mut line = format!("{}{}", "  ".repeat(depth), self.tag);
            for key in ["id", "class"] {
                if let Some(v) = self.attrs.get(key) {
                    line.push_str(&format!(" {key}={v:?}"));
                }
            }
            for (k, v) in &self.attrs {
                if k.starts_with("data-") || k == "open" {
                    line.push_str(&format!(" {k}={v:?}"));
                }
            }
            let text = self.text.split_whitespace().collect::<Vec<_>>().join(" ");
            if !text.is_empty() && !["svg", "g"].contains(&self.tag.as_str()) {
                line.push_str(&format!(" | {text}"));
            }
            out.push_str(&line);
            out.push('\n');
        }
        for c in &self.children {
            c.outline(depth + usize::from(self.tag != "#root"), out);
        }
    }
}

/// Times, durations and run ids, masked in snapshots.
const MASKS: [(&str, &str); 3] = [
    (r"\d{8}T\d{6}Z-[0-9a-f]{4}", "[RUN-ID]"),
    (
        r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})",
        "[TIME]",
    ),
    (r"\d+\.\d+ ?s\b", "[D]s"),
];

#[test]
fn html_is_self_contained_and_escapes_what_scenarios_said() {
    let page = html::render(&chaos_run());
    assert!(page.starts_with("<!DOCTYPE html>"));
    for forbidden in [
        "<script", "<link", "src=", "url(", "@import", "http://", "https://",
    ] {
        let hit = page
            .match_indices(forbidden)
            .find(|(i, _)| !page[..*i].ends_with("xmlns=\""));
        assert!(
            hit.is_none(),
            "report.html must not load anything: found {forbidden:?}"
        );
    }
    assert!(page.contains("label &lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; more"));
    assert!(page.contains("TLS verification is disabled for &lt;proxmox&gt;"));
    assert!(page.contains("node-role.kubernetes.io/&lt;worker&gt;"));
}

#[test]
fn html_draws_the_timeline_beside_its_metrics() {
    let r = chaos_run();
    let doc = parse_html(&html::render(&r));
    let all = doc.all();
    // One row per scenario, inside a phase's table.
    for sc in &r.scenarios {
        let (row, path) = all
            .iter()
            .find(|(n, _)| n.tag == "tr" && n.attrs.get("data-scenario") == Some(&sc.id))
            .unwrap_or_else(|| panic!("no row for {}", sc.id));
        assert_eq!(row.attrs["data-verdict"], sc.outcome.verdict.as_str());
        assert!(
            path.iter()
                .any(|a| a.tag == "table" && a.has_class("scenarios"))
        );
    }
    // Exactly the two chaos scenarios have an SVG, each next to its metrics table.
    let svgs: Vec<_> = all.iter().filter(|(n, _)| n.tag == "svg").collect();
    assert_eq!(svgs.len(), 2);
    let details: BTreeSet<&str> = svgs
        .iter()
        .map(|(_, path)| {
            assert!(path.last().is_some_and(|p| p.tag == "figure"));
            assert!(
                path.iter()
                    .rev()
                    .nth(1)
                    .is_some_and(|p| p.has_class("timeline-row"))
            );
            path.iter().find(|a| a.tag == "details").unwrap().attrs["id"].as_str()
        })
        .collect();
    assert_eq!(
        details,
        BTreeSet::from([
            format!("detail-{NODE}").as_str(),
            format!("detail-{STUCK}").as_str()
        ])
    );
    let in_node_svg = |pred: &dyn Fn(&Node) -> bool| {
        all.iter()
            .filter(|(n, path)| {
                pred(n)
                    && path.iter().any(|a| a.tag == "svg")
                    && path.iter().any(|a| {
                        a.attrs.get("id").map(String::as_str) == Some(&format!("detail-{NODE}"))
                    })
            })
            .count()
    };
    assert_eq!(in_node_svg(&|n| n.tag == "g" && n.has_class("lane")), 6);
    assert_eq!(
        in_node_svg(&|n| n.tag == "rect" && n.has_class("span")),
        4,
        "vm, node, omni, pods"
    );
    assert_eq!(in_node_svg(&|n| n.tag == "line" && n.has_class("tick")), 3);
    assert!(
        in_node_svg(&|n| n.tag == "title") >= 10,
        "every mark has a tooltip"
    );
    let metrics_beside = all.iter().any(|(n, path)| {
        n.tag == "table"
            && n.has_class("metrics")
            && path.last().is_some_and(|p| p.has_class("timeline-row"))
    });
    assert!(metrics_beside, "the metrics table sits in the timeline row");
    // The failing scenario is listed under "What to fix", failures first.
    let fixes: Vec<&str> = all
        .iter()
        .filter(|(n, _)| n.tag == "li" && n.has_class("fix-item"))
        .map(|(n, _)| {
            n.children
                .iter()
                .find(|c| c.tag == "a")
                .map(|a| a.attrs["href"].as_str())
                .unwrap()
        })
        .collect();
    assert_eq!(
        fixes,
        vec![
            format!("#scenario-{STUCK}").as_str(),
            "#scenario-preflight::template"
        ]
    );
}

#[test]
fn html_structure_snapshot() {
    let mut outline = String::new();
    parse_html(&html::render(&chaos_run())).outline(0, &mut outline);
    insta::with_settings!({ filters => MASKS.to_vec() }, {
        insta::assert_snapshot!("html-structure", outline);
    });
}

#[test]
fn summary_snapshot() {
    insta::with_settings!({ filters => MASKS.to_vec() }, {
        insta::assert_snapshot!("summary-chaos-run", summary::render(&chaos_run()));
    });
}

/// Headless Chromium loads report.html from disk and its DOM has every scenario row and
/// the timeline's SVG elements. Needs Debian's `chromium`; `CLUSTERPROOF_SKIP_CHROMIUM=1`
/// skips this test explicitly (and says so).
#[test]
fn chromium_renders_the_report() {
    if std::env::var_os("CLUSTERPROOF_SKIP_CHROMIUM").is_some_and(|v| v == "1") {
        eprintln!("SKIPPED: CLUSTERPROOF_SKIP_CHROMIUM=1");
        return;
    }
    let chromium = ["chromium", "chromium-browser"]
        .into_iter()
        .find(|c| {
            std::process::Command::new(c)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
        })
        .unwrap_or_else(|| {
            panic!(
                "headless Chromium is needed to check report.html: `apt-get install -y chromium`, \
                 or set CLUSTERPROOF_SKIP_CHROMIUM=1 to skip this test"
            )
        });
    let r = chaos_run();
    let dir = tempfile::tempdir().unwrap();
    // Kept after the test, to look at: target/tmp/report-chaos-run.html.
    let file = Path::new(env!("CARGO_TARGET_TMPDIR")).join("report-chaos-run.html");
    std::fs::write(&file, html::render(&r)).unwrap();
    let profile = dir.path().join("profile");
    let out = std::process::Command::new("timeout")
        .arg("120")
        .arg(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg("--dump-dom")
        .arg(format!("file://{}", file.display()))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dom = String::from_utf8(out.stdout).unwrap();
    let doc = parse_html(&dom);
    let all = doc.all();
    let rows: BTreeSet<&str> = all
        .iter()
        .filter(|(n, path)| n.tag == "tr" && path.iter().any(|a| a.tag == "tbody"))
        .filter_map(|(n, _)| n.attrs.get("data-scenario").map(String::as_str))
        .collect();
    let ids: BTreeSet<&str> = r.scenarios.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(rows, ids, "the browser's DOM has one row per scenario");
    let in_svg = |tag: &str, class: &str| {
        all.iter()
            .filter(|(n, path)| {
                n.tag == tag && n.has_class(class) && path.iter().any(|a| a.tag == "svg")
            })
            .count()
    };
    assert_eq!(in_svg("g", "lane"), 6 + 2, "lanes of both chaos scenarios");
    assert_eq!(in_svg("rect", "span"), 4 + 2);
    assert_eq!(in_svg("line", "tick"), 3);
    assert_eq!(
        in_svg("circle", "mark"),
        5,
        "the victim and four recoveries"
    );
    assert!(in_svg("text", "axis-label") >= 2);
}

// ---- metrics.prom ------------------------------------------------------------------------

#[test]
fn metrics_prom_is_openmetrics_with_names_as_the_spec_wants() {
    let r = chaos_run();
    let text = metrics::render(&r);
    let parsed = openmetrics_parser::openmetrics::parse_openmetrics(&text)
        .unwrap_or_else(|e| panic!("metrics.prom is not valid OpenMetrics: {e:?}\n{text}"));
    assert!(text.ends_with("# EOF\n"));
    // Names (OpenMetrics 1.0 ABNF and MetricFamily rules): [a-zA-Z_:][a-zA-Z0-9_:]*, no
    // colon (reserved for aggregations), no leading underscore; a unit is the name's suffix.
    let mut names = BTreeSet::new();
    for line in text.lines().filter(|l| l.starts_with("# TYPE ")) {
        let mut parts = line.split(' ').skip(2);
        let name = parts.next().unwrap();
        assert_eq!(parts.next(), Some("gauge"), "{line}");
        assert!(
            name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                && !name.starts_with('_')
                && !name.chars().next().unwrap().is_ascii_digit(),
            "bad metric name {name}"
        );
        assert!(name.starts_with("clusterproof_"), "{name}");
        assert!(
            !metrics::RESERVED_SUFFIXES.iter().any(|s| name.ends_with(s)),
            "{name} ends in a suffix reserved for other types"
        );
        assert!(names.insert(name.to_string()), "{name} declared twice");
        assert!(
            text.lines()
                .any(|l| l.starts_with(&format!("# HELP {name} ")) && l.len() > name.len() + 12),
            "{name} has no HELP"
        );
    }
    for line in text.lines().filter(|l| l.starts_with("# UNIT ")) {
        let mut parts = line.split(' ').skip(2);
        let (name, unit) = (parts.next().unwrap(), parts.next().unwrap());
        assert!(
            name.ends_with(&format!("_{unit}")),
            "{name} does not end in _{unit}"
        );
        assert!(
            ["seconds", "bytes", "ratio"].contains(&unit),
            "{unit} is not a base unit"
        );
    }
    // Label names: [a-zA-Z_][a-zA-Z0-9_]*, not starting with __.
    for fam in parsed.families.values() {
        for l in fam.get_label_names() {
            assert!(
                !l.starts_with("__") && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            );
        }
    }
    let fam = |n: &str| {
        parsed
            .families
            .get(n)
            .unwrap_or_else(|| panic!("no family {n}: {:?}", parsed.families.keys()))
    };
    let value = |n: &str, labels: &[(&str, &str)]| -> f64 {
        fam(n)
            .iter_samples()
            .find(|s| {
                let set = s.get_labelset().unwrap();
                labels
                    .iter()
                    .all(|(k, v)| set.get_label_value(k) == Some(*v))
            })
            .map(|s| match &s.value {
                openmetrics_parser::OpenMetricsValue::Gauge(g) => g.as_f64(),
                other => panic!("{n} is not a gauge: {other:?}"),
            })
            .unwrap_or_else(|| panic!("no sample {n}{labels:?}"))
    };
    assert_eq!(
        value("clusterproof_run_verdict", &[("verdict", "fail")]),
        1.0
    );
    assert_eq!(
        value("clusterproof_run_verdict", &[("verdict", "pass")]),
        0.0
    );
    assert_eq!(value("clusterproof_run_exit_code", &[("lab", "twin")]), 1.0);
    assert!(value("clusterproof_run_timestamp_seconds", &[]) > 1.7e9);
    assert_eq!(
        value(
            "clusterproof_phase_verdict",
            &[("phase", "preflight"), ("verdict", "warn")]
        ),
        1.0
    );
    assert_eq!(
        value(
            "clusterproof_scenario_verdict",
            &[("scenario", STUCK), ("phase", "chaos"), ("verdict", "fail")]
        ),
        1.0
    );
    // Scenario metrics, one family each, in base units.
    assert_eq!(
        value("clusterproof_time_to_detect_seconds", &[("scenario", NODE)]),
        2.0
    );
    assert!(
        (value("clusterproof_api_availability_ratio", &[("scenario", NODE)]) - 0.995).abs() < 1e-12
    );
    assert_eq!(
        value(
            "clusterproof_planned_memory_bytes",
            &[("scenario", "preflight::ram_budget")]
        ),
        60_129_542_144.0
    );
    // No sample carries a timestamp (node-exporter's textfile collector refuses them).
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        assert_eq!(
            line.rsplit('}').next().unwrap().split_whitespace().count(),
            1,
            "{line}"
        );
    }
}

#[test]
fn metric_names_follow_their_units() {
    let m = |unit: &str| harness::scenario::Metric {
        value: 1.0,
        unit: unit.into(),
    };
    let name = |n: &str, u: &str| metrics::metric_family(n, &m(u)).0;
    assert_eq!(
        name("provision_seconds", "s"),
        "clusterproof_provision_seconds"
    );
    assert_eq!(
        name("planned_shared_disk_bytes", "bytes"),
        "clusterproof_planned_shared_disk_bytes"
    );
    assert_eq!(name("detect_ms", "ms"), "clusterproof_detect_seconds");
    assert_eq!(metrics::metric_family("detect_ms", &m("ms")).2, 0.001);
    assert_eq!(
        name("Canary availability", "%"),
        "clusterproof_canary_availability_ratio"
    );
    assert_eq!(
        name("restarts_total", ""),
        "clusterproof_restarts_total_value"
    );
    assert_eq!(name("run_verdict", ""), "clusterproof_metric_run_verdict");
    assert_eq!(name("pods", "count"), "clusterproof_pods");
}

// ---- result.json reads back ---------------------------------------------------------------

#[test]
fn result_json_reads_back_into_the_same_reports() {
    let r = chaos_run();
    let json = serde_json::to_string_pretty(&r).unwrap();
    let back: RunRecord = serde_json::from_str(&json).unwrap();
    assert_eq!(summary::render(&back), summary::render(&r));
    assert_eq!(html::render(&back), html::render(&r));
    assert_eq!(metrics::render(&back), metrics::render(&r));
    assert_eq!(
        report::junit::render(&back).unwrap(),
        report::junit::render(&r).unwrap()
    );
    assert_eq!(serde_json::to_string_pretty(&back).unwrap(), json);
}
