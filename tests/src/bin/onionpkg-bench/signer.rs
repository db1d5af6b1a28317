//! The signing service: signatures per second through `onionpkg-signer`
//! against in-process signing with a key file, and the time one
//! `onionpkg-repo timestamp` re-sign takes end to end, through the signer
//! and with a key file.
//!
//! Every way to the signer is a [`Way`]: a row name and a
//! [`Transport`]. Today that is the Unix socket, to a signer with a
//! SoftHSM2 token and to one with encrypted key files; the dial-out mTLS
//! transport becomes one more entry in [`ways`], measured by the same loop.
//!
//! Requests go one after the other from one client, as `onionpkg-repo`
//! sends them; each is a real timestamp role payload with a rising version,
//! so the signer's policy and log do all their work (the entry is written
//! and fsync'd, tiles and a checkpoint written, before the signature
//! returns).

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context as _, ensure};
use clap::Parser as _;
use jiff::Timestamp;
use onionpkg_signer_client::client::{RequestKey, Transport, UnixTransport, build_request, send};
use onionpkg_signer_client::request::Kind;
use onionpkg_tests::signer::{Backend, ConfiguredClient, SignerHome};
use onionpkg_trust::sign::{SecretKey, canonical_bytes, sign_metadata};

use crate::report::{Report, Row, fmt_num, fmt_secs};
use crate::util::{self, median};

const SECTION: &str = "Signing service";
/// What every signature is compared with.
const IN_PROCESS: &str =
    "in-process signing with a key file (ed25519, as onionpkg-repo without --signer)";
/// Rate limits high enough for the measurement; everything else is the
/// default policy.
const LIMITS: &str = "[role.timestamp]\nmax_per_hour = 100000000\n";
/// Deadline of one `onionpkg-repo timestamp`.
const COMMAND: Duration = Duration::from_secs(60);

/// How many signatures one run takes at most, and for how long.
fn bounds(smoke: bool) -> (u64, Duration) {
    if smoke {
        (20, Duration::from_secs(2))
    } else {
        (2000, Duration::from_secs(10))
    }
}

/// The client's key, which authenticates its requests.
struct ClientKey(SecretKey);

impl RequestKey for ClientKey {
    fn key_id(&self) -> String {
        self.0.public().key_id()
    }

    fn sign(&self, msg: &[u8]) -> Vec<u8> {
        self.0.sign(msg).to_vec()
    }
}

/// A timestamp role's `signed` object of `version`, valid for a day.
fn timestamp_payload(version: u64, now: Timestamp) -> anyhow::Result<serde_json::Value> {
    let expires = Timestamp::from_second(now.as_second() + 86_400)?;
    Ok(serde_json::json!({
        "_type": "timestamp", "spec_version": "1.0.31", "version": version,
        "expires": expires.to_string(),
        "meta": { "snapshot.json": { "version": 1 } },
    }))
}

/// Calls `sign(i)` for i = 0, 1, ... up to `max` times or until `limit`
/// passed; signatures per second.
fn rate(
    max: u64,
    limit: Duration,
    mut sign: impl FnMut(u64) -> anyhow::Result<()>,
) -> anyhow::Result<f64> {
    let start = Instant::now();
    let mut n = 0;
    while n < max && start.elapsed() < limit {
        sign(n)?;
        n += 1;
    }
    Ok(n as f64 / start.elapsed().as_secs_f64())
}

/// One way to the signer, measured by the same loop.
struct Way {
    /// The row's name.
    what: String,
    /// The transport.
    transport: Box<dyn Transport>,
    /// The signer's timestamp key id, which every answer must name.
    key_id: String,
    /// The next version to ask for: above everything this signer signed,
    /// the re-signed repository's timestamps included.
    next_version: u64,
}

/// A signer and its client key, ready to measure.
struct Running {
    home: SignerHome,
    _proc: util::Proc,
    timestamp_key_id: String,
}

