//! Reports of a real (small) run: `clusterproof run --out DIR` on the bundled lab and on a
//! lab whose template breaks the plan's constraint. junit.xml must be well-formed with
//! matching counts, one testcase per scenario and its properties; summary.md and
//! junit.xml are snapshotted with run-specific values redacted.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn clusterproof() -> Command {
    Command::new(env!("CARGO_BIN_EXE_clusterproof"))
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A copy of the seed lab, with absolute paths, whose template is `template`.
fn lab_with_template(dir: &Path, template: &Path) -> PathBuf {
    let seed = std::fs::read_to_string(root().join("fixtures/seed/lab.toml")).unwrap();
    let classes = root().join("fixtures/seed/machine-classes");
    let lab = seed
        .replace("template = \"clusters/talos-prod-01.yaml\"", &format!("template = {:?}", template.display().to_string()))
        .replace(
            "machine_classes = [\"machine-classes/matrix-control-plane.yaml\", \"machine-classes/matrix-worker.yaml\"]",
            &format!(
                "machine_classes = [{:?}, {:?}]",
                classes.join("matrix-control-plane.yaml").display().to_string(),
                classes.join("matrix-worker.yaml").display().to_string()
            ),
        );
    let path = dir.join("lab.toml");
    std::fs::write(&path, lab).unwrap();
    path
}

fn run(args: &[&str], cwd: &Path) -> Output {
    clusterproof().args(args).current_dir(cwd).output().unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Every scenario `clusterproof run` has, and its suite: read from the catalog.
fn run_cases() -> Vec<(&'static str, &'static str)> {
    scenarios::catalog()
        .iter()
        .map(|s| (s.id(), s.phase().as_str()))
        .collect()
}

/// Well-formed (roxmltree is a strict parser), and what the report claims adds up.
fn check_junit(xml: &str, expected_cases: &[(&str, &str)]) {
    let doc = roxmltree::Document::parse(xml).expect("junit.xml is not well-formed XML");
    let root = doc.root_element();
    assert_eq!(root.tag_name().name(), "testsuites");
    let cases: Vec<_> = root
        .descendants()
        .filter(|n| n.has_tag_name("testcase"))
        .collect();
    assert_eq!(
        cases.len(),
        expected_cases.len(),
        "one testcase per scenario"
    );
    for (id, suite) in expected_cases {
        let c = cases
            .iter()
            .find(|c| c.attribute("name") == Some(id))
            .unwrap_or_else(|| panic!("no testcase {id}"));
        assert_eq!(
            c.parent().and_then(|s| s.attribute("name")),
            Some(*suite),
            "{id} is in the wrong suite"
        );
        let props: Vec<_> = c
            .descendants()
            .filter(|n| n.has_tag_name("property"))
            .filter_map(|p| p.attribute("name"))
            .collect();
        assert!(
            props.contains(&"verdict") && props.contains(&"proves"),
            "{id} properties: {props:?}"
        );
    }
    let count = |tag: &str| {
        cases
            .iter()
            .filter(|c| c.children().any(|ch| ch.has_tag_name(tag)))
            .count()
    };
    let attr =
        |n: roxmltree::Node, a: &str| n.attribute(a).unwrap_or("0").parse::<usize>().unwrap();
    assert_eq!(attr(root, "tests"), cases.len());
    assert_eq!(attr(root, "failures"), count("failure"));
    assert_eq!(attr(root, "errors"), count("error"));
    for suite in root.children().filter(|n| n.has_tag_name("testsuite")) {
        let n = suite
            .children()
            .filter(|c| c.has_tag_name("testcase"))
            .count();
        assert_eq!(
            attr(suite, "tests"),
            n,
            "suite {:?} test count",
            suite.attribute("name")
        );
        let props: Vec<_> = suite
            .descendants()
            .filter(|n| n.has_tag_name("property"))
            .filter_map(|p| p.attribute("name"))
            .collect();
        assert!(
            props.contains(&"run-id") && props.contains(&"lab"),
            "suite properties: {props:?}"
        );
    }
    // quick-junit reads back what it wrote.
    let report = quick_junit::Report::deserialize_from_str(xml)
        .expect("quick-junit cannot read junit.xml back");
    assert_eq!(report.tests, cases.len());
}

/// Run-specific values in reports, masked for snapshots.
fn filters(out: &Path) -> Vec<(String, &'static str)> {
    vec![
        (regex_escape(&out.display().to_string()), "[OUT]"),
        (regex_escape(&root().display().to_string()) + "/", ""),
        // The twin writes the seed lab it serves into its own temporary directory.
        (r"/[^\s`]*/clusterproof-twin-[^/]+/".into(), ""),
        (r"\d{8}T\d{6}Z-[0-9a-f]{4}".into(), "[RUN-ID]"),
        (
            r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})".into(),
            "[TIME]",
        ),
        (r#"time="[0-9.]+""#.into(), r#"time="[T]""#),
        (r"127\.0\.\d+\.\d+:\d+".into(), "[LOOPBACK]"),
        (r"\d+\.\d+s\b".into(), "[D]s"),
    ]
}

