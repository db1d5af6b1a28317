//! Publishing the record on a primary server with one RFC 2136 UPDATE.
//!
//! The message deletes the TXT RRset at the owner name and adds the new
//! record, so the change is atomic on the server: no moment without a record
//! and none with two. It is signed with TSIG (RFC 8945) and sent over TCP.
//!
//! # Invariants
//! - The server's response must carry a valid TSIG signature by the same key
//!   (checked by hickory's multiplexer) and the response code NOERROR;
//!   anything else is an error, and a refusal (NOTAUTH, REFUSED, BADSIG,
//!   BADKEY, BADTIME, or an unsigned or badly signed reply) is
//!   [`Error::UpdateRefused`].
//! - A reply that fails TSIG verification is never trusted; its response
//!   code and TSIG error (read from a copy of the received bytes) only make
//!   the error message precise (BADSIG, BADKEY, BADTIME, NOTAUTH).
//! - Every step is bounded by the timeout.
//! - The TSIG secret never appears in logs or errors.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use futures::StreamExt as _;
use hickory_net::client::Client;
use hickory_net::tcp::TcpClientStream;
use hickory_net::{DnsHandle as _, DnsMultiplexer, NetError};
use hickory_proto::op::{DnsRequest, Message, ResponseCode, UpdateMessage as _, update_message};
use hickory_proto::rr::rdata::TXT;
use hickory_proto::rr::rdata::tsig::TsigError;
use hickory_proto::rr::{Name, RData, Record, RecordType};

use crate::err::{Error, Result};
use crate::transport::StreamProvider;
use crate::tsig::TsigKey;

/// The allowed clock difference to the server for TSIG, in seconds (the
/// RFC 8945 recommendation).
pub const TSIG_FUDGE: u16 = 300;

/// What to push where.
#[derive(Debug, Clone, Copy)]
pub struct PushRequest<'a> {
    /// The primary server.
    pub server: SocketAddr,
    /// The zone (the update's zone section).
    pub zone: &'a str,
    /// The owner name of the TXT record, within `zone`.
    pub name: &'a str,
    /// The TTL of the record.
    pub ttl: u32,
    /// The TXT value (split into strings of at most 255 bytes here).
    pub record: &'a str,
    /// The TSIG key.
    pub key: &'a TsigKey,
    /// Bound of the connect and of the exchange each.
    pub timeout: Duration,
}

/// The server's answer to an accepted update.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushReport {
    /// The response code (NOERROR).
    pub rcode: String,
    /// The size of the response in bytes.
    pub response_bytes: usize,
}

/// A DNS name from user input, fully qualified; `what` names the input in
/// the error.
pub(crate) fn fqdn(what: &str, name: &str) -> Result<Name> {
    let text = if name.ends_with('.') {
        name.to_string()
    } else {
        format!("{name}.")
    };
    Name::from_ascii(&text).map_err(|e| Error::arg(what, format!("{name:?}: {e}")))
}

/// Builds the UPDATE message: delete the TXT RRset at the name, add the
/// record.
pub fn update_message(req: &PushRequest<'_>) -> Result<Message> {
    let zone = fqdn("--zone", req.zone)?;
    let name = fqdn("--name", req.name)?;
    if !zone.zone_of(&name) {
        return Err(Error::arg(
            "--name",
            format!("{name} is not inside the zone {zone}"),
        ));
    }
    let strings: Vec<String> = onionpkg_trust::announce::chunks(req.record)
        .into_iter()
        .map(str::to_string)
        .collect();
    if strings.is_empty() {
        return Err(Error::arg("record", "empty"));
    }
    let mut msg = update_message::delete_rrset(
        Record::update0(name.clone(), 0, RecordType::TXT),
        zone,
        true,
    );
    msg.add_update(Record::from_rdata(
        name,
        req.ttl,
        RData::TXT(TXT::new(strings)),
    ));
    Ok(msg)
}

