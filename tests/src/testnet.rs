//! A private Tor network on 127.0.0.1 for tests, demos and benchmarks.
//!
//! [`TestNet::start`] generates keys and torrcs in a temp dir, starts three
//! directory authorities, middle relays and exits (all HSDirs), optionally a
//! C tor client with a SOCKS port and a C tor onion-service host, and waits
//! until the network is usable. It hands out a [`PrivateNetwork`]: what an
//! arti client needs to join, and the only input from which tests build arti
//! configurations (see [`arti`]).
//!
//! # Safety invariants
//! - Every tor runs with `TestingTorNetwork 1`, exactly the private
//!   authorities, `UseDefaultFallbackDirs 0` and an empty defaults torrc;
//!   exits resolve nothing off-host and bind their outgoing sockets to
//!   127.0.0.1. Everything listens on 127.0.0.1.
//! - Exits allow only loopback targets; tests ask them only for 127.0.0.1
//!   on a port in [`ports::EXIT_PORTS`].
//! - Teardown (drop, panics included) stops every tor: SIGTERM to its
//!   process group, SIGKILL after a grace period. Each tor also exits on its
//!   own when the test process dies (`__OwningControllerProcess`).
//! - Every wait polls a condition against a deadline.

pub mod arti;
pub mod curl;
pub mod ports;
pub mod process;
pub mod torrc;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use onionpkg_net::tor::{Authority, FallbackCache};
use tempfile::TempDir;

use ports::{PortLease, TOR_PORTS};
use process::{POLL, TorProcess, find_binary, stop_all, tail};
use torrc::{Identity, Node, Role};

/// Set this environment variable to keep the network's dir (keys, torrcs,
/// logs) after teardown, for debugging.
pub const KEEP_ENV: &str = "ONIONPKG_TESTNET_KEEP";

/// Errors of the harness.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A required program is not installed.
    #[error("the `{0}` program was not found: install tor (on Debian: apt-get install tor)")]
    MissingBinary(String),
    /// A file or process operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// Why it failed.
        source: std::io::Error,
    },
    /// A key-generation command failed.
    #[error("{what} failed: {output}")]
    KeyTool {
        /// The command.
        what: String,
        /// Its exit status and output.
        output: String,
    },
    /// Generated keys could not be read.
    #[error("bad generated keys: {0}")]
    Keys(String),
    /// No free port was left in a range.
    #[error("no free port in {range}")]
    NoFreePort {
        /// The range searched.
        range: String,
    },
    /// A tor exited while it should have been running.
    #[error("tor node {node} exited unexpectedly ({status}); see its notice.log")]
    Exited {
        /// The node.
        node: String,
        /// Its exit status.
        status: String,
    },
    /// A wait passed its deadline.
    #[error("timed out after {after:?} waiting for {what}")]
    Timeout {
        /// What was awaited.
        what: String,
        /// The deadline.
        after: Duration,
    },
    /// An arti configuration would reach beyond the private network.
    #[error("arti configuration is not private: {0}")]
    NotPrivate(String),
    /// The Tor plumbing failed.
    #[error(transparent)]
    Fetcher(#[from] onionpkg_net::Error),
    /// The network was started without a C tor client.
    #[error("no C tor client in this network")]
    NoClient,
    /// A URL gave no expected answer before its deadline.
    #[error("{url}: {gave_up}")]
    Unreachable {
        /// The URL.
        url: String,
        /// How many attempts failed, for how long, and the last error.
        gave_up: String,
    },
}

impl Error {
    pub(crate) fn io(what: &'static str, source: std::io::Error) -> Self {
        Self::Io { what, source }
    }
}

/// Shorthand for results of the harness.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What to start.
#[derive(Debug, Clone)]
pub struct TestNetOptions {
    /// Middle relays (at least 2).
    pub middles: usize,
    /// Exits allowing 127.0.0.1 (at least 2).
    pub exits: usize,
    /// Start a C tor client with a SOCKS port.
    pub client: bool,
    /// Start a C tor onion-service host forwarding its port 80 here.
    pub onion_target: Option<SocketAddr>,
    /// Deadline for the network to become usable.
    pub usable_timeout: Duration,
}

