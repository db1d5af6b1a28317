//! Loading the three configuration files: the examples, the defaults, and
//! errors that point at the right file, line and key.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use onionpkg_config::fetcher::Transport;
use onionpkg_config::mirror::FeedCheck;
use onionpkg_config::{
    AnnounceConfig, ConfigError, ErrorKind, FetcherConfig, HasKind, MirrorConfig, from_str,
};

mod common;

use common::{assert_at, error};

const ONION: &str = "oghohrm2uzznh27nkezd55psiwx6ygccpjeifaizxkxgb5lrxejtuoyd";

fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples")
        .join(name)
}

const FETCHER: &str = r#"trust_root = "root.json"
state_dir = "/var/lib/onionpkg"
cache_dir = "/var/cache/onionpkg"
output_dir = "/var/lib/onionpkg/out"
main_mirrors = ["https://updates.example.org/repo"]
"#;

/// The minimal fetcher configuration with `extra` lines appended (line 6 on).
fn fetcher(extra: &str) -> String {
    format!("{FETCHER}{extra}")
}

const MIRROR: &str = r#"root = "/srv/repo"
state_dir = "/var/lib/onionpkg-mirror"
"#;

/// The minimal mirror configuration with `extra` lines appended (line 3 on).
fn mirror(extra: &str) -> String {
    format!("{MIRROR}{extra}")
}

const ANNOUNCE: &str = r#"zone = "example.org"
name = "_onionpkg.example.org"
repo = "/srv/repo"
timestamp_keys = ["/etc/keys/timestamp.pem"]
"#;

#[test]
fn example_fetcher_loads() {
    let c = onionpkg_config::load_fetcher(example("fetcher.toml")).unwrap();
    assert_eq!(c.transport, Transport::Tor);
    assert_eq!(c.fallback, vec![Transport::Socks]);
    assert_eq!(c.main_mirrors.len(), 2);
    assert!(c.main_mirrors[0].is_onion());
    assert_eq!(
        c.socks.unwrap().addr,
        "127.0.0.1:9050".parse::<SocketAddr>().unwrap()
    );
    let a = c.announcement.unwrap();
    assert_eq!(a.name.as_str(), "_onionpkg.example.org");
    assert_eq!(a.mirror_grace, Duration::from_secs(3600));
    assert_eq!(c.clock.skew_tolerance, Duration::from_secs(300));
    assert_eq!(c.privacy.random_delay, Duration::from_secs(900));
    assert_eq!(c.feeds["location"].timeout, Duration::from_secs(300));
    assert_eq!(c.tor.state_dir, Path::new("/var/lib/onionpkg/tor"));
}

#[test]
fn example_mirror_loads() {
    let c = onionpkg_config::load_mirror(example("mirror.toml")).unwrap();
    assert!(c.onion.enabled);
    assert!(c.tls.is_some());
    let names: Vec<_> = c.feed.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, ["blocklist", "geoip", "location"]);
    assert_eq!(c.feed[2].check, FeedCheck::Libloc);
    assert!(c.feed[2].checker.as_ref().unwrap().names_file());
    assert_eq!(c.feed[0].file_name(), "drop.txt");
    assert_eq!(c.feeds.keep, 3);
    assert!(c.feeds.publish.is_some());
    assert_eq!(c.feed[1].check, FeedCheck::Mmdb);
    assert_eq!(c.feed[1].max_size, 100 * 1024 * 1024);
    assert_eq!(c.sync.unwrap().interval, Some(Duration::from_secs(600)));
    assert_eq!(c.clock.skew_tolerance, Duration::from_secs(300));
    assert_eq!(c.tor.state_dir, Path::new("/var/lib/onionpkg-mirror/tor"));
    assert_eq!(
        c.tor.cache_dir,
        Path::new("/var/lib/onionpkg-mirror/cache/tor")
    );
}

#[test]
fn example_announce_loads() {
    let c = onionpkg_config::load_announce(example("announce.toml")).unwrap();
    assert_eq!(c.zone.as_str(), "example.org");
    assert_eq!(c.ttl, 300);
    assert_eq!(c.serve.unwrap().listen.len(), 2);
    assert_eq!(c.push.unwrap().server.port(), 53);
}

#[test]
fn fetcher_defaults() {
    let c: FetcherConfig = from_str(&fetcher(""), "/etc/onionpkg/fetcher.toml").unwrap();
    assert_eq!(c.transport, Transport::Tor);
    assert!(c.fallback.is_empty());
    assert_eq!(c.download.parallelism, 2);
    assert_eq!(c.download.min_throughput, 2048);
    assert_eq!(c.download.throughput_window, Duration::from_secs(60));
    assert_eq!(c.download.deadline, Duration::from_secs(1800));
    assert_eq!(c.clock.skew_tolerance, Duration::ZERO);
    assert_eq!(c.privacy.random_delay, Duration::ZERO);
    assert_eq!(c.mirror_cooldown, Duration::from_secs(3600));
    assert_eq!(c.tor.bootstrap_timeout, Duration::from_secs(120));
    assert!(c.announcement.is_none());
    // Relative paths are resolved against the file's directory; base URLs
    // gain their trailing slash.
    assert_eq!(c.trust_root, Path::new("/etc/onionpkg/root.json"));
    assert_eq!(
        c.main_mirrors[0].as_str(),
        "https://updates.example.org/repo/"
    );
    assert_eq!(c.tor.state_dir, Path::new("/var/lib/onionpkg/tor"));
    assert_eq!(c.tor.cache_dir, Path::new("/var/cache/onionpkg/tor"));
}

#[test]
fn announcement_defaults() {
    let text = fetcher("[announcement]\nname = \"_u.example.org\"\nuse_system_resolver = true\n");
    let c: FetcherConfig = from_str(&text, "f.toml").unwrap();
    let a = c.announcement.unwrap();
    assert_eq!(a.channel, "stable");
    assert!(a.fallback_to_mirror);
    assert_eq!(a.resolver, None);
}

