//! One probe of each check kind, bounded by its timeout.
//!
//! - `http`: a minimal HTTP/1.1 client over a tokio `TcpStream` (GET, `Host`,
//!   `Connection: close`; only the status line is read, the body is ignored).
//!   A crate (hyper, reqwest) would pull in a large dependency tree for one
//!   status line. `https://` is out of scope and rejected as a bad URL: probe
//!   the plain port, or use an `exec` check running `curl`.
//! - `tcp`: a connect.
//! - `exec`: the program run without a shell in a process group of its own,
//!   killed (the whole group) at the timeout, and what it left running in the
//!   group killed when it exits; without the daemon's capabilities unless
//!   `keep-capabilities = true`; healthy on exit status 0; its
//!   stdout and stderr are logged at debug level.
//! - `interface`: `/sys/class/net/NAME/operstate` is `up`, or it is `unknown`
//!   (loopback, tun and some virtual drivers never report `up`) and the
//!   interface is administratively up (`flags` has IFF_UP) with carrier. sysfs
//!   was chosen over netlink as the simplest reliable source: two small reads, no
//!   socket to keep. Caveat: sysfs shows the network namespace of whoever
//!   mounted it, so a vipd moved into a namespace with `setns` (rather than
//!   `ip netns exec`, which remounts /sys) would see the wrong interfaces.

use std::fmt;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitStatus;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::process::{self, Capabilities, RunError};
use super::spec::CheckKind;

/// Longest HTTP status line we read before giving up on the response.
const MAX_STATUS_LINE: usize = 1024;

