//! The control-socket server inside vipd.
//!
//! ```text
//!  vipctl ──unix socket──▶ accept loop ──spawn──▶ connection task (one per client)
//!                                                   │ SO_PEERCRED check
//!                                                   │ read one line (size limit, timeout)
//!                                                   │ parse + validate
//!                                                   ├─ events ──▶ broadcast::Receiver<Event> ──▶ event lines
//!                                                   └─ other ───▶ mpsc::Sender<ControlCall> ──▶ daemon
//!                                                                  oneshot reply ◀────────────┘
//! ```
//!
//! Connections are limited in two pools, so that neither can starve the other:
//! [`ServerOptions::max_connections`] connections that are sending a request or waiting
//! for its answer, and [`ServerOptions::max_followers`] `events` followers. A connection
//! moves from the first pool to the second when its request turns out to be `events`,
//! so followers never hold a command's slot. When the command pool is full, the oldest
//! connection that has not sent its request yet is dropped to make room (a client that
//! connects and says nothing cannot keep `vipctl status` out); when every slot is a
//! request being handled (each bounded by the handler timeout), the newcomer is told
//! "busy" with one non-blocking write, without a task. Every read and write has a timeout.
//!
//! The server validates what it can on its own (JSON, version, command, priority range);
//! everything that needs the daemon's knowledge (unknown instance, reload errors) comes
//! from the daemon's reply. No client input can crash the server: each connection is its
//! own task, and a bad request only costs that client an `error` line.

use std::collections::HashSet;
use std::collections::VecDeque;
use std::fs;
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::net::UnixListener as StdUnixListener;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

use nix::unistd::{Gid, Group, Uid, User};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::unix::UCred;
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{broadcast, mpsc, oneshot, Semaphore};
use tokio::task::{AbortHandle, JoinSet};

use super::message::{Event, Request, Response, MAX_REQUEST_LEN};

/// One request handed to the daemon; the daemon answers on `reply`.
#[derive(Debug)]
pub struct ControlCall {
    /// The validated request (never [`Request::Events`]: the server handles that itself).
    pub request: Request,
    /// Where the daemon sends its answer. Dropping it answers "vipd dropped the request".
    pub reply: oneshot::Sender<Response>,
}

/// Why the control socket could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// Another process answers on the socket path.
    #[error("another vipd is already listening on {0}")]
    InUse(PathBuf),
    /// Something that is not a socket sits at the path; it is left alone.
    #[error("{0} exists and is not a socket; refusing to replace it")]
    NotASocket(PathBuf),
    /// The configured group does not exist.
    #[error("control socket group {0:?} does not exist")]
    UnknownGroup(String),
    /// Group lookup failed.
    #[error("cannot look up group {group:?}: {source}")]
    GroupLookup {
        /// The group name.
        group: String,
        /// The error.
        source: nix::Error,
    },
    /// A filesystem or socket call failed.
    #[error("control socket {path}: {what}: {source}")]
    Io {
        /// The socket path.
        path: PathBuf,
        /// The step that failed.
        what: &'static str,
        /// The OS error.
        source: io::Error,
    },
}

/// The bound control socket. Dropping it closes the socket and removes its file.
#[derive(Debug)]
pub struct ControlListener {
    listener: StdUnixListener,
    path: PathBuf,
    group: Option<(String, Gid)>,
    /// (device, inode) of the socket file we created, so Drop removes only our own.
    identity: Option<(u64, u64)>,
}

