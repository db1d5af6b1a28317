//! The command line of `onionpkg-signer`: parsing, then dispatch to the
//! library.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::keys::{KeyKind, KeyRole};
use crate::{Error, Result};

/// onionpkg-signer: the signing service. Keys live in a PKCS#11 token and
/// cannot be exported; every request is authenticated by signature and
/// checked against policy; every signature is recorded in a transparency log.
///
/// Exit codes (the table every onionpkg program shares): 0 success; 1
/// failure; 2 bad usage or configuration; 8 verification failed (`audit
/// verify`); 12 a key is missing or unusable.
#[derive(Debug, Parser)]
#[command(name = "onionpkg-signer", version, about, long_about = None, after_help = onionpkg_core::exit::help())]
pub struct Cli {
    /// The configuration file.
    #[arg(
        long,
        short = 'c',
        global = true,
        default_value = "/etc/onionpkg/signer.toml"
    )]
    pub config: PathBuf,
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve requests on the configured Unix socket.
    Serve,
    /// Make and show keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Check and read the log of signatures.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Check the configuration for `serve`, reading only (the token is not
    /// opened): exit 0 when it can start.
    CheckConfig,
    /// Run a relay on a host whose clients a signer on another host serves:
    /// clients connect to its Unix socket, the signer dials its TLS port.
    /// Reads no configuration file.
    Relay(RelayArgs),
    /// Print the pin (SHA-256 of the public key) of a PEM certificate, as
    /// `relay --signer-pin` and `[[upstream]] relay_pins` take it.
    TlsPin {
        /// The certificate (PEM; the first one in the file).
        cert: PathBuf,
    },
    /// The key-holding process the server starts (speaks a binary protocol on
    /// stdin and stdout; not for people).
    #[command(hide = true)]
    KeyHolder,
}

/// `relay`'s settings.
#[derive(Debug, clap::Args)]
pub struct RelayArgs {
    /// The Unix socket local clients connect to (mode 0660), as they would to
    /// the signer's (`onionpkg-repo --signer PATH`).
    #[arg(long)]
    pub socket: PathBuf,
    /// The address and port the signer connects to (e.g. 192.0.2.10:7443).
    #[arg(long)]
    pub listen: std::net::SocketAddr,
    /// The relay's certificate (PEM), whose key the signer pins.
    #[arg(long)]
    pub cert: PathBuf,
    /// The relay's private key (PEM).
    #[arg(long)]
    pub key: PathBuf,
    /// The pin of a signer allowed to connect (repeat during a rotation).
    #[arg(long = "signer-pin", required = true)]
    pub signer_pins: Vec<String>,
}

/// `keys` subcommands.
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Make a role's key inside the token (or as an encrypted file) and
    /// print its TUF public key object and key id.
    Generate {
        /// targets (also signs the hashed bins), mirrors, feeds, snapshot,
        /// timestamp (also the DNS announcement), or log (the checkpoints).
        #[arg(long, value_parser = parse_role)]
        role: KeyRole,
        /// The kind of key: ed25519, or ecdsa-p256 (TUF
        /// `ecdsa-sha2-nistp256`, for tokens and KMSs that sign only
        /// P-256; not for the log key).
        #[arg(long, value_parser = parse_kind, default_value = "ed25519")]
        key_type: KeyKind,
    },
    /// Check the keys of the given roles (default: every role) as the server
    /// does at start, and print each public key.
    Show {
        /// The roles (repeat); default: every role that has a key.
        #[arg(long = "role", value_parser = parse_role)]
        roles: Vec<KeyRole>,
    },
}

/// `audit` subcommands.
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Rebuild the tree from the entries and check every checkpoint and tile;
    /// names the first entry that does not match.
    Verify {
        /// The checkpoint key (ORIGIN+KEYID+BASE64) [default: log.verifier_key].
        #[arg(long)]
        verifier_key: Option<String>,
    },
    /// List what was signed.
    List {
        /// Only entries at or after this time (RFC 3339, e.g. 2025-01-31T00:00:00Z).
        #[arg(long)]
        since: Option<jiff::Timestamp>,
        /// One JSON object per line instead of text.
        #[arg(long)]
        json: bool,
    },
}

