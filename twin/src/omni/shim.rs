//! `omnictl-twin`: the twin's `omnictl`. A thin client of the twin's Omni endpoint that
//! behaves like `omnictl` where a caller can see it (omni.md §2, §4, §8, §11.12–13):
//!
//! - the command line is parsed first (cobra errors, exit 1);
//! - `cluster template validate` works offline, in-process;
//! - every other command creates the omniconfig if missing, then reads the service-account
//!   key — `SIDERO_SERVICE_ACCOUNT_KEY` first *by presence*, then
//!   `OMNI_SERVICE_ACCOUNT_KEY` — and decodes it locally (base64 → JSON `{name, pgp_key}` →
//!   armored PGP block), failing before any network call; with a key, `OMNI_ENDPOINT` is
//!   required;
//! - files named by `-f` are read here and sent along; `kubeconfig` resolves its path here
//!   and writes (or merges) the file here, never to stdout;
//! - stdout, stderr and the exit code are the endpoint's, streamed (watches run until the
//!   process is killed).
//!
//! The key is never printed or logged; only its identity is sent.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use base64::Engine as _;

use super::cli::{self, Command, KubeconfigArgs, TemplateVerb};
use super::template;
use super::value::to_yaml_k8s;
use super::wire::{FileArg, Frame, PATH, Request};

/// The process environment the shim runs in (injectable for tests).
#[derive(Debug, Clone, Default)]
pub struct Env {
    pub vars: BTreeMap<String, String>,
    pub cwd: PathBuf,
}

impl Env {
    pub fn from_process() -> Env {
        Env {
            vars: std::env::vars_os()
                .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
                .collect(),
            cwd: std::env::current_dir().unwrap_or_else(|_| PathBuf::from(".")),
        }
    }

    fn var(&self, k: &str) -> Option<&str> {
        self.vars.get(k).map(String::as_str)
    }

    fn abs(&self, p: &str) -> PathBuf {
        let p = Path::new(p);
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.cwd.join(p)
        }
    }
}

/// Run the shim with `args` (without the program name). Returns the exit code.
pub fn main_with(args: Vec<String>, env: Env) -> i32 {
    match run(&args, &env) {
        Ok(code) => code,
        Err(msg) => {
            eprint(&format!("Error: {msg}\n"));
            1
        }
    }
}

fn print(s: &str) -> bool {
    let mut o = std::io::stdout().lock();
    o.write_all(s.as_bytes()).and_then(|_| o.flush()).is_ok()
}

fn eprint(s: &str) {
    let mut e = std::io::stderr().lock();
    let _ = e.write_all(s.as_bytes()).and_then(|_| e.flush());
}

fn run(args: &[String], env: &Env) -> Result<i32, String> {
    let parsed = match cli::parse(args) {
        Ok(p) => p,
        Err(e) => {
            eprint(&e.stderr());
            return Ok(1);
        }
    };
    let mut req = Request {
        args: args.to_vec(),
        cwd: env.cwd.display().to_string(),
        identity: String::new(),
        files: Vec::new(),
        local_error: None,
    };
    let mut kube_target: Option<KubeTarget> = None;
    match &parsed.command {
        Command::Help(text) => {
            print(text);
            return Ok(0);
        }
        Command::Template(TemplateVerb::Validate, a) => return validate_offline(&a.file, env),
        Command::Template(verb, a) => {
            req.files = read_template_files(&a.file, *verb == TemplateVerb::Sync, env)?;
        }
        Command::Apply { file, .. } => {
            let abs = env.abs(file);
            let content =
                std::fs::read_to_string(&abs).map_err(|e| template::go_io_error(file, &e))?;
            req.files.push(FileArg {
                path: file.clone(),
                abs: abs.display().to_string(),
                content,
            });
        }
        Command::Kubeconfig(_) | Command::Get(_) => {}
    }
    init_omniconfig(parsed.global.omniconfig.as_deref(), env)?;
    let key = key_from_env(env).ok_or_else(|| {
        "no service-account key: set OMNI_SERVICE_ACCOUNT_KEY (the twin's omnictl does not emulate the interactive browser login)".to_string()
    })?;
    req.identity = decode_key(key)?;
    let endpoint = env.var("OMNI_ENDPOINT").filter(|e| !e.is_empty()).ok_or_else(|| {
        "OMNI_ENDPOINT is not set: with a service-account key omnictl does not read the URL from the omniconfig".to_string()
    })?;
    let addr = endpoint_addr(endpoint)?;
    if let Command::Kubeconfig(k) = &parsed.command {
        match kube_path(k, env) {
            Ok(t) => kube_target = Some(t),
            Err(e) => req.local_error = Some(e),
        }
    }
    exchange(&addr, &req, kube_target.as_ref())
}

