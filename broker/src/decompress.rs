//! Decompression with an output cap: the one place Sluice inflates record data (the
//! console's message browser today; schema validation and pipelines later).
//!
//! A batch's compressed bytes are hostile input: a 90-byte snappy block can claim 4 GiB, a
//! 16 KB zstd frame can hold 512 MiB of zeros. So every codec here is driven as a stream
//! that stops at `limit` bytes of output and answers [`DecompressError::TooLarge`], naming
//! the limit; no allocation is sized by a length the input claims, beyond what the limit
//! already allows. The codecs are those of Kafka's `compression.type`: gzip, snappy (raw,
//! as librdkafka sends it, and Kafka's xerial framing, as the Java client sends it), lz4
//! (frame format) and zstd.
//!
//! Inflating is CPU work of up to tens of milliseconds per batch, so async callers use
//! [`decompress_blocking`], which runs it on the blocking pool and lets at most
//! [`CONCURRENT_DECOMPRESSIONS`] run at once: the memory held by inflated output is bounded
//! by that number times the limit, whatever the number of requests.

use std::io::Read;

use tokio::sync::Semaphore;

/// The default cap on one batch's decompressed size. Kafka batches are at most
/// `max.message.bytes` (1 MiB by default) compressed; 64 MiB leaves room for very
/// compressible data and still keeps a bomb far from the memory budget.
pub const DEFAULT_LIMIT: usize = 64 << 20;

/// Decompressions running at once in [`decompress_blocking`] (per process).
pub const CONCURRENT_DECOMPRESSIONS: usize = 2;

/// zstd frames may ask for a window of at most 2^this bytes (16 MiB); a frame declaring a
/// bigger one is refused instead of making the decoder allocate it. Levels up to 19 (every
/// level clients use by default) need 8 MiB at most.
const ZSTD_WINDOW_LOG_MAX: u32 = 24;

/// Output is read in pieces of this size, so the buffer grows with real output only.
const CHUNK: usize = 64 << 10;

/// Kafka's compression codecs (the batch attributes' low three bits, 1 to 4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    Gzip,
    Snappy,
    Lz4,
    Zstd,
}

