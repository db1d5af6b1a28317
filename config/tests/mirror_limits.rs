//! The mirror's connection budgets.

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

    let c: MirrorConfig = from_str(
        &mirror("[limits]\nper_client = 2\nmax_onion_streams = 3\nmax_metrics_connections = 1\n"),
        "m.toml",
    )
    .unwrap();
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
