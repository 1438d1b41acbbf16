//! `clusterproof lint`: the offline scenarios (those that need only the parsed inputs) on a
//! lab file, on a template with its machine classes, or on the bundled seed lab.

use std::sync::Arc;
use std::time::Duration;

use harness::events::EventBus;
use harness::runner::{self, Recorder, RunOptions, exit};
use harness::scenario::{Lab, Need, Scenario, Verdict};
use harness::source::{Severity, sort_findings};
use harness::spec::{LabSpec, Overrides};

use crate::cli::LintArgs;

/// What `lint` checks: the lab file given (with its template and classes unless overridden);
/// or, with `--template` and no `--lab`, that template with the classes given or found beside
/// it, and no lab at all; otherwise the bundled seed lab, written to a temporary directory
/// that lives as long as the returned handle.
fn lint_spec(a: &LintArgs) -> Result<(LabSpec, Option<twin::bundle::SeedLab>), i32> {
    let overrides = Overrides {
        template: a.template.clone(),
        classes: a.classes.clone(),
    };
    let load = |lab: &std::path::Path| {
        LabSpec::load(lab, &overrides).map_err(|e| {
            eprintln!("error: {e}");
            exit::BAD_INPUT
        })
    };
    if let Some(lab) = &a.lab {
        return load(lab).map(|s| (s, None));
    }
    if let Some(template) = &a.template {
        let classes = if !a.classes.is_empty() {
            a.classes.clone()
        } else {
            use harness::source::display_path;
            match harness::spec::find_machine_classes(template) {
                harness::spec::ClassSearch::Found { dir, files } => {
                    let names: Vec<String> = files
                        .iter()
                        .filter_map(|f| f.file_name().map(|n| n.to_string_lossy().into_owned()))
                        .collect();
                    println!(
                        "lint: no --classes given; using the machine classes in {}/: {}",
                        display_path(&dir),
                        names.join(", ")
                    );
                    files
                }
                harness::spec::ClassSearch::NotFound { looked_in } => {
                    let dirs: Vec<String> = looked_in.iter().map(|d| display_path(d)).collect();
                    println!(
                        "lint: no machine classes given, and no machine-classes/ folder in {}: the template's class references are not checked (pass --classes FILE…)",
                        dirs.join(", ")
                    );
                    Vec::new()
                }
            }
        };
        return LabSpec::load_without_lab(template, &classes)
            .map(|s| (s, None))
            .map_err(|e| {
                eprintln!("error: {e}");
                exit::BAD_INPUT
            });
    }
    let bundled = twin::bundle::SeedLab::write().map_err(|e| {
        eprintln!("error: cannot write the bundled seed lab to a temporary directory: {e}");
        exit::NOT_EVALUATED
    })?;
    println!(
        "lint: the bundled seed lab (fixtures/seed){}",
        if a.classes.is_empty() {
            ""
        } else {
            ": its lab file and cluster template, with the given machine classes"
        }
    );
    let spec = load(&bundled.lab())?;
    Ok((spec, Some(bundled)))
}

/// Lint and print the findings; the exit code.
pub fn lint(a: &LintArgs) -> i32 {
    // `_bundled` keeps the bundled seed lab's files until the lint is done.
    let (spec, _bundled) = match lint_spec(a) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let offline: Vec<Arc<dyn Scenario>> = scenarios::catalog()
        .into_iter()
        .filter(|s| s.needs().iter().all(|n| *n == Need::Spec))
        .collect();
    let ids: Vec<&str> = offline.iter().map(|s| s.id()).collect();
    let files = spec.input_files();
    let bus = EventBus::new();
    let recorder = Recorder::default();
    bus.subscribe(recorder.clone());
    let opts = RunOptions {
        command: "lint".into(),
        run_id: crate::session::run_id(),
        scenario_timeout: Duration::from_secs(60),
        keep_going: false,
    };
    let rt = match crate::runtime() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return exit::NOT_EVALUATED;
        }
    };
    let records = rt.block_on(runner::run(
        Arc::new(Lab::offline(spec)),
        offline,
        &bus,
        &opts,
        std::future::pending(),
    ));
    let mut findings: Vec<_> = records
        .iter()
        .flat_map(|r| r.outcome.findings.iter().cloned())
        .collect();
    sort_findings(&mut findings);
    for f in &findings {
        println!("{f}");
    }
    for r in records
        .iter()
        .filter(|r| r.outcome.verdict == Verdict::Error)
    {
        println!(
            "error: {} could not be evaluated: {}",
            r.id, r.outcome.message
        );
    }
    let errors = harness::source::count(&findings, Severity::Error);
    let warnings = harness::source::count(&findings, Severity::Warning);
    println!(
        "lint: {errors} error(s), {warnings} warning(s) in {} file(s) [{}]",
        files.len(),
        ids.join(", ")
    );
    runner::exit_code(&recorder.record(), a.strict)
}
