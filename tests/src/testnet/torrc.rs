//! Keys and torrc files for the private network's nodes.
//!
//! Every torrc starts from [`common`], which pins the node to the private
//! authorities and loopback; nothing here may ever name a public address.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use super::process::run;
use super::{Error, Result};

/// Voting interval of the authorities. 15 s makes C tor's testing-mode
/// onion-service time period (24 votes) 6 minutes, which arti can match
/// through the `hsdir_interval` consensus parameter; 10 s would give 4, below
/// arti's minimum of 5.
pub const VOTING_INTERVAL_SECS: u32 = 15;

/// How long one key-generation command may take.
const KEYGEN_DEADLINE: Duration = Duration::from_secs(60);

/// What kind of node a torrc is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// A directory authority.
    Authority,
    /// A middle relay (exits nothing).
    Middle,
    /// An exit that allows 127.0.0.1 only.
    Exit,
    /// A client with a SOCKS port.
    Client,
    /// A client hosting an onion service.
    OnionHost,
}

/// Identities of an authority or relay, from its generated keys.
#[derive(Debug, Clone)]
pub struct Identity {
    /// RSA identity fingerprint (hex, no spaces).
    pub rsa: String,
    /// ed25519 identity (base64, unpadded).
    pub ed: String,
    /// The v3 signing identity (authorities only).
    pub v3ident: Option<String>,
}

/// A generated node: its name, dir and ports.
#[derive(Debug, Clone)]
pub struct Node {
    /// Nickname and dir name.
    pub name: String,
    /// What it is.
    pub role: Role,
    /// ORPort (relays and authorities).
    pub orport: Option<SocketAddr>,
    /// DirPort (relays and authorities).
    pub dirport: Option<SocketAddr>,
    /// SocksPort (the client).
    pub socks: Option<SocketAddr>,
}

/// The settings every node gets: private network only, loopback only,
/// verbose logs kept in the node dir, exit when the test process dies.
pub fn common(node: &Node, dir: &Path, resolv: &Path, dir_authorities: &str) -> String {
    let d = dir.display();
    let mut s = String::new();
    let _ = writeln!(
        s,
        "TestingTorNetwork 1
AssumeReachable 1
PathsNeededToBuildCircuits 0.25
TestingDirAuthVoteExit *
TestingDirAuthVoteHSDir *
TestingDirAuthVoteGuard *
TestingMinExitFlagThreshold 0
V3AuthNIntervalsValid 2
DataDirectory {d}
Nickname {name}
RunAsDaemon 0
ShutdownWaitLength 0
__OwningControllerProcess {pid}
PidFile {d}/pid
Log notice file {d}/notice.log
Log info file {d}/info.log
SafeLogging 0
LogTimeGranularity 1
UseDefaultFallbackDirs 0
ServerDNSDetectHijacking 0
ServerDNSResolvConfFile {resolv}
ServerDNSAllowBrokenConfig 1
DNSPort 0
{dir_authorities}",
        name = node.name,
        pid = std::process::id(),
        resolv = resolv.display(),
    );
    if matches!(node.role, Role::Client) {
        // A control socket, so tests can make the client forget its onion
        // service state (`SIGNAL NEWNYM`).
        let _ = writeln!(s, "ControlSocket {d}/control\nCookieAuthentication 1");
    }
    s
}

