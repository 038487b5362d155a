//! Response frames as lists of byte pieces, so that record data goes from the read cache to
//! the socket without being copied into the frame.
//!
//! A fetch answer is mostly record batches already in memory (slices of cached object
//! chunks). The Kafka encoder wants each partition's records as one contiguous `Bytes`, and
//! gathering them costs a copy and a fresh allocation the size of the answer (measured: a
//! fifth of the agent's CPU under a Java consumer). Instead, a partition's records are
//! given to the encoder as a *placeholder* of the right length, and the buffer the encoder
//! writes into ([`SpliceBuf`]) recognises the placeholder when it arrives and puts the
//! real pieces in its place. Everything else the encoder writes is copied as usual.

use std::collections::{HashMap, VecDeque};
use std::io;
use std::ops::Range;
use std::sync::LazyLock;

use bytes::buf::UninitSlice;
use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::protocol::buf::ByteBufMut;
use tokio::io::{AsyncWrite, AsyncWriteExt};

/// The longest records of one partition that can be spliced (clients ask for 1 MiB per
/// partition by default); longer ones are copied.
const PLACEHOLDER_MAX: usize = 16 << 20;
/// Never read or written: only its address marks a placeholder. Zeroed memory from the
/// allocator is fresh pages, which the kernel backs only when touched.
static PLACEHOLDER: LazyLock<Box<[u8]>> =
    LazyLock::new(|| vec![0u8; PLACEHOLDER_MAX].into_boxed_slice());
/// Pieces shorter than this are copied into the frame's own buffer: below it, a separate
/// piece costs more (in `writev` entries) than the copy.
const SHARE_MIN: usize = 2048;

/// Record bytes for one partition, gathered as pieces.
#[derive(Default, Debug)]
pub struct Pieces {
    parts: Vec<Bytes>,
    tail: BytesMut,
    len: usize,
    /// The buffers (address, length) that shared pieces are slices of: a slice keeps its
    /// whole buffer (a cached chunk) alive, even once the cache has let go of it.
    held: Vec<(usize, usize)>,
}

impl Pieces {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Appends a copy of `data`.
    pub fn push_copy(&mut self, data: &[u8]) {
        if self.tail.capacity() - self.tail.len() < data.len() {
            self.tail.reserve(data.len().max(4096));
        }
        self.tail.extend_from_slice(data);
        self.len += data.len();
    }

    /// Appends `data` itself (small pieces are copied).
    pub fn push(&mut self, data: Bytes) {
        let all = 0..data.len();
        self.push_slice(&data, all);
    }

    /// Appends `range` of `buffer` as a slice of it (small ranges are copied).
    pub fn push_slice(&mut self, buffer: &Bytes, range: Range<usize>) {
        if range.len() < SHARE_MIN {
            return self.push_copy(&buffer[range]);
        }
        let id = (buffer.as_ptr() as usize, buffer.len());
        if self.held.last() != Some(&id) {
            self.held.push(id);
        }
        self.seal_tail();
        self.len += range.len();
        self.parts.push(buffer.slice(range));
    }

    /// The buffers shared pieces keep alive, as (address, length).
    pub fn held(&self) -> &[(usize, usize)] {
        &self.held
    }

    fn seal_tail(&mut self) {
        if !self.tail.is_empty() {
            self.parts.push(self.tail.split().freeze());
        }
    }

    /// The pieces, in order.
    pub fn into_parts(mut self) -> Vec<Bytes> {
        self.seal_tail();
        self.parts
    }

    /// All bytes in one buffer of their own: a copy, unless they are one piece that
    /// shares no other buffer.
    pub fn concat(self) -> Bytes {
        let len = self.len;
        let shares = !self.held.is_empty();
        let mut parts = self.into_parts();
        if parts.len() == 1 && !shares {
            return parts.pop().expect("one part");
        }
        let mut out = BytesMut::with_capacity(len);
        for p in parts {
            out.extend_from_slice(&p);
        }
        out.freeze()
    }
}

/// The records spliced into one response, in the order the encoder writes them.
#[derive(Default, Debug)]
pub struct Splices {
    queue: VecDeque<Vec<Bytes>>,
    /// Every buffer the spliced pieces keep alive, once each.
    held: HashMap<usize, usize>,
}

impl Splices {
    /// What to give the encoder for `pieces`: a placeholder that this list will replace
    /// by the pieces themselves, or (too long, or one piece anyway) the bytes.
    pub fn register(&mut self, pieces: Pieces) -> Bytes {
        let len = pieces.len();
        if len == 0 || len > PLACEHOLDER_MAX || pieces.parts.is_empty() && pieces.tail.len() == len
        {
            return pieces.concat();
        }
        self.held.extend(pieces.held.iter().copied());
        self.queue.push_back(pieces.into_parts());
        let all: &'static [u8] = &PLACEHOLDER;
        Bytes::from_static(&all[..len])
    }

