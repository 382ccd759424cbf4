//! The stylesheet and the script, embedded in the binary: nothing is
//! fetched from anywhere else.

pub const CSS: &str = include_str!("../assets/console.css");
pub const JS: &str = include_str!("../assets/console.js");
