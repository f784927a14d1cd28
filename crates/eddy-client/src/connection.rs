//! One TCP connection to a broker.
//!
//! Requests are pipelined: [`Connection::send`] encodes a frame, registers a
//! oneshot channel under a fresh correlation id and hands the frame to a
//! writer task; a reader task reads size-prefixed response frames and
//! completes the matching channel. Any number of requests may be in flight.
//! Dropping a `send` future (e.g. on a timeout) never corrupts the stream:
//! frames are written whole by the writer task.
//!
//! On connect, an ApiVersions handshake learns the versions the broker serves;
//! each request then uses the highest version both sides implement.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use eddy_protocol::messages::{ApiKey, ApiVersionsRequest, ApiVersionsResponse};
use eddy_protocol::ErrorCode;
use parking_lot::Mutex;
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader, BufWriter};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::config::CommonConfig;
use crate::error::{ClientError, KafkaError};
use crate::protocol::{
    decode_body, encode_request, peek_correlation_id, split_response, BrokerApiVersions, Request,
};

/// Highest ApiVersions version the client implements.
const API_VERSIONS_MAX: i16 = <ApiVersionsRequest as Request>::MAX_VERSION;

/// Frames queued for the writer task before `send` waits.
const WRITE_QUEUE: usize = 1024;

/// Options of a connection (from [`CommonConfig`]).
#[derive(Debug, Clone)]
pub struct ConnectionOptions {
    pub client_id: Option<String>,
    pub request_timeout: Duration,
    pub connect_timeout: Duration,
    pub max_response_size: usize,
    pub version_caps: Vec<(ApiKey, i16)>,
}

impl From<&CommonConfig> for ConnectionOptions {
    fn from(c: &CommonConfig) -> Self {
        ConnectionOptions {
            client_id: Some(c.client_id.clone()),
            request_timeout: c.request_timeout,
            connect_timeout: c.connect_timeout,
            max_response_size: c.max_response_size,
            version_caps: c.version_caps.clone(),
        }
    }
}

type Reply = oneshot::Sender<Result<Bytes, ClientError>>;

#[derive(Default)]
struct Pending {
    waiting: HashMap<i32, Reply>,
    /// Set once the connection is unusable; later sends fail at once.
    closed: Option<String>,
}

struct Shared {
    addr: String,
    pending: Mutex<Pending>,
}

impl Shared {
    /// Marks the connection closed and fails every waiting request.
    fn close(&self, reason: String) {
        let waiting = {
            let mut p = self.pending.lock();
            if p.closed.is_none() {
                p.closed = Some(reason.clone());
            }
            std::mem::take(&mut p.waiting)
        };
        for (_, tx) in waiting {
            let _ = tx.send(Err(ClientError::Disconnected {
                addr: self.addr.clone(),
                reason: reason.clone(),
            }));
        }
    }
}

/// A connection to one broker. Cheap to share behind an `Arc`; every method
/// takes `&self`.
pub struct Connection {
    shared: Arc<Shared>,
    opts: ConnectionOptions,
    next_correlation_id: AtomicI32,
    writer: mpsc::Sender<Vec<Bytes>>,
    versions: BrokerApiVersions,
    api_versions_version: i16,
    /// The reader task; aborted on drop. The writer task is not: it ends by itself once the
    /// `writer` sender is dropped, after writing every frame already queued (an acks=0
    /// produce that was handed over must reach the socket even if the connection is dropped
    /// right after).
    reader: JoinHandle<()>,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("addr", &self.shared.addr)
            .finish()
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

impl Connection {
    /// Connects to `addr` (`host:port`) and performs the ApiVersions handshake.
    pub async fn connect(addr: &str, opts: ConnectionOptions) -> Result<Connection, ClientError> {
        let connect_err = |reason: String| ClientError::Connect {
            addr: addr.to_string(),
            reason,
        };
        let stream =
            match tokio::time::timeout(opts.connect_timeout, TcpStream::connect(addr)).await {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => return Err(connect_err(io_reason(&e))),
                Err(_) => {
                    return Err(connect_err(format!(
                        "timed out after {} ms",
                        opts.connect_timeout.as_millis()
                    )))
                }
            };
        let _ = stream.set_nodelay(true);
        let (rd, wr) = stream.into_split();
        let shared = Arc::new(Shared {
            addr: addr.to_string(),
            pending: Mutex::new(Pending::default()),
        });
        let (tx, rx) = mpsc::channel(WRITE_QUEUE);
        let reader = tokio::spawn(read_loop(rd, shared.clone(), opts.max_response_size));
        // Detached: see `Connection::reader`.
        tokio::spawn(write_loop(wr, rx, shared.clone()));
        let mut conn = Connection {
            shared,
            opts,
            next_correlation_id: AtomicI32::new(1),
            writer: tx,
            versions: BrokerApiVersions::default(),
            api_versions_version: 0,
            reader,
        };
        conn.handshake().await?;
        tracing::debug!(addr, "connected");
        Ok(conn)
    }

