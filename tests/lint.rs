//! `clusterproof lint` as a person runs it: the bundled lab is clean, every file in
//! `fixtures/bad/` fails with its rule, its file:line and a fix, malformed YAML exits 2; a
//! user's own template is linted with the classes kept beside it (never the bundled lab's).
//!
//! Each bad fixture states what it must produce on its first line:
//! `# expect: rule=<rule id> line=<N> [col=<C>]` or `# expect: exit=2 line=<N> col=<C>`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn clusterproof() -> Command {
    Command::new(env!("CARGO_BIN_EXE_clusterproof"))
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Lint one bad fixture the way its kind needs: templates in the seed lab (its lab file and
/// classes), machine classes (which all redefine `matrix-worker`) next to the seed
/// control-plane class, in the bundled seed lab.
fn lint_fixture(path: &Path) -> Output {
    let name = path.file_name().unwrap().to_string_lossy();
    let mut cmd = clusterproof();
    cmd.arg("lint");
    if name.starts_with("class-") {
        cmd.args([
            "--classes",
            "fixtures/seed/machine-classes/matrix-control-plane.yaml",
        ])
        .arg(path);
    } else {
        cmd.args(["--lab", "fixtures/seed/lab.toml", "--template"])
            .arg(path);
    }
    cmd.output().unwrap()
}

struct Expect {
    rule: Option<String>,
    exit: i32,
    line: u64,
    col: Option<u64>,
}

fn expectation(path: &Path) -> Expect {
    let first = std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .next()
        .unwrap_or_default()
        .to_string();
    let body = first
        .strip_prefix("# expect: ")
        .unwrap_or_else(|| panic!("{} has no `# expect:` first line", path.display()));
    let mut e = Expect {
        rule: None,
        exit: 1,
        line: 0,
        col: None,
    };
    for kv in body.split_whitespace() {
        let (k, v) = kv.split_once('=').unwrap();
        match k {
            "rule" => e.rule = Some(v.to_string()),
            "exit" => e.exit = v.parse().unwrap(),
            "line" => e.line = v.parse().unwrap(),
            "col" => e.col = Some(v.parse().unwrap()),
            other => panic!("unknown expectation key {other}"),
        }
    }
    e
}

fn bad_fixtures() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir("fixtures/bad")
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .map(|p| PathBuf::from("fixtures/bad").join(p.file_name().unwrap()))
        .collect();
    v.sort();
    v
}

#[test]
fn bundled_lab_lints_clean() {
    let o = clusterproof().arg("lint").output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(
        text(&o).contains("lint: 0 error(s), 0 warning(s) in 4 file(s)"),
        "{}",
        text(&o)
    );
}

#[test]
fn every_bad_fixture_fails_with_its_rule_location_and_fix() {
    let fixtures = bad_fixtures();
    assert!(
        fixtures.len() >= 15,
        "expected the whole bad-fixture set, found {}",
        fixtures.len()
    );
    for path in fixtures {
        let e = expectation(&path);
        let o = lint_fixture(&path);
        let out = text(&o);
        assert_eq!(
            o.status.code(),
            Some(e.exit),
            "{}: wrong exit code\n{out}",
            path.display()
        );
        let at = match e.col {
            Some(c) => format!("{}:{}:{c}", path.display(), e.line),
            None => format!("{}:{}:", path.display(), e.line),
        };
        match &e.rule {
            Some(rule) => {
                let line = out
                    .lines()
                    .find(|l| l.starts_with(&at) && l.contains(&format!("[{rule}]")))
                    .unwrap_or_else(|| {
                        panic!("{}: no `{rule}` finding at {at}\n{out}", path.display())
                    });
                // The fix is printed on the line after the finding.
                let next = out
                    .lines()
                    .skip_while(|l| *l != line)
                    .nth(1)
                    .unwrap_or_default();
                assert!(
                    next.trim_start().starts_with("fix: ") && next.len() > 10,
                    "{}: no fix after `{line}`\n{out}",
                    path.display()
                );
            }
            None => assert!(
                out.contains(&format!("error: {at}")) && out.contains("invalid YAML"),
                "{}: expected a syntax error at {at}\n{out}",
                path.display()
            ),
        }
    }
}

