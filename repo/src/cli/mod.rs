//! The command line of `onionpkg-repo`: parsing, then dispatch to the library.

mod root;
mod threshold;

pub use threshold::ThresholdArg;

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use jiff::{SignedDuration, Timestamp};
use zeroize::Zeroizing;

use onionpkg_trust::keys::PublicKey;

use crate::verify::verify_tree;
use crate::{Expiries, InitOptions, KeyDir, RepoDir};

/// onionpkg-repo: the release side of onionpkg (keys, signing, publishing).
///
/// Exit codes: the table every onionpkg program shares
/// (`onionpkg_core::exit`, docs/EXIT-CODES.md): 2 bad usage, 3 not a
/// repository, 8 verification failed, 12 not enough keys to sign (also when
/// a root draft awaits offline signatures), 1 anything else.
#[derive(Debug, Parser)]
#[command(name = "onionpkg-repo", version, about, long_about = None, after_help = onionpkg_core::exit::help())]
pub struct Cli {
    /// The repository directory (holds metadata/, targets/, staged/).
    #[arg(long, short = 'r', default_value = ".", global = true)]
    pub repo: PathBuf,
    /// The directory of private keys [default: REPO.keys, next to the
    /// repository; never inside it, where mirrors would copy it].
    #[arg(long, short = 'k', global = true)]
    pub keys: Option<PathBuf>,
    /// Name of an environment variable holding the key passphrase. New keys
    /// are encrypted with it; encrypted keys are unlocked with it.
    #[arg(long, global = true)]
    pub passphrase_env: Option<String>,
    /// The Unix socket of onionpkg-signer: every role but root (targets, its
    /// bins, snapshot, timestamp, mirrors, feeds) is signed there instead of
    /// with key files. For `publish`, `timestamp` and `rotate mirrors|feeds
    /// --public-key`; needs --signer-key.
    #[arg(long, global = true, value_name = "PATH", requires = "signer_key")]
    pub signer: Option<PathBuf>,
    /// This client's own key file, which authenticates its requests to the
    /// signer (listed in the signer's `[[client]]`); unlocked with
    /// --passphrase-env when given.
    #[arg(long, global = true, value_name = "FILE", requires = "signer")]
    pub signer_key: Option<PathBuf>,
    /// Print machine-readable JSON instead of text.
    #[arg(long, global = true)]
    pub json: bool,
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a repository and keys for every role.
    Init {
        /// Keys and threshold of a top-level role, as ROLE=M/N: M of the
        /// role's N keys must sign; repeatable. Default: root=2/3, the
        /// others 1/1.
        #[arg(long = "threshold", value_name = "ROLE=M/N", value_parser = threshold::parse)]
        thresholds: Vec<ThresholdArg>,
        /// A root public key held offline (repeat). No root key is made here;
        /// the first root is left as a draft to sign with `root sign`.
        #[arg(long = "root-pubkey", value_name = "FILE")]
        root_pubkeys: Vec<PathBuf>,
        /// Validity of a role's metadata, as ROLE=DURATION (e.g. timestamp=1d).
        #[arg(long = "expires", value_name = "ROLE=DURATION")]
        expires: Vec<String>,
        /// Hashed bins for packages: a power of two up to 256, or 0 to list
        /// packages in `targets` itself. More bins, smaller updates.
        #[arg(long, value_name = "N", default_value_t = onionpkg_trust::roles::DEFAULT_BINS)]
        bins: u32,
    },
    /// Stage a file as a target (published by the next `publish`).
    Add {
        /// The file.
        file: PathBuf,
        /// Its target path in the repository [default: the file name].
        #[arg(long)]
        path: Option<String>,
        /// A custom field, as KEY=VALUE (e.g. version=1.2.3); repeatable.
        #[arg(long = "custom", value_name = "KEY=VALUE")]
        custom: Vec<String>,
        /// The role that signs it: targets (packages) or feeds.
        #[arg(long, default_value = "targets")]
        role: String,
    },
    /// Stage the removal of a target.
    Remove {
        /// The target path.
        path: String,
        /// The role that lists it.
        #[arg(long, default_value = "targets")]
        role: String,
    },
    /// The mirror list, signed by the mirrors role.
    Mirrors {
        /// What to do with it.
        #[command(subcommand)]
        action: MirrorsAction,
    },
    /// Sign the staged changes, a new snapshot and a new timestamp.
    Publish {
        /// Validity of a role's metadata, as ROLE=DURATION; repeatable.
        #[arg(long = "expires", value_name = "ROLE=DURATION")]
        expires: Vec<String>,
        /// Re-sign a role even if unchanged (to renew its expiry); repeatable.
        #[arg(long = "resign", value_name = "ROLE")]
        resign: Vec<String>,
    },
    /// Re-sign the timestamp only, with a new version and expiry (for cron).
    Timestamp {
        /// Validity of the new timestamp.
        #[arg(long, default_value = "1d")]
        expires: String,
    },
    /// Print the signed DNS TXT announcement of the published state.
    Announce {
        /// The owner name of the TXT record (e.g. _update.example.org).
        #[arg(long)]
        name: String,
        /// The update channel.
        #[arg(long, default_value = "stable")]
        channel: String,
        /// How long the announcement stays valid; at most until the
        /// published timestamp expires, which is also the default.
        #[arg(long)]
        expires: Option<String>,
        /// Print a zone-file line instead of the bare value.
        #[arg(long)]
        zone: bool,
        /// The TTL of the zone-file line, in seconds.
        #[arg(long, default_value_t = 300)]
        ttl: u32,
    },
    /// Replace the keys of a role and re-sign what they sign.
    ///
    /// The new keys are made here. For `root` that means root private keys
    /// on this machine, so it is refused unless --generate-online is given;
    /// the offline way is `root draft --set-keys root=…` with the public
    /// keys the holders made with `keygen` (see docs/RELEASE.md).
    Rotate {
        /// The role: targets, snapshot, timestamp, mirrors, feeds (or root,
        /// with --generate-online).
        role: String,
        /// New keys and threshold, as ROLE=M/N (ROLE is the role rotated):
        /// N new keys, M of which must sign [default: as before].
        #[arg(long, value_name = "ROLE=M/N", value_parser = threshold::parse)]
        threshold: Option<ThresholdArg>,
        /// For `root`: make the new root private keys on this machine. They
        /// must then be moved to their holders' offline media.
        #[arg(long)]
        generate_online: bool,
        /// For `mirrors` and `feeds`: the role's new key is this public key
        /// (a TUF key JSON file, such as the signer's from `onionpkg-signer
        /// keys show`) instead of one made here.
        #[arg(long, value_name = "FILE", conflicts_with_all = ["generate_online", "threshold"])]
        public_key: Option<PathBuf>,
    },
    /// Root changes and offline M-of-N signing.
    Root {
        /// What to do.
        #[command(subcommand)]
        action: RootAction,
    },
    /// List the keys in the key directory with their key ids.
    Keys,
    /// Make a key pair, STEM.key and STEM.pub.json, outside any repository:
    /// for a root key holder on their own offline machine.
    Keygen {
        /// Where to write the pair: STEM.key (private, mode 0600, encrypted
        /// with --passphrase-env) and STEM.pub.json (the public key to send).
        #[arg(long, value_name = "STEM")]
        out: PathBuf,
    },
    /// Check a repository tree exactly as a client would.
    Verify {
        /// The tree to check [default: the repository].
        dir: Option<PathBuf>,
        /// The pinned root to start from.
        #[arg(long)]
        root: PathBuf,
    },
}