    /// ApiVersions at our highest version; if the broker answers
    /// UNSUPPORTED_VERSION (in a v0 body), retry at the highest version it
    /// lists for ApiVersions, or v0.
    async fn handshake(&mut self) -> Result<(), ClientError> {
        let req = ApiVersionsRequest {
            client_software_name: "eddy-client".to_string(),
            client_software_version: env!("CARGO_PKG_VERSION").to_string(),
        };
        let mut version = self.cap(ApiKey::ApiVersions, API_VERSIONS_MAX);
        for _ in 0..2 {
            let body = self.roundtrip(ApiKey::ApiVersions, version, &req).await?;
            let code = body.get(..2).map(|b| i16::from_be_bytes([b[0], b[1]]));
            if code == Some(ErrorCode::UnsupportedVersion.code()) && version > 0 {
                let resp: ApiVersionsResponse = self.decode(ApiKey::ApiVersions, body, 0)?;
                let theirs = BrokerApiVersions::from_response(&resp);
                let next = theirs
                    .range(ApiKey::ApiVersions)
                    .map(|(_, max)| max.min(version - 1))
                    .unwrap_or(0)
                    .max(0);
                tracing::debug!(addr = %self.shared.addr, version, next, "ApiVersions downgrade");
                version = next;
                continue;
            }
            let resp: ApiVersionsResponse = self.decode(ApiKey::ApiVersions, body, version)?;
            if resp.error_code != 0 {
                return Err(
                    KafkaError::new(ErrorCode::from_code_or_unknown(resp.error_code)).into(),
                );
            }
            self.versions = BrokerApiVersions::from_response(&resp);
            self.api_versions_version = version;
            return Ok(());
        }
        Err(ClientError::UnsupportedVersion {
            api: ApiKey::ApiVersions,
            addr: self.shared.addr.clone(),
            min: 0,
            max: API_VERSIONS_MAX,
            broker: "none".to_string(),
        })
    }

    fn cap(&self, key: ApiKey, v: i16) -> i16 {
        self.opts
            .version_caps
            .iter()
            .filter(|(k, _)| *k == key)
            .fold(v, |v, (_, cap)| v.min(*cap))
    }

    /// The broker's address as connected (`host:port`).
    pub fn addr(&self) -> &str {
        &self.shared.addr
    }

    /// Whether the connection is still usable.
    pub fn is_open(&self) -> bool {
        self.shared.pending.lock().closed.is_none() && !self.writer.is_closed()
    }

    /// The versions the broker serves.
    pub fn broker_versions(&self) -> &BrokerApiVersions {
        &self.versions
    }

    /// The ApiVersions version the handshake used.
    pub fn api_versions_version(&self) -> i16 {
        self.api_versions_version
    }

    /// The version `send` uses for `R`: the highest version both the broker
    /// and this client implement (and within any configured cap).
    pub fn version<R: Request>(&self) -> Result<i16, ClientError> {
        self.version_for(R::KEY, R::MIN_VERSION, R::MAX_VERSION)
    }