/// Why a probe failed.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// The probe did not finish within the check's timeout.
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    /// The http check's URL is not one we can probe.
    #[error(transparent)]
    Url(#[from] UrlError),
    /// Name resolution of the URL's host failed.
    #[error("cannot resolve {host}: {source}")]
    Resolve {
        /// The host name.
        host: String,
        /// The resolver's error.
        #[source]
        source: io::Error,
    },
    /// The host name resolved to no address.
    #[error("{0} resolves to no address")]
    NoAddress(String),
    /// The TCP connection could not be made.
    #[error("connect to {addr}: {source}")]
    Connect {
        /// The address tried (the last one, when a name had several).
        addr: SocketAddr,
        /// The socket error.
        #[source]
        source: io::Error,
    },
    /// Sending the request or reading the response failed.
    #[error("http: {0}")]
    HttpIo(#[source] io::Error),
    /// The response did not start with an HTTP status line.
    #[error("http: malformed status line {0:?}")]
    BadStatusLine(String),
    /// The server answered with a status outside the accepted ranges.
    #[error("http: status {0} not accepted")]
    Status(u16),
    /// The exec check's program could not be started.
    #[error("cannot start {program}: {source}")]
    Spawn {
        /// The program.
        program: String,
        /// The error from the kernel.
        #[source]
        source: io::Error,
    },
    /// Waiting for the exec check's program failed.
    #[error("waiting for {program}: {source}")]
    Wait {
        /// The program.
        program: String,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// The exec check's program exited unsuccessfully.
    #[error("{program} failed: {status}")]
    Exit {
        /// The program.
        program: String,
        /// Its exit status.
        status: ExitStatus,
    },
    /// The interface name cannot be an interface (empty, too long, or has `/`).
    #[error("invalid interface name {0:?}")]
    BadInterfaceName(String),
    /// The interface does not exist.
    #[error("interface {0} does not exist")]
    NoSuchInterface(String),
    /// The interface exists but its link is not up.
    #[error("interface {name} is not up (operstate {operstate})")]
    InterfaceDown {
        /// The interface.
        name: String,
        /// What the kernel reports in operstate (`down`, `lowerlayerdown`, ...).
        operstate: String,
    },
    /// A `process` check counted a number of processes outside its bounds.
    #[error("{count} process(es) named {name:?} running, want {want}")]
    ProcessCount {
        /// The executable name.
        name: String,
        /// How many matched.
        count: u32,
        /// The bounds, e.g. `at least 1` or `1..=2`.
        want: String,
    },
    /// `/proc` could not be read.
    #[error("cannot read /proc: {0}")]
    Proc(#[source] io::Error),
    /// A `file` check's file could not be read.
    #[error("cannot read {path}: {source}", path = .path.display())]
    FileRead {
        /// The file.
        path: PathBuf,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// A `file` check's file does not hold an integer.
    #[error("{path} does not hold an integer: {content:?}", path = .path.display())]
    NotANumber {
        /// The file.
        path: PathBuf,
        /// Its first bytes.
        content: String,
    },
    /// Reading the interface state from sysfs failed.
    #[error("read {path}: {source}", path = .path.display())]
    Sysfs {
        /// The file.
        path: PathBuf,
        /// The error.
        #[source]
        source: io::Error,
    },
}

/// Why an http check URL is rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    /// Only `http://` is supported.
    #[error("unsupported URL scheme in {0:?} (only http:// is supported; https is not)")]
    Scheme(String),
    /// No host between `http://` and the path.
    #[error("URL {0:?} has no host")]
    NoHost(String),
    /// `user:password@` is not supported.
    #[error("URL {0:?} has user information, which is not supported")]
    UserInfo(String),
    /// The port is not a number in 1..=65535.
    #[error("URL {0:?} has an invalid port")]
    Port(String),
    /// An IPv6 literal without its closing bracket, or with junk after it.
    #[error("URL {0:?} has a malformed [IPv6] host")]
    Ipv6(String),
    /// Whitespace or control characters would break the request line.
    #[error("URL {0:?} contains whitespace or control characters")]
    Characters(String),
}

/// An `http://` URL taken apart for a probe. Config may use [`HttpUrl::parse`]
/// to reject a bad URL at load time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpUrl {
    /// Host name or address (an IPv6 literal without brackets).
    pub host: String,
    /// Port (80 when the URL has none).
    pub port: u16,
    /// Path and query sent in the request line; at least `/`.
    pub path: String,
    /// Value of the `Host` header: the URL's authority as written.
    pub host_header: String,
}

impl HttpUrl {
    /// Parse `http://host[:port][/path][?query][#fragment]`.
    pub fn parse(url: &str) -> Result<Self, UrlError> {
        let bad = || url.to_string();
        if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(UrlError::Characters(bad()));
        }
        let rest = match url.get(..7) {
            Some(s) if s.eq_ignore_ascii_case("http://") => &url[7..],
            _ => return Err(UrlError::Scheme(bad())),
        };
        let split = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(split);
        let tail = tail.split('#').next().unwrap_or("");
        let path = if tail.starts_with('/') {
            tail.to_string()
        } else {
            format!("/{tail}")
        };
        if authority.contains('@') {
            return Err(UrlError::UserInfo(bad()));
        }
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (host, after) = v6.split_once(']').ok_or_else(|| UrlError::Ipv6(bad()))?;
            if host.parse::<std::net::Ipv6Addr>().is_err() {
                return Err(UrlError::Ipv6(bad()));
            }
            let port = match after {
                "" => None,
                p => Some(p.strip_prefix(':').ok_or_else(|| UrlError::Ipv6(bad()))?),
            };
            (host, port)
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (authority, None),
            }
        };
        if host.is_empty() {
            return Err(UrlError::NoHost(bad()));
        }
        let port = match port {
            None => 80,
            Some(p) => match p.parse::<u16>() {
                Ok(n) if n != 0 && p.bytes().all(|b| b.is_ascii_digit()) => n,
                _ => return Err(UrlError::Port(bad())),
            },
        };
        Ok(HttpUrl {
            host: host.to_string(),
            port,
            path,
            host_header: authority.to_string(),
        })
    }
}

/// Run one probe of `kind`; `Ok(())` is a success. Never takes (much) longer
/// than `timeout`: exec probes additionally wait for the killed program to be
/// reaped, which is immediate after SIGKILL.
pub async fn probe(kind: &CheckKind, timeout: Duration) -> Result<(), ProbeError> {
    probe_value(kind, timeout).await.map(drop)
}