/// Starts a signer with `backend` in `dir` whose `bench` client is `client`.
fn start(bin: &Path, dir: &Path, backend: Backend, client: &SecretKey) -> anyhow::Result<Running> {
    let mut home = SignerHome::create(
        bin,
        dir,
        backend,
        vec![ConfiguredClient {
            name: "bench".into(),
            key: hex::encode(client.public().raw_bytes()),
            roles: vec!["timestamp".into()],
        }],
        LIMITS,
    )?;
    home.generate("log")?;
    let timestamp_key_id = home.generate("timestamp")?;
    let proc = home.start()?;
    Ok(Running {
        home,
        _proc: proc,
        timestamp_key_id,
    })
}

/// The ways to the signers: the Unix socket of each. The dial-out mTLS
/// transport, once there, is added here for the SoftHSM2 signer.
fn ways(signers: &[Running]) -> Vec<Way> {
    signers
        .iter()
        .map(|s| Way {
            what: format!(
                "signatures per second through onionpkg-signer: Unix socket, {}",
                s.home.backend().name()
            ),
            transport: Box::new(
                UnixTransport::new(&s.home.socket()).with_deadline(Duration::from_secs(30)),
            ),
            key_id: s.timestamp_key_id.clone(),
            next_version: 1_000_000,
        })
        .collect()
}

