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
//! - Every step is bounded by the timeout.
//! - The TSIG secret never appears in logs or errors.

use std::net::SocketAddr;
use std::time::Duration;

use futures::StreamExt as _;
use hickory_net::client::Client;
use hickory_net::runtime::TokioRuntimeProvider;
use hickory_net::tcp::TcpClientStream;
use hickory_net::{DnsHandle as _, DnsMultiplexer, NetError};
use hickory_proto::op::{DnsRequest, ResponseCode, UpdateMessage as _, update_message};
use hickory_proto::rr::rdata::TXT;
use hickory_proto::rr::{Name, RData, Record, RecordType};

use crate::err::{Error, Result};
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

/// A DNS name from user input, fully qualified.
fn fqdn(what: &str, name: &str) -> Result<Name> {
    let text = if name.ends_with('.') {
        name.to_string()
    } else {
        format!("{name}.")
    };
    Name::from_ascii(&text).map_err(|e| Error::arg(what, format!("{name:?}: {e}")))
}

/// Builds the UPDATE message: delete the TXT RRset at the name, add the
/// record.
pub fn update_message(req: &PushRequest<'_>) -> Result<hickory_proto::op::Message> {
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
    let provider = TokioRuntimeProvider::new();
    let (connect, handle) = TcpClientStream::new(req.server, None, Some(req.timeout), provider);
    let stream = tokio::time::timeout(req.timeout, connect)
        .await
        .map_err(|_| net("update (connect)", &"timed out"))?
        .map_err(|e| net("update (connect)", &e))?;
    let mux = DnsMultiplexer::new(stream, handle)
        .with_timeout(req.timeout)
        .with_signer(signer);
    let (client, background) = Client::<TokioRuntimeProvider>::from_sender(mux);
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
            // The multiplexer verifies the response's TSIG. Knot answers a
            // wrong secret (BADSIG) or an unknown key name (BADKEY) with an
            // empty MAC, which hickory reports as "…support truncated HMACs
            // with TSIG".
            let text = e.to_string();
            return Err(refused(if text.contains("truncated HMAC") {
                "the server did not accept our TSIG key (BADSIG or BADKEY: its reply \
                 carries an empty MAC); check the key name and secret"
                    .to_string()
            } else {
                format!(
                    "the reply's TSIG signature does not verify ({text}): a wrong key, a \
                     clock more than {TSIG_FUDGE} s off (BADTIME), or a forged reply"
                )
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