#[test]
fn mirror_and_announce_defaults() {
    let c: MirrorConfig = from_str(&mirror("[onion]\nenabled = true\n"), "m.toml").unwrap();
    assert_eq!(c.onion.nickname, "onionpkg");
    assert!(!c.log.access_log);
    assert_eq!(c.limits.max_connections, 1024);
    assert_eq!(c.limits.header_read_timeout, Duration::from_secs(10));
    assert_eq!(c.limits.max_header_bytes, 16384);
    assert!(c.metrics.is_none() && c.sync.is_none() && c.feed.is_empty());

    let a: AnnounceConfig = from_str(ANNOUNCE, "a.toml").unwrap();
    assert_eq!((a.channel.as_str(), a.ttl), ("stable", 300));
    assert!(a.serve.is_none() && a.push.is_none());
}

#[test]
fn syntax_error_gives_its_line() {
    let e = error::<FetcherConfig>(&fetcher("[download]\nparallelism = = 3\n"), "fetcher.toml");
    assert!(matches!(e, ConfigError::Syntax { .. }), "{e:?}");
    assert_eq!(e.line(), Some(7));
    assert!(e.to_string().starts_with("fetcher.toml:7:"), "{e}");
    assert_eq!(e.kind(), ErrorKind::BadConfig);
}

#[test]
fn duplicate_key_is_a_syntax_error_naming_the_key() {
    let e = error::<FetcherConfig>(&fetcher("\ntrust_root = \"other.json\"\n"), "fetcher.toml");
    assert!(matches!(e, ConfigError::Syntax { .. }), "{e:?}");
    assert_eq!(
        e.to_string(),
        "fetcher.toml:7:1: syntax error: duplicate key `trust_root`"
    );
}

#[test]
fn unknown_key_gives_its_line_and_name() {
    let e = error::<MirrorConfig>(
        &mirror("[listen]\nhttp = \"127.0.0.1:80\"\nhtps = \"[::]:443\"\n"),
        "mirror.toml",
    );
    assert!(matches!(e, ConfigError::UnknownKey { .. }), "{e:?}");
    assert_at(&e, 5, "listen.htps", "expected `http` or `https`");
    assert_eq!(e.column(), Some(1));

    let e = error::<FetcherConfig>(&format!("trasnport = \"tor\"\n{FETCHER}"), "f.toml");
    assert_at(&e, 1, "trasnport", "unknown key");

    let feeds = "[onion]\nenabled = true\n[[feed]]\nname = \"a\"\nupstream = \"https://x.example/a\"\ncheck = \"any\"\n[[feed]]\nname = \"b\"\nupstrem = \"https://x.example/b\"\n";
    let e = error::<MirrorConfig>(&mirror(feeds), "m.toml");
    assert_at(&e, 11, "feed[1].upstrem", "unknown key");
}

#[test]
fn wrong_type_gives_line_and_key() {
    let e = error::<FetcherConfig>(&fetcher("[download]\nparallelism = \"two\"\n"), "f.toml");
    assert!(matches!(e, ConfigError::WrongType { .. }), "{e:?}");
    assert_at(
        &e,
        7,
        "download.parallelism",
        "expected an integer from 0 to 255",
    );

    let e = error::<MirrorConfig>(&mirror("[log]\naccess_log = \"yes\"\n"), "m.toml");
    assert_at(&e, 4, "log.access_log", "expected true or false");

    let e = error::<AnnounceConfig>(&format!("{ANNOUNCE}ttl = 99999999999\n"), "a.toml");
    assert_at(&e, 5, "ttl", "expected an integer from 0 to 4294967295");
}

#[test]
fn bad_values_give_line_and_key() {
    let e = error::<MirrorConfig>(
        &mirror("[listen]\nhttp = \"localhost:80\"\n"),
        "mirror.toml",
    );
    assert!(matches!(e, ConfigError::Invalid { .. }), "{e:?}");
    assert_at(
        &e,
        4,
        "listen.http",
        "expected a socket address like 127.0.0.1:8080",
    );
    assert!(
        e.to_string()
            .starts_with("mirror.toml:4:8: key `listen.http`: "),
        "{e}"
    );

    let e = error::<FetcherConfig>(
        &fetcher("[clock]\nskew_tolerance = \"5 minutes\"\n"),
        "f.toml",
    );
    assert_at(
        &e,
        7,
        "clock.skew_tolerance",
        "expected a duration like \"30s\"",
    );

    let e = error::<FetcherConfig>(&fetcher("transport = \"ftp\"\n"), "f.toml");
    assert_at(&e, 6, "transport", "unknown value `ftp`");

    let e = error::<FetcherConfig>(
        &fetcher(
            "[tor]\n[[tor.authority]]\nname = \"a\"\nv3ident = \"ABCD\"\ndir_addr = \"10.0.0.1:7000\"\n",
        ),
        "f.toml",
    );
    assert_at(&e, 9, "tor.authority[0].v3ident", "40 hex digits");
}

#[test]
fn the_announcement_grace_is_bounded_and_tor_caches_live_in_cache_dir() {
    let c: FetcherConfig = from_str(
        &fetcher("[announcement]\nname = \"_u.example.org\"\nresolver = \"127.0.0.1:53\"\n"),
        "/etc/onionpkg/fetcher.toml",
    )
    .unwrap();
    assert_eq!(
        c.announcement.unwrap().mirror_grace,
        Duration::from_secs(3600)
    );
    // cache_dir does what its doc says: Tor's directory cache goes there.
    assert!(
        c.tor.cache_dir.starts_with(&c.cache_dir),
        "{:?}",
        c.tor.cache_dir
    );
    let e = error::<FetcherConfig>(
        &fetcher(
            "[announcement]\nname = \"_u.example.org\"\nresolver = \"127.0.0.1:53\"\nmirror_grace = \"2d\"\n",
        ),
        "f.toml",
    );
    assert!(
        e.to_string().contains("announcement.mirror_grace") && e.to_string().contains("at most 1d"),
        "{e}"
    );
}

#[test]
fn missing_keys_are_named() {
    let e = error::<FetcherConfig>("state_dir = \"/s\"\n", "f.toml");
    assert!(matches!(e, ConfigError::MissingKey { .. }), "{e:?}");
    assert_eq!(e.key(), Some("trust_root"));
    assert_eq!(e.line(), None);
    assert_eq!(
        e.to_string(),
        "f.toml: key `trust_root`: required, but missing"
    );

    let e = error::<MirrorConfig>(&mirror("[tls]\ncert = \"c.pem\"\n"), "m.toml");
    assert_eq!((e.line(), e.key()), (Some(3), Some("tls.key")));
}

