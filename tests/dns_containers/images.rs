//! The DNS server images, built here and nowhere else.
//!
//! Nothing can be pulled (no registry; `shared/reference/rust-stack.md` §4), so each image is
//! `FROM scratch` plus Debian's own binaries and the shared libraries `ldd` lists for them
//! (§4.4 C). The binaries come from Debian's packages: `.ci/dns-servers` installs
//! `dnsmasq-base` and `socat` and unpacks `bind9` and `busybox-static` into
//! `target/dns-servers/root` (installing bind9 would start a named on this machine).
//!
//! An image's tag is a hash of everything in it (Dockerfile, every file's path and bytes),
//! so a second run finds the image in the engine and does not build it again, and a changed
//! binary or library gives a new tag. Concurrent test processes build under one file lock.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use sha2::{Digest, Sha256};
use testcontainers::bollard::Docker;
use testcontainers::core::BuildImageOptions;
use testcontainers::runners::AsyncBuilder;
use testcontainers::{GenericBuildableImage, GenericImage};

/// Set to a non-empty value other than `0` to report the container tests as skipped.
pub const OPT_OUT: &str = "CLUSTERPROOF_SKIP_CONTAINER_TESTS";

/// Which server software an image carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Software {
    /// dnsmasq, as a UniFi gateway runs it for its LAN.
    Dnsmasq,
    /// BIND 9's named, plus socat and busybox's `sh` for the start script (see servers.rs).
    Bind9,
}

impl Software {
    fn repository(self) -> &'static str {
        match self {
            Software::Dnsmasq => "clusterproof-dnsmasq",
            Software::Bind9 => "clusterproof-bind9",
        }
    }

    /// Programs in the image, at the path they have in their Debian package.
    fn programs(self) -> &'static [&'static str] {
        match self {
            Software::Dnsmasq => &["/usr/sbin/dnsmasq"],
            Software::Bind9 => &["/usr/sbin/named", "/usr/bin/socat", "/bin/busybox"],
        }
    }

    fn dockerfile(self) -> &'static str {
        // Never a `# syntax=` line and never a base image: both would need a registry.
        match self {
            Software::Dnsmasq => {
                "FROM scratch\nCOPY rootfs/ /\nENTRYPOINT [\"/usr/sbin/dnsmasq\"]\n"
            }
            // The start script comes with each container's configuration (/etc/bind/start).
            Software::Bind9 => {
                "FROM scratch\nCOPY rootfs/ /\nENTRYPOINT [\"/bin/busybox\", \"sh\", \"/etc/bind/start\"]\n"
            }
        }
    }

    /// Files that are not from a package: users and groups (dnsmasq drops to `nobody`), and
    /// the empty directories named writes to.
    fn data(self) -> Vec<(&'static str, &'static [u8])> {
        let mut files: Vec<(&'static str, &'static [u8])> = vec![
            (
                "/etc/passwd",
                b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n",
            ),
            ("/etc/group", b"root:x:0:\ndip:x:30:\nnogroup:x:65534:\n"),
        ];
        if self == Software::Bind9 {
            files.extend([
                ("/var/cache/bind/.keep", &b""[..]),
                ("/var/run/named/.keep", &b""[..]),
                ("/tmp/.keep", &b""[..]),
            ]);
        }
        files
    }
}

/// Where `.ci/dns-servers` unpacks the packages that are not installed.
fn staged_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("target/dns-servers/root")
}

/// The program's file: unpacked by `.ci/dns-servers`, or installed on this machine.
fn find_program(program: &str) -> Result<PathBuf, String> {
    let rel = program.trim_start_matches('/');
    [staged_root(), PathBuf::from("/")]
        .into_iter()
        .map(|root| root.join(rel))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            format!(
                "{program} is neither in {} nor installed: run `.ci/dns-servers` (as root: it \
                 apt-get installs dnsmasq-base, socat and bind9-libs and unpacks bind9 and \
                 busybox-static), or set {OPT_OUT}=1 to skip the container tests",
                staged_root().display()
            )
        })
}

/// The shared libraries (and the dynamic loader) `program` needs, as `ldd` resolves them.
fn libraries(program: &Path) -> Result<Vec<PathBuf>, String> {
    let out = Command::new("ldd")
        .arg(program)
        .output()
        .map_err(|e| format!("cannot run ldd on {}: {e}", program.display()))?;
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    if text.contains("not a dynamic executable") || text.contains("statically linked") {
        return Ok(Vec::new());
    }
    if !out.status.success() {
        return Err(format!("ldd {} failed: {text}", program.display()));
    }
    let mut libs = Vec::new();
    for line in text.lines() {
        if line.contains("not found") {
            return Err(format!(
                "{} needs a library this machine lacks ({}): run `.ci/dns-servers`, or set {OPT_OUT}=1",
                program.display(),
                line.trim()
            ));
        }
        // `libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x…)` or `/lib64/ld-linux-x86-64.so.2 (0x…)`;
        // `linux-vdso.so.1 (0x…)` is the kernel's and has no file.
        let path = match line.split_once("=>") {
            Some((_, right)) => right.split_whitespace().next(),
            None => line
                .split_whitespace()
                .next()
                .filter(|p| p.starts_with('/')),
        };
        if let Some(p) = path.filter(|p| p.starts_with('/')) {
            libs.push(PathBuf::from(p));
        }
    }
    Ok(libs)
}