/// `cluster template validate` runs without Omni (omni.md §7.3).
fn validate_offline(file: &str, env: &Env) -> Result<i32, String> {
    let abs = env.abs(file);
    let text = std::fs::read_to_string(&abs).map_err(|e| template::go_io_error(file, &e))?;
    let base = abs.parent().map(Path::to_path_buf).unwrap_or_default();
    let tmpl = template::load(&base, &text).map_err(|e| format!("error loading template: {e}"))?;
    tmpl.validate()?;
    Ok(0)
}

/// The template file, or for `sync -f DIR` every `*.yaml`/`*.yml` below it, sorted.
fn read_template_files(file: &str, allow_dir: bool, env: &Env) -> Result<Vec<FileArg>, String> {
    let abs = env.abs(file);
    if allow_dir && abs.is_dir() {
        let mut found = Vec::new();
        walk(&abs, &mut found).map_err(|e| template::go_io_error(file, &e))?;
        found.sort();
        let mut out = Vec::new();
        for p in found {
            let shown = Path::new(file)
                .join(p.strip_prefix(&abs).unwrap_or(&p))
                .display()
                .to_string();
            let content =
                std::fs::read_to_string(&p).map_err(|e| template::go_io_error(&shown, &e))?;
            out.push(FileArg {
                path: shown,
                abs: p.display().to_string(),
                content,
            });
        }
        return Ok(out);
    }
    let content = std::fs::read_to_string(&abs).map_err(|e| template::go_io_error(file, &e))?;
    Ok(vec![FileArg {
        path: file.to_string(),
        abs: abs.display().to_string(),
        content,
    }])
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for e in std::fs::read_dir(dir)? {
        let p = e?.path();
        if p.is_dir() {
            walk(&p, out)?;
        } else if p.extension().is_some_and(|x| x == "yaml" || x == "yml") {
            out.push(p);
        }
    }
    Ok(())
}

/// `omnictl` creates a default omniconfig when none exists, even with a key (omni.md §2).
fn init_omniconfig(flag: Option<&str>, env: &Env) -> Result<(), String> {
    let path = match flag.or(env.var("OMNICONFIG")).filter(|p| !p.is_empty()) {
        Some(p) => env.abs(p),
        None => match env.var("HOME") {
            Some(h) => Path::new(h).join(".talos/omni/config"),
            None => return Ok(()),
        },
    };
    if path.exists() {
        return Ok(());
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| {
            format!(
                "failed to create omniconfig directory: {}",
                template::go_io_error(&dir.display().to_string(), &e)
            )
        })?;
    }
    let text = "context: default\ncontexts:\n    default:\n        url: grpc://127.0.0.1:8080\n";
    std::fs::write(&path, text).map_err(|e| template::go_io_error(&path.display().to_string(), &e))
}

/// The key, by presence: `SIDERO_SERVICE_ACCOUNT_KEY` wins even when empty.
fn key_from_env(env: &Env) -> Option<&str> {
    env.var("SIDERO_SERVICE_ACCOUNT_KEY")
        .or_else(|| env.var("OMNI_SERVICE_ACCOUNT_KEY"))
}

/// Decode a service-account key; the error is the decoder's text (Go's wording).
pub fn decode_key(key: &str) -> Result<String, String> {
    let raw = go_base64(key)?;
    let v: serde_json::Value = serde_json::from_slice(&raw).map_err(|e| go_json_error(&raw, &e))?;
    let obj = v.as_object().ok_or_else(|| {
        format!(
            "json: cannot unmarshal {} into Go value of type serviceaccount.JSON",
            json_kind(&v)
        )
    })?;
    let field = |name: &str| -> Result<String, String> {
        match obj.get(name) {
            None | Some(serde_json::Value::Null) => Ok(String::new()),
            Some(serde_json::Value::String(s)) => Ok(s.clone()),
            Some(other) => Err(format!(
                "json: cannot unmarshal {} into Go struct field JSON.{name} of type string",
                json_kind(other)
            )),
        }
    };
    let name = field("name")?;
    let pgp = field("pgp_key")?;
    let armored = pgp.contains("-----BEGIN PGP PRIVATE KEY BLOCK-----")
        && pgp.contains("-----END PGP PRIVATE KEY BLOCK-----");
    if !armored {
        return Err(
            "gopenpgp: error in reading key ring: openpgp: invalid argument: no armored data found"
                .into(),
        );
    }
    Ok(name)
}

