//! The built-in authoritative server (`onionpkg-announce serve`).
//!
//! It answers for one zone only ([`AnnounceZone`]): the SOA and NS records at
//! the apex and the TXT announcement at the owner name. Other names in the
//! zone get NXDOMAIN, names outside it REFUSED; there is no recursion, no
//! zone transfer and no dynamic update.
//!
//! The announcement is re-made from the repository (and re-signed):
//! - when `metadata/timestamp.json` changes: its hash is compared every poll
//!   interval (default 10 s), so a publish shows up within one interval;
//! - on SIGHUP ([`Control::Reload`]), at once;
//! - when half of the announcement's validity has passed, so the record
//!   served does not expire while the timestamp it names is valid.
//!
//! Each record is valid for the configured time, cut at the expiry of the
//! `timestamp.json` it names ([`Validity::AtMost`]). Once that timestamp has
//! expired, no record may name it: the TXT RRset is removed (the SOA serial
//! rises), an error is logged once, and the server answers without a record
//! until a fresh `timestamp.json` appears; then it serves again.
//!
//! SIGTERM and SIGINT ([`Control::Stop`]) shut the server down gracefully.
//!
//! The sockets are served under [`ServeLimits`] so that the server cannot be
//! used against others: UDP responses are rate-limited per client prefix
//! ([`RateLimiter`]) and never larger than a bound times their query (an
//! answer that does not fit goes out empty with TC=1, and the client asks
//! over TCP); ANY gets RFC 8482's synthesized HINFO; TCP connections are
//! capped in all and per address, and closed when idle.
//!
//! Time comes from a [`Timer`], so the loop ([`drive`]) can be run against
//! a controlled clock; [`run`] uses the system clock.
//!
//! # Invariants
//! - No record is served past its own expiry, and no record's expiry is
//!   after the expiry of the timestamp it names: a record naming an expired
//!   timestamp is never handed out. The loop wakes at the record's expiry
//!   (at the latest) to withdraw it.
//! - A failed refresh keeps the previous record while it is valid, and is
//!   logged; only a failure of the first one at start-up is fatal, and not
//!   even that when the only problem is an expired timestamp.
//! - A record cut at the timestamp's expiry is not re-signed at half its
//!   validity (that could not extend it): only a new `timestamp.json`
//!   replaces it.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use onionpkg_repo::{RemoteSigner, RepoDir};
use onionpkg_trust::announce::Announcement;
use onionpkg_trust::clock::{Clock, SystemClock};
use onionpkg_trust::sign::SecretKey;
use sha2::{Digest, Sha256};
use tokio::sync::{mpsc, watch};

use crate::err::{Error, Result};
use crate::make::{Signed, Signers, Validity, sign};

mod answer;
mod net;
mod rate;
mod zone;

pub use net::MAX_TCP_QUERY;
/// The limits `serve` runs under (`[serve.limits]`).
pub use onionpkg_config::announce::ServeLimits;
pub use rate::{RateLimiter, Verdict};
pub use zone::{AnnounceZone, Listening, TCP_IDLE_TIMEOUT, listen, listen_with};

/// The default poll interval for `timestamp.json`.
pub const DEFAULT_POLL: Duration = Duration::from_secs(10);

/// Without polling, how often the loop still checks whether the record is
/// due (and, while none is served, looks for a fresh timestamp).
pub const CHECK_WITHOUT_POLL: Duration = Duration::from_secs(60);

/// The longest [`SystemClock`] sleeps at once, so that a wall clock that
/// jumps is noticed.
pub const MAX_NAP: Duration = Duration::from_secs(60);

/// A clock the server's loop can wait on.
pub trait Timer: Clock {
    /// Resolves once this clock reads `at` or later. It may resolve earlier;
    /// the loop then looks at the time again.
    fn sleep_until(&self, at: Timestamp) -> Pin<Box<dyn Future<Output = ()> + Send + '_>>;
}

impl Timer for SystemClock {
    fn sleep_until(&self, at: Timestamp) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        let left = at.duration_since(Timestamp::now());
        let nap = Duration::try_from(left)
            .unwrap_or(Duration::ZERO)
            .min(MAX_NAP);
        Box::pin(tokio::time::sleep(nap))
    }
}

