//! `clusterproof` — the command line: argument parsing and printing. The run session is
//! `clusterproof::session`, the command line's shape `clusterproof::cli`.

use std::io::IsTerminal;
use std::path::Path;
use std::process::ExitCode;

use clap::Parser;
use clusterproof::cli::{ChaosCommand, Cli, Command, Output, RunArgs, TwinCommand};
use clusterproof::session::{self, ChaosRequest, Session};
use clusterproof::terminal::{self, Palette, Progress};
use harness::runner::exit;
use harness::scenario::Phase;
use twin::faults::Fault;

fn main() -> ExitCode {
    init_tracing();
    // One rustls crypto provider for the whole process (kube-rs and reqwest both use it).
    harness::proxmox::tls::install_default_provider();
    let cli = Cli::parse();
    let code = match cli.command {
        Command::Lint(a) => clusterproof::lint::lint(&a),
        Command::List => list(),
        Command::Preflight(a) => run(a, &[Phase::Preflight], "preflight", None),
        Command::Provision(a) => run(a, &[Phase::Provision], "provision", None),
        Command::Verify(a) => run(a, &[Phase::Verify], "verify", None),
        Command::Chaos(c) => match c.action {
            None => run(c.run, &[Phase::Chaos], "chaos", None),
            Some(ChaosCommand::NodeFailure(n)) => {
                let request = ChaosRequest {
                    target: n.target,
                    mode: n.mode,
                    seed: n.seed,
                };
                run(n.run, &[Phase::Chaos], "chaos node-failure", Some(request))
            }
            Some(ChaosCommand::Recover { lab }) => chaos_recover(&lab),
        },
        Command::Run(a) => run(a, &Phase::ALL, "run", None),
        Command::Twin(TwinCommand::Serve { faults, size }) => twin_serve(faults, size),
        Command::Twin(TwinCommand::Faults) => twin_faults(),
        Command::Report { dir } => report(&dir),
        Command::Bench(a) => clusterproof::bench::main(a),
        Command::BenchChild { report, command } => {
            clusterproof::bench::bench_child(&report, &command)
        }
        // Synchronous by design: the shim must not run inside an async runtime.
        Command::Twin(TwinCommand::Omnictl { args }) => {
            twin::omni::shim::main_with(args, twin::omni::shim::Env::from_process())
        }
        Command::Twin(TwinCommand::Cilium { args }) => match clusterproof::runtime() {
            Ok(rt) => rt.block_on(twin::cilium::main_with(args)),
            Err(e) => no_runtime(e),
        },
    };
    ExitCode::from(u8::try_from(code).unwrap_or(3))
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("CLUSTERPROOF_LOG")
        // kube-rs logs every non-2xx answer at error level; the probes that get them (a
        // canary behind a stopped node) report them themselves.
        .unwrap_or_else(|_| "warn,kube_client::client::builder=off".into());
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(terminal::colours(std::io::stderr().is_terminal()))
        .with_env_filter(filter)
        .init();
}

