//! A repository published entirely through a real `onionpkg-signer` (file
//! backend): root is signed by hand with its one offline key, every other
//! role by the signer, and no key file of an online role is left on the
//! release side. `onionpkg-fetch` in tor mode downloads and verifies a
//! package from it through the private network's exits.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context as _, bail, ensure};
use clap::Parser as _;
use onionpkg_repo::cli::{Cli, run};
use onionpkg_testkit::TestCa;
use onionpkg_tests::signer::{Backend, ConfiguredClient, SignerHome};
use onionpkg_tests::testnet::TestNet;
use onionpkg_tests::testnet::ports::{EXIT_PORTS, lease};
use onionpkg_trust::sign::SecretKey;

use super::{init, run_fetch, serve_tree, tor_section, write_config};

const PACKAGE: &str = "pkg/signed-1.0.tar";
const CONTENT: &[u8] = b"a package whose every role but root the signer signed\n";
/// The roles the signer holds keys for (`log` signs its checkpoints).
const SIGNER_ROLES: [&str; 6] = [
    "log",
    "targets",
    "snapshot",
    "timestamp",
    "mirrors",
    "feeds",
];
/// Runs of `download` before a broken transfer fails the scenario.
const ATTEMPTS: u32 = 3;

/// `onionpkg-repo ARGS`, in this process; it must succeed.
fn repo(args: &[&str]) -> anyhow::Result<()> {
    let cli = Cli::try_parse_from(std::iter::once("onionpkg-repo").chain(args.iter().copied()))?;
    let report = run(&cli, jiff::Timestamp::now())
        .with_context(|| format!("onionpkg-repo {}", args.join(" ")))?;
    ensure!(
        report.exit_code == 0,
        "onionpkg-repo {}: exit {}: {:?}",
        args.join(" "),
        report.exit_code,
        report.lines
    );
    Ok(())
}

/// The key ids that signed the metadata file `file`.
fn signed_by(file: &Path) -> anyhow::Result<Vec<String>> {
    let env: serde_json::Value = serde_json::from_slice(&std::fs::read(file)?)?;
    Ok(env["signatures"]
        .as_array()
        .with_context(|| format!("{}: no signatures", file.display()))?
        .iter()
        .filter_map(|s| s["keyid"].as_str().map(str::to_owned))
        .collect())
}

/// The newest file of every role but root in `md`, by role.
fn newest_files(md: &Path) -> anyhow::Result<BTreeMap<String, (u64, String)>> {
    let mut newest: BTreeMap<String, (u64, String)> = BTreeMap::new();
    for e in std::fs::read_dir(md)? {
        let name = e?.file_name().to_string_lossy().into_owned();
        let Some((version, rest)) = name.split_once('.') else {
            continue;
        };
        let (Ok(version), Some(role)) = (version.parse::<u64>(), rest.strip_suffix(".json")) else {
            continue;
        };
        if role != "root" && newest.get(role).is_none_or(|(v, _)| *v < version) {
            newest.insert(role.to_owned(), (version, name));
        }
    }
    newest.insert("timestamp".into(), (0, "timestamp.json".into()));
    Ok(newest)
}