fn json_kind(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "bool",
        serde_json::Value::Number(_) => "number",
        serde_json::Value::String(_) => "string",
        serde_json::Value::Array(_) => "array",
        serde_json::Value::Object(_) => "object",
    }
}

/// Go's `encoding/json` syntax errors.
fn go_json_error(raw: &[u8], e: &serde_json::Error) -> String {
    if e.is_eof() {
        return "unexpected end of JSON input".into();
    }
    // Byte offset of the error from serde's line/column.
    let mut line = 1;
    let mut offset = 0;
    for (i, b) in raw.iter().enumerate() {
        if line == e.line() {
            offset = i + e.column().saturating_sub(1);
            break;
        }
        if *b == b'\n' {
            line += 1;
        }
    }
    let c = raw.get(offset).map(|b| *b as char).unwrap_or('?');
    let shown = match c {
        '\'' => "'\\''".to_string(),
        c if c.is_ascii_graphic() || c == ' ' => format!("'{c}'"),
        c => format!("'\\x{:02x}'", c as u32),
    };
    if raw[..offset.min(raw.len())]
        .iter()
        .all(u8::is_ascii_whitespace)
    {
        format!("invalid character {shown} looking for beginning of value")
    } else {
        format!("invalid character {shown} after top-level value")
    }
}

/// Go's `base64.StdEncoding.DecodeString` (newlines ignored, padding required).
fn go_base64(s: &str) -> Result<Vec<u8>, String> {
    let err = |i: usize| format!("illegal base64 data at input byte {i}");
    let bytes = s.as_bytes();
    let mut clean = Vec::with_capacity(bytes.len());
    let mut quantum_start = 0;
    let mut in_quantum = 0;
    let mut padding_at: Option<usize> = None;
    for (i, &b) in bytes.iter().enumerate() {
        if b == b'\n' || b == b'\r' {
            continue;
        }
        if in_quantum == 0 {
            quantum_start = i;
        }
        if let Some(p) = padding_at {
            // After padding only more padding to finish the quantum may follow.
            if b != b'=' || in_quantum == 0 || p + 1 > 3 {
                return Err(err(i));
            }
            clean.push(b);
            in_quantum = (in_quantum + 1) % 4;
            continue;
        }
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'+' | b'/' => {}
            b'=' if in_quantum >= 2 => padding_at = Some(in_quantum),
            _ => return Err(err(i)),
        }
        clean.push(b);
        in_quantum = (in_quantum + 1) % 4;
    }
    if in_quantum != 0 {
        return Err(err(quantum_start));
    }
    base64::engine::general_purpose::STANDARD
        .decode(&clean)
        .map_err(|_| err(bytes.len()))
}

/// `host:port` of `OMNI_ENDPOINT` (`http://`, `https://`, `grpc://` or bare).
fn endpoint_addr(endpoint: &str) -> Result<String, String> {
    let (scheme, rest) = match endpoint.split_once("://") {
        Some((s, r)) => (s, r),
        None => ("grpc", endpoint),
    };
    let hostport = rest.split('/').next().unwrap_or(rest);
    if hostport.is_empty() {
        return Err(format!("parse {endpoint:?}: missing host"));
    }
    if hostport
        .rsplit_once(':')
        .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
    {
        return Ok(hostport.to_string());
    }
    let port = match scheme {
        "https" => 443,
        "http" => 80,
        _ => 443,
    };
    Ok(format!("{hostport}:{port}"))
}

fn unavailable(addr: &str, e: &std::io::Error) -> String {
    let why = match e.kind() {
        std::io::ErrorKind::ConnectionRefused => "connect: connection refused".to_string(),
        std::io::ErrorKind::TimedOut => "i/o timeout".to_string(),
        _ => e.to_string(),
    };
    format!(
        "rpc error: code = Unavailable desc = connection error: desc = \"transport: Error while dialing: dial tcp {addr}: {why}\""
    )
}

