//! `omnictl`'s command line, parsed the way cobra and pflag do it (flags anywhere, `--x=v`,
//! `-xv`, combined short booleans, `--`), with cobra's error texts (`unknown flag: --foo`,
//! `unknown command "x" for "omnictl"`, `required flag(s) "file" not set`, …). Shared by
//! the shim (which needs to know what to read and write locally) and the endpoint (which
//! runs the command).

use std::collections::BTreeMap;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Bool,
    Str,
    /// Repeatable, comma-separated (`--groups a,b --groups c`).
    List,
    Duration,
}

#[derive(Debug, Clone, Copy)]
struct Spec {
    long: &'static str,
    short: Option<char>,
    kind: Kind,
}

const fn f(long: &'static str, short: Option<char>, kind: Kind) -> Spec {
    Spec { long, short, kind }
}

const GLOBAL: &[Spec] = &[
    f("omniconfig", None, Kind::Str),
    f("context", None, Kind::Str),
    f("insecure-skip-tls-verify", None, Kind::Bool),
    f("siderov1-keys-dir", None, Kind::Str),
    f("help", Some('h'), Kind::Bool),
];

const GET: &[Spec] = &[
    f("namespace", Some('n'), Kind::Str),
    f("watch", Some('w'), Kind::Bool),
    f("output", Some('o'), Kind::Str),
    f("selector", Some('l'), Kind::Str),
    f("id-match-regexp", None, Kind::Str),
];

const APPLY: &[Spec] = &[
    f("file", Some('f'), Kind::Str),
    f("dry-run", Some('d'), Kind::Bool),
    f("verbose", Some('v'), Kind::Bool),
];

const T_VALIDATE: &[Spec] = &[
    f("file", Some('f'), Kind::Str),
    f("allowed-dir", None, Kind::Str),
];
const T_SYNC: &[Spec] = &[
    f("file", Some('f'), Kind::Str),
    f("allowed-dir", None, Kind::Str),
    f("verbose", Some('v'), Kind::Bool),
    f("dry-run", Some('d'), Kind::Bool),
];
const T_STATUS: &[Spec] = &[
    f("file", Some('f'), Kind::Str),
    f("allowed-dir", None, Kind::Str),
    f("wait", Some('w'), Kind::Duration),
    f("quiet", Some('q'), Kind::Bool),
];
const T_DELETE: &[Spec] = &[
    f("file", Some('f'), Kind::Str),
    f("allowed-dir", None, Kind::Str),
    f("verbose", Some('v'), Kind::Bool),
    f("dry-run", Some('d'), Kind::Bool),
    f("destroy-disconnected-machines", None, Kind::Bool),
];
const T_DIFF: &[Spec] = &[
    f("file", Some('f'), Kind::Str),
    f("allowed-dir", None, Kind::Str),
];

const KUBECONFIG: &[Spec] = &[
    f("cluster", Some('c'), Kind::Str),
    f("force", Some('f'), Kind::Bool),
    f("force-context-name", None, Kind::Str),
    f("merge", Some('m'), Kind::Bool),
    f("service-account", None, Kind::Bool),
    f("ttl", None, Kind::Duration),
    f("user", None, Kind::Str),
    f("groups", None, Kind::List),
    f("grant-type", None, Kind::Str),
    f("break-glass", None, Kind::Bool),
    f("oidc-cache-base-dir", None, Kind::Str),
    f("oidc-cache-isolation", None, Kind::Bool),
];

