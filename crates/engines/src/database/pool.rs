//! Idle connections kept per connection configuration, so that issuing and revoking credentials
//! does not log in to the database every time. A configuration is known by a digest of its
//! plugin, URL, user and password (a changed password never reuses an old connection); every
//! change of a configuration empties the pool, and so does unmounting.

use super::conn::{Conn, Engine};
use parking_lot::Mutex;
use std::collections::HashMap;

/// The pools of one mount.
#[derive(Default)]
pub struct Pools {
    idle: Mutex<HashMap<[u8; 32], Vec<Conn>>>,
}

/// What identifies a configuration's connections (a digest; the password is not kept here).
pub fn fingerprint(parts: &[&str]) -> [u8; 32] {
    let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    for p in parts {
        ctx.update(&(p.len() as u64).to_be_bytes());
        ctx.update(p.as_bytes());
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

impl Pools {
    /// An idle connection that still answers, if one is kept.
    pub async fn take(&self, key: &[u8; 32], engine: Engine) -> Option<Conn> {
        loop {
            let mut conn = self.idle.lock().get_mut(key).and_then(Vec::pop)?;
            if conn.alive(engine).await {
                return Some(conn);
            }
        }
    }

    /// Keep a connection for later (at most `max` idle per configuration; the rest close).
    pub async fn give(&self, key: [u8; 32], conn: Conn, max: usize) {
        let extra = {
            let mut idle = self.idle.lock();
            let list = idle.entry(key).or_default();
            if list.len() < max {
                list.push(conn);
                None
            } else {
                Some(conn)
            }
        };
        if let Some(c) = extra {
            c.close().await;
        }
    }

    /// Close every kept connection.
    pub async fn clear(&self) {
        let all: Vec<Conn> = self.idle.lock().drain().flat_map(|(_, v)| v).collect();
        for c in all {
            c.close().await;
        }
    }
}
