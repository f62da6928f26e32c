//! The etcd task itself: its state ([`Agent`]), the loop that waits for the next due
//! request, a watch message or the driver, and each request (grant, keep-alive, claim,
//! release, watch) with what its answer changes.

use std::path::Path;
use std::time::{Duration, Instant};

use etcd_client::{
    Certificate, Client, Compare, CompareOp, ConnectOptions, EventType, Identity, PutOptions,
    TlsOptions, Txn, TxnOp, WatchOptions, WatchStream,
};
use tokio::sync::{oneshot, watch};

use super::lease::{self, LeaseClock};
use super::{View, CLAIM_RETRY, GRANT_RETRY, WATCH_RETRY};
use crate::config::Arbiter as ArbiterConfig;

fn connect_options(cfg: &ArbiterConfig) -> Result<ConnectOptions, String> {
    let timeout = lease::request_timeout(cfg.lease_ttl);
    let mut o = ConnectOptions::new()
        .with_connect_timeout(timeout)
        .with_require_leader(true);
    if let Some(tls) = &cfg.tls {
        let read = |p: &Path, what: &str| {
            std::fs::read(p).map_err(|e| format!("cannot read {what} {}: {e}", p.display()))
        };
        let mut t =
            TlsOptions::new().ca_certificate(Certificate::from_pem(read(&tls.ca, "tls-ca")?));
        if let Some((cert, key)) = &tls.client {
            t = t.identity(Identity::from_pem(
                read(cert, "tls-cert")?,
                read(key, "tls-key")?,
            ));
        }
        o = o.with_tls(t);
    }
    if let Some((user, file)) = &cfg.auth {
        let pw = std::fs::read_to_string(file)
            .map_err(|e| format!("cannot read password-file {}: {e}", file.display()))?;
        // Simple auth tokens expire (etcd's --auth-token-ttl, 5 min by default): refresh.
        o = o
            .with_user(user.clone(), pw.trim_end_matches(['\n', '\r']).to_owned())
            .with_auto_token_refresh(true);
    }
    Ok(o)
}

/// The etcd task of one instance (see the module documentation).
pub(super) struct Agent {
    key: String,
    value: String,
    ttl_asked: i64,
    request_timeout: Duration,
    endpoints: Vec<String>,
    options: Result<ConnectOptions, String>,
    clients: Vec<Option<Client>>,
    cur: usize,
    lc: LeaseClock,
    lease_id: Option<i64>,
    /// Leases this run gave up (a key still under one of them is ours, stale: revoke it).
    old_leases: Vec<i64>,
    watch: Option<WatchStream>,
    watch_ep: usize,
    next_grant: Instant,
    next_claim: Instant,
    next_watch: Instant,
    last_error: Option<String>,
    other_holder: Option<String>,
    unreachable_logged: bool,
    view_tx: watch::Sender<View>,
    want_rx: watch::Receiver<bool>,
}

#[derive(Debug, Clone, Copy)]
enum Job {
    Grant,
    KeepAlive,
    Claim,
    Watch,
}

enum Wake {
    Stop,
    Want,
    WatchMsg(Result<Option<etcd_client::WatchResponse>, etcd_client::Error>),
    Due(Job),
}

impl Agent {
    /// The task's state at start: no client, no lease, nothing wanted.
    pub(super) fn new(
        cfg: &ArbiterConfig,
        key: String,
        identity: String,
        view_tx: watch::Sender<View>,
        want_rx: watch::Receiver<bool>,
    ) -> Self {
        Agent {
            key,
            value: format!("{identity} pid {}", std::process::id()),
            ttl_asked: cfg.lease_ttl.as_secs().max(1) as i64,
            request_timeout: lease::request_timeout(cfg.lease_ttl),
            endpoints: cfg.etcd_endpoints.clone(),
            options: connect_options(cfg),
            clients: vec![None; cfg.etcd_endpoints.len()],
            cur: 0,
            lc: LeaseClock::new(),
            lease_id: None,
            old_leases: Vec::new(),
            watch: None,
            watch_ep: 0,
            next_grant: Instant::now(),
            next_claim: Instant::now(),
            next_watch: Instant::now(),
            last_error: None,
            other_holder: None,
            unreachable_logged: false,
            view_tx,
            want_rx,
        }
    }
}