#[test]
fn main_mirror_rules() {
    let bad_scheme = FETCHER.replace(
        "https://updates.example.org/repo",
        "ftp://updates.example.org/repo",
    );
    let e = error::<FetcherConfig>(&bad_scheme, "f.toml");
    assert_at(&e, 5, "main_mirrors[0]", "scheme \"ftp\" is not supported");

    let multi = |second: &str| {
        FETCHER.replace(
            "main_mirrors = [\"https://updates.example.org/repo\"]",
            &format!(
                "main_mirrors = [\n  \"https://updates.example.org/repo\",\n  \"{second}\",\n]"
            ),
        )
    };
    let short = format!("http://{}.onion/", &ONION[..55]);
    let e = error::<FetcherConfig>(&multi(&short), "f.toml");
    assert_at(
        &e,
        7,
        "main_mirrors[1]",
        "56 characters before .onion, found 55",
    );

    let e = error::<FetcherConfig>(&multi("http://updates.example.org/"), "f.toml");
    assert_at(&e, 7, "main_mirrors[1]", "only allowed for .onion");

    let e = error::<FetcherConfig>(&multi("https://updates.example.org/repo/"), "f.toml");
    assert_at(&e, 7, "main_mirrors[1]", "listed twice");

    let e = error::<FetcherConfig>(&multi("https://updates.example.org/?x=1"), "f.toml");
    assert_at(&e, 7, "main_mirrors[1]", "takes no query");

    let none = FETCHER.replace("[\"https://updates.example.org/repo\"]", "[]");
    let e = error::<FetcherConfig>(&none, "f.toml");
    assert_at(&e, 5, "main_mirrors", "at least one");

    let onion_only = FETCHER.replace(
        "https://updates.example.org/repo",
        &format!("http://{ONION}.onion/"),
    );
    let e = error::<FetcherConfig>(&format!("transport = \"https\"\n{onion_only}"), "f.toml");
    assert_at(&e, 6, "main_mirrors", "cannot reach");
}

#[test]
fn transport_rules() {
    let e = error::<FetcherConfig>(&fetcher("transport = \"socks\"\n"), "f.toml");
    assert_at(
        &e,
        6,
        "socks.addr",
        "required when a transport is \"socks\"",
    );

    let e = error::<FetcherConfig>(&fetcher("fallback = [\"https\", \"socks\"]\n"), "f.toml");
    assert_at(&e, 6, "socks.addr", "required");

    let e = error::<FetcherConfig>(
        &fetcher("transport = \"https\"\nfallback = [\"tor\", \"https\"]\n"),
        "f.toml",
    );
    assert_at(&e, 7, "fallback[1]", "already the main transport");

    let e = error::<FetcherConfig>(&fetcher("fallback = [\"https\", \"https\"]\n"), "f.toml");
    assert_at(&e, 6, "fallback[1]", "listed twice");

    let ok: FetcherConfig = from_str(
        &fetcher("fallback = [\"socks\"]\n[socks]\naddr = \"[::1]:9050\"\n"),
        "f.toml",
    )
    .unwrap();
    assert_eq!(
        ok.transports().collect::<Vec<_>>(),
        [Transport::Tor, Transport::Socks]
    );
}

#[test]
fn fetcher_bounds() {
    let e = error::<FetcherConfig>(&fetcher("[download]\nparallelism = 0\n"), "f.toml");
    assert_at(&e, 7, "download.parallelism", "from 1 to 16, found 0");

    let e = error::<FetcherConfig>(&fetcher("[download]\nparallelism = 17\n"), "f.toml");
    assert_at(&e, 7, "download.parallelism", "found 17");

    let e = error::<FetcherConfig>(&fetcher("[clock]\n\nskew_tolerance = \"61m\"\n"), "f.toml");
    assert_at(&e, 8, "clock.skew_tolerance", "at most 1h, found 61m");

    let ok: FetcherConfig =
        from_str(&fetcher("[clock]\nskew_tolerance = \"1h\"\n"), "f.toml").unwrap();
    assert_eq!(ok.clock.skew_tolerance, Duration::from_secs(3600));

    let e = error::<FetcherConfig>(&fetcher("[privacy]\nrandom_delay = \"7h\"\n"), "f.toml");
    assert_at(&e, 7, "privacy.random_delay", "at most 6h");

    let e = error::<FetcherConfig>(&fetcher("[download]\ndeadline = \"0s\"\n"), "f.toml");
    assert_at(&e, 7, "download.deadline", "longer than 0s");
}

#[test]
fn announcement_rules() {
    let e = error::<FetcherConfig>(
        &fetcher("[announcement]\nname = \"_u.example.org\"\n"),
        "f.toml",
    );
    assert_at(&e, 6, "announcement.resolver", "use_system_resolver = true");

    let both = "[announcement]\nname = \"_u.example.org\"\nresolver = \"192.0.2.1:53\"\nuse_system_resolver = true\n";
    let e = error::<FetcherConfig>(&fetcher(both), "f.toml");
    assert_at(&e, 9, "announcement.use_system_resolver", "conflicts");

    let e = error::<FetcherConfig>(
        &fetcher("[announcement]\nname = \"bad name.org\"\n"),
        "f.toml",
    );
    assert_at(&e, 7, "announcement.name", "expected a dns name");

    let chan = "[announcement]\nname = \"u.example.org\"\nchannel = \"Stable\"\nuse_system_resolver = true\n";
    let e = error::<FetcherConfig>(&fetcher(chan), "f.toml");
    assert_at(&e, 8, "announcement.channel", "a-z, 0-9");
}

