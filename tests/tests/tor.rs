//! End-to-end tests of the Tor plumbing on a private Tor network.
//!
//! One test starts one network and runs the scenarios in sequence, so the
//! network is started once and torn down deterministically; each scenario's
//! outcome is reported, and afterwards the test checks that no tor of this
//! run is left.

#![allow(
    clippy::unwrap_used,
    clippy::print_stdout,
    reason = "test support code: a panic or a printed line is the report"
)]

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};
use bytes::Bytes;
use onionpkg_mirror::files::StaticFiles;
use onionpkg_mirror::onion::{OnionService, serve_onion};
use onionpkg_net::http::{HttpUrl, Limits};
use onionpkg_net::tor::{Purpose, TorTransport};
use onionpkg_testkit::retry::retry;
use onionpkg_tests::http_server::HttpServer;
use onionpkg_tests::testnet::arti::{
    BOOTSTRAP_TIMEOUT, arti_config, bootstrap_arti, check_private,
};
use onionpkg_tests::testnet::curl::ONION_DEADLINE;
use onionpkg_tests::testnet::{TestNet, TestNetOptions};
use tokio::runtime::Runtime;

const INDEX: &str = "hello from the private tor network\n";
const BIG_LEN: usize = 1 << 20;
/// One fetch attempt within a retry loop.
const ATTEMPT: Duration = Duration::from_secs(20);
/// Polling interval of retry loops.
const RETRY_EVERY: Duration = Duration::from_millis(500);
/// Deadline of the bootstrap that must fail.
const FAILING_BOOTSTRAP: Duration = Duration::from_secs(15);

fn files() -> HashMap<String, Bytes> {
    let big: Vec<u8> = (0..BIG_LEN).map(|i| (i % 251) as u8).collect();
    HashMap::from([
        (
            "/index.txt".to_owned(),
            Bytes::from_static(INDEX.as_bytes()),
        ),
        ("/big.bin".to_owned(), Bytes::from(big)),
    ])
}

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Stops a runtime and everything arti left running on it.
fn stop_runtime(rt: Runtime) {
    rt.shutdown_timeout(Duration::from_secs(5));
}

fn limits() -> Limits {
    Limits {
        max_body: 4 << 20,
        timeout: ATTEMPT,
    }
}

/// Fetches `url` through arti until it returns `INDEX` or the deadline passes.
fn arti_fetch_until(rt: &Runtime, t: &TorTransport, url: &str) -> anyhow::Result<(u32, Duration)> {
    let url = &HttpUrl::parse(url)?;
    let r = retry(ONION_DEADLINE, RETRY_EVERY, |_| {
        match rt.block_on(t.get(Purpose::Metadata, url, &limits())) {
            Ok(r) if r.status == 200 && r.body == INDEX.as_bytes() => Ok(()),
            Ok(r) => Err(format!("status {}", r.status)),
            Err(e) => Err(e.to_string()),
        }
    })
    .map_err(|g| anyhow::anyhow!("{url}: {g}"))?;
    Ok((r.attempts, r.elapsed))
}

/// Bootstraps an arti client under `dir` and serves the test files as an
/// onion service on it.
fn host_onion(rt: &Runtime, net: &TestNet, dir: &Path) -> anyhow::Result<OnionService> {
    rt.block_on(async {
        let client = bootstrap_arti(net.network(), dir, BOOTSTRAP_TIMEOUT).await?;
        Ok(serve_onion(
            &client,
            "mirror",
            16,
            StaticFiles::new(files()),
        )?)
    })
}

/// Waits until the arti-hosted onion answers an arti client, then fetches it
/// with curl through the C tor client.
///
/// The arti probe comes first because a C tor client that asks before the
/// descriptor is published remembers the failure and does not ask the same
/// HSDirs again for a while; arti publishes about a second after launch.
fn arti_then_curl(
    rt: &Runtime,
    net: &TestNet,
    t: &TorTransport,
    address: &str,
) -> anyhow::Result<String> {
    let url = format!("http://{address}/index.txt");
    let (a_attempts, a_took) = arti_fetch_until(rt, t, &url).context("arti probe")?;
    let curl = net
        .curl_until(&url, &[], INDEX.as_bytes())
        .context("curl through C tor")?;
    if let Some(e) = &curl.first_error {
        println!("    (curl's first failed attempt: {e})");
    }
    Ok(format!(
        "{address}: arti client after {a_attempts} attempt(s) in {:.1}s, then curl after {} attempt(s) in {:.1}s",
        a_took.as_secs_f64(),
        curl.attempts,
        curl.elapsed.as_secs_f64()
    ))
}

