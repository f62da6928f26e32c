//! The HTTP side of the metrics endpoint: the smallest server that answers
//! `GET /metrics` (anything else gets 404), built so that no client can pin tasks or
//! file descriptors:
//!
//! - at most [`ServeOptions::max_connections`] connections are served at once; a new
//!   one beyond that replaces the *oldest* (a scrape takes milliseconds, so the oldest
//!   is the one that is stuck), so idle clients cannot keep a scrape out;
//! - reading the request head has one deadline ([`ServeOptions::read_timeout`]) for the
//!   whole head, not per read: a client that trickles a byte at a time is cut off too;
//! - writing the response (and shutting the connection down) has one deadline
//!   ([`ServeOptions::write_timeout`]): a client that never reads is dropped then;
//! - the request head is at most 4 KiB.
//!
//! ```text
//!   accept ──> full? abort the oldest ──> task: read head (deadline) ──> render ──> write (deadline)
//! ```

use std::collections::VecDeque;
use std::future::Future;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{AbortHandle, JoinSet};

use crate::control::server::accept_failed;

/// The longest request head read, in bytes.
const MAX_HEAD: usize = 4096;

/// Limits of the metrics endpoint; [`Default`] gives the production values.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Connections served at once; a new one beyond this replaces the oldest.
    pub max_connections: usize,
    /// Deadline for the whole request head, from the accept.
    pub read_timeout: Duration,
    /// Deadline for writing the whole response.
    pub write_timeout: Duration,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            max_connections: 16,
            read_timeout: Duration::from_secs(5),
            write_timeout: Duration::from_secs(10),
        }
    }
}

/// Serves `render()` as `/metrics` on `listener` until the future is dropped (which
/// also ends every connection).
pub async fn serve<R>(listener: TcpListener, render: R, opts: ServeOptions)
where
    R: Fn() -> String + Clone + Send + 'static,
{
    let max = opts.max_connections.max(1);
    // Dropped with this future: every connection ends with it.
    let mut tasks = JoinSet::new();
    // Live connections in accept order (the front is the oldest).
    let mut live: VecDeque<AbortHandle> = VecDeque::new();
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                accept_failed("metrics", e).await;
                continue;
            }
        };
        // Connections that ended since the last accept no longer count.
        while tasks.try_join_next().is_some() {}
        live.retain(|h| !h.is_finished());
        while live.len() >= max {
            if let Some(oldest) = live.pop_front() {
                tracing::debug!("metrics: dropping the oldest connection for a new one");
                oldest.abort();
            }
        }
        live.push_back(tasks.spawn(connection(stream, render.clone(), opts.clone())));
    }
}

/// `f` under `d`: `None` when it did not finish in time.
async fn within<T>(d: Duration, f: impl Future<Output = T>) -> Option<T> {
    tokio::time::timeout(d, f).await.ok()
}

async fn connection<R: Fn() -> String>(mut stream: TcpStream, render: R, opts: ServeOptions) {
    let mut buf = vec![0u8; MAX_HEAD];
    let mut n = 0;
    let read = within(opts.read_timeout, async {
        while n < buf.len() {
            let got = stream.read(&mut buf[n..]).await?;
            if got == 0 {
                break;
            }
            n += got;
            if buf[..n].windows(4).any(|w| w == b"\r\n\r\n") {
                break;
            }
        }
        Ok::<_, std::io::Error>(())
    })
    .await;
    if !matches!(read, Some(Ok(()))) {
        return;
    }
    let head = String::from_utf8_lossy(&buf[..n]);
    let mut words = head.split_whitespace();
    let (method, path) = (words.next(), words.next());
    let response = if method == Some("GET") && matches!(path, Some("/metrics") | Some("/metrics/"))
    {
        let body = render();
        format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/openmetrics-text; version=1.0.0; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{}",
            body.len(),
            body
        )
    } else {
        "HTTP/1.1 404 Not Found\r\nContent-Length: 10\r\nConnection: close\r\n\r\nnot found\n"
            .to_string()
    };
    let _ = within(opts.write_timeout, async {
        stream.write_all(response.as_bytes()).await?;
        stream.shutdown().await
    })
    .await;
}
