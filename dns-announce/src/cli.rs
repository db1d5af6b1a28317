//! The command line of `onionpkg-announce`: parsing, then dispatch to the
//! library. Nothing here prints; the caller shows the returned [`Output`].

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;
use clap::{Args, Parser, Subcommand};
use jiff::{SignedDuration, Timestamp};
use onionpkg_repo::{KeyDir, RemoteSigner, RepoDir};
use onionpkg_trust::announce::{AnnounceError, Announcement};
use onionpkg_trust::clock::Tolerance;
use onionpkg_trust::sign::SecretKey;
use serde_json::json;
use zeroize::Zeroizing;

use crate::check::{AnnouncementState, Expectation, timestamp_keys_of_root, verify_records};
use crate::dnssec::DnssecAnchors;
use crate::err::{Error, announce_exit_code, exit};
use crate::make::{Signed, Signers, Validity, sign};
pub use crate::output::Output;
use crate::push::{PushRequest, push};
use crate::query::{query_announcement, resolver_for_server, resolver_for_system};
use crate::serve::{AnnounceZone, Announcer, DEFAULT_POLL, ServeOptions, Signing};
use crate::state::SerialState;
use crate::tsig::TsigKey;

/// onionpkg-announce: make, publish, serve and check the signed DNS TXT
/// announcement of an onionpkg repository's state.
///
/// Exit codes come from the table every onionpkg program shares (below, and
/// docs/EXIT-CODES.md): 4 the record, or the timestamp.json it would name,
/// expired (or was issued in the future); 6 the DNS server is unreachable;
/// 8 an invalid announcement (bad signature, unknown keys, other name or
/// channel, malformed, or a replayed older serial); 9 `push`: the mirrors do
/// not serve the serial yet; 11 no announcement at the name; 13 the DNS server
/// refused the update (NOTAUTH, REFUSED, BADSIG, BADKEY, BADTIME).
#[derive(Debug, Parser)]
#[command(name = "onionpkg-announce", version, about, long_about, after_help = onionpkg_core::exit::help())]
pub struct Cli {
    /// Print one JSON object instead of text.
    #[arg(long, global = true)]
    pub json: bool,
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print the signed TXT value for the repository's current state.
    Make(MakeArgs),
    /// Print a zone-file line with the signed record.
    Zone {
        /// What to announce.
        #[command(flatten)]
        make: MakeArgs,
        /// The record's TTL in seconds.
        #[arg(long, default_value_t = 300)]
        ttl: u32,
    },
    /// Replace the record on the zone's primary server with one RFC 2136
    /// UPDATE (delete the TXT RRset, add the new record), signed with TSIG,
    /// over TCP.
    Push {
        /// What to announce.
        #[command(flatten)]
        make: MakeArgs,
        /// The primary server, ADDR[:PORT] (port 53 by default).
        #[arg(long)]
        server: String,
        /// The TSIG key file: `keymgr -t` output or a BIND key clause.
        #[arg(long)]
        tsig_key: PathBuf,
        /// The zone to update.
        #[arg(long)]
        zone: String,
        /// The record's TTL in seconds.
        #[arg(long, default_value_t = 300)]
        ttl: u32,
        /// Time limit of the connect and of the exchange, like 10s.
        #[arg(long, default_value = "10s")]
        timeout: String,
        /// A main mirror's base URL that must serve the timestamp before it
        /// is pushed (repeatable): `https://`, or `http://` on a loopback
        /// address. When one does not serve it yet, nothing is pushed and
        /// the exit code is 9.
        #[arg(long = "wait-for-mirror")]
        wait_for_mirror: Vec<String>,
        /// Extra CA certificates (PEM) for the mirrors of --wait-for-mirror.
        #[arg(long, requires = "wait_for_mirror")]
        mirror_ca: Option<PathBuf>,
    },
    /// Answer for the announcement zone (SOA, NS, TXT) on UDP and TCP.
    /// The record is re-made when timestamp.json changes (checked every
    /// --poll), on SIGHUP, and when half its validity has passed. While the
    /// timestamp is expired no record is served. SIGTERM or SIGINT stop the
    /// server.
    Serve {
        /// The configuration file (zone, name, channel, ttl, repo,
        /// timestamp_keys, [serve] listen).
        #[arg(long)]
        config: PathBuf,
        /// Name of an environment variable holding the key passphrase.
        #[arg(long)]
        passphrase_env: Option<String>,
        /// How long each signed announcement stays valid at most; each is
        /// cut at the expiry of the timestamp.json it names, and none is
        /// served once that has expired.
        #[arg(long, default_value = "1d")]
        expires: String,
        /// How often timestamp.json is checked for a change, like 10s.
        #[arg(long, conflicts_with = "no_poll")]
        poll: Option<String>,
        /// Re-read the repository only on SIGHUP (and before expiry).
        #[arg(long)]
        no_poll: bool,
        /// The name server's name in the NS and SOA records [default: ns.ZONE].
        #[arg(long)]
        ns: Option<String>,
    },
    /// Check a `serve` configuration and the files it names, reading only
    /// (no socket, no network): exit 0 when `serve` can start, 2 when not.
    CheckConfig {
        /// The configuration file.
        #[arg(long)]
        config: PathBuf,
    },
    /// Query the announcement and verify it against the root's timestamp keys.
    Check {
        /// The owner name of the record, like _update.example.org.
        name: String,
        /// The pinned root file (root.json) whose timestamp role signs.
        #[arg(long)]
        root: PathBuf,
        /// The DNS server to ask, ADDR[:PORT] (port 53 by default).
        #[arg(long, required_unless_present = "system_resolver")]
        server: Option<String>,
        /// Ask the name servers of /etc/resolv.conf instead of --server.
        #[arg(long, conflicts_with = "server")]
        system_resolver: bool,
        /// The channel followed.
        #[arg(long, default_value = "stable")]
        channel: String,
        /// A file keeping the floor: the highest serial verified, bound to
        /// the keys that signed it; an older record is refused while the
        /// root still trusts those keys.
        #[arg(long)]
        state: Option<PathBuf>,
        /// DNSSEC trust anchors: DNSKEY records of the zone (every key of
        /// its DNSKEY set, or its one CSK) in zone-file syntax. The answer
        /// must then validate.
        #[arg(long)]
        dnssec_anchors: Option<PathBuf>,
        /// The timestamp version trusted now: reports whether an update is
        /// available.
        #[arg(long)]
        timestamp_version: Option<u64>,
        /// Clock skew tolerated, in seconds (at most 3600).
        #[arg(long, default_value_t = 0)]
        tolerance: u64,
        /// Time limit of one query, like 5s.
        #[arg(long, default_value = "5s")]
        timeout: String,
    },
}