fn parse_role(s: &str) -> std::result::Result<KeyRole, String> {
    if s == "root" {
        return Err("root is never signed online; its keys stay offline".into());
    }
    KeyRole::from_name(s).ok_or_else(|| {
        format!("expected one of: targets, mirrors, feeds, snapshot, timestamp, log; found {s:?}")
    })
}

fn parse_kind(s: &str) -> std::result::Result<KeyKind, String> {
    KeyKind::from_name(s).ok_or_else(|| format!("expected ed25519 or ecdsa-p256; found {s:?}"))
}

/// Runs a command; returns the lines to print.
pub fn run(cli: &Cli) -> Result<Vec<String>> {
    match &cli.command {
        Command::KeyHolder => {
            // The configuration names the key store; nothing else is read.
            let store = onionpkg_config::load_signer(&cli.config)
                .map_err(Error::from)
                .and_then(|c| crate::backend::KeyStore::open(&c.backend));
            crate::holder::serve(store, std::io::stdin().lock(), std::io::stdout().lock())?;
            Ok(Vec::new())
        }
        Command::Keys(KeysCommand::Generate { role, key_type }) => {
            let cfg = onionpkg_config::load_signer(&cli.config)?;
            crate::admin::generate(&cfg, *role, *key_type)
        }
        Command::Keys(KeysCommand::Show { roles }) => {
            let cfg = onionpkg_config::load_signer(&cli.config)?;
            crate::admin::show(&cfg, roles)
        }
        Command::Serve => {
            let cfg = onionpkg_config::load_signer(&cli.config)?;
            crate::server::serve(&cfg, &cli.config)?;
            Ok(Vec::new())
        }
        Command::Relay(args) => {
            relay(args)?;
            Ok(Vec::new())
        }
        Command::TlsPin { cert } => {
            let pem = std::fs::read(cert).map_err(Error::io("reading", cert))?;
            let der = {
                use rustls::pki_types::pem::PemObject as _;
                rustls::pki_types::CertificateDer::from_pem_slice(&pem)
                    .map_err(|e| Error::Invalid(format!("{}: {e}", cert.display())))?
            };
            Ok(vec![
                onionpkg_signer_client::tls::Pin::of_certificate(&der)?.to_string(),
            ])
        }
        Command::CheckConfig => {
            let cfg = onionpkg_config::load_signer(&cli.config)?;
            check_config(&cfg, &cli.config)
        }
        Command::Audit(AuditCommand::Verify { verifier_key }) => {
            let cfg = onionpkg_config::load_signer(&cli.config)?;
            crate::audit::verify_command(&cfg, verifier_key.as_deref())
        }
        Command::Audit(AuditCommand::List { since, json }) => {
            let cfg = onionpkg_config::load_signer(&cli.config)?;
            crate::audit::list(&cfg, *since, *json)
        }
    }
}

fn relay(args: &RelayArgs) -> Result<()> {
    use onionpkg_signer_client::relay::{Relay, RelayConfig};
    use onionpkg_signer_client::tls::{Identity, Pin};
    let signer_pins = args
        .signer_pins
        .iter()
        .map(|p| Pin::parse(p))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let identity = Identity::load(&args.cert, &args.key)?;
    tracing::info!(pin = %identity.pin()?, "the relay's certificate key");
    Relay::bind(RelayConfig {
        socket: args.socket.clone(),
        listen: args.listen,
        identity,
        signer_pins,
    })?
    .run()?;
    Ok(())
}

/// Where systemd puts the credentials of a running unit: they exist only
/// while it runs, and systemd refuses to start it when a source is missing.
const CREDENTIALS_DIR: &str = "/run/credentials/";