impl ControlListener {
    /// Binds the socket at `path`: creates the parent directory if missing (mode 0755),
    /// removes a stale socket file (only if nobody answers on it), sets mode 0660 and,
    /// with `group`, the file's group. Peers are then admitted if they are root, run as
    /// the daemon's own user, or have `group` as primary or supplementary group.
    pub fn bind(path: &Path, group: Option<&str>) -> Result<Self, ControlError> {
        let io_err = |what: &'static str| {
            let path = path.to_path_buf();
            move |source| ControlError::Io { path, what, source }
        };
        let group = match group {
            None => None,
            Some(name) => match Group::from_name(name) {
                Ok(Some(g)) => Some((name.to_string(), g.gid)),
                Ok(None) => return Err(ControlError::UnknownGroup(name.to_string())),
                Err(source) => {
                    return Err(ControlError::GroupLookup {
                        group: name.to_string(),
                        source,
                    })
                }
            },
        };
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            if !parent.exists() {
                fs::create_dir_all(parent).map_err(io_err("create parent directory"))?;
                fs::set_permissions(parent, fs::Permissions::from_mode(0o755))
                    .map_err(io_err("chmod parent directory"))?;
            }
        }
        match fs::symlink_metadata(path) {
            Ok(meta) if meta.file_type().is_socket() => {
                match std::os::unix::net::UnixStream::connect(path) {
                    Ok(_) => return Err(ControlError::InUse(path.to_path_buf())),
                    Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                        tracing::info!("removing stale control socket {}", path.display());
                        fs::remove_file(path).map_err(io_err("remove stale socket"))?;
                    }
                    Err(source) => {
                        return Err(ControlError::Io {
                            path: path.to_path_buf(),
                            what: "probe existing socket",
                            source,
                        })
                    }
                }
            }
            Ok(_) => return Err(ControlError::NotASocket(path.to_path_buf())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(ControlError::Io {
                    path: path.to_path_buf(),
                    what: "stat",
                    source,
                })
            }
        }
        let listener = StdUnixListener::bind(path).map_err(io_err("bind"))?;
        let mut me = ControlListener {
            listener,
            path: path.to_path_buf(),
            group,
            identity: None,
        };
        let meta = fs::symlink_metadata(path).map_err(io_err("stat new socket"))?;
        me.identity = Some((meta.dev(), meta.ino()));
        if let Some((_, gid)) = &me.group {
            nix::unistd::chown(path, None, Some(*gid))
                .map_err(|e| io_err("chgrp")(io::Error::from(e)))?;
        }
        fs::set_permissions(path, fs::Permissions::from_mode(0o660)).map_err(io_err("chmod"))?;
        me.listener
            .set_nonblocking(true)
            .map_err(io_err("set non-blocking"))?;
        Ok(me)
    }

    /// The socket path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for ControlListener {
    fn drop(&mut self) {
        if let (Some((dev, ino)), Ok(meta)) = (self.identity, fs::symlink_metadata(&self.path)) {
            if meta.dev() == dev && meta.ino() == ino {
                let _ = fs::remove_file(&self.path);
            }
        }
    }
}

/// Limits of the server; [`Default`] gives the production values.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// How long a client may take to send its request line.
    pub read_timeout: Duration,
    /// How long writing one response line may take.
    pub write_timeout: Duration,
    /// How long the daemon may take to answer.
    pub handler_timeout: Duration,
    /// The longest request line accepted, in bytes.
    pub max_request_len: usize,
    /// Connections sending a request or waiting for its answer at once. When full, the
    /// oldest one still sending its request is dropped for a newcomer; when none is, the
    /// newcomer gets a "busy" error line.
    pub max_connections: usize,
    /// `events` followers at once (a separate pool: followers never take a command's
    /// slot); more get an error line.
    pub max_followers: usize,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            read_timeout: Duration::from_secs(5),
            write_timeout: Duration::from_secs(5),
            handler_timeout: Duration::from_secs(10),
            max_request_len: MAX_REQUEST_LEN,
            max_connections: 64,
            max_followers: 32,
        }
    }
}

struct Ctx {
    calls: mpsc::Sender<ControlCall>,
    events: broadcast::Sender<Event>,
    group: Option<(String, Gid)>,
    own_uid: u32,
    opts: ServerOptions,
    followers: Arc<Semaphore>,
}

/// Where a connection is; shared between its task and the accept loop.
const WAITING: u8 = 0;
/// Its request was read: it is being handled, or is about to follow events.
const HANDLING: u8 = 1;
/// It follows events (counted against `max_followers`, not `max_connections`).
const FOLLOWING: u8 = 2;
/// Evicted by the accept loop (no longer counted).
const EVICTED: u8 = 3;

/// One live connection task, in accept order.
struct Slot {
    id: tokio::task::Id,
    abort: AbortHandle,
    phase: Arc<AtomicU8>,
}

/// Serves the control socket with the default limits until the future is dropped.
pub async fn serve(
    listener: ControlListener,
    calls: mpsc::Sender<ControlCall>,
    events: broadcast::Sender<Event>,
) {
    serve_with(listener, calls, events, ServerOptions::default()).await
}

/// Serves the control socket with the given limits until the future is dropped (which
/// also ends every connection and removes the socket file).
pub async fn serve_with(
    listener: ControlListener,
    calls: mpsc::Sender<ControlCall>,
    events: broadcast::Sender<Event>,
    opts: ServerOptions,
) {
    let accept = match listener
        .listener
        .try_clone()
        .and_then(UnixListener::from_std)
    {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(
                "control socket {}: cannot register with the runtime: {e}",
                listener.path.display()
            );
            return;
        }
    };
    let followers = Arc::new(Semaphore::new(opts.max_followers));
    let ctx = Arc::new(Ctx {
        calls,
        events,
        group: listener.group.clone(),
        own_uid: Uid::effective().as_raw(),
        opts,
        followers,
    });
    let mut tasks = JoinSet::new();
    let mut live: VecDeque<Slot> = VecDeque::new();
    loop {
        tokio::select! {
            accepted = accept.accept() => match accepted {
                Ok((stream, _)) => {
                    if !make_room(&mut live, ctx.opts.max_connections) {
                        refuse(&stream, "vipd is busy: too many control connections");
                        continue;
                    }
                    let phase = Arc::new(AtomicU8::new(WAITING));
                    let conn = connection(stream, Arc::clone(&ctx), Arc::clone(&phase));
                    let abort = tasks.spawn(conn);
                    live.push_back(Slot { id: abort.id(), abort, phase });
                }
                Err(e) => accept_failed("control socket", e).await,
            },
            Some(done) = tasks.join_next_with_id(), if !tasks.is_empty() => {
                let id = match done {
                    Ok((id, ())) => id,
                    Err(e) => e.id(),
                };
                live.retain(|slot| slot.id != id);
            }
        }
    }
}