/// What to announce, and the keys that sign it.
#[derive(Debug, Args)]
pub struct MakeArgs {
    /// The repository directory (holds metadata/).
    #[arg(long)]
    pub repo: PathBuf,
    /// The owner name of the TXT record, like _update.example.org.
    #[arg(long)]
    pub name: String,
    /// The update channel.
    #[arg(long, default_value = "stable")]
    pub channel: String,
    /// The directory of private keys [default: REPO.keys, next to the
    /// repository, as for onionpkg-repo].
    #[arg(long)]
    pub keys: Option<PathBuf>,
    /// Name of an environment variable holding the key passphrase (of the
    /// key files, or of --signer-key).
    #[arg(long)]
    pub passphrase_env: Option<String>,
    /// The Unix socket of onionpkg-signer: the announcement is signed there
    /// with the timestamp role's key, and no key file of the role is read.
    /// Needs --signer-key.
    #[arg(
        long,
        value_name = "PATH",
        requires = "signer_key",
        conflicts_with = "keys"
    )]
    pub signer: Option<PathBuf>,
    /// This client's own key file, which authenticates its requests to the
    /// signer (listed in the signer's `[[client]]` with the role
    /// `announcement`).
    #[arg(long, value_name = "FILE", requires = "signer")]
    pub signer_key: Option<PathBuf>,
    /// How long the announcement stays valid, like 1d or 12h; refused when
    /// it would end after the expiry of the timestamp.json it names.
    /// [default: 1d, or until the timestamp expires if that is sooner]
    #[arg(long)]
    pub expires: Option<String>,
}