struct Report {
    results: Vec<(&'static str, Result<String, String>, Duration)>,
}

impl Report {
    /// Runs one scenario, turning errors and panics into a failed line.
    fn run(&mut self, name: &'static str, f: impl FnOnce() -> anyhow::Result<String>) -> bool {
        println!("--- {name}");
        let start = Instant::now();
        let outcome = match std::panic::catch_unwind(AssertUnwindSafe(f)) {
            Ok(Ok(detail)) => Ok(detail),
            Ok(Err(e)) => Err(format!("{e:#}")),
            Err(p) => Err(p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_else(|| "panic".into())),
        };
        let ok = outcome.is_ok();
        match &outcome {
            Ok(d) => println!("    ok ({:.1}s): {d}", start.elapsed().as_secs_f64()),
            Err(e) => println!("    FAILED ({:.1}s): {e}", start.elapsed().as_secs_f64()),
        }
        self.results.push((name, outcome, start.elapsed()));
        ok
    }
}

#[test]
fn private_tor_network() {
    onionpkg_tests::trace_when_asked();
    let suite = Instant::now();
    let http = HttpServer::start(files()).expect("local http server");
    let mut net = TestNet::start(&TestNetOptions {
        onion_target: Some(http.addr()),
        ..TestNetOptions::default()
    })
    .expect("private tor network");
    let usable = net.usable_after();
    println!(
        "private tor network usable after {:.1}s (keys generated after {:.1}s)",
        usable.as_secs_f64(),
        net.keys_after().as_secs_f64()
    );
    let work = tempfile::tempdir().unwrap();
    let mut report = Report {
        results: Vec::new(),
    };

    report.run("network usable within 90s", || {
        ensure!(usable < Duration::from_secs(90), "took {usable:?}");
        Ok(format!("{:.1}s", usable.as_secs_f64()))
    });

    report.run("arti configuration names only the private network", || {
        let cfg = arti_config(net.network(), &work.path().join("check"))?;
        check_private(&cfg)?;
        let d = cfg.dir_mgr_config()?.network;
        ensure!(d.authorities().v3idents().len() == 3);
        ensure!(d.fallback_caches().len() == 3);
        Ok("3 loopback authorities, 3 loopback fallbacks, no public identity".into())
    });

    let client_rt = runtime();
    let mut transport = None;
    report.run("arti fetches from a local http server through an exit", || {
        let start = Instant::now();
        let client = client_rt.block_on(bootstrap_arti(
            net.network(),
            &work.path().join("client"),
            BOOTSTRAP_TIMEOUT,
        ))?;
        let boot = start.elapsed();
        let t = TorTransport::new(client);
        let base = format!("http://{}", http.addr());
        let (attempts, first) = arti_fetch_until(&client_rt, &t, &format!("{base}/index.txt"))?;
        let big_url = HttpUrl::parse(&format!("{base}/big.bin"))?;
        let big = client_rt.block_on(t.get(Purpose::Packages, &big_url, &limits()))?;
        ensure!(big.status == 200 && big.body == files()["/big.bin"], "big.bin mismatch");
        let capped = client_rt.block_on(t.get(
            Purpose::Packages,
            &big_url,
            &Limits {
                max_body: 1000,
                timeout: ATTEMPT,
            },
        ));
        ensure!(
            matches!(capped, Err(onionpkg_net::Error::BodyTooLarge { .. })),
            "body cap not enforced: {capped:?}"
        );
        transport = Some(t);
        Ok(format!(
            "bootstrap {:.2}s, first fetch after {attempts} attempt(s) in {:.2}s, 1 MiB ok, cap enforced",
            boot.as_secs_f64(),
            first.as_secs_f64()
        ))
    });

    report.run("arti fetches from an onion service hosted by C tor", || {
        let t = transport
            .as_ref()
            .context("no arti client (previous scenario failed)")?;
        let onion = net.c_onion_address().context("no C tor onion service")?;
        let (attempts, took) =
            arti_fetch_until(&client_rt, t, &format!("http://{onion}/index.txt"))?;
        Ok(format!(
            "after {attempts} attempt(s) in {:.1}s ({:.1}s after network start)",
            took.as_secs_f64(),
            suite.elapsed().as_secs_f64()
        ))
    });

    let host_dir = work.path().join("onionhost");
    let mut first_address = None;
    report.run(
        "C tor client (curl) fetches from an onion service hosted by arti",
        || {
            let t = transport
                .as_ref()
                .context("no arti client (earlier scenario failed)")?;
            let rt = runtime();
            let result = host_onion(&rt, &net, &host_dir).and_then(|svc| {
                let detail = arti_then_curl(&client_rt, &net, t, svc.address())?;
                first_address = Some(svc.address().to_owned());
                Ok(detail)
            });
            stop_runtime(rt);
            result
        },
    );

    report.run("arti onion address is the same after a restart", || {
        let first = first_address
            .clone()
            .context("no first address (previous scenario failed)")?;
        // A client that never saw the first instance: what is tested here is
        // the address and the service after a restart, not how long a
        // client holding the old descriptor (old introduction points) takes
        // to give it up, which depends on arti's timeouts; that cost up to
        // 150 s on this network.
        let fresh = client_rt
            .block_on(bootstrap_arti(
                net.network(),
                &work.path().join("client-after-restart"),
                BOOTSTRAP_TIMEOUT,
            ))
            .map(TorTransport::new)?;
        let rt = runtime();
        let result = host_onion(&rt, &net, &host_dir).and_then(|svc| {
            ensure!(
                svc.address() == first,
                "address changed: {first} -> {}",
                svc.address()
            );
            Ok(format!(
                "same address; {}",
                arti_then_curl(&client_rt, &net, &fresh, svc.address())?
            ))
        });
        drop(fresh);
        stop_runtime(rt);
        result
    });
    drop(transport);
    stop_runtime(client_rt);

    report.run(
        "arti bootstrap fails in time with the authorities stopped",
        || {
            net.stop_authorities();
            let rt = runtime();
            let start = Instant::now();
            let result = rt.block_on(bootstrap_arti(
                net.network(),
                &work.path().join("noauth"),
                FAILING_BOOTSTRAP,
            ));
            let took = start.elapsed();
            stop_runtime(rt);
            let Err(e) = result else {
                bail!("bootstrap succeeded without authorities");
            };
            let msg = e.to_string();
            ensure!(
                took < FAILING_BOOTSTRAP + Duration::from_secs(5),
                "took {took:?}: {msg}"
            );
            ensure!(msg.contains("bootstrap"), "unclear error: {msg}");
            Ok(format!("failed after {:.1}s: {msg}", took.as_secs_f64()))
        },
    );

    let failed: Vec<_> = report.results.iter().filter(|r| r.1.is_err()).collect();
    if !failed.is_empty() {
        net.print_log_tails(40);
    }
    let net_dir = net.work_dir().to_owned();
    println!("network dir: {}", net_dir.display());
    let leftovers = net.shutdown();
    drop(http);

    println!(
        "\nprivate tor network: usable after {:.1}s",
        usable.as_secs_f64()
    );
    for (name, outcome, took) in &report.results {
        let mark = if outcome.is_ok() { "ok    " } else { "FAILED" };
        println!("{mark} {:>5.1}s  {name}", took.as_secs_f64());
    }
    println!("total {:.1}s", suite.elapsed().as_secs_f64());

    assert!(
        leftovers.is_empty(),
        "tor processes of this run left after teardown ({}): {leftovers:?}",
        net_dir.display()
    );
    assert!(failed.is_empty(), "{} scenario(s) failed", failed.len());
}