    fn version_for(&self, key: ApiKey, min: i16, max: i16) -> Result<i16, ClientError> {
        let cap = self
            .opts
            .version_caps
            .iter()
            .filter(|(k, _)| *k == key)
            .map(|(_, c)| *c)
            .min();
        self.versions
            .negotiate(key, min, max, cap)
            .map_err(|broker| ClientError::UnsupportedVersion {
                api: key,
                addr: self.shared.addr.clone(),
                min,
                max,
                broker,
            })
    }

    /// Sends `req` at the negotiated version and waits for its response.
    pub async fn send<R: Request>(&self, req: &R) -> Result<R::Response, ClientError> {
        let version = self.version::<R>()?;
        self.send_version(req, version).await
    }

    /// Sends `req` at `version` (which must be one the broker serves, e.g.
    /// below [`Connection::version`]) and waits for its response.
    pub async fn send_version<R: Request>(
        &self,
        req: &R,
        version: i16,
    ) -> Result<R::Response, ClientError> {
        let body = self.roundtrip(R::KEY, version, req).await?;
        self.decode(R::KEY, body, version)
    }

    /// Sends a request that gets no response (Produce with acks=0). Returns
    /// once the frame is queued for writing.
    pub async fn send_no_response<R: Request>(&self, req: &R) -> Result<i16, ClientError> {
        let version = self.version::<R>()?;
        let frame = self.encode(R::KEY, version, req)?.1;
        if let Some(reason) = self.shared.pending.lock().closed.clone() {
            return Err(self.disconnected(reason));
        }
        self.writer
            .send(frame)
            .await
            .map_err(|_| self.disconnected("connection closed".to_string()))?;
        Ok(version)
    }

    /// Queues `req` for writing at the negotiated version and returns its
    /// pending response. Requests queued one after the other (by one task)
    /// are written in that order, so a caller can pipeline several requests
    /// and rely on their order on the wire (the producer does, for sequence
    /// numbers). The `request.timeout.ms` clock starts now.
    pub async fn queue<R: Request>(&self, req: &R) -> Result<PendingResponse<R>, ClientError> {
        let version = self.version::<R>()?;
        let (id, frame) = self.encode(R::KEY, version, req)?;
        let (tx, rx) = oneshot::channel();
        {
            let mut p = self.shared.pending.lock();
            if let Some(reason) = &p.closed {
                return Err(self.disconnected(reason.clone()));
            }
            p.waiting.insert(id, tx);
        }
        let pending = PendingResponse {
            shared: self.shared.clone(),
            id,
            rx,
            deadline: tokio::time::Instant::now() + self.opts.request_timeout,
            timeout: self.opts.request_timeout,
            version,
            _request: std::marker::PhantomData,
        };
        self.writer
            .send(frame)
            .await
            .map_err(|_| self.disconnected("connection closed".to_string()))?;
        Ok(pending)
    }

    fn disconnected(&self, reason: String) -> ClientError {
        ClientError::Disconnected {
            addr: self.shared.addr.clone(),
            reason,
        }
    }

    fn encode<R: eddy_protocol::Encode + ?Sized>(
        &self,
        key: ApiKey,
        version: i16,
        req: &R,
    ) -> Result<(i32, Vec<Bytes>), ClientError> {
        let id = self
            .next_correlation_id
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |c| {
                Some(if c == i32::MAX { 1 } else { c + 1 })
            })
            .unwrap_or(1);
        let frame = encode_request(key, version, id, self.opts.client_id.as_deref(), req)
            .map_err(|source| ClientError::Encode { api: key, source })?;
        Ok((id, frame))
    }

    fn decode<T: eddy_protocol::Decode>(
        &self,
        key: ApiKey,
        frame: Bytes,
        version: i16,
    ) -> Result<T, ClientError> {
        decode_body(frame, version).map_err(|source| ClientError::Decode {
            api: key,
            addr: self.shared.addr.clone(),
            source,
        })
    }

