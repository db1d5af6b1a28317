//! The zone of the built-in server: SOA and NS at the apex, the TXT
//! announcement at the owner name, and the sockets it answers on.
//!
//! # Invariants
//! - The TXT RRset and the SOA serial are replaced under one lock: a query
//!   sees the old record or the new one, never none and never both.
//! - The SOA serial rises with every change of the record, its removal
//!   included.
//! - Every socket is served under [`ServeLimits`] (see `net` and `answer`):
//!   rate-limited, amplification-bounded UDP, capped TCP.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use hickory_net::runtime::TokioRuntimeProvider;
use hickory_proto::rr::rdata::{NS, SOA, TXT};
use hickory_proto::rr::{LowerName, Name, RData, Record, RecordSet, RecordType, RrKey};
use hickory_server::store::in_memory::InMemoryZoneHandler;
use hickory_server::zone_handler::{AxfrPolicy, Catalog, ZoneHandler, ZoneType};
use onionpkg_config::announce::ServeLimits;
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::answer::Responder;
use super::net::{Shared, serve_tcp, serve_udp};
use crate::err::{Error, Result};
use crate::push::fqdn;

/// How long an idle TCP connection is kept open by default (`[serve.limits]
/// tcp_idle_timeout`).
pub const TCP_IDLE_TIMEOUT: Duration = Duration::from_secs(10);

/// The zone served: SOA, NS and the announcement.
#[derive(Clone)]
pub struct AnnounceZone {
    handler: Arc<InMemoryZoneHandler<TokioRuntimeProvider>>,
    origin: Name,
    owner: Name,
    ttl: u32,
    soa: SOA,
    serial: Arc<AtomicU32>,
    /// Whether a record is served at the owner name now.
    served: Arc<AtomicBool>,
}

impl std::fmt::Debug for AnnounceZone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AnnounceZone")
            .field("origin", &self.origin)
            .field("owner", &self.owner)
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

impl AnnounceZone {
    /// A zone `zone` publishing the announcement at `name` with `ttl`; `ns`
    /// is the name server's name (default `ns.ZONE`). It holds no
    /// announcement until [`AnnounceZone::set_record`].
    pub fn new(zone: &str, name: &str, ttl: u32, ns: Option<&str>) -> Result<Self> {
        let origin = fqdn("zone", zone)?;
        let owner = fqdn("name", name)?;
        if !origin.zone_of(&owner) {
            return Err(Error::arg(
                "name",
                format!("{owner} is not inside the zone {origin}"),
            ));
        }
        let ns = match ns {
            Some(ns) => fqdn("--ns", ns)?,
            None => fqdn("zone", &format!("ns.{origin}"))?,
        };
        let rname = fqdn("zone", &format!("hostmaster.{origin}"))?;
        // Negative answers are cached for at most a minute.
        let soa = SOA::new(ns.clone(), rname, 1, 3600, 600, 86_400, ttl.min(60));
        let mut handler = InMemoryZoneHandler::<TokioRuntimeProvider>::empty(
            origin.clone(),
            ZoneType::Primary,
            AxfrPolicy::Deny,
        );
        let inserted = handler.upsert_mut(
            Record::from_rdata(origin.clone(), ttl, RData::SOA(soa.clone())),
            1,
        ) && handler.upsert_mut(
            Record::from_rdata(origin.clone(), ttl, RData::NS(NS(ns))),
            1,
        );
        if !inserted {
            return Err(Error::Serve("could not build the zone".into()));
        }
        Ok(Self {
            handler: Arc::new(handler),
            origin,
            owner,
            ttl,
            soa,
            serial: Arc::new(AtomicU32::new(1)),
            served: Arc::new(AtomicBool::new(false)),
        })
    }