    /// Bytes of the buffers that the registered pieces keep alive.
    pub fn held_bytes(&self) -> usize {
        self.held.values().sum()
    }

    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }
}

/// A frame: byte pieces written one after the other.
#[derive(Debug)]
pub struct Frame {
    parts: Vec<Bytes>,
    len: usize,
    /// The memory the frame keeps alive until written: its own bytes, and the whole
    /// buffers its spliced pieces are slices of.
    memory: usize,
}

impl From<Bytes> for Frame {
    fn from(b: Bytes) -> Self {
        Frame {
            len: b.len(),
            memory: b.len(),
            parts: vec![b],
        }
    }
}

impl Frame {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn memory(&self) -> usize {
        self.memory
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The whole frame in one buffer (tests, and tools that want it whole).
    pub fn to_bytes(&self) -> Bytes {
        let mut out = BytesMut::with_capacity(self.len);
        for p in &self.parts {
            out.extend_from_slice(p);
        }
        out.freeze()
    }

    /// Writes the frame, several pieces per system call.
    pub async fn write_to<W: AsyncWrite + Unpin>(self, w: &mut W) -> io::Result<()> {
        let mut parts = self.parts;
        if parts.len() == 1 {
            return w.write_all(&parts[0]).await;
        }
        let mut at = 0usize;
        while at < parts.len() {
            let slices: Vec<io::IoSlice<'_>> = parts[at..]
                .iter()
                .take(64)
                .map(|p| io::IoSlice::new(p))
                .collect();
            let mut n = w.write_vectored(&slices).await?;
            drop(slices);
            if n == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
            while n > 0 {
                let p = &mut parts[at];
                if n >= p.len() {
                    n -= p.len();
                    at += 1;
                } else {
                    p.advance(n);
                    n = 0;
                }
            }
            while at < parts.len() && parts[at].is_empty() {
                at += 1;
            }
        }
        Ok(())
    }
}

/// The buffer a response is encoded into: copies what the encoder writes, except the
/// registered placeholders, which become the pieces they stand for.
pub struct SpliceBuf {
    done: Vec<Bytes>,
    done_len: usize,
    /// Of `done_len`, the bytes of spliced pieces.
    spliced_len: usize,
    cur: BytesMut,
    splices: Splices,
}

impl SpliceBuf {
    pub fn new(capacity: usize, splices: Splices) -> Self {
        SpliceBuf {
            done: Vec::new(),
            done_len: 0,
            spliced_len: 0,
            cur: BytesMut::with_capacity(capacity),
            splices,
        }
    }

    /// The frame, with its 4-byte length in front. Fails if a placeholder was not seen
    /// (the encoder did not write it in one piece, as this module expects).
    pub fn finish(mut self) -> anyhow::Result<Frame> {
        anyhow::ensure!(
            self.splices.is_empty(),
            "{} record sets were not spliced into the response",
            self.splices.queue.len()
        );
        if !self.cur.is_empty() {
            self.done_len += self.cur.len();
            self.done.push(self.cur.split().freeze());
        }
        let len = self.done_len;
        let prefix = Bytes::copy_from_slice(&i32::try_from(len)?.to_be_bytes());
        let mut parts = Vec::with_capacity(self.done.len() + 1);
        parts.push(prefix);
        parts.append(&mut self.done);
        Ok(Frame {
            parts,
            len: len + 4,
            memory: len + 4 - self.spliced_len + self.splices.held_bytes(),
        })
    }
}

// SAFETY: every method hands out or advances `cur`, a BytesMut, whose own implementation
// upholds BufMut's contract. (The one unsafe item of this module: the encoder's buffer
// trait is an unsafe trait.)
#[allow(unsafe_code)]
unsafe impl BufMut for SpliceBuf {
    fn remaining_mut(&self) -> usize {
        self.cur.remaining_mut()
    }

    unsafe fn advance_mut(&mut self, cnt: usize) {
        // SAFETY: the caller's promise about `cur`'s chunk is passed on unchanged.
        unsafe { self.cur.advance_mut(cnt) }
    }

    fn chunk_mut(&mut self) -> &mut UninitSlice {
        self.cur.chunk_mut()
    }