impl Agent {
    pub(super) async fn run(mut self, mut stop_rx: oneshot::Receiver<()>) {
        loop {
            let now = Instant::now();
            if self.lc.has_lease() && !self.lc.lease_alive(now) {
                self.abandon_lease("not renewed in time");
            }
            if !*self.want_rx.borrow() && self.lc.token().is_some() {
                self.release().await;
            }
            self.publish();
            let want = *self.want_rx.borrow();
            let mut due: Option<(Instant, Job)> = None;
            let mut consider = |at: Option<Instant>, job: Job| {
                if let Some(at) = at {
                    if due.is_none_or(|(d, _)| at < d) {
                        due = Some((at, job));
                    }
                }
            };
            if self.lc.has_lease() {
                consider(self.lc.next_keepalive(), Job::KeepAlive);
                if want && self.lc.token().is_none() {
                    consider(Some(self.next_claim), Job::Claim);
                }
                if self.watch.is_none() {
                    consider(Some(self.next_watch), Job::Watch);
                }
            } else {
                consider(Some(self.next_grant), Job::Grant);
            }
            let wake = {
                let watch = &mut self.watch;
                let want_rx = &mut self.want_rx;
                tokio::select! {
                    biased;
                    _ = &mut stop_rx => Wake::Stop,
                    r = want_rx.changed() => if r.is_err() { Wake::Stop } else { Wake::Want },
                    m = async {
                        match watch.as_mut() {
                            Some(w) => w.message().await,
                            None => std::future::pending().await,
                        }
                    } => Wake::WatchMsg(m),
                    _ = async {
                        match due {
                            Some((at, _)) => tokio::time::sleep_until(at.into()).await,
                            None => std::future::pending().await,
                        }
                    } => Wake::Due(due.map_or(Job::Grant, |(_, j)| j)),
                }
            };
            match wake {
                Wake::Stop => break,
                Wake::Want => {
                    if *self.want_rx.borrow_and_update() {
                        self.next_claim = Instant::now();
                    }
                }
                Wake::WatchMsg(m) => self.on_watch(m),
                Wake::Due(Job::Grant) => self.grant().await,
                Wake::Due(Job::KeepAlive) => self.keepalive().await,
                Wake::Due(Job::Claim) => self.claim().await,
                Wake::Due(Job::Watch) => self.start_watch().await,
            }
        }
        // Planned stop: give the key up and revoke the lease so nobody waits for the TTL.
        if self.lc.token().is_some() {
            self.release().await;
        }
        if let Some(id) = self.lease_id.take() {
            if let Ok(mut c) = self.client().await {
                let _ = tokio::time::timeout(self.request_timeout, c.lease_revoke(id)).await;
            }
        }
        self.lc.expired();
        self.publish();
    }

    fn publish(&mut self) {
        let now = Instant::now();
        let held = self
            .lc
            .holds(now)
            .and_then(|t| self.lc.deadline().map(|d| (t, d)));
        let detail = if held.is_some() {
            None
        } else if let Some(e) = &self.last_error {
            Some(e.clone())
        } else if let Some(o) = &self.other_holder {
            Some(format!("key {} held by {o}", self.key))
        } else if !self.lc.has_lease() {
            Some("no etcd lease yet".to_owned())
        } else {
            None
        };
        let view = View {
            held,
            reachable: self.lc.lease_alive(now),
            other_holder: self.other_holder.clone(),
            detail,
            ttl: self.lc.ttl(),
        };
        self.view_tx.send_if_modified(|v| {
            let changed = *v != view;
            *v = view;
            changed
        });
    }

