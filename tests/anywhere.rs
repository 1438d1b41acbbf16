//! The binary runs anywhere: copied alone into an empty directory and started from another
//! one, `run` passes against the twin and `lint` lints the bundled seed lab — from the
//! fixtures embedded in the binary, not from the source tree it was built in.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// The built binary, copied alone into `dir`.
fn lone_binary(dir: &Path) -> PathBuf {
    let exe = dir.join("clusterproof");
    std::fs::copy(env!("CARGO_BIN_EXE_clusterproof"), &exe).unwrap();
    exe
}

fn source_tree() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .canonicalize()
        .unwrap()
        .display()
        .to_string()
}

#[test]
fn a_lone_copy_of_the_binary_runs_and_lints_from_any_directory() {
    let bin_dir = tempfile::tempdir().unwrap();
    let cwd = tempfile::tempdir().unwrap();
    let exe = lone_binary(bin_dir.path());
    assert_eq!(std::fs::read_dir(bin_dir.path()).unwrap().count(), 1);

    let o = Command::new(&exe)
        .arg("run")
        .current_dir(cwd.path())
        .env_remove("CARGO_MANIFEST_DIR")
        .output()
        .unwrap();
    let out = text(&o);
    assert_eq!(o.status.code(), Some(0), "run against the twin:\n{out}");
    // Its reports are in the working directory, and every input came from the binary.
    let latest = cwd.path().join("reports/latest");
    let result: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(latest.join("result.json")).unwrap())
            .unwrap();
    assert_eq!(result["exit_code"], 0);
    let inputs: Vec<&str> = result["inputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i.as_str().unwrap())
        .collect();
    assert_eq!(inputs.len(), 4, "{inputs:?}");
    for i in &inputs {
        assert!(
            !i.starts_with(&source_tree()) && i.contains("clusterproof-twin-"),
            "input {i} is not the twin's own copy"
        );
    }
    for f in ["summary.md", "report.html", "metrics.prom", "junit.xml"] {
        assert!(latest.join(f).is_file(), "{f} missing");
    }

    let o = Command::new(&exe)
        .arg("lint")
        .current_dir(cwd.path())
        .output()
        .unwrap();
    let out = text(&o);
    assert_eq!(
        o.status.code(),
        Some(0),
        "lint of the bundled seed lab:\n{out}"
    );
    assert!(
        out.contains("lint: the bundled seed lab (fixtures/seed)"),
        "{out}"
    );
    assert!(
        out.contains("lint: 0 error(s), 0 warning(s) in 4 file(s)"),
        "{out}"
    );
    assert!(!out.contains(&source_tree()), "{out}");
    // Nothing was left behind by the bundled lab's temporary copy.
    assert_eq!(
        std::fs::read_dir(cwd.path()).unwrap().count(),
        1,
        "only reports/ in the working directory"
    );
}

/// Findings in the bundled lab's files point at the copy `lint` read — a temporary
/// `clusterproof-bundled-*` directory with the source tree's `fixtures/seed` layout — and
/// that copy is gone when lint exits.
#[test]
fn lint_of_the_bundled_lab_names_the_copy_it_read_and_removes_it() {
    let o = Command::new(env!("CARGO_BIN_EXE_clusterproof"))
        .args([
            "lint",
            "--classes",
            "fixtures/seed/machine-classes/matrix-worker.yaml",
        ])
        .output()
        .unwrap();
    let out = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    let finding = out
        .lines()
        .find(|l| l.contains("[template.class-exists]"))
        .unwrap_or_else(|| panic!("{out}"));
    let file = finding.split(':').next().unwrap();
    assert!(
        file.contains("/clusterproof-bundled-")
            && file.ends_with("/fixtures/seed/clusters/talos-prod-01.yaml"),
        "{finding}"
    );
    assert!(!Path::new(file).exists(), "{file} was left behind");
}
