//! The key-holding process and its protocol.
//!
//! The front process (socket, request parsing, authentication, policy, log)
//! never opens the key store. It starts `onionpkg-signer key-holder` (the
//! same binary, a hidden subcommand) and talks to it over the child's stdin
//! and stdout with fixed-size, length-prefixed frames:
//!
//! ```text
//! request:  op u8 | key role u8 | 0u8 0u8 | length u32 BE | message (length bytes)
//! response: status u8 | key kind u8 | length u16 BE | body (length bytes)
//! ```
//!
//! `op` 1 asks for a role's public key (length 0; the body is the raw key,
//! after the store's checks: 32 bytes for ed25519, the 65-byte
//! uncompressed point for ECDSA P-256), `op` 2 signs the message with the
//! role's key (the body is the signature in TUF's encoding: 64 bytes, or
//! DER). The key kind is the role key's ([`KeyKind::code`]: 1 ed25519, 2
//! ECDSA P-256). Status 0 is success; 1 an error, whose body is a short
//! message. Messages are at most [`MAX_MESSAGE`] bytes,
//! bodies at most [`MAX_BODY`].
//!
//! # Invariants
//! - The key holder parses nothing but these headers: it loads the module,
//!   logs in, checks keys and signs the bytes it is given. What may be
//!   signed is decided before, in the front process.
//! - A malformed request ends the key holder (it exits); the front starts a
//!   new one for the next request.

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

use crate::backend::KeyStore;
use crate::keys::{KeyKind, KeyRole, RoleKey};
use crate::{Error, Result};

/// The largest message the key holder signs: a targets metadata file's cap
/// with room for the canonical form.
pub const MAX_MESSAGE: u32 = 16 * 1024 * 1024;
/// The largest response body.
pub const MAX_BODY: u16 = 1024;

const OP_KEY: u8 = 1;
const OP_SIGN: u8 = 2;

/// Runs the key holder on stdin and stdout until the front closes stdin.
/// `store` is the opened key store, or why it could not be opened (then
/// every request is answered with that error, so the front can report it).
pub fn serve(store: Result<KeyStore>, input: impl Read, output: impl Write) -> Result<()> {
    let mut input = std::io::BufReader::new(input);
    let mut output = std::io::BufWriter::new(output);
    let mut store = store.map_err(|e| e.to_string());
    loop {
        let mut header = [0u8; 8];
        match input.read_exact(&mut header) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
            Err(e) => return Err(Error::Holder(format!("reading a request: {e}"))),
        }
        let [op, role, 0, 0, l0, l1, l2, l3] = header else {
            return Err(Error::Holder("malformed request header".into()));
        };
        let len = u32::from_be_bytes([l0, l1, l2, l3]);
        if len > MAX_MESSAGE || (op == OP_KEY && len != 0) {
            return Err(Error::Holder(format!("request of {len} bytes refused")));
        }
        let mut msg = vec![0u8; len as usize];
        input
            .read_exact(&mut msg)
            .map_err(|e| Error::Holder(format!("reading a request: {e}")))?;
        let role = KeyRole::from_code(role)
            .ok_or_else(|| Error::Holder(format!("unknown key role code {role}")))?;
        let answer = match (&mut store, op) {
            (Err(why), _) => Err(why.clone()),
            (Ok(s), OP_KEY) => s
                .key(role)
                .and_then(|k| Ok((kind_of(&k)?, k.public.raw_bytes().to_vec())))
                .map_err(|e| e.to_string()),
            (Ok(s), OP_SIGN) => s
                .key(role)
                .and_then(|k| Ok((kind_of(&k)?, s.sign(role, &msg)?)))
                .map_err(|e| e.to_string()),
            (Ok(_), other) => return Err(Error::Holder(format!("unknown operation {other}"))),
        };
        let (status, kind, body) = match answer {
            Ok((kind, body)) => (0u8, kind.code(), body),
            Err(message) => {
                let mut m = message.into_bytes();
                m.truncate(MAX_BODY as usize);
                (1u8, 0u8, m)
            }
        };
        let len = u16::try_from(body.len())
            .ok()
            .filter(|l| *l <= MAX_BODY)
            .ok_or_else(|| Error::Holder("response too large".into()))?;
        let mut frame = vec![status, kind];
        frame.extend_from_slice(&len.to_be_bytes());
        frame.extend_from_slice(&body);
        output
            .write_all(&frame)
            .and_then(|()| output.flush())
            .map_err(|e| Error::Holder(format!("writing a response: {e}")))?;
    }
}

