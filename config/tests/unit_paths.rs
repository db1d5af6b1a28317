//! Every path a packaged service writes lies where its systemd unit lets it
//! write: the units run with `ProtectSystem=strict`, so anything outside
//! `StateDirectory=`, `CacheDirectory=`, `LogsDirectory=`,
//! `RuntimeDirectory=` and `ReadWritePaths=` is read-only to them, and a service writing there fails
//! only when it runs (Tor's state in `/var/lib/onionpkg/tor`, say).
//!
//! The paths each service writes are taken from its configuration as loaded
//! (defaults filled in). The configurations are destructured field by field,
//! so a new field does not compile here until someone has decided whether
//! the service writes it.

#![allow(clippy::unwrap_used, reason = "test code: failures should panic")]

use std::path::{Component, Path, PathBuf};

use onionpkg_config::announce::AnnounceConfig;
use onionpkg_config::fetcher::FetcherConfig;
use onionpkg_config::mirror::{FeedPublishConfig, FeedsConfig, MirrorConfig};
use onionpkg_config::signer::{BackendConfig, LogConfig, SignerConfig};
use onionpkg_config::tor::TorConfig;

fn repo_file(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path)
}

fn read(path: &str) -> String {
    std::fs::read_to_string(repo_file(path)).unwrap()
}

/// The directories a unit lets its service write.
fn writable_dirs(unit: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for line in unit.lines().map(str::trim) {
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        let base = match key.trim() {
            "StateDirectory" => Some("/var/lib"),
            "CacheDirectory" => Some("/var/cache"),
            "LogsDirectory" => Some("/var/log"),
            "RuntimeDirectory" => Some("/run"),
            "ReadWritePaths" => None,
            _ => continue,
        };
        for word in value.split_whitespace() {
            match base {
                // `NAME` or `NAME:LINK`: the directory is NAME.
                Some(base) => {
                    let name = word.split(':').next().unwrap_or(word);
                    out.push(Path::new(base).join(name));
                }
                // `-PATH` ignores a missing path; `+PATH` is still a path.
                None => out.push(PathBuf::from(word.trim_start_matches(['-', '+']))),
            }
        }
    }
    out
}

/// The paths in `writes` (what the service writes, by configuration key)
/// that lie outside every writable directory of `unit`, as `key: path`.
fn outside(unit: &str, writes: &[(&str, &Path)]) -> Vec<String> {
    let dirs = writable_dirs(unit);
    writes
        .iter()
        .filter(|(_, path)| {
            let plain = path.is_absolute()
                && path
                    .components()
                    .all(|c| matches!(c, Component::RootDir | Component::Normal(_)));
            !plain || !dirs.iter().any(|d| path.starts_with(d))
        })
        .map(|(key, path)| format!("{key}: {}", path.display()))
        .collect()
}

/// What `onionpkg-fetch` writes.
fn fetcher_writes(c: &FetcherConfig) -> Vec<(&'static str, &Path)> {
    let FetcherConfig {
        trust_root: _,
        state_dir,
        cache_dir,
        output_dir,
        transport: _,
        fallback: _,
        main_mirrors: _,
        mirror_cooldown: _,
        tor,
        socks: _,
        https: _,
        announcement: _,
        clock: _,
        download: _,
        privacy: _,
        // on_update actions write where their programs do, not the fetcher.
        feeds: _,
    } = c;
    let mut out = vec![
        ("state_dir", state_dir.as_path()),
        ("cache_dir", cache_dir.as_path()),
        ("output_dir", output_dir.as_path()),
    ];
    out.extend(tor_writes(tor));
    out
}

/// What `onionpkg-mirror` writes.
fn mirror_writes(c: &MirrorConfig) -> Vec<(&'static str, &Path)> {
    let MirrorConfig {
        root,
        state_dir,
        listen: _,
        tls: _,
        onion: _,
        tor,
        metrics: _,
        log: _,
        limits: _,
        sync: _,
        feed: _,
        feeds,
        // The clock policy's time floor lives in state_dir.
        clock: _,
    } = c;
    // Feed versions and their state live in state_dir; publishing them
    // writes the repository (its lock, staged/, metadata/, targets/).
    let FeedsConfig {
        extra_ca: _,
        keep: _,
        publish,
        // Checkers run with the file system read-only.
        bwrap: _,
    } = feeds;
    let mut out = vec![("root", root.as_path()), ("state_dir", state_dir.as_path())];
    out.extend(tor_writes(tor));
    if let Some(FeedPublishConfig {
        repo,
        keys,
        passphrase_env: _,
        // Only connected to, and read.
        signer: _,
        signer_key: _,
    }) = publish
    {
        out.push(("feeds.publish.repo", repo.as_path()));
        // A new delegation's key is renamed into place on publish.
        if let Some(keys) = keys {
            out.push(("feeds.publish.keys", keys.as_path()));
        }
    }
    out
}

