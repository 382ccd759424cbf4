//! Shared copies of the strings many cached records repeat: project names
//! and whole scope lists. A project has thousands of keys and most of them
//! carry one of a few scope lists, so one allocation serves them all; this
//! took about 150 bytes off every cached key (docs/BENCHMARKS.md).
//!
//! Values nobody else holds any more are dropped whenever the table has
//! doubled since the last sweep, so churn (renamed projects, edited scopes)
//! cannot grow it without bound, at amortised constant cost per lookup.

use std::{
    collections::HashSet,
    hash::Hash,
    sync::{Arc, Mutex, OnceLock},
};

/// Sweeps never start below this many values.
const FIRST_SWEEP: usize = 1024;

struct Interner<T: ?Sized> {
    values: HashSet<Arc<T>>,
    sweep_at: usize,
}

impl<T: ?Sized + Eq + Hash> Interner<T> {
    fn new() -> Self {
        Self {
            values: HashSet::new(),
            sweep_at: FIRST_SWEEP,
        }
    }

    fn get(&mut self, value: &T) -> Arc<T>
    where
        for<'a> Arc<T>: From<&'a T>,
    {
        if let Some(shared) = self.values.get(value) {
            return Arc::clone(shared);
        }
        if self.values.len() >= self.sweep_at {
            self.values.retain(|v| Arc::strong_count(v) > 1);
            self.sweep_at = (2 * self.values.len()).max(FIRST_SWEEP);
        }
        let shared = Arc::from(value);
        self.values.insert(Arc::clone(&shared));
        shared
    }
}

fn with<T: ?Sized + Eq + Hash, R>(
    table: &'static OnceLock<Mutex<Interner<T>>>,
    f: impl FnOnce(&mut Interner<T>) -> R,
) -> R {
    let table = table.get_or_init(|| Mutex::new(Interner::new()));
    // Every mutation leaves the set consistent, so a poisoned lock is usable.
    f(&mut table.lock().unwrap_or_else(|e| e.into_inner()))
}

/// The shared copy of a project name.
pub fn project(name: &str) -> Arc<str> {
    static PROJECTS: OnceLock<Mutex<Interner<str>>> = OnceLock::new();
    with(&PROJECTS, |t| t.get(name))
}

/// The shared copy of a scope list, in the order given.
pub fn scopes<S: Into<Box<str>>>(scopes: impl IntoIterator<Item = S>) -> Arc<[Box<str>]> {
    static SCOPES: OnceLock<Mutex<Interner<[Box<str>]>>> = OnceLock::new();
    let list: Vec<Box<str>> = scopes.into_iter().map(Into::into).collect();
    with(&SCOPES, |t| t.get(&list[..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_values_share_one_allocation() {
        let (a, b) = (
            project("intern-test"),
            project(&String::from("intern-test")),
        );
        assert!(Arc::ptr_eq(&a, &b));
        let (x, y) = (
            scopes(["a:read", "b:*"]),
            scopes(vec![String::from("a:read"), "b:*".into()]),
        );
        assert!(Arc::ptr_eq(&x, &y));
        assert!(
            !Arc::ptr_eq(&x, &scopes(["b:*", "a:read"])),
            "order is kept"
        );
    }

    #[test]
    fn values_nobody_holds_are_swept() {
        let mut table = Interner::<str>::new();
        let kept = table.get("kept");
        for i in 0..10 * FIRST_SWEEP {
            table.get(&format!("gone-{i}"));
        }
        assert!(
            table.values.len() <= 2 * FIRST_SWEEP,
            "{}",
            table.values.len()
        );
        assert!(Arc::ptr_eq(&kept, &table.get("kept")));
    }
}