impl Codec {
    /// The codec of a v2 batch's attributes: None for uncompressed, Err for an unknown id.
    pub fn from_attributes(attributes: i16) -> Result<Option<Codec>, DecompressError> {
        match attributes & 0x7 {
            0 => Ok(None),
            1 => Ok(Some(Codec::Gzip)),
            2 => Ok(Some(Codec::Snappy)),
            3 => Ok(Some(Codec::Lz4)),
            4 => Ok(Some(Codec::Zstd)),
            other => Err(DecompressError::UnknownCodec(other as u8)),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Codec::Gzip => "gzip",
            Codec::Snappy => "snappy",
            Codec::Lz4 => "lz4",
            Codec::Zstd => "zstd",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecompressError {
    #[error(
        "{codec} data decompresses to more than the limit of {} ({limit} bytes); not decompressed further",
        human(*limit)
    )]
    TooLarge { codec: &'static str, limit: usize },
    #[error("{codec} data is corrupt: {detail}")]
    Corrupt { codec: &'static str, detail: String },
    #[error(
        "zstd data asks for a window over the limit of {} (compressed with --ultra levels); not decompressed",
        human(*limit)
    )]
    ZstdWindow { limit: usize },
    #[error("unknown compression codec id {0} (Kafka knows 0 to 4)")]
    UnknownCodec(u8),
}

fn human(bytes: usize) -> String {
    if bytes >= 1 << 20 && bytes & ((1 << 20) - 1) == 0 {
        format!("{} MiB", bytes >> 20)
    } else if bytes >= 1 << 10 && bytes & ((1 << 10) - 1) == 0 {
        format!("{} KiB", bytes >> 10)
    } else {
        format!("{bytes} bytes")
    }
}

fn corrupt(codec: Codec, detail: impl std::fmt::Display) -> DecompressError {
    DecompressError::Corrupt {
        codec: codec.name(),
        detail: detail.to_string(),
    }
}

fn too_large(codec: Codec, limit: usize) -> DecompressError {
    DecompressError::TooLarge {
        codec: codec.name(),
        limit,
    }
}

/// Decompresses `input` (one batch's records section) with `codec`, refusing to produce
/// more than `limit` bytes. Blocking: async code calls [`decompress_blocking`].
pub fn decompress(codec: Codec, input: &[u8], limit: usize) -> Result<Vec<u8>, DecompressError> {
    match codec {
        Codec::Gzip => read_capped(codec, flate2::read::MultiGzDecoder::new(input), limit),
        Codec::Lz4 => {
            let decoder = lz4::Decoder::new(input).map_err(|e| corrupt(codec, e))?;
            read_capped(codec, decoder, limit)
        }
        Codec::Zstd => {
            let mut decoder =
                zstd::stream::read::Decoder::with_buffer(input).map_err(|e| corrupt(codec, e))?;
            decoder
                .window_log_max(ZSTD_WINDOW_LOG_MAX)
                .map_err(|e| corrupt(codec, e))?;
            read_capped(codec, decoder, limit).map_err(|e| match e {
                // zstd's words for a frame whose window passes `window_log_max`.
                DecompressError::Corrupt { detail, .. } if detail.contains("too much memory") => {
                    DecompressError::ZstdWindow {
                        limit: 1 << ZSTD_WINDOW_LOG_MAX,
                    }
                }
                other => other,
            })
        }
        Codec::Snappy => snappy(input, limit),
    }
}

/// [`decompress`] on the blocking pool, at most [`CONCURRENT_DECOMPRESSIONS`] at a time.
pub async fn decompress_blocking(
    codec: Codec,
    input: bytes::Bytes,
    limit: usize,
) -> Result<Vec<u8>, DecompressError> {
    run_blocking(move || decompress(codec, &input, limit)).await
}

/// Runs CPU work that inflates hostile data on the blocking pool, under the same bound on
/// concurrent runs as [`decompress_blocking`] (for callers that decompress and then parse
/// in one go, like the message browser).
pub async fn run_blocking<T, F>(work: F) -> Result<T, DecompressError>
where
    F: FnOnce() -> Result<T, DecompressError> + Send + 'static,
    T: Send + 'static,
{
    // A resource bound, not configuration: one per process, like the blocking pool itself.
    static SLOTS: Semaphore = Semaphore::const_new(CONCURRENT_DECOMPRESSIONS);
    let _slot = SLOTS
        .acquire()
        .await
        .map_err(|e| DecompressError::Corrupt {
            codec: "any",
            detail: format!("decompression slots closed: {e}"),
        })?;
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| DecompressError::Corrupt {
            codec: "any",
            detail: format!("decompression task failed: {e}"),
        })?
}

/// Reads a decoder to its end, or to `limit + 1` bytes: past the limit it stops and
/// refuses. The buffer grows with the output actually produced.
fn read_capped<R: Read>(codec: Codec, reader: R, limit: usize) -> Result<Vec<u8>, DecompressError> {
    let mut reader = reader.take(limit as u64 + 1);
    let mut out = Vec::new();
    let mut chunk = vec![0u8; CHUNK];
    loop {
        let n = match reader.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(corrupt(codec, e)),
        };
        if out.len() + n > limit {
            return Err(too_large(codec, limit));
        }
        out.extend_from_slice(&chunk[..n]);
    }
    Ok(out)
}

/// Kafka's xerial framing of snappy (the Java client's): a 16-byte header, then blocks of
/// a big-endian u32 length and one raw snappy block.
const XERIAL_MAGIC: &[u8; 8] = b"\x82SNAPPY\x00";
const XERIAL_HEADER_LEN: usize = 16;