/// Sends the update and checks the response.
pub async fn push(req: &PushRequest<'_>) -> Result<PushReport> {
    let msg = update_message(req)?;
    let signer = req.key.signer(TSIG_FUDGE)?;
    let server = req.server.to_string();
    let net = |what: &'static str, e: &dyn std::fmt::Display| Error::Network {
        what,
        server: server.clone(),
        reason: e.to_string(),
    };
    // The connection goes through a tap that keeps the bytes received, so
    // that a reply hickory refuses (unsigned, or signed with an empty MAC)
    // can still be read for its response code and TSIG error.
    let received = Arc::new(Mutex::new(Vec::new()));
    let tap = Arc::clone(&received);
    let provider = StreamProvider::new(move |addr| {
        let tap = Arc::clone(&tap);
        async move {
            let inner = tokio::net::TcpStream::connect(addr).await?;
            inner.set_nodelay(true)?;
            Ok(Tap { inner, read: tap })
        }
    });
    let (connect, handle) = TcpClientStream::new(req.server, None, Some(req.timeout), provider);
    let stream = tokio::time::timeout(req.timeout, connect)
        .await
        .map_err(|_| net("update (connect)", &"timed out"))?
        .map_err(|e| net("update (connect)", &e))?;
    let mux = DnsMultiplexer::new(stream, handle)
        .with_timeout(req.timeout)
        .with_signer(signer);
    let (client, background) = Client::<StreamProvider<Tap>>::from_sender(mux);
    let bg = tokio::spawn(background);
    let sent = tokio::time::timeout(req.timeout, client.send(DnsRequest::from(msg)).next()).await;
    bg.abort();
    let refused = |reason: String| Error::UpdateRefused {
        server: server.clone(),
        zone: req.zone.to_string(),
        reason,
    };
    let response = match sent {
        Err(_) => return Err(net("update", &"timed out")),
        Ok(None) => return Err(net("update", &"the connection closed without a response")),
        Ok(Some(Err(NetError::Proto(e)))) => {
            // The multiplexer verifies the reply's TSIG. Servers answer a
            // refused key (and Knot any refused update) unsigned or with an
            // empty MAC, which hickory reports as "…support truncated HMACs
            // with TSIG".
            let bytes = received.lock().map(|b| b.clone()).unwrap_or_default();
            return Err(refused(match unsigned_refusal(&bytes, req.key.name()) {
                Some(reason) => reason,
                None => format!(
                    "the reply's TSIG signature does not verify ({e}): a wrong key, a \
                     clock more than {TSIG_FUDGE} s off, or a forged reply"
                ),
            }));
        }
        Ok(Some(Err(e))) => return Err(net("update", &e)),
        Ok(Some(Ok(response))) => response,
    };
    let rcode = response.metadata.response_code;
    let name = rcode_name(rcode);
    match rcode {
        ResponseCode::NoError => Ok(PushReport {
            rcode: name,
            response_bytes: response.as_buffer().len(),
        }),
        ResponseCode::NotAuth
        | ResponseCode::Refused
        | ResponseCode::BADSIG
        | ResponseCode::BADKEY
        | ResponseCode::BADTIME => Err(refused(format!(
            "{name}: the key is not allowed to update this zone, or the server is not \
             its primary"
        ))),
        _ => Err(Error::UpdateFailed {
            server,
            zone: req.zone.to_string(),
            rcode: name,
        }),
    }
}

/// What a reply that failed TSIG verification says: its response code and
/// TSIG error, read from the first DNS-over-TCP message in `bytes`.
fn unsigned_refusal(bytes: &[u8], key: &str) -> Option<String> {
    let len = usize::from(u16::from_be_bytes([*bytes.first()?, *bytes.get(1)?]));
    let msg = Message::from_vec(bytes.get(2..2 + len)?).ok()?;
    let rcode = rcode_name(msg.metadata.response_code);
    let tsig_error = msg.signature().and_then(|tsig| tsig.data.error);
    Some(match tsig_error {
        Some(TsigError::BadSig) => {
            format!("{rcode}/BADSIG: the server does not accept our secret for the key {key}")
        }
        Some(TsigError::BadKey) => format!(
            "{rcode}/BADKEY: the server does not know the key {key}, or does not allow \
             it to update this name (Knot answers so for a name outside the key's ACL)"
        ),
        Some(TsigError::BadTime) => format!(
            "{rcode}/BADTIME: our clock and the server's differ by more than {TSIG_FUDGE} s"
        ),
        Some(other) => format!("{rcode}, TSIG error {other:?}"),
        None => format!(
            "{rcode} (in an unsigned reply): the key {key} is not allowed to update this \
             name (check the server's ACL or update-policy), or this server is not the \
             zone's primary"
        ),
    })
}