#[test]
fn classes_flag_takes_several_files_and_can_be_repeated() {
    let one = clusterproof()
        .args([
            "lint",
            "--classes",
            "fixtures/seed/machine-classes/matrix-control-plane.yaml",
            "fixtures/seed/machine-classes/matrix-worker.yaml",
        ])
        .output()
        .unwrap();
    let repeated = clusterproof()
        .args([
            "lint",
            "--classes",
            "fixtures/seed/machine-classes/matrix-control-plane.yaml",
            "--classes",
            "fixtures/seed/machine-classes/matrix-worker.yaml",
        ])
        .output()
        .unwrap();
    assert_eq!(one.status.code(), Some(0), "{}", text(&one));
    assert_eq!(repeated.status.code(), Some(0), "{}", text(&repeated));
    // With only one of the two classes, the template's other reference is missing.
    let partial = clusterproof()
        .args([
            "lint",
            "--classes",
            "fixtures/seed/machine-classes/matrix-worker.yaml",
        ])
        .output()
        .unwrap();
    assert_eq!(partial.status.code(), Some(1));
    assert!(
        text(&partial).contains("[template.class-exists]: machine class \"matrix-control-plane\""),
        "{}",
        text(&partial)
    );
}

#[test]
fn unreadable_file_is_bad_input() {
    let o = clusterproof()
        .args(["lint", "--template", "fixtures/bad/does-not-exist.yaml"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o).contains("does-not-exist.yaml: cannot read the cluster template"),
        "{}",
        text(&o)
    );
}

#[test]
fn lint_output_snapshots() {
    for name in [
        "nested-single-document.yaml",
        "class-type-selector.yaml",
        "mixed-config-styles.yaml",
        "malformed.yaml",
    ] {
        let o = lint_fixture(&Path::new("fixtures/bad").join(name));
        insta::assert_snapshot!(
            format!("lint-{name}"),
            format!("exit {}\n{}", o.status.code().unwrap_or(-1), text(&o))
        );
    }
}

#[test]
fn list_names_every_scenario_with_phase_and_plan_line() {
    let o = clusterproof().arg("list").output().unwrap();
    let out = text(&o);
    assert_eq!(o.status.code(), Some(0));
    for id in ["preflight::template", "preflight::machine_classes"] {
        let line = out
            .lines()
            .find(|l| l.starts_with(id))
            .unwrap_or_else(|| panic!("{id} missing\n{out}"));
        assert!(
            line.contains("preflight") && line.contains("Constraint"),
            "{line}"
        );
    }
}

// ---- a user's own repository -------------------------------------------------------------

/// A class file: `id`, its provider, one storage selector.
fn class_yaml(id: &str, provider: &str) -> String {
    let seed = std::fs::read_to_string("fixtures/seed/machine-classes/matrix-worker.yaml").unwrap();
    seed.replace("id: matrix-worker", &format!("id: {id}"))
        .replace(
            "providerid: matrix-cluster",
            &format!("providerid: {provider}"),
        )
}

/// The seed template, renamed, its sets using `cp` and `worker` classes.
fn template_yaml(cp: &str, worker: &str) -> String {
    std::fs::read_to_string("fixtures/seed/clusters/talos-prod-01.yaml")
        .unwrap()
        .replace("name: matrix-control-plane", &format!("name: {cp}"))
        .replace("name: matrix-worker", &format!("name: {worker}"))
}

/// `<tmp>/repo` (a git repository) with `clusters/test/test-cluster.yaml` using the classes
/// `matrix-cp-hotel` and `matrix-worker-hotel` of provider `hotel-provider`.
fn user_repo() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    std::fs::create_dir_all(repo.join(".git")).unwrap();
    std::fs::create_dir_all(repo.join("clusters/test")).unwrap();
    std::fs::write(
        repo.join("clusters/test/test-cluster.yaml"),
        template_yaml("matrix-cp-hotel", "matrix-worker-hotel"),
    )
    .unwrap();
    (tmp, repo)
}

fn lint_in(repo: &Path, args: &[&str]) -> Output {
    clusterproof()
        .arg("lint")
        .args(args)
        .current_dir(repo)
        .output()
        .unwrap()
}