/// Flags common to every command.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Global {
    pub omniconfig: Option<String>,
    pub context: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct GetArgs {
    pub kind: String,
    pub id: Option<String>,
    /// `None` when `-n` was not given (the type's default namespace applies).
    pub namespace: Option<String>,
    pub output: String,
    pub watch: bool,
    pub selector: String,
    pub id_regexp: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TemplateArgs {
    pub file: String,
    pub verbose: bool,
    pub dry_run: bool,
    pub wait: Duration,
    pub quiet: bool,
    pub destroy_disconnected: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct KubeconfigArgs {
    pub path: Option<String>,
    pub cluster: String,
    pub force: bool,
    pub merge: bool,
    pub force_context_name: String,
    pub service_account: bool,
    pub ttl: Duration,
    pub user: String,
    pub groups: Vec<String>,
    pub break_glass: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TemplateVerb {
    Validate,
    Sync,
    Status,
    Delete,
    Diff,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    Get(GetArgs),
    Apply {
        file: String,
        dry_run: bool,
        verbose: bool,
    },
    Template(TemplateVerb, TemplateArgs),
    Kubeconfig(KubeconfigArgs),
    /// `--help` or a command group without a verb: usage text on stdout, exit 0.
    Help(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Parsed {
    pub global: Global,
    pub command: Command,
}

/// What went wrong on the command line, as cobra words it. `Display` is the text after
/// `Error: `.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CliError {
    #[error("unknown command {0:?} for {1:?}")]
    UnknownCommand(String, String),
    #[error("{0}")]
    Flag(String),
}

impl CliError {
    /// The full stderr cobra writes for it.
    pub fn stderr(&self) -> String {
        match self {
            CliError::UnknownCommand(_, path) => {
                format!("Error: {self}\nRun '{path} --help' for usage.\n")
            }
            CliError::Flag(_) => format!("Error: {self}\n"),
        }
    }
}

#[derive(Debug, Default)]
struct Values {
    set: BTreeMap<&'static str, Vec<String>>,
}

impl Values {
    fn str(&self, long: &str) -> Option<String> {
        self.set.get(long).and_then(|v| v.last()).cloned()
    }

    fn bool(&self, long: &str, default: bool) -> bool {
        self.set
            .get(long)
            .and_then(|v| v.last())
            .map(|s| s == "true")
            .unwrap_or(default)
    }

    fn list(&self, long: &str) -> Option<Vec<String>> {
        self.set.get(long).map(|vs| {
            vs.iter()
                .flat_map(|v| v.split(','))
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect()
        })
    }

    fn duration(&self, long: &str, default: Duration) -> Duration {
        self.str(long)
            .and_then(|s| parse_duration(&s))
            .unwrap_or(default)
    }
}

fn flag_name(s: &Spec) -> String {
    match s.short {
        Some(c) => format!("-{c}, --{}", s.long),
        None => format!("--{}", s.long),
    }
}

fn parse_bool(v: &str) -> Option<bool> {
    match v {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Some(false),
        _ => None,
    }
}

fn store(values: &mut Values, spec: &Spec, v: String) -> Result<(), CliError> {
    let v = match spec.kind {
        Kind::Bool => match parse_bool(&v) {
            Some(b) => b.to_string(),
            None => {
                return Err(CliError::Flag(format!(
                    "invalid argument {v:?} for {:?} flag: strconv.ParseBool: parsing {v:?}: invalid syntax",
                    flag_name(spec)
                )));
            }
        },
        Kind::Duration => {
            if parse_duration(&v).is_none() {
                return Err(CliError::Flag(format!(
                    "invalid argument {v:?} for {:?} flag: time: invalid duration {v:?}",
                    flag_name(spec)
                )));
            }
            v
        }
        Kind::Str | Kind::List => v,
    };
    values.set.entry(spec.long).or_default().push(v);
    Ok(())
}

/// pflag's parse: positionals and flag values.
fn parse_flags(args: &[String], specs: &[&[Spec]]) -> Result<(Vec<String>, Values), CliError> {
    let all: Vec<&Spec> = specs.iter().flat_map(|s| s.iter()).collect();
    let by_long = |name: &str| all.iter().copied().find(|s| s.long == name);
    let by_short = |c: char| all.iter().copied().find(|s| s.short == Some(c));
    let mut values = Values::default();
    let mut positional = Vec::new();
    let mut i = 0;
    while i < args.len() {
        let a = &args[i];
        i += 1;
        if a == "--" {
            positional.extend(args[i..].iter().cloned());
            break;
        }
        if let Some(body) = a.strip_prefix("--") {
            let (name, inline) = match body.split_once('=') {
                Some((n, v)) => (n, Some(v.to_string())),
                None => (body, None),
            };
            let spec =
                by_long(name).ok_or_else(|| CliError::Flag(format!("unknown flag: --{name}")))?;
            let v = match (inline, spec.kind) {
                (Some(v), _) => v,
                (None, Kind::Bool) => "true".into(),
                (None, _) => {
                    let v = args.get(i).cloned().ok_or_else(|| {
                        CliError::Flag(format!("flag needs an argument: --{name}"))
                    })?;
                    i += 1;
                    v
                }
            };
            store(&mut values, spec, v)?;
        } else if a.len() > 1 && a.starts_with('-') {
            let chars: Vec<char> = a[1..].chars().collect();
            let mut j = 0;
            while j < chars.len() {
                let c = chars[j];
                let spec = by_short(c).ok_or_else(|| {
                    CliError::Flag(format!("unknown shorthand flag: '{c}' in {a}"))
                })?;
                let rest: String = chars[j + 1..].iter().collect();
                if spec.kind == Kind::Bool {
                    if let Some(v) = rest.strip_prefix('=') {
                        store(&mut values, spec, v.to_string())?;
                        break;
                    }
                    store(&mut values, spec, "true".into())?;
                    j += 1;
                    continue;
                }
                let v = if let Some(v) = rest.strip_prefix('=') {
                    v.to_string()
                } else if !rest.is_empty() {
                    rest
                } else {
                    let v = args.get(i).cloned().ok_or_else(|| {
                        CliError::Flag(format!("flag needs an argument: '{c}' in -{c}"))
                    })?;
                    i += 1;
                    v
                };
                store(&mut values, spec, v)?;
                break;
            }
        } else {
            positional.push(a.clone());
        }
    }
    Ok((positional, values))
}

/// Split off the command words (`get`, `cluster template sync`, …) from the flags, skipping
/// the values of global flags that take one.
fn command_words(args: &[String]) -> (Vec<(usize, String)>, usize) {
    let mut words = Vec::new();
    let mut i = 0;
    let takes_value = |a: &str| {
        let name = a.trim_start_matches('-');
        !a.contains('=')
            && GLOBAL
                .iter()
                .any(|s| s.long == name && s.kind != Kind::Bool)
    };
    while i < args.len() && words.len() < 3 {
        let a = &args[i];
        if a == "--" {
            break;
        }
        if a.starts_with('-') && a.len() > 1 {
            if takes_value(a) {
                i += 1;
            }
            i += 1;
            continue;
        }
        words.push((i, a.clone()));
        // Only `cluster template` has nested verbs.
        let path: Vec<&str> = words.iter().map(|(_, w)| w.as_str()).collect();
        if !matches!(path.as_slice(), ["cluster"] | ["cluster", "template"]) {
            break;
        }
        i += 1;
    }
    (words, i)
}

fn usage(path: &str) -> String {
    match path {
        "omnictl" => "omnictl (clusterproof twin) controls the twin's Omni.\n\nUsage:\n  omnictl [command]\n\nAvailable Commands:\n  apply       Create or update resource using YAML file as an input\n  cluster     Cluster-related subcommands.\n  get         Get a specific resource or list of resources.\n  kubeconfig  Download the admin kubeconfig of a cluster\n".into(),
        "omnictl cluster" => "Cluster-related subcommands.\n\nUsage:\n  omnictl cluster [command]\n\nAvailable Commands:\n  template    Cluster template management subcommands.\n".into(),
        "omnictl cluster template" => "Cluster template management subcommands.\n\nUsage:\n  omnictl cluster template [command]\n\nAvailable Commands:\n  delete      Delete all cluster template resources from Omni.\n  diff        Show diff in resources if the template is synced.\n  status      Show template cluster status, wait for the cluster to be ready.\n  sync        Apply template to the Omni.\n  validate    Validate template contents.\n".into(),
        other => format!("Usage:\n  {other} [flags]\n"),
    }
}

/// Parse `omnictl`'s arguments (without the program name).
pub fn parse(args: &[String]) -> Result<Parsed, CliError> {
    let (words, _) = command_words(args);
    let positions: Vec<usize> = words.iter().map(|(i, _)| *i).collect();
    let rest: Vec<String> = args
        .iter()
        .enumerate()
        .filter(|(i, _)| !positions.contains(i))
        .map(|(_, a)| a.clone())
        .collect();
    let path: Vec<&str> = words.iter().map(|(_, w)| w.as_str()).collect();
    let specs: &[Spec] = match path.as_slice() {
        [] => &[],
        ["get" | "g"] => GET,
        ["apply"] => APPLY,
        ["kubeconfig"] => KUBECONFIG,
        ["cluster"] | ["cluster", "template"] => &[],
        ["cluster", "template", "validate"] => T_VALIDATE,
        ["cluster", "template", "sync"] => T_SYNC,
        ["cluster", "template", "status"] => T_STATUS,
        ["cluster", "template", "delete"] => T_DELETE,
        ["cluster", "template", "diff"] => T_DIFF,
        ["cluster", "template", other] => {
            return Err(CliError::UnknownCommand(
                (*other).to_string(),
                "omnictl cluster template".into(),
            ));
        }
        ["cluster", other] => {
            return Err(CliError::UnknownCommand(
                (*other).to_string(),
                "omnictl cluster".into(),
            ));
        }
        [other, ..] => {
            return Err(CliError::UnknownCommand(
                (*other).to_string(),
                "omnictl".into(),
            ));
        }
    };
    let (pos, v) = parse_flags(&rest, &[GLOBAL, specs])?;
    let global = Global {
        omniconfig: v.str("omniconfig"),
        context: v.str("context"),
    };
    let cmd_path = {
        let mut p = vec!["omnictl"];
        p.extend(path.iter().map(|w| if *w == "g" { "get" } else { w }));
        p.join(" ")
    };
    if v.bool("help", false)
        || matches!(path.as_slice(), [] | ["cluster"] | ["cluster", "template"])
    {
        return Ok(Parsed {
            global,
            command: Command::Help(usage(&cmd_path)),
        });
    }
    let required = |name: &str| -> Result<String, CliError> {
        v.str(name)
            .ok_or_else(|| CliError::Flag(format!("required flag(s) {name:?} not set")))
    };
    let command = match path.as_slice() {
        ["get" | "g"] => {
            if pos.is_empty() || pos.len() > 2 {
                return Err(CliError::Flag(format!(
                    "accepts between 1 and 2 arg(s), received {}",
                    pos.len()
                )));
            }
            Command::Get(GetArgs {
                kind: pos[0].clone(),
                id: pos.get(1).cloned(),
                namespace: v.str("namespace"),
                output: v.str("output").unwrap_or_else(|| "table".into()),
                watch: v.bool("watch", false),
                selector: v.str("selector").unwrap_or_default(),
                id_regexp: v.str("id-match-regexp").unwrap_or_default(),
            })
        }
        ["apply"] => {
            no_args(&pos, "apply")?;
            Command::Apply {
                file: required("file")?,
                dry_run: v.bool("dry-run", false),
                verbose: v.bool("verbose", false),
            }
        }
        ["kubeconfig"] => {
            if pos.len() > 1 {
                return Err(CliError::Flag(format!(
                    "accepts at most 1 arg(s), received {}",
                    pos.len()
                )));
            }
            Command::Kubeconfig(KubeconfigArgs {
                path: pos.first().cloned(),
                cluster: required("cluster")?,
                force: v.bool("force", false),
                merge: v.bool("merge", true),
                force_context_name: v.str("force-context-name").unwrap_or_default(),
                service_account: v.bool("service-account", false),
                ttl: v.duration("ttl", Duration::from_secs(8760 * 3600)),
                user: v.str("user").unwrap_or_default(),
                groups: v
                    .list("groups")
                    .unwrap_or_else(|| vec!["system:masters".into()]),
                break_glass: v.bool("break-glass", false),
            })
        }
        ["cluster", "template", verb] => {
            no_args(&pos, verb)?;
            let verb = match *verb {
                "validate" => TemplateVerb::Validate,
                "sync" => TemplateVerb::Sync,
                "status" => TemplateVerb::Status,
                "delete" => TemplateVerb::Delete,
                _ => TemplateVerb::Diff,
            };
            Command::Template(
                verb,
                TemplateArgs {
                    file: required("file")?,
                    verbose: v.bool("verbose", false),
                    dry_run: v.bool("dry-run", false),
                    wait: v.duration("wait", Duration::from_secs(300)),
                    quiet: v.bool("quiet", false),
                    destroy_disconnected: v.bool("destroy-disconnected-machines", false),
                },
            )
        }
        _ => Command::Help(usage(&cmd_path)),
    };
    Ok(Parsed { global, command })
}

fn no_args(pos: &[String], cmd: &str) -> Result<(), CliError> {
    match pos.first() {
        Some(a) => Err(CliError::UnknownCommand(
            a.clone(),
            format!("omnictl {cmd}"),
        )),
        None => Ok(()),
    }
}

/// Go's `time.ParseDuration`.
pub fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    let body = s.strip_prefix('+').unwrap_or(s);
    if body.starts_with('-') {
        return None;
    }
    if body == "0" {
        return Some(Duration::ZERO);
    }
    if body.is_empty() {
        return None;
    }
    let mut total = 0f64;
    let mut rest = body;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if num_len == 0 {
            return None;
        }
        let n: f64 = rest[..num_len].parse().ok()?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" | "μs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        rest = &rest[unit_len..];
        total += n * unit;
    }
    Some(Duration::from_secs_f64(total))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(args: &[&str]) -> Result<Parsed, CliError> {
        parse(&args.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn flags_parse_like_pflag() {
        let c = p(&["get", "machinerequests", "-wojson", "--namespace=x"]).unwrap();
        match c.command {
            Command::Get(g) => {
                assert!(g.watch);
                assert_eq!(g.output, "json");
                assert_eq!(g.namespace.as_deref(), Some("x"));
            }
            other => panic!("{other:?}"),
        }
        let c = p(&[
            "--context",
            "x",
            "kubeconfig",
            "out",
            "-c",
            "a",
            "--merge=false",
            "-f",
        ])
        .unwrap();
        match c.command {
            Command::Kubeconfig(k) => {
                assert!(!k.merge && k.force);
                assert_eq!(k.path.as_deref(), Some("out"));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(c.global.context.as_deref(), Some("x"));
        let c = p(&[
            "cluster", "template", "status", "-f", "t.yaml", "--wait", "0",
        ])
        .unwrap();
        match c.command {
            Command::Template(TemplateVerb::Status, a) => assert_eq!(a.wait, Duration::ZERO),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn errors_are_cobras() {
        assert_eq!(
            p(&["x"]).unwrap_err().stderr(),
            "Error: unknown command \"x\" for \"omnictl\"\nRun 'omnictl --help' for usage.\n"
        );
        assert_eq!(
            p(&["get", "a", "--foo"]).unwrap_err().to_string(),
            "unknown flag: --foo"
        );
        assert_eq!(
            p(&["get", "a", "-z"]).unwrap_err().to_string(),
            "unknown shorthand flag: 'z' in -z"
        );
        assert_eq!(
            p(&["cluster", "template", "sync"]).unwrap_err().to_string(),
            "required flag(s) \"file\" not set"
        );
        assert_eq!(
            p(&["kubeconfig"]).unwrap_err().to_string(),
            "required flag(s) \"cluster\" not set"
        );
        assert_eq!(
            p(&["get"]).unwrap_err().to_string(),
            "accepts between 1 and 2 arg(s), received 0"
        );
    }

    #[test]
    fn durations_parse_like_go() {
        assert_eq!(parse_duration("5m"), Some(Duration::from_secs(300)));
        assert_eq!(parse_duration("1h30m"), Some(Duration::from_secs(5400)));
        assert_eq!(parse_duration("0"), Some(Duration::ZERO));
        assert_eq!(parse_duration("1.5s"), Some(Duration::from_millis(1500)));
        assert_eq!(parse_duration("5"), None);
    }
}