/// Runs the section: the signers, the rates, the timestamp re-sign.
pub(crate) fn run(
    r: &mut Report,
    w: &Path,
    bins: &Path,
    smoke: bool,
    runs: usize,
) -> anyhow::Result<()> {
    let signer_bin = bins.join("onionpkg-signer");
    let repo_bin = bins.join("onionpkg-repo");
    for b in [&signer_bin, &repo_bin] {
        ensure!(
            b.is_file(),
            "{} is not built next to the bench",
            b.display()
        );
    }
    let dir = util::mkdir(w.join("signer"))?;
    let client = SecretKey::generate();
    let signers = [Backend::SoftHsm, Backend::Files]
        .into_iter()
        .map(|b| {
            let name = match b {
                Backend::SoftHsm => "softhsm",
                Backend::Files => "files",
            };
            start(&signer_bin, &dir.join(name), b, &client)
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let key = ClientKey(client);
    let (max, limit) = bounds(smoke);

    // The baseline: the same payloads signed in this process with a key
    // read from its (unencrypted) file once.
    let key_file = dir.join("timestamp.key");
    SecretKey::generate().write_file(&key_file, None)?;
    let file_key = SecretKey::read_file(&key_file, None)?;
    let mut local = Vec::new();
    for _ in 0..runs {
        let now = Timestamp::now();
        local.push(rate(max * 10, limit, |i| {
            sign_metadata(timestamp_payload(i + 1, now)?, &[&file_key])?;
            Ok(())
        })?);
    }
    let local = median(local);

    // The re-sign first: the rate loops below sign versions far above the
    // repository's, which the signer then refuses to go below.
    let resigned = resign(&dir, &repo_bin, &signers[0], &key.0, runs)?;
    for mut way in ways(&signers) {
        let mut rates = Vec::new();
        for _ in 0..runs {
            let now = Timestamp::now();
            let first = way.next_version;
            let got = rate(max, limit, |i| {
                let payload = canonical_bytes(&timestamp_payload(first + i, now)?)?;
                let expires = Timestamp::from_second(now.as_second() + 86_400)?;
                let req = build_request(
                    &key,
                    "timestamp",
                    Kind::Tuf,
                    &payload,
                    first + i,
                    expires,
                    Timestamp::now(),
                );
                let signed = send(way.transport.as_mut(), &req)?;
                ensure!(
                    signed.key_id == way.key_id,
                    "signed by {}, not the timestamp key",
                    signed.key_id
                );
                way.next_version = first + i + 1;
                Ok(())
            })?;
            rates.push(got);
        }
        let ours = median(rates);
        r.plain_row(Row {
            section: SECTION,
            what: way.what.clone(),
            ours: fmt_num(ours, "sig/s"),
            baseline: IN_PROCESS.into(),
            theirs: fmt_num(local, "sig/s"),
            ratio: Some(ours / local),
            goal: "reported".into(),
            met: None,
        });
    }
    r.plain_row(resigned);
    r.facts.push(format!(
        "Signing service: one client, requests in sequence, at most {max} signatures or {} s per run \
         (in-process: {} or {} s); each signature through the signer is logged (entry fsync'd, tiles \
         and checkpoint written) before it returns; {}",
        limit.as_secs(),
        max * 10,
        limit.as_secs(),
        softhsm_version()
    ));
    Ok(())
}

/// `onionpkg-repo ARGS` in this process; it must succeed.
fn repo(args: &[&str]) -> anyhow::Result<()> {
    let cli = onionpkg_repo::cli::Cli::try_parse_from(
        std::iter::once("onionpkg-repo").chain(args.iter().copied()),
    )?;
    let report = onionpkg_repo::cli::run(&cli, Timestamp::now())
        .with_context(|| format!("onionpkg-repo {}", args.join(" ")))?;
    ensure!(
        report.exit_code == 0,
        "onionpkg-repo {}: {:?}",
        args.join(" "),
        report.lines
    );
    Ok(())
}

/// The row of one `onionpkg-repo timestamp` (the binary, start to exit):
/// through the SoftHSM2 signer, and with a key file.
fn resign(
    dir: &Path,
    repo_bin: &Path,
    signer: &Running,
    client: &SecretKey,
    runs: usize,
) -> anyhow::Result<Row> {
    let client_file = dir.join("bench-client.key");
    client.write_file(&client_file, None)?;
    // Two repositories: one whose timestamp key is the signer's (root v2,
    // signed by hand with its one root key), one with key files.
    let mk = |name: &str| -> anyhow::Result<(String, String)> {
        let (rd, kd) = (
            dir.join(format!("{name}-repo")),
            dir.join(format!("{name}-keys")),
        );
        let (rd, kd) = (
            rd.to_str().context("path")?.to_owned(),
            kd.to_str().context("path")?.to_owned(),
        );
        repo(&[
            "-r",
            &rd,
            "-k",
            &kd,
            "init",
            "--threshold",
            "root=1/1",
            "--bins",
            "0",
        ])?;
        Ok((rd, kd))
    };
    let (sr, sk) = mk("signed")?;
    let (fr, fk) = mk("files")?;
    let ts_pub = signer.home.public_key_file("timestamp")?;
    let set = format!("timestamp={}", ts_pub.display());
    repo(&["-r", &sr, "-k", &sk, "root", "draft", "--set-keys", &set])?;
    repo(&[
        "root",
        "sign",
        &format!("{sr}/staged/root.json"),
        "--key",
        &format!("{sk}/root-1.key"),
    ])?;
    repo(&["-r", &sr, "-k", &sk, "root", "install"])?;

    let socket = signer.home.socket();
    let time = |args: &[&str]| -> anyhow::Result<f64> {
        let mut cmd = Command::new(repo_bin);
        cmd.args(args);
        let start = Instant::now();
        util::output(cmd, COMMAND)?;
        Ok(start.elapsed().as_secs_f64())
    };
    let socket = socket.to_str().context("path")?;
    let client_file = client_file.to_str().context("path")?;
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        ours.push(time(&[
            "-r",
            &sr,
            "-k",
            &sk,
            "timestamp",
            "--signer",
            socket,
            "--signer-key",
            client_file,
        ])?);
        theirs.push(time(&["-r", &fr, "-k", &fk, "timestamp"])?);
    }
    let (ours, theirs) = (median(ours), median(theirs));
    Ok(Row {
        section: SECTION,
        what: "onionpkg-repo timestamp through onionpkg-signer (Unix socket, SoftHSM2 token), end to end: \
               process start, request, policy, log, writing timestamp.json"
            .into(),
        ours: fmt_secs(ours),
        baseline: "onionpkg-repo timestamp with the timestamp key file".into(),
        theirs: fmt_secs(theirs),
        ratio: Some(theirs / ours),
        goal: "reported".into(),
        met: None,
    })
}

/// SoftHSM2's version, as `softhsm2-util --version` prints it.
fn softhsm_version() -> String {
    Command::new("softhsm2-util")
        .arg("--version")
        .output()
        .ok()
        .map(|o| format!("SoftHSM2 {}", String::from_utf8_lossy(&o.stdout).trim()))
        .unwrap_or_else(|| "SoftHSM2 (version unknown)".into())
}
