//! `clusterproof` — the command line. Only argument handling and printing live here; the
//! model, runner and reports are in `harness`, the checks in `scenarios`.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};
use harness::events::{EventBus, EventKind, FnSubscriber, JsonlWriter};
use harness::runner::{self, Recorder, RunOptions, exit};
use harness::scenario::{ConnectOptions, Lab, Need, Phase, Scenario, Verdict};
use harness::source::{Severity, sort_findings};
use harness::spec::{LabSpec, Overrides};
use twin::faults::Fault;

#[derive(Parser)]
#[command(name = "clusterproof", version, about = "Validation and chaos test harness for Talos clusters provisioned by Omni on Proxmox VE with Cilium.", long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check the cluster template and machine classes offline (no cluster needed).
    ///
    /// With no arguments, lints the bundled seed lab. Exit 0 clean (warnings allowed),
    /// 1 problems found, 2 a file could not be read or is not valid YAML/TOML.
    Lint(LintArgs),
    /// List every scenario: id, phase, and the plan line it proves.
    List,
    /// Run the preflight checks (before `omnictl cluster template sync`).
    Preflight(RunArgs),
    /// Run the provisioning steps (machine classes, template sync, kubeconfig, Cilium).
    Provision(RunArgs),
    /// Verify every Definition-of-Done item on a running cluster.
    Verify(RunArgs),
    /// Run the node-failure chaos experiment.
    Chaos(RunArgs),
    /// The full run: preflight, provision, verify, chaos — each phase gated on the one before.
    Run(RunArgs),
    /// The built-in twin: an emulation of the seed lab on loopback.
    #[command(subcommand)]
    Twin(TwinCommand),
    /// Re-render every report of a run (summary.md, report.html, junit.xml, metrics.prom)
    /// from its result.json and events.jsonl.
    Report {
        /// The run's report directory (reports/<run-id>, or the --out DIR of the run).
        dir: PathBuf,
    },
}