/// Mirror list commands.
#[derive(Debug, Subcommand)]
pub enum MirrorsAction {
    /// Validate FILE and stage it as the signed mirror list.
    ///
    /// FILE is JSON: {"version": N, "expires": "YYYY-MM-DDTHH:MM:SSZ",
    /// "mirrors": [{"name": …, "clearnet": "https://…/", "onion":
    /// "http://….onion/", "region": …, "weight": 1-1000}, …]}. Each mirror
    /// needs a name and a clearnet or an onion URL; region and weight are
    /// optional. The version must be above the published list's. The full
    /// format, limits and an example: docs/RELEASE.md, section "The mirror
    /// list (mirrors.json)".
    Set {
        /// A mirrors.json file (format: docs/RELEASE.md, "The mirror list
        /// (mirrors.json)").
        file: PathBuf,
    },
}

/// Root commands.
#[derive(Debug, Subcommand)]
pub enum RootAction {
    /// Draft the next root version (staged/root.json), unsigned.
    Draft {
        /// New keys for a role, as ROLE=PUBFILE[,PUBFILE...]; repeatable.
        #[arg(long = "set-keys", value_name = "ROLE=FILES")]
        set_keys: Vec<String>,
        /// The threshold of a role given with --set-keys, as ROLE=M/N (N is
        /// the number of its keys); repeatable. Default: 1 of N.
        #[arg(long = "threshold", value_name = "ROLE=M/N", value_parser = threshold::parse)]
        thresholds: Vec<ThresholdArg>,
        /// Validity of the new root.
        #[arg(long, default_value = "365d")]
        expires: String,
    },
    /// Add your signature to a root file (run by each key holder).
    Sign {
        /// The root file (changed in place).
        file: PathBuf,
        /// Your private key file.
        #[arg(long)]
        key: PathBuf,
    },
    /// Merge the signatures of signed copies of one root file.
    Merge {
        /// Where to write the merged file.
        #[arg(long, short = 'o')]
        out: PathBuf,
        /// The signed copies.
        #[arg(required = true)]
        copies: Vec<PathBuf>,
    },
    /// Install a signed root once it meets the old and new thresholds.
    Install {
        /// The signed root file [default: staged/root.json].
        file: Option<PathBuf>,
    },
}