/// What the embedded Tor client writes.
fn tor_writes(t: &TorConfig) -> Vec<(&'static str, &Path)> {
    let TorConfig {
        state_dir,
        cache_dir,
        bootstrap_timeout: _,
        authority: _,
        fallback: _,
    } = t;
    vec![
        ("tor.state_dir", state_dir.as_path()),
        ("tor.cache_dir", cache_dir.as_path()),
    ]
}

/// What `onionpkg-announce serve` writes: nothing. It reads the repository
/// and its key files, and keeps the record in memory.
fn announce_writes(c: &AnnounceConfig) -> Vec<(&'static str, &Path)> {
    let AnnounceConfig {
        zone: _,
        name: _,
        channel: _,
        ttl: _,
        repo: _,
        timestamp_keys: _,
        signer: _,
        signer_key: _,
        serve: _,
        push: _,
        // Only read: the mirrors are asked what they serve.
        mirrors: _,
    } = c;
    Vec::new()
}

/// What `onionpkg-signer serve` writes: its state and log, the socket, and
/// the key store of the file backend.
fn signer_writes(c: &SignerConfig) -> Vec<(&'static str, &Path)> {
    let SignerConfig {
        socket,
        state_dir,
        request_window: _,
        backend,
        log,
        role: _,
        client: _,
        // Only read: the relays' address and pins, the signer's TLS
        // certificate and key.
        upstream: _,
    } = c;
    let BackendConfig {
        kind: _,
        module: _,
        token: _,
        pin_file: _,
        pin_env: _,
        // Written by `keys generate`, run by the operator as the service's
        // user; the service only reads it, but that user owns it.
        key_dir,
        passphrase_dir: _,
    } = backend;
    let LogConfig {
        origin: _,
        dir,
        verifier_key: _,
    } = log;
    let mut out = vec![("state_dir", state_dir.as_path())];
    // The socket is made (and replaced) in its directory.
    if let Some(parent) = socket.parent() {
        out.push(("socket", parent));
    }
    if let Some(dir) = dir {
        out.push(("log.dir", dir.as_path()));
    }
    if let Some(dir) = key_dir {
        out.push(("backend.key_dir", dir.as_path()));
    }
    out
}

/// The token directory of a SoftHSM2 configuration (`directories.tokendir`):
/// SoftHSM2 writes its token files there.
fn softhsm_tokendir(conf: &str) -> PathBuf {
    conf.lines()
        .filter_map(|l| l.split_once('='))
        .find(|(k, _)| k.trim() == "directories.tokendir")
        .map(|(_, v)| PathBuf::from(v.trim()))
        .unwrap()
}

/// The value of `Environment=NAME=VALUE` in a unit.
fn unit_env<'a>(unit: &'a str, name: &str) -> Option<&'a str> {
    unit.lines()
        .filter_map(|l| l.trim().strip_prefix("Environment="))
        .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
}

fn fetcher(text: &str) -> FetcherConfig {
    onionpkg_config::from_str(text, "/etc/onionpkg/fetcher.toml").unwrap()
}

fn mirror(text: &str) -> MirrorConfig {
    onionpkg_config::from_str(text, "/etc/onionpkg/mirror.toml").unwrap()
}

#[test]
fn every_packaged_service_writes_only_where_its_unit_allows() {
    let unit = read("packaging/systemd/onionpkg-fetch.service");
    let c = fetcher(&read("packaging/etc/onionpkg/fetcher.toml"));
    assert_eq!(outside(&unit, &fetcher_writes(&c)), Vec::<String>::new());

    let unit = read("packaging/systemd/onionpkg-mirror.service");
    let c = mirror(&read("packaging/etc/onionpkg/mirror.toml"));
    assert_eq!(outside(&unit, &mirror_writes(&c)), Vec::<String>::new());
    // Tor's directory cache is in the cache directory, as the unit says.
    assert!(
        c.tor.cache_dir.starts_with("/var/cache/onionpkg-mirror"),
        "{:?}",
        c.tor.cache_dir
    );

    let unit = read("packaging/systemd/onionpkg-announce.service");
    let c: AnnounceConfig = onionpkg_config::from_str(
        &read("packaging/etc/onionpkg/announce.toml"),
        "/etc/onionpkg/announce.toml",
    )
    .unwrap();
    assert_eq!(outside(&unit, &announce_writes(&c)), Vec::<String>::new());

    let unit = read("packaging/systemd/onionpkg-signer.service");
    let c: SignerConfig = onionpkg_config::from_str(
        &read("packaging/etc/onionpkg/signer.toml"),
        "/etc/onionpkg/signer.toml",
    )
    .unwrap();
    assert_eq!(outside(&unit, &signer_writes(&c)), Vec::<String>::new());
    // SoftHSM2 writes the token where the unit's SOFTHSM2_CONF says.
    let conf = unit_env(&unit, "SOFTHSM2_CONF").unwrap();
    let packaged = conf.strip_prefix("/etc/onionpkg/").unwrap();
    let tokens = softhsm_tokendir(&read(&format!("packaging/etc/onionpkg/{packaged}")));
    assert_eq!(
        outside(&unit, &[("directories.tokendir", tokens.as_path())]),
        Vec::<String>::new()
    );
}