    async fn client(&mut self) -> Result<Client, String> {
        if let Some(c) = &self.clients[self.cur] {
            return Ok(c.clone());
        }
        let opts = self.options.clone()?;
        let ep = self.endpoints[self.cur].clone();
        match tokio::time::timeout(
            self.request_timeout,
            Client::connect([ep.as_str()], Some(opts)),
        )
        .await
        {
            Ok(Ok(c)) => {
                self.clients[self.cur] = Some(c.clone());
                Ok(c)
            }
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err("connect timed out".to_owned()),
        }
    }

    /// A request through the current endpoint failed: remember why, move to the next.
    fn failed(&mut self, what: &str, why: String) {
        let ep = &self.endpoints[self.cur];
        let msg = format!("etcd {what} via {ep} failed: {why}");
        tracing::debug!("arbiter: {msg}");
        self.last_error = Some(msg);
        self.clients[self.cur] = None;
        if self.watch.is_some() && self.watch_ep == self.cur {
            // The watch may hang on the same member: re-create it elsewhere.
            self.watch = None;
            self.next_watch = Instant::now();
        }
        self.cur = (self.cur + 1) % self.endpoints.len().max(1);
    }

    fn succeeded(&mut self) {
        self.last_error = None;
        if self.unreachable_logged {
            self.unreachable_logged = false;
            tracing::info!(
                "arbiter: etcd reachable again via {}",
                self.endpoints[self.cur]
            );
        }
    }

    fn abandon_lease(&mut self, why: &str) {
        let had_key = self.lc.token();
        if !self.unreachable_logged {
            self.unreachable_logged = true;
            tracing::warn!(
                "arbiter: lease {} {why}{}: {}",
                self.lease_id.map_or("-".to_owned(), |i| format!("{i:x}")),
                if had_key.is_some() { ", key lost" } else { "" },
                self.last_error.as_deref().unwrap_or("no answer from etcd")
            );
        }
        if let Some(id) = self.lease_id.take() {
            self.old_leases.push(id);
            if self.old_leases.len() > 16 {
                self.old_leases.remove(0);
            }
            // The server may still have it (only our answers lost): revoke it when we can,
            // so its key frees at once.
            if let Some(Some(c)) = self.clients.get(self.cur) {
                let mut c = c.clone();
                let t = self.request_timeout;
                tokio::spawn(async move {
                    let _ = tokio::time::timeout(t, c.lease_revoke(id)).await;
                });
            }
        }
        self.lc.expired();
        self.watch = None;
        self.next_grant = Instant::now();
    }

    async fn grant(&mut self) {
        let sent = Instant::now();
        let r = match self.client().await {
            Ok(mut c) => {
                tokio::time::timeout(self.request_timeout, c.lease_grant(self.ttl_asked, None))
                    .await
                    .map_err(|_| "timed out".to_owned())
                    .and_then(|r| r.map_err(|e| e.to_string()))
            }
            Err(e) => Err(e),
        };
        match r {
            Ok(resp) if resp.ttl() > 0 => {
                let ttl = Duration::from_secs(resp.ttl() as u64);
                self.lc.granted(sent, ttl);
                self.lease_id = Some(resp.id());
                self.next_claim = Instant::now();
                self.next_watch = Instant::now();
                self.succeeded();
                let raised = if resp.ttl() != self.ttl_asked {
                    format!(" (asked {} s; etcd's minimum applies)", self.ttl_asked)
                } else {
                    String::new()
                };
                tracing::info!(
                    "arbiter: lease {:x} granted by {}, TTL {} s{raised}",
                    resp.id(),
                    self.endpoints[self.cur],
                    resp.ttl()
                );
            }
            Ok(resp) => self.failed("lease grant", format!("granted TTL {}", resp.ttl())),
            Err(e) => {
                self.failed("lease grant", e);
                if !self.unreachable_logged {
                    self.unreachable_logged = true;
                    tracing::warn!(
                        "arbiter: no etcd lease yet, VIPs not held: {}",
                        self.last_error.as_deref().unwrap_or("")
                    );
                }
                self.next_grant = Instant::now() + GRANT_RETRY.min(self.request_timeout);
            }
        }
    }