#[test]
fn a_users_template_is_linted_with_the_classes_beside_it() {
    let (_tmp, repo) = user_repo();
    std::fs::create_dir_all(repo.join("machine-classes")).unwrap();
    std::fs::write(
        repo.join("machine-classes/cp.yaml"),
        class_yaml("matrix-cp-hotel", "hotel-provider"),
    )
    .unwrap();
    std::fs::write(
        repo.join("machine-classes/worker.yml"),
        class_yaml("matrix-worker-hotel", "hotel-provider"),
    )
    .unwrap();
    std::fs::write(repo.join("machine-classes/README.md"), "not a class").unwrap();
    let o = lint_in(&repo, &["--template", "clusters/test/test-cluster.yaml"]);
    let out = text(&o);
    assert_eq!(o.status.code(), Some(0), "{out}");
    assert!(
        out.contains("lint: no --classes given; using the machine classes in machine-classes/: cp.yaml, worker.yml"),
        "{out}"
    );
    // Template and two classes; no lab file, so no provider comparison with the seed lab's.
    assert!(
        out.contains("lint: 0 error(s), 0 warning(s) in 3 file(s)"),
        "{out}"
    );
    assert!(
        !out.contains("fixtures/seed") && !out.contains("bundled"),
        "the bundled lab leaked in:\n{out}"
    );
}

#[test]
fn classes_are_found_beside_the_templates_folder_before_the_repository_root() {
    let (_tmp, repo) = user_repo();
    // Beside the template's folder: clusters/machine-classes. The root's would be wrong.
    std::fs::create_dir_all(repo.join("clusters/machine-classes")).unwrap();
    std::fs::create_dir_all(repo.join("machine-classes")).unwrap();
    for (id, dir) in [
        ("matrix-cp-hotel", "clusters"),
        ("matrix-worker-hotel", "clusters"),
        ("other", "."),
    ] {
        std::fs::write(
            repo.join(dir)
                .join("machine-classes")
                .join(format!("{id}.yaml")),
            class_yaml(id, "p"),
        )
        .unwrap();
    }
    let o = lint_in(&repo, &["--template", "clusters/test/test-cluster.yaml"]);
    let out = text(&o);
    assert_eq!(o.status.code(), Some(0), "{out}");
    assert!(out.contains("machine classes in clusters/machine-classes/: matrix-cp-hotel.yaml, matrix-worker-hotel.yaml"), "{out}");
}

#[test]
fn without_classes_the_lint_says_none_were_given_and_never_uses_the_bundled_lab() {
    let (tmp, repo) = user_repo();
    // A machine-classes/ folder above the repository root is not the repository's.
    std::fs::create_dir_all(tmp.path().join("machine-classes")).unwrap();
    std::fs::write(
        tmp.path().join("machine-classes/x.yaml"),
        class_yaml("matrix-worker-hotel", "p"),
    )
    .unwrap();
    let o = lint_in(&repo, &["--template", "clusters/test/test-cluster.yaml"]);
    let out = text(&o);
    assert_eq!(o.status.code(), Some(0), "warnings only: {out}");
    assert!(
        out.contains("lint: no machine classes given, and no machine-classes/ folder in clusters/test, clusters, .: the template's class references are not checked"),
        "{out}"
    );
    for class in ["matrix-cp-hotel", "matrix-worker-hotel"] {
        assert!(
            out.contains(&format!("warning[template.class-exists]: machine class \"{class}\" is not checked: no machine class files were given")),
            "{out}"
        );
    }
    assert!(out.contains("in 1 file(s)"), "{out}");
    assert!(
        !out.contains("fixtures/seed") && !out.contains("is not defined in"),
        "the bundled lab leaked in:\n{out}"
    );
}

#[test]
fn given_classes_are_used_as_given_without_searching() {
    let (_tmp, repo) = user_repo();
    std::fs::create_dir_all(repo.join("machine-classes")).unwrap();
    std::fs::write(
        repo.join("machine-classes/cp.yaml"),
        class_yaml("matrix-cp-hotel", "p"),
    )
    .unwrap();
    std::fs::write(
        repo.join("only-worker.yaml"),
        class_yaml("matrix-worker-hotel", "p"),
    )
    .unwrap();
    let o = lint_in(
        &repo,
        &[
            "--template",
            "clusters/test/test-cluster.yaml",
            "--classes",
            "only-worker.yaml",
        ],
    );
    let out = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(!out.contains("using the machine classes in"), "{out}");
    assert!(
        out.contains("machine class \"matrix-cp-hotel\" is not defined in only-worker.yaml"),
        "{out}"
    );
}
