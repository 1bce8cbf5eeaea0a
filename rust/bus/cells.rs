//! Counters and cells that rely on the GIL for exclusion instead of a lock or an atomic
//! read-modify-write (why the module declares `gil_used = true`, see `lib.rs`).

use super::*;

/// A counter only written with the GIL held (the `Python` token proves it), so a relaxed
/// load + store is exact and avoids a locked read-modify-write on the hot path. PyO3
/// modules keep the GIL enabled even on free-threaded builds (they are not declared
/// `gil_used = false`), so every writer is serialized by it.
#[derive(Default)]
pub struct GilCounter(AtomicU64);

impl GilCounter {
    #[inline]
    pub fn add(&self, _py: Python<'_>, n: u64) {
        let c = &self.0;
        c.store(c.load(Ordering::Relaxed) + n, Ordering::Relaxed);
    }
    #[inline]
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Shared state touched only with the GIL held (the `Python` token proves it): the
/// history ring and the dispatch index (the module declares `gil_used = true`).
pub struct GilCell<T>(pub(super) std::cell::UnsafeCell<T>);

// SAFETY: every access goes through `with`, which requires the GIL (a `Python`
// token), so no two threads access the value at once; `T: Send + Sync` lets clones move
// between threads.
unsafe impl<T: Send + Sync> Sync for GilCell<T> {}

impl<T> GilCell<T> {
    pub(super) fn new(v: T) -> Self {
        GilCell(std::cell::UnsafeCell::new(v))
    }
    /// Runs `f` on the value. `f` must not call into Python or drop Python objects (either
    /// could re-enter the cell): return what must be dropped and drop it after.
    #[inline]
    pub(super) fn with<R>(&self, _py: Python<'_>, f: impl FnOnce(&mut T) -> R) -> R {
        // SAFETY: the GIL is held (token); `f` does not re-enter (see above).
        f(unsafe { &mut *self.0.get() })
    }
    /// The value, through exclusive access (no GIL needed).
    pub(super) fn get_mut(&mut self) -> &mut T {
        self.0.get_mut()
    }
}