/// Like [`probe`], and a success carries the check's value: the integer a `file`
/// check read (0 for every other kind).
pub async fn probe_value(kind: &CheckKind, timeout: Duration) -> Result<i64, ProbeError> {
    let done = match kind {
        CheckKind::Exec {
            program,
            args,
            keep_capabilities,
        } => {
            let caps = Capabilities::keep_if(*keep_capabilities);
            exec(program.as_os_str(), args, timeout, caps).await
        }
        CheckKind::Http { url, expect_status } => bounded(timeout, http(url, expect_status)).await,
        CheckKind::Tcp { address } => bounded(timeout, tcp(*address)).await,
        CheckKind::Interface { name } => bounded(timeout, async { interface(name) }).await,
        // Never probed: the BFD engine reports the session state (see track::runner).
        CheckKind::Bfd { .. } => Ok(()),
        CheckKind::Process(m) => {
            let m = m.clone();
            bounded(timeout, async move {
                tokio::task::spawn_blocking(move || process_check(&m))
                    .await
                    .unwrap_or_else(|e| Err(ProbeError::Proc(io::Error::other(e.to_string()))))
            })
            .await
        }
        CheckKind::File { path } => {
            let path = path.clone();
            return tokio::time::timeout(timeout, async move {
                tokio::task::spawn_blocking(move || read_value_file(&path))
                    .await
                    .unwrap_or_else(|e| Err(ProbeError::Proc(io::Error::other(e.to_string()))))
            })
            .await
            .unwrap_or(Err(ProbeError::Timeout(timeout)));
        }
    };
    done.map(|()| 0)
}

fn process_check(m: &super::spec::ProcessMatch) -> Result<(), ProbeError> {
    let count =
        super::procscan::count(m, std::path::Path::new("/proc")).map_err(ProbeError::Proc)?;
    if super::procscan::count_ok(m, count) {
        return Ok(());
    }
    let want = match m.max_count {
        None => format!("at least {}", m.min_count),
        Some(max) => format!("{}..={max}", m.min_count),
    };
    Err(ProbeError::ProcessCount {
        name: m.name.clone(),
        count,
        want,
    })
}

/// Most bytes of a `file` check's file that are read.
const MAX_VALUE_FILE: u64 = 4096;

/// Reads the integer a `file` check's file holds (surrounding whitespace allowed).
pub fn read_value_file(path: &std::path::Path) -> Result<i64, ProbeError> {
    use std::io::Read;
    let mut text = String::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_VALUE_FILE).read_to_string(&mut text))
        .map_err(|source| ProbeError::FileRead {
            path: path.to_path_buf(),
            source,
        })?;
    parse_value(&text).ok_or_else(|| ProbeError::NotANumber {
        path: path.to_path_buf(),
        content: text.chars().take(40).collect(),
    })
}

/// The integer in a `file` check's text: optional sign, decimal digits, surrounded
/// by whitespace only.
pub(crate) fn parse_value(text: &str) -> Option<i64> {
    let t = text.trim();
    let digits = t.strip_prefix(['-', '+']).unwrap_or(t);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    t.parse().ok()
}

async fn bounded<F>(timeout: Duration, f: F) -> Result<(), ProbeError>
where
    F: std::future::Future<Output = Result<(), ProbeError>>,
{
    tokio::time::timeout(timeout, f)
        .await
        .unwrap_or(Err(ProbeError::Timeout(timeout)))
}

async fn tcp(addr: SocketAddr) -> Result<(), ProbeError> {
    TcpStream::connect(addr)
        .await
        .map(drop)
        .map_err(|source| ProbeError::Connect { addr, source })
}

async fn resolve(url: &HttpUrl) -> Result<Vec<SocketAddr>, ProbeError> {
    if let Ok(ip) = url.host.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, url.port)]);
    }
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((url.host.as_str(), url.port))
        .await
        .map_err(|source| ProbeError::Resolve {
            host: url.host.clone(),
            source,
        })?
        .collect();
    if addrs.is_empty() {
        return Err(ProbeError::NoAddress(url.host.clone()));
    }
    Ok(addrs)
}

async fn connect_any(addrs: &[SocketAddr]) -> Result<TcpStream, ProbeError> {
    let mut last = None;
    for &addr in addrs {
        match TcpStream::connect(addr).await {
            Ok(s) => return Ok(s),
            Err(source) => last = Some(ProbeError::Connect { addr, source }),
        }
    }
    Err(last.unwrap_or(ProbeError::NoAddress(String::new())))
}

/// Parse the status code out of `HTTP/1.x SSS reason`.
fn parse_status_line(line: &[u8]) -> Result<u16, ProbeError> {
    let bad = || ProbeError::BadStatusLine(String::from_utf8_lossy(line).into_owned());
    let text = std::str::from_utf8(line).map_err(|_| bad())?;
    let mut parts = text.splitn(3, ' ');
    let version = parts.next().unwrap_or("");
    let code = parts.next().unwrap_or("");
    if !version.starts_with("HTTP/") || code.len() != 3 || !code.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(bad());
    }
    code.parse().map_err(|_| bad())
}

