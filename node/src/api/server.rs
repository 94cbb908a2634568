//! The HTTP server loop: hyper's HTTP/1 with bounds that a slow or hostile client cannot stretch.
//!
//! - A request head must arrive within `header_timeout` of the connection opening, or of the
//!   previous answer on a kept-alive connection (so an idle connection is closed after it too).
//! - A head is at most `max_header_bytes` (hyper's read buffer) and 64 headers.
//! - At most `max_connections` connections are open; when a new one arrives at the limit, the
//!   longest-open connection that is not in the middle of a request is closed to make room (a
//!   half-sent head is not "in a request"), and if every connection is busy the new one is closed.
//! - Bodies are read by the routes themselves, each with its own size limit and a deadline
//!   (`super::body`).
//! - A client that hangs up mid-request ends it: hyper sees the EOF and drops the handler.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use futures::StreamExt;
use hyper_util::rt::{TokioIo, TokioTimer};
use parking_lot::Mutex;
use tower::ServiceExt;

use crate::config::ServerConfig;
use crate::error::{Error, Result};
use crate::node::Node;

/// Serves `node`'s API where its configuration says, until `shutdown` resolves.
pub async fn run(node: Arc<Node>, shutdown: impl std::future::Future<Output = ()>) -> Result<()> {
    let config = node.config().server.clone();
    let listener = tokio::net::TcpListener::bind(config.api)
        .await
        .map_err(|e| Error::config(format!("cannot listen on {}: {e}", config.api)))?;
    // One descriptor per connection, and some for everything else.
    let nofile = raise_nofile_limit();
    let room = nofile.saturating_sub(256).max(16) as usize;
    let mut limits = config.clone();
    if limits.max_connections > room {
        tracing::warn!(
            max_connections = room,
            asked = limits.max_connections,
            nofile,
            "fewer connections than --max-connections: the open-file limit is low"
        );
        limits.max_connections = room;
    }
    tracing::info!(api = %config.api, data = %node.config().data_dir.display(), index = %node.collections().backend_name(), "node ready");
    serve(listener, super::router(node), limits, shutdown)
        .await
        .map_err(|e| Error::internal("the HTTP server failed", e))
}

struct Conn {
    opened: Instant,
    /// Requests being answered (a streamed answer counts until its body ends).
    busy: Arc<AtomicUsize>,
    close: Arc<tokio::sync::Notify>,
}

#[derive(Default)]
struct Conns {
    next: u64,
    open: HashMap<u64, Conn>,
}

/// Counts a request as in flight until dropped.
struct Busy(Arc<AtomicUsize>);

impl Busy {
    fn new(c: &Arc<AtomicUsize>) -> Self {
        c.fetch_add(1, Ordering::AcqRel);
        Busy(Arc::clone(c))
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Raises this process's open-file limit to its hard limit (a server needs one descriptor per
/// connection) and returns the new soft limit.
pub(crate) fn raise_nofile_limit() -> u64 {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let current = getrlimit(Resource::Nofile);
    if let Some(max) = current.maximum
        && current.current.is_some_and(|c| c < max)
    {
        let _ = setrlimit(Resource::Nofile, Rlimit { current: Some(max), maximum: Some(max) });
    }
    getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX)
}

/// Serves `app` on `listener` until `shutdown` resolves, then lets open requests finish (up to
/// 10 s).
pub(crate) async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    limits: ServerConfig,
    shutdown: impl std::future::Future<Output = ()>,
) -> std::io::Result<()> {
    let conns: Arc<Mutex<Conns>> = Arc::default();
    let mut tasks: Vec<tokio::task::JoinHandle<()>> = Vec::new();
    tokio::pin!(shutdown);
    loop {
        let (stream, _peer) = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(x) => x,
                Err(e) => {
                    // Out of descriptors, say: wait a little rather than spin.
                    tracing::warn!(error = %e, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let Some((id, busy, close)) = admit(&conns, limits.max_connections) else {
            drop(stream); // every connection is in a request: refuse this one
            continue;
        };
        let (app, limits, conns) = (app.clone(), limits.clone(), Arc::clone(&conns));
        tasks.push(tokio::spawn(async move {
            serve_connection(stream, app, &limits, busy, close).await;
            conns.lock().open.remove(&id);
        }));
        tasks.retain(|t| !t.is_finished());
    }
    // Stop reading new requests; answer the ones under way.
    for c in conns.lock().open.values() {
        c.close.notify_one();
    }
    let _ = tokio::time::timeout(Duration::from_secs(10), futures::future::join_all(tasks)).await;
    Ok(())
}

/// Registers a new connection, closing the oldest idle one when at the limit. None: no room.
fn admit(conns: &Mutex<Conns>, max: usize) -> Option<(u64, Arc<AtomicUsize>, Arc<tokio::sync::Notify>)> {
    let mut c = conns.lock();
    if c.open.len() >= max.max(1) {
        let victim = c
            .open
            .iter()
            .filter(|(_, conn)| conn.busy.load(Ordering::Acquire) == 0)
            .min_by_key(|(_, conn)| conn.opened)
            .map(|(id, _)| *id);
        match victim {
            Some(id) => {
                if let Some(conn) = c.open.remove(&id) {
                    conn.close.notify_one();
                }
            }
            None => return None,
        }
    }
    let id = c.next;
    c.next += 1;
    let busy = Arc::new(AtomicUsize::new(0));
    let close = Arc::new(tokio::sync::Notify::new());
    c.open.insert(id, Conn { opened: Instant::now(), busy: Arc::clone(&busy), close: Arc::clone(&close) });
    Some((id, busy, close))
}

async fn serve_connection(
    stream: tokio::net::TcpStream,
    app: Router,
    limits: &ServerConfig,
    busy: Arc<AtomicUsize>,
    close: Arc<tokio::sync::Notify>,
) {
    let service = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
        let guard = Busy::new(&busy);
        let app = app.clone();
        async move {
            let resp = app.oneshot(req.map(axum::body::Body::new)).await?;
            // Busy until the answer's body is sent (server-sent events stream for a long time).
            Ok::<_, std::convert::Infallible>(resp.map(|body| {
                axum::body::Body::from_stream(body.into_data_stream().map(move |chunk| {
                    let _keep = &guard;
                    chunk
                }))
            }))
        }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_buf_size(limits.max_header_bytes.max(8192))
        .max_headers(64);
    let conn = builder.serve_connection(TokioIo::new(stream), service);
    tokio::pin!(conn);
    tokio::select! {
        _ = conn.as_mut() => {}
        _ = close.notified() => {
            conn.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(Duration::from_secs(10), conn.as_mut()).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_the_limit_the_oldest_idle_connection_makes_room_and_busy_ones_stay() {
        let conns: Mutex<Conns> = Mutex::default();
        let (a, a_busy, _) = admit(&conns, 2).unwrap();
        let (b, _, b_close) = admit(&conns, 2).unwrap();
        a_busy.store(1, Ordering::Release);
        let (c, c_busy, _) = admit(&conns, 2).unwrap();
        let open: Vec<u64> = conns.lock().open.keys().copied().collect();
        assert!(open.contains(&a) && open.contains(&c) && !open.contains(&b), "{open:?}");
        // b was told to close.
        assert!(futures::FutureExt::now_or_never(b_close.notified()).is_some());
        c_busy.store(1, Ordering::Release);
        assert!(admit(&conns, 2).is_none(), "all busy: the newcomer is refused");
    }
}
