//! Targets over HTTP: a response the fetcher reads from a mirror, and a
//! request a visitor sends to the mirror.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, StatusCode, header};
use http_body_util::BodyExt;
use onionpkg_mirror::http::{RangeReq, RepoService, parse_range, resolve_request_path};
use onionpkg_net::http::{HttpUrl, Limits, get, get_streaming};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::{first_line, fixture, runtime, scratch};

/// Serves `raw` as the whole answer on one end of an in-memory stream and
/// returns the other end, with the future that serves it.
fn peer(raw: Bytes) -> (tokio::io::DuplexStream, impl Future<Output = ()>) {
    let (client, mut server) = tokio::io::duplex(16 * 1024);
    let serve = async move {
        let mut req = [0u8; 1024];
        let _ = server.read(&mut req).await;
        let _ = server.write_all(&raw).await;
        let _ = server.shutdown().await;
    };
    (client, serve)
}

/// The bytes a mirror answers a GET with (status line, headers, body), read
/// whole under a body cap, then streamed from an offset as a resumed target
/// download reads it.
pub fn http_response(data: &[u8]) {
    let raw = Bytes::copy_from_slice(data);
    let Ok(url) = HttpUrl::parse("http://mirror.example/targets/pkg/x.tar") else {
        panic!("a fixed url does not parse");
    };
    let limits = Limits {
        max_body: 4096,
        timeout: Duration::from_secs(5),
    };
    runtime().block_on(async {
        let (stream, serve) = peer(raw.clone());
        let (got, ()) = tokio::join!(get(stream, &url, &limits), serve);
        if let Ok(r) = got {
            assert!(r.body.len() as u64 <= limits.max_body);
        }

        let (stream, serve) = peer(raw);
        let read = async {
            let Ok(mut body) = get_streaming(stream, &url, Some(7), limits.timeout).await else {
                return;
            };
            let _ = body.content_length();
            let mut total = 0usize;
            while let Ok(Ok(Some(chunk))) = tokio::time::timeout(limits.timeout, body.chunk()).await
            {
                assert!(!chunk.is_empty());
                total += chunk.len();
                if total > 1 << 20 {
                    break;
                }
            }
        };
        tokio::join!(read, serve);
    });
}

/// The served tree: a small and a large target, the metadata, a link to a
/// file outside the served directories and one inside.
struct Tree {
    root: PathBuf,
    service: RepoService,
}

fn tree() -> &'static Tree {
    static T: OnceLock<Tree> = OnceLock::new();
    T.get_or_init(|| {
        let root = scratch().join("tree");
        let write = |rel: &str, bytes: &[u8]| {
            let path = root.join(rel);
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("{e}"));
            }
            std::fs::write(&path, bytes).unwrap_or_else(|e| panic!("{e}"));
        };
        let f = fixture();
        for (name, text) in &f.metadata {
            write(&format!("metadata/{name}"), text.as_bytes());
        }
        for (path, hex) in &f.targets {
            write(
                &format!("targets/{path}"),
                &hex::decode(hex).unwrap_or_default(),
            );
        }
        // Larger than the mirror's in-memory chunk: streamed.
        let big: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        write("targets/pkg/big.bin", &big);
        write("secret.txt", b"not served");
        let link = |target: &str, at: &str| {
            std::os::unix::fs::symlink(target, root.join(at)).unwrap_or_else(|e| panic!("{e}"));
        };
        link("../../secret.txt", "targets/pkg/out.txt");
        link("big.bin", "targets/pkg/in.bin");
        let service = RepoService::new(&root, Arc::default(), false)
            .unwrap_or_else(|e| panic!("the mirror service: {e}"));
        let root = service.root().to_path_buf();
        Tree { root, service }
    })
}

/// A request to the mirror: `METHOD PATH` on the first line, then header
/// lines `Name: value`. Answered by the mirror's service over a real tree;
/// the path and Range parsers are also checked on their own.
pub fn mirror_request(data: &[u8]) {
    let (line, rest) = first_line(data);
    let Ok(line) = std::str::from_utf8(line) else {
        return;
    };
    let (method, target) = line.split_once(' ').unwrap_or(("GET", line));
    let Ok(method) = Method::from_bytes(method.as_bytes()) else {
        return;
    };
    let mut req = Request::builder().method(method.clone()).uri(target);
    let mut range = None;
    for h in rest.split(|&b| b == b'\n') {
        let Some(colon) = h.iter().position(|&b| b == b':') else {
            continue;
        };
        let (name, value) = (&h[..colon], h[colon + 1..].trim_ascii());
        if name.eq_ignore_ascii_case(b"range") {
            range = std::str::from_utf8(value).ok().map(str::to_owned);
        }
        req = req.header(name, value);
    }
    let Ok(req) = req.body(()) else {
        return;
    };

    // The parsers on their own: nothing escapes, ranges stay in the file.
    let path = req.uri().path();
    let resolved = resolve_request_path(path);
    if let Ok(segments) = &resolved {
        assert!(segments.len() >= 2);
        for s in segments {
            assert!(!s.is_empty() && s != "." && s != "..", "{path:?}");
            assert!(!s.contains('/') && !s.contains('\\') && !s.contains('\0'));
        }
    }
    if let Some(value) = &range {
        for len in [0u64, 1, 17, 200_000, u64::MAX] {
            if let RangeReq::One(start, end) = parse_range(value, len) {
                assert!(
                    start <= end && end < len,
                    "{value:?} of {len}: {start}-{end}"
                );
            }
        }
    }

    let t = tree();
    let (status, headers, body) = runtime().block_on(async {
        let resp = t.service.respond(&req).await;
        let (parts, body) = resp.into_parts();
        let body = body.collect().await.map(|b| b.to_bytes());
        (parts.status, parts.headers, body)
    });
    let Ok(body) = body else {
        return;
    };
    if status.is_success() {
        // Only a path inside the served directories is ever served.
        let Ok(segments) = resolved else {
            panic!("{status} for a refused path {path:?}");
        };
        let mut file = t.root.clone();
        file.extend(&segments);
        let real = std::fs::canonicalize(&file).unwrap_or_else(|e| panic!("{e}"));
        assert!(real.starts_with(&t.root), "served from outside: {real:?}");
        let content = std::fs::read(&real).unwrap_or_else(|e| panic!("{e}"));
        let length: Option<usize> = headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok());
        if method == Method::GET {
            assert_eq!(length, Some(body.len()));
            if status == StatusCode::OK {
                assert_eq!(body[..], content[..]);
            } else {
                assert_eq!(status, StatusCode::PARTIAL_CONTENT);
                let cr = headers
                    .get(header::CONTENT_RANGE)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default();
                let (span, total) = cr
                    .strip_prefix("bytes ")
                    .and_then(|r| r.split_once('/'))
                    .unwrap_or_else(|| panic!("content-range {cr:?}"));
                assert_eq!(total.parse::<usize>().ok(), Some(content.len()));
                let (a, b) = span.split_once('-').unwrap_or_else(|| panic!("{cr:?}"));
                let (a, b): (usize, usize) = (
                    a.parse().unwrap_or_else(|e| panic!("{e}")),
                    b.parse().unwrap_or_else(|e| panic!("{e}")),
                );
                assert_eq!(body[..], content[a..=b]);
            }
        }
    }
    // The minimal static service takes paths from the same requests.
    let files = onionpkg_mirror::files::StaticFiles::new(
        [("/index.txt".to_owned(), Bytes::from_static(b"index"))].into(),
    );
    let _ = files.respond(&method, path);
}