/// Send the request and relay the answer.
fn exchange(addr: &str, req: &Request, kube: Option<&KubeTarget>) -> Result<i32, String> {
    let body = serde_json::to_vec(req).map_err(|e| e.to_string())?;
    let mut stream = TcpStream::connect(addr).map_err(|e| unavailable(addr, &e))?;
    let _ = stream.set_nodelay(true);
    let head = format!(
        "POST {PATH} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream
        .write_all(head.as_bytes())
        .and_then(|_| stream.write_all(&body))
        .map_err(|e| unavailable(addr, &e))?;
    let mut reader = BufReader::new(stream);
    let mut status = String::new();
    reader
        .read_line(&mut status)
        .map_err(|e| unavailable(addr, &e))?;
    if !status.starts_with("HTTP/1.1 200") && !status.starts_with("HTTP/1.0 200") {
        return Err(format!(
            "rpc error: code = Unavailable desc = unexpected HTTP status code received from server: {}",
            status.trim().split_once(' ').map(|(_, s)| s).unwrap_or("")
        ));
    }
    let mut chunked = false;
    loop {
        let mut h = String::new();
        if reader
            .read_line(&mut h)
            .map_err(|e| unavailable(addr, &e))?
            == 0
        {
            break;
        }
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':')
            && k.eq_ignore_ascii_case("transfer-encoding")
            && v.trim().eq_ignore_ascii_case("chunked")
        {
            chunked = true;
        }
    }
    let mut body: Box<dyn BufRead> = if chunked {
        Box::new(BufReader::new(Chunked {
            inner: reader,
            left: 0,
            done: false,
        }))
    } else {
        Box::new(reader)
    };
    loop {
        let mut line = String::new();
        let n = body.read_line(&mut line).map_err(|e| {
            format!("rpc error: code = Unavailable desc = error reading from server: {e}")
        })?;
        if n == 0 {
            return Err(
                "rpc error: code = Unavailable desc = error reading from server: EOF".into(),
            );
        }
        let frame: Frame = serde_json::from_str(line.trim_end()).map_err(|e| {
            format!("rpc error: code = Internal desc = bad frame from the twin: {e}")
        })?;
        match frame {
            Frame::Stdout(s) => {
                if !print(&s) {
                    // Nobody reads our output any more (e.g. `| head`): stop like Go on EPIPE.
                    return Ok(1);
                }
            }
            Frame::Stderr(s) => eprint(&s),
            Frame::Kubeconfig(content) => {
                if let Some(t) = kube
                    && let Err(e) = t.write(&content)
                {
                    eprint(&format!("Error: {e}\n"));
                    return Ok(1);
                }
            }
            Frame::Exit(code) => return Ok(code),
        }
    }
}

/// Decoder of an HTTP/1.1 chunked body.
struct Chunked<R: BufRead> {
    inner: R,
    left: usize,
    done: bool,
}

impl<R: BufRead> Read for Chunked<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.done {
            return Ok(0);
        }
        if self.left == 0 {
            let mut size = String::new();
            if self.inner.read_line(&mut size)? == 0 {
                self.done = true;
                return Ok(0);
            }
            let size = size.trim();
            let size = size.split(';').next().unwrap_or(size);
            self.left = usize::from_str_radix(size, 16).map_err(|_| {
                std::io::Error::new(std::io::ErrorKind::InvalidData, "bad chunk size")
            })?;
            if self.left == 0 {
                self.done = true;
                return Ok(0);
            }
        }
        let n = buf.len().min(self.left);
        let got = self.inner.read(&mut buf[..n])?;
        if got == 0 {
            self.done = true;
            return Ok(0);
        }
        self.left -= got;
        if self.left == 0 {
            let mut crlf = String::new();
            self.inner.read_line(&mut crlf)?;
        }
        Ok(got)
    }
}

// ---------------------------------------------------------------------------------------
// kubeconfig (omni.md §8)
// ---------------------------------------------------------------------------------------

/// Where `omnictl kubeconfig` writes, decided before it asks Omni.
#[derive(Debug)]
struct KubeTarget {
    path: PathBuf,
    merge: bool,
    force: bool,
    force_context_name: String,
}