fn regex_escape(s: &str) -> String {
    s.chars()
        .flat_map(|c| {
            if "\\.+*?()|[]{}^$".contains(c) {
                vec!['\\', c]
            } else {
                vec![c]
            }
        })
        .collect()
}

#[test]
fn passing_run_writes_every_report() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let o = run(&["run", "--out", out.to_str().unwrap()], &root());
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    for f in [
        "junit.xml",
        "result.json",
        "events.jsonl",
        "summary.md",
        "report.html",
        "metrics.prom",
    ] {
        assert!(out.join(f).is_file(), "{f} missing");
    }
    let xml = std::fs::read_to_string(out.join("junit.xml")).unwrap();
    check_junit(&xml, &run_cases());
    let result: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("result.json")).unwrap()).unwrap();
    assert_eq!(result["exit_code"], 0);
    assert_eq!(
        result["scenarios"].as_array().unwrap().len(),
        run_cases().len()
    );
    // The timeline: every line is JSON, in order, from run_started to run_finished.
    let events: Vec<serde_json::Value> = std::fs::read_to_string(out.join("events.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).expect("events.jsonl line is not JSON"))
        .collect();
    assert_eq!(events.first().unwrap()["event"], "run_started");
    assert_eq!(events.last().unwrap()["event"], "run_finished");
    assert!(
        events
            .windows(2)
            .all(|w| w[0]["seq"].as_u64() < w[1]["seq"].as_u64()
                && w[0]["t"].as_f64() <= w[1]["t"].as_f64())
    );
    assert_eq!(
        events
            .iter()
            .filter(|e| e["event"] == "scenario_finished")
            .count(),
        run_cases().len()
    );
}

#[test]
fn failing_run_reports_the_failure_and_exits_1() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let o = run(
        &[
            "run",
            "--fault",
            "storage-missing",
            "--out",
            out.to_str().unwrap(),
        ],
        &root(),
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let xml = std::fs::read_to_string(out.join("junit.xml")).unwrap();
    check_junit(&xml, &run_cases());
    assert!(xml.contains("<failure"), "{xml}");
    let summary = std::fs::read_to_string(out.join("summary.md")).unwrap();
    let filters: Vec<(String, &str)> = filters(&out);
    insta::with_settings!({ filters => filters.iter().map(|(a, b)| (a.as_str(), *b)).collect::<Vec<_>>() }, {
        insta::assert_snapshot!("summary-failing-run", summary);
        insta::assert_snapshot!("junit-failing-run", xml);
    });
}

#[test]
fn default_out_dir_is_reports_run_id_with_latest_link() {
    let tmp = tempfile::tempdir().unwrap();
    let o = run(&["preflight"], tmp.path());
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let latest = tmp.path().join("reports/latest");
    let target = std::fs::read_link(&latest).expect("reports/latest is not a link");
    assert!(
        tmp.path()
            .join("reports")
            .join(&target)
            .join("junit.xml")
            .is_file()
    );
    assert!(
        text(&o).contains(&format!("reports/{}", target.display())),
        "{}",
        text(&o)
    );
}

#[test]
fn bad_lab_file_exits_2_with_its_line() {
    let tmp = tempfile::tempdir().unwrap();
    let lab = lab_with_template(
        tmp.path(),
        &root().join("fixtures/seed/clusters/talos-prod-01.yaml"),
    );
    let text_in = std::fs::read_to_string(&lab).unwrap().replace(
        "token_secret_env = \"PROXMOX_TOKEN_SECRET\"",
        "token_secret = \"s3cr3t-value\"",
    );
    std::fs::write(&lab, text_in).unwrap();
    let o = run(
        &[
            "preflight",
            "--lab",
            lab.to_str().unwrap(),
            "--out",
            tmp.path().join("o").to_str().unwrap(),
        ],
        &root(),
    );
    assert_eq!(o.status.code(), Some(2));
    let out = text(&o);
    let line = std::fs::read_to_string(&lab)
        .unwrap()
        .lines()
        .position(|l| l.starts_with("token_secret ="))
        .unwrap()
        + 1;
    assert!(
        out.contains(&format!("lab.toml:{line}:16:"))
            && out.contains("must not be written in the lab file"),
        "{out}"
    );
    assert!(!out.contains("s3cr3t-value"), "the secret leaked: {out}");
}

const REPORTS: [&str; 5] = [
    "summary.md",
    "report.html",
    "junit.xml",
    "metrics.prom",
    "result.json",
];

#[test]
fn report_rerenders_every_report_from_result_json_and_events() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let o = run(&["run", "--out", out.to_str().unwrap()], &root());
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let before: Vec<Vec<u8>> = REPORTS
        .iter()
        .map(|f| std::fs::read(out.join(f)).unwrap())
        .collect();
    for f in &REPORTS[..4] {
        std::fs::remove_file(out.join(f)).unwrap();
    }
    let o = run(&["report", out.to_str().unwrap()], &root());
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    for (f, b) in REPORTS.iter().zip(&before) {
        let after = std::fs::read(out.join(f)).unwrap_or_else(|_| panic!("{f} not re-rendered"));
        let (a, b) = (String::from_utf8_lossy(&after), String::from_utf8_lossy(b));
        let first = a
            .lines()
            .zip(b.lines())
            .find(|(x, y)| x != y)
            .map(|(x, y)| format!("re-rendered {x:?}, written {y:?}"));
        assert!(a == b, "{f} differs after re-rendering: {first:?}");
    }
}

