//! Property tests (proptest) of what a client without a key controls: the
//! key string, the scopes matcher, request paths against route rules,
//! credential headers, and the config file. Each property runs a bounded
//! number of cases (`CASES` in each module) so the whole binary takes well
//! under a minute in CI; a failing case is saved under
//! `tests/proptest-regressions/` and replayed first on every later run.

mod config;
mod credential;
mod key;
mod routes;
mod scope;