/// Go's `filepath.Clean`.
fn clean(p: &str) -> String {
    let abs = p.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for c in Path::new(p).components() {
        match c {
            Component::Normal(s) => parts.push(s.to_str().unwrap_or("")),
            Component::ParentDir => {
                if parts.last().is_some_and(|l| *l != "..") {
                    parts.pop();
                } else if !abs {
                    parts.push("..");
                }
            }
            _ => {}
        }
    }
    let joined = parts.join("/");
    match (abs, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".into(),
        (false, false) => joined,
    }
}

fn kube_path(k: &KubeconfigArgs, env: &Env) -> Result<KubeTarget, String> {
    let mut merge = k.merge;
    let local = match &k.path {
        Some(p) => p.clone(),
        None if merge => match env
            .var("KUBECONFIG")
            .and_then(|v| v.split(':').find(|s| !s.is_empty()))
        {
            Some(p) => p.to_string(),
            None => match env.var("HOME") {
                Some(h) => format!("{h}/.kube/config"),
                None => {
                    return Err(
                        "failed to determine the default kubeconfig path: $HOME is not defined"
                            .into(),
                    );
                }
            },
        },
        None => env.cwd.display().to_string(),
    };
    let mut shown = clean(&local);
    let mut abs = env.abs(&shown);
    match std::fs::metadata(&abs) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if let Some(dir) = abs.parent() {
                std::fs::create_dir_all(dir).map_err(|e| {
                    template::go_io_error(&dir.display().to_string(), &e)
                        .replacen("open ", "mkdir ", 1)
                })?;
            }
        }
        Err(e) => return Err(format!("error checking path {shown:?}: {e}")),
        Ok(m) if m.is_dir() => {
            shown = clean(&format!("{shown}/kubeconfig"));
            abs = abs.join("kubeconfig");
        }
        Ok(_) => {}
    }
    match std::fs::metadata(&abs) {
        Ok(_) if !k.force && !merge => {
            return Err(format!(
                "kubeconfig file already exists, use --force to overwrite: {shown:?}"
            ));
        }
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => merge = false,
        Err(e) => return Err(format!("error checking path {shown:?}: {e}")),
    }
    Ok(KubeTarget {
        path: abs,
        merge,
        force: k.force,
        force_context_name: k.force_context_name.clone(),
    })
}

impl KubeTarget {
    fn write(&self, content: &str) -> Result<(), String> {
        let text = if self.merge {
            let old = std::fs::read_to_string(&self.path)
                .map_err(|e| template::go_io_error(&self.path.display().to_string(), &e))?;
            merge_kubeconfig(&old, content, self.force, &self.force_context_name)?
        } else {
            content.to_string()
        };
        write_mode_0640(&self.path, &text)
            .map_err(|e| template::go_io_error(&self.path.display().to_string(), &e))
    }
}

fn write_mode_0640(path: &Path, text: &str) -> std::io::Result<()> {
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o640);
    }
    o.open(path)?.write_all(text.as_bytes())
}

