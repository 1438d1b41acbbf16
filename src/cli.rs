//! The command line's shape: every subcommand, flag and example. `src/main.rs` parses with
//! it; tests check CI templates' `clusterproof …` lines against [`command`].

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, CommandFactory, Parser, Subcommand, ValueEnum};
use twin::faults::Fault;

use crate::session::{ChaosMode, ChaosTarget};

#[derive(Parser, Debug)]
#[command(
    name = "clusterproof",
    version,
    about = "Validation and chaos test harness for Talos clusters provisioned by Omni on Proxmox VE with Cilium.",
    long_about = None,
    after_help = "Example:\n  clusterproof run                      # everything, against the built-in twin\n  clusterproof preflight --lab lab.toml # the checks before a deploy, against your lab"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Check the cluster template and machine classes offline (no cluster needed).
    ///
    /// With no arguments, lints the bundled seed lab. Exit 0 clean (warnings allowed),
    /// 1 problems found, 2 a file could not be read or is not valid YAML/TOML.
    #[command(
        after_help = "Example:\n  clusterproof lint --template clusters/prod.yaml --classes machine-classes/*.yaml"
    )]
    Lint(LintArgs),
    /// List every scenario: id, phase, and the plan line it proves.
    #[command(after_help = "Example:\n  clusterproof list | grep dod::")]
    List,
    /// Run the preflight checks (before `omnictl cluster template sync`).
    #[command(
        after_help = "Example:\n  clusterproof preflight --lab lab.toml --out reports/preflight"
    )]
    Preflight(RunArgs),
    /// Run the provisioning steps (machine classes, template sync, kubeconfig, Cilium).
    #[command(after_help = "Example:\n  clusterproof provision --lab lab.toml --yes")]
    Provision(RunArgs),
    /// Verify every Definition-of-Done item on a running cluster.
    #[command(
        after_help = "Example:\n  clusterproof verify --lab lab.toml --only 'dod::*' --output json"
    )]
    Verify(RunArgs),
    /// Run the node-failure chaos experiment.
    ///
    /// `clusterproof chaos` runs the chaos phase as `chaos node-failure` with its defaults.
    #[command(
        args_conflicts_with_subcommands = true,
        after_help = "Example:\n  clusterproof chaos node-failure --lab lab.toml --target worker --mode stop --yes --out reports/chaos\n  clusterproof chaos recover --lab lab.toml"
    )]
    Chaos(ChaosArgs),
    /// The full run: preflight, provision, verify, chaos — each phase gated on the one before.
    #[command(after_help = "Example:\n  clusterproof run --keep-going --out reports/full")]
    Run(RunArgs),
    /// The built-in twin: an emulation of the seed lab on loopback.
    #[command(
        subcommand,
        after_help = "Example:\n  clusterproof twin serve --fault storage-missing"
    )]
    Twin(TwinCommand),
    /// Re-render every report of a run (summary.md, report.html, junit.xml, metrics.prom)
    /// from its result.json and events.jsonl.
    #[command(after_help = "Example:\n  clusterproof report reports/latest")]
    Report {
        /// The run's report directory (reports/<run-id>, or the --out DIR of the run).
        dir: PathBuf,
    },
    /// Measure time to a verdict, API footprint, peak RSS and detection latency against
    /// twins of several sizes, beside a `kubectl get nodes` poller (build with --release).
    #[command(
        after_help = "Example:\n  cargo run --release -- bench --nodes 5,50,500\n  clusterproof bench --nodes 5 --json"
    )]
    Bench(crate::bench::BenchArgs),
    /// Run a command and write its exit code, wall time and peak RSS (`wait4`) as JSON to
    /// FILE: how the bench runs the children it measures (see `src/bench.rs`).
    #[command(
        name = "bench-child",
        hide = true,
        after_help = "Example:\n  clusterproof bench-child --report m.json -- clusterproof verify --lab lab.toml"
    )]
    BenchChild {
        /// Where the measurement goes.
        #[arg(long, value_name = "FILE")]
        report: PathBuf,
        /// The command and its arguments (after `--`).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true)]
        command: Vec<String>,
    },
}

#[derive(Args, Debug)]
pub struct ChaosArgs {
    #[command(subcommand)]
    pub action: Option<ChaosCommand>,
    #[command(flatten)]
    pub run: RunArgs,
}

#[derive(Subcommand, Debug)]
pub enum ChaosCommand {
    /// Stop one node's VM, watch the cluster notice and heal, start it again.
    #[command(
        after_help = "Example:\n  clusterproof chaos node-failure --lab lab.toml --target worker --mode stop --yes --out reports/chaos\n  clusterproof chaos node-failure --lab lab.toml --target talos-w1 --dry-run"
    )]
    NodeFailure(NodeFailureArgs),
    /// Finish what a killed chaos run left unrestored (its journal in the lab's state_dir).
    #[command(after_help = "Example:\n  clusterproof chaos recover --lab lab.toml")]
    Recover {
        /// Lab file (its `state_dir` holds the chaos journal).
        #[arg(long, value_name = "FILE")]
        lab: PathBuf,
    },
}

