//! Fixed-width base62 (`0-9A-Za-z`, GitHub's alphabet) for key secrets and
//! checksums. Fixed width keeps every key the same length, so a parser can
//! split a key from its end without separators.

const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// Characters needed for any 256-bit number: 62^43 > 2^256.
pub const SECRET_LEN: usize = 43;
/// Characters needed for any 32-bit number: 62^6 > 2^32.
pub const CHECKSUM_LEN: usize = 6;

/// Encodes 32 bytes (big-endian) as exactly [`SECRET_LEN`] characters.
pub fn encode_secret(bytes: &[u8; 32], out: &mut String) {
    let mut number = *bytes;
    let mut digits = [b'0'; SECRET_LEN];
    // Schoolbook long division by 62: 43 passes over 32 bytes, only at Issue.
    for digit in digits.iter_mut().rev() {
        let mut remainder: u32 = 0;
        for byte in number.iter_mut() {
            let acc = (remainder << 8) | u32::from(*byte);
            *byte = (acc / 62) as u8;
            remainder = acc % 62;
        }
        *digit = ALPHABET[remainder as usize];
    }
    out.extend(digits.iter().map(|&d| d as char));
}

/// Encodes a CRC32 as exactly [`CHECKSUM_LEN`] characters.
pub fn encode_checksum(mut value: u32, out: &mut String) {
    let mut digits = [b'0'; CHECKSUM_LEN];
    for digit in digits.iter_mut().rev() {
        *digit = ALPHABET[(value % 62) as usize];
        value /= 62;
    }
    out.extend(digits.iter().map(|&d| d as char));
}

/// Decodes a [`CHECKSUM_LEN`]-character checksum; `None` if any character is
/// outside the alphabet or the value overflows 32 bits.
pub fn decode_checksum(text: &[u8]) -> Option<u32> {
    let mut value: u64 = 0;
    for &c in text {
        value = value * 62 + u64::from(digit_value(c)?);
    }
    u32::try_from(value).ok()
}

pub fn is_base62(text: &[u8]) -> bool {
    text.iter().all(u8::is_ascii_alphanumeric)
}

fn digit_value(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'A'..=b'Z' => Some(c - b'A' + 10),
        b'a'..=b'z' => Some(c - b'a' + 36),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(bytes: [u8; 32]) -> String {
        let mut s = String::new();
        encode_secret(&bytes, &mut s);
        s
    }

    #[test]
    fn secret_is_fixed_width_at_both_extremes() {
        assert_eq!(secret([0; 32]), "0".repeat(SECRET_LEN));
        let max = secret([0xff; 32]);
        assert_eq!(max.len(), SECRET_LEN);
        assert!(is_base62(max.as_bytes()));
        assert_ne!(&max[..1], "0", "2^256-1 needs all 43 digits");
    }

    #[test]
    fn secret_encodes_small_numbers_in_the_low_digits() {
        let mut one = [0u8; 32];
        one[31] = 61;
        assert!(secret(one).ends_with("0z"));
        one[31] = 62;
        assert!(secret(one).ends_with("10"));
    }

    #[test]
    fn checksum_round_trips() {
        for value in [0, 1, 61, 62, 0xdead_beef, u32::MAX] {
            let mut s = String::new();
            encode_checksum(value, &mut s);
            assert_eq!(s.len(), CHECKSUM_LEN);
            assert_eq!(decode_checksum(s.as_bytes()), Some(value));
        }
    }

    #[test]
    fn checksum_rejects_foreign_characters_and_overflow() {
        assert_eq!(decode_checksum(b"00000_"), None);
        assert_eq!(decode_checksum(b"zzzzzz"), None, "62^6-1 exceeds u32");
    }
}
