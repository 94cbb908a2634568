//! One task per node: open the signed server-sent-event stream `GET /v1/console/events`, turn each
//! event into an [`Update`], and reconnect by itself when the node goes away.

use std::sync::mpsc::Sender;
use std::time::Duration;

use futures::StreamExt;
use k256::ecdsa::SigningKey;
use prag_proto::api::{API_VERSION, ConsoleFeed, ErrorBody};
use rand::RngCore;

const PATH: &str = "/v1/console/events";

#[derive(Debug, Clone)]
pub enum Update {
    Snapshot {
        node: usize,
        feed: Box<ConsoleFeed>,
    },
    /// The stream is gone (or never came); the feed retries.
    Down {
        node: usize,
        reason: String,
    },
    /// Something worth saying that does not end the stream (an unreadable event, ...).
    Problem {
        node: usize,
        message: String,
    },
}

/// Parses server-sent events out of a byte stream: `event:`/`data:` lines, blank line ends one.
#[derive(Default)]
pub struct SseParser {
    buf: Vec<u8>,
    data: String,
}

impl SseParser {
    /// Feeds bytes; returns the data of every event completed by them.
    pub fn push(&mut self, bytes: &[u8]) -> Vec<String> {
        self.buf.extend_from_slice(bytes);
        let mut out = Vec::new();
        while let Some(pos) = self.buf.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.buf.drain(..=pos).collect();
            let line = String::from_utf8_lossy(&line);
            let line = line.trim_end_matches(['\n', '\r']);
            if line.is_empty() {
                if !self.data.is_empty() {
                    out.push(std::mem::take(&mut self.data));
                }
            } else if let Some(d) = line.strip_prefix("data:") {
                if !self.data.is_empty() {
                    self.data.push('\n');
                }
                self.data.push_str(d.strip_prefix(' ').unwrap_or(d));
            }
        }
        // A line longer than any snapshot is garbage: drop it rather than grow without bound.
        if self.buf.len() > 16 << 20 {
            self.buf.clear();
        }
        out
    }
}

/// Decodes one event's data into a snapshot, or says what is wrong with it.
pub fn decode(data: &str) -> Result<ConsoleFeed, String> {
    let feed: ConsoleFeed = serde_json::from_str(data).map_err(|e| {
        let head: String = data.chars().take(40).collect();
        format!("garbage on the stream ({e}): {head:?}")
    })?;
    if feed.api_version != API_VERSION {
        return Err(format!("the node speaks API version {}, this console {API_VERSION}", feed.api_version));
    }
    Ok(feed)
}

fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// Runs one node's feed forever (until the receiver is gone).
pub async fn run(node: usize, url: String, key: SigningKey, tx: Sender<Update>) {
    let http = match reqwest::Client::builder().connect_timeout(Duration::from_secs(3)).build() {
        Ok(h) => h,
        Err(e) => {
            let _ = tx.send(Update::Down { node, reason: format!("cannot build an HTTP client: {e}") });
            return;
        }
    };
    let mut backoff = Duration::from_millis(500);
    loop {
        let reason = stream_once(node, &url, &key, &http, &tx, &mut backoff).await;
        if tx.send(Update::Down { node, reason }).is_err() {
            return;
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

/// One connection: returns why it ended.
async fn stream_once(
    node: usize,
    url: &str,
    key: &SigningKey,
    http: &reqwest::Client,
    tx: &Sender<Update>,
    backoff: &mut Duration,
) -> String {
    let mut nonce = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut nonce);
    let h = prag_proto::auth::sign_request(key, "GET", PATH, b"", unix_now(), &hex::encode(nonce), "");
    let resp = http
        .get(format!("{}{PATH}", url.trim_end_matches('/')))
        .header(prag_proto::auth::HEADER_PUBKEY, h.pubkey)
        .header(prag_proto::auth::HEADER_TIMESTAMP, h.timestamp.to_string())
        .header(prag_proto::auth::HEADER_NONCE, h.nonce)
        .header(prag_proto::auth::HEADER_SIGNATURE, h.signature)
        .header(prag_proto::auth::HEADER_CONTENT_SHA256, h.content_sha256)
        .send()
        .await;
    let resp = match resp {
        Ok(r) => r,
        Err(e) if e.is_connect() || e.is_timeout() => return "unreachable".to_string(),
        Err(e) => return format!("request failed: {e}"),
    };
    let status = resp.status();
    if status == reqwest::StatusCode::NOT_FOUND {
        return "the node has no console feed (an older API version?)".to_string();
    }
    if !status.is_success() {
        let body = resp.text().await.unwrap_or_default();
        return match serde_json::from_str::<ErrorBody>(&body) {
            Ok(e) => format!("refused ({} {}): {}", status.as_u16(), e.code, e.error),
            Err(_) => format!("answered {status}"),
        };
    }
    let mut parser = SseParser::default();
    let mut bytes = resp.bytes_stream();
    while let Some(chunk) = bytes.next().await {
        let chunk = match chunk {
            Ok(c) => c,
            Err(e) => return format!("stream broke: {e}"),
        };
        for data in parser.push(&chunk) {
            let update = match decode(&data) {
                Ok(feed) => {
                    *backoff = Duration::from_millis(500);
                    Update::Snapshot { node, feed: Box::new(feed) }
                }
                Err(message) => Update::Problem { node, message },
            };
            if tx.send(update).is_err() {
                return "console closed".to_string();
            }
        }
    }
    "the node closed the stream".to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_split_across_chunks_and_garbage_is_reported() {
        let mut p = SseParser::default();
        assert!(p.push(b"event: snapshot\ndata: {\"a\"").is_empty());
        assert_eq!(p.push(b":1}\n\n: keep-alive\n\ndata: x\r\n\r\n"), vec!["{\"a\":1}".to_string(), "x".to_string()]);
        assert!(decode("{\"a\":1}").unwrap_err().contains("garbage"));
        assert!(decode("\u{0}\u{1}binary").unwrap_err().contains("garbage"));
    }
}
