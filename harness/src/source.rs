//! Where a value came from: `file:line:col`, and the findings that point there.

use std::borrow::Cow;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// A position in a user's input file. Lines and columns are 1-based; `line == 0` means
/// "somewhere in this file" (for problems that have no better anchor).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Location {
    pub file: Arc<PathBuf>,
    pub line: u64,
    pub col: u64,
}

impl Location {
    pub fn new(file: &Arc<PathBuf>, line: u64, col: u64) -> Self {
        Location {
            file: Arc::clone(file),
            line,
            col,
        }
    }

    /// The whole file, when no line applies.
    pub fn file(file: &Path) -> Self {
        Location {
            file: Arc::new(file.to_path_buf()),
            line: 0,
            col: 0,
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let file = display_path(&self.file);
        match (self.line, self.col) {
            (0, _) => write!(f, "{file}"),
            (l, 0) => write!(f, "{file}:{l}"),
            (l, c) => write!(f, "{file}:{l}:{c}"),
        }
    }
}

/// A path as a person wants to read it: relative to the current directory when it is
/// below it, otherwise as given.
pub fn display_path(p: &Path) -> String {
    let rel = std::env::current_dir()
        .ok()
        .and_then(|cwd| p.strip_prefix(&cwd).ok().map(Path::to_path_buf));
    match rel {
        // The current directory itself.
        Some(r) if r.as_os_str().is_empty() => ".".into(),
        Some(r) => r.display().to_string(),
        None => p.display().to_string(),
    }
}

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Warning,
    Error,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Error => "error",
        })
    }
}

/// One problem in the user's input, as a rule sees it: which rule, where, what, and how to fix it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    /// Stable rule id, e.g. `template.one-controlplane`. Documented in `docs/rules.md`.
    /// Borrowed when a rule makes it; owned when read back from `result.json`.
    pub rule: Cow<'static, str>,
    pub severity: Severity,
    pub location: Location,
    pub message: String,
    /// What a person should change. Empty when the message says it all.
    pub fix: String,
}

impl Finding {
    pub fn error(rule: &'static str, location: Location, message: impl Into<String>) -> Self {
        Finding {
            rule: Cow::Borrowed(rule),
            severity: Severity::Error,
            location,
            message: message.into(),
            fix: String::new(),
        }
    }

    pub fn warning(rule: &'static str, location: Location, message: impl Into<String>) -> Self {
        Finding {
            rule: Cow::Borrowed(rule),
            severity: Severity::Warning,
            location,
            message: message.into(),
            fix: String::new(),
        }
    }

    pub fn info(rule: &'static str, location: Location, message: impl Into<String>) -> Self {
        Finding {
            rule: Cow::Borrowed(rule),
            severity: Severity::Info,
            location,
            message: message.into(),
            fix: String::new(),
        }
    }

    pub fn fix(mut self, fix: impl Into<String>) -> Self {
        self.fix = fix.into();
        self
    }
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {}[{}]: {}",
            self.location, self.severity, self.rule, self.message
        )?;
        if !self.fix.is_empty() {
            write!(f, "\n  fix: {}", self.fix)?;
        }
        Ok(())
    }
}

/// Sort findings for output: by file, line, column, then rule — so output is stable.
pub fn sort_findings(findings: &mut [Finding]) {
    findings.sort_by(|a, b| {
        (&a.location.file, a.location.line, a.location.col, &a.rule).cmp(&(
            &b.location.file,
            b.location.line,
            b.location.col,
            &b.rule,
        ))
    });
}

/// How many findings have this severity.
pub fn count(findings: &[Finding], severity: Severity) -> usize {
    findings.iter().filter(|f| f.severity == severity).count()
}
