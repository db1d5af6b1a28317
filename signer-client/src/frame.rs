//! Length-prefixed frames: a u32 big-endian length, then that many bytes of
//! JSON. Every read has a size cap and a deadline for the whole frame.
//!
//! Frames travel over any [`TimedStream`]: the Unix socket, and (feature
//! `relay`) the TLS link between a relay and the signer dialling it.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

/// The largest request frame: a targets metadata file's cap in base64, with
/// room for the rest of the request.
pub const MAX_REQUEST: usize = 16 * 1024 * 1024;
/// The largest response frame.
pub const MAX_RESPONSE: usize = 64 * 1024;
/// How long one frame may take to arrive (and a connection may stay idle).
pub const FRAME_DEADLINE: Duration = Duration::from_secs(10);

/// Why a frame could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// The peer closed the connection before a frame began.
    #[error("connection closed")]
    Closed,
    /// The frame announces more than the cap.
    #[error("frame of {len} bytes is larger than {max}")]
    TooLarge {
        /// The announced length.
        len: usize,
        /// The cap.
        max: usize,
    },
    /// The frame did not arrive within the deadline.
    #[error("frame not complete within {0:?}")]
    Deadline(Duration),
    /// The connection failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// A stream whose reads and writes can be given a timeout, so that a frame
/// has a deadline whatever carries it.
pub trait TimedStream: Read + Write {
    /// The timeout of each read (`None`: none).
    fn set_read_timeout(&mut self, timeout: Option<Duration>) -> std::io::Result<()>;
    /// The timeout of each write (`None`: none).
    fn set_write_timeout(&mut self, timeout: Option<Duration>) -> std::io::Result<()>;
}

impl TimedStream for UnixStream {
    fn set_read_timeout(&mut self, timeout: Option<Duration>) -> std::io::Result<()> {
        Self::set_read_timeout(self, timeout)
    }
    fn set_write_timeout(&mut self, timeout: Option<Duration>) -> std::io::Result<()> {
        Self::set_write_timeout(self, timeout)
    }
}

impl TimedStream for TcpStream {
    fn set_read_timeout(&mut self, timeout: Option<Duration>) -> std::io::Result<()> {
        Self::set_read_timeout(self, timeout)
    }
    fn set_write_timeout(&mut self, timeout: Option<Duration>) -> std::io::Result<()> {
        Self::set_write_timeout(self, timeout)
    }
}

fn read_full<S: TimedStream + ?Sized>(
    stream: &mut S,
    buf: &mut [u8],
    end: Instant,
    deadline: Duration,
    started: bool,
) -> Result<(), FrameError> {
    let mut filled = 0;
    while filled < buf.len() {
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(FrameError::Deadline(deadline));
        }
        stream.set_read_timeout(Some(left))?;
        match stream.read(&mut buf[filled..]) {
            Ok(0) if filled == 0 && !started => return Err(FrameError::Closed),
            Ok(0) => return Err(FrameError::Io(std::io::ErrorKind::UnexpectedEof.into())),
            Ok(n) => filled += n,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return Err(FrameError::Deadline(deadline));
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Reads one frame of at most `max` bytes within `deadline`.
pub fn read_frame<S: TimedStream + ?Sized>(
    stream: &mut S,
    max: usize,
    deadline: Duration,
) -> Result<Vec<u8>, FrameError> {
    let end = Instant::now() + deadline;
    let mut len = [0u8; 4];
    read_full(stream, &mut len, end, deadline, false)?;
    let len = u32::from_be_bytes(len) as usize;
    if len > max {
        return Err(FrameError::TooLarge { len, max });
    }
    let mut body = vec![0u8; len];
    read_full(stream, &mut body, end, deadline, true)?;
    Ok(body)
}

/// Writes one frame within `deadline`.
pub fn write_frame<S: TimedStream + ?Sized>(
    stream: &mut S,
    body: &[u8],
    deadline: Duration,
) -> Result<(), FrameError> {
    let len = u32::try_from(body.len()).map_err(|_| FrameError::TooLarge {
        len: body.len(),
        max: u32::MAX as usize,
    })?;
    stream.set_write_timeout(Some(deadline))?;
    stream.write_all(&len.to_be_bytes())?;
    stream.write_all(body)?;
    stream.flush()?;
    Ok(())
}
