//! The configurations installed under /etc/onionpkg by the packaging load,
//! and use the directories the systemd units give the services.

#![allow(clippy::unwrap_used, reason = "test code: failures should panic")]

use std::path::{Path, PathBuf};

fn packaged(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../packaging/etc/onionpkg")
        .join(name)
}

fn unit(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../packaging/systemd")
        .join(name);
    std::fs::read_to_string(path).unwrap()
}

#[test]
fn the_fetcher_config_uses_the_unit_directories() {
    let c = onionpkg_config::load_fetcher(packaged("fetcher.toml")).unwrap();
    let u = unit("onionpkg-fetch.service");
    assert!(u.contains("StateDirectory=onionpkg-fetch"));
    assert!(u.contains("CacheDirectory=onionpkg-fetch"));
    assert!(c.state_dir.starts_with("/var/lib/onionpkg-fetch"));
    assert!(c.output_dir.starts_with("/var/lib/onionpkg-fetch"));
    assert!(c.cache_dir.starts_with("/var/cache/onionpkg-fetch"));
    assert!(u.contains("--config /etc/onionpkg/fetcher.toml"));
}

#[test]
fn the_mirror_config_uses_the_unit_directories_and_credentials() {
    let c = onionpkg_config::load_mirror(packaged("mirror.toml")).unwrap();
    let u = unit("onionpkg-mirror.service");
    assert!(u.contains("StateDirectory=onionpkg-mirror"));
    assert!(c.root.starts_with("/var/lib/onionpkg-mirror"));
    assert!(c.state_dir.starts_with("/var/lib/onionpkg-mirror"));
    let tls = c.tls.unwrap();
    for (cred, path) in [("tls-cert", &tls.cert), ("tls-key", &tls.key)] {
        assert!(u.contains(&format!("LoadCredential={cred}:")), "{cred}");
        assert_eq!(
            path,
            Path::new("/run/credentials/onionpkg-mirror.service")
                .join(cred)
                .as_path()
        );
    }
    assert!(c.feed.is_empty() && c.feeds.publish.is_none());
}

#[test]
fn the_announce_config_uses_the_unit_credential() {
    let c = onionpkg_config::load_announce(packaged("announce.toml")).unwrap();
    let u = unit("onionpkg-announce.service");
    // The repository's current timestamp key, in its default key directory
    // next to it (REPO.keys): `onionpkg-repo rotate` keeps that name for the
    // new key.
    assert!(
        u.lines().any(|l| l
            == format!(
                "LoadCredential=timestamp-key:{}.keys/timestamp.key",
                c.repo.display()
            )),
        "{u}"
    );
    assert_eq!(
        c.timestamp_keys,
        [PathBuf::from(
            "/run/credentials/onionpkg-announce.service/timestamp-key"
        )]
    );
    assert!(c.serve.is_some() && c.push.is_none());
}

#[test]
fn the_timer_delays_at_random() {
    let t = unit("onionpkg-fetch.timer");
    assert!(t.contains("RandomizedDelaySec="));
    assert!(t.contains("Persistent=yes"));
}

#[test]
fn the_signer_config_uses_the_unit_directories_and_credential() {
    let c = onionpkg_config::load_signer(packaged("signer.toml")).unwrap();
    let u = unit("onionpkg-signer.service");
    assert!(u.contains("StateDirectory=onionpkg-signer"));
    assert!(u.contains("RuntimeDirectory=onionpkg-signer"));
    assert!(u.contains("PrivateNetwork=yes"));
    assert!(u.contains("RestrictAddressFamilies=AF_UNIX\n"));
    assert!(u.contains("CapabilityBoundingSet=\n"));
    assert!(c.state_dir.starts_with("/var/lib/onionpkg-signer"));
    assert!(c.socket.starts_with("/run/onionpkg-signer"));
    assert!(u.contains("LoadCredential=pin:"));
    assert_eq!(
        c.backend.pin_file.unwrap(),
        Path::new("/run/credentials/onionpkg-signer.service/pin")
    );
    assert!(u.contains("--config /etc/onionpkg/signer.toml"));
}

/// The maintainer script of a Debian package (packaging/debian/).
fn maintainer_script(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../packaging/debian")
        .join(name);
    std::fs::read_to_string(path).unwrap()
}

/// The value of `KEY=` in a unit.
fn unit_value<'a>(unit: &'a str, key: &str) -> Option<&'a str> {
    unit.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
}

#[test]
fn the_units_run_as_the_users_the_packages_make() {
    // Static users where files must keep their owner: the fetcher's pinned
    // root and Tor state, the mirror's onion key, the signer's token and log.
    for name in ["onionpkg-fetch", "onionpkg-mirror", "onionpkg-signer"] {
        let u = unit(&format!("{name}.service"));
        let postinst = maintainer_script(&format!("{name}.postinst"));
        assert_eq!(unit_value(&u, "DynamicUser"), None, "{name}");
        assert_eq!(unit_value(&u, "User"), Some(name));
        assert_eq!(unit_value(&u, "Group"), Some(name));
        assert_eq!(unit_value(&u, "StateDirectory"), Some(name));
        assert!(postinst.contains(&format!("\nNAME={name}\n")), "{name}");
        assert!(
            postinst.contains("adduser --quiet --system --group"),
            "{name}"
        );
        // The postinst makes the state directory with the unit's mode, so
        // systemd does not change it at the first start.
        let mode = unit_value(&u, "StateDirectoryMode").unwrap();
        assert!(
            postinst.contains(&format!("\tdir {mode} /var/lib/$NAME\n")),
            "{name}: {mode}"
        );
        assert!(postinst.contains("check-config"), "{name}");
    }
    // The announcement server writes nothing: a DynamicUser, no user made.
    let u = unit("onionpkg-announce.service");
    assert_eq!(unit_value(&u, "DynamicUser"), Some("yes"));
    let postinst = maintainer_script("onionpkg-announce.postinst");
    assert!(!postinst.contains("adduser"));
    assert!(postinst.contains("check-config"));
}