#[test]
fn tor_network_rules() {
    let auth = "[[tor.authority]]\nname = \"a\"\nv3ident = \"A1DA625EBABD2FC0DE51FDC05116994A55171AD0\"\ndir_addr = \"10.0.0.1:7000\"\n";
    let e = error::<FetcherConfig>(&fetcher(auth), "f.toml");
    assert_at(&e, 6, "tor.fallback", "needs fallbacks too");

    let fb = "[[tor.fallback]]\nrsa_identity = \"0EB7C8AAD759B26D37B857E7080FD2B138B75A1C\"\ned_identity = \"nBYj8NOOKOlZTy7zGn7JCSkcT9sFp3fczS6Tan9AYBE\"\norports = [\"10.0.0.1:5000\"]\n";
    let e = error::<FetcherConfig>(&fetcher(fb), "f.toml");
    assert_at(&e, 6, "tor.authority", "needs authorities too");

    let c: FetcherConfig = from_str(&fetcher(&format!("{auth}{fb}")), "f.toml").unwrap();
    assert!(c.tor.is_private_network());
    assert_eq!(c.tor.authority[0].v3ident[0], 0xA1);
    assert_eq!(c.tor.fallback[0].orports.len(), 1);

    let bad_ed = fb.replace(
        "nBYj8NOOKOlZTy7zGn7JCSkcT9sFp3fczS6Tan9AYBE",
        "nBYj8NOOKOlZTy7zGn7JCSkcT9sFp3fczS6Tan9AYB",
    );
    let e = error::<FetcherConfig>(&fetcher(&format!("{auth}{bad_ed}")), "f.toml");
    assert_at(
        &e,
        12,
        "tor.fallback[0].ed_identity",
        "43 characters of base64",
    );

    let twice = format!("{auth}{}", auth.replace("name = \"a\"", "name = \"b\""));
    let e = error::<FetcherConfig>(&fetcher(&format!("{twice}{fb}")), "f.toml");
    assert_at(&e, 12, "tor.authority[1].v3ident", "listed twice");
}

#[test]
fn mirror_listen_and_tls_rules() {
    let e = error::<MirrorConfig>(MIRROR, "m.toml");
    assert_eq!(e.key(), Some("listen"));
    assert!(e.to_string().contains("nothing to serve on"), "{e}");

    let e = error::<MirrorConfig>(
        &mirror("[listen]\nhttp = \"0.0.0.0:80\"\nhttps = \"0.0.0.0:443\"\n"),
        "m.toml",
    );
    assert_at(&e, 5, "tls.cert", "required when listen.https is set");

    let e = error::<MirrorConfig>(
        &mirror("[listen]\nhttp = \"0.0.0.0:80\"\n[tls]\ncert = \"c\"\nkey = \"k\"\n"),
        "m.toml",
    );
    assert_at(&e, 5, "tls", "listen.https is not set");

    let e = error::<MirrorConfig>(
        &mirror("[onion]\nenabled = true\nnickname = \"-x\"\n"),
        "m.toml",
    );
    assert_at(&e, 5, "onion.nickname", "not starting with '-'");
}

#[test]
fn mirror_metrics_must_be_loopback() {
    let text = mirror("[onion]\nenabled = true\n[metrics]\nlisten = \"0.0.0.0:9100\"\n");
    let e = error::<MirrorConfig>(&text, "mirror.toml");
    assert_at(&e, 6, "metrics.listen", "must be a loopback address");
    assert!(e.to_string().starts_with("mirror.toml:6:10: "), "{e}");

    let ok = mirror("[onion]\nenabled = true\n[metrics]\nlisten = \"[::1]:9100\"\n");
    assert!(from_str::<MirrorConfig>(&ok, "m.toml").is_ok());
}

#[test]
fn mirror_limits_and_sync_rules() {
    let e = error::<MirrorConfig>(
        &mirror("[onion]\nenabled = true\n[limits]\nmax_header_bytes = 100\n"),
        "m.toml",
    );
    assert_at(&e, 6, "limits.max_header_bytes", "from 1024 to 1048576");

    let sync = format!(
        "[onion]\nenabled = true\n[sync]\nupstream = \"http://{ONION}.onion/\"\ntrust_root = \"root.json\"\nvia_tor = false\n"
    );
    let e = error::<MirrorConfig>(&mirror(&sync), "m.toml");
    assert_at(&e, 8, "sync.via_tor", "only reachable through Tor");

    let ok: MirrorConfig = from_str(
        &mirror(&sync.replace("via_tor = false\n", "")),
        "/etc/m/m.toml",
    )
    .unwrap();
    let s = ok.sync.unwrap();
    assert!(s.via_tor);
    assert_eq!(s.interval, None);
    assert_eq!(s.trust_root, Path::new("/etc/m/root.json"));
}

#[test]
fn mirror_sync_plain_http_only_to_loopback_without_tor() {
    let sync = |url: &str, via_tor: bool| {
        mirror(&format!(
            "[onion]\nenabled = true\n[sync]\nupstream = \"{url}\"\ntrust_root = \"root.json\"\n\
             via_tor = {via_tor}\n"
        ))
    };
    for url in [
        "http://127.0.0.1:8080/repo",
        "http://127.3.2.1/",
        "http://[::1]:8080/",
    ] {
        let c: MirrorConfig = from_str(&sync(url, false), "m.toml").unwrap();
        let s = c.sync.unwrap();
        assert!(!s.upstream.is_https() && s.upstream.is_loopback(), "{url}");
        assert!(s.upstream.as_str().ends_with('/'), "{url}");
        // The same rules for a URL given for one run (`--upstream`).
        assert_eq!(s.parse_upstream(url).unwrap(), s.upstream, "{url}");
    }
    // Through Tor, 127.0.0.1 would be the exit relay, not this host.
    let e = error::<MirrorConfig>(&sync("http://127.0.0.1/", true), "m.toml");
    assert_at(&e, 8, "sync.via_tor", "set via_tor = false");
    // Any other plain http upstream is refused, and says what is allowed.
    for url in [
        "http://10.0.0.1/",
        "http://localhost/",
        "http://updates.example.org/",
        "http://[::ffff:127.0.0.1]/",
    ] {
        let e = error::<MirrorConfig>(&sync(url, false), "m.toml");
        assert_at(&e, 6, "sync.upstream", "loopback");
        assert!(e.to_string().contains("use https"), "{e}");
    }
    // https anywhere, with or without Tor; an extra CA for it.
    let c: MirrorConfig = from_str(
        &sync("https://10.0.0.1/", true).replace(
            "via_tor = true\n",
            "via_tor = true\nextra_ca = \"ca.pem\"\n",
        ),
        "/etc/m/m.toml",
    )
    .unwrap();
    let s = c.sync.unwrap();
    assert_eq!(s.extra_ca.as_deref(), Some(Path::new("/etc/m/ca.pem")));
    let e = s.parse_upstream("http://10.0.0.1/").unwrap_err();
    assert!(e.contains("loopback"), "{e}");
    let e = s.parse_upstream("http://127.0.0.1/").unwrap_err();
    assert!(e.contains("set via_tor = false"), "{e}");
}

