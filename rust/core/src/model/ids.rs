//! Identifier generation: event ids, correlation ids and subscription ids.
//!
//! Ids are made in Rust because `uuid.uuid4()` costs ~1.7 µs on this machine. An event id
//! is a process-wide counter passed through a bijective mixer (splitmix64 finaliser) after
//! adding a random per-process offset: unique inside a process by construction, and
//! unrelated between processes with overwhelming probability.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

static COUNTER: AtomicU64 = AtomicU64::new(1);
static OFFSET: OnceLock<u64> = OnceLock::new();
/// 0, or the random salt of a forked child (`reseed_after_fork`): without it a child would
/// make the same ids as its parent.
static SALT: AtomicU64 = AtomicU64::new(0);

fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn random_seed() -> u64 {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let stack_addr = &nanos as *const u64 as u64;
    mix(nanos ^ (u64::from(std::process::id()) << 32) ^ stack_addr)
}

fn offset() -> u64 {
    *OFFSET.get_or_init(random_seed)
}

/// A fresh 64-bit id, unique within this process (a bijection of a counter; the salt is
/// fixed for the life of a process).
pub fn next_id() -> u64 {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    mix(n
        .wrapping_add(offset())
        .wrapping_add(SALT.load(Ordering::Relaxed)))
}

/// Called in a forked child (which inherited the parent's counter and offset): a new
/// random salt, so the child's ids are unrelated to the parent's (with overwhelming
/// probability, as between any two processes).
pub fn reseed_after_fork() {
    SALT.store(random_seed() | 1, Ordering::Relaxed);
}

/// `evt_` + 16 hex characters.
pub fn format_event_id(id: u64) -> String {
    prefixed_hex("evt_", id)
}

/// `corr_` + 16 hex characters, as in the reference implementation.
pub fn new_correlation_id() -> String {
    prefixed_hex("corr_", next_id())
}

/// `id` as 16 lower-case hex digits (`format!` costs ~4x more on the hot path).
fn hex16(id: u64) -> [u8; 16] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut digits = [0u8; 16];
    for (i, d) in digits.iter_mut().enumerate() {
        *d = HEX[((id >> (60 - 4 * i)) & 0xf) as usize];
    }
    digits
}

/// `prefix` + `id` as 16 lower-case hex digits.
fn prefixed_hex(prefix: &str, id: u64) -> String {
    let mut s = String::with_capacity(prefix.len() + 16);
    s.push_str(prefix);
    // The digits are ASCII.
    s.push_str(std::str::from_utf8(&hex16(id)).unwrap_or_default());
    s
}

/// A new correlation id (as `new_correlation_id`) made straight into an `Arc<str>`: one
/// allocation instead of a `String` and its copy.
pub fn new_correlation_arc() -> Arc<str> {
    let mut buf = [0u8; 21];
    buf[..5].copy_from_slice(b"corr_");
    buf[5..].copy_from_slice(&hex16(next_id()));
    // The bytes are ASCII.
    Arc::from(std::str::from_utf8(&buf).unwrap_or_default())
}

/// A fresh id + `_sub`, as in the reference implementation.
pub fn new_subscription_id() -> String {
    format!("{:016x}_sub", next_id())
}

/// Parses `evt_<16 hex>` back to its number.
pub fn parse_event_id(s: &str) -> Option<u64> {
    let hex = s.strip_prefix("evt_")?;
    if hex.len() != 16 {
        return None;
    }
    u64::from_str_radix(hex, 16).ok()
}

/// Parses a generated correlation id, `corr_` + exactly 16 lower-case hex digits, back to
/// its number. Strict (no upper case, no sign), so distinct strings never share a number.
pub fn parse_correlation_id(s: &str) -> Option<u64> {
    let hex = s.strip_prefix("corr_")?;
    if hex.len() != 16 || !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    u64::from_str_radix(hex, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn ids_are_unique_across_threads() {
        let handles: Vec<_> = (0..4)
            .map(|_| std::thread::spawn(|| (0..10_000).map(|_| next_id()).collect::<Vec<_>>()))
            .collect();
        let mut seen = HashSet::new();
        for h in handles {
            for id in h.join().unwrap() {
                assert!(seen.insert(id), "duplicate id {id}");
            }
        }
        assert_eq!(seen.len(), 40_000);
    }

    #[test]
    fn correlation_ids_parse_strictly() {
        let arc = new_correlation_arc();
        assert!(parse_correlation_id(&arc).is_some() && arc.len() == 21);
        let id = new_correlation_id();
        let n = parse_correlation_id(&id).expect("a generated id parses");
        assert_eq!(prefixed_hex("corr_", n), id);
        assert_eq!(parse_correlation_id("corr_00000000000000ff"), Some(255));
        for bad in [
            "corr_00000000000000FF",
            "corr_+0000000000000ff",
            "corr_ff",
            "evt_00000000000000ff",
            "user_restart",
        ] {
            assert_eq!(parse_correlation_id(bad), None, "{bad}");
        }
    }

    #[test]
    fn formats() {
        let c = new_correlation_id();
        assert!(c.starts_with("corr_") && c.len() == 21);
        assert!(c[5..].chars().all(|ch| ch.is_ascii_hexdigit()));
        let s = new_subscription_id();
        assert!(s.ends_with("_sub") && s.len() == 20);
        let id = next_id();
        assert_eq!(parse_event_id(&format_event_id(id)), Some(id));
        assert_eq!(parse_event_id("evt_xyz"), None);
    }
}

#[cfg(test)]
mod fork_tests {
    use super::*;

    #[test]
    fn reseeding_changes_the_sequence() {
        // (Does not touch the counter: other tests make ids meanwhile.)
        let n = 12_345u64;
        let salted = |salt: u64| mix(n.wrapping_add(offset()).wrapping_add(salt));
        let before = salted(SALT.load(Ordering::Relaxed));
        reseed_after_fork();
        let salt = SALT.load(Ordering::Relaxed);
        assert_ne!(salt, 0);
        assert_ne!(salted(salt), before);
    }
}