/// Whether `status` is accepted (`ranges` empty means 200..=299).
fn status_accepted(status: u16, ranges: &[(u16, u16)]) -> bool {
    if ranges.is_empty() {
        return (200..=299).contains(&status);
    }
    ranges.iter().any(|&(lo, hi)| (lo..=hi).contains(&status))
}

async fn http(url: &str, expect_status: &[(u16, u16)]) -> Result<(), ProbeError> {
    let url = HttpUrl::parse(url)?;
    let addrs = resolve(&url).await?;
    let mut stream = connect_any(&addrs).await?;
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: vipd/{}\r\nAccept: */*\r\nConnection: close\r\n\r\n",
        url.path,
        url.host_header,
        env!("CARGO_PKG_VERSION"),
    );
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(ProbeError::HttpIo)?;
    let mut buf = Vec::with_capacity(256);
    let mut chunk = [0u8; 256];
    let line = loop {
        if let Some(end) = buf.windows(2).position(|w| w == b"\r\n") {
            break &buf[..end];
        }
        if buf.len() >= MAX_STATUS_LINE {
            break &buf[..MAX_STATUS_LINE];
        }
        let n = stream.read(&mut chunk).await.map_err(ProbeError::HttpIo)?;
        if n == 0 {
            if buf.is_empty() {
                return Err(ProbeError::HttpIo(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "connection closed before a response",
                )));
            }
            break &buf[..];
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let status = parse_status_line(line)?;
    if status_accepted(status, expect_status) {
        Ok(())
    } else {
        Err(ProbeError::Status(status))
    }
}

struct Lossy<'a>(&'a [u8]);

impl fmt::Display for Lossy<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(String::from_utf8_lossy(self.0).trim_end())
    }
}

async fn exec(
    program: &std::ffi::OsStr,
    args: &[String],
    timeout: Duration,
    caps: Capabilities,
) -> Result<(), ProbeError> {
    let name = || program.to_string_lossy().into_owned();
    let out = process::run(program, args, &[], timeout, caps)
        .await
        .map_err(|e| match e {
            RunError::Spawn(source) => ProbeError::Spawn {
                program: name(),
                source,
            },
            RunError::Wait(source) => ProbeError::Wait {
                program: name(),
                source,
            },
            RunError::Timeout(t) => ProbeError::Timeout(t),
        })?;
    tracing::debug!(
        program = %program.to_string_lossy(),
        status = %out.status,
        stdout = %Lossy(&out.stdout),
        stderr = %Lossy(&out.stderr),
        "exec check finished"
    );
    if out.status.success() {
        Ok(())
    } else {
        Err(ProbeError::Exit {
            program: name(),
            status: out.status,
        })
    }
}

/// IFF_UP from `<linux/if.h>`.
const IFF_UP: u32 = 0x1;

fn interface(name: &str) -> Result<(), ProbeError> {
    // IFNAMSIZ is 16 including the NUL.
    if name.is_empty() || name.len() > 15 || name.contains('/') || name == "." || name == ".." {
        return Err(ProbeError::BadInterfaceName(name.to_string()));
    }
    let dir = PathBuf::from("/sys/class/net").join(name);
    // sysfs reads are in-memory and do not block: no need for spawn_blocking.
    let read = |file: &str| {
        let path = dir.join(file);
        std::fs::read_to_string(&path)
            .map(|s| s.trim().to_string())
            .map_err(|source| (path, source))
    };
    let operstate = match read("operstate") {
        Ok(s) => s,
        Err((_, e)) if e.kind() == io::ErrorKind::NotFound => {
            return Err(ProbeError::NoSuchInterface(name.to_string()))
        }
        Err((path, source)) => return Err(ProbeError::Sysfs { path, source }),
    };
    let up = match operstate.as_str() {
        "up" => true,
        "unknown" => {
            let flags =
                read("flags").map_err(|(path, source)| ProbeError::Sysfs { path, source })?;
            let flags = u32::from_str_radix(flags.trim_start_matches("0x"), 16).unwrap_or(0);
            // Reading carrier of an administratively down interface fails (EINVAL).
            flags & IFF_UP != 0 && read("carrier").map(|c| c == "1").unwrap_or(false)
        }
        _ => false,
    };
    if up {
        Ok(())
    } else {
        Err(ProbeError::InterfaceDown {
            name: name.to_string(),
            operstate,
        })
    }
}

#[cfg(test)]
mod tests;