    fn put_slice(&mut self, src: &[u8]) {
        let is_placeholder = src.as_ptr() == PLACEHOLDER.as_ptr() && !src.is_empty();
        if is_placeholder {
            if let Some(parts) = self.splices.queue.pop_front() {
                if !self.cur.is_empty() {
                    self.done_len += self.cur.len();
                    self.done.push(self.cur.split().freeze());
                }
                for p in parts {
                    self.done_len += p.len();
                    self.spliced_len += p.len();
                    self.done.push(p);
                }
                return;
            }
        }
        self.cur.extend_from_slice(src);
    }
}

impl ByteBufMut for SpliceBuf {
    fn offset(&self) -> usize {
        self.done_len + self.cur.len()
    }

    // Gaps (length fields filled in later) only ever lie in what is still being copied:
    // no message with a spliced field writes one around it.
    fn seek(&mut self, offset: usize) {
        self.cur.resize(offset.saturating_sub(self.done_len), 0);
    }

    fn range(&mut self, r: Range<usize>) -> &mut [u8] {
        let d = self.done_len;
        &mut self.cur[r.start - d..r.end - d]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pieces_of(chunks: &[&[u8]]) -> Pieces {
        let mut p = Pieces::default();
        for c in chunks {
            p.push(Bytes::copy_from_slice(c));
        }
        p
    }

    #[test]
    fn pieces_keep_order() {
        let big = vec![7u8; 5000];
        let mut p = pieces_of(&[b"ab", &big, b"cd"]);
        p.push_copy(b"ef");
        assert_eq!(p.len(), 5006);
        let mut expect = b"ab".to_vec();
        expect.extend_from_slice(&big);
        expect.extend_from_slice(b"cdef");
        assert_eq!(&p.concat()[..], &expect[..]);
    }

    #[tokio::test]
    async fn frames_write_every_piece_in_order() {
        let big = vec![9u8; 300_000];
        let mut splices = Splices::default();
        let mut pieces = Pieces::default();
        pieces.push_copy(b"head");
        pieces.push(Bytes::from(big.clone()));
        let placeholder = splices.register(pieces);
        let mut buf = SpliceBuf::new(16, splices);
        buf.put_slice(b"before");
        buf.put_slice(&placeholder);
        buf.put_slice(b"after");
        let frame = buf.finish().unwrap();
        let mut expect = Vec::new();
        expect.extend_from_slice(&(6i32 + 4 + 300_000 + 5).to_be_bytes());
        expect.extend_from_slice(b"beforehead");
        expect.extend_from_slice(&big);
        expect.extend_from_slice(b"after");
        assert_eq!(frame.len(), expect.len());
        assert_eq!(&frame.to_bytes()[..], &expect[..]);
        // A socket that takes a few bytes at a time still gets everything.
        let (mut a, mut b) = tokio::io::duplex(1000);
        let reader = tokio::spawn(async move {
            let mut got = Vec::new();
            tokio::io::AsyncReadExt::read_to_end(&mut b, &mut got)
                .await
                .unwrap();
            got
        });
        frame.write_to(&mut a).await.unwrap();
        drop(a);
        assert_eq!(reader.await.unwrap(), expect);
    }

    /// A frame counts the whole chunks its slices keep alive, each once; a copy keeps none.
    #[test]
    fn frames_count_the_chunks_they_hold() {
        let chunk = Bytes::from(vec![3u8; 1 << 20]);
        let mut splices = Splices::default();
        for part in 0..2 {
            let mut pieces = Pieces::default();
            pieces.push_copy(b"basebase");
            pieces.push_slice(&chunk, part * 16384..(part + 1) * 16384);
            pieces.push_slice(&chunk, 100_000 + part * 16384..100_000 + (part + 1) * 16384);
            assert_eq!(pieces.held(), &[(chunk.as_ptr() as usize, 1 << 20)]);
            let _ = splices.register(pieces);
        }
        assert_eq!(splices.held_bytes(), 1 << 20);
        let mut buf = SpliceBuf::new(16, Splices::default());
        buf.put_slice(b"x");
        assert_eq!(buf.finish().unwrap().memory(), 5);
        let mut pieces = Pieces::default();
        pieces.push_slice(&chunk, 0..16384);
        let copied = pieces.concat();
        assert_eq!(copied.len(), 16384);
        assert_ne!(
            copied.as_ptr(),
            chunk.as_ptr(),
            "a copy must not share the chunk"
        );
    }

    #[test]
    fn an_unseen_placeholder_is_an_error() {
        let mut splices = Splices::default();
        let mut pieces = Pieces::default();
        pieces.push(Bytes::from(vec![1u8; 4096]));
        pieces.push(Bytes::from(vec![2u8; 4096]));
        let _ = splices.register(pieces);
        let buf = SpliceBuf::new(16, splices);
        assert!(buf.finish().is_err());
    }
}
