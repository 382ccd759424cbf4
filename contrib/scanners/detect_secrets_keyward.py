"""detect-secrets plugin for keyward API keys.

    detect-secrets scan --plugin contrib/scanners/detect_secrets_keyward.py

A match counts only if its checksum holds: the last 6 characters are the
CRC32 (zlib's) of everything before them, as a 6-digit base62 number
(alphabet 0-9A-Za-z, most significant digit first); a match glued to what
precedes it counts from the first character its checksum holds from. The
regex is key::format::PATTERN in keyward (tests/scan.rs checks both agree).
"""

import re
import zlib
from typing import Generator, Optional

from detect_secrets.plugins.base import RegexBasedDetector

PATTERN = r"[a-z0-9_]{1,64}_kw1_[0-9A-Za-z]{49}\b"
ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
CHECKSUM_LEN = 6
MARKER = "_kw1_"


def checksum_holds(key: str) -> bool:
    """Whether the key's last 6 characters are the CRC32 of the rest."""
    value = 0
    for char in key[-CHECKSUM_LEN:]:
        digit = ALPHABET.find(char)
        if digit < 0:
            return False
        value = value * 62 + digit
    return value == zlib.crc32(key[:-CHECKSUM_LEN].encode("ascii"))


def key_in(candidate: str) -> Optional[str]:
    """The longest suffix of a match whose checksum holds, if any.

    The pattern has no leading word boundary, so a key glued to what
    precedes it (`%3Dacme_kw1_...`, `\\nacme_kw1_...`) matches with a few
    characters too many; the checksum says where the key starts.
    """
    marker_at = candidate.rindex(MARKER)
    for start in range(marker_at):
        if checksum_holds(candidate[start:]):
            return candidate[start:]
    return None


class KeywardDetector(RegexBasedDetector):
    """Scans for keyward API keys (<prefix>_kw1_<secret><checksum>)."""

    secret_type = "Keyward API Key"
    # ASCII: `\b` as RE2 (gitleaks, TruffleHog) and keyward read it.
    denylist = [re.compile(PATTERN, re.ASCII)]

    def analyze_string(self, string: str) -> Generator[str, None, None]:
        for candidate in super().analyze_string(string):
            key = key_in(candidate)
            if key is not None:
                yield key