    /// Writes one request and returns the response body (header removed).
    async fn roundtrip<R: eddy_protocol::Encode + ?Sized>(
        &self,
        key: ApiKey,
        version: i16,
        req: &R,
    ) -> Result<Bytes, ClientError> {
        let (id, frame) = self.encode(key, version, req)?;
        let (tx, rx) = oneshot::channel();
        {
            let mut p = self.shared.pending.lock();
            if let Some(reason) = &p.closed {
                return Err(self.disconnected(reason.clone()));
            }
            p.waiting.insert(id, tx);
        }
        // Removes the entry if this future is dropped or times out.
        let guard = PendingGuard {
            shared: &self.shared,
            id,
        };
        let timeout = self.opts.request_timeout;
        let result = tokio::time::timeout(timeout, async {
            self.writer
                .send(frame)
                .await
                .map_err(|_| self.disconnected("connection closed".to_string()))?;
            rx.await
                .map_err(|_| self.disconnected("connection closed".to_string()))?
        })
        .await;
        drop(guard);
        let frame = match result {
            Ok(r) => r?,
            Err(_) => {
                return Err(ClientError::Timeout {
                    api: key,
                    addr: self.shared.addr.clone(),
                    timeout,
                })
            }
        };
        split_response(frame, key, version).map_err(|source| ClientError::Decode {
            api: key,
            addr: self.shared.addr.clone(),
            source,
        })
    }
}

/// A request written (or queued for writing) whose response has not been
/// read yet; see [`Connection::queue`]. Dropping it abandons the response.
pub struct PendingResponse<R: Request> {
    shared: Arc<Shared>,
    id: i32,
    rx: oneshot::Receiver<Result<Bytes, ClientError>>,
    deadline: tokio::time::Instant,
    timeout: Duration,
    version: i16,
    _request: std::marker::PhantomData<fn() -> R>,
}

impl<R: Request> std::fmt::Debug for PendingResponse<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingResponse")
            .field("addr", &self.shared.addr)
            .field("id", &self.id)
            .finish()
    }
}

impl<R: Request> PendingResponse<R> {
    /// Waits for the response (until `request.timeout.ms` after queueing).
    pub async fn response(mut self) -> Result<R::Response, ClientError> {
        let addr = self.shared.addr.clone();
        let disconnected = || ClientError::Disconnected {
            addr: addr.clone(),
            reason: "connection closed".to_string(),
        };
        let frame = match tokio::time::timeout_at(self.deadline, &mut self.rx).await {
            Ok(Ok(r)) => r?,
            Ok(Err(_)) => return Err(disconnected()),
            Err(_) => {
                return Err(ClientError::Timeout {
                    api: R::KEY,
                    addr,
                    timeout: self.timeout,
                })
            }
        };
        let body =
            split_response(frame, R::KEY, self.version).map_err(|source| ClientError::Decode {
                api: R::KEY,
                addr: addr.clone(),
                source,
            })?;
        decode_body(body, self.version).map_err(|source| ClientError::Decode {
            api: R::KEY,
            addr,
            source,
        })
    }
}

impl<R: Request> Drop for PendingResponse<R> {
    fn drop(&mut self) {
        self.shared.pending.lock().waiting.remove(&self.id);
    }
}

struct PendingGuard<'a> {
    shared: &'a Shared,
    id: i32,
}

impl Drop for PendingGuard<'_> {
    fn drop(&mut self) {
        self.shared.pending.lock().waiting.remove(&self.id);
    }
}

fn io_reason(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::ConnectionRefused => "connection refused".to_string(),
        std::io::ErrorKind::ConnectionReset => "connection reset by peer".to_string(),
        std::io::ErrorKind::UnexpectedEof => "connection closed by the broker".to_string(),
        _ => {
            let s = e.to_string();
            // "Connection refused (os error 111)" -> "connection refused"
            let s = s.split(" (os error").next().unwrap_or(&s).to_string();
            let mut c = s.chars();
            match c.next() {
                Some(f) => f.to_lowercase().chain(c).collect(),
                None => s,
            }
        }
    }
}