    async fn keepalive(&mut self) {
        let Some(id) = self.lease_id else {
            return;
        };
        let sent = Instant::now();
        self.lc.keepalive_sent(sent);
        let r = match self.client().await {
            // One call sends one keep-alive and waits for its answer (etcd-client).
            Ok(mut c) => tokio::time::timeout(self.request_timeout, c.lease_keep_alive(id))
                .await
                .map_err(|_| None)
                .and_then(|r| r.map(|_| ()).map_err(Some)),
            Err(e) => {
                self.failed("keep-alive", e);
                return;
            }
        };
        match r {
            Ok(()) => {
                if let Some(ttl) = self.lc.ttl() {
                    self.lc.renewed(sent, ttl);
                }
                self.succeeded();
            }
            Err(Some(etcd_client::Error::LeaseKeepAliveError(m))) if m.contains("not found") => {
                // Rule 4: the server no longer has the lease.
                self.last_error = Some("the lease expired at the server".to_owned());
                self.abandon_lease("expired at the server");
            }
            Err(Some(e)) => self.failed("keep-alive", e.to_string()),
            Err(None) => self.failed("keep-alive", "timed out".to_owned()),
        }
    }

    async fn claim(&mut self) {
        let Some(id) = self.lease_id else {
            return;
        };
        self.next_claim = Instant::now() + CLAIM_RETRY;
        let key = self.key.clone();
        let txn = Txn::new()
            .when([Compare::create_revision(key.clone(), CompareOp::Equal, 0)])
            .and_then([TxnOp::put(
                key.clone(),
                self.value.clone(),
                Some(PutOptions::new().with_lease(id)),
            )]);
        let mut c = match self.client().await {
            Ok(c) => c,
            Err(e) => return self.failed("claim", e),
        };
        let r = match tokio::time::timeout(self.request_timeout, c.txn(txn)).await {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => return self.failed("claim", e.to_string()),
            Err(_) => return self.failed("claim", "timed out".to_owned()),
        };
        self.succeeded();
        if r.succeeded() {
            let Some(token) = r.header().map(|h| h.revision()) else {
                return self.failed("claim", "answer without a header".to_owned());
            };
            self.took(token);
            return;
        }
        // Held: by whom? (A key under our own lease is ours: an earlier claim whose
        // answer was lost. Under any other lease, also one of an earlier run of ours,
        // it is someone else's.)
        let got = match tokio::time::timeout(self.request_timeout, c.get(key, None)).await {
            Ok(Ok(g)) => g,
            Ok(Err(e)) => return self.failed("read of the key", e.to_string()),
            Err(_) => return self.failed("read of the key", "timed out".to_owned()),
        };
        match got.kvs().first() {
            Some(kv) if kv.lease() == id => self.took(kv.create_revision()),
            Some(kv) if self.old_leases.contains(&kv.lease()) => {
                // Under a lease this run gave up (etcd was unreachable, the server kept
                // it): not ours to use, but ours to revoke, so the key frees now.
                let old = kv.lease();
                tracing::info!(
                    "arbiter: key {} is still under our abandoned lease {old:x}: revoking it",
                    self.key
                );
                match tokio::time::timeout(self.request_timeout, c.lease_revoke(old)).await {
                    Ok(Ok(_)) | Ok(Err(_)) => self.old_leases.retain(|l| *l != old),
                    Err(_) => {
                        return self.failed("revoke of an abandoned lease", "timed out".to_owned())
                    }
                }
                self.next_claim = Instant::now();
            }
            Some(kv) => {
                let who = kv.value_str().unwrap_or("?").to_owned();
                if self.other_holder.as_deref() != Some(who.as_str()) {
                    tracing::info!("arbiter: key {} is held by {who}: waiting", self.key);
                }
                self.other_holder = Some(who);
            }
            // Deleted in between: try again at once.
            None => self.next_claim = Instant::now(),
        }
    }