/// Everything that goes into the image: path in the image → where its bytes are.
enum Source {
    File(PathBuf),
    Data(&'static [u8]),
}

fn contents(software: Software) -> Result<BTreeMap<String, Source>, String> {
    let mut files = BTreeMap::new();
    for program in software.programs() {
        let file = find_program(program)?;
        for lib in libraries(&file)? {
            files.insert(lib.display().to_string(), Source::File(lib));
        }
        files.insert((*program).to_owned(), Source::File(file));
    }
    for (path, bytes) in software.data() {
        files.insert(path.to_owned(), Source::Data(bytes));
    }
    Ok(files)
}

/// The tag: SHA-256 of the Dockerfile and of every file's path, mode and bytes.
///
/// The files' bytes (≈60 MB for BIND and its libraries) are hashed by coreutils'
/// `sha256sum`: SHA-256 in an unoptimised test build takes seconds, in every test process.
fn content_tag(software: Software, files: &BTreeMap<String, Source>) -> Result<String, String> {
    use std::os::unix::fs::PermissionsExt;
    let on_disk: Vec<&Path> = files
        .values()
        .filter_map(|s| match s {
            Source::File(p) => Some(p.as_path()),
            Source::Data(_) => None,
        })
        .collect();
    let out = Command::new("sha256sum")
        .arg("--")
        .args(&on_disk)
        .output()
        .map_err(|e| format!("cannot run sha256sum: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "sha256sum failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let sums = String::from_utf8_lossy(&out.stdout);
    // One `HEX  PATH` line per file, in the order given.
    let digests: Vec<&str> = sums
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    if digests.len() != on_disk.len() {
        return Err(format!(
            "sha256sum printed {} sums for {} files",
            digests.len(),
            on_disk.len()
        ));
    }
    let mut digests = digests.into_iter();

    let mut h = Sha256::new();
    h.update(software.dockerfile().as_bytes());
    for (path, source) in files {
        h.update(path.as_bytes());
        h.update([0]);
        match source {
            Source::File(p) => {
                let meta = std::fs::metadata(p)
                    .map_err(|e| format!("cannot read {}: {e}", p.display()))?;
                h.update(meta.permissions().mode().to_le_bytes());
                h.update(digests.next().unwrap_or_default().as_bytes());
            }
            Source::Data(bytes) => {
                h.update((bytes.len() as u64).to_le_bytes());
                h.update(bytes);
            }
        }
    }
    Ok(h.finalize()
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect())
}

/// A client for the engine the tests use (`DOCKER_HOST`, or the local socket), after
/// checking that it answers. The error names the opt-out variable.
pub async fn engine() -> Result<Docker, String> {
    let unreachable = |e: &dyn std::fmt::Display| {
        format!(
            "no Docker engine reachable ({e}): these tests run dnsmasq and BIND 9 in \
             containers and need one (`docker info` must work; `.ci/run` checks it). Start \
             Docker, or set {OPT_OUT}=1 to report them as skipped"
        )
    };
    let docker = Docker::connect_with_defaults().map_err(|e| unreachable(&e))?;
    // bollard speaks a newer API than Engine 20.10: agree on one (rust-stack.md §4.3).
    docker
        .negotiate_version()
        .await
        .map_err(|e| unreachable(&e))
}

/// The image for `software`, built if the engine does not have this exact content yet.
pub async fn image(docker: &Docker, software: Software) -> Result<GenericImage, String> {
    let started = Instant::now();
    let files = contents(software)?;
    let tag = content_tag(software, &files)?;
    let repository = software.repository();
    let descriptor = format!("{repository}:{tag}");
    let hashed = started.elapsed();

    if docker.inspect_image(&descriptor).await.is_ok() {
        eprintln!(
            "image {descriptor}: present, not rebuilt (warm: {:.2?}, of which hashing {hashed:.2?})",
            started.elapsed()
        );
        return Ok(GenericImage::new(repository, &tag));
    }

    // One builder at a time; the others find the image when they get the lock.
    let lock_path = std::env::temp_dir().join("clusterproof-dns-images.lock");
    let lock = tokio::task::spawn_blocking(move || -> std::io::Result<std::fs::File> {
        let f = std::fs::File::create(&lock_path)?;
        f.lock()?;
        Ok(f)
    })
    .await
    .map_err(|e| e.to_string())?
    .map_err(|e| format!("cannot take the image build lock: {e}"))?;

    if docker.inspect_image(&descriptor).await.is_ok() {
        eprintln!(
            "image {descriptor}: built by another test process meanwhile ({:.2?})",
            started.elapsed()
        );
        return Ok(GenericImage::new(repository, &tag));
    }
    let build_started = Instant::now();
    let mut buildable =
        GenericBuildableImage::new(repository, &tag).with_dockerfile_string(software.dockerfile());
    for (path, source) in files {
        let target = format!("rootfs{path}");
        buildable = match source {
            Source::File(p) => buildable.with_file(p, target),
            Source::Data(bytes) => buildable.with_data(bytes.to_vec(), target),
        };
    }
    let image = buildable
        .build_image_with(BuildImageOptions::new().with_skip_if_exists(true))
        .await
        .map_err(|e| format!("building {descriptor} failed: {e}"))?;
    drop(lock);
    eprintln!(
        "image {descriptor}: built (cold: {:.2?} build, {:.2?} in all)",
        build_started.elapsed(),
        started.elapsed()
    );
    Ok(image)
}