async fn read_loop(rd: OwnedReadHalf, shared: Arc<Shared>, max_size: usize) {
    let mut rd = BufReader::with_capacity(64 * 1024, rd);
    let reason = loop {
        let size = match rd.read_i32().await {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                break "connection closed by the broker".to_string()
            }
            Err(e) => break io_reason(&e),
        };
        let size = match usize::try_from(size) {
            Ok(n) if (4..=max_size).contains(&n) => n,
            _ => break format!("invalid response size {size}"),
        };
        let mut buf = BytesMut::zeroed(size);
        if let Err(e) = rd.read_exact(&mut buf).await {
            break io_reason(&e);
        }
        let frame = buf.freeze();
        let Some(id) = peek_correlation_id(&frame) else {
            break "response without correlation id".to_string();
        };
        let waiter = shared.pending.lock().waiting.remove(&id);
        match waiter {
            Some(tx) => {
                let _ = tx.send(Ok(frame));
            }
            // A response to a request that timed out or was abandoned.
            None => tracing::debug!(addr = %shared.addr, id, "response to an abandoned request"),
        }
    };
    tracing::debug!(addr = %shared.addr, %reason, "connection reader stopped");
    shared.close(reason);
}

async fn write_loop(wr: OwnedWriteHalf, mut rx: mpsc::Receiver<Vec<Bytes>>, shared: Arc<Shared>) {
    let mut wr = BufWriter::with_capacity(64 * 1024, wr);
    let result: std::io::Result<()> = async {
        while let Some(frame) = rx.recv().await {
            write_frame(&mut wr, &frame).await?;
            // Coalesce whatever else is queued into the same flush.
            while let Ok(frame) = rx.try_recv() {
                write_frame(&mut wr, &frame).await?;
            }
            wr.flush().await?;
        }
        wr.shutdown().await
    }
    .await;
    if let Err(e) = result {
        shared.close(io_reason(&e));
    }
}

