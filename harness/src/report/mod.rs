//! Reports written from a [`RunRecord`](crate::runner::RunRecord): `junit.xml`,
//! `result.json`, `summary.md` (plus `events.jsonl`, written live by its subscriber).
//! The formats are described in `reports/README.md`.

pub mod junit;
pub mod summary;

use std::path::{Path, PathBuf};

use crate::runner::RunRecord;

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("cannot write {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot render junit.xml: {0}")]
    Junit(String),
}

fn write(path: PathBuf, content: &[u8]) -> Result<(), ReportError> {
    // Write to a temporary name, then rename: a reader never sees half a report.
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, content)
        .and_then(|_| std::fs::rename(&tmp, &path))
        .map_err(|source| ReportError::Io { path, source })
}

/// Write every report of `record` into `dir` (which must exist). Each report is attempted
/// even if an earlier one failed; the first error is returned.
pub fn write_all(dir: &Path, record: &RunRecord) -> Result<(), ReportError> {
    let mut first_err = None;
    let mut keep = |r: Result<(), ReportError>| {
        if let Err(e) = r {
            first_err.get_or_insert(e);
        }
    };
    let json = serde_json::to_vec_pretty(record).map_err(|e| ReportError::Junit(e.to_string()));
    keep(json.and_then(|j| write(dir.join("result.json"), &j)));
    keep(write(
        dir.join("summary.md"),
        summary::render(record).as_bytes(),
    ));
    keep(junit::render(record).and_then(|x| write(dir.join("junit.xml"), x.as_bytes())));
    match first_err {
        Some(e) => Err(e),
        None => Ok(()),
    }
}