/// Parses a duration such as `90s`, `30m`, `12h`, `365d`.
pub fn parse_duration(s: &str) -> Result<SignedDuration> {
    let s = s.trim();
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: i64 = num
        .parse()
        .with_context(|| format!("{s:?} is not a duration like 30m, 12h or 7d"))?;
    let secs = match unit {
        "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86400,
        _ => bail!("{s:?} is not a duration like 30m, 12h or 7d"),
    };
    if secs <= 0 {
        bail!("{s:?}: a duration must be positive");
    }
    Ok(SignedDuration::from_secs(secs))
}

fn split_kv(s: &str) -> Result<(&str, &str)> {
    s.split_once('=')
        .with_context(|| format!("{s:?} is not KEY=VALUE"))
}

fn expiries(args: &[String]) -> Result<Expiries> {
    let mut exp = Expiries::default();
    for a in args {
        let (role, d) = split_kv(a)?;
        exp.set(role, parse_duration(d)?)?;
    }
    Ok(exp)
}

fn read_pubkey(path: &PathBuf) -> Result<PublicKey> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    PublicKey::from_json(&bytes).with_context(|| format!("public key file {}", path.display()))
}

/// What a command needs of the repository directory.
enum Access {
    /// Nothing: it works on files it is given (a key holder's commands).
    None,
    /// An existing repository, read only.
    Read,
    /// An existing repository, under the writer lock.
    Write,
    /// A repository made by `init`, its first root possibly still awaiting
    /// signatures, under the writer lock.
    Install,
    /// A new repository (`init`).
    Create,
}

fn access(cli: &Cli) -> Access {
    match &cli.command {
        Command::Init { .. } => Access::Create,
        Command::Keygen { .. } => Access::None,
        Command::Root {
            action: RootAction::Sign { .. } | RootAction::Merge { .. },
        } => Access::None,
        Command::Root {
            action: RootAction::Install { .. },
        } => Access::Install,
        Command::Keys if cli.keys.is_some() => Access::None,
        Command::Verify { dir: Some(_), .. } => Access::None,
        Command::Keys | Command::Verify { .. } => Access::Read,
        _ => Access::Write,
    }
}

/// What a command reports, for the caller to show.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Report {
    /// The command's output, for stdout.
    pub lines: Vec<String>,
    /// Warnings and notes, each with its `warning:` or `note:` prefix, for
    /// stderr.
    pub notes: Vec<String>,
    /// The exit code: 0; 2 when the command did nothing and the output says
    /// what to do instead; 12 when a root draft awaits offline signatures.
    pub exit_code: u8,
}

