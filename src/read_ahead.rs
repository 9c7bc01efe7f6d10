//! Reading the next batch while this one runs. When the caller of `run_lines`
//! already holds the next batch's bytes (`ahead`), the text reader's pass over
//! them (src/jsonl/read.rs `scan_batch`: no GIL, no Python object touched) is
//! started on a second thread, and runs while this batch's hooks, check and
//! write run on the caller's thread and while the caller writes the results
//! and gets the batch after. The call for that batch then waits for the pass
//! (without the GIL) and takes it instead of reading the text itself. On two
//! cores the reading, the larger part of a light backend's batch, then costs
//! little wall time.
//!
//! A pass is used only by a call on the very same bytes object (its buffer
//! address and length; the slot holds a reference, so the address cannot be
//! reused by another object meanwhile), with the same first line number and
//! the same integer digit limit: any other call reads its text as it would
//! have, so the outputs never depend on what was read ahead.

use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::jsonl::{scan_batch, Scanned, TextPlan};

/// A batch's bytes handed to the reading thread.
struct Text {
    ptr: *const u8,
    len: usize,
}

// SAFETY: `Text` points into the buffer of a bytes object that the `Pending`
// owning the thread keeps a strong reference to, and every path that lets go of
// a `Pending` joins its thread first (`Pending::finish`, or `Drop`, which
// joins); a bytes object's buffer is part of the object and never written
// after creation, so the thread reads valid, unchanging memory from anywhere.
unsafe impl Send for Text {}

/// A batch being read (or read) ahead, waiting for its call.
struct Pending {
    /// Keeps the bytes the thread reads alive (and their address unique).
    data: Py<PyBytes>,
    first_line: u64,
    int_limit: usize,
    /// None once joined.
    thread: Option<JoinHandle<Scanned>>,
    /// The process that started the thread: a child forked meanwhile has no
    /// such thread and must not join it.
    pid: u32,
}

impl Pending {
    /// Waits (without the GIL) for the pass; None when the thread panicked
    /// or belongs to the process this one was forked from.
    fn finish(mut self, py: Python<'_>) -> Option<Scanned> {
        let thread = self.thread.take()?;
        if self.pid != std::process::id() {
            std::mem::forget(thread);
            return None;
        }
        py.detach(|| thread.join()).ok()
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        // Never let go of the bytes while the thread may still read them.
        if let Some(thread) = self.thread.take() {
            if self.pid == std::process::id() {
                let _ = thread.join();
            } else {
                std::mem::forget(thread);
            }
        }
    }
}

/// The one batch a pipeline is reading ahead, if any.
#[derive(Default)]
pub struct AheadSlot(Mutex<Option<Pending>>);

impl AheadSlot {
    fn slot(&self) -> std::sync::MutexGuard<'_, Option<Pending>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The pass read ahead for exactly this batch, if any (waited for).
    pub fn take_for(
        &self,
        py: Python<'_>,
        data: &[u8],
        first_line: u64,
        int_limit: usize,
    ) -> Option<Scanned> {
        let pending = {
            let mut slot = self.slot();
            let same = slot.as_ref().is_some_and(|p| {
                let kept = p.data.bind(py).as_bytes();
                std::ptr::eq(kept.as_ptr(), data.as_ptr())
                    && kept.len() == data.len()
                    && p.first_line == first_line
                    && p.int_limit == int_limit
            });
            if !same {
                return None;
            }
            slot.take()?
        };
        pending.finish(py)
    }

    /// Starts reading `next` (numbered from `next_first_line`) with `plan` on
    /// a second thread, in place of whatever was read ahead before. Nothing
    /// is started when a thread cannot be (the call for `next` reads it).
    pub fn start(
        &self,
        py: Python<'_>,
        plan: &Arc<TextPlan>,
        int_limit: usize,
        next: &Bound<'_, PyBytes>,
        next_first_line: u64,
    ) {
        // An earlier batch read ahead and never asked for: joined and dropped.
        let previous = self.slot().take();
        if let Some(previous) = previous {
            previous.finish(py);
        }
        let bytes = next.as_bytes();
        let text = Text {
            ptr: bytes.as_ptr(),
            len: bytes.len(),
        };
        let plan = Arc::clone(plan);
        let thread = std::thread::Builder::new()
            .name("packflow-read-ahead".into())
            .spawn(move || {
                let text = text;
                // SAFETY: see `impl Send for Text`: the bytes outlive this
                // thread and are never written.
                let data = unsafe { std::slice::from_raw_parts(text.ptr, text.len) };
                scan_batch(data, next_first_line, &plan, int_limit)
            });
        if let Ok(thread) = thread {
            *self.slot() = Some(Pending {
                data: next.clone().unbind(),
                first_line: next_first_line,
                int_limit,
                thread: Some(thread),
                pid: std::process::id(),
            });
        }
    }
}
