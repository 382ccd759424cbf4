//! Just enough of the protobuf wire format to walk a received message in
//! place: each field's tag and value, length-delimited values as slices of
//! the buffer. A Check request is read this way (see `check_request`), so
//! its headers cost a few offsets each rather than a message, two `Bytes`
//! and their reference counts.
//!
//! What it refuses is what prost refuses while decoding: a truncated or
//! overlong varint, a length past the end, a tag of 0, an unknown wire type,
//! an end-group without its start, and groups nested past prost's
//! recursion limit.

/// prost's recursion limit, which also bounds nested groups.
const MAX_DEPTH: u32 = 100;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("buffer underflow")]
    Truncated,
    #[error("invalid varint")]
    Varint,
    #[error("invalid key")]
    Key,
    #[error("invalid wire type {0}")]
    WireType(u64),
    #[error("unexpected end group tag")]
    EndGroup,
    #[error("recursion limit reached")]
    TooDeep,
    #[error("{0}: invalid wire type (expected length-delimited)")]
    NotDelimited(&'static str),
    #[error("{0} is not UTF-8")]
    NotUtf8(&'static str),
}

/// A field's value; only length-delimited ones are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Value<'a> {
    Delimited(&'a [u8]),
    Other,
}

impl<'a> Value<'a> {
    /// The bytes of a field declared `bytes`, `string` or a message.
    pub fn delimited(self, field: &'static str) -> Result<&'a [u8], WireError> {
        match self {
            Value::Delimited(bytes) => Ok(bytes),
            Value::Other => Err(WireError::NotDelimited(field)),
        }
    }
}

/// The fields of one message, in the order received.
pub struct Fields<'a> {
    rest: &'a [u8],
}

pub fn fields(message: &[u8]) -> Fields<'_> {
    Fields { rest: message }
}

impl<'a> Fields<'a> {
    fn varint(&mut self) -> Result<u64, WireError> {
        let mut value = 0u64;
        for (i, &byte) in self.rest.iter().enumerate().take(10) {
            // The tenth byte may only hold the top bit.
            if i == 9 && byte > 1 {
                return Err(WireError::Varint);
            }
            value |= u64::from(byte & 0x7f) << (7 * i);
            if byte < 0x80 {
                self.rest = &self.rest[i + 1..];
                return Ok(value);
            }
        }
        Err(if self.rest.len() < 10 {
            WireError::Truncated
        } else {
            WireError::Varint
        })
    }

    fn key(&mut self) -> Result<(u32, u64), WireError> {
        let key = u32::try_from(self.varint()?).map_err(|_| WireError::Key)?;
        let tag = key >> 3;
        if tag == 0 {
            return Err(WireError::Key);
        }
        Ok((tag, u64::from(key & 7)))
    }

    fn take(&mut self, len: u64) -> Result<&'a [u8], WireError> {
        let len = usize::try_from(len).map_err(|_| WireError::Truncated)?;
        if len > self.rest.len() {
            return Err(WireError::Truncated);
        }
        let (taken, rest) = self.rest.split_at(len);
        self.rest = rest;
        Ok(taken)
    }

    /// Skips the value of a field of wire type `wire`; groups to their end.
    fn skip(&mut self, tag: u32, wire: u64, depth: u32) -> Result<(), WireError> {
        if depth >= MAX_DEPTH {
            return Err(WireError::TooDeep);
        }
        match wire {
            0 => self.varint().map(drop),
            1 => self.take(8).map(drop),
            5 => self.take(4).map(drop),
            2 => {
                let len = self.varint()?;
                self.take(len).map(drop)
            }
            3 => loop {
                let (inner, inner_wire) = self.key()?;
                if inner_wire == 4 {
                    return if inner == tag {
                        Ok(())
                    } else {
                        Err(WireError::EndGroup)
                    };
                }
                self.skip(inner, inner_wire, depth + 1)?;
            },
            4 => Err(WireError::EndGroup),
            other => Err(WireError::WireType(other)),
        }
    }

    fn next_field(&mut self) -> Result<(u32, Value<'a>), WireError> {
        let (tag, wire) = self.key()?;
        if wire == 2 {
            let len = self.varint()?;
            return Ok((tag, Value::Delimited(self.take(len)?)));
        }
        self.skip(tag, wire, 0)?;
        Ok((tag, Value::Other))
    }
}

impl<'a> Iterator for Fields<'a> {
    type Item = Result<(u32, Value<'a>), WireError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        let field = self.next_field();
        if field.is_err() {
            // Nothing after a broken field can be read.
            self.rest = &[];
        }
        Some(field)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(bytes: &[u8]) -> Result<Vec<(u32, Value<'_>)>, WireError> {
        fields(bytes).collect()
    }

    #[test]
    fn reads_each_wire_type_and_keeps_delimited_values() {
        // 1: varint 300, 2: "hi", 3: fixed64, 4: fixed32, 5: group{6: 1}.
        let bytes = [
            0x08, 0xac, 0x02, 0x12, 2, b'h', b'i', 0x19, 1, 2, 3, 4, 5, 6, 7, 8, 0x25, 1, 2, 3, 4,
            0x2b, 0x30, 1, 0x2c,
        ];
        let seen = all(&bytes).unwrap();
        assert_eq!(
            seen,
            [
                (1, Value::Other),
                (2, Value::Delimited(b"hi")),
                (3, Value::Other),
                (4, Value::Other),
                (5, Value::Other)
            ]
        );
    }

    #[test]
    fn refuses_what_prost_refuses() {
        for (bytes, error) in [
            (&[0x12, 5, b'a'][..], WireError::Truncated),
            (&[0x08, 0x80][..], WireError::Truncated),
            (&[0x08][..], WireError::Truncated),
            (&[0x00, 1][..], WireError::Key),
            (&[0x0e][..], WireError::WireType(6)),
            (&[0x0c][..], WireError::EndGroup),
            (&[0x0b, 0x14][..], WireError::EndGroup),
            (&[0x0b][..], WireError::Truncated),
            (
                &[
                    0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f,
                ][..],
                WireError::Varint,
            ),
        ] {
            assert_eq!(all(bytes), Err(error.clone()), "{bytes:?}");
        }
    }

    #[test]
    fn deeply_nested_groups_stop_at_the_recursion_limit() {
        let mut bytes = vec![0x0b; 200];
        bytes.extend([0x0c; 200]);
        assert_eq!(all(&bytes), Err(WireError::TooDeep));
    }

    #[test]
    fn a_broken_field_ends_the_walk() {
        let mut walk = fields(&[0x12, 9, b'a']);
        assert!(walk.next().unwrap().is_err());
        assert!(walk.next().is_none());
    }
}