#[test]
fn report_of_a_killed_run_rebuilds_the_record_from_its_events() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let o = run(&["run", "--out", out.to_str().unwrap()], &root());
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    // As if killed while provisioning: no result.json, the timeline cut mid-line after
    // provision::cluster started.
    for f in REPORTS {
        std::fs::remove_file(out.join(f)).unwrap();
    }
    let events = std::fs::read_to_string(out.join("events.jsonl")).unwrap();
    let cut = events
        .lines()
        .position(|l| l.contains(r#""event":"scenario_started","id":"provision::cluster""#))
        .expect("provision::cluster started");
    let mut kept: String = events
        .lines()
        .take(cut + 1)
        .map(|l| format!("{l}\n"))
        .collect();
    kept.push_str(r#"{"seq":999,"t":1.0,"wall":"2026-"#);
    std::fs::write(out.join("events.jsonl"), kept).unwrap();
    let o = run(&["report", out.to_str().unwrap()], &root());
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let result: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("result.json")).unwrap()).unwrap();
    assert_eq!(result["exit_code"], 3, "not evaluated: {result:#}");
    assert!(result["interrupted"].is_string());
    let verdict = |id: &str| {
        result["scenarios"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["id"] == id)
            .unwrap_or_else(|| panic!("{id} missing"))["outcome"]["verdict"]
            .clone()
    };
    assert_eq!(
        result["scenarios"].as_array().unwrap().len(),
        run_cases().len()
    );
    assert_eq!(verdict("preflight::template"), "pass");
    assert_eq!(verdict("provision::cluster"), "error");
    assert_eq!(verdict("provision::cilium"), "skip");
    let summary = std::fs::read_to_string(out.join("summary.md")).unwrap();
    assert!(
        summary.starts_with("# ⛔ clusterproof: INTERRUPTED"),
        "{summary}"
    );
    check_junit(
        &std::fs::read_to_string(out.join("junit.xml")).unwrap(),
        &run_cases(),
    );
}