/// After a failed accept (EMFILE and friends) of a server (the control socket, the
/// metrics endpoint): logs it and backs off 100 ms instead of spinning.
pub(crate) async fn accept_failed(what: &str, e: io::Error) {
    tracing::warn!("{what}: accept failed: {e}");
    tokio::time::sleep(Duration::from_millis(100)).await;
}

/// Whether a new connection may start: fewer than `max` connections are waiting for or
/// handling a request, or the oldest one still waiting for its request was dropped.
fn make_room(live: &mut VecDeque<Slot>, max: usize) -> bool {
    let busy = live
        .iter()
        .filter(|s| matches!(s.phase.load(Ordering::Acquire), WAITING | HANDLING))
        .count();
    if busy < max {
        return true;
    }
    for slot in live.iter() {
        if slot
            .phase
            .compare_exchange(WAITING, EVICTED, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            tracing::debug!("control: dropping the oldest connection that sent no request");
            slot.abort.abort();
            return true;
        }
    }
    false
}

/// Tells a client it cannot be served, with one non-blocking write (a new socket's
/// buffer is empty, so the line fits), then drops the connection. No task, no wait.
fn refuse(stream: &UnixStream, message: &str) {
    let mut line = Response::error(message).to_line();
    line.push('\n');
    let _ = stream.try_write(line.as_bytes());
}

async fn send<W: AsyncWrite + Unpin>(
    w: &mut W,
    response: &Response,
    opts: &ServerOptions,
) -> io::Result<()> {
    let mut line = response.to_line();
    line.push('\n');
    match tokio::time::timeout(opts.write_timeout, async {
        w.write_all(line.as_bytes()).await?;
        w.flush().await
    })
    .await
    {
        Ok(r) => r,
        Err(_) => Err(io::Error::new(io::ErrorKind::TimedOut, "write timed out")),
    }
}

async fn connection(stream: UnixStream, ctx: Arc<Ctx>, phase: Arc<AtomicU8>) {
    let cred = stream.peer_cred();
    let (rd, mut wr) = stream.into_split();
    let verdict = match cred {
        Ok(cred) => authorize(&cred, ctx.group.as_ref(), ctx.own_uid),
        Err(e) => Err(format!(
            "permission denied: cannot read peer credentials: {e}"
        )),
    };
    if let Err(message) = verdict {
        tracing::debug!("control: {message}");
        let _ = send(&mut wr, &Response::error(message), &ctx.opts).await;
        return;
    }
    let mut reader = BufReader::new(rd);
    let line = match tokio::time::timeout(
        ctx.opts.read_timeout,
        read_request(&mut reader, ctx.opts.max_request_len),
    )
    .await
    {
        Err(_) => {
            let msg = format!(
                "no request received within {:.1} s",
                ctx.opts.read_timeout.as_secs_f64()
            );
            let _ = send(&mut wr, &Response::error(msg), &ctx.opts).await;
            return;
        }
        Ok(Err(ReadError::Io(e))) => {
            tracing::debug!("control: read failed: {e}");
            return;
        }
        Ok(Err(ReadError::Empty)) => return,
        Ok(Err(ReadError::TooLong)) => {
            let msg = format!(
                "request too long (limit {} bytes)",
                ctx.opts.max_request_len
            );
            let _ = send(&mut wr, &Response::error(msg), &ctx.opts).await;
            return;
        }
        Ok(Ok(line)) => line,
    };
    let request = match Request::parse_line(&line) {
        Ok(r) => r,
        Err(e) => {
            let _ = send(&mut wr, &Response::error(e.to_string()), &ctx.opts).await;
            return;
        }
    };
    // Evicted meanwhile: the accept loop no longer counts this connection.
    if phase
        .compare_exchange(WAITING, HANDLING, Ordering::AcqRel, Ordering::Acquire)
        .is_err()
    {
        return;
    }
    if request == Request::Events {
        let Ok(_permit) = Arc::clone(&ctx.followers).try_acquire_owned() else {
            let msg = format!(
                "too many event followers (limit {}); commands still work",
                ctx.opts.max_followers
            );
            let _ = send(&mut wr, &Response::error(msg), &ctx.opts).await;
            return;
        };
        // From here on this connection counts as a follower, not as a command.
        phase.store(FOLLOWING, Ordering::Release);
        follow_events(reader, wr, &ctx).await;
        return;
    }
    let response = ask_daemon(request, &ctx).await;
    let _ = send(&mut wr, &response, &ctx.opts).await;
}