/// A command line that makes no sense, found after parsing; exits with 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Usage(pub String);

/// Runs a parsed command line at time `now`.
pub fn run(cli: &Cli, now: Timestamp) -> Result<Report> {
    let passphrase = match &cli.passphrase_env {
        Some(var) => Some(Zeroizing::new(
            std::env::var(var)
                .with_context(|| format!("the passphrase variable {var} is not set"))?
                .into_bytes(),
        )),
        None => None,
    };
    let key_dir = match &cli.keys {
        Some(dir) => dir.clone(),
        None => crate::keydir::default_dir(&cli.repo)?,
    };
    let mut keys = KeyDir::new(key_dir, passphrase.clone());
    if let (Some(socket), Some(client_key)) = (&cli.signer, &cli.signer_key) {
        let signs = match &cli.command {
            Command::Publish { .. } | Command::Timestamp { .. } => true,
            Command::Rotate {
                role, public_key, ..
            } => onionpkg_trust::roles::DELEGATED.contains(&role.as_str()) && public_key.is_some(),
            _ => false,
        };
        if !signs {
            return Err(Usage(
                "--signer is for `publish`, `timestamp` and `rotate mirrors|feeds --public-key`: \
                 the commands that sign roles other than root"
                    .into(),
            )
            .into());
        }
        let client = onionpkg_trust::sign::SecretKey::read_file(
            client_key,
            passphrase.as_deref().map(Vec::as_slice),
        )
        .with_context(|| format!("the signer client key {}", client_key.display()))?;
        keys = keys.with_signer(crate::RemoteSigner::new(socket, client));
    }
    let repo = RepoDir::new(&cli.repo);
    let waiting = || {
        tracing::warn!(
            lock = %repo.dir().join(crate::state::LOCK_FILE).display(),
            "waiting for another writer of the repository to finish"
        );
    };
    // One writer at a time. Nothing but `init` makes a repository: a
    // mistyped `-r` must not leave a directory and a lock file behind.
    let _lock = match access(cli) {
        Access::None => None,
        Access::Read => {
            repo.check_exists()?;
            None
        }
        Access::Write => {
            repo.check_exists()?;
            Some(repo.lock(waiting)?)
        }
        Access::Install => Some(repo.lock(waiting)?),
        Access::Create => Some(repo.lock_new(waiting)?),
    };
    let mut report = Report::default();
    let out = &mut report.lines;
    match &cli.command {
        Command::Init {
            thresholds,
            root_pubkeys,
            expires,
            bins,
        } => {
            let mut opts = InitOptions {
                bins: *bins,
                ..InitOptions::default()
            };
            let mut given = std::collections::BTreeSet::new();
            for t in thresholds {
                let (role, threshold) = t.role_and_threshold()?;
                if !onionpkg_trust::roles::TOP_LEVEL.contains(&role.as_str()) {
                    return Err(Usage(format!(
                        "--threshold {}: {role} is not a top-level role (root, targets, snapshot, timestamp)",
                        t.text
                    ))
                    .into());
                }
                if !given.insert(role.clone()) {
                    return Err(Usage(format!("--threshold for {role} is given twice")).into());
                }
                opts.thresholds.insert(role, threshold);
            }
            opts.offline_root_keys = root_pubkeys
                .iter()
                .map(read_pubkey)
                .collect::<Result<_>>()?;
            let report = repo.init(&keys, &opts, &expiries(expires)?, now)?;
            for (role, ids) in &report.keys {
                for id in ids {
                    out.push(format!("{role:<10} {id}"));
                }
            }
            if report.root_installed {
                out.push(format!(
                    "repository created; pin {} on clients; keep the root keys offline",
                    repo.metadata_dir().join("root.json").display()
                ));
            } else {
                out.push(format!(
                    "root draft at {}: each root key holder runs `onionpkg-repo root sign`, then `root install`",
                    repo.root_draft_path().display()
                ));
            }
        }
        Command::Add {
            file,
            path,
            custom,
            role,
        } => {
            let target = match path {
                Some(p) => p.clone(),
                None => file
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .context("the file has no name; give --path")?,
            };
            let mut fields = BTreeMap::new();
            for c in custom {
                let (k, v) = split_kv(c)?;
                fields.insert(k.to_string(), v.to_string());
            }
            let entry = repo.add_target(file, &target, &fields, role)?;
            out.push(format!(
                "staged {target} ({} bytes, sha256 {})",
                entry["length"],
                entry["hashes"]["sha256"].as_str().unwrap_or("")
            ));
        }
        Command::Remove { path, role } => {
            repo.remove_target(path, role)?;
            out.push(format!("staged the removal of {path}"));
        }
        Command::Mirrors {
            action: MirrorsAction::Set { file },
        } => {
            let bytes =
                std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
            let n = repo.set_mirrors(&bytes, now)?;
            out.push(format!("staged a mirror list of {n} mirror(s)"));
        }
        Command::Publish { expires, resign } => {
            let resign: Vec<&str> = resign.iter().map(String::as_str).collect();
            let v = repo.publish(&keys, &expiries(expires)?, &resign, now)?;
            out.push(format!("published timestamp version {v}"));
        }
        Command::Timestamp { expires } => {
            let mut exp = Expiries::default();
            exp.set(onionpkg_trust::roles::TIMESTAMP, parse_duration(expires)?)?;
            let v = repo.timestamp(&keys, &exp, now)?;
            out.push(format!("timestamp version {v}"));
        }
        Command::Announce {
            name,
            channel,
            expires,
            zone,
            ttl,
        } => {
            let valid_for = expires.as_deref().map(parse_duration).transpose()?;
            let text = repo.announce(&keys, name, channel, valid_for, now)?;
            if *zone {
                out.push(onionpkg_trust::announce::zone_line(name, *ttl, &text)?);
            } else {
                out.push(text);
            }
        }
        Command::Rotate {
            role,
            public_key: Some(file),
            ..
        } => {
            let public = read_pubkey(file)?;
            let rotation =
                repo.rotate_delegated_to(role, &keys, public, &Expiries::default(), now)?;
            if let crate::rootops::Rotation::Done { key_ids } = rotation {
                out.push(format!(
                    "rotated {role}; new key(s): {}",
                    key_ids.join(", ")
                ));
            }
        }
        Command::Rotate {
            role,
            threshold,
            generate_online,
            public_key: None,
        } => {
            let mut notes = Vec::new();
            let t = threshold
                .as_ref()
                .map(|t| t.for_rotation(role, &mut notes))
                .transpose()?;
            let mut report = root::rotate(&repo, &keys, role, t, *generate_online, now)?;
            notes.append(&mut report.notes);
            report.notes = notes;
            return Ok(report);
        }
        Command::Root { action } => root::run(
            &repo,
            &keys,
            passphrase.as_deref().map(Vec::as_slice),
            action,
            now,
            &mut report,
        )?,
        Command::Keygen { out: stem } => {
            let key = crate::keydir::generate_file(stem, passphrase.as_deref().map(Vec::as_slice))?;
            out.push(format!("made key {}", key.public().key_id()));
            out.push(format!(
                "  {}.key       private: keep it here, offline",
                stem.display()
            ));
            out.push(format!(
                "  {}.pub.json  public: send it to the release manager",
                stem.display()
            ));
        }
        Command::Keys => {
            for (id, (stem, _)) in keys.public_keys()? {
                out.push(format!("{stem:<14} {id}"));
            }
        }
        Command::Verify { dir, root } => {
            let root_bytes =
                std::fs::read(root).with_context(|| format!("reading {}", root.display()))?;
            let dir = dir.clone().unwrap_or_else(|| cli.repo.clone());
            let report = verify_tree(&dir, &root_bytes, now).map_err(VerifyFailed)?;
            out.push(format!(
                "ok: root v{}, timestamp v{}, {} target(s) verified",
                report.root_version,
                report.timestamp_version,
                report.targets.len()
            ));
            for (role, path, len) in report.targets {
                out.push(format!("  {role:<8} {path} ({len} bytes)"));
            }
        }
    }
    Ok(report)
}

/// A verification failure, which exits with its own code.
#[derive(Debug, thiserror::Error)]
#[error("verification failed")]
pub struct VerifyFailed(#[source] pub crate::RepoError);
