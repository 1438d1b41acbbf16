//! What several product tests share: running the binary against the built-in twin.

use std::process::Command;

use twin::faults::Fault;

/// `clusterproof ARGS… --out TMP [--fault F]…` against the twin: exit code, `result.json`, and
/// the terminal output (for assertion messages).
pub fn run_twin(args: &[&str], faults: &[Fault]) -> (i32, serde_json::Value, String) {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_clusterproof"));
    cmd.args(args).args(["--out", out.to_str().unwrap()]);
    for f in faults {
        cmd.args(["--fault", f.name()]);
    }
    let o = cmd.output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    let result = std::fs::read_to_string(out.join("result.json"))
        .unwrap_or_else(|e| panic!("no result.json ({e}):\n{text}"));
    (
        o.status.code().unwrap_or(-1),
        serde_json::from_str(&result).unwrap(),
        text,
    )
}
