//! Handling one request: authentication, policy, signature, log entry.
//!
//! The service is independent of the transport: it takes a request frame's
//! bytes and gives the answer. The Unix socket server ([`crate::server`])
//! feeds it today; the dial-out transport will too.
//!
//! The order of checks: the frame parses; it is signed; the client key is
//! configured; the signature verifies; the request's time is within the
//! window; its nonce is new (from here on the nonce is remembered, across
//! restarts); the role is not root; the client may request it; the role's
//! rate limit is not reached; the payload is the role's metadata (or an
//! announcement) carrying the request's version and expiry; the version is
//! above the last signed (an announcement: its serial not below, its issue
//! time after the last announcement's); the expiry is in the future and
//! within the role's bound; every version it pins is the last this signer
//! signed for that role, or older than the first it signed, or of a role it
//! never signed. Then the key holder signs, the signature is verified, the
//! entry is appended and fsync'd, the checkpoint and tiles are updated, and
//! only then is the signature returned.
//!
//! # Invariants
//! - No signature leaves before its entry is durable (see
//!   [`crate::journal`]).
//! - Every refusal is logged (tracing, `warn`) and recorded in the refusal
//!   record; nothing is signed for it.
//! - Internal failures reach the client as [`Reason::Internal`] only; the
//!   details are in the signer's log.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;

use base64::Engine as _;
use onionpkg_config::SignerConfig;
use onionpkg_trust::keys::{Algorithm, PublicKey};
use onionpkg_trust::util::write_atomic;
use sha2::{Digest, Sha256};

use crate::entry::{Entry, limit_role, track_key};
use crate::journal::Journal;
use crate::keys::{KeyRole, RoleKey};
use crate::policy::{self, Checked};
use crate::request::{Kind, Reason, Refusal, Response, Signed, SignedRequest};
use crate::state::{RefusalLog, RefusalRecord, State};
use crate::tlog::VerifierKey;
use crate::{Error, Result};

/// What signs: the key holder, or (in tests) anything else with its interface.
pub trait Keys: Send {
    /// `role`'s public key, after the store's checks.
    fn key(&mut self, role: KeyRole) -> Result<RoleKey>;
    /// Signs `msg` with `role`'s key.
    fn sign(&mut self, role: KeyRole, msg: &[u8]) -> Result<Vec<u8>>;
}

impl Keys for crate::holder::Holder {
    fn key(&mut self, role: KeyRole) -> Result<RoleKey> {
        Self::key(self, role)
    }
    fn sign(&mut self, role: KeyRole, msg: &[u8]) -> Result<Vec<u8>> {
        Self::sign(self, role, msg)
    }
}

#[derive(Debug)]
struct Client {
    name: String,
    key: PublicKey,
    roles: HashSet<String>,
}

/// The request handler and everything it keeps.
pub struct Service {
    cfg: SignerConfig,
    clients: HashMap<String, Client>,
    role_keys: HashMap<KeyRole, RoleKey>,
    keys: Box<dyn Keys>,
    journal: Journal,
    state: State,
    refusals: RefusalLog,
    log_key: VerifierKey,
}

impl std::fmt::Debug for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Service")
            .field("log_size", &self.journal.size())
            .finish()
    }
}

/// The key role a configured role name needs.
fn key_for_config_role(role: &str) -> Option<KeyRole> {
    match role {
        "bins" => Some(KeyRole::Targets),
        "announcement" => Some(KeyRole::Timestamp),
        other => KeyRole::from_name(other),
    }
}

