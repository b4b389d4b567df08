//! The envelope around every stored value: a format version and a CRC-32 of the payload, so a
//! damaged value is detected and skipped instead of being decoded into garbage.
//!
//! Layout: `[format: u8][crc32(payload): u32 LE][payload]`.

/// Format of the envelope and of the payloads this build writes.
pub const FORMAT: u8 = 1;

const HEADER: usize = 5;

/// Bytes the envelope adds to a payload.
pub const SEAL_OVERHEAD: u64 = HEADER as u64;

/// Why a stored value could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Shorter than the envelope header.
    #[error("value is {len} bytes, shorter than its 5-byte header")]
    Truncated {
        /// Bytes present.
        len: usize,
    },
    /// Written by a format this build does not know.
    #[error("value has format {found}, this build reads format {FORMAT}")]
    Format {
        /// The format byte found.
        found: u8,
    },
    /// The checksum does not match: the bytes were damaged.
    #[error(
        "checksum mismatch (stored {stored:08x}, computed {computed:08x}): the value is damaged"
    )]
    Checksum {
        /// The checksum in the header.
        stored: u32,
        /// The checksum of the payload as found.
        computed: u32,
    },
    /// The checksum matched but the payload did not parse (a bug, or a hand-edited store).
    #[error("payload does not parse: {0}")]
    Payload(String),
}

/// Wraps `payload` in the envelope.
pub fn seal(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER + payload.len());
    out.push(FORMAT);
    out.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
    out.extend_from_slice(payload);
    out
}

/// Checks the envelope and returns the payload.
pub fn open(value: &[u8]) -> Result<&[u8], DecodeError> {
    if value.len() < HEADER {
        return Err(DecodeError::Truncated { len: value.len() });
    }
    if value[0] != FORMAT {
        return Err(DecodeError::Format { found: value[0] });
    }
    let stored = u32::from_le_bytes(value[1..HEADER].try_into().expect("4 bytes"));
    let payload = &value[HEADER..];
    let computed = crc32fast::hash(payload);
    if stored != computed {
        return Err(DecodeError::Checksum { stored, computed });
    }
    Ok(payload)
}

/// Seals a serde value as JSON.
pub fn seal_json<T: serde::Serialize>(value: &T) -> Vec<u8> {
    // Serialising plain data structs to JSON cannot fail.
    seal(&serde_json::to_vec(value).expect("records serialise"))
}

/// Opens and parses a JSON value.
pub fn open_json<T: serde::de::DeserializeOwned>(value: &[u8]) -> Result<T, DecodeError> {
    serde_json::from_slice(open(value)?).map_err(|e| DecodeError::Payload(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_value_opens_to_its_payload() {
        assert_eq!(open(&seal(b"hello")).unwrap(), b"hello");
        assert_eq!(open(&seal(b"")).unwrap(), b"");
    }

    #[test]
    fn any_flipped_byte_is_detected() {
        let sealed = seal(b"{\"state\":\"Ready\",\"cwd\":\"/tmp\"}");
        for i in 0..sealed.len() {
            let mut damaged = sealed.clone();
            damaged[i] ^= 0x5a;
            assert!(open(&damaged).is_err(), "flip at {i} went unnoticed");
        }
    }

    #[test]
    fn short_and_foreign_values_are_named() {
        assert_eq!(open(&[1, 2]), Err(DecodeError::Truncated { len: 2 }));
        let mut v = seal(b"x");
        v[0] = 9;
        assert_eq!(open(&v), Err(DecodeError::Format { found: 9 }));
    }
}
