//! The command line as a user and a CI template meet it: `--output json`, `--quiet`, an
//! example in every `--help`, the chaos subcommands, every `clusterproof …` line in `ci/`
//! against the real clap definition, and the lab suite's test list against the catalog.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn clusterproof() -> Command {
    Command::new(env!("CARGO_BIN_EXE_clusterproof"))
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn text(o: &Output) -> String {
    format!(
        "stdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn output_json_prints_the_run_record_and_nothing_else_on_stdout() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let o = clusterproof()
        .args(["preflight", "--output", "json", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let stdout: serde_json::Value = serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("stdout is not one JSON document ({e}): {}", text(&o)));
    let written: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("result.json")).unwrap()).unwrap();
    assert_eq!(stdout, written, "stdout differs from result.json");
    assert_eq!(stdout["exit_code"], 0);
    // The human lines went to stderr.
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("PASSED: "), "{}", text(&o));
}

#[test]
fn quiet_prints_only_the_final_line() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let o = clusterproof()
        .args(["run", "--quiet", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let stdout = String::from_utf8_lossy(&o.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 1, "{}", text(&o));
    assert!(
        lines[0].starts_with("PASSED: ")
            && lines[0].ends_with(&format!("reports in {}", out.display())),
        "{}",
        text(&o)
    );
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        !stderr.contains("── ") && !stderr.contains("PASS ") && !stderr.contains("check(s)"),
        "progress printed with --quiet: {}",
        text(&o)
    );
    // Without --quiet the same run shows progress and the table.
    let o = clusterproof()
        .args(["run", "--out"])
        .arg(tmp.path().join("loud"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        stdout.lines().count() > 1 && stdout.contains("preflight  PASS"),
        "{}",
        text(&o)
    );
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("── preflight"),
        "{}",
        text(&o)
    );
    // Not a terminal: no colour codes anywhere.
    assert!(!text(&o).contains('\u{1b}'), "{}", text(&o));
}

/// Every subcommand path (`chaos node-failure`, `twin serve`, …), hidden ones included.
fn paths(cmd: &clap::Command, prefix: Vec<String>, out: &mut Vec<Vec<String>>) {
    for sub in cmd.get_subcommands() {
        if sub.get_name() == "help" {
            continue;
        }
        let mut p = prefix.clone();
        p.push(sub.get_name().to_string());
        out.push(p.clone());
        paths(sub, p, out);
    }
}

#[test]
fn every_subcommand_help_has_an_example() {
    let cmd = clusterproof::cli::command();
    let mut all = vec![Vec::new()];
    paths(&cmd, Vec::new(), &mut all);
    assert!(all.len() > 12, "{all:?}");
    for p in &all {
        let hidden = p.first().is_some_and(|f| f == "twin")
            && p.get(1).is_some_and(|s| s == "omnictl" || s == "cilium");
        if hidden {
            // Their arguments go to the shim verbatim; check the definition instead.
            let mut c = cmd.clone();
            for name in p {
                c = c.find_subcommand(name).unwrap().clone();
            }
            let help = c.render_long_help().to_string();
            assert!(help.contains("Example"), "{p:?}: {help}");
            continue;
        }
        let o = clusterproof().args(p).arg("--help").output().unwrap();
        let help = String::from_utf8_lossy(&o.stdout);
        assert_eq!(o.status.code(), Some(0), "{p:?}: {}", text(&o));
        assert!(
            help.contains("Example"),
            "clusterproof {} --help: {help}",
            p.join(" ")
        );
    }
}