/// The validity of `make`, `zone` and `push` without `--expires`: a day, cut
/// at the timestamp's expiry.
pub const DEFAULT_VALIDITY: SignedDuration = SignedDuration::from_hours(24);

/// Parses a duration such as `90s`, `30m`, `12h`, `7d`.
pub fn parse_duration(what: &str, s: &str) -> Result<SignedDuration, Error> {
    onionpkg_repo::cli::parse_duration(s).map_err(|e| Error::arg(what, format!("{e:#}")))
}

fn std_duration(what: &str, s: &str) -> Result<Duration, Error> {
    let d = parse_duration(what, s)?;
    Duration::try_from(d).map_err(|e| Error::arg(what, e.to_string()))
}

/// ADDR[:PORT], port 53 by default.
pub fn parse_server(s: &str) -> Result<SocketAddr, Error> {
    s.parse::<SocketAddr>()
        .or_else(|_| s.parse::<IpAddr>().map(|ip| SocketAddr::new(ip, 53)))
        .map_err(|_| {
            Error::arg(
                "--server",
                format!("{s:?} is not an IP address with an optional port, like 192.0.2.53:53"),
            )
        })
}

fn passphrase(var: Option<&String>) -> Result<Option<Zeroizing<Vec<u8>>>, Error> {
    var.map(|var| {
        std::env::var(var)
            .map(|v| Zeroizing::new(v.into_bytes()))
            .map_err(|_| Error::arg("--passphrase-env", format!("the variable {var} is not set")))
    })
    .transpose()
}

/// The signing service at `socket`, asked with the client key file
/// `client_key` (unlocked with `pass`).
fn remote_signer(
    socket: &std::path::Path,
    client_key: &std::path::Path,
    pass: Option<&Zeroizing<Vec<u8>>>,
) -> Result<RemoteSigner, Error> {
    let key = SecretKey::read_file(client_key, pass.map(|p| p.as_slice()))?;
    Ok(RemoteSigner::new(socket, key))
}