impl Default for TestNetOptions {
    fn default() -> Self {
        Self {
            middles: 2,
            exits: 2,
            client: true,
            onion_target: None,
            usable_timeout: Duration::from_secs(90),
        }
    }
}

/// What an arti client needs to join the private network.
///
/// Built only by the harness; tests turn it into an arti configuration with
/// [`arti::arti_config`], which also checks that nothing public slipped in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrivateNetwork {
    authorities: Vec<Authority>,
    fallbacks: Vec<FallbackCache>,
}

impl PrivateNetwork {
    /// The directory authorities.
    pub fn authorities(&self) -> &[Authority] {
        &self.authorities
    }

    /// The fallback caches: the authorities themselves, so that a client with
    /// the authorities down has nowhere to bootstrap from.
    pub fn fallbacks(&self) -> &[FallbackCache] {
        &self.fallbacks
    }

    /// The `[tor]` section of an onionpkg configuration (fetcher or mirror)
    /// that joins this network and no other.
    pub fn config_toml(&self, bootstrap_timeout: &str) -> String {
        let mut s = format!("[tor]\nbootstrap_timeout = \"{bootstrap_timeout}\"\n");
        for (i, a) in self.authorities.iter().enumerate() {
            let dir = a
                .dir_addrs
                .first()
                .map(ToString::to_string)
                .unwrap_or_default();
            s += &format!(
                "[[tor.authority]]\nname = \"auth{i}\"\nv3ident = \"{}\"\ndir_addr = \"{dir}\"\n",
                a.v3ident
            );
        }
        for f in &self.fallbacks {
            let orports: Vec<String> = f.orports.iter().map(|a| format!("\"{a}\"")).collect();
            s += &format!(
                "[[tor.fallback]]\nrsa_identity = \"{}\"\ned_identity = \"{}\"\norports = [{}]\n",
                f.rsa_identity,
                f.ed_identity,
                orports.join(", ")
            );
        }
        s
    }
}

/// A running private Tor network; dropping it stops every tor.
#[derive(Debug)]
pub struct TestNet {
    procs: Vec<TorProcess>,
    nodes: Vec<Node>,
    network: PrivateNetwork,
    socks: Option<SocketAddr>,
    onion_address: Option<String>,
    usable_after: Duration,
    keys_after: Duration,
    _leases: Vec<PortLease>,
    dir: TempDir,
}