#[derive(Subcommand)]
enum TwinCommand {
    /// Start the twin, print its lab file and endpoints, and run until Ctrl-C.
    Serve {
        /// Switch on a fault (repeatable).
        #[arg(long = "fault", value_name = "NAME", value_parser = parse_fault)]
        faults: Vec<Fault>,
        /// The cluster's size: `CP+W` (e.g. `3+197`) or a node count (3 control planes, the
        /// rest workers). Other sizes than the seed's 3+2 get a generated template and as many
        /// 512 GiB hosts as their VMs need.
        #[arg(long, value_name = "CP+W|N", default_value = "3+2", value_parser = twin::TwinSize::parse)]
        size: twin::TwinSize,
    },
    /// List the twin's faults and the scenario that must catch each.
    Faults,
    /// The twin's `omnictl` (the twin's lab file runs it through a wrapper script).
    #[command(hide = true)]
    Omnictl {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// The twin's `cilium` CLI (the twin's lab file runs it through a wrapper script).
    #[command(hide = true)]
    Cilium {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
}

fn parse_fault(s: &str) -> Result<Fault, String> {
    s.parse()
}

#[derive(Args)]
struct LintArgs {
    /// Cluster template to lint (default: the lab file's `cluster.template`).
    #[arg(long, value_name = "FILE")]
    template: Option<PathBuf>,
    /// Machine class files (default: the lab file's `cluster.machine_classes`).
    /// Takes several files after one flag, and may be repeated.
    #[arg(long, value_name = "FILE", num_args = 1..)]
    classes: Vec<PathBuf>,
    /// Lab file (default: the bundled seed lab).
    #[arg(long, value_name = "FILE")]
    lab: Option<PathBuf>,
    /// Exit 4 when there are warnings but no errors.
    #[arg(long)]
    strict: bool,
}

#[derive(Args)]
struct RunArgs {
    /// Lab file (default: start the built-in twin on loopback and run against it).
    #[arg(long, value_name = "FILE")]
    lab: Option<PathBuf>,
    /// Switch on a twin fault (repeatable; only without --lab). `clusterproof twin faults` lists them.
    #[arg(long = "fault", value_name = "NAME", value_parser = parse_fault)]
    faults: Vec<Fault>,
    /// Report directory (default: reports/<run-id>/, with reports/latest pointing at it).
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Allow actions that change the lab (provisioning, stopping a VM). Without it, such
    /// steps refuse to act.
    #[arg(long)]
    yes: bool,
    /// Plan only: change nothing, print what would be done.
    #[arg(long)]
    dry_run: bool,
    /// Exit 4 when checks pass with warnings.
    #[arg(long)]
    strict: bool,
    /// Go on to later phases after a phase did not pass (every verdict, for the full picture).
    #[arg(long)]
    keep_going: bool,
    /// Run only these scenarios (an id, or a glob with `*` such as `dod::*`; repeatable),
    /// plus their prerequisites. The command's phases still apply.
    #[arg(long, value_name = "ID|GLOB")]
    only: Vec<String>,
    /// Give up on a scenario after this long.
    #[arg(long, value_name = "DURATION", default_value = "15m", value_parser = harness::model::lab::parse_duration)]
    scenario_timeout: Duration,
}

fn main() -> ExitCode {
    init_tracing();
    // One rustls crypto provider for the whole process (kube-rs and reqwest both use it).
    harness::proxmox::tls::install_default_provider();
    let cli = Cli::parse();
    let code = match cli.command {
        Command::Lint(a) => lint(a),
        Command::List => list(),
        Command::Preflight(a) => run(a, &[Phase::Preflight], "preflight"),
        Command::Provision(a) => run(a, &[Phase::Provision], "provision"),
        Command::Verify(a) => run(a, &[Phase::Verify], "verify"),
        Command::Chaos(a) => run(a, &[Phase::Chaos], "chaos"),
        Command::Run(a) => run(a, &Phase::ALL, "run"),
        Command::Twin(TwinCommand::Serve { faults, size }) => twin_serve(faults, size),
        Command::Twin(TwinCommand::Faults) => twin_faults(),
        Command::Report { dir } => report(&dir),
        // Synchronous by design: the shim must not run inside an async runtime.
        Command::Twin(TwinCommand::Omnictl { args }) => {
            twin::omni::shim::main_with(args, twin::omni::shim::Env::from_process())
        }
        Command::Twin(TwinCommand::Cilium { args }) => {
            runtime().block_on(twin::cilium::main_with(args))
        }
    };
    ExitCode::from(u8::try_from(code).unwrap_or(3))
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("CLUSTERPROOF_LOG")
        .unwrap_or_else(|_| "warn".into());
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(filter)
        .init();
}

fn load_spec(lab: &Path, overrides: &Overrides) -> Result<LabSpec, i32> {
    LabSpec::load(lab, overrides).map_err(|e| {
        eprintln!("error: {e}");
        exit::BAD_INPUT
    })
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("cannot start the async runtime")
}

fn list() -> i32 {
    let cat = scenarios::catalog();
    let width = cat.iter().map(|s| s.id().len()).max().unwrap_or(0);
    for s in &cat {
        println!(
            "{:<width$}  {:<9}  {}",
            s.id(),
            s.phase().as_str(),
            s.proves()
        );
    }
    exit::OK
}

/// What `lint` checks: the lab file given (with its template and classes unless overridden);
/// or, with `--template` and no `--lab`, that template with the classes given or found beside
/// it, and no lab at all; otherwise the bundled seed lab, written to a temporary directory
/// that lives as long as the returned handle.
fn lint_spec(a: &LintArgs) -> Result<(LabSpec, Option<twin::bundle::SeedLab>), i32> {
    let overrides = Overrides {
        template: a.template.clone(),
        classes: a.classes.clone(),
    };
    if let Some(lab) = &a.lab {
        return load_spec(lab, &overrides).map(|s| (s, None));
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
    let spec = load_spec(&bundled.lab(), &overrides)?;
    Ok((spec, Some(bundled)))
}

fn lint(a: LintArgs) -> i32 {
    // `_bundled` keeps the bundled seed lab's files until the lint is done.
    let (spec, _bundled) = match lint_spec(&a) {
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
        run_id: run_id(),
        scenario_timeout: Duration::from_secs(60),
        keep_going: false,
    };
    let records = runtime().block_on(runner::run(
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
    let mut record = recorder.record();
    record.exit_code = runner::exit_code(&record, a.strict);
    record.exit_code
}

fn run_id() -> String {
    let now = chrono::Utc::now();
    let salt = (std::process::id() ^ now.timestamp_subsec_nanos()) & 0xffff;
    format!("{}-{salt:04x}", now.format("%Y%m%dT%H%M%SZ"))
}

fn run(a: RunArgs, phases: &[Phase], command: &str) -> i32 {
    match run_inner(a, phases, command) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            exit::NOT_EVALUATED
        }
    }
}

fn run_inner(a: RunArgs, phases: &[Phase], command: &str) -> anyhow::Result<i32> {
    if a.lab.is_some() && !a.faults.is_empty() {
        eprintln!(
            "error: --fault switches a fault of the built-in twin; it cannot be used with --lab"
        );
        return Ok(exit::BAD_INPUT);
    }
    let mut selected: Vec<Arc<dyn Scenario>> = scenarios::catalog()
        .into_iter()
        .filter(|s| phases.contains(&s.phase()))
        .collect();
    if !a.only.is_empty() {
        let selection = match harness::catalog::select(&selected, &a.only) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("error: {e}");
                return Ok(exit::BAD_INPUT);
            }
        };
        for id in &selection.pulled_in {
            let of: Vec<&str> = selection
                .scenarios
                .iter()
                .filter(|s| s.meta().after_ids().any(|d| d == *id))
                .map(|s| s.id())
                .collect();
            println!("also running {id} (a prerequisite of {})", of.join(", "));
        }
        selected = selection.scenarios;
    }
    if selected.is_empty() {
        let names: Vec<&str> = phases.iter().map(|p| p.as_str()).collect();
        eprintln!(
            "error: this build has no scenarios in phase {}; nothing to evaluate (see `clusterproof list`)",
            names.join(", ")
        );
        return Ok(exit::NOT_EVALUATED);
    }
    let rt = runtime();
    rt.block_on(async move {
        // Without --lab: the built-in twin, on loopback, for the length of the run.
        let twin = match &a.lab {
            Some(_) => None,
            None => Some(
                twin::Twin::start(twin_options(a.faults.clone()))
                    .await
                    .context("starting the built-in twin")?,
            ),
        };
        let lab_file = match (&a.lab, &twin) {
            (Some(l), _) => l.clone(),
            (None, Some(t)) => t.lab_path().to_path_buf(),
            (None, None) => unreachable!("a twin is started when there is no lab file"),
        };
        let result = run_lab(&a, &lab_file, twin.as_ref(), selected, command).await;
        if let Some(t) = twin {
            t.shutdown().await;
        }
        result
    })
}

async fn run_lab(
    a: &RunArgs,
    lab_file: &Path,
    twin: Option<&twin::Twin>,
    selected: Vec<Arc<dyn Scenario>>,
    command: &str,
) -> anyhow::Result<i32> {
    let spec = match load_spec(lab_file, &Overrides::default()) {
        Ok(s) => s,
        Err(code) => return Ok(code),
    };
    let id = run_id();
    let (out, is_default) = match &a.out {
        Some(d) => (d.clone(), false),
        None => (PathBuf::from("reports").join(&id), true),
    };
    std::fs::create_dir_all(&out)
        .with_context(|| format!("cannot create the report directory {}", out.display()))?;
    if is_default {
        point_latest(&out, &id);
    }
    let needs: Vec<Need> = selected
        .iter()
        .flat_map(|s| s.needs().iter().copied())
        .collect();
    let connect = ConnectOptions {
        needs,
        allow_changes: a.yes || twin.is_some(),
        dry_run: a.dry_run,
    };
    let lab = match Lab::connect(spec, connect) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: {}: {e}", lab_file.display());
            return Ok(exit::BAD_INPUT);
        }
    };
    let events = std::fs::File::create(out.join("events.jsonl"))
        .with_context(|| format!("cannot create {}/events.jsonl", out.display()))?;
    let bus = EventBus::new();
    let recorder = Recorder::default();
    bus.subscribe(JsonlWriter::new(std::io::BufWriter::new(events)));
    bus.subscribe(recorder.clone());
    bus.subscribe(FnSubscriber(progress));
    let mut cmdline = format!("clusterproof {command}");
    if let Some(t) = twin {
        cmdline.push_str(" (twin)");
        for f in &t.faults {
            cmdline.push_str(&format!(" --fault {f}"));
        }
    }
    if a.dry_run {
        cmdline.push_str(" --dry-run");
    }
    if a.yes {
        cmdline.push_str(" --yes");
    }
    if a.keep_going {
        cmdline.push_str(" --keep-going");
    }
    for p in &a.only {
        cmdline.push_str(&format!(" --only {p}"));
    }
    let opts = RunOptions {
        command: cmdline,
        run_id: id.clone(),
        scenario_timeout: a.scenario_timeout,
        keep_going: a.keep_going,
    };
    runner::run(Arc::new(lab), selected, &bus, &opts, interrupted()).await;
    let code = runner::exit_code(&recorder.record(), a.strict);
    bus.emit(EventKind::RunFinished { exit_code: code });
    // Taken after RunFinished, so result.json and a re-render from events.jsonl agree.
    let record = recorder.record();
    harness::report::write_all(&out, &record)
        .with_context(|| format!("writing reports to {}", out.display()))?;
    println!(
        "{}: {} passed, {} warned, {} failed, {} errors, {} skipped — reports in {}",
        match code {
            exit::OK => "PASSED",
            exit::FAILED => "FAILED",
            exit::WARNINGS_STRICT => "WARNINGS",
            _ => "NOT EVALUATED",
        },
        record.count(Verdict::Pass),
        record.count(Verdict::Warn),
        record.count(Verdict::Fail),
        record.count(Verdict::Error),
        record.count(Verdict::Skip),
        out.display()
    );
    Ok(code)
}