/// What `serve` needs beyond a configuration that loads, checked without
/// opening the token (that takes the PIN, and a package's installer asks
/// this before enabling the service): the log's verifier key is set, the
/// PKCS#11 module and the PIN file are there (a PIN file that is a
/// credential of the unit is left to systemd), and each upstream's
/// certificate and key can be read.
fn check_config(
    cfg: &onionpkg_config::SignerConfig,
    path: &std::path::Path,
) -> Result<Vec<String>> {
    if cfg.log.verifier_key.is_none() {
        return Err(Error::NotReady(
            "log.verifier_key is not set: make the log key with `keys generate --role log` \
             and set it to the verifier key printed"
                .into(),
        ));
    }
    let mut lines = vec![format!("{}: configuration ok", path.display())];
    if let Some(module) = &cfg.backend.module
        && !module.is_file()
    {
        return Err(Error::NotReady(format!(
            "backend.module {}: no such file (is the token's PKCS#11 module installed?)",
            module.display()
        )));
    }
    if let Some(pin) = &cfg.backend.pin_file {
        if pin.starts_with(CREDENTIALS_DIR) && !pin.exists() {
            lines.push(format!(
                "backend.pin_file {}: a systemd credential, not present outside the unit: \
                 systemd checks its source (LoadCredential=) when it starts",
                pin.display()
            ));
        } else if !pin.is_file() {
            return Err(Error::NotReady(format!(
                "backend.pin_file {}: no such file",
                pin.display()
            )));
        }
    }
    for (i, up) in cfg.upstream.iter().enumerate() {
        // A key that is a credential of the unit exists only while it runs.
        if up.key.starts_with(CREDENTIALS_DIR) && !up.key.exists() {
            lines.push(format!(
                "upstream[{i}].key {}: a systemd credential, not present outside the unit",
                up.key.display()
            ));
            continue;
        }
        onionpkg_signer_client::tls::Identity::load(&up.cert, &up.key)
            .map_err(|e| Error::NotReady(format!("upstream[{i}] ({}): {e}", up.address)))?;
    }
    Ok(lines)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code: failures should panic")]

    use std::path::Path;

    use super::*;

    /// The packaged relay unit's command line, as systemd expands it with
    /// `RELAY_ARGS` set to `args`.
    fn relay_unit_argv(args: &str) -> Vec<String> {
        let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../packaging/");
        let unit = std::fs::read_to_string(format!("{root}systemd/onionpkg-signer-relay.service"))
            .unwrap();
        let exec = unit
            .lines()
            .find_map(|l| l.strip_prefix("ExecStart="))
            .unwrap();
        exec.replace("%d", "/run/credentials/onionpkg-signer-relay.service")
            .replace("$RELAY_ARGS", args)
            .split_whitespace()
            .map(str::to_owned)
            .collect()
    }

    #[test]
    fn the_packaged_relay_unit_runs_the_relay() {
        let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../packaging/");
        let env = std::fs::read_to_string(format!("{root}etc/onionpkg/signer-relay.env")).unwrap();
        // The example the environment file shows, uncommented.
        let example = env
            .lines()
            .find_map(|l| l.strip_prefix("#RELAY_ARGS="))
            .unwrap();
        let argv = relay_unit_argv(example);
        assert_eq!(argv[0], "/usr/bin/onionpkg-signer");
        let cli = Cli::try_parse_from(&argv).unwrap();
        let Command::Relay(r) = cli.command else {
            panic!("not the relay: {argv:?}");
        };
        assert_eq!(
            r.socket,
            Path::new("/run/onionpkg-signer-relay/signer.sock")
        );
        let creds = Path::new("/run/credentials/onionpkg-signer-relay.service");
        assert_eq!(r.cert, creds.join("cert"));
        assert_eq!(r.key, creds.join("key"));
        assert_eq!(r.listen, "192.0.2.10:7443".parse().unwrap());
        assert_eq!(r.signer_pins.len(), 1);
        // As packaged (no flags set) it refuses to start, naming what is missing.
        let e = Cli::try_parse_from(relay_unit_argv("")).unwrap_err();
        assert_eq!(e.kind(), clap::error::ErrorKind::MissingRequiredArgument);
        assert!(e.to_string().contains("--listen"), "{e}");
    }
}