/// Merge a kubeconfig into an existing one (go-kubeconfig semantics, simplified): entries
/// with the same name are overwritten with `--force`, otherwise the new ones are renamed
/// `<name>-1`, `<name>-2`…; the new context becomes current.
fn merge_kubeconfig(
    old: &str,
    new: &str,
    force: bool,
    force_context_name: &str,
) -> Result<String, String> {
    let parse = |text: &str| -> Result<serde_json::Value, String> {
        let file = Arc::new(PathBuf::from("kubeconfig"));
        let docs = harness::yaml::parse_documents(&file, text)
            .map_err(|e| format!("error loading kubeconfig: {}", e.message))?;
        Ok(docs
            .first()
            .map(super::schema::node_json)
            .unwrap_or(serde_json::Value::Object(Default::default())))
    };
    let mut base = parse(old)?;
    let add = parse(new)?;
    if !base.is_object() {
        base = serde_json::json!({});
    }
    let mut renames: BTreeMap<(&str, String), String> = BTreeMap::new();
    let mut current: Option<String> = None;
    for (section, _) in [
        ("clusters", "cluster"),
        ("users", "user"),
        ("contexts", "context"),
    ] {
        let new_items: Vec<serde_json::Value> = add
            .get(section)
            .and_then(|v| v.as_array())
            .cloned()
            .unwrap_or_default();
        let list = base
            .as_object_mut()
            .map(|o| o.entry(section).or_insert_with(|| serde_json::json!([])))
            .and_then(|v| {
                if !v.is_array() {
                    *v = serde_json::json!([]);
                }
                v.as_array_mut()
            });
        let Some(list) = list else {
            continue;
        };
        for mut item in new_items {
            let name = item
                .get("name")
                .and_then(|n| n.as_str())
                .unwrap_or("")
                .to_string();
            let mut target = name.clone();
            if section == "contexts" && !force_context_name.is_empty() {
                target = force_context_name.to_string();
            }
            if section == "contexts"
                && let Some(ctx) = item.get_mut("context").and_then(|c| c.as_object_mut())
            {
                for (field, sec) in [("cluster", "clusters"), ("user", "users")] {
                    if let Some(r) = ctx.get(field).and_then(|v| v.as_str()).map(str::to_string)
                        && let Some(n) = renames.get(&(sec, r))
                    {
                        ctx.insert(field.into(), serde_json::Value::String(n.clone()));
                    }
                }
            }
            let exists = |n: &str, list: &Vec<serde_json::Value>| {
                list.iter()
                    .position(|i| i.get("name").and_then(|x| x.as_str()) == Some(n))
            };
            match exists(&target, list) {
                Some(pos) if force => {
                    list.remove(pos);
                }
                Some(_) => {
                    let mut i = 1;
                    while exists(&format!("{target}-{i}"), list).is_some() {
                        i += 1;
                    }
                    target = format!("{target}-{i}");
                }
                None => {}
            }
            if target != name {
                renames.insert((section, name.clone()), target.clone());
            }
            if let Some(o) = item.as_object_mut() {
                o.insert("name".into(), serde_json::Value::String(target.clone()));
            }
            list.push(item);
            if section == "contexts" {
                current = Some(target);
            }
        }
    }
    if let (Some(c), Some(o)) = (current, base.as_object_mut()) {
        o.insert("current-context".into(), serde_json::Value::String(c));
    }
    for (k, v) in [("apiVersion", "v1"), ("kind", "Config")] {
        if let Some(o) = base.as_object_mut() {
            o.entry(k)
                .or_insert_with(|| serde_json::Value::String(v.into()));
        }
    }
    Ok(to_yaml_k8s(&super::types::sorted(&base)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_decode_with_go_errors() {
        let good = super::super::service_account_key("clusterproof");
        assert_eq!(decode_key(&good).unwrap(), "clusterproof");
        assert_eq!(decode_key("").unwrap_err(), "unexpected end of JSON input");
        assert_eq!(
            decode_key("!!!").unwrap_err(),
            "illegal base64 data at input byte 0"
        );
        assert_eq!(
            decode_key("abc").unwrap_err(),
            "illegal base64 data at input byte 0"
        );
        let not_json = base64::engine::general_purpose::STANDARD.encode("hello");
        assert_eq!(
            decode_key(&not_json).unwrap_err(),
            "invalid character 'h' looking for beginning of value"
        );
        let no_pgp =
            base64::engine::general_purpose::STANDARD.encode(r#"{"name":"a","pgp_key":"x"}"#);
        assert!(decode_key(&no_pgp).unwrap_err().starts_with("gopenpgp:"));
    }

    #[test]
    fn paths_clean_like_go() {
        assert_eq!(clean("./out/../a//b/"), "a/b");
        assert_eq!(clean("/x/./y/.."), "/x");
        assert_eq!(clean(""), ".");
    }

    #[test]
    fn kubeconfigs_merge_and_rename() {
        let old = "apiVersion: v1\nkind: Config\nclusters:\n- name: a\n  cluster:\n    server: https://old\ncontexts:\n- name: a\n  context:\n    cluster: a\n    user: a\ncurrent-context: a\nusers:\n- name: a\n  user:\n    token: x\n";
        let new = "apiVersion: v1\nkind: Config\nclusters:\n- name: a\n  cluster:\n    server: https://new\ncontexts:\n- name: a\n  context:\n    cluster: a\n    user: a\ncurrent-context: a\nusers:\n- name: a\n  user:\n    token: y\n";
        let merged = merge_kubeconfig(old, new, false, "").unwrap();
        assert!(merged.contains("current-context: a-1\n"), "{merged}");
        assert!(merged.contains("    cluster: a-1\n"), "{merged}");
        let forced = merge_kubeconfig(old, new, true, "").unwrap();
        assert!(
            forced.contains("server: https://new") && !forced.contains("https://old"),
            "{forced}"
        );
    }
}