    fn took(&mut self, token: i64) {
        if self.lc.claimed(Instant::now(), token) {
            self.other_holder = None;
            tracing::info!("arbiter: key {} held (fencing token {token})", self.key);
        }
    }

    async fn release(&mut self) {
        let Some(token) = self.lc.token() else {
            return;
        };
        // At once: from now on we do not count as the holder, whatever etcd answers.
        self.lc.key_lost();
        self.publish();
        let key = self.key.clone();
        let txn = Txn::new()
            .when([Compare::create_revision(
                key.clone(),
                CompareOp::Equal,
                token,
            )])
            .and_then([TxnOp::delete(key, None)]);
        let r = match self.client().await {
            Ok(mut c) => tokio::time::timeout(self.request_timeout, c.txn(txn))
                .await
                .map_err(|_| "timed out".to_owned())
                .and_then(|r| r.map_err(|e| e.to_string())),
            Err(e) => Err(e),
        };
        match r {
            Ok(_) => {
                self.succeeded();
                tracing::info!("arbiter: key {} given up (fencing token {token})", self.key);
            }
            Err(e) => {
                // It stays under our lease: revoke the lease so it frees now, and start
                // over with a fresh one.
                self.failed("release", e);
                self.abandon_lease("given up with the key");
            }
        }
    }

    async fn start_watch(&mut self) {
        self.next_watch = Instant::now() + WATCH_RETRY;
        let key = self.key.clone();
        let mut c = match self.client().await {
            Ok(c) => c,
            Err(e) => return self.failed("watch", e),
        };
        let opts = WatchOptions::new().with_prev_key();
        match tokio::time::timeout(self.request_timeout, c.watch(key, Some(opts))).await {
            Ok(Ok(w)) => {
                self.watch = Some(w);
                self.watch_ep = self.cur;
                // Whatever happened before the watch started: look once.
                self.next_claim = self.next_claim.min(Instant::now());
            }
            Ok(Err(e)) => self.failed("watch", e.to_string()),
            Err(_) => self.failed("watch", "timed out".to_owned()),
        }
    }

    fn on_watch(&mut self, m: Result<Option<etcd_client::WatchResponse>, etcd_client::Error>) {
        let resp = match m {
            Ok(Some(r)) => r,
            Ok(None) | Err(_) => {
                self.watch = None;
                self.next_watch = Instant::now() + WATCH_RETRY;
                return;
            }
        };
        if resp.canceled() {
            self.watch = None;
            self.next_watch = Instant::now() + WATCH_RETRY;
            return;
        }
        for ev in resp.events() {
            match ev.event_type() {
                EventType::Delete => {
                    let gone = ev.prev_kv().map(|kv| kv.create_revision());
                    if let Some(token) = self.lc.token() {
                        if gone.is_none_or(|g| g == token) {
                            tracing::warn!(
                                "arbiter: our key {} was deleted (fencing token {token})",
                                self.key
                            );
                            self.lc.key_lost();
                        }
                    }
                    self.other_holder = None;
                    self.next_claim = Instant::now();
                }
                EventType::Put => {
                    let Some(kv) = ev.kv() else { continue };
                    if Some(kv.lease()) != self.lease_id || self.lease_id.is_none() {
                        if let Some(token) = self.lc.token() {
                            if kv.create_revision() != token {
                                self.lc.key_lost();
                            }
                        }
                        self.other_holder = Some(kv.value_str().unwrap_or("?").to_owned());
                    }
                }
            }
        }
    }
}
