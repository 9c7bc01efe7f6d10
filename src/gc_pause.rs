//! Pausing the cyclic garbage collector while a batch's output is built.
//!
//! Building 10,000 output records allocates tens of thousands of dicts; each
//! 700 allocations the collector runs, and since every new object stays alive
//! (it is part of the output), those passes find nothing, promote everything,
//! and every few batches end in a full collection of the whole heap. Paused,
//! the allocations are still counted, so one young-generation pass runs soon
//! after the batch returns: the objects are collected the same, just not
//! traversed a hundred times while they cannot be garbage.

use crate::ffi;
use pyo3::Python;

/// Disables automatic collection until dropped, then restores it if it was on.
/// Collections the caller started by hand (`gc.collect()`) still run.
pub struct GcPause {
    was_enabled: bool,
}

impl GcPause {
    /// The `Python` token proves the GIL is held, as the gc C API requires.
    pub fn new(_py: Python<'_>) -> Self {
        // SAFETY: called with the GIL held (the token); PyGC_Disable only
        // flips the collector's flag and returns its previous value.
        let was_enabled = unsafe { ffi::PyGC_Disable() } != 0;
        GcPause { was_enabled }
    }
}

impl Drop for GcPause {
    fn drop(&mut self) {
        if self.was_enabled {
            // SAFETY: the guard lives within the call that made it, which
            // holds the GIL for its whole duration.
            unsafe { ffi::PyGC_Enable() };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enabled() -> bool {
        unsafe { ffi::PyGC_IsEnabled() != 0 }
    }

    #[test]
    fn restores_the_previous_state() {
        Python::initialize();
        Python::attach(|py| {
            assert!(enabled());
            {
                let _outer = GcPause::new(py);
                assert!(!enabled());
                {
                    let _inner = GcPause::new(py);
                    assert!(!enabled());
                }
                // The inner guard found it off and leaves it off.
                assert!(!enabled());
            }
            assert!(enabled());
            unsafe { ffi::PyGC_Disable() };
            drop(GcPause::new(py));
            assert!(!enabled());
            unsafe { ffi::PyGC_Enable() };
        });
    }
}
