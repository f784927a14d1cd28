//! One client connection: read size-prefixed frames, decode the request header, hand the
//! request to the router, and write the responses back in request order.
//!
//! Requests on a connection are handled one after the other (as Kafka does: it mutes a
//! channel while a request is in flight), so responses leave in request order. A separate
//! writer task overlaps writing a response with reading and handling the next request.
//! A malformed or oversize frame closes this connection only.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader, BufWriter};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

use crate::broker::Broker;
use crate::router;

/// Upper bound of responses queued for the writer (back-pressure on a slow reader).
const WRITE_QUEUE_DEPTH: usize = 64;

/// Why a connection was closed by the broker.
#[derive(Debug, thiserror::Error)]
pub enum ConnectionError {
    #[error("frame of {size} bytes is larger than socket.request.max.bytes ({max})")]
    FrameTooLarge { size: i64, max: i64 },
    #[error("negative frame size {0}")]
    NegativeFrameSize(i32),
    #[error("malformed request: {0}")]
    Malformed(String),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Serves one connection until the peer closes it or sends something malformed.
pub async fn serve(broker: Arc<Broker>, stream: TcpStream) {
    let peer = stream
        .peer_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    let _ = stream.set_nodelay(true);
    let (rd, wr) = stream.into_split();
    let (tx, rx) = mpsc::channel::<Vec<Bytes>>(WRITE_QUEUE_DEPTH);
    let writer = tokio::spawn(write_loop(wr, rx));
    match read_loop(&broker, rd, tx).await {
        Ok(()) => tracing::debug!(%peer, "connection closed by peer"),
        Err(ConnectionError::Io(e)) => tracing::debug!(%peer, error = %e, "connection closed"),
        Err(e) => tracing::warn!(%peer, error = %e, "closing connection"),
    }
    let _ = writer.await;
}

async fn read_loop(
    broker: &Arc<Broker>,
    rd: tokio::net::tcp::OwnedReadHalf,
    tx: mpsc::Sender<Vec<Bytes>>,
) -> Result<(), ConnectionError> {
    let max_frame = broker.broker_i64("socket.request.max.bytes", 104_857_600);
    let mut rd = BufReader::with_capacity(64 * 1024, rd);
    loop {
        let size = match rd.read_i32().await {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        if size < 0 {
            return Err(ConnectionError::NegativeFrameSize(size));
        }
        if i64::from(size) > max_frame {
            return Err(ConnectionError::FrameTooLarge {
                size: i64::from(size),
                max: max_frame,
            });
        }
        let size = size as usize;
        let mut frame = BytesMut::with_capacity(size);
        while frame.len() < size {
            let before = frame.len();
            let mut limited = (&mut rd).take((size - before) as u64);
            if limited.read_buf(&mut frame).await? == 0 {
                return Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof).into());
            }
        }
        match router::handle_frame(broker, frame.freeze()).await {
            Ok(Some(chunks)) => {
                if tx.send(chunks).await.is_err() {
                    return Ok(());
                }
            }
            Ok(None) => {}
            Err(e) => return Err(ConnectionError::Malformed(e.to_string())),
        }
    }
}

async fn write_loop(wr: tokio::net::tcp::OwnedWriteHalf, mut rx: mpsc::Receiver<Vec<Bytes>>) {
    let mut wr = BufWriter::with_capacity(64 * 1024, wr);
    while let Some(chunks) = rx.recv().await {
        for chunk in chunks {
            if wr.write_all(&chunk).await.is_err() {
                return;
            }
        }
        if rx.is_empty() && wr.flush().await.is_err() {
            return;
        }
    }
    let _ = wr.flush().await;
}