#[derive(Args, Debug)]
pub struct NodeFailureArgs {
    /// The victim: any worker, any control plane, or a node by name.
    /// Default: the lab's `chaos.target`, else a worker.
    #[arg(long, value_name = "worker|control-plane|NODE")]
    pub target: Option<ChaosTarget>,
    /// How the VM is taken down (Proxmox: stop, shutdown, reset, suspend). Default: the lab's
    /// `chaos.mode`, else stop.
    #[arg(long, value_name = "stop|shutdown|reset|suspend")]
    pub mode: Option<ChaosMode>,
    /// Seed for choosing the victim among the candidates (default: random, recorded).
    #[arg(long, value_name = "N")]
    pub seed: Option<u64>,
    #[command(flatten)]
    pub run: RunArgs,
}

#[derive(Subcommand, Debug)]
pub enum TwinCommand {
    /// Start the twin, print its lab file and endpoints, and run until Ctrl-C.
    #[command(
        after_help = "Example:\n  clusterproof twin serve --size 3+7 --fault dns-public-leak"
    )]
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
    #[command(after_help = "Example:\n  clusterproof twin faults")]
    Faults,
    /// The twin's `omnictl` (the twin's lab file runs it through a wrapper script).
    #[command(
        hide = true,
        after_help = "Example:\n  clusterproof twin omnictl get machines"
    )]
    Omnictl {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// The twin's `cilium` CLI (the twin's lab file runs it through a wrapper script).
    #[command(
        hide = true,
        after_help = "Example:\n  clusterproof twin cilium status --wait"
    )]
    Cilium {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
}

fn parse_fault(s: &str) -> Result<Fault, String> {
    s.parse()
}

#[derive(Args, Debug)]
pub struct LintArgs {
    /// Cluster template to lint (default: the lab file's `cluster.template`).
    #[arg(long, value_name = "FILE")]
    pub template: Option<PathBuf>,
    /// Machine class files (default: the lab file's `cluster.machine_classes`).
    /// Takes several files after one flag, and may be repeated.
    #[arg(long, value_name = "FILE", num_args = 1..)]
    pub classes: Vec<PathBuf>,
    /// Lab file (default: the bundled seed lab).
    #[arg(long, value_name = "FILE")]
    pub lab: Option<PathBuf>,
    /// Exit 4 when there are warnings but no errors.
    #[arg(long)]
    pub strict: bool,
}

/// How a run command prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum Output {
    /// Progress on stderr, the final table and line on stdout.
    #[default]
    Human,
    /// The run record (result.json) on stdout and nothing else; progress on stderr.
    Json,
}

#[derive(Args, Debug, Clone)]
pub struct RunArgs {
    /// Lab file (default: start the built-in twin on loopback and run against it).
    #[arg(long, value_name = "FILE")]
    pub lab: Option<PathBuf>,
    /// Switch on a twin fault (repeatable; only without --lab). `clusterproof twin faults` lists them.
    #[arg(long = "fault", value_name = "NAME", value_parser = parse_fault)]
    pub faults: Vec<Fault>,
    /// Report directory (default: reports/<run-id>/, with reports/latest pointing at it).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Allow actions that change the lab (provisioning, stopping a VM). Without it, such
    /// steps refuse to act.
    #[arg(long)]
    pub yes: bool,
    /// Plan only: change nothing, print what would be done.
    #[arg(long)]
    pub dry_run: bool,
    /// Exit 4 when checks pass with warnings.
    #[arg(long)]
    pub strict: bool,
    /// Go on to later phases after a phase did not pass (every verdict, for the full picture).
    #[arg(long)]
    pub keep_going: bool,
    /// Run only these scenarios (an id, or a glob with `*` such as `dod::*`; repeatable),
    /// plus their prerequisites. The command's phases still apply.
    #[arg(long, value_name = "ID|GLOB")]
    pub only: Vec<String>,
    /// Give up on a scenario after this long.
    #[arg(long, value_name = "DURATION", default_value = "15m", value_parser = harness::model::lab::parse_duration)]
    pub scenario_timeout: Duration,
    /// Print only the final line (no progress, no table).
    #[arg(long, short)]
    pub quiet: bool,
    /// `json`: the run record on stdout (as in result.json), nothing else on stdout.
    #[arg(long, value_enum, default_value_t = Output::Human)]
    pub output: Output,
}

/// The real command-line definition (what `clusterproof` parses), for checking command
/// lines written elsewhere (CI templates, docs) with `try_get_matches_from`.
pub fn command() -> clap::Command {
    Cli::command()
}