impl Service {
    /// Checks every key the configuration needs (refusing to start, naming
    /// the key, if one is exportable or missing), opens the log and rebuilds
    /// the state. `now` is unix seconds.
    pub fn open(cfg: SignerConfig, mut keys: Box<dyn Keys>, now: i64) -> Result<Self> {
        let configured = cfg.log.verifier_key.clone().ok_or_else(|| {
            Error::Invalid(
                "log.verifier_key is not set: make the log key with `keys generate --role log` \
                 and set it to the verifier key printed"
                    .into(),
            )
        })?;
        let log = keys.key(KeyRole::Log)?;
        let ours = log.note_verifier_key(&cfg.log.origin)?;
        if ours != configured {
            return Err(Error::KeyUnusable {
                label: KeyRole::Log.label(),
                reason: format!("its verifier key is {ours}, but log.verifier_key is {configured}"),
            });
        }
        let log_key = VerifierKey::parse(&ours)?;
        let mut role_keys = HashMap::from([(KeyRole::Log, log)]);
        let mut clients = HashMap::new();
        for c in &cfg.client {
            for r in &c.roles {
                if let Some(kr) = key_for_config_role(r)
                    && !role_keys.contains_key(&kr)
                {
                    role_keys.insert(kr, keys.key(kr)?);
                }
            }
            let raw = hex::decode(&c.key).map_err(|e| Error::Invalid(e.to_string()))?;
            let key = PublicKey::from_ed25519_bytes(&raw)
                .map_err(|e| Error::Invalid(format!("client {}: {e}", c.name)))?;
            clients.insert(
                key.key_id(),
                Client {
                    name: c.name.clone(),
                    key,
                    roles: c.roles.iter().cloned().collect(),
                },
            );
        }
        for k in role_keys.values() {
            tracing::info!(role = %k.role, key_id = %k.key_id(), "key checked");
        }
        let (journal, entries) =
            Journal::open(&cfg.state_dir, cfg.log.dir(), &cfg.log.origin, &configured)?;
        let refusals = RefusalLog::new(&cfg.state_dir);
        let window = i64::try_from(cfg.request_window.as_secs()).unwrap_or(3600);
        let state = State::rebuild(&entries, &refusals.read()?, now, window);
        let mut service = Self {
            cfg,
            clients,
            role_keys,
            keys,
            journal,
            state,
            refusals,
            log_key,
        };
        if service.journal.needs_publish() {
            service.publish()?;
        }
        tracing::info!(entries = service.journal.size(), "log opened");
        Ok(service)
    }

    fn publish(&mut self) -> Result<()> {
        let keys = &mut self.keys;
        self.journal
            .publish(&self.log_key, |text| keys.sign(KeyRole::Log, text))
    }

    /// The public keys in use, by role.
    pub fn role_keys(&self) -> impl Iterator<Item = &RoleKey> {
        self.role_keys.values()
    }

    /// Answers one request frame at `now` (unix seconds).
    pub fn handle(&mut self, frame: &[u8], now: i64) -> Response {
        let mut record = RefusalRecord {
            time: now,
            client: None,
            role: None,
            reason: Reason::Internal,
            message: String::new(),
            nonce: None,
        };
        match self.process(frame, now, &mut record) {
            Ok(signed) => Response::Signed(signed),
            Err(refusal) => {
                tracing::warn!(
                    reason = refusal.reason.name(),
                    message = %refusal.message,
                    client = record.client.as_deref().unwrap_or("-"),
                    role = record.role.as_deref().unwrap_or("-"),
                    "request refused"
                );
                record.reason = refusal.reason;
                record.message = refusal.message.clone();
                if let Err(e) = self.refusals.append(&record) {
                    tracing::error!(error = %e, "cannot record a refusal");
                }
                Response::Refused(refusal)
            }
        }
    }

    fn internal(e: &Error) -> Refusal {
        tracing::error!(error = %e, "signing failed");
        Refusal::new(Reason::Internal, "the signer failed; see its log")
    }