#[test]
fn mirror_clock_tolerance_is_bounded() {
    let clock = |t: &str| {
        mirror(&format!(
            "[onion]\nenabled = true\n[clock]\nskew_tolerance = \"{t}\"\n"
        ))
    };
    let c: MirrorConfig = from_str(&clock("1h"), "m.toml").unwrap();
    assert_eq!(c.clock.skew_tolerance, Duration::from_secs(3600));
    let c: MirrorConfig = from_str(&mirror("[onion]\nenabled = true\n"), "m.toml").unwrap();
    assert_eq!(c.clock.skew_tolerance, Duration::ZERO);
    let e = error::<MirrorConfig>(&clock("61m"), "m.toml");
    assert_at(&e, 6, "clock.skew_tolerance", "at most 1h, found 61m");
}

/// A mirror with two feeds; the second feed starts at line 10.
fn feeds(second: &str) -> String {
    mirror(&format!(
        "[onion]\nenabled = true\n\n[[feed]]\nname = \"geoip\"\nupstream = \"https://x.example/a\"\ncheck = \"mmdb\"\n[[feed]]\n{second}"
    ))
}

#[test]
fn feed_rules() {
    let e = error::<MirrorConfig>(
        &feeds("name = \"geoip\"\nupstream = \"https://x.example/b\"\ncheck = \"any\"\n"),
        "m.toml",
    );
    assert_at(&e, 11, "feed[1].name", "used twice");

    let e = error::<MirrorConfig>(
        &feeds("name = \"Geo_IP\"\nupstream = \"https://x.example/b\"\ncheck = \"any\"\n"),
        "m.toml",
    );
    assert_at(&e, 11, "feed[1].name", "a-z, 0-9 and '-'");

    let e = error::<MirrorConfig>(
        &feeds("name = \"b\"\nupstream = \"https://x.example/b\"\ncheck = \"zip\"\n"),
        "m.toml",
    );
    assert_at(&e, 13, "feed[1].check", "unknown value `zip`");

    let e = error::<MirrorConfig>(
        &feeds(
            "name = \"b\"\nupstream = \"https://x.example/b\"\ncheck = \"any\"\ninterval = \"30s\"\n",
        ),
        "m.toml",
    );
    assert_at(&e, 14, "feed[1].interval", "at least 1m, found 30s");

    let e = error::<MirrorConfig>(
        &feeds(
            "name = \"b\"\nupstream = \"https://x.example/b\"\ncheck = \"any\"\nsignature_url = \"https://x.example/b.sig\"\n",
        ),
        "m.toml",
    );
    assert_at(
        &e,
        14,
        "feed[1].signature_key",
        "required with signature_url",
    );

    let e = error::<MirrorConfig>(
        &feeds("name = \"b\"\nupstream = \"http://x.example/b\"\ncheck = \"any\"\n"),
        "m.toml",
    );
    assert_at(&e, 12, "feed[1].upstream", "only allowed for .onion");

    let e = error::<MirrorConfig>(
        &feeds("name = \"b\"\nupstream = \"https://x.example/b\"\n"),
        "m.toml",
    );
    assert!(matches!(e, ConfigError::MissingKey { .. }), "{e:?}");
    assert_eq!((e.line(), e.key()), (Some(10), Some("feed[1].check")));

    let ok: MirrorConfig = from_str(
        &feeds("name = \"b\"\nupstream = \"https://x.example/b?edition=1\"\ncheck = \"tar.gz\"\n"),
        "m.toml",
    )
    .unwrap();
    assert_eq!(ok.feed[1].check, FeedCheck::TarGz);
    assert_eq!(
        ok.feed[1].upstream.as_str(),
        "https://x.example/b?edition=1"
    );
    // Published as the URL's last segment, or the name when that is no
    // plain file name.
    assert_eq!(ok.feed[0].file_name(), "a");
    assert_eq!(ok.feed[1].file_name(), "b");
    assert_eq!(ok.feeds.keep, 3);

    let e = error::<MirrorConfig>(
        &feeds(
            "name = \"b\"\nupstream = \"https://x.example/b\"\ncheck = \"any\"\nfile = \"../x\"\n",
        ),
        "m.toml",
    );
    assert_at(&e, 14, "feed[1].file", "not a plain file name");

    let e = error::<MirrorConfig>(
        &mirror("[onion]\nenabled = true\n[feeds]\nkeep = 0\n"),
        "m.toml",
    );
    assert_at(&e, 6, "feeds.keep", "from 1 to 100");
}

#[test]
fn announce_rules() {
    let e = error::<AnnounceConfig>(
        &ANNOUNCE.replace("_onionpkg.example.org", "_onionpkg.example.net"),
        "announce.toml",
    );
    assert_at(&e, 2, "name", "not inside the zone example.org");

    let e = error::<AnnounceConfig>(&format!("{ANNOUNCE}ttl = 0\n"), "a.toml");
    assert_at(&e, 5, "ttl", "from 1 to 86400");

    let e = error::<AnnounceConfig>(
        &ANNOUNCE.replace("[\"/etc/keys/timestamp.pem\"]", "[]"),
        "a.toml",
    );
    assert_at(&e, 4, "timestamp_keys", "at least one");

    let e = error::<AnnounceConfig>(
        &format!("{ANNOUNCE}[serve]\nlisten = [\"0.0.0.0:53\", \"0.0.0.0:53\"]\n"),
        "a.toml",
    );
    assert_at(&e, 6, "serve.listen[1]", "listed twice");

    let e = error::<AnnounceConfig>(
        &format!("{ANNOUNCE}[push]\nserver = \"ns1.example.org:53\"\ntsig_key = \"k\"\n"),
        "a.toml",
    );
    assert_at(&e, 6, "push.server", "socket address");

    let ok: AnnounceConfig = from_str(
        &format!("{ANNOUNCE}[push]\nserver = \"192.0.2.1:53\"\ntsig_key = \"tsig.key\"\n"),
        "/etc/a/a.toml",
    )
    .unwrap();
    assert_eq!(ok.push.unwrap().tsig_key, Path::new("/etc/a/tsig.key"));
}

