//! A minimal static-file HTTP service: exact paths from memory, GET and HEAD
//! only.
//!
//! Good enough for tests and demos of the transports; the full mirror
//! behaviour (repository layout, ranges, caching headers) is built on top
//! later.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::{Ready, ready};
use std::sync::Arc;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::Full;

/// Serves a fixed map of paths to contents.
#[derive(Debug, Clone, Default)]
pub struct StaticFiles {
    files: Arc<HashMap<String, Bytes>>,
}

impl StaticFiles {
    /// Serves `files`, keyed by absolute path (`/index.txt`).
    pub fn new(files: HashMap<String, Bytes>) -> Self {
        Self {
            files: Arc::new(files),
        }
    }

    /// The response to `method` on `path`.
    pub fn respond(&self, method: &Method, path: &str) -> Response<Full<Bytes>> {
        let status_only = |status: StatusCode| {
            let mut r = Response::new(Full::new(Bytes::new()));
            *r.status_mut() = status;
            r
        };
        if method != Method::GET && method != Method::HEAD {
            return status_only(StatusCode::METHOD_NOT_ALLOWED);
        }
        let Some(body) = self.files.get(path) else {
            return status_only(StatusCode::NOT_FOUND);
        };
        let len = body.len();
        let body = if method == Method::HEAD {
            Bytes::new()
        } else {
            body.clone()
        };
        let mut r = Response::new(Full::new(body));
        r.headers_mut()
            .insert(header::CONTENT_LENGTH, header::HeaderValue::from(len));
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            header::HeaderValue::from_static("application/octet-stream"),
        );
        r
    }
}

impl<B> hyper::service::Service<Request<B>> for StaticFiles {
    type Response = Response<Full<Bytes>>;
    type Error = Infallible;
    type Future = Ready<Result<Self::Response, Infallible>>;

    fn call(&self, req: Request<B>) -> Self::Future {
        ready(Ok(self.respond(req.method(), req.uri().path())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serves_exact_paths_only() {
        let files = StaticFiles::new(HashMap::from([("/a".to_owned(), Bytes::from("abc"))]));
        let r = files.respond(&Method::GET, "/a");
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.headers()[header::CONTENT_LENGTH], "3");
        assert_eq!(
            files.respond(&Method::GET, "/b").status(),
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            files.respond(&Method::POST, "/a").status(),
            StatusCode::METHOD_NOT_ALLOWED
        );
        let head = files.respond(&Method::HEAD, "/a");
        assert_eq!(head.headers()[header::CONTENT_LENGTH], "3");
    }
}