async fn ask_daemon(request: Request, ctx: &Ctx) -> Response {
    let (reply, answer) = oneshot::channel();
    let command = request.command();
    let asked = async {
        ctx.calls
            .send(ControlCall { request, reply })
            .await
            .map_err(|_| "vipd is shutting down".to_string())?;
        answer
            .await
            .map_err(|_| format!("vipd dropped the {command} request"))
    };
    match tokio::time::timeout(ctx.opts.handler_timeout, asked).await {
        Ok(Ok(response)) => response,
        Ok(Err(message)) => Response::error(message),
        Err(_) => Response::error(format!(
            "vipd did not answer the {command} request within {:.1} s",
            ctx.opts.handler_timeout.as_secs_f64()
        )),
    }
}

async fn follow_events<R, W>(mut reader: R, mut wr: W, ctx: &Ctx)
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    // Subscribe before acknowledging, so no event after the ack is missed.
    let mut rx = ctx.events.subscribe();
    if send(&mut wr, &Response::ok("following events"), &ctx.opts)
        .await
        .is_err()
    {
        return;
    }
    let mut scratch = [0u8; 512];
    loop {
        let response = tokio::select! {
            got = rx.recv() => match got {
                Ok(event) => Response::Event(event),
                Err(broadcast::error::RecvError::Lagged(missed)) => Response::Lagged { missed },
                Err(broadcast::error::RecvError::Closed) => return,
            },
            // Anything the client sends is ignored; end of stream or an error means it left.
            n = reader.read(&mut scratch) => match n {
                Ok(0) | Err(_) => return,
                Ok(_) => continue,
            },
        };
        if send(&mut wr, &response, &ctx.opts).await.is_err() {
            return;
        }
    }
}

enum ReadError {
    Empty,
    TooLong,
    Io(io::Error),
}

/// Reads one line of at most `max` bytes (newline included). A last line without a
/// newline at end of stream is accepted.
async fn read_request<R: AsyncRead + Unpin>(
    reader: &mut BufReader<R>,
    max: usize,
) -> Result<Vec<u8>, ReadError> {
    let mut buf = Vec::new();
    let limit = u64::try_from(max).unwrap_or(u64::MAX).saturating_add(1);
    let mut limited = (&mut *reader).take(limit);
    limited
        .read_until(b'\n', &mut buf)
        .await
        .map_err(ReadError::Io)?;
    if buf.len() > max {
        return Err(ReadError::TooLong);
    }
    if buf.iter().all(u8::is_ascii_whitespace) {
        return Err(ReadError::Empty);
    }
    Ok(buf)
}

/// Decides whether a peer may use the socket: root, the daemon's own user, or a member
/// (primary or supplementary) of the configured group.
fn authorize(cred: &UCred, group: Option<&(String, Gid)>, own_uid: u32) -> Result<(), String> {
    let uid = cred.uid();
    if uid == 0 || uid == own_uid {
        return Ok(());
    }
    let Some((name, gid)) = group else {
        return Err(format!(
            "permission denied: uid {uid} is not root (no control group configured)"
        ));
    };
    let gid = gid.as_raw();
    if cred.gid() == gid {
        return Ok(());
    }
    // The peer process's own supplementary groups; the group database only when they
    // cannot be read (a process that dropped a group does not get it back here).
    let groups: HashSet<u32> = match cred.pid().filter(|p| *p > 0).and_then(proc_groups) {
        Some(groups) => groups.into_iter().collect(),
        None => database_groups(uid).into_iter().collect(),
    };
    if groups.contains(&gid) {
        Ok(())
    } else {
        Err(format!(
            "permission denied: uid {uid} is neither root nor in group {name}"
        ))
    }
}

/// The supplementary groups of a process, from `/proc/<pid>/status`.
fn proc_groups(pid: i32) -> Option<Vec<u32>> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("Groups:"))
        .map(|rest| {
            rest.split_whitespace()
                .filter_map(|g| g.parse().ok())
                .collect()
        })
}

/// The groups of a user according to the group database.
fn database_groups(uid: u32) -> Vec<u32> {
    let Ok(Some(user)) = User::from_uid(Uid::from_raw(uid)) else {
        return Vec::new();
    };
    let Ok(name) = std::ffi::CString::new(user.name) else {
        return Vec::new();
    };
    nix::unistd::getgrouplist(&name, user.gid)
        .map(|list| list.into_iter().map(|g| g.as_raw()).collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests;