/// The paths of `InaccessiblePaths=` in a unit, without the `-` that skips
/// a missing one.
fn inaccessible(unit: &str) -> Vec<PathBuf> {
    unit.lines()
        .filter_map(|l| l.strip_prefix("InaccessiblePaths="))
        .flat_map(str::split_whitespace)
        .map(|p| PathBuf::from(p.trim_start_matches('-')))
        .collect()
}

#[test]
fn the_network_facing_units_cannot_read_the_signer_token() {
    let signer = onionpkg_config::load_signer(packaged("signer.toml")).unwrap();
    let conf = std::fs::read_to_string(packaged("softhsm2.conf")).unwrap();
    let tokendir = conf
        .lines()
        .filter_map(|l| l.split_once('='))
        .find(|(k, _)| k.trim() == "directories.tokendir")
        .map(|(_, v)| PathBuf::from(v.trim()))
        .unwrap();
    let signer_unit = unit("onionpkg-signer.service");
    let pin = unit_value(&signer_unit, "LoadCredential")
        .and_then(|c| c.split_once(':'))
        .map(|(_, source)| PathBuf::from(source))
        .unwrap();
    let secrets = [
        ("the signer's state", signer.state_dir.clone()),
        ("the token", tokendir),
        (
            "SoftHSM2's default token directory",
            "/var/lib/softhsm".into(),
        ),
        ("the PIN", pin),
    ];
    for name in ["onionpkg-mirror", "onionpkg-announce"] {
        let hidden = inaccessible(&unit(&format!("{name}.service")));
        for (what, path) in &secrets {
            assert!(
                hidden.iter().any(|h| path.starts_with(h)),
                "{name}.service can read {what} ({}): InaccessiblePaths={hidden:?}",
                path.display()
            );
        }
        // Signing goes through the socket: it must stay reachable.
        assert!(
            !hidden.iter().any(|h| signer.socket.starts_with(h)),
            "{name}.service cannot reach the signer's socket"
        );
    }
}

#[test]
fn the_relay_runs_as_its_own_user_with_flags_from_the_packaged_environment() {
    let u = unit("onionpkg-signer-relay.service");
    // Not the signer's user: the relay faces the network, the signer's user
    // owns the token.
    assert_eq!(unit_value(&u, "User"), Some("onionpkg-signer-relay"));
    assert_eq!(unit_value(&u, "Group"), Some("onionpkg-signer-relay"));
    assert_eq!(unit_value(&u, "DynamicUser"), None);
    let postinst = maintainer_script("onionpkg-signer.postinst");
    assert!(postinst.contains("adduser --quiet --system --group"));
    assert!(postinst.contains("\"$NAME-relay\""));
    // Its flags come from the packaged environment file, which starts it
    // with none (so it refuses to start until they are set).
    let env = unit_value(&u, "EnvironmentFile").unwrap();
    let packaged_env = env.strip_prefix("/etc/onionpkg/").unwrap();
    let text = std::fs::read_to_string(packaged(packaged_env)).unwrap();
    assert!(text.lines().any(|l| l == "RELAY_ARGS="), "{text}");
    let exec = unit_value(&u, "ExecStart").unwrap();
    assert!(exec.ends_with(" $RELAY_ARGS"), "{exec}");
    // The socket in its runtime directory; certificate and key as
    // credentials; the TLS port closed until the signer's address is allowed.
    let dir = unit_value(&u, "RuntimeDirectory").unwrap();
    assert!(
        exec.contains(&format!("--socket /run/{dir}/signer.sock ")),
        "{exec}"
    );
    assert!(exec.contains("--cert %d/cert --key %d/key"), "{exec}");
    assert!(u.contains("\nLoadCredential=cert:/etc/onionpkg/"));
    assert!(u.contains("\nLoadCredential=key:/etc/onionpkg/"));
    assert_eq!(unit_value(&u, "IPAddressDeny"), Some("any"));
    assert_eq!(unit_value(&u, "IPAddressAllow"), None);
    assert!(u.contains("\nCapabilityBoundingSet=\n"));
}

#[test]
fn the_dial_drop_in_lets_the_signer_connect_out_and_listen_nowhere() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../packaging/systemd/onionpkg-signer.service.d/dial.conf");
    let d = std::fs::read_to_string(path).unwrap();
    assert_eq!(unit_value(&d, "PrivateNetwork"), Some("no"));
    assert_eq!(
        unit_value(&d, "RestrictAddressFamilies"),
        Some("AF_UNIX AF_INET AF_INET6")
    );
    // No bind(2) on an IP socket: no listening port.
    assert_eq!(unit_value(&d, "SocketBindDeny"), Some("any"));
    // Every address refused but those the administrator allows: none
    // allowed as shipped.
    assert_eq!(unit_value(&d, "IPAddressDeny"), Some("any"));
    assert_eq!(unit_value(&d, "IPAddressAllow"), None);
    assert!(d.contains("\n#IPAddressAllow="));
    // The unit itself, as shipped, has no network.
    let u = unit("onionpkg-signer.service");
    assert_eq!(unit_value(&u, "PrivateNetwork"), Some("yes"));
}