#[test]
fn chaos_node_failure_takes_the_experiment_and_runs_the_chaos_phase() {
    let tmp = tempfile::tempdir().unwrap();
    let o = clusterproof()
        .args([
            "chaos",
            "node-failure",
            "--target",
            "control-plane",
            "--mode",
            "suspend",
            "--seed",
            "7",
            "--dry-run",
            "--out",
        ])
        .arg(tmp.path())
        .output()
        .unwrap();
    // The chaos phase runs with the experiment asked for: a dry run of it against the twin
    // (provisioned first) plans a control-plane victim by seed 7 and changes nothing.
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(tmp.path().join("result.json")).unwrap())
            .unwrap();
    let msg = r["scenarios"][0]["outcome"]["message"]
        .as_str()
        .unwrap_or_default();
    assert!(
        msg.contains("dry run: would suspend VM")
            && msg.contains("control plane")
            && msg.contains("seed 7"),
        "{msg}"
    );
    let cmd = clusterproof::cli::command();
    for bad in [
        vec!["clusterproof", "chaos", "node-failure", "--mode", "pause"],
        vec![
            "clusterproof",
            "chaos",
            "node-failure",
            "--target",
            "w1;reboot",
        ],
        vec!["clusterproof", "chaos", "node-failure", "--seed", "x"],
        vec!["clusterproof", "chaos", "recover"],
    ] {
        assert!(
            cmd.clone().try_get_matches_from(&bad).is_err(),
            "{bad:?} accepted"
        );
    }
}

#[test]
fn chaos_recover_says_there_is_no_journal_in_the_state_dir() {
    let tmp = tempfile::tempdir().unwrap();
    let seed_dir = root().join("fixtures/seed");
    for sub in ["clusters", "machine-classes"] {
        std::fs::create_dir(tmp.path().join(sub)).unwrap();
        for f in std::fs::read_dir(seed_dir.join(sub)).unwrap() {
            let f = f.unwrap().path();
            std::fs::copy(&f, tmp.path().join(sub).join(f.file_name().unwrap())).unwrap();
        }
    }
    let seed = std::fs::read_to_string(seed_dir.join("lab.toml")).unwrap();
    let state = tmp.path().join("state");
    let lab = tmp.path().join("lab.toml");
    std::fs::write(
        &lab,
        format!("state_dir = {:?}\n{seed}", state.display().to_string()),
    )
    .unwrap();
    let o = clusterproof()
        .args(["chaos", "recover", "--lab"])
        .arg(&lab)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).trim(),
        format!("no unfinished chaos journal in {}", state.display())
    );
    let o = clusterproof()
        .args(["chaos", "recover", "--lab"])
        .arg(tmp.path().join("missing.toml"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
}

/// Every shell script in a CI document: GitHub's `run:` and GitLab's `script:`,
/// `before_script:` and `after_script:` (a string or a list of strings).
fn scripts(v: &serde_json::Value, out: &mut Vec<String>) {
    const SHELL: [&str; 4] = ["run", "script", "before_script", "after_script"];
    match v {
        serde_json::Value::Array(a) => a.iter().for_each(|x| scripts(x, out)),
        serde_json::Value::Object(m) => {
            for (k, x) in m {
                match x {
                    serde_json::Value::String(s) if SHELL.contains(&k.as_str()) => {
                        out.push(s.clone())
                    }
                    serde_json::Value::Array(a) if SHELL.contains(&k.as_str()) => {
                        out.extend(a.iter().filter_map(|s| s.as_str().map(str::to_string)))
                    }
                    _ => scripts(x, out),
                }
            }
        }
        _ => {}
    }
}

/// The `clusterproof …` command lines of a shell script: each cut at the first shell
/// operator or comment, split on whitespace.
fn command_lines(script: &str) -> Vec<Vec<String>> {
    script
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("clusterproof "))
        .map(|l| {
            let end = ["||", "&&", "|", ";", ">", "#"]
                .iter()
                .filter_map(|op| l.find(op))
                .min()
                .unwrap_or(l.len());
            l[..end]
                .split_whitespace()
                .map(|w| w.trim_matches(|c| c == '"' || c == '\'').to_string())
                .collect()
        })
        .collect()
}