/// Makes the signer (its keys in `dir/signer`) and a repository in
/// `dir/repo` published through it; returns the signer's key ids by role
/// and the running signer.
fn publish_through_signer(
    dir: &Path,
    signer_bin: &Path,
) -> anyhow::Result<(
    BTreeMap<&'static str, String>,
    SignerHome,
    onionpkg_testkit::Proc,
)> {
    let client = SecretKey::generate();
    let client_file = dir.join("release-client.key");
    client.write_file(&client_file, None)?;
    let mut home = SignerHome::create(
        signer_bin,
        &dir.join("signer"),
        Backend::Files,
        vec![ConfiguredClient {
            name: "release".into(),
            key: hex::encode(client.public().raw_bytes()),
            roles: [
                "targets",
                "bins",
                "snapshot",
                "timestamp",
                "mirrors",
                "feeds",
            ]
            .map(String::from)
            .to_vec(),
        }],
        "",
    )?;
    let mut ids = BTreeMap::new();
    for role in SIGNER_ROLES {
        ids.insert(role, home.generate(role)?);
    }
    let proc = home.start()?;

    let (r, k) = (dir.join("repo"), dir.join("keys"));
    let (r, k) = (r.to_str().context("path")?, k.to_str().context("path")?);
    let socket = home.socket();
    let client_path = client_file.to_str().context("path")?;
    let signer = [
        "--signer",
        socket.to_str().context("path")?,
        "--signer-key",
        client_path,
    ];
    let with_signer = |args: &[&str]| -> anyhow::Result<()> {
        repo(&[&["-r", r, "-k", k], args, &signer[..]].concat())
    };
    repo(&["-r", r, "-k", k, "init", "--threshold", "root=1/1"])?;
    // The top-level roles take the signer's keys in root v2, signed by hand
    // with the offline root key.
    let pub_file = |role: &str| -> anyhow::Result<String> {
        Ok(home.public_key_file(role)?.display().to_string())
    };
    let set: Vec<String> = ["targets", "snapshot", "timestamp"]
        .iter()
        .map(|role| Ok(format!("{role}={}", pub_file(role)?)))
        .collect::<anyhow::Result<_>>()?;
    let mut draft = vec!["-r", r, "-k", k, "root", "draft"];
    for s in &set {
        draft.extend(["--set-keys", s.as_str()]);
    }
    repo(&draft)?;
    let staged = format!("{r}/staged/root.json");
    repo(&["root", "sign", &staged, "--key", &format!("{k}/root-1.key")])?;
    repo(&["-r", r, "-k", k, "root", "install"])?;
    // The replaced key files were retired: no online key file is at hand
    // from here on.
    for role in ["targets", "snapshot", "timestamp"] {
        ensure!(
            !Path::new(&format!("{k}/{role}.key")).exists(),
            "the replaced {role} key file is still in use"
        );
    }
    for role in ["mirrors", "feeds"] {
        let f = pub_file(role)?;
        with_signer(&["rotate", role, "--public-key", &f])?;
        ensure!(
            !Path::new(&format!("{k}/{role}.key")).exists(),
            "the replaced {role} key file is still in use"
        );
    }
    let input = dir.join("input");
    std::fs::write(&input, CONTENT)?;
    repo(&[
        "-r",
        r,
        "-k",
        k,
        "add",
        input.to_str().context("path")?,
        "--path",
        PACKAGE,
    ])?;
    with_signer(&["publish"])?;
    Ok((ids, home, proc))
}

/// The scenario: publish through the signer, serve over HTTPS on a port
/// the exits allow, download and verify with `onionpkg-fetch` in tor mode.
pub(super) fn fetch_over_tor(
    net: &TestNet,
    rt: &tokio::runtime::Runtime,
    work: &Path,
    ca: &TestCa,
    signer_bin: &Path,
) -> anyhow::Result<String> {
    let dir = work.join("signed");
    std::fs::create_dir_all(&dir)?;
    let (ids, home, _signer) = publish_through_signer(&dir, signer_bin)?;
    let tree = dir.join("repo");
    let md = tree.join("metadata");
    let files = newest_files(&md)?;
    for (role, (_, file)) in &files {
        let key_role = if role.starts_with("bin-") {
            "targets"
        } else {
            role.as_str()
        };
        let want = ids
            .get(key_role)
            .with_context(|| format!("an unexpected role {role}"))?;
        let by = signed_by(&md.join(file))?;
        ensure!(
            by == [want.clone()],
            "{file} is signed by {by:?}, not the signer's {key_role} key alone"
        );
    }

    let port = lease(EXIT_PORTS)?;
    let listener = rt.block_on(tokio::net::TcpListener::bind(port.addr()))?;
    let server = rt.spawn(serve_tree(listener, tree.clone(), ca.server.clone()));
    let base = format!("https://{}/", port.addr());
    let app = dir.join("app");
    let cfg = write_config(&app, "tor", &base, &ca.ca_pem, &tor_section(net));
    init(&cfg, &tree)?;
    let mut attempts = 0;
    let outcome = loop {
        attempts += 1;
        let out = run_fetch(&cfg, &["download", PACKAGE], None)?;
        let code = out.status.code().unwrap_or(-1);
        let transient = [onionpkg_core::exit::UNREACHABLE, onionpkg_core::exit::TOR]
            .map(i32::from)
            .contains(&code);
        if code == 0 || !transient || attempts >= ATTEMPTS {
            break out;
        }
    };
    server.abort();
    ensure!(
        outcome.status.success(),
        "download through tor: exit {:?} after {attempts} run(s): {}",
        outcome.status.code(),
        String::from_utf8_lossy(&outcome.stderr)
    );
    let got = std::fs::read(app.join("out").join(PACKAGE))?;
    ensure!(got == CONTENT, "the downloaded package differs");
    // What the appliance verified and now trusts is the signer's timestamp.
    let trusted = signed_by(&app.join("state/metadata/timestamp.json"))?;
    if trusted != [ids["timestamp"].clone()] {
        bail!("the appliance trusts a timestamp signed by {trusted:?}");
    }
    let listing = home.run(&["audit", "list"])?;
    ensure!(
        listing.contains(PACKAGE),
        "the signer's log does not name the package:\n{listing}"
    );
    Ok(format!(
        "{PACKAGE} verified after {attempts} run(s); {} signed by the signer alone ({} log entries)",
        files.keys().cloned().collect::<Vec<_>>().join(", "),
        listing.lines().filter(|l| l.starts_with('#')).count()
    ))
}
