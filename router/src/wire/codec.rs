//! Length-encoded integers and strings, and a cursor for reading packet payloads.

/// The payload length of the packet at the start of `buf` when the whole packet is there,
/// carries sequence id `seq` and is no continuation (under `max_payload` bytes).
pub fn whole_packet(buf: &[u8], seq: u8, max_payload: usize) -> Option<usize> {
    let h = buf.get(..4)?;
    let len = usize::from(h[0]) | usize::from(h[1]) << 8 | usize::from(h[2]) << 16;
    (len < max_payload && buf.len() >= 4 + len && h[3] == seq).then_some(len)
}

/// Appends a length-encoded integer.
pub fn put_lenenc_int(buf: &mut Vec<u8>, v: u64) {
    let (b, n) = lenenc_int(v);
    buf.extend_from_slice(&b[..n]);
}

/// The length-encoded form of `v`: its bytes, and how many of them are used.
pub fn lenenc_int(v: u64) -> ([u8; 9], usize) {
    let mut b = [0u8; 9];
    let le = v.to_le_bytes();
    if v < 251 {
        b[0] = v as u8;
        (b, 1)
    } else if v < 1 << 16 {
        b[0] = 0xfc;
        b[1..3].copy_from_slice(&le[..2]);
        (b, 3)
    } else if v < 1 << 24 {
        b[0] = 0xfd;
        b[1..4].copy_from_slice(&le[..3]);
        (b, 4)
    } else {
        b[0] = 0xfe;
        b[1..].copy_from_slice(&le);
        (b, 9)
    }
}

/// Appends a length-encoded string.
pub fn put_lenenc_str(buf: &mut Vec<u8>, s: &[u8]) {
    put_lenenc_int(buf, s.len() as u64);
    buf.extend_from_slice(s);
}

/// A bounds-checked reader over a payload; every method returns `None` past the end, so a
/// malformed packet never panics.
pub struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Cursor { buf, pos: 0 }
    }

    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// The next byte, not consumed.
    pub fn peek(&self) -> Option<u8> {
        self.buf.get(self.pos).copied()
    }

    pub fn u8(&mut self) -> Option<u8> {
        let v = *self.buf.get(self.pos)?;
        self.pos += 1;
        Some(v)
    }

    pub fn u16(&mut self) -> Option<u16> {
        let b = self.take(2)?;
        Some(u16::from_le_bytes([b[0], b[1]]))
    }

    pub fn u32(&mut self) -> Option<u32> {
        let b = self.take(4)?;
        Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    pub fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(n)?;
        let s = self.buf.get(self.pos..end)?;
        self.pos = end;
        Some(s)
    }

    pub fn rest(&mut self) -> &'a [u8] {
        let s = &self.buf[self.pos..];
        self.pos = self.buf.len();
        s
    }

    /// Reads a NUL-terminated string (or to the end if there is no NUL).
    pub fn cstr(&mut self) -> Option<&'a [u8]> {
        let rest = self.buf.get(self.pos..)?;
        match rest.iter().position(|b| *b == 0) {
            Some(i) => {
                self.pos += i + 1;
                Some(&rest[..i])
            }
            None => {
                self.pos = self.buf.len();
                Some(rest)
            }
        }
    }

    pub fn lenenc_int(&mut self) -> Option<u64> {
        match self.u8()? {
            0xfc => self.u16().map(u64::from),
            0xfd => {
                let b = self.take(3)?;
                Some(u64::from(b[0]) | u64::from(b[1]) << 8 | u64::from(b[2]) << 16)
            }
            0xfe => {
                let b = self.take(8)?;
                let mut a = [0u8; 8];
                a.copy_from_slice(b);
                Some(u64::from_le_bytes(a))
            }
            v => Some(u64::from(v)),
        }
    }

    pub fn lenenc_str(&mut self) -> Option<&'a [u8]> {
        let n = usize::try_from(self.lenenc_int()?).ok()?;
        self.take(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_packets_are_told_from_partial_ones() {
        let p = [3, 0, 0, 7, b'a', b'b', b'c', 9];
        assert_eq!(whole_packet(&p, 7, 0xff_ffff), Some(3));
        // Out of sequence, cut short, no header, or a 16 MiB continuation: not whole.
        assert_eq!(whole_packet(&p, 6, 0xff_ffff), None);
        assert_eq!(whole_packet(&p[..6], 7, 0xff_ffff), None);
        assert_eq!(whole_packet(&p[..3], 7, 0xff_ffff), None);
        assert_eq!(whole_packet(&p, 7, 3), None);
    }

    #[test]
    fn lenenc_round_trips() {
        for v in [0u64, 250, 251, 65535, 65536, 1 << 24, u64::MAX] {
            let mut b = Vec::new();
            put_lenenc_int(&mut b, v);
            assert_eq!(Cursor::new(&b).lenenc_int(), Some(v));
        }
    }

    #[test]
    fn truncated_input_is_none() {
        assert_eq!(Cursor::new(&[0xfe, 1, 2]).lenenc_int(), None);
        assert_eq!(Cursor::new(&[5, b'a']).lenenc_str(), None);
    }
}