fn sign_from_args(args: &MakeArgs, now: Timestamp) -> Result<Signed, Error> {
    let pass = passphrase(args.passphrase_env.as_ref())?;
    // An explicit validity is taken at its word (and refused if too long);
    // the default adapts to the timestamp.
    let validity = match &args.expires {
        Some(e) => Validity::Exactly(parse_duration("--expires", e)?),
        None => Validity::AtMost(DEFAULT_VALIDITY),
    };
    let repo = RepoDir::new(&args.repo);
    if let (Some(socket), Some(client_key)) = (&args.signer, &args.signer_key) {
        let remote = remote_signer(socket, client_key, pass.as_ref())?;
        return sign(
            &repo,
            Signers::Signer(&remote),
            &args.name,
            &args.channel,
            validity,
            now,
        );
    }
    let keys_dir = match &args.keys {
        Some(dir) => dir.clone(),
        None => onionpkg_repo::keydir::default_dir(&args.repo)?,
    };
    let keys = KeyDir::new(keys_dir, pass);
    sign(
        &repo,
        Signers::KeyDir(&keys),
        &args.name,
        &args.channel,
        validity,
        now,
    )
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The fields of an announcement, for `--json`.
fn announcement_json(name: &str, a: &Announcement) -> serde_json::Value {
    json!({
        "name": name.trim_end_matches('.').to_ascii_lowercase(),
        "channel": a.channel,
        "serial": a.serial,
        "issued": a.issued.to_string(),
        "expires": a.expires.to_string(),
        "key_ids": a.signed_by,
        "timestamp_sha256": hex(&a.timestamp_hash),
    })
}

fn with(mut value: serde_json::Value, extra: serde_json::Value) -> serde_json::Value {
    if let (Some(obj), serde_json::Value::Object(more)) = (value.as_object_mut(), extra) {
        obj.extend(more);
    }
    value
}

/// Runs a parsed command line at time `now`. `on_ready` is called once by
/// `serve` when it answers queries (its output is the "listening" report).
pub async fn run(cli: &Cli, now: Timestamp, on_ready: impl FnOnce(Output)) -> Result<Output> {
    match &cli.command {
        Command::Make(args) => {
            let signed = sign_from_args(args, now)?;
            let a = &signed.announcement;
            Ok(Output {
                text: vec![signed.text.clone()],
                json: with(
                    json!({"ok": true, "record": signed.text}),
                    announcement_json(&args.name, a),
                ),
            })
        }
        Command::Zone { make, ttl } => {
            let signed = sign_from_args(make, now)?;
            let line = onionpkg_trust::announce::zone_line(&make.name, *ttl, &signed.text)
                .map_err(Error::from)?;
            Ok(Output {
                text: vec![line.clone()],
                json: with(
                    json!({"ok": true, "record": signed.text, "zone_line": line, "ttl": ttl}),
                    announcement_json(&make.name, &signed.announcement),
                ),
            })
        }
        Command::Push {
            make,
            server,
            tsig_key,
            zone,
            ttl,
            timeout,
            wait_for_mirror,
            mirror_ca,
        } => {
            let server = parse_server(server)?;
            let timeout = std_duration("--timeout", timeout)?;
            let key = TsigKey::load(tsig_key)?;
            let bases = wait_for_mirror
                .iter()
                .map(|u| {
                    onionpkg_core::url::WebUrl::parse_local_base(u)
                        .map_err(|e| Error::arg("--wait-for-mirror", e))
                })
                .collect::<Result<Vec<_>, _>>()?;
            let gate = mirror_gate(&bases, mirror_ca.as_deref())?;
            let signed = sign_from_args(make, now)?;
            if let Some(gate) = &gate {
                let a = &signed.announcement;
                gate.check(a.serial, &a.timestamp_hash).await?;
            }
            let report = push(&PushRequest {
                server,
                zone,
                name: &make.name,
                ttl: *ttl,
                record: &signed.text,
                key: &key,
                timeout,
            })
            .await?;
            let a = &signed.announcement;
            Ok(Output {
                text: vec![format!(
                    "pushed serial {} to {} in zone {} via {server} ({})",
                    a.serial, make.name, zone, report.rcode
                )],
                json: with(
                    json!({
                        "ok": true,
                        "server": server.to_string(),
                        "zone": zone,
                        "rcode": report.rcode,
                        "record": signed.text,
                    }),
                    announcement_json(&make.name, a),
                ),
            })
        }
        Command::Serve {
            config,
            passphrase_env,
            expires,
            poll,
            no_poll,
            ns,
        } => {
            serve(
                config,
                passphrase_env.as_ref(),
                expires,
                poll.as_deref(),
                *no_poll,
                ns.as_deref(),
                on_ready,
            )
            .await
        }
        Command::CheckConfig { config } => Ok(crate::config_check::check_config(config)?),
        Command::Check {
            name,
            root,
            server,
            system_resolver,
            channel,
            state,
            dnssec_anchors,
            timestamp_version,
            tolerance,
            timeout,
        } => {
            name.parse::<onionpkg_config::common::DnsName>()
                .map_err(|e| Error::arg("NAME", e))?;
            let timeout = std_duration("--timeout", timeout)?;
            let tolerance = Tolerance::from_secs(*tolerance)
                .map_err(|e| Error::arg("--tolerance", e.to_string()))?;
            let keys = timestamp_keys_of_root(root)?;
            let anchors = dnssec_anchors
                .as_deref()
                .map(DnssecAnchors::load)
                .transpose()?;
            let mut serials = state.as_deref().map(SerialState::load).transpose()?;
            let records = match (server, system_resolver) {
                (Some(server), _) => {
                    let resolver =
                        resolver_for_server(parse_server(server)?, timeout, anchors.as_ref())?;
                    query_announcement(&resolver, name).await?
                }
                (None, true) => {
                    let path = std::path::Path::new("/etc/resolv.conf");
                    let conf = std::fs::read_to_string(path).map_err(Error::io("reading", path))?;
                    let resolver = resolver_for_system(&conf, timeout, anchors.as_ref())?;
                    query_announcement(&resolver, name).await?
                }
                (None, false) => {
                    return Err(Error::arg("--server", "give --server or --system-resolver").into());
                }
            };
            // The floor counts only while the root's timestamp keys vouch
            // for the keys that set it.
            let last_seen = serials
                .as_ref()
                .and_then(|s| s.last_seen(name, channel, &keys));
            let expect = Expectation {
                name,
                channel,
                keys: &keys,
                now,
                tolerance,
                last_seen,
            };
            let a = verify_records(&records, &expect).map_err(Error::from)?;
            if let Some(s) = serials.as_mut() {
                s.raise(name, channel, &a, &keys)?;
            }
            let mut text = vec![
                format!("ok: valid announcement at {name} for channel {}", a.channel),
                format!("  serial   {}", a.serial),
                format!("  issued   {}", a.issued),
                format!("  expires  {}", a.expires),
                format!("  keys     {}", a.signed_by.join(", ")),
                format!("  sha256   {} (timestamp.json)", hex(&a.timestamp_hash)),
            ];
            let dnssec = match &anchors {
                Some(anchors) => {
                    text.push(format!(
                        "  dnssec   secure (anchors for {})",
                        anchors.zones().join(", ")
                    ));
                    "secure"
                }
                None => "not validated",
            };
            let mut json = with(
                json!({
                    "ok": true,
                    "state": "valid",
                    "records": records.len(),
                    "dnssec": dnssec,
                }),
                announcement_json(name, &a),
            );
            if let Some(trusted) = timestamp_version {
                let status = AnnouncementState::compare(&a, *trusted);
                text.push(format!(
                    "  status   {} (trusted version {trusted})",
                    status.name()
                ));
                json = with(
                    json,
                    json!({"status": status.name(), "trusted_version": trusted}),
                );
                if let AnnouncementState::Invalid(e) = status {
                    return Err(Error::Announce(e).into());
                }
            }
            Ok(Output { text, json })
        }
    }
}

/// The mirrors a serial must be on before it is published, if any are named.
fn mirror_gate(
    bases: &[onionpkg_core::url::WebUrl],
    extra_ca: Option<&std::path::Path>,
) -> Result<Option<crate::mirrors::MirrorGate>, Error> {
    if bases.is_empty() {
        return Ok(None);
    }
    crate::mirrors::MirrorGate::new(bases, extra_ca).map(Some)
}

async fn serve(
    config: &std::path::Path,
    passphrase_env: Option<&String>,
    expires: &str,
    poll: Option<&str>,
    no_poll: bool,
    ns: Option<&str>,
    on_ready: impl FnOnce(Output),
) -> Result<Output> {
    let cfg = onionpkg_config::load_announce(config)
        .map_err(|e| Error::arg("--config", format!("{e}")))?;
    let Some(serve_cfg) = &cfg.serve else {
        return Err(Error::arg(
            "--config",
            format!("{} has no [serve] section", config.display()),
        )
        .into());
    };
    let valid_for = parse_duration("--expires", expires)?;
    let poll = match (poll, no_poll) {
        (_, true) => None,
        (Some(p), false) => Some(std_duration("--poll", p)?),
        (None, false) => Some(DEFAULT_POLL),
    };
    let pass = passphrase(passphrase_env)?;
    // With a signer, no key file of the timestamp role is read (the
    // configuration names none).
    let keys = match (&cfg.signer, &cfg.signer_key) {
        (Some(socket), Some(client_key)) => {
            Signing::Signer(Box::new(remote_signer(socket, client_key, pass.as_ref())?))
        }
        _ => Signing::Keys(
            cfg.timestamp_keys
                .iter()
                .map(|p| SecretKey::read_file(p, pass.as_deref().map(Vec::as_slice)))
                .collect::<Result<Vec<_>, _>>()
                .map_err(Error::from)?,
        ),
    };
    let zone = AnnounceZone::new(cfg.zone.as_str(), cfg.name.as_str(), cfg.ttl, ns)?;
    let gate = match &cfg.mirrors {
        Some(m) => mirror_gate(&m.wait_for, m.extra_ca.as_deref())?,
        None => None,
    };
    let opts = ServeOptions {
        name: cfg.name.to_string(),
        channel: cfg.channel.clone(),
        valid_for,
        poll,
        gate,
    };
    let announcer = Announcer::new(RepoDir::new(&cfg.repo), keys, opts, zone);
    let zone_name = cfg.zone.to_string();
    crate::serve::run(
        announcer,
        &serve_cfg.listen,
        &serve_cfg.limits,
        |addrs, signed| {
            let list: Vec<String> = addrs.iter().map(ToString::to_string).collect();
            let serial = signed.map(|s| s.announcement.serial);
            let what = match serial {
                Some(n) => format!("serial {n}"),
                None => "no record (the timestamp has expired; see the log)".into(),
            };
            on_ready(Output {
                text: vec![format!(
                    "serving {zone_name} on {} (udp+tcp): {what}",
                    list.join(", "),
                )],
                json: json!({
                    "ok": true,
                    "event": "listening",
                    "addresses": list,
                    "serial": serial,
                }),
            });
        },
    )
    .await?;
    Ok(Output {
        text: vec!["stopped".into()],
        json: json!({"ok": true, "event": "stopped"}),
    })
}

/// The exit code for an error returned by [`run`], from the table every
/// onionpkg program shares (see [`exit`]).
pub fn exit_code(e: &anyhow::Error) -> u8 {
    for cause in e.chain() {
        if let Some(e) = cause.downcast_ref::<Error>() {
            return e.exit_code();
        }
        if let Some(e) = cause.downcast_ref::<AnnounceError>() {
            return announce_exit_code(e);
        }
        if let Some(e) = cause.downcast_ref::<onionpkg_repo::RepoError>() {
            use onionpkg_core::HasKind as _;
            return exit::code(e.kind());
        }
    }
    exit::FAILURE
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn servers_default_to_port_53() {
        assert_eq!(parse_server("192.0.2.1").unwrap().port(), 53);
        assert_eq!(parse_server("127.0.0.1:5353").unwrap().port(), 5353);
        assert_eq!(parse_server("[::1]:5353").unwrap().port(), 5353);
        assert_eq!(
            parse_server("dns.example").unwrap_err().exit_code(),
            exit::USAGE
        );
    }

    #[test]
    fn check_needs_a_server_or_the_system_resolver() {
        let check = ["x", "check", "_u.example.org", "--root", "r"];
        let parses = |extra: &[&str]| Cli::try_parse_from(check.iter().chain(extra)).is_ok();
        assert!(!parses(&[]));
        assert!(parses(&["--system-resolver"]));
        assert!(!parses(&["--system-resolver", "--server", "1.2.3.4"]));
    }

    #[test]
    fn exit_codes_follow_the_error_chain() {
        let e = anyhow::Error::new(Error::Announce(AnnounceError::NoRecord)).context("checking");
        assert_eq!(exit_code(&e), exit::NOT_FOUND);
        assert_eq!(exit::name(exit_code(&e)), "not-found");
        let other = anyhow::anyhow!("something else");
        assert_eq!(exit_code(&other), exit::FAILURE);
    }
}