/// What the loop is told from outside (signals, in the binary).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    /// Re-read the repository and re-sign now (SIGHUP).
    Reload,
    /// Stop (SIGTERM, SIGINT).
    Stop,
}

/// What the server answers at the owner name.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ServeStatus {
    /// Nothing made yet.
    Starting,
    /// This record is served.
    Serving(Announcement),
    /// No record is served.
    Withdrawn {
        /// Why (the timestamp expired, or the record did and could not be
        /// renewed).
        reason: String,
    },
}

/// What `serve` announces, and how.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// The owner name.
    pub name: String,
    /// The channel.
    pub channel: String,
    /// How long each signed announcement is valid at most (it is cut at the
    /// expiry of the timestamp it names).
    pub valid_for: SignedDuration,
    /// How often `timestamp.json` is checked for a change; `None`: only on
    /// SIGHUP, when the record is due, and every [`CHECK_WITHOUT_POLL`]
    /// while none is served.
    pub poll: Option<Duration>,
    /// The mirrors a new serial must be on before it is served; `None`:
    /// served as soon as the repository has it.
    pub gate: Option<crate::mirrors::MirrorGate>,
}

/// The record served, and whether it was cut at the timestamp's expiry.
#[derive(Debug)]
struct Current {
    signed: Signed,
    capped: bool,
}

impl Current {
    /// When it must be re-made: at half its validity, or (when cut at the
    /// timestamp's expiry, which re-signing cannot extend) at its expiry.
    fn due_at(&self) -> Timestamp {
        let a = &self.signed.announcement;
        if self.capped {
            return a.expires;
        }
        let half = a.expires.duration_since(a.issued) / 2;
        a.issued.checked_add(half).unwrap_or(a.expires)
    }
}

/// What signs the served announcements.
pub enum Signing {
    /// The timestamp role's key files, loaded at start.
    Keys(Vec<SecretKey>),
    /// `onionpkg-signer`: this process holds no key of the role.
    Signer(Box<RemoteSigner>),
}

impl Signing {
    fn signers(&self) -> Signers<'_> {
        match self {
            Self::Keys(keys) => Signers::Keys(keys),
            Self::Signer(remote) => Signers::Signer(remote),
        }
    }
}

impl std::fmt::Debug for Signing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Keys(keys) => write!(f, "{} key file(s)", keys.len()),
            Self::Signer(_) => f.write_str("the signer"),
        }
    }
}

/// Keeps the served announcement in step with the repository.
pub struct Announcer {
    repo: RepoDir,
    keys: Signing,
    opts: ServeOptions,
    zone: AnnounceZone,
    seen_hash: Option<[u8; 32]>,
    current: Option<Current>,
    /// When the last refresh failed, if the last one did: not retried for
    /// being due before the next poll.
    last_failure: Option<Timestamp>,
    status: watch::Sender<ServeStatus>,
}

impl std::fmt::Debug for Announcer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Announcer")
            .field("repo", &self.repo)
            .field("keys", &self.keys)
            .field("current", &self.current)
            .finish_non_exhaustive()
    }
}

impl Announcer {
    /// An announcer for `repo`, signing with `keys`, serving in `zone`.
    pub fn new(repo: RepoDir, keys: Signing, opts: ServeOptions, zone: AnnounceZone) -> Self {
        Self {
            repo,
            keys,
            opts,
            zone,
            seen_hash: None,
            current: None,
            last_failure: None,
            status: watch::Sender::new(ServeStatus::Starting),
        }
    }

    /// The announcement served now.
    pub fn current(&self) -> Option<&Signed> {
        self.current.as_ref().map(|c| &c.signed)
    }

    /// What is served, as it changes.
    pub fn status(&self) -> watch::Receiver<ServeStatus> {
        self.status.subscribe()
    }

