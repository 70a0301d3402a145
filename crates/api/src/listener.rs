//! TCP listeners, plain or TLS (rustls with aws-lc-rs), serving an axum router with hyper.

use crate::vault::RemoteAddr;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use hyper_util::service::TowerToHyperService;
use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tower::ServiceExt;

#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    pub client_ca_file: Option<PathBuf>,
    pub require_client_cert: bool,
}

#[derive(Debug, Clone)]
pub struct ListenerConfig {
    pub address: String,
    pub tls: Option<TlsFiles>,
}

#[derive(Debug, thiserror::Error)]
pub enum ListenerError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
    #[error("TLS configuration error: {0}")]
    Tls(String),
}

fn tls_config(t: &TlsFiles) -> Result<rustls::ServerConfig, ListenerError> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&t.cert_file)
        .map_err(|e| ListenerError::Tls(format!("reading {}: {e}", t.cert_file.display())))?
        .collect::<Result<_, _>>()
        .map_err(|e| ListenerError::Tls(format!("parsing {}: {e}", t.cert_file.display())))?;
    if certs.is_empty() {
        return Err(ListenerError::Tls(format!(
            "no certificate in {}",
            t.cert_file.display()
        )));
    }
    let key = PrivateKeyDer::from_pem_file(&t.key_file)
        .map_err(|e| ListenerError::Tls(format!("reading key {}: {e}", t.key_file.display())))?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| ListenerError::Tls(e.to_string()))?;
    let builder = match &t.client_ca_file {
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            for c in CertificateDer::pem_file_iter(ca)
                .map_err(|e| ListenerError::Tls(format!("reading {}: {e}", ca.display())))?
            {
                let c = c.map_err(|e| ListenerError::Tls(e.to_string()))?;
                roots
                    .add(c)
                    .map_err(|e| ListenerError::Tls(e.to_string()))?;
            }
            let v = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            let v = if t.require_client_cert {
                v
            } else {
                v.allow_unauthenticated()
            };
            builder.with_client_cert_verifier(
                v.build().map_err(|e| ListenerError::Tls(e.to_string()))?,
            )
        }
        None => builder.with_no_client_auth(),
    };
    let mut cfg = builder
        .with_single_cert(certs, key)
        .map_err(|e| ListenerError::Tls(e.to_string()))?;
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(cfg)
}

/// A bound listener, ready to serve.
pub struct Bound {
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    pub local_addr: SocketAddr,
}

/// Bind the address and load TLS material (errors surface before the server reports ready).
pub async fn bind(cfg: &ListenerConfig) -> Result<Bound, ListenerError> {
    let tls = match &cfg.tls {
        Some(t) => Some(tokio_rustls::TlsAcceptor::from(Arc::new(tls_config(t)?))),
        None => None,
    };
    let listener = TcpListener::bind(&cfg.address)
        .await
        .map_err(|source| ListenerError::Bind {
            addr: cfg.address.clone(),
            source,
        })?;
    let local_addr = listener
        .local_addr()
        .map_err(|source| ListenerError::Bind {
            addr: cfg.address.clone(),
            source,
        })?;
    Ok(Bound {
        listener,
        tls,
        local_addr,
    })
}

/// Serve `app` on a bound listener until `shutdown` turns true.
pub async fn serve(bound: Bound, app: axum::Router, mut shutdown: watch::Receiver<bool>) {
    loop {
        let accepted = tokio::select! {
            r = bound.listener.accept() => r,
            _ = shutdown.changed() => break,
        };
        let (stream, peer) = match accepted {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let tls = bound.tls.clone();
        tokio::spawn(async move {
            let svc = app.map_request(move |mut req: hyper::Request<hyper::body::Incoming>| {
                req.extensions_mut().insert(RemoteAddr(peer));
                req.map(axum::body::Body::new)
            });
            let svc = TowerToHyperService::new(svc);
            let builder = Builder::new(TokioExecutor::new());
            let result = match tls {
                Some(acceptor) => match acceptor.accept(stream).await {
                    Ok(s) => builder.serve_connection(TokioIo::new(s), svc).await,
                    Err(e) => {
                        tracing::debug!(error = %e, "TLS handshake failed");
                        return;
                    }
                },
                None => builder.serve_connection(TokioIo::new(stream), svc).await,
            };
            if let Err(e) = result {
                tracing::debug!(error = %e, "connection error");
            }
        });
    }
}