    /// Replaces the announcement (none: remove it) and raises the SOA serial.
    pub async fn set_record(&self, text: Option<&str>) -> Result<()> {
        let serial = self.serial.fetch_add(1, Ordering::SeqCst).wrapping_add(1);
        let txt_key = RrKey::new(LowerName::from(&self.owner), RecordType::TXT);
        let soa_key = RrKey::new(LowerName::from(&self.origin), RecordType::SOA);
        let mut soa = self.soa.clone();
        soa.serial = serial;
        let mut soa_set = RecordSet::new(self.origin.clone(), RecordType::SOA, serial);
        soa_set.insert(
            Record::from_rdata(self.origin.clone(), self.ttl, RData::SOA(soa)),
            serial,
        );
        let txt_set = match text {
            Some(text) => {
                let strings: Vec<String> = onionpkg_trust::announce::chunks(text)
                    .into_iter()
                    .map(str::to_string)
                    .collect();
                let mut set = RecordSet::new(self.owner.clone(), RecordType::TXT, serial);
                set.insert(
                    Record::from_rdata(self.owner.clone(), self.ttl, RData::TXT(TXT::new(strings))),
                    serial,
                );
                Some(set)
            }
            None => None,
        };
        let mut records = self.handler.records_mut().await;
        match txt_set {
            Some(set) => records.insert(txt_key, Arc::new(set)),
            None => records.remove(&txt_key),
        };
        records.insert(soa_key, Arc::new(soa_set));
        self.served.store(text.is_some(), Ordering::SeqCst);
        Ok(())
    }

    /// Whether `name` exists in the zone now: the apex, or the owner name
    /// while a record is served there.
    pub(crate) fn has_name(&self, name: &LowerName) -> bool {
        *name == LowerName::from(&self.origin)
            || (*name == LowerName::from(&self.owner) && self.served.load(Ordering::SeqCst))
    }

    /// The TTL of the zone's records.
    pub(crate) fn ttl(&self) -> u32 {
        self.ttl
    }

    /// A catalog answering for this zone only.
    pub(crate) fn catalog(&self) -> Catalog {
        let mut catalog = Catalog::new();
        let handler: Arc<dyn ZoneHandler> = self.handler.clone();
        catalog.upsert(LowerName::from(&self.origin), vec![handler]);
        catalog
    }
}

/// A running server.
pub struct Listening {
    stop: watch::Sender<bool>,
    tasks: JoinSet<()>,
    addrs: Vec<SocketAddr>,
}

impl std::fmt::Debug for Listening {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Listening")
            .field("addrs", &self.addrs)
            .finish_non_exhaustive()
    }
}

impl Listening {
    /// The addresses answered on (UDP and TCP each).
    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }

    /// Stops accepting queries and waits for the running ones.
    pub async fn shutdown(mut self) -> Result<()> {
        self.stop.send_replace(true);
        while let Some(done) = self.tasks.join_next().await {
            done.map_err(|e| Error::Serve(format!("a listener failed: {e}")))?;
        }
        Ok(())
    }
}

/// A UDP socket at `addr`; an IPv6 one answers IPv6 only, so that `[::]:53`
/// and `0.0.0.0:53` can both be listed.
fn bind_udp(addr: SocketAddr) -> std::io::Result<tokio::net::UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    tokio::net::UdpSocket::from_std(socket.into())
}

/// A TCP listener at `addr` (IPv6 only for an IPv6 address).
fn bind_tcp(addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(128)?;
    tokio::net::TcpListener::from_std(socket.into())
}

/// Starts answering for `zone` on UDP and TCP at each address, with the
/// default [`ServeLimits`]. A port 0 binds UDP to a free port and TCP to the
/// same one.
pub async fn listen(zone: &AnnounceZone, addrs: &[SocketAddr]) -> Result<Listening> {
    listen_with(zone, addrs, &ServeLimits::default()).await
}

/// [`listen`] under these limits.
pub async fn listen_with(
    zone: &AnnounceZone,
    addrs: &[SocketAddr],
    limits: &ServeLimits,
) -> Result<Listening> {
    let shared = Arc::new(Shared::new(
        Responder::new(zone, limits.udp_amplification),
        limits,
    ));
    let (stop, stopped) = watch::channel(false);
    let mut sockets = Vec::new();
    let mut bound = Vec::new();
    for &addr in addrs {
        let bind_err =
            |proto: &str, e: std::io::Error| Error::Serve(format!("binding {proto} {addr}: {e}"));
        let udp = bind_udp(addr).map_err(|e| bind_err("UDP", e))?;
        let actual = udp.local_addr().map_err(|e| bind_err("UDP", e))?;
        let tcp = bind_tcp(actual).map_err(|e| bind_err("TCP", e))?;
        sockets.push((udp, tcp));
        bound.push(actual);
    }
    // Spawned only once every address is bound, so a failure leaves no
    // listener behind.
    let mut tasks = JoinSet::new();
    for (udp, tcp) in sockets {
        tasks.spawn(serve_udp(udp, shared.clone(), stopped.clone()));
        tasks.spawn(serve_tcp(tcp, shared.clone(), stopped.clone()));
    }
    Ok(Listening {
        stop,
        tasks,
        addrs: bound,
    })
}