#[test]
fn serve_limits_have_safe_defaults_and_refuse_bad_values() {
    let a: AnnounceConfig = from_str(
        &format!("{ANNOUNCE}[serve]\nlisten = [\"127.0.0.1:53\"]\n"),
        "a.toml",
    )
    .unwrap();
    let l = a.serve.unwrap().limits;
    assert_eq!((l.responses_per_second, l.burst, l.slip), (20, 40, 2));
    assert_eq!((l.ipv4_prefix, l.ipv6_prefix), (24, 56));
    assert_eq!(l.rate_table_size, 10_000);
    assert_eq!(l.udp_amplification, 3);
    assert_eq!((l.max_tcp_connections, l.max_tcp_per_address), (64, 4));
    assert_eq!(l.tcp_idle_timeout, Duration::from_secs(10));

    let limits = |extra: &str| {
        format!("{ANNOUNCE}[serve]\nlisten = [\"127.0.0.1:53\"]\n[serve.limits]\n{extra}\n")
    };
    let e = error::<AnnounceConfig>(&limits("udp_amplification = 0"), "a.toml");
    assert_at(&e, 8, "serve.limits.udp_amplification", "from 1 to 10");
    let e = error::<AnnounceConfig>(&limits("udp_amplification = 50"), "a.toml");
    assert_at(&e, 8, "serve.limits.udp_amplification", "found 50");
    let e = error::<AnnounceConfig>(&limits("responses_per_second = 0"), "a.toml");
    assert_at(
        &e,
        8,
        "serve.limits.responses_per_second",
        "from 1 to 10000",
    );
    let e = error::<AnnounceConfig>(&limits("burst = 5"), "a.toml");
    assert_at(&e, 8, "serve.limits.burst", "from 20 to 100000");
    let e = error::<AnnounceConfig>(&limits("ipv4_prefix = 33"), "a.toml");
    assert_at(&e, 8, "serve.limits.ipv4_prefix", "from 8 to 32");
    let e = error::<AnnounceConfig>(&limits("max_tcp_per_address = 65"), "a.toml");
    assert_at(&e, 8, "serve.limits.max_tcp_per_address", "from 1 to 64");
    let e = error::<AnnounceConfig>(&limits("tcp_idle_timeout = \"0s\""), "a.toml");
    assert_at(&e, 8, "serve.limits.tcp_idle_timeout", "from 1s to 2m");
    let e = error::<AnnounceConfig>(&limits("rate_limit = 5"), "a.toml");
    assert!(e.to_string().contains("rate_limit"), "{e}");
}

#[test]
fn load_reads_files_and_refuses_bad_ones() {
    let dir = tempfile::tempdir().unwrap();

    let missing = dir.path().join("absent.toml");
    let e = onionpkg_config::load_announce(&missing).unwrap_err();
    assert!(matches!(e, ConfigError::Read { .. }), "{e:?}");
    assert_eq!(e.kind(), ErrorKind::BadConfig);
    assert_eq!(e.path(), missing);

    let big = dir.path().join("big.toml");
    let mut text = ANNOUNCE.to_owned();
    text.push_str(&"# padding\n".repeat(110_000));
    std::fs::write(&big, &text).unwrap();
    let e = onionpkg_config::load_announce(&big).unwrap_err();
    assert!(matches!(e, ConfigError::TooLarge { .. }), "{e:?}");
    assert_eq!(e.kind(), ErrorKind::BadConfig);

    let latin1 = dir.path().join("latin1.toml");
    std::fs::write(&latin1, b"zone = \"example.org\"\n# caf\xe9\n").unwrap();
    let e = onionpkg_config::load_announce(&latin1).unwrap_err();
    assert!(matches!(e, ConfigError::NotUtf8 { .. }), "{e:?}");
    assert_eq!((e.line(), e.column()), (Some(2), Some(6)));

    // Relative paths are taken relative to the file, not the working directory.
    let good = dir.path().join("announce.toml");
    std::fs::write(&good, ANNOUNCE.replace("/srv/repo", "repo")).unwrap();
    let c = onionpkg_config::load_announce(&good).unwrap();
    assert_eq!(c.repo, dir.path().join("repo"));
}

#[test]
fn from_str_refuses_oversized_text() {
    let text = format!("{ANNOUNCE}{}", "#".repeat(1024 * 1024));
    let e = error::<AnnounceConfig>(&text, "a.toml");
    assert!(matches!(e, ConfigError::TooLarge { .. }), "{e:?}");
}

#[test]
fn the_announcer_waits_only_for_mirrors_it_can_reach() {
    let base = "zone = \"example.org\"\nname = \"_u.example.org\"\nrepo = \"/srv/repo\"\ntimestamp_keys = [\"/k\"]\n";
    let c: AnnounceConfig = from_str(
        &format!("{base}[mirrors]\nwait_for = [\"https://m.example.org/x\", \"http://127.0.0.1:8080/\"]\n"),
        "/etc/onionpkg/announce.toml",
    )
    .unwrap();
    let m = c.mirrors.unwrap();
    assert_eq!(m.wait_for[0].as_str(), "https://m.example.org/x/");
    for (bad, why) in [
        ("http://m.example.org/", "http"),
        (
            "http://oghohrm2uzznh27nkezd55psiwx6ygccpjeifaizxkxgb5lrxejtuoyd.onion/",
            "no Tor client",
        ),
    ] {
        let e = error::<AnnounceConfig>(
            &format!("{base}[mirrors]\nwait_for = [\"{bad}\"]\n"),
            "a.toml",
        );
        assert!(e.to_string().contains(why), "{bad}: {e}");
    }
}