/// A TCP stream that keeps a copy of the first bytes it receives.
struct Tap {
    inner: tokio::net::TcpStream,
    read: Arc<Mutex<Vec<u8>>>,
}

/// How many received bytes the tap keeps: one largest DNS message.
const TAP_LIMIT: usize = 2 + 65_535;

impl tokio::io::AsyncRead for Tap {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if let Ok(mut kept) = self.read.lock() {
            let room = TAP_LIMIT.saturating_sub(kept.len());
            let new = &buf.filled()[before..];
            kept.extend_from_slice(&new[..new.len().min(room)]);
        }
        polled
    }
}

impl tokio::io::AsyncWrite for Tap {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// The conventional upper-case name of a response code.
fn rcode_name(rcode: ResponseCode) -> String {
    match rcode {
        ResponseCode::NoError => "NOERROR".into(),
        ResponseCode::FormErr => "FORMERR".into(),
        ResponseCode::ServFail => "SERVFAIL".into(),
        ResponseCode::NXDomain => "NXDOMAIN".into(),
        ResponseCode::NotImp => "NOTIMP".into(),
        ResponseCode::Refused => "REFUSED".into(),
        ResponseCode::YXDomain => "YXDOMAIN".into(),
        ResponseCode::YXRRSet => "YXRRSET".into(),
        ResponseCode::NXRRSet => "NXRRSET".into(),
        ResponseCode::NotAuth => "NOTAUTH".into(),
        ResponseCode::NotZone => "NOTZONE".into(),
        other => format!("{other:?}").to_ascii_uppercase(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> TsigKey {
        TsigKey::parse("hmac-sha256:k:4wHudla5+kKDUm76CoXuk0KGvMLEMaiNHteFeHCLTfg=").unwrap()
    }

    #[test]
    fn builds_one_atomic_replace() {
        let key = key();
        let record = "v=1;".to_string() + &"x".repeat(300);
        let req = PushRequest {
            server: "127.0.0.1:53".parse().unwrap(),
            zone: "example.org",
            name: "_update.example.org",
            ttl: 60,
            record: &record,
            key: &key,
            timeout: Duration::from_secs(1),
        };
        let msg = update_message(&req).unwrap();
        let updates = &msg.authorities;
        assert_eq!(updates.len(), 2, "delete + add in one message");
        assert_eq!(updates[0].dns_class, hickory_proto::rr::DNSClass::ANY);
        match &updates[1].data {
            RData::TXT(txt) => {
                let lens: Vec<usize> = txt.txt_data.iter().map(|s| s.len()).collect();
                assert_eq!(lens, vec![255, 49]);
            }
            other => panic!("not TXT: {other:?}"),
        }
    }

    #[test]
    fn reads_the_code_of_an_unsigned_refusal() {
        let mut reply = Message::query();
        reply.metadata.message_type = hickory_proto::op::MessageType::Response;
        reply.metadata.response_code = ResponseCode::NotAuth;
        let body = reply.to_vec().unwrap();
        let mut framed = u16::try_from(body.len()).unwrap().to_be_bytes().to_vec();
        framed.extend_from_slice(&body);
        let reason = unsigned_refusal(&framed, "k").unwrap();
        assert!(
            reason.starts_with("NOTAUTH (in an unsigned reply)"),
            "{reason}"
        );
        assert!(unsigned_refusal(&framed[..5], "k").is_none());
        assert!(unsigned_refusal(&[], "k").is_none());
    }

    #[test]
    fn refuses_a_name_outside_the_zone() {
        let key = key();
        let req = PushRequest {
            server: "127.0.0.1:53".parse().unwrap(),
            zone: "example.org",
            name: "_update.example.net",
            ttl: 60,
            record: "v=1;",
            key: &key,
            timeout: Duration::from_secs(1),
        };
        let err = update_message(&req).unwrap_err();
        assert!(err.to_string().contains("not inside the zone"), "{err}");
    }
}
