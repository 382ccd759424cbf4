//! Finding keyward keys where they should not be (files, directories,
//! stdin), offline: a match counts only when its checksum holds, so the
//! scanner reports keys, not look-alikes.

mod finder;
mod walk;

pub use finder::{Finding, find_keys};
pub use walk::{Location, ScanError, WalkOptions, scan_paths, scan_reader};