async fn write_frame(wr: &mut BufWriter<OwnedWriteHalf>, frame: &[Bytes]) -> std::io::Result<()> {
    for chunk in frame {
        wr.write_all(chunk).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use eddy_protocol::messages::api_versions_response::ApiVersion;
    use eddy_protocol::messages::{MetadataRequest, MetadataResponse, RequestHeader};
    use eddy_protocol::{Decode, Encode, WriteBuf};
    use tokio::net::TcpListener;

    fn opts() -> ConnectionOptions {
        ConnectionOptions {
            client_id: Some("test".into()),
            request_timeout: Duration::from_millis(2000),
            connect_timeout: Duration::from_millis(2000),
            max_response_size: 1 << 20,
            version_caps: Vec::new(),
        }
    }

    async fn read_request(s: &mut TcpStream) -> Option<(RequestHeader, Bytes)> {
        let n = s.read_i32().await.ok()? as usize;
        let mut buf = vec![0u8; n];
        s.read_exact(&mut buf).await.ok()?;
        let mut b = Bytes::from(buf);
        let key = ApiKey::from_i16(i16::from_be_bytes([b[0], b[1]]))?;
        let version = i16::from_be_bytes([b[2], b[3]]);
        let h = RequestHeader::decode(&mut b, key.request_header_version(version)).ok()?;
        Some((h, b))
    }

    async fn write_response<T: Encode>(s: &mut TcpStream, id: i32, hv: i16, body: &T, v: i16) {
        let mut buf = WriteBuf::new();
        buf.put_i32(id);
        if hv >= 1 {
            buf.put_u8(0);
        }
        body.encode(&mut buf, v).unwrap();
        let bytes = buf.into_bytes();
        s.write_i32(bytes.len() as i32).await.unwrap();
        s.write_all(&bytes).await.unwrap();
    }

    fn api_versions(list: &[(ApiKey, i16, i16)], error: i16) -> ApiVersionsResponse {
        ApiVersionsResponse {
            error_code: error,
            api_keys: list
                .iter()
                .map(|(k, a, b)| ApiVersion {
                    api_key: k.as_i16(),
                    min_version: *a,
                    max_version: *b,
                })
                .collect(),
            ..Default::default()
        }
    }

    /// A scripted peer (a unit-test stand-in for the wire, not a broker): it
    /// answers ApiVersions v4 with UNSUPPORTED_VERSION in a v0 body listing
    /// ApiVersions 0-2, then serves Metadata and answers pipelined requests
    /// in reverse order.
    #[tokio::test]
    async fn handshake_downgrade_and_out_of_order_responses() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let peer = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let (h, _) = read_request(&mut s).await.unwrap();
            assert_eq!(h.request_api_key, 18);
            assert_eq!(h.request_api_version, 4);
            let unsupported = api_versions(&[(ApiKey::ApiVersions, 0, 2)], 35);
            write_response(&mut s, h.correlation_id, 0, &unsupported, 0).await;
            let (h, _) = read_request(&mut s).await.unwrap();
            assert_eq!(h.request_api_version, 2, "retry at the broker's max");
            assert_eq!(h.client_id.as_deref(), Some("test"));
            let ok = api_versions(&[(ApiKey::ApiVersions, 0, 2), (ApiKey::Metadata, 0, 7)], 0);
            write_response(&mut s, h.correlation_id, 0, &ok, 2).await;
            // Two pipelined Metadata requests, answered in reverse order.
            let (h1, _) = read_request(&mut s).await.unwrap();
            let (h2, _) = read_request(&mut s).await.unwrap();
            assert_eq!(h1.request_api_version, 7, "min(broker 7, client 12)");
            for (h, cluster) in [(h2, "second"), (h1, "first")] {
                let resp = MetadataResponse {
                    cluster_id: Some(cluster.to_string()),
                    ..Default::default()
                };
                write_response(&mut s, h.correlation_id, 0, &resp, 7).await;
            }
            // Then close: a later request fails with Disconnected.
            let _ = read_request(&mut s).await;
        });
        let conn = Connection::connect(&addr, opts()).await.unwrap();
        assert_eq!(conn.api_versions_version(), 2);
        assert_eq!(conn.version::<MetadataRequest>().unwrap(), 7);
        assert!(conn
            .version::<eddy_protocol::messages::ProduceRequest>()
            .is_err());
        let req = MetadataRequest::default();
        let (a, b) = tokio::join!(conn.send(&req), conn.send(&req));
        assert_eq!(a.unwrap().cluster_id.as_deref(), Some("first"));
        assert_eq!(b.unwrap().cluster_id.as_deref(), Some("second"));
        let err = conn.send(&req).await.unwrap_err();
        assert!(matches!(err, ClientError::Disconnected { .. }), "{err:?}");
        assert!(!conn.is_open());
        peer.await.unwrap();
    }

    #[tokio::test]
    async fn request_timeout_and_oversized_frame() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let peer = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let (h, _) = read_request(&mut s).await.unwrap();
            let ok = api_versions(&[(ApiKey::Metadata, 0, 12)], 0);
            write_response(&mut s, h.correlation_id, 0, &ok, h.request_api_version).await;
            // Never answer the first Metadata; answer the second with a huge size.
            let _ = read_request(&mut s).await.unwrap();
            let _ = read_request(&mut s).await.unwrap();
            s.write_i32(i32::MAX).await.unwrap();
            let _ = read_request(&mut s).await;
        });
        let mut o = opts();
        o.request_timeout = Duration::from_millis(200);
        let conn = Connection::connect(&addr, o).await.unwrap();
        let err = conn.send(&MetadataRequest::default()).await.unwrap_err();
        assert!(
            matches!(
                err,
                ClientError::Timeout {
                    api: ApiKey::Metadata,
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(err.to_string().contains("timed out after 200 ms"), "{err}");
        assert!(
            conn.shared.pending.lock().waiting.is_empty(),
            "timed-out entry removed"
        );
        let err = conn.send(&MetadataRequest::default()).await.unwrap_err();
        assert!(err.to_string().contains("invalid response size"), "{err}");
        peer.abort();
    }

    #[tokio::test]
    async fn refused_connection_is_one_sentence() {
        // Bind then drop to get a port nobody listens on.
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap().to_string();
        drop(l);
        let err = Connection::connect(&addr, opts()).await.unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("cannot connect to {addr}: connection refused")
        );
    }
}