fn no_runtime(e: std::io::Error) -> i32 {
    eprintln!("error: cannot start the async runtime: {e}");
    exit::NOT_EVALUATED
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

/// A run command: the session, with progress on stderr unless `--quiet`; then the table and
/// final line (stdout), or with `--output json` the run record alone on stdout.
fn run(a: RunArgs, phases: &[Phase], command: &str, chaos: Option<ChaosRequest>) -> i32 {
    let rt = match clusterproof::runtime() {
        Ok(rt) => rt,
        Err(e) => return no_runtime(e),
    };
    let json = a.output == Output::Json;
    // Human text goes to stdout, unless stdout is for the JSON record.
    let say = |s: &str| {
        if json {
            eprintln!("{s}")
        } else {
            println!("{s}")
        }
    };
    let palette = Palette::new(terminal::colours(if json {
        std::io::stderr().is_terminal()
    } else {
        std::io::stdout().is_terminal()
    }));
    rt.block_on(async {
        let mut b = Session::builder()
            .lab_or_twin(a.lab.clone(), twin_options(a.faults.clone()))
            .phases(phases)
            .command(command)
            .only(a.only.clone())
            .keep_going(a.keep_going)
            .strict(a.strict)
            .allow_changes(a.yes)
            .dry_run(a.dry_run)
            .scenario_timeout(a.scenario_timeout)
            .interrupt(session::interrupted());
        if let Some(out) = &a.out {
            b = b.out_dir(out);
        }
        if let Some(c) = chaos {
            b = b.chaos(c);
        }
        if !a.quiet {
            b = b.subscribe(Progress::stderr(a.scenario_timeout));
        }
        let session = match b.build().await {
            Ok(s) => s,
            Err(e) => {
                eprintln!("error: {e}");
                return e.exit_code();
            }
        };
        if !a.quiet {
            for n in session.notes() {
                say(n);
            }
        }
        let outcome = match session.run().await {
            Ok(o) => o,
            Err(e) => {
                eprintln!("error: {e}");
                return e.exit_code();
            }
        };
        if !a.quiet {
            let table = terminal::table(&outcome.record, &palette);
            say(table.trim_end());
        }
        say(&terminal::final_line(
            &outcome.record,
            &outcome.report_dir,
            &palette,
        ));
        if json {
            match serde_json::to_string_pretty(&outcome.record) {
                Ok(j) => println!("{j}"),
                Err(e) => {
                    eprintln!("error: the run record does not serialize: {e}");
                    return exit::NOT_EVALUATED;
                }
            }
        }
        outcome.exit_code
    })
}

/// `chaos recover`: finish the unfinished chaos journal in the lab's state directory (a run
/// killed before it could restore): the VM running again with its HA state, the run's lock
/// released, the journal removed.
fn chaos_recover(lab_path: &Path) -> i32 {
    use harness::scenario::{ConnectOptions, Lab, Need};
    let spec = match harness::spec::LabSpec::load(lab_path, &Default::default()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return exit::BAD_INPUT;
        }
    };
    let state = spec.lab.state_dir.clone();
    let rt = match clusterproof::runtime() {
        Ok(rt) => rt,
        Err(e) => return no_runtime(e),
    };
    rt.block_on(async move {
        let opts = ConnectOptions {
            needs: vec![Need::Proxmox, Need::Omni, Need::Kube],
            allow_changes: true,
            dry_run: false,
        };
        let unfinished = match harness::chaos::journal::Journal::load(&state) {
            Ok(j) => j.is_some(),
            Err(e) => {
                eprintln!("error: {e}");
                return exit::BAD_INPUT;
            }
        };
        let lab = match Lab::connect(spec, opts) {
            Ok(l) => l,
            // Nothing to restore: the connection was only for a killed run's stale lock.
            Err(_) if !unfinished => {
                println!("no unfinished chaos journal in {}", state.display());
                return exit::OK;
            }
            Err(e) => {
                eprintln!("error: cannot connect to {}: {e}", lab_path.display());
                return exit::BAD_INPUT;
            }
        };
        match harness::chaos::recover(&lab).await {
            Ok(r) => match r.journal {
                None => {
                    println!("no unfinished chaos journal in {}", state.display());
                    for l in r.evidence {
                        println!("  {l}");
                    }
                    exit::OK
                }
                Some(j) => {
                    println!(
                        "recovered the {} of node {} (VM {} on {}, run {}):",
                        j.mode, j.victim, j.vm.vmid, j.vm.host, j.run_id
                    );
                    for l in r.evidence {
                        println!("  {l}");
                    }
                    exit::OK
                }
            },
            Err(e) => {
                eprintln!("error: recovery did not finish: {e}");
                eprintln!(
                    "the journal stays in {}; fix the cause and run `clusterproof chaos recover --lab {}` again",
                    state.display(),
                    lab_path.display()
                );
                exit::NOT_EVALUATED
            }
        }
    })
}

fn twin_serve(faults: Vec<Fault>, size: twin::TwinSize) -> i32 {
    let rt = match clusterproof::runtime() {
        Ok(rt) => rt,
        Err(e) => return no_runtime(e),
    };
    rt.block_on(async move {
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
        let reason = session::interrupted().await;
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