#[test]
fn report_of_a_directory_without_a_run_is_bad_input() {
    let tmp = tempfile::tempdir().unwrap();
    let o = run(&["report", tmp.path().to_str().unwrap()], &root());
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o).contains("neither result.json nor events.jsonl is here"),
        "{}",
        text(&o)
    );
    std::fs::write(tmp.path().join("result.json"), "{\"scenarios\": 3}").unwrap();
    let o = run(&["report", tmp.path().to_str().unwrap()], &root());
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o).contains("result.json: not a clusterproof result"),
        "{}",
        text(&o)
    );
}

/// A fixed failing run, built from events as a run would record them: a preflight failure
/// with findings, a verify warning with evidence and metrics, a skipped check, and a chaos
/// experiment with a timeline that failed.
fn failing_record() -> harness::runner::RunRecord {
    use harness::events::{Event, EventKind, Lane, MarkState, ScenarioInfo};
    use harness::scenario::{Outcome, Phase, Verdict};
    use harness::source::{Finding, Location};
    let file = std::sync::Arc::new(PathBuf::from("clusters/talos-prod-01.yaml"));
    let mut template = Outcome::from_findings(
        vec![
            Finding::error(
                "template.one-controlplane",
                Location::new(&file, 12, 3),
                "two ControlPlane documents",
            )
            .fix("keep one ControlPlane document"),
            Finding::warning(
                "template.kube-proxy",
                Location::new(&file, 30, 5),
                "kube-proxy is not disabled",
            ),
        ],
        "1 cluster",
    );
    template.duration = std::time::Duration::from_millis(12);
    let pods = Outcome::new(Verdict::Warn, "1 pod restarted during the watch")
        .evidence("kube-system/coredns-1 restarted once")
        .remediation("look at the pod's previous logs")
        .metric("restarts", 1.0, "");
    let chaos = Outcome::new(
        Verdict::Fail,
        "the canary was unreachable for 41 s (budget 30 s)",
    )
    .evidence("victim talos-w1 (VM 104 on host bravo)")
    .metric("time_to_detect", 8.5, "s")
    .metric("canary_availability", 72.0, "%");
    let sc = |id: &str, phase: Phase| ScenarioInfo {
        id: id.into(),
        phase,
        proves: format!("the plan line of {id}"),
    };
    let kinds = vec![
        EventKind::RunStarted {
            run_id: "20260101T000000Z-abcd".into(),
            command: "clusterproof run --keep-going".into(),
            lab: "talos-lab".into(),
            inputs: vec!["lab.toml".into(), "clusters/talos-prod-01.yaml".into()],
            scenarios: vec![
                sc("preflight::template", Phase::Preflight),
                sc("preflight::dns", Phase::Preflight),
                sc("dod::core_pods", Phase::Verify),
                sc("dod::connectivity", Phase::Verify),
                sc("chaos::node_failure", Phase::Chaos),
            ],
        },
        EventKind::Notice {
            message: "TLS verification of the Proxmox API is disabled".into(),
        },
        EventKind::PhaseStarted {
            phase: Phase::Preflight,
        },
        EventKind::ScenarioStarted {
            id: "preflight::template".into(),
            phase: Phase::Preflight,
        },
        EventKind::ScenarioFinished {
            id: "preflight::template".into(),
            phase: Phase::Preflight,
            proves: "the plan line of preflight::template".into(),
            outcome: template,
        },
        EventKind::ScenarioStarted {
            id: "preflight::dns".into(),
            phase: Phase::Preflight,
        },
        EventKind::ScenarioFinished {
            id: "preflight::dns".into(),
            phase: Phase::Preflight,
            proves: "the plan line of preflight::dns".into(),
            outcome: Outcome::pass("all 3 hosts use the LAN resolver"),
        },
        EventKind::PhaseStarted {
            phase: Phase::Verify,
        },
        EventKind::ScenarioStarted {
            id: "dod::core_pods".into(),
            phase: Phase::Verify,
        },
        EventKind::Observation {
            scenario: "dod::core_pods".into(),
            message: "watching kube-system".into(),
            data: serde_json::Value::Null,
        },
        EventKind::ScenarioFinished {
            id: "dod::core_pods".into(),
            phase: Phase::Verify,
            proves: "the plan line of dod::core_pods".into(),
            outcome: pods,
        },
        EventKind::ScenarioFinished {
            id: "dod::connectivity".into(),
            phase: Phase::Verify,
            proves: "the plan line of dod::connectivity".into(),
            outcome: Outcome::skip("not run: dod::core_pods did not pass"),
        },
        EventKind::PhaseStarted {
            phase: Phase::Chaos,
        },
        EventKind::ScenarioStarted {
            id: "chaos::node_failure".into(),
            phase: Phase::Chaos,
        },
    ];
    let mark = |lane, state, label: &str| EventKind::Mark {
        scenario: "chaos::node_failure".into(),
        lane,
        state,
        label: label.into(),
    };
    let marks = vec![
        mark(Lane::Vm, MarkState::Info, "victim talos-w1 chosen"),
        mark(Lane::Vm, MarkState::Down, "VM 104 stopped"),
        mark(Lane::Node, MarkState::Down, "node talos-w1 NotReady"),
        mark(Lane::Omni, MarkState::Down, "machine disconnected"),
        mark(Lane::CanaryProbe, MarkState::Down, "canary probe failed"),
        mark(Lane::Pods, MarkState::Degraded, "2 pods evicted"),
        mark(Lane::Vm, MarkState::Up, "VM 104 started"),
        mark(Lane::Node, MarkState::Up, "node talos-w1 Ready"),
        mark(Lane::Omni, MarkState::Up, "machine connected"),
        mark(Lane::Pods, MarkState::Up, "pods replaced"),
    ];
    let tail = vec![
        EventKind::ScenarioFinished {
            id: "chaos::node_failure".into(),
            phase: Phase::Chaos,
            proves: "the plan line of chaos::node_failure".into(),
            outcome: Outcome {
                duration: std::time::Duration::from_secs(95),
                ..chaos
            },
        },
        EventKind::RunFinished { exit_code: 1 },
    ];
    let events: Vec<Event> = kinds
        .into_iter()
        .chain(marks)
        .chain(tail)
        .enumerate()
        .map(|(i, kind)| Event {
            seq: i as u64,
            t: i as f64 * 5.0,
            wall: format!("2026-01-01T00:{:02}:{:02}.000Z", i * 5 / 60, i * 5 % 60),
            kind,
        })
        .collect();
    harness::runner::RunRecord::from_events(&events)
}