/// The protocol's kind of a role's key.
fn kind_of(key: &RoleKey) -> Result<KeyKind> {
    KeyKind::of(&key.public).ok_or_else(|| Error::KeyUnusable {
        label: key.role.label(),
        reason: format!(
            "a {} key, which the signer does not hold",
            key.public.algorithm()
        ),
    })
}

/// The front's handle on a running key holder.
#[derive(Debug)]
pub struct Holder {
    child: Child,
    stdin: ChildStdin,
    stdout: ChildStdout,
}

impl Holder {
    /// Starts `exe key-holder` with the signer's configuration file.
    pub fn spawn(exe: &Path, config: &Path) -> Result<Self> {
        let mut child = Command::new(exe)
            .arg("--config")
            .arg(config)
            .arg("key-holder")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| Error::Holder(format!("starting {}: {e}", exe.display())))?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            let _ = child.kill();
            return Err(Error::Holder("no pipes to the key holder".into()));
        };
        Ok(Self {
            child,
            stdin,
            stdout,
        })
    }

    /// The process id of the key holder.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    fn call(&mut self, op: u8, role: KeyRole, msg: &[u8]) -> Result<(KeyKind, Vec<u8>)> {
        let len = u32::try_from(msg.len())
            .ok()
            .filter(|l| *l <= MAX_MESSAGE)
            .ok_or_else(|| Error::Holder(format!("message of {} bytes is too large", msg.len())))?;
        let mut frame = vec![op, role.code(), 0, 0];
        frame.extend_from_slice(&len.to_be_bytes());
        let broken = |e: std::io::Error| Error::Holder(format!("the key holder is gone: {e}"));
        self.stdin.write_all(&frame).map_err(broken)?;
        self.stdin.write_all(msg).map_err(broken)?;
        self.stdin.flush().map_err(broken)?;
        let mut header = [0u8; 4];
        self.stdout.read_exact(&mut header).map_err(broken)?;
        let [status, kind, l0, l1] = header;
        let len = u16::from_be_bytes([l0, l1]);
        if len > MAX_BODY {
            return Err(Error::Holder("oversized response".into()));
        }
        let mut body = vec![0u8; usize::from(len)];
        self.stdout.read_exact(&mut body).map_err(broken)?;
        if status != 0 {
            return Err(Error::Holder(String::from_utf8_lossy(&body).into_owned()));
        }
        let kind = KeyKind::from_code(kind)
            .ok_or_else(|| Error::Holder(format!("unknown key kind {kind}")))?;
        Ok((kind, body))
    }

    /// `role`'s public key; the key holder checks the key first.
    pub fn key(&mut self, role: KeyRole) -> Result<RoleKey> {
        let (kind, raw) = self.call(OP_KEY, role, &[])?;
        let public = kind
            .public_key(&raw)
            .map_err(|e| Error::Holder(e.to_string()))?;
        Ok(RoleKey { role, public })
    }

    /// Signs `msg` with `role`'s key; the signature is in the TUF encoding
    /// of the key's kind.
    pub fn sign(&mut self, role: KeyRole, msg: &[u8]) -> Result<Vec<u8>> {
        self.call(OP_SIGN, role, msg).map(|(_, sig)| sig)
    }
}

impl Drop for Holder {
    fn drop(&mut self) {
        // Closing stdin ends the key holder; reap it so no zombie is left.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
