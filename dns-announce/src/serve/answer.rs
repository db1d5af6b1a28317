//! One query in, at most one response out: the zone's answer from hickory's
//! catalog, ANY answered as RFC 8482 suggests, and over UDP every response
//! held to a bound.
//!
//! # Invariants
//! - A UDP response is never longer than `udp_amplification` times its
//!   query, nor than the payload the query allows (512 bytes without EDNS):
//!   an answer that does not fit goes out empty with TC=1 (the header, the
//!   question and an OPT record, never more than the query itself), and the
//!   client asks again over TCP, where the source cannot be spoofed.
//! - A conventional ANY answer is never given: at a name that exists, ANY
//!   gets one synthesized `HINFO "RFC8482" ""` record (RFC 8482, section
//!   4.2), over UDP and TCP alike.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use hickory_net::NetError;
use hickory_net::runtime::TokioTime;
use hickory_net::xfer::Protocol;
use hickory_proto::op::{Edns, Message, MessageType, OpCode};
use hickory_proto::rr::rdata::HINFO;
use hickory_proto::rr::{RData, Record, RecordType};
use hickory_proto::serialize::binary::BinEncoder;
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::{Catalog, MessageResponse};

use super::zone::AnnounceZone;

/// The EDNS payload size announced in responses built here (the DNS flag
/// day 2020 value).
const EDNS_PAYLOAD: u16 = 1232;

/// Answers queries for one zone.
pub(crate) struct Responder {
    catalog: Catalog,
    zone: AnnounceZone,
    amplification: usize,
}

impl Responder {
    /// A responder for `zone`, holding UDP answers to `amplification` times
    /// their query.
    pub(crate) fn new(zone: &AnnounceZone, amplification: u32) -> Self {
        Self {
            catalog: zone.catalog(),
            zone: zone.clone(),
            amplification: usize::try_from(amplification.max(1)).unwrap_or(1),
        }
    }

    /// The most a response to `request` (of `query_len` bytes) may take.
    fn bound(&self, request: &Request, query_len: usize) -> usize {
        match request.protocol() {
            Protocol::Udp => {
                usize::from(request.max_payload()).min(query_len.saturating_mul(self.amplification))
            }
            _ => usize::from(u16::MAX),
        }
    }

    /// The response to `request`, `query_len` bytes on the wire; `None`
    /// when nothing is to be sent.
    pub(crate) async fn respond(&self, request: &Request, query_len: usize) -> Option<Vec<u8>> {
        let bound = self.bound(request, query_len);
        let (bytes, truncated) = match self.any_answer(request) {
            Some(bytes) => (bytes, false),
            None => {
                let capture = Capture {
                    max: u16::try_from(bound).unwrap_or(u16::MAX),
                    out: Arc::new(Mutex::new(None)),
                };
                self.catalog
                    .handle_request::<_, TokioTime>(request, capture.clone())
                    .await;
                let taken = capture.out.lock().ok()?.take();
                taken?
            }
        };
        if truncated || bytes.len() > bound {
            // hickory truncates record by record; an empty TC answer is
            // what a client expects and can never exceed the query.
            return self.truncated(request, query_len);
        }
        Some(bytes)
    }

    /// An empty answer with TC=1: the header, the question, and an OPT
    /// record when the query had one. `None` if even that exceeds the bound.
    pub(crate) fn truncated(&self, request: &Request, query_len: usize) -> Option<Vec<u8>> {
        let mut msg = Message::response(request.metadata.id, request.metadata.op_code);
        msg.metadata.truncation = true;
        msg.metadata.recursion_desired = request.metadata.recursion_desired;
        msg.metadata.checking_disabled = request.metadata.checking_disabled;
        for q in request.queries.queries() {
            msg.add_query(q.original().clone());
        }
        if request.edns.is_some() {
            let mut edns = Edns::new();
            edns.set_max_payload(EDNS_PAYLOAD);
            msg.set_edns(edns);
        }
        let bytes = msg.to_vec().ok()?;
        (bytes.len() <= self.bound(request, query_len)).then_some(bytes)
    }

    /// RFC 8482's answer to ANY at a name that exists in the zone; `None`
    /// for any other query (the catalog answers it: NXDOMAIN or REFUSED for
    /// ANY elsewhere).
    fn any_answer(&self, request: &Request) -> Option<Vec<u8>> {
        if request.metadata.op_code != OpCode::Query {
            return None;
        }
        let [query] = request.queries.queries() else {
            return None;
        };
        if query.query_type() != RecordType::ANY || !self.zone.has_name(query.name()) {
            return None;
        }
        let mut msg = Message::response(request.metadata.id, OpCode::Query);
        msg.metadata.message_type = MessageType::Response;
        msg.metadata.authoritative = true;
        msg.metadata.recursion_desired = request.metadata.recursion_desired;
        msg.add_query(query.original().clone());
        msg.add_answer(Record::from_rdata(
            query.original().name().clone(),
            self.zone.ttl(),
            RData::HINFO(HINFO::new("RFC8482".into(), String::new())),
        ));
        if request.edns.is_some() {
            let mut edns = Edns::new();
            edns.set_max_payload(EDNS_PAYLOAD);
            msg.set_edns(edns);
        }
        msg.to_vec().ok()
    }
}

/// An encoded response, and whether hickory truncated it.
type Encoded = (Vec<u8>, bool);

/// Keeps the encoded response (and whether hickory truncated it) instead of
/// sending it, so the caller can hold it to the bound first.
#[derive(Clone)]
struct Capture {
    max: u16,
    out: Arc<Mutex<Option<Encoded>>>,
}

#[async_trait::async_trait]
impl ResponseHandler for Capture {
    async fn send_response<'a>(
        &mut self,
        response: MessageResponse<
            '_,
            'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
        >,
    ) -> Result<ResponseInfo, NetError> {
        let mut bytes = Vec::with_capacity(512);
        let mut encoder = BinEncoder::new(&mut bytes);
        encoder.set_max_size(self.max);
        let info = response.destructive_emit(&mut encoder)?;
        let truncated = info.truncation;
        if let Ok(mut out) = self.out.lock() {
            *out = Some((bytes, truncated));
        }
        Ok(info)
    }
}

/// A query parsed, or `None` for what gets no response at all: not a
/// query (a response reflected at us), or not parseable.
pub(crate) fn parse(raw: &[u8], src: SocketAddr, protocol: Protocol) -> Option<Request> {
    let request = Request::from_bytes(raw.to_vec(), src, protocol).ok()?;
    (request.metadata.message_type == MessageType::Query).then_some(request)
}