    fn process(
        &mut self,
        frame: &[u8],
        now: i64,
        record: &mut RefusalRecord,
    ) -> Result<Signed, Refusal> {
        let req: SignedRequest = serde_json::from_slice(frame)
            .map_err(|e| Refusal::new(Reason::Malformed, format!("not a request: {e}")))?;
        let r = &req.request;
        record.role = Some(r.role.chars().take(64).collect());
        let sig_hex = req
            .signature
            .as_deref()
            .ok_or_else(|| Refusal::new(Reason::Unsigned, "the request is not signed"))?;
        let client = self.clients.get(&r.client).ok_or_else(|| {
            Refusal::new(Reason::UnknownClient, "the client key is not configured")
        })?;
        let payload = base64::engine::general_purpose::STANDARD
            .decode(&r.payload)
            .map_err(|_| Refusal::new(Reason::Malformed, "the payload is not base64"))?;
        let sig = hex::decode(sig_hex)
            .map_err(|_| Refusal::new(Reason::BadSignature, "the signature is not hex"))?;
        client
            .key
            .verify(&r.signing_bytes(&payload), &sig)
            .map_err(|_| Refusal::new(Reason::BadSignature, "the signature does not verify"))?;
        record.client = Some(client.name.clone());
        let window = i64::try_from(self.cfg.request_window.as_secs()).unwrap_or(3600);
        if (r.time - now).abs() > window {
            return Err(Refusal::new(
                Reason::Stale,
                format!(
                    "the request's time is {}s from the signer's clock; at most {window}s",
                    r.time - now
                ),
            ));
        }
        if r.nonce.len() != 32 || !r.nonce.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(Refusal::new(
                Reason::Malformed,
                "the nonce is not 16 bytes of hex",
            ));
        }
        if self.state.seen(&r.nonce, now) {
            return Err(Refusal::new(Reason::Replay, "this request was seen before"));
        }
        self.state.remember_nonce(&r.nonce, r.time, now);
        record.nonce = Some((r.nonce.clone(), r.time));
        if r.role == "root" {
            return Err(Refusal::new(Reason::Root, "root is never signed online"));
        }
        let limit = limit_role(&r.role, r.kind).to_string();
        let key_role = match r.kind {
            Kind::Announcement if r.role == "timestamp" => KeyRole::Timestamp,
            Kind::Announcement => {
                return Err(Refusal::new(
                    Reason::Forbidden,
                    "announcements are signed for the timestamp role",
                ));
            }
            Kind::Tuf => KeyRole::for_role(&r.role).ok_or_else(|| {
                Refusal::new(Reason::Forbidden, format!("no online role {:?}", r.role))
            })?,
        };
        if !client.roles.contains(&limit) {
            return Err(Refusal::new(
                Reason::Forbidden,
                format!("client {} may not request {limit}", client.name),
            ));
        }
        let (max_lifetime, max_per_hour) = self.cfg.limits(&limit);
        if self.state.count_last_hour(&limit, now) >= max_per_hour as usize {
            return Err(Refusal::new(
                Reason::RateLimited,
                format!("{limit} is limited to {max_per_hour} signatures an hour"),
            ));
        }
        let role_key =
            self.role_keys.get(&key_role).cloned().ok_or_else(|| {
                Self::internal(&Error::Invalid(format!("no {key_role} key loaded")))
            })?;
        let checked = match r.kind {
            Kind::Tuf => policy::check_tuf(&r.role, &payload)?,
            Kind::Announcement => policy::check_announcement(&payload, &role_key.public)?,
        };
        self.check_history(
            &r.role,
            r.kind,
            r.version,
            r.expires,
            &checked,
            now,
            max_lifetime.as_secs(),
        )?;
        let client_name = client.name.clone();