/// The element structure of an HTML page, one element per line, indented by depth: tag,
/// classes, id and data-* attributes, and text (collapsed). Style sheets are named, not
/// copied; SVG geometry (x, y, width, height, viewBox) is left out.
fn html_outline(html: &str) -> String {
    const VOID: [&str; 6] = ["meta", "br", "img", "input", "link", "hr"];
    let mut out = String::new();
    let mut depth = 0usize;
    let mut rest = html;
    let pad = |d: usize| "  ".repeat(d);
    while !rest.is_empty() {
        let Some(lt) = rest.find('<') else {
            break;
        };
        let text = rest[..lt].split_whitespace().collect::<Vec<_>>().join(" ");
        if !text.is_empty() {
            out.push_str(&format!("{}{text:?}\n", pad(depth)));
        }
        rest = &rest[lt..];
        // The tag, up to the first '>' outside quotes.
        let mut quote = None;
        let end = rest
            .char_indices()
            .find(|&(_, c)| {
                match (quote, c) {
                    (None, '"' | '\'') => quote = Some(c),
                    (Some(q), c) if c == q => quote = None,
                    (None, '>') => return true,
                    _ => {}
                }
                false
            })
            .map(|(i, _)| i)
            .expect("an unclosed tag");
        let tag = &rest[1..end];
        rest = &rest[end + 1..];
        if tag.starts_with('!') {
            continue;
        }
        if let Some(name) = tag.strip_prefix('/') {
            depth = depth.saturating_sub(1);
            let _ = name;
            continue;
        }
        let name: String = tag
            .chars()
            .take_while(|c| !c.is_whitespace() && *c != '/')
            .collect();
        let mut line = format!("{}{name}", pad(depth));
        // Attributes: name="value" pairs (maud always quotes) and bare names.
        let mut attrs = tag[name.len()..].trim();
        while !attrs.is_empty() {
            let key: String = attrs
                .chars()
                .take_while(|c| *c != '=' && !c.is_whitespace())
                .collect();
            attrs = attrs[key.len()..].trim_start();
            let mut value = String::new();
            if let Some(v) = attrs.strip_prefix("=\"") {
                let close = v.find('"').expect("an unclosed attribute");
                value = v[..close].to_string();
                attrs = v[close + 1..].trim_start();
            }
            match key.as_str() {
                "class" => line.push_str(&format!(
                    ".{}",
                    value.split_whitespace().collect::<Vec<_>>().join(".")
                )),
                "id" => line.push_str(&format!("#{value}")),
                k if k.starts_with("data-") || k == "href" || k == "open" || k == "lang" => {
                    line.push_str(&format!(" [{k}={value:?}]"))
                }
                _ => {}
            }
            if key.is_empty() {
                break;
            }
        }
        out.push_str(&line);
        out.push('\n');
        if name == "style" {
            let close = rest.find("</style>").expect("an unclosed style");
            rest = &rest[close + "</style>".len()..];
            continue;
        }
        if !VOID.contains(&name.as_str()) && !tag.ends_with('/') {
            depth += 1;
        }
    }
    out
}