#[test]
fn the_signer_check_finds_a_token_outside_the_unit_directories() {
    let unit = read("packaging/systemd/onionpkg-signer.service");
    // Debian's shared SoftHSM2 token directory, as the unit once had it.
    let shared = softhsm_tokendir("directories.tokendir = /var/lib/softhsm/tokens\n");
    assert_eq!(
        outside(&unit, &[("directories.tokendir", shared.as_path())]),
        ["directories.tokendir: /var/lib/softhsm/tokens"]
    );
    let c: SignerConfig = onionpkg_config::from_str(
        &read("packaging/etc/onionpkg/signer.toml").replace(
            "socket = \"/run/onionpkg-signer/signer.sock\"",
            "socket = \"/run/signer.sock\"",
        ),
        "/etc/onionpkg/signer.toml",
    )
    .unwrap();
    assert_eq!(outside(&unit, &signer_writes(&c)), ["socket: /run"]);
}

#[test]
fn the_check_finds_a_path_outside_the_unit_directories() {
    let unit = read("packaging/systemd/onionpkg-fetch.service");
    let packaged = read("packaging/etc/onionpkg/fetcher.toml");
    // Tor's state outside StateDirectory=onionpkg-fetch, as the packaged
    // configuration once had it.
    let wrong = packaged
        .replace(
            "state_dir = \"/var/lib/onionpkg-fetch/tor\"",
            "state_dir = \"/var/lib/onionpkg/tor\"",
        )
        .replace(
            "cache_dir = \"/var/cache/onionpkg-fetch/tor\"",
            "cache_dir = \"/var/cache/onionpkg/tor\"",
        );
    assert!(
        wrong != packaged,
        "the packaged tor paths moved; update this test"
    );
    assert_eq!(
        outside(&unit, &fetcher_writes(&fetcher(&wrong))),
        [
            "tor.state_dir: /var/lib/onionpkg/tor",
            "tor.cache_dir: /var/cache/onionpkg/tor"
        ]
    );
    // A sibling with the same prefix is outside too, and so is a path that
    // climbs out with `..`.
    let wrong = packaged.replace(
        "output_dir = \"/var/lib/onionpkg-fetch/downloads\"",
        "output_dir = \"/var/lib/onionpkg-fetch-downloads\"",
    );
    assert_eq!(
        outside(&unit, &fetcher_writes(&fetcher(&wrong))),
        ["output_dir: /var/lib/onionpkg-fetch-downloads"]
    );
    let wrong = packaged.replace(
        "output_dir = \"/var/lib/onionpkg-fetch/downloads\"",
        "output_dir = \"/var/lib/onionpkg-fetch/../downloads\"",
    );
    assert_eq!(
        outside(&unit, &fetcher_writes(&fetcher(&wrong))),
        ["output_dir: /var/lib/onionpkg-fetch/../downloads"]
    );
    // Without CacheDirectory=, the cache is not writable.
    let no_cache = unit.replace("CacheDirectory=onionpkg-fetch\n", "");
    let c = fetcher(&packaged);
    assert_eq!(
        outside(&no_cache, &fetcher_writes(&c)),
        [
            "cache_dir: /var/cache/onionpkg-fetch",
            "tor.cache_dir: /var/cache/onionpkg-fetch/tor"
        ]
    );
    // ReadWritePaths= and LogsDirectory= count.
    let more = format!(
        "{unit}\nReadWritePaths=-/srv/onionpkg/repo /srv/other\nLogsDirectory=onionpkg-x\n"
    );
    let repo = Path::new("/srv/onionpkg/repo/staged");
    let log = Path::new("/var/log/onionpkg-x/access.log");
    assert_eq!(
        outside(&more, &[("repo", repo), ("log", log)]),
        Vec::<String>::new()
    );
    assert_eq!(
        outside(&unit, &[("repo", repo)]),
        ["repo: /srv/onionpkg/repo/staged"]
    );
}

#[test]
fn a_mirror_publishing_feeds_needs_the_repository_writable() {
    let unit = read("packaging/systemd/onionpkg-mirror.service");
    let text = format!(
        "{}\n[feeds.publish]\nrepo = \"/srv/onionpkg/repo\"\nkeys = \"/srv/onionpkg/repo.keys\"\n",
        read("packaging/etc/onionpkg/mirror.toml")
    );
    let c = mirror(&text);
    assert_eq!(
        outside(&unit, &mirror_writes(&c)),
        [
            "feeds.publish.repo: /srv/onionpkg/repo",
            "feeds.publish.keys: /srv/onionpkg/repo.keys"
        ]
    );
}