impl TestNet {
    /// Starts a network and waits until clients can use it.
    pub fn start(opts: &TestNetOptions) -> Result<Self> {
        let t0 = Instant::now();
        let tor = find_binary("tor")?;
        let gencert = find_binary("tor-gencert")?;
        let mut dir = tempfile::Builder::new()
            .prefix("onionpkg-testnet-")
            .tempdir()
            .map_err(|e| Error::io("creating the network dir", e))?;
        if std::env::var_os(KEEP_ENV).is_some() {
            dir.disable_cleanup(true);
        }
        let resolv = dir.path().join("resolv.conf");
        std::fs::write(&resolv, "nameserver 127.0.0.1\n")
            .map_err(|e| Error::io("writing resolv.conf", e))?;

        let mut leases = Vec::new();
        let mut nodes = Vec::new();
        let relay = |name: String, role: Role, leases: &mut Vec<PortLease>| -> Result<Node> {
            let or = ports::lease(TOR_PORTS)?;
            let dirp = ports::lease(TOR_PORTS)?;
            let node = Node {
                name,
                role,
                orport: Some(or.addr()),
                dirport: Some(dirp.addr()),
                socks: None,
            };
            leases.extend([or, dirp]);
            Ok(node)
        };
        for i in 1..=3 {
            nodes.push(relay(format!("auth{i}"), Role::Authority, &mut leases)?);
        }
        for i in 1..=opts.middles.max(2) {
            nodes.push(relay(format!("relay{i}"), Role::Middle, &mut leases)?);
        }
        for i in 1..=opts.exits.max(2) {
            nodes.push(relay(format!("exit{i}"), Role::Exit, &mut leases)?);
        }
        let mut socks = None;
        if opts.client {
            let l = ports::lease(TOR_PORTS)?;
            socks = Some(l.addr());
            nodes.push(Node {
                name: "client".into(),
                role: Role::Client,
                orport: None,
                dirport: None,
                socks,
            });
            leases.push(l);
        }
        if opts.onion_target.is_some() {
            nodes.push(Node {
                name: "onionhost".into(),
                role: Role::OnionHost,
                orport: None,
                dirport: None,
                socks: None,
            });
        }
        for n in &nodes {
            let d = node_dir(dir.path(), &n.name);
            std::fs::create_dir_all(&d).map_err(|e| Error::io("creating a node dir", e))?;
            // tor refuses a control socket in a directory others can read.
            {
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o700))
                    .map_err(|e| Error::io("restricting a node dir", e))?;
            }
            std::fs::write(d.join("torrc.defaults-empty"), "")
                .map_err(|e| Error::io("writing a defaults torrc", e))?;
        }

        let ids = generate_keys(&tor, &gencert, dir.path(), &nodes)?;
        let keys_done = t0.elapsed();
        let (network, dir_authorities) = describe(&nodes, &ids)?;

        let hsdir = dir.path().join("nodes/onionhost/hs");
        let mut net = Self {
            procs: Vec::new(),
            nodes,
            network,
            socks,
            onion_address: None,
            usable_after: Duration::ZERO,
            keys_after: keys_done,
            _leases: leases,
            dir,
        };
        for n in &net.nodes {
            let d = node_dir(net.dir.path(), &n.name);
            let mut text = torrc::common(n, &d, &resolv, &dir_authorities);
            text.push_str(&torrc::role_part(
                n,
                opts.onion_target.map(|t| (hsdir.as_path(), t)),
            ));
            std::fs::write(d.join("torrc"), text).map_err(|e| Error::io("writing a torrc", e))?;
        }
        for n in &net.nodes {
            let d = node_dir(net.dir.path(), &n.name);
            net.procs.push(TorProcess::start(&tor, &n.name, &d)?);
        }
        if let Err(e) = net.wait_usable(t0, opts.usable_timeout) {
            net.print_log_tails(25);
            return Err(e);
        }
        net.usable_after = t0.elapsed();
        tracing::info!(
            keys_ms = keys_done.as_millis(),
            usable_ms = net.usable_after.as_millis(),
            "private tor network usable"
        );
        Ok(net)
    }

    /// Polls until the authorities publish a consensus listing every relay,
    /// and the C tor client and onion host (if any) have bootstrapped.
    fn wait_usable(&mut self, t0: Instant, timeout: Duration) -> Result<()> {
        let relays = self.nodes.iter().filter(|n| n.orport.is_some()).count();
        let dirports: Vec<SocketAddr> = self
            .nodes
            .iter()
            .filter(|n| n.role == Role::Authority)
            .filter_map(|n| n.dirport)
            .collect();
        let hostname = self.dir.path().join("nodes/onionhost/hs/hostname");
        let want_onion = self.nodes.iter().any(|n| n.role == Role::OnionHost);
        let mut consensus_ok = false;
        loop {
            for p in &mut self.procs {
                p.check_alive()?;
            }
            if !consensus_ok {
                consensus_ok = dirports
                    .iter()
                    .any(|a| consensus_relays(*a).is_some_and(|n| n >= relays));
            }
            let clients_ok = self
                .procs
                .iter()
                .filter(|p| matches!(p.name(), "client" | "onionhost"))
                .all(|p| p.log_contains("Bootstrapped 100%"));
            if self.onion_address.is_none() {
                self.onion_address = std::fs::read_to_string(&hostname)
                    .ok()
                    .map(|s| s.trim().to_owned())
                    .filter(|s| s.ends_with(".onion"));
            }
            let onion_ok = self.onion_address.is_some() || !want_onion;
            if consensus_ok && clients_ok && onion_ok {
                return Ok(());
            }
            if t0.elapsed() > timeout {
                return Err(Error::Timeout {
                    what: format!(
                        "a usable network (consensus with all {relays} relays: {consensus_ok}, clients bootstrapped: {clients_ok})"
                    ),
                    after: timeout,
                });
            }
            std::thread::sleep(POLL * 3);
        }
    }

    /// Makes the C tor client forget its onion-service client state (cached
    /// descriptors, failed introduction points) with `SIGNAL NEWNYM` on its
    /// control socket. C tor otherwise keeps retrying a stale descriptor of
    /// a service that re-published, for minutes on a busy test network.
    pub fn client_newnym(&self) -> Result<()> {
        use std::io::{BufRead, BufReader, Write};
        let dir = node_dir(self.dir.path(), "client");
        let io = |what: &str, e: std::io::Error| Error::Timeout {
            what: format!("the client's control socket ({what}: {e})"),
            after: CONTROL_TIMEOUT,
        };
        let cookie = std::fs::read(dir.join("control_auth_cookie")).map_err(|e| io("cookie", e))?;
        let stream = std::os::unix::net::UnixStream::connect(dir.join("control"))
            .map_err(|e| io("connect", e))?;
        stream
            .set_read_timeout(Some(CONTROL_TIMEOUT))
            .map_err(|e| io("timeout", e))?;
        let mut writer = stream.try_clone().map_err(|e| io("clone", e))?;
        let hex: String = cookie.iter().map(|b| format!("{b:02x}")).collect();
        writer
            .write_all(format!("AUTHENTICATE {hex}\r\nSIGNAL NEWNYM\r\nQUIT\r\n").as_bytes())
            .map_err(|e| io("write", e))?;
        let mut lines = BufReader::new(stream).lines();
        for step in ["AUTHENTICATE", "SIGNAL NEWNYM"] {
            let line = lines
                .next()
                .transpose()
                .map_err(|e| io("read", e))?
                .unwrap_or_default();
            if !line.starts_with("250") {
                return Err(Error::Timeout {
                    what: format!("the client's answer to {step}: {line:?}"),
                    after: CONTROL_TIMEOUT,
                });
            }
        }
        Ok(())
    }

    /// The description arti clients are configured from.
    pub fn network(&self) -> &PrivateNetwork {
        &self.network
    }

    /// The C tor client's SOCKS address, if one was started.
    pub fn socks_addr(&self) -> Option<SocketAddr> {
        self.socks
    }

    /// The C tor onion service's address, if an onion host was started.
    pub fn c_onion_address(&self) -> Option<&str> {
        self.onion_address.as_deref()
    }

    /// Time from [`TestNet::start`] until the network was usable.
    pub fn usable_after(&self) -> Duration {
        self.usable_after
    }

    /// Time from [`TestNet::start`] until all keys were generated.
    pub fn keys_after(&self) -> Duration {
        self.keys_after
    }

    /// The network's temp dir (keys, torrcs, data dirs, logs).
    pub fn work_dir(&self) -> &Path {
        self.dir.path()
    }

    /// Stops the directory authorities (to test bootstrap failures).
    pub fn stop_authorities(&mut self) {
        let (mut auths, rest): (Vec<_>, Vec<_>) = std::mem::take(&mut self.procs)
            .into_iter()
            .partition(|p| p.name().starts_with("auth"));
        stop_all(&mut auths);
        auths.clear();
        self.procs = rest;
    }

    /// Prints the last `lines` lines of every node's log to stderr.
    pub fn print_log_tails(&self, lines: usize) {
        for n in &self.nodes {
            let d = node_dir(self.dir.path(), &n.name);
            #[allow(clippy::print_stderr, reason = "the harness's failure report")]
            {
                eprintln!("----- {} (last {lines} lines of notice.log) -----", n.name);
                eprintln!("{}", tail(&d.join("notice.log"), lines));
                let out = tail(&d.join("stdout.log"), 5);
                if !out.is_empty() {
                    eprintln!("----- {} stdout -----\n{out}", n.name);
                }
            }
        }
    }

    /// Stops every tor and returns any process still mentioning the
    /// network's dir (there should be none).
    pub fn shutdown(mut self) -> Vec<(u32, String)> {
        stop_all(&mut self.procs);
        self.procs.clear();
        process::processes_mentioning(self.dir.path())
    }
}

