//! A local static-file HTTP server on 127.0.0.1, in the port range the
//! private exits allow, running on its own thread and runtime so it outlives
//! any test's runtime.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::thread::JoinHandle;

use bytes::Bytes;
use hyper_util::rt::TokioIo;
use onionpkg_mirror::files::StaticFiles;
use tokio::sync::oneshot;

use crate::testnet::ports::{self, EXIT_PORTS, PortLease};
use crate::testnet::{Error, Result};

/// A running server; dropping it stops it.
#[derive(Debug)]
pub struct HttpServer {
    lease: PortLease,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl HttpServer {
    /// Serves `files` (path to contents) on a leased port in
    /// [`EXIT_PORTS`].
    pub fn start(files: HashMap<String, Bytes>) -> Result<Self> {
        let lease = ports::lease(EXIT_PORTS)?;
        let listener = std::net::TcpListener::bind(lease.addr())
            .map_err(|e| Error::io("binding the http server", e))?;
        listener
            .set_nonblocking(true)
            .map_err(|e| Error::io("configuring the http server", e))?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Error::io("starting the http server runtime", e))?;
        let (stop, mut stopped) = oneshot::channel::<()>();
        let service = StaticFiles::new(files);
        let thread = std::thread::Builder::new()
            .name("http-server".into())
            .spawn(move || {
                rt.block_on(async move {
                    let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
                        return;
                    };
                    loop {
                        tokio::select! {
                            _ = &mut stopped => break,
                            accepted = listener.accept() => {
                                let Ok((stream, _)) = accepted else { continue };
                                let service = service.clone();
                                tokio::spawn(async move {
                                    let _ = hyper::server::conn::http1::Builder::new()
                                        .serve_connection(TokioIo::new(stream), service)
                                        .await;
                                });
                            }
                        }
                    }
                });
            })
            .map_err(|e| Error::io("starting the http server thread", e))?;
        Ok(Self {
            lease,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// Where it listens (127.0.0.1).
    pub fn addr(&self) -> SocketAddr {
        self.lease.addr()
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
