//! The `ceiling` server: bare hyper (same connection builder as coffer's listener) answering every
//! request with one fixed JSON body, on its own multi-threaded runtime so that it competes for the
//! CPU the way a separate coffer process does.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::thread::JoinHandle;

use anyhow::{Context, Result};
use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE};
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use tokio::sync::oneshot;

pub struct Ceiling {
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for Ceiling {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A body shaped like coffer's answer to a kv v2 read of [`crate::SECRET_DATA`].
pub fn kv2_like_body() -> Bytes {
    let v = serde_json::json!({
        "auth": null,
        "data": {
            "data": crate::secret_data(),
            "metadata": {
                "created_time": "2026-01-01T00:00:00.123456789Z",
                "custom_metadata": null,
                "deletion_time": "",
                "destroyed": false,
                "version": 1
            }
        },
        "lease_duration": 0,
        "lease_id": "",
        "mount_type": "",
        "renewable": false,
        "request_id": "00000000-0000-4000-8000-000000000000",
        "warnings": null,
        "wrap_info": null
    });
    Bytes::from(v.to_string())
}

pub fn start(body: Bytes) -> Result<Ceiling> {
    let std_listener =
        std::net::TcpListener::bind("127.0.0.1:0").context("binding the ceiling server")?;
    std_listener.set_nonblocking(true)?;
    let addr = std_listener.local_addr()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("ceiling")
        .build()
        .context("building the ceiling runtime")?;
    let (tx, mut rx) = oneshot::channel::<()>();
    let thread = std::thread::Builder::new()
        .name("ceiling-main".into())
        .spawn(move || {
            rt.block_on(async move {
                let Ok(listener) = tokio::net::TcpListener::from_std(std_listener) else {
                    return;
                };
                loop {
                    tokio::select! {
                        _ = &mut rx => break,
                        acc = listener.accept() => {
                            let Ok((stream, _)) = acc else { continue };
                            let _ = stream.set_nodelay(true);
                            let body = body.clone();
                            tokio::spawn(async move {
                                let svc = service_fn(move |_req: Request<hyper::body::Incoming>| {
                                    let body = body.clone();
                                    async move {
                                        let mut resp = Response::new(Full::new(body));
                                        let h = resp.headers_mut();
                                        h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
                                        h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
                                        Ok::<_, Infallible>(resp)
                                    }
                                });
                                let _ = Builder::new(TokioExecutor::new())
                                    .serve_connection(TokioIo::new(stream), svc)
                                    .await;
                            });
                        }
                    }
                }
            });
            rt.shutdown_background();
        })
        .context("spawning the ceiling thread")?;
    Ok(Ceiling {
        addr,
        stop: Some(tx),
        thread: Some(thread),
    })
}