#[test]
fn html_outline_keeps_the_structure_and_drops_the_style_and_geometry() {
    let o = html_outline(
        r#"<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><style>p{x:1}</style></head><body><p class="a b" id="x" title="t">hi <code>there</code></p><svg viewBox="0 0 1 1"><rect x="1" width="2"></rect></svg></body></html>"#,
    );
    assert_eq!(
        o,
        "html [lang=\"en\"]\n  head\n    meta\n    style\n  body\n    p.a.b#x\n      \"hi\"\n      code\n        \"there\"\n    svg\n      rect\n"
    );
}

#[test]
fn html_report_structure_of_a_failing_run() {
    let record = failing_record();
    assert_eq!(record.count(harness::scenario::Verdict::Fail), 2);
    let html = harness::report::html::render(&record);
    let outline = html_outline(&html);
    // What a reader must find: every scenario row, the fix list, the chaos timeline.
    for needle in [
        "tr.scenario.v-fail#scenario-preflight::template",
        "tr.scenario.v-skip#scenario-dod::connectivity",
        "section.fix",
        "svg.timeline",
        "g.lane.lane-canary_probe",
    ] {
        assert!(
            outline.contains(needle),
            "{needle} not in the outline:\n{outline}"
        );
    }
    insta::with_settings!({ filters => vec![
        (r"\d+\.\d+ ?s\b", "[D]s"),
        (r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z", "[TIME]"),
    ] }, {
        insta::assert_snapshot!("html-structure-failing-run", outline);
    });
}