/// The most a raw snappy block can expand: a 3-byte copy emits at most 64 bytes, and no
/// element does better. A block claiming more than this times its size (plus slack for
/// the length prefix) is corrupt, whatever it says.
const SNAPPY_MAX_RATIO: usize = 22;

fn snappy(input: &[u8], limit: usize) -> Result<Vec<u8>, DecompressError> {
    let codec = Codec::Snappy;
    if input.len() >= XERIAL_HEADER_LEN && input.starts_with(XERIAL_MAGIC) {
        let mut out = Vec::new();
        let mut rest = &input[XERIAL_HEADER_LEN..];
        while !rest.is_empty() {
            if rest.len() < 4 {
                return Err(corrupt(codec, "truncated xerial block length"));
            }
            let len = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
            rest = &rest[4..];
            if rest.len() < len {
                return Err(corrupt(
                    codec,
                    format!("xerial block of {len} bytes, {} left", rest.len()),
                ));
            }
            let (block, tail) = rest.split_at(len);
            snappy_block(block, limit - out.len(), limit, &mut out)?;
            rest = tail;
        }
        return Ok(out);
    }
    let mut out = Vec::new();
    snappy_block(input, limit, limit, &mut out)?;
    Ok(out)
}

/// Appends one raw snappy block to `out`, refusing blocks that would pass `room` bytes.
/// The block states its length up front; it is believed only up to the room left and the
/// most the block's size can expand to, so the allocation is bounded by both.
fn snappy_block(
    block: &[u8],
    room: usize,
    limit: usize,
    out: &mut Vec<u8>,
) -> Result<(), DecompressError> {
    let codec = Codec::Snappy;
    let claimed = snap::raw::decompress_len(block).map_err(|e| corrupt(codec, e))?;
    if claimed > room {
        return Err(too_large(codec, limit));
    }
    if claimed > block.len().saturating_mul(SNAPPY_MAX_RATIO) + 16 {
        return Err(corrupt(
            codec,
            format!(
                "a {}-byte block claims {claimed} bytes, more than snappy can expand to",
                block.len()
            ),
        ));
    }
    let start = out.len();
    out.resize(start + claimed, 0);
    let n = snap::raw::Decoder::new()
        .decompress(block, &mut out[start..])
        .map_err(|e| corrupt(codec, e))?;
    out.truncate(start + n);
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    const DATA: &[u8] = b"the quick brown fox jumps over the lazy dog, again and again and again";

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    fn lz4(data: &[u8]) -> Vec<u8> {
        let mut e = lz4::EncoderBuilder::new().build(Vec::new()).unwrap();
        e.write_all(data).unwrap();
        let (out, r) = e.finish();
        r.unwrap();
        out
    }

    fn xerial(data: &[u8]) -> Vec<u8> {
        let mut out = b"\x82SNAPPY\x00\x00\x00\x00\x01\x00\x00\x00\x01".to_vec();
        for piece in data.chunks(16) {
            let block = snap::raw::Encoder::new().compress_vec(piece).unwrap();
            out.extend_from_slice(&(block.len() as u32).to_be_bytes());
            out.extend_from_slice(&block);
        }
        out
    }

    #[test]
    fn every_codec_round_trips() {
        let raw_snappy = snap::raw::Encoder::new().compress_vec(DATA).unwrap();
        let zstd = zstd::encode_all(DATA, 3).unwrap();
        for (codec, input) in [
            (Codec::Gzip, gzip(DATA)),
            (Codec::Snappy, raw_snappy),
            (Codec::Snappy, xerial(DATA)),
            (Codec::Lz4, lz4(DATA)),
            (Codec::Zstd, zstd),
        ] {
            assert_eq!(
                decompress(codec, &input, 1 << 20).unwrap(),
                DATA,
                "{codec:?}"
            );
            // Exactly at the limit is fine; one byte under is refused, naming the limit.
            assert_eq!(decompress(codec, &input, DATA.len()).unwrap(), DATA);
            let err = decompress(codec, &input, DATA.len() - 1).unwrap_err();
            assert_eq!(
                err,
                DecompressError::TooLarge {
                    codec: codec.name(),
                    limit: DATA.len() - 1
                },
                "{codec:?}"
            );
        }
    }

    #[test]
    fn bombs_stop_at_the_limit() {
        let zeros = vec![0u8; 8 << 20];
        let limit = 1 << 20;
        for (codec, input) in [
            (Codec::Gzip, gzip(&zeros)),
            (Codec::Lz4, lz4(&zeros)),
            (Codec::Zstd, zstd::encode_all(&zeros[..], 19).unwrap()),
            (Codec::Snappy, xerial(&zeros[..64 << 10])),
        ] {
            let err = decompress(codec, &input, limit.min(32 << 10)).unwrap_err();
            assert!(
                err.to_string().contains("more than the limit of 32 KiB"),
                "{codec:?}: {err}"
            );
        }
        // A raw snappy header claiming 4 GiB: refused before any allocation.
        let mut claim = Vec::new();
        let mut n: u64 = (4u64 << 30) - 1;
        while n >= 0x80 {
            claim.push((n as u8) | 0x80);
            n >>= 7;
        }
        claim.push(n as u8);
        claim.extend_from_slice(&[0u8; 80]);
        let err = decompress(Codec::Snappy, &claim, DEFAULT_LIMIT).unwrap_err();
        assert!(err.to_string().contains("limit of 64 MiB"), "{err}");
        // Claiming less than the limit but more than snappy can expand to: corrupt.
        let mut claim = vec![0x80, 0x80, 0x80, 0x10]; // 32 MiB
        claim.extend_from_slice(&[0u8; 80]);
        let err = decompress(Codec::Snappy, &claim, DEFAULT_LIMIT).unwrap_err();
        assert!(
            err.to_string().contains("more than snappy can expand"),
            "{err}"
        );
    }

    #[test]
    fn hostile_input_is_an_error_not_a_panic() {
        let junk: Vec<u8> = (0..4096u32)
            .map(|i| (i.wrapping_mul(2_654_435_761u32) >> 13) as u8)
            .collect();
        for codec in [Codec::Gzip, Codec::Snappy, Codec::Lz4, Codec::Zstd] {
            for cut in [0, 1, 7, 16, 100, 4096] {
                let _ = decompress(codec, &junk[..cut], 1 << 20);
            }
        }
        // A truncated stream of each codec is corrupt.
        let whole = zstd::encode_all(DATA, 3).unwrap();
        assert!(matches!(
            decompress(Codec::Zstd, &whole[..whole.len() - 3], 1 << 20),
            Err(DecompressError::Corrupt { .. })
        ));
        // A frame asking for a 64 MiB window (long-distance mode) is refused as such.
        let mut e = zstd::stream::write::Encoder::new(Vec::new(), 3).unwrap();
        e.window_log(26).unwrap();
        e.long_distance_matching(true).unwrap();
        e.write_all(&vec![7u8; 1 << 20]).unwrap();
        let wide = e.finish().unwrap();
        let err = decompress(Codec::Zstd, &wide, DEFAULT_LIMIT).unwrap_err();
        assert_eq!(
            err,
            DecompressError::ZstdWindow { limit: 16 << 20 },
            "{err}"
        );
        assert!(matches!(
            Codec::from_attributes(5),
            Err(DecompressError::UnknownCodec(5))
        ));
    }

    #[tokio::test]
    async fn blocking_variant_runs_off_the_async_workers() {
        let input = bytes::Bytes::from(gzip(DATA));
        let out = decompress_blocking(Codec::Gzip, input, 1 << 20)
            .await
            .unwrap();
        assert_eq!(out, DATA);
    }
}