#[test]
fn every_ci_template_parses_and_its_commands_are_valid() {
    let dir = root().join("ci");
    let mut templates: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yml" || e == "yaml"))
        .collect();
    templates.sort();
    let names: Vec<String> = templates
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    for want in [
        "preflight-gate.yml",
        "scheduled-resilience.yml",
        "gitlab-ci.yml",
    ] {
        assert!(
            names.iter().any(|n| n == want),
            "ci/{want} missing: {names:?}"
        );
    }
    let cmd = clusterproof::cli::command();
    let mut seen: Vec<String> = Vec::new();
    for t in &templates {
        let yaml = std::fs::read_to_string(t).unwrap();
        let doc: serde_json::Value = serde_saphyr::from_str(&yaml)
            .unwrap_or_else(|e| panic!("{}: not YAML: {e}", t.display()));
        let mut all = Vec::new();
        scripts(&doc, &mut all);
        let lines: Vec<Vec<String>> = all.iter().flat_map(|s| command_lines(s)).collect();
        assert!(
            !lines.is_empty(),
            "{}: no clusterproof command",
            t.display()
        );
        for l in lines {
            if let Err(e) = cmd.clone().try_get_matches_from(&l) {
                panic!(
                    "{}: `{}` is not a valid command:\n{e}",
                    t.display(),
                    l.join(" ")
                );
            }
            seen.push(l[..3.min(l.len())].join(" "));
        }
    }
    for shape in [
        "clusterproof lint --lab",
        "clusterproof preflight --lab",
        "clusterproof verify --lab",
        "clusterproof chaos node-failure",
        "clusterproof chaos recover",
    ] {
        assert!(
            seen.iter().filter(|s| s.starts_with(shape)).count() >= 2,
            "{shape} is not in both the GitHub and the GitLab templates: {seen:?}"
        );
    }
}

#[test]
fn the_command_line_check_rejects_what_clap_rejects() {
    // The template check above is only as good as this: a typo'd flag must fail.
    let cmd = clusterproof::cli::command();
    let l = &command_lines("clusterproof verify --labb lab.toml > out")[0];
    assert_eq!(l, &["clusterproof", "verify", "--labb", "lab.toml"]);
    assert!(cmd.try_get_matches_from(l).is_err());
}

/// The lab suite's test binary beside this one (`target/<profile>/deps/lab-<hash>`); the
/// newest when several builds left one.
fn lab_binary() -> PathBuf {
    let deps = std::env::current_exe()
        .unwrap()
        .parent()
        .unwrap()
        .to_path_buf();
    let is_lab = |p: &Path| {
        let n = p
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        n.strip_prefix("lab-")
            .is_some_and(|h| !h.is_empty() && h.chars().all(|c| c.is_ascii_hexdigit()))
    };
    std::fs::read_dir(&deps)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| is_lab(p))
        .max_by_key(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok())
        .unwrap_or_else(|| {
            panic!(
                "no lab suite binary in {}: build it (`cargo nextest run` or `cargo test --test lab --no-run`)",
                deps.display()
            )
        })
}

#[test]
fn the_lab_suite_lists_one_test_per_catalog_id() {
    let ids: Vec<String> = scenarios::catalog()
        .iter()
        .map(|s| s.id().to_string())
        .collect();
    let list = |env: &[(&str, &str)], extra: &[&str]| {
        let mut c = Command::new(lab_binary());
        c.args(["--list", "--format", "terse"]).args(extra);
        c.env_remove("CLUSTERPROOF_LAB")
            .env_remove("CLUSTERPROOF_PROVISION")
            .env_remove("CLUSTERPROOF_CHAOS");
        for (k, v) in env {
            c.env(k, v);
        }
        let o = c.output().unwrap();
        assert!(o.status.success(), "{}", text(&o));
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .map(|l| l.strip_suffix(": test").unwrap_or(l).to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(list(&[], &[]), ids);
    // On the twin nothing is ignored.
    assert!(list(&[], &["--ignored"]).is_empty());
    // On a lab: provisioning and chaos only when asked.
    let lab = [("CLUSTERPROOF_LAB", "lab.toml")];
    let ignored = list(&lab, &["--ignored"]);
    let want: Vec<String> = scenarios::catalog()
        .iter()
        .filter(|s| {
            matches!(
                s.phase(),
                harness::scenario::Phase::Provision | harness::scenario::Phase::Chaos
            )
        })
        .map(|s| s.id().to_string())
        .collect();
    assert_eq!(ignored, want);
    assert!(
        list(
            &[
                ("CLUSTERPROOF_LAB", "lab.toml"),
                ("CLUSTERPROOF_PROVISION", "1")
            ],
            &["--ignored"]
        )
        .iter()
        .all(|id| id.starts_with("chaos::"))
    );
}