    /// The first refresh: an error is fatal, except an expired timestamp or
    /// one the mirrors do not serve yet (the server then starts without a
    /// record and waits).
    pub async fn start(&mut self, now: Timestamp) -> Result<()> {
        match self.refresh(now, true).await {
            Ok(_) | Err(Error::TimestampExpired { .. }) => Ok(()),
            Err(e @ Error::NotYetOnMirrors { .. }) => {
                tracing::info!(error = %e, "starting without a record");
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// Whether the record must be re-made at `now`: none is served, or half
    /// its validity has passed (for a record cut at the timestamp's expiry:
    /// it has expired).
    pub fn is_due(&self, now: Timestamp) -> bool {
        self.current.as_ref().is_none_or(|c| now >= c.due_at())
    }

    /// When the record next needs attention (possibly already passed): when
    /// it is due, or, if a refresh failed since, when it expires (to
    /// withdraw it). `None` while no record is served.
    pub fn next_due(&self) -> Option<Timestamp> {
        let c = self.current.as_ref()?;
        let (due, expires) = (c.due_at(), c.signed.announcement.expires);
        match self.last_failure {
            Some(failed) if failed >= due => (expires > failed).then_some(expires),
            _ => Some(due),
        }
    }

    /// Re-makes the announcement if `force`, if `timestamp.json` changed,
    /// or if it is due. Returns the new one, if any.
    ///
    /// When the timestamp has expired, the record is withdrawn and
    /// [`Error::TimestampExpired`] returned (logged here once, when the
    /// record goes). On any other error the previous record stays while it
    /// is valid.
    pub async fn refresh(&mut self, now: Timestamp, force: bool) -> Result<Option<&Signed>> {
        match self.try_refresh(now, force).await {
            Ok(made) => {
                self.last_failure = None;
                Ok(made.then(|| self.current()).flatten())
            }
            Err(e) => {
                self.last_failure = Some(now);
                Err(e)
            }
        }
    }

    /// [`Announcer::refresh`]; true when a new record is served.
    async fn try_refresh(&mut self, now: Timestamp, force: bool) -> Result<bool> {
        let ts_path = self.repo.metadata_dir().join("timestamp.json");
        let hash: [u8; 32] = match std::fs::read(&ts_path) {
            Ok(bytes) => Sha256::digest(&bytes).into(),
            Err(e) => {
                self.withdraw_if_expired(now).await?;
                return Err(Error::io("reading", &ts_path)(e));
            }
        };
        if !(force || self.is_due(now) || self.seen_hash != Some(hash)) {
            return Ok(false);
        }
        let validity = Validity::AtMost(self.opts.valid_for);
        let signed = match sign(
            &self.repo,
            self.keys.signers(),
            &self.opts.name,
            &self.opts.channel,
            validity,
            now,
        ) {
            Ok(signed) => signed,
            Err(e @ Error::TimestampExpired { .. }) => {
                self.seen_hash = Some(hash);
                self.withdraw(&e.to_string()).await?;
                return Err(e);
            }
            Err(e) => {
                self.withdraw_if_expired(now).await?;
                return Err(e);
            }
        };
        let a = &signed.announcement;
        let new_serial = self
            .current
            .as_ref()
            .is_none_or(|c| c.signed.announcement.serial != a.serial);
        if new_serial && let Some(gate) = &self.opts.gate {
            // Not on the mirrors yet: keep what is served (while valid) and
            // ask again at the next poll.
            if let Err(e) = gate.check(a.serial, &a.timestamp_hash).await {
                self.withdraw_if_expired(now).await?;
                return Err(e);
            }
        }
        let capped = a.expires.duration_since(a.issued) < self.opts.valid_for;
        self.zone.set_record(Some(&signed.text)).await?;
        if matches!(*self.status.borrow(), ServeStatus::Withdrawn { .. }) {
            tracing::warn!(
                serial = a.serial,
                "a fresh timestamp: serving the announcement again"
            );
        }
        tracing::info!(
            serial = a.serial,
            expires = %a.expires,
            cut_at_timestamp_expiry = capped,
            "serving a new announcement"
        );
        self.status.send_replace(ServeStatus::Serving(a.clone()));
        self.seen_hash = Some(hash);
        self.current = Some(Current { signed, capped });
        Ok(true)
    }

    /// Removes the record (if one is served, or none was yet), and says why
    /// in the log, once.
    async fn withdraw(&mut self, reason: &str) -> Result<()> {
        if self.current.is_none() && matches!(*self.status.borrow(), ServeStatus::Withdrawn { .. })
        {
            return Ok(());
        }
        self.zone.set_record(None).await?;
        self.current = None;
        tracing::error!("{reason}; no announcement is served until that is fixed");
        self.status.send_replace(ServeStatus::Withdrawn {
            reason: reason.to_string(),
        });
        Ok(())
    }

    /// Withdraws the record once it has expired.
    async fn withdraw_if_expired(&mut self, now: Timestamp) -> Result<()> {
        let Some(expires) = self
            .current
            .as_ref()
            .map(|c| c.signed.announcement.expires)
            .filter(|e| now >= *e)
        else {
            return Ok(());
        };
        self.withdraw(&format!(
            "the announcement expired at {expires} and could not be renewed"
        ))
        .await
    }
}

/// Serves until SIGTERM or SIGINT, under `limits`. `ready` is called with
/// the bound addresses and the record served (none when the timestamp has
/// expired) once the server answers and the signal handlers are in place.
pub async fn run(
    mut announcer: Announcer,
    listen_on: &[SocketAddr],
    limits: &ServeLimits,
    ready: impl FnOnce(&[SocketAddr], Option<&Signed>),
) -> Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let sig = |kind: SignalKind, name: &str| {
        signal(kind).map_err(|e| Error::Serve(format!("installing the {name} handler: {e}")))
    };
    let mut hup = sig(SignalKind::hangup(), "SIGHUP")?;
    let mut term = sig(SignalKind::terminate(), "SIGTERM")?;
    let mut int = sig(SignalKind::interrupt(), "SIGINT")?;
    let clock = SystemClock;
    announcer.start(clock.now()).await?;
    let listening = listen_with(&announcer.zone, listen_on, limits).await?;
    ready(listening.local_addrs(), announcer.current());
    let (tx, mut rx) = mpsc::channel(4);
    // Never ends by itself: the loop ends when it receives the stop.
    let signals = async move {
        loop {
            let control = tokio::select! {
                _ = hup.recv() => { tracing::info!("SIGHUP: re-reading the repository"); Control::Reload }
                _ = term.recv() => Control::Stop,
                _ = int.recv() => Control::Stop,
            };
            if tx.send(control).await.is_err() || control == Control::Stop {
                break;
            }
        }
        std::future::pending::<()>().await;
    };
    tokio::select! {
        served = drive(&mut announcer, &clock, &mut rx) => served?,
        () = signals => {}
    }
    tracing::info!("shutting down");
    listening.shutdown().await
}

/// The server's loop: keeps the record in step with the repository and the
/// clock until [`Control::Stop`] (or the sender is dropped). The first
/// record is made before ([`Announcer::start`]).
pub async fn drive(
    announcer: &mut Announcer,
    timer: &dyn Timer,
    control: &mut mpsc::Receiver<Control>,
) -> Result<()> {
    let period = announcer.opts.poll.unwrap_or(CHECK_WITHOUT_POLL);
    let period =
        SignedDuration::try_from(period).map_err(|e| Error::arg("--poll", e.to_string()))?;
    loop {
        let now = timer.now();
        let mut wake = now.checked_add(period).unwrap_or(Timestamp::MAX);
        if let Some(due) = announcer.next_due() {
            // Possibly passed already (the clock moved while refreshing):
            // then at once.
            wake = wake.min(due);
        }
        let force = tokio::select! {
            c = control.recv() => match c {
                Some(Control::Reload) => true,
                Some(Control::Stop) | None => break,
            },
            () = timer.sleep_until(wake) => false,
        };
        let now = timer.now();
        // Without polling, only a due record (or SIGHUP) re-reads the
        // repository.
        if !(force || announcer.opts.poll.is_some() || announcer.is_due(now)) {
            continue;
        }
        match announcer.refresh(now, force).await {
            Ok(_) => {}
            // Logged when the record was withdrawn.
            Err(e @ Error::TimestampExpired { .. }) => tracing::debug!(error = %e, "still expired"),
            // Mirrors sync on their own schedule; asked again next poll.
            Err(e @ Error::NotYetOnMirrors { .. }) => {
                tracing::info!(error = %e, "waiting for the mirrors")
            }
            Err(e) => tracing::error!(
                error = %e,
                "could not refresh the announcement; the previous one stays while it is valid"
            ),
        }
    }
    Ok(())
}
