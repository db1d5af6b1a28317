//! The mirror's connection budgets and the onion service's limits.

use onionpkg_config::{MirrorConfig, from_str};

mod common;

use common::{assert_at, error};

/// A minimal mirror configuration (an onion service) with `extra` lines
/// appended from line 5 on.
fn mirror(extra: &str) -> String {
    format!("root = \"/srv/repo\"\nstate_dir = \"/var/lib/m\"\n[onion]\nenabled = true\n{extra}")
}

#[test]
fn budgets_and_onion_limits_have_their_defaults() {
    let c: MirrorConfig = from_str(&mirror(""), "m.toml").unwrap();
    assert_eq!(c.limits.max_connections, 1024);
    assert_eq!(c.limits.per_client, 32);
    assert_eq!(c.limits.max_onion_streams, 512);
    assert_eq!(c.limits.max_metrics_connections, 8);
    assert_eq!(c.onion.max_streams_per_circuit, 16);
    assert_eq!((c.onion.intro_rate, c.onion.intro_burst), (None, None));

    let c: MirrorConfig = from_str(
        &mirror(
            "max_streams_per_circuit = 4\nintro_rate = 25\nintro_burst = 200\n[limits]\n\
             per_client = 2\nmax_onion_streams = 3\nmax_metrics_connections = 1\n",
        ),
        "m.toml",
    )
    .unwrap();
    assert_eq!(c.onion.max_streams_per_circuit, 4);
    assert_eq!(
        (c.onion.intro_rate, c.onion.intro_burst),
        (Some(25), Some(200))
    );
    assert_eq!(c.limits.per_client, 2);
    assert_eq!(c.limits.max_onion_streams, 3);
    assert_eq!(c.limits.max_metrics_connections, 1);
}

#[test]
fn a_zero_budget_is_refused() {
    for key in [
        "max_connections",
        "per_client",
        "max_onion_streams",
        "max_metrics_connections",
    ] {
        let e = error::<MirrorConfig>(&mirror(&format!("[limits]\n{key} = 0\n")), "m.toml");
        assert_at(&e, 6, &format!("limits.{key}"), "must be at least 1");
    }
}

#[test]
fn onion_limits_out_of_range_or_alone_are_refused() {
    let e = error::<MirrorConfig>(&mirror("max_streams_per_circuit = 0\n"), "m.toml");
    assert_at(&e, 5, "onion.max_streams_per_circuit", "from 1 to 65535");
    let e = error::<MirrorConfig>(&mirror("max_streams_per_circuit = 65536\n"), "m.toml");
    assert_at(&e, 5, "onion.max_streams_per_circuit", "found 65536");

    let e = error::<MirrorConfig>(&mirror("intro_rate = 25\n"), "m.toml");
    assert_at(
        &e,
        5,
        "onion.intro_burst",
        "required when onion.intro_rate is set",
    );
    let e = error::<MirrorConfig>(&mirror("intro_burst = 200\n"), "m.toml");
    assert_at(
        &e,
        5,
        "onion.intro_rate",
        "required when onion.intro_burst is set",
    );

    let e = error::<MirrorConfig>(&mirror("intro_rate = 0\nintro_burst = 200\n"), "m.toml");
    assert_at(&e, 5, "onion.intro_rate", "must be from 1 to 2147483647");
    let e = error::<MirrorConfig>(&mirror("intro_rate = 25\nintro_burst = 10\n"), "m.toml");
    assert_at(&e, 6, "onion.intro_burst", "from onion.intro_rate (25)");
    let e = error::<MirrorConfig>(
        &mirror("intro_rate = 25\nintro_burst = 2147483648\n"),
        "m.toml",
    );
    assert_at(&e, 6, "onion.intro_burst", "found 2147483648");
}