        // Sign, check, log durably, then release.
        let signature = self
            .keys
            .sign(key_role, &payload)
            .map_err(|e| Self::internal(&e))?;
        let bad = || {
            Self::internal(&Error::BadSignature {
                key_id: role_key.key_id(),
            })
        };
        let signature = match r.kind {
            Kind::Tuf => {
                role_key
                    .public
                    .verify(&payload, &signature)
                    .map_err(|_| bad())?;
                signature
            }
            // An announcement carries the fixed 64-byte form.
            Kind::Announcement => {
                let fixed = fixed_signature(&role_key.public, &signature).ok_or_else(bad)?;
                role_key
                    .public
                    .verify_fixed(&payload, &fixed)
                    .map_err(|_| bad())?;
                fixed.to_vec()
            }
        };
        let sha256 = hex::encode(Sha256::digest(&payload));
        let entry = self
            .entry(
                &req,
                client_name,
                &checked,
                &payload,
                &sha256,
                role_key.key_id(),
                now,
            )
            .map_err(|e| Self::internal(&e))?;
        let index = self
            .journal
            .append(&entry)
            .map_err(|e| Self::internal(&e))?;
        let previous = self.state.last(&r.role).map(|l| l.sha256.clone());
        self.state.record(&entry, now);
        if let Some(old) = previous.filter(|old| *old != sha256) {
            let _ = std::fs::remove_file(self.payload_path(&old));
        }
        if let Err(e) = self.publish() {
            // The entry is durable; the next start completes the checkpoint.
            tracing::error!(error = %e, "cannot update the checkpoint");
        }
        tracing::info!(index, role = %r.role, version = r.version, client = %entry.client, "signed");
        Ok(Signed {
            key_id: role_key.key_id(),
            signature: hex::encode(signature),
            log_index: index,
        })
    }

    #[allow(
        clippy::too_many_arguments,
        reason = "the request's fields, checked together"
    )]
    fn check_history(
        &self,
        role: &str,
        kind: Kind,
        version: u64,
        expires: i64,
        checked: &Checked,
        now: i64,
        max_lifetime: u64,
    ) -> Result<(), Refusal> {
        if checked.version != version || checked.expires != expires {
            return Err(Refusal::new(
                Reason::Payload,
                "the request's version or expiry differs from the payload's",
            ));
        }
        let key = track_key(role, kind);
        if let Some(last) = self.state.last(key) {
            let ok = match kind {
                Kind::Tuf => version > last.version,
                Kind::Announcement => version >= last.version && checked.issued > last.issued,
            };
            if !ok {
                return Err(Refusal::new(
                    Reason::Version,
                    format!(
                        "version {version} is not above version {} signed last for {key}",
                        last.version
                    ),
                ));
            }
        }
        if expires <= now {
            return Err(Refusal::new(
                Reason::Expiry,
                "the payload has expired already",
            ));
        }
        let lifetime = u64::try_from(expires - now).unwrap_or(u64::MAX);
        if lifetime > max_lifetime {
            return Err(Refusal::new(
                Reason::Expiry,
                format!("expires in {lifetime}s; {key} may live at most {max_lifetime}s"),
            ));
        }
        for (pinned, v) in &checked.references {
            let (Some(last), Some(first)) = (self.state.last(pinned), self.state.first(pinned))
            else {
                continue;
            };
            if *v != last.version && *v >= first {
                return Err(Refusal::new(
                    Reason::Reference,
                    format!(
                        "pins {pinned} version {v}; the signer signed version {} last",
                        last.version
                    ),
                ));
            }
        }
        Ok(())
    }

    fn payload_path(&self, sha256: &str) -> PathBuf {
        self.cfg
            .state_dir
            .join("payloads")
            .join(format!("{sha256}.json"))
    }

    #[allow(clippy::too_many_arguments, reason = "one private call site")]
    fn entry(
        &self,
        req: &SignedRequest,
        client: String,
        checked: &Checked,
        payload: &[u8],
        sha256: &str,
        key_id: String,
        now: i64,
    ) -> Result<Entry> {
        let r = &req.request;
        let mut entry = Entry {
            index: self.journal.size(),
            time: now,
            client,
            client_key: r.client.clone(),
            role: r.role.clone(),
            kind: r.kind,
            version: r.version,
            expires: r.expires,
            sha256: sha256.to_string(),
            key_id,
            nonce: r.nonce.clone(),
            request_time: r.time,
            issued: checked.issued,
            targets: Vec::new(),
            targets_sha256: None,
            targets_count: None,
        };
        if let Some(targets) = &checked.targets {
            let old = self
                .state
                .last(&r.role)
                .and_then(|l| std::fs::read(self.payload_path(&l.sha256)).ok())
                .and_then(|p| policy::targets_of(&p));
            let changes = policy::diff(old.as_ref(), targets);
            // Kept for the next change list, before the entry names it.
            write_atomic(&self.payload_path(sha256), payload, Some(0o600))?;
            entry.targets = changes;
            let size = serde_json::to_vec(&entry)
                .map_err(|e| Error::Log(e.to_string()))?
                .len();
            if size > crate::tlog::MAX_ENTRY - 1024 {
                let list =
                    serde_json::to_vec(&entry.targets).map_err(|e| Error::Log(e.to_string()))?;
                entry.targets_count = Some(entry.targets.len() as u64);
                entry.targets_sha256 = Some(self.journal.write_changes(&list)?);
                entry.targets = Vec::new();
            }
        }
        Ok(entry)
    }
}

/// A signature in the fixed 64-byte form of the DNS announcement: ed25519's
/// own, or an ECDSA P-256 DER signature as `r || s`.
fn fixed_signature(key: &PublicKey, sig: &[u8]) -> Option<[u8; 64]> {
    match key.algorithm() {
        Algorithm::EcdsaP256 => p256::ecdsa::Signature::from_der(sig)
            .ok()
            .map(|s| s.to_bytes().into()),
        _ => sig.try_into().ok(),
    }
}