fn twin_serve(faults: Vec<Fault>, size: twin::TwinSize) -> i32 {
    runtime().block_on(async move {
        let opts = twin::TwinOptions {
            size,
            ..twin_options(faults)
        };
        let t = match twin::Twin::start(opts).await {
            Ok(t) => t,
            Err(e) => {
                eprintln!("error: {e}");
                return exit::NOT_EVALUATED;
            }
        };
        println!("lab file:      {}", t.lab_path().display());
        println!(
            "proxmox API:   {} (certificate SHA-256 {})",
            t.proxmox.url(),
            t.proxmox.fingerprint()
        );
        println!("DNS LAN view:  {}", t.dns.lan_addr());
        println!("DNS public:    {}", t.dns.public_addr());
        println!(
            "cluster:       {size} ({} nodes on {} Proxmox hosts)",
            size.nodes(),
            t.proxmox.host_count()
        );
        if !t.faults.is_empty() {
            println!(
                "faults:        {}",
                t.faults
                    .iter()
                    .map(|f| f.name())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        println!(
            "use it with:   clusterproof preflight --lab {}",
            t.lab_path().display()
        );
        println!("running until Ctrl-C");
        let reason = interrupted().await;
        eprintln!("{reason}: stopping the twin");
        t.shutdown().await;
        exit::OK
    })
}

/// The twin, with this very binary serving as its `omnictl` and `cilium` CLIs.
fn twin_options(faults: Vec<Fault>) -> twin::TwinOptions {
    twin::TwinOptions {
        faults,
        exe: std::env::current_exe().ok(),
        ..Default::default()
    }
}

fn report(dir: &Path) -> i32 {
    match harness::report::rerender(dir) {
        Ok(_) => {
            println!("reports re-rendered in {}", dir.display());
            exit::OK
        }
        Err(e) => {
            eprintln!("error: {e}");
            exit::BAD_INPUT
        }
    }
}

fn twin_faults() -> i32 {
    for f in Fault::ALL {
        let (scenario, expect) = f.caught_by();
        println!("{:<22} {:<28} {:?}", f.name(), scenario, expect);
    }
    exit::OK
}

/// `reports/latest` → `<run-id>` (best effort: a missing link never fails a run).
fn point_latest(out: &Path, id: &str) {
    let Some(parent) = out.parent() else { return };
    let latest = parent.join("latest");
    let _ = std::fs::remove_file(&latest);
    #[cfg(unix)]
    if let Err(e) = std::os::unix::fs::symlink(id, &latest) {
        tracing::warn!("cannot point {} at {id}: {e}", latest.display());
    }
}

/// Resolves with a reason on Ctrl-C or SIGTERM.
async fn interrupted() -> String {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = match signal(SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => return wait_ctrl_c().await,
        };
        tokio::select! {
            r = wait_ctrl_c() => r,
            _ = term.recv() => "SIGTERM".into(),
        }
    }
    #[cfg(not(unix))]
    wait_ctrl_c().await
}

async fn wait_ctrl_c() -> String {
    match tokio::signal::ctrl_c().await {
        Ok(()) => "Ctrl-C".into(),
        Err(_) => std::future::pending().await,
    }
}

/// Human progress on stderr.
fn progress(e: &harness::events::Event) {
    match &e.kind {
        EventKind::RunStarted {
            run_id,
            lab,
            scenarios,
            ..
        } => {
            eprintln!(
                "clusterproof {run_id} · lab {lab} · {} check(s)",
                scenarios.len()
            )
        }
        EventKind::PhaseStarted { phase } => eprintln!("── {phase}"),
        EventKind::ScenarioFinished { id, outcome, .. } => {
            eprintln!(
                "  {:<5} {id} ({:.2}s) {}",
                outcome.verdict.as_str().to_uppercase(),
                outcome.duration.as_secs_f64(),
                outcome.message
            );
            if outcome.verdict >= Verdict::Warn {
                for f in outcome
                    .findings
                    .iter()
                    .filter(|f| f.severity >= Severity::Warning)
                {
                    eprintln!("        {f}");
                }
            }
        }
        EventKind::RunInterrupted { reason } => {
            eprintln!("!! interrupted ({reason}): restoring and writing reports")
        }
        _ => {}
    }
}
