//! The blocking control-socket client used by vipctl.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::message::{Request, Response};

/// Where vipd listens unless configured otherwise.
pub const DEFAULT_SOCKET: &str = "/run/vipd/vipd.sock";

/// How long [`call`] waits for vipd's answer.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(15);

/// The longest response line accepted, in bytes.
const MAX_RESPONSE_LEN: u64 = 16 * 1024 * 1024;

/// Why talking to vipd failed. Each message is one line meant for the operator.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// No socket file: vipd is not running (or listens elsewhere).
    #[error("vipd is not running (no control socket at {})", .0.display())]
    NotRunning(PathBuf),
    /// A socket file nobody answers on.
    #[error("vipd is not running (nothing answers on {})", .0.display())]
    Stale(PathBuf),
    /// The socket file's permissions keep us out.
    #[error("permission denied on {} (need root or group {group})", .path.display())]
    PermissionDenied {
        /// The socket path.
        path: PathBuf,
        /// The socket's group.
        group: String,
    },
    /// vipd did not answer in time.
    #[error("vipd did not answer within {:.0} s on {}", .timeout.as_secs_f64(), .path.display())]
    Timeout {
        /// The socket path.
        path: PathBuf,
        /// How long we waited.
        timeout: Duration,
    },
    /// vipd closed the connection without a (complete) answer.
    #[error("vipd closed the connection without answering")]
    Closed,
    /// vipd refused the request (used where an answer other than an error was required).
    #[error("{0}")]
    Refused(String),
    /// The answer was not a response this client understands.
    #[error("unexpected answer from vipd: {0}")]
    Protocol(String),
    /// Another I/O error.
    #[error("{}: {source}", .path.display())]
    Io {
        /// The socket path.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
}

fn socket_group(path: &Path) -> String {
    std::fs::metadata(path)
        .ok()
        .and_then(|m| nix::unistd::Group::from_gid(nix::unistd::Gid::from_raw(m.gid())).ok())
        .flatten()
        .map(|g| g.name)
        .filter(|n| n != "root")
        // No group on the socket: the daemon's config sets none.
        .unwrap_or_else(|| "set by control-group in vipd.toml".to_string())
}

fn io_error(path: &Path, e: io::Error, timeout: Duration) -> ClientError {
    match e.kind() {
        io::ErrorKind::NotFound => ClientError::NotRunning(path.to_path_buf()),
        io::ErrorKind::ConnectionRefused => ClientError::Stale(path.to_path_buf()),
        io::ErrorKind::PermissionDenied => ClientError::PermissionDenied {
            path: path.to_path_buf(),
            group: socket_group(path),
        },
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => ClientError::Timeout {
            path: path.to_path_buf(),
            timeout,
        },
        io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset => ClientError::Closed,
        _ => ClientError::Io {
            path: path.to_path_buf(),
            source: e,
        },
    }
}

fn send_request(
    socket: &Path,
    request: &Request,
    timeout: Duration,
) -> Result<BufReader<UnixStream>, ClientError> {
    let err = |e| io_error(socket, e, timeout);
    let mut stream = UnixStream::connect(socket).map_err(err)?;
    stream.set_read_timeout(Some(timeout)).map_err(err)?;
    stream.set_write_timeout(Some(timeout)).map_err(err)?;
    let mut line = request.to_line();
    line.push('\n');
    if let Err(e) = stream.write_all(line.as_bytes()) {
        // The server may have refused us (e.g. permission) and closed before reading:
        // its answer may still be waiting to be read.
        if !matches!(
            e.kind(),
            io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset
        ) {
            return Err(err(e));
        }
    }
    Ok(BufReader::new(stream))
}

fn read_response(
    reader: &mut BufReader<UnixStream>,
    socket: &Path,
    timeout: Duration,
) -> Result<Response, ClientError> {
    let mut buf = Vec::new();
    let n = reader
        .by_ref()
        .take(MAX_RESPONSE_LEN)
        .read_until(b'\n', &mut buf)
        .map_err(|e| io_error(socket, e, timeout))?;
    if n == 0 || buf.last() != Some(&b'\n') {
        return Err(ClientError::Closed);
    }
    Response::parse_line(&buf).map_err(|e| ClientError::Protocol(e.to_string()))
}

/// Sends one request and returns vipd's answer, waiting at most [`DEFAULT_TIMEOUT`].
///
/// A refusal by vipd is a successful call returning [`Response::Error`].
pub fn call(socket: &Path, request: &Request) -> Result<Response, ClientError> {
    call_with_timeout(socket, request, DEFAULT_TIMEOUT)
}

/// [`call`] with an explicit timeout for each of connect-write and read.
pub fn call_with_timeout(
    socket: &Path,
    request: &Request,
    timeout: Duration,
) -> Result<Response, ClientError> {
    let mut reader = send_request(socket, request, timeout)?;
    read_response(&mut reader, socket, timeout)
}

/// A live `events` subscription: iterate to receive [`Response::Event`] and
/// [`Response::Lagged`] items until vipd closes the stream.
#[derive(Debug)]
pub struct EventStream {
    reader: BufReader<UnixStream>,
    socket: PathBuf,
}

/// Subscribes to state changes. Fails if vipd refuses (the refusal is
/// [`ClientError::Refused`]) or does not acknowledge within `timeout`.
pub fn follow_events(socket: &Path, timeout: Duration) -> Result<EventStream, ClientError> {
    let mut reader = send_request(socket, &Request::Events, timeout)?;
    match read_response(&mut reader, socket, timeout)? {
        Response::Ok { .. } => {}
        Response::Error { message } => return Err(ClientError::Refused(message)),
        other => return Err(ClientError::Protocol(format!("{other:?}"))),
    }
    reader
        .get_ref()
        .set_read_timeout(None)
        .map_err(|e| io_error(socket, e, timeout))?;
    Ok(EventStream {
        reader,
        socket: socket.to_path_buf(),
    })
}

impl Iterator for EventStream {
    type Item = Result<Response, ClientError>;

    fn next(&mut self) -> Option<Self::Item> {
        match read_response(&mut self.reader, &self.socket, Duration::ZERO) {
            Err(ClientError::Closed) => None,
            other => Some(other),
        }
    }
}