#[test]
fn feed_checks_of_real_formats() {
    let b = "name = \"b\"\nupstream = \"https://x.example/location.db\"\n";
    // libloc needs the publisher's key, and only libloc takes one.
    let e = error::<MirrorConfig>(&feeds(&format!("{b}check = \"libloc\"\n")), "m.toml");
    assert_at(
        &e,
        13,
        "feed[1].libloc_key",
        "required with check = \"libloc\"",
    );
    let e = error::<MirrorConfig>(
        &feeds(&format!("{b}check = \"any\"\nlibloc_key = \"k.pem\"\n")),
        "m.toml",
    );
    assert_at(
        &e,
        14,
        "feed[1].libloc_key",
        "only used with check = \"libloc\"",
    );
    let ok: MirrorConfig = from_str(
        &feeds(&format!(
            "{b}check = \"libloc\"\nlibloc_key = \"keys/signing-key.pem\"\n"
        )),
        "/etc/onionpkg/m.toml",
    )
    .unwrap();
    assert_eq!(ok.feed[1].check, FeedCheck::Libloc);
    assert_eq!(
        ok.feed[1].libloc_key.as_deref(),
        Some(Path::new("/etc/onionpkg/keys/signing-key.pem"))
    );
    assert_eq!(ok.feeds.bwrap, Path::new("/usr/bin/bwrap"));
    for (check, kind) in [
        ("tor-geoip", FeedCheck::TorGeoip),
        ("tor-geoip6", FeedCheck::TorGeoip6),
    ] {
        let ok: MirrorConfig =
            from_str(&feeds(&format!("{b}check = \"{check}\"\n")), "m.toml").unwrap();
        assert_eq!(ok.feed[1].check, kind);
    }

    // An external checker: an argument list naming the file, no shell.
    let e = error::<MirrorConfig>(&feeds(&format!("{b}check = \"external\"\n")), "m.toml");
    assert_at(
        &e,
        13,
        "feed[1].checker",
        "required with check = \"external\"",
    );
    let e = error::<MirrorConfig>(
        &feeds(&format!(
            "{b}check = \"external\"\nchecker = [\"/usr/bin/suricata\", \"-T\"]\n"
        )),
        "m.toml",
    );
    assert_at(&e, 14, "feed[1].checker", "names the file");
    let e = error::<MirrorConfig>(
        &feeds(&format!(
            "{b}check = \"external\"\nchecker = \"suricata -T -S {{file}}\"\n"
        )),
        "m.toml",
    );
    assert_at(&e, 14, "feed[1].checker", "");
    let e = error::<MirrorConfig>(
        &feeds(&format!(
            "{b}check = \"external\"\nchecker = [\"suricata\", \"{{file}}\"]\n"
        )),
        "m.toml",
    );
    assert_at(&e, 14, "feed[1].checker", "absolute path");
    let e = error::<MirrorConfig>(
        &feeds(&format!(
            "{b}check = \"external\"\nchecker = [\"/bin/x\", \"{{path}}\"]\n"
        )),
        "m.toml",
    );
    assert_at(&e, 14, "feed[1].checker", "placeholder");
    let e = error::<MirrorConfig>(
        &feeds(&format!(
            "{b}check = \"external\"\nchecker = [\"/bin/x\", \"{{file}}\"]\nchecker_timeout = \"2h\"\n"
        )),
        "m.toml",
    );
    assert_at(&e, 15, "feed[1].checker_timeout", "at most 1h, found 2h");
    let e = error::<MirrorConfig>(
        &feeds(&format!(
            "{b}check = \"external\"\nchecker = [\"/bin/x\", \"{{file}}\"]\nchecker_paths = [\"etc/suricata\"]\n"
        )),
        "m.toml",
    );
    assert_at(&e, 15, "feed[1].checker_paths[0]", "absolute path");
    let e = error::<MirrorConfig>(
        &feeds(&format!(
            "{b}check = \"any\"\nchecker_paths = [\"/etc/x\"]\n"
        )),
        "m.toml",
    );
    assert_at(&e, 14, "feed[1].checker_paths", "only used with checker");
    let ok: MirrorConfig = from_str(
        &feeds(&format!(
            "{b}check = \"tar.gz\"\nchecker = [\"/usr/bin/suricata\", \"-T\", \"-S\", \"{{file}}\"]\n\
             checker_paths = [\"/etc/suricata\"]\nchecker_timeout = \"10m\"\n"
        )),
        "m.toml",
    )
    .unwrap();
    let c = ok.feed[1].checker.as_ref().unwrap();
    assert_eq!(c.program(), Path::new("/usr/bin/suricata"));
    assert_eq!(ok.feed[1].checker_timeout, Duration::from_secs(600));
}

