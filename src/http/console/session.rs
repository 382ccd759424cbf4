//! Console sessions: a random id in a cookie, the admin key on the server.
//!
//! The browser holds only the id (256 bits from the OS RNG); the map is
//! keyed by the id's SHA-256, so not even a dump of this process's memory
//! gives a usable cookie. A session ends at its TTL, at sign-out, and
//! when its admin key stops passing the admin auth path, which every
//! request re-checks (`route`), so revoking the key ends the session.

use std::{
    collections::HashMap,
    fmt,
    sync::Mutex,
    time::{Duration, Instant},
};

use sha2::{Digest, Sha256};

/// Live sessions one server keeps at most; past it sign-in is refused
/// (after dropping expired ones), so a flood of sign-ins cannot grow the
/// map without bound.
pub const MAX_SESSIONS: usize = 10_000;

/// The cookie's name.
pub const COOKIE: &str = "keyward_session";

/// An admin key: `Debug` shows nothing of it.
#[derive(Clone)]
pub struct AdminKey(String);

impl AdminKey {
    pub fn new(key: String) -> Self {
        Self(key)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for AdminKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AdminKey(<redacted>)")
    }
}

/// What the server keeps for a signed-in browser.
#[derive(Clone, Debug)]
pub struct Session {
    pub key: AdminKey,
    /// The token every POST of this session must carry.
    pub csrf: String,
    expires: Instant,
}

pub struct Sessions {
    ttl: Duration,
    live: Mutex<HashMap<[u8; 32], Session>>,
}

/// 32 bytes from the OS RNG, as lower-case hex.
pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).expect("the OS random number generator failed");
    hex::encode(bytes)
}

fn digest(id: &str) -> [u8; 32] {
    Sha256::digest(id.as_bytes()).into()
}

impl Sessions {
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            live: Mutex::new(HashMap::new()),
        }
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// A new session for `key`: its id (for the cookie), or `None` when
    /// [`MAX_SESSIONS`] are live.
    pub fn start(&self, key: AdminKey) -> Option<String> {
        let now = Instant::now();
        let mut live = self.live.lock().unwrap_or_else(|e| e.into_inner());
        if live.len() >= MAX_SESSIONS {
            live.retain(|_, s| s.expires > now);
            if live.len() >= MAX_SESSIONS {
                return None;
            }
        }
        let id = random_token();
        live.insert(
            digest(&id),
            Session {
                key,
                csrf: random_token(),
                expires: now + self.ttl,
            },
        );
        Some(id)
    }

    /// The live session with this id; an expired one is dropped.
    pub fn get(&self, id: &str) -> Option<Session> {
        let key = digest(id);
        let mut live = self.live.lock().unwrap_or_else(|e| e.into_inner());
        match live.get(&key) {
            Some(session) if session.expires > Instant::now() => Some(session.clone()),
            Some(_) => {
                live.remove(&key);
                None
            }
            None => None,
        }
    }

    pub fn end(&self, id: &str) {
        let mut live = self.live.lock().unwrap_or_else(|e| e.into_inner());
        live.remove(&digest(id));
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.live.lock().unwrap().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> AdminKey {
        AdminKey::new("kw_secret".to_owned())
    }

    #[test]
    fn a_session_lives_until_it_ends() {
        let sessions = Sessions::new(Duration::from_secs(60));
        let id = sessions.start(key()).unwrap();
        assert_eq!(id.len(), 64);
        let session = sessions.get(&id).unwrap();
        assert_eq!(session.key.expose(), "kw_secret");
        assert_ne!(session.csrf, id);
        assert!(sessions.get("nonsense").is_none());
        sessions.end(&id);
        assert!(sessions.get(&id).is_none());
    }

    #[test]
    fn an_expired_session_is_gone() {
        let sessions = Sessions::new(Duration::ZERO);
        let id = sessions.start(key()).unwrap();
        assert!(sessions.get(&id).is_none());
        assert_eq!(sessions.len(), 0);
    }

    #[test]
    fn the_map_is_bounded() {
        let sessions = Sessions::new(Duration::from_secs(60));
        for _ in 0..MAX_SESSIONS {
            sessions.start(key()).unwrap();
        }
        assert!(sessions.start(key()).is_none());
        let expired = Sessions::new(Duration::ZERO);
        for _ in 0..=MAX_SESSIONS {
            assert!(expired.start(key()).is_some());
        }
    }

    #[test]
    fn the_key_is_not_in_debug_output() {
        let sessions = Sessions::new(Duration::from_secs(60));
        let id = sessions.start(key()).unwrap();
        let text = format!("{:?}", sessions.get(&id).unwrap());
        assert!(!text.contains("kw_secret"), "{text}");
    }
}