impl Drop for TestNet {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.print_log_tails(25);
        }
        stop_all(&mut self.procs);
    }
}

/// How long the C tor client's control socket may take to answer.
const CONTROL_TIMEOUT: Duration = Duration::from_secs(10);

fn node_dir(root: &Path, name: &str) -> PathBuf {
    root.join("nodes").join(name)
}

/// Generates every authority's and relay's keys, in parallel.
fn generate_keys(
    tor: &Path,
    gencert: &Path,
    root: &Path,
    nodes: &[Node],
) -> Result<Vec<Option<Identity>>> {
    std::thread::scope(|s| {
        let handles: Vec<_> = nodes
            .iter()
            .map(|n| {
                s.spawn(move || -> Result<Option<Identity>> {
                    let (Some(or), Some(dirport)) = (n.orport, n.dirport) else {
                        return Ok(None);
                    };
                    let d = node_dir(root, &n.name);
                    let v3ident = if n.role == Role::Authority {
                        Some(torrc::gen_authority_keys(gencert, &d, dirport)?)
                    } else {
                        None
                    };
                    let mut id = torrc::gen_relay_keys(tor, &n.name, &d, or)?;
                    id.v3ident = v3ident;
                    Ok(Some(id))
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(Error::Keys("key generation panicked".into())))
            })
            .collect()
    })
}

/// The arti-side description and the `DirAuthority` lines for the torrcs.
fn describe(nodes: &[Node], ids: &[Option<Identity>]) -> Result<(PrivateNetwork, String)> {
    let mut authorities = Vec::new();
    let mut fallbacks = Vec::new();
    let mut lines = String::new();
    for (n, id) in nodes.iter().zip(ids) {
        let (Role::Authority, Some(id), Some(or), Some(dir)) = (n.role, id, n.orport, n.dirport)
        else {
            continue;
        };
        let v3 = id
            .v3ident
            .clone()
            .ok_or_else(|| Error::Keys(format!("{}: no v3ident", n.name)))?;
        lines.push_str(&format!(
            "DirAuthority {} orport={} no-v2 v3ident={v3} {dir} {}\n",
            n.name,
            or.port(),
            id.rsa
        ));
        authorities.push(Authority {
            v3ident: v3,
            dir_addrs: vec![dir],
        });
        fallbacks.push(FallbackCache {
            rsa_identity: id.rsa.clone(),
            ed_identity: id.ed.clone(),
            orports: vec![or],
        });
    }
    Ok((
        PrivateNetwork {
            authorities,
            fallbacks,
        },
        lines,
    ))
}

/// How many relays the authority at `dirport` lists in its current
/// microdescriptor consensus, if it has one.
fn consensus_relays(dirport: SocketAddr) -> Option<usize> {
    use std::io::{Read, Write};
    let timeout = Duration::from_secs(2);
    let mut s = std::net::TcpStream::connect_timeout(&dirport, timeout).ok()?;
    s.set_read_timeout(Some(timeout)).ok()?;
    s.set_write_timeout(Some(timeout)).ok()?;
    s.write_all(
        b"GET /tor/status-vote/current/consensus-microdesc HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n",
    )
    .ok()?;
    let mut body = Vec::new();
    s.take(8 << 20).read_to_end(&mut body).ok()?;
    let text = String::from_utf8_lossy(&body);
    if !text.starts_with("HTTP/1.0 200") {
        return None;
    }
    Some(text.lines().filter(|l| l.starts_with("r ")).count())
}