#[test]
fn feed_actions_on_the_appliance() {
    let c: FetcherConfig = from_str(
        &fetcher(
            "[feeds.location]\non_update = [\"/usr/bin/location\", \"--database\", \"{file}\", \"verify\"]\n\
             [feeds.blocklist]\non_update = [\"/usr/sbin/ipset\", \"restore\", \"-exist\", \"-file\", \"{file}\"]\ntimeout = \"30s\"\n",
        ),
        "f.toml",
    )
    .unwrap();
    assert_eq!(c.feeds.len(), 2);
    assert_eq!(c.feeds["location"].timeout, Duration::from_secs(300));
    assert_eq!(c.feeds["blocklist"].timeout, Duration::from_secs(30));
    assert!(c.feeds["location"].on_update.names_file());
    assert!(
        from_str::<FetcherConfig>(&fetcher(""), "f.toml")
            .unwrap()
            .feeds
            .is_empty()
    );

    // Refused at load: a bad name, no program, a shell line, a relative
    // program, an unknown placeholder, a bad timeout, an unknown key.
    let e = error::<FetcherConfig>(
        &fetcher("[feeds.Location]\non_update = [\"/bin/true\"]\n"),
        "f.toml",
    );
    assert_at(&e, 6, "feeds.Location", "a-z, 0-9 and '-'");
    let e = error::<FetcherConfig>(&fetcher("[feeds.location]\ntimeout = \"1m\"\n"), "f.toml");
    assert!(matches!(e, ConfigError::MissingKey { .. }), "{e:?}");
    assert!(e.to_string().contains("on_update"), "{e}");
    let e = error::<FetcherConfig>(&fetcher("[feeds.location]\non_update = []\n"), "f.toml");
    assert_at(&e, 7, "feeds.location.on_update", "empty list");
    let e = error::<FetcherConfig>(
        &fetcher("[feeds.location]\non_update = \"ipset restore < {file}\"\n"),
        "f.toml",
    );
    assert_at(&e, 7, "feeds.location.on_update", "");
    let e = error::<FetcherConfig>(
        &fetcher("[feeds.location]\non_update = [\"ipset\", \"{file}\"]\n"),
        "f.toml",
    );
    assert_at(&e, 7, "feeds.location.on_update", "absolute path");
    let e = error::<FetcherConfig>(
        &fetcher("[feeds.location]\non_update = [\"/sbin/ipset\", \"{db}\"]\n"),
        "f.toml",
    );
    assert_at(&e, 7, "feeds.location.on_update", "placeholder");
    let e = error::<FetcherConfig>(
        &fetcher("[feeds.location]\non_update = [\"/bin/true\"]\ntimeout = \"0s\"\n"),
        "f.toml",
    );
    assert_at(&e, 8, "feeds.location.timeout", "longer than 0s");
    let e = error::<FetcherConfig>(
        &fetcher("[feeds.location]\non_update = [\"/bin/true\"]\nonupdate = 1\n"),
        "f.toml",
    );
    assert_at(&e, 8, "feeds.location.onupdate", "unknown key");
}

/// docs/FEEDS.md's step that adds the `on_update` action of the location
/// feed to the packaged fetcher.toml, run as written on a copy: the file
/// still loads, with the action.
#[test]
fn feeds_guide_location_step_loads() {
    let guide = std::fs::read_to_string(example("../../docs/FEEDS.md")).unwrap();
    let start = guide
        .find("printf '\\n[feeds.location]")
        .expect("the guide's printf step");
    let end = start + guide[start..].find("/etc/onionpkg/fetcher.toml").unwrap();
    let command = &guide[start..end];
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("fetcher.toml");
    std::fs::copy(example("../../packaging/etc/onionpkg/fetcher.toml"), &copy).unwrap();
    let status = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("{command}{}", copy.display()))
        .status()
        .unwrap();
    assert!(status.success());
    let c = onionpkg_config::load_fetcher(&copy).unwrap();
    let action = &c.feeds["location"].on_update;
    assert_eq!(
        action.as_slice(),
        [
            "/usr/bin/location",
            "--quiet",
            "--database",
            "{file}",
            "verify"
        ]
    );
}

#[test]
fn the_feed_publisher_signs_with_key_files_or_through_the_signer() {
    let publish = "[listen]\nhttp = \"127.0.0.1:8080\"\n[feeds.publish]\nrepo = \"/srv/repo\"\n";
    let c: MirrorConfig = from_str(
        &mirror(&format!(
            "{publish}signer = \"/run/onionpkg-signer/sock\"\nsigner_key = \"client.key\"\n"
        )),
        "/etc/onionpkg/mirror.toml",
    )
    .unwrap();
    let p = c.feeds.publish.unwrap();
    assert_eq!(p.keys, None);
    assert_eq!(
        p.signer.as_deref(),
        Some(Path::new("/run/onionpkg-signer/sock"))
    );
    assert_eq!(
        p.signer_key.as_deref(),
        Some(Path::new("/etc/onionpkg/client.key"))
    );

    let e = error::<MirrorConfig>(
        &mirror(&format!(
            "{publish}keys = \"/k\"\nsigner = \"/s\"\nsigner_key = \"/c\"\n"
        )),
        "m.toml",
    );
    assert!(
        e.to_string().contains("refused with feeds.publish.signer"),
        "{e}"
    );
    assert_eq!(e.key(), Some("feeds.publish.keys"));
    let e = error::<MirrorConfig>(&mirror(&format!("{publish}signer = \"/s\"\n")), "m.toml");
    assert!(
        e.to_string().contains("required with feeds.publish.signer"),
        "{e}"
    );
    assert_eq!(e.key(), Some("feeds.publish.signer_key"));
    let e = error::<MirrorConfig>(
        &mirror(&format!("{publish}keys = \"/k\"\nsigner_key = \"/c\"\n")),
        "m.toml",
    );
    assert!(e.to_string().contains("signer is not set"), "{e}");
    let e = error::<MirrorConfig>(&mirror(publish), "m.toml");
    assert!(e.to_string().contains("required: the key directory"), "{e}");
    assert_eq!(e.key(), Some("feeds.publish.keys"));
}

#[test]
fn the_announcer_signs_with_key_files_or_through_the_signer() {
    let base = "zone = \"example.org\"\nname = \"_u.example.org\"\nrepo = \"/srv/repo\"\n";
    let c: AnnounceConfig = from_str(
        &format!("{base}signer = \"/run/onionpkg-signer/sock\"\nsigner_key = \"client.key\"\n"),
        "/etc/onionpkg/announce.toml",
    )
    .unwrap();
    assert!(c.timestamp_keys.is_empty());
    assert_eq!(
        c.signer_key.as_deref(),
        Some(Path::new("/etc/onionpkg/client.key"))
    );

    let e = error::<AnnounceConfig>(
        &format!("{base}timestamp_keys = [\"/k\"]\nsigner = \"/s\"\nsigner_key = \"/c\"\n"),
        "a.toml",
    );
    assert_at(&e, 4, "timestamp_keys", "refused with signer");
    let e = error::<AnnounceConfig>(&format!("{base}signer = \"/s\"\n"), "a.toml");
    assert_at(&e, 4, "signer_key", "required with signer");
    let e = error::<AnnounceConfig>(
        &format!("{base}timestamp_keys = [\"/k\"]\nsigner_key = \"/c\"\n"),
        "a.toml",
    );
    assert_at(&e, 5, "signer_key", "signer is not set");
    let e = error::<AnnounceConfig>(base, "a.toml");
    assert!(e.to_string().contains("or signer and signer_key"), "{e}");
}