/// The role-specific part of a torrc.
pub fn role_part(node: &Node, onion: Option<(&Path, SocketAddr)>) -> String {
    let mut s = String::new();
    let ports = |s: &mut String| {
        if let (Some(or), Some(dir)) = (node.orport, node.dirport) {
            let _ = writeln!(s, "Address 127.0.0.1\nORPort {or}\nDirPort {dir}");
        }
    };
    match node.role {
        Role::Authority => {
            ports(&mut s);
            let _ = writeln!(
                s,
                "AuthoritativeDirectory 1
V3AuthoritativeDirectory 1
ContactInfo {name}@test.invalid
TestingV3AuthInitialVotingInterval 5
V3AuthVotingInterval {vi}
ConsensusParams hsdir_interval={tp}
TestingV3AuthInitialVoteDelay 2
V3AuthVoteDelay 2
TestingV3AuthInitialDistDelay 2
V3AuthDistDelay 2
SocksPort 0
ExitRelay 0
ExitPolicy reject *:*",
                name = node.name,
                vi = VOTING_INTERVAL_SECS,
                tp = 24 * VOTING_INTERVAL_SECS / 60,
            );
        }
        Role::Middle => {
            ports(&mut s);
            s.push_str("SocksPort 0\nExitRelay 0\nExitPolicy reject *:*\n");
        }
        Role::Exit => {
            ports(&mut s);
            // The `accept *:8000-8099` line is what makes the microdescriptor
            // policy summary non-empty (private ranges are left out of it);
            // the bind address keeps exit traffic on loopback whatever a
            // client asks for.
            s.push_str(
                "SocksPort 0
ExitRelay 1
ExitPolicyRejectPrivate 0
ExitPolicyRejectLocalInterfaces 0
ExitPolicy accept 127.0.0.0/8:*
ExitPolicy accept [::1]:*
ExitPolicy accept *:8000-8099
ExitPolicy reject *:*
OutboundBindAddressExit 127.0.0.1
IPv6Exit 1
",
            );
        }
        Role::Client => {
            if let Some(socks) = node.socks {
                let _ = writeln!(s, "SocksPort {socks}\nClientOnly 1");
            }
        }
        Role::OnionHost => {
            s.push_str("SocksPort 0\nClientOnly 1\n");
            if let Some((hsdir, target)) = onion {
                let _ = writeln!(
                    s,
                    "HiddenServiceDir {}\nHiddenServicePort 80 {target}\nHiddenServiceVersion 3",
                    hsdir.display()
                );
            }
        }
    }
    s
}

/// Generates an authority's v3 identity and signing keys in `<dir>/keys`;
/// returns the v3ident.
pub fn gen_authority_keys(gencert: &Path, dir: &Path, dirport: SocketAddr) -> Result<String> {
    let keys = dir.join("keys");
    std::fs::create_dir_all(&keys).map_err(|e| Error::io("creating a keys dir", e))?;
    let mut cmd = Command::new(gencert);
    cmd.current_dir(&keys).args([
        "--create-identity-key",
        "-m",
        "12",
        "-a",
        &dirport.to_string(),
        "-i",
        "authority_identity_key",
        "-s",
        "authority_signing_key",
        "-c",
        "authority_certificate",
        "--passphrase-fd",
        "0",
    ]);
    run(cmd, b"\n", KEYGEN_DEADLINE)?;
    let cert = std::fs::read_to_string(keys.join("authority_certificate"))
        .map_err(|e| Error::io("reading an authority certificate", e))?;
    cert.lines()
        .find_map(|l| l.strip_prefix("fingerprint "))
        .map(|f| f.trim().to_owned())
        .ok_or_else(|| Error::Keys("authority certificate without fingerprint".into()))
}

/// Generates a relay's identity keys in `<dir>/keys` with a tor that has the
/// network disabled and only a dummy authority; returns its identities.
pub fn gen_relay_keys(tor: &Path, name: &str, dir: &Path, orport: SocketAddr) -> Result<Identity> {
    let torrc = dir.join("fp.torrc");
    let text = format!(
        "DirAuthority dummy orport=1 no-v2 v3ident=0000000000000000000000000000000000000000 127.0.0.1:1 0000000000000000000000000000000000000000
TestingTorNetwork 1
DisableNetwork 1
UseDefaultFallbackDirs 0
DataDirectory {d}
ORPort {orport}
Address 127.0.0.1
Nickname {name}
SocksPort 0
Log err stderr
",
        d = dir.display()
    );
    std::fs::write(&torrc, text).map_err(|e| Error::io("writing a keygen torrc", e))?;
    let mut cmd = Command::new(tor);
    cmd.arg("-f")
        .arg(&torrc)
        .arg("--defaults-torrc")
        .arg(dir.join("torrc.defaults-empty"))
        .arg("--list-fingerprint");
    run(cmd, b"", KEYGEN_DEADLINE)?;
    let read = |f: &str| {
        std::fs::read_to_string(dir.join(f))
            .map_err(|e| Error::io("reading a relay fingerprint", e))
    };
    let rsa = read("fingerprint")?
        .split_whitespace()
        .nth(1)
        .map(str::to_owned)
        .ok_or_else(|| Error::Keys(format!("{name}: empty fingerprint file")))?;
    let ed = read("fingerprint-ed25519")?
        .split_whitespace()
        .nth(1)
        .map(|s| s.trim_end_matches('=').to_owned())
        .ok_or_else(|| Error::Keys(format!("{name}: empty ed25519 fingerprint file")))?;
    Ok(Identity {
        rsa,
        ed,
        v3ident: None,
    })
}
