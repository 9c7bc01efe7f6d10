//! Reading the next batch while this one runs. When the caller of `run_lines`
//! already holds the next batch's bytes (`ahead`), the text reader's pass over
//! them (src/jsonl/read.rs `scan_batch`: no GIL, no Python object touched) is
//! started on a second thread, and runs while this batch's hooks, check and
//! write run on the caller's thread and while the caller writes the results
//! and gets the batch after. The batch is read in pieces cut at line ends,
//! taken in turn: the call for that batch takes the pieces still unread
//! itself (without the GIL) instead of waiting, so the two threads share the
//! reading whichever of them is ahead, and then it joins the pieces in order.
//! On two cores the reading, the larger part of a light backend's batch, then
//! costs about half its time, in parallel with the rest.
//!
//! A pass is used only by a call on the very same bytes object (its buffer
//! address and length; the slot holds a reference, so the address cannot be
//! reused by another object meanwhile), with the same first line number and
//! the same integer digit limit: any other call reads its text as it would
//! have, so the outputs never depend on what was read ahead.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::jsonl::{find_newline, scan_batch, Scanned, TextPlan};

/// About how many bytes one piece of a batch holds.
const PIECE_BYTES: usize = 32 << 10;

/// A batch's bytes, read by both threads.
struct Text {
    ptr: *const u8,
    len: usize,
}

// SAFETY: `Text` points into the buffer of a bytes object that the `Pending`
// owning the reading job keeps a strong reference to, and every path that
// lets go of a `Pending` joins its thread first (`Pending::finish` and
// `Pending::cancel`, or `Drop`, which joins, on every other path, unwinding
// included), after which no piece is read any more; a bytes object's buffer
// is part of the object and never written after creation, so both threads
// read valid, unchanging memory.
unsafe impl Send for Text {}
// SAFETY: as above; the memory is only ever read.
unsafe impl Sync for Text {}

impl Text {
    fn bytes(&self) -> &[u8] {
        // SAFETY: see `impl Send for Text`.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }
}

/// The pieces of one batch and their passes, shared by the two threads.
struct Job {
    text: Text,
    /// Byte ranges of the pieces, each ending just past a newline (the last
    /// at the end of the batch).
    pieces: Vec<(usize, usize)>,
    plan: Arc<TextPlan>,
    int_limit: usize,
    /// The next piece to take.
    next: AtomicUsize,
    passes: Vec<Mutex<Option<Scanned>>>,
}

impl Job {
    fn new(text: Text, plan: Arc<TextPlan>, int_limit: usize) -> Job {
        let pieces = cut_at_lines(text.bytes(), PIECE_BYTES);
        Job {
            passes: pieces.iter().map(|_| Mutex::new(None)).collect(),
            text,
            pieces,
            plan,
            int_limit,
            next: AtomicUsize::new(0),
        }
    }

    /// Reads pieces until none is left to take.
    fn work(&self) {
        let data = self.text.bytes();
        loop {
            let i = self.next.fetch_add(1, Ordering::Relaxed);
            let Some(&(start, end)) = self.pieces.get(i) else {
                return;
            };
            let pass = scan_batch(&data[start..end], 0, &self.plan, self.int_limit);
            *lock(&self.passes[i]) = Some(pass);
        }
    }

    /// The pieces' passes joined, numbered from `first_line`, once every
    /// piece was read; up to the first piece that stopped.
    fn joined(&self, first_line: u64) -> Option<Scanned> {
        let mut all = Scanned::empty();
        for (pass, &(start, _)) in self.passes.iter().zip(&self.pieces) {
            let pass = lock(pass).take()?;
            if !all.append(pass, start, first_line) {
                break;
            }
        }
        Some(all)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// `data` cut into pieces of about `size` bytes, each ending just past a
/// newline (the last one at the end of `data`); one piece when it is small.
fn cut_at_lines(data: &[u8], size: usize) -> Vec<(usize, usize)> {
    let mut pieces = Vec::new();
    let mut start = 0;
    while data.len() - start > size {
        match find_newline(data, start + size) {
            Some(nl) if nl + 1 < data.len() => {
                pieces.push((start, nl + 1));
                start = nl + 1;
            }
            _ => break,
        }
    }
    pieces.push((start, data.len()));
    pieces
}

/// A batch being read (or read) ahead, waiting for its call.
struct Pending {
    /// Keeps the bytes the job reads alive (and their address unique).
    data: Py<PyBytes>,
    first_line: u64,
    int_limit: usize,
    job: Arc<Job>,
    /// None once joined.
    thread: Option<JoinHandle<()>>,
    /// The process that started the thread: a child forked meanwhile has no
    /// such thread and must not join it.
    pid: u32,
}

impl Pending {
    /// Reads the pieces the thread has not taken and waits for it (all
    /// without the GIL); None when the thread panicked or belongs to the
    /// process this one was forked from.
    fn finish(mut self, py: Python<'_>) -> Option<Scanned> {
        if self.thread.is_none() || !self.ours() {
            return None;
        }
        let job = Arc::clone(&self.job);
        // The handle stays in `self` meanwhile: should this share of the
        // reading panic, unwinding drops `self`, whose `Drop` joins the
        // thread before the bytes are let go.
        py.detach(move || job.work());
        let thread = self.thread.take()?;
        py.detach(move || thread.join()).ok()?;
        self.job.joined(self.first_line)
    }

    /// Stops the reading (no piece is taken any more) and waits for the
    /// thread's piece in hand; nothing is kept.
    fn cancel(mut self, py: Python<'_>) {
        self.job
            .next
            .store(self.job.pieces.len(), Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            if self.ours() {
                let _ = py.detach(move || thread.join());
            } else {
                std::mem::forget(thread);
            }
        }
    }

    /// Whether the thread belongs to this process (not to the one this one
    /// was forked from, whose threads a child does not have).
    fn ours(&self) -> bool {
        self.pid == std::process::id()
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        // Never let go of the bytes while the thread may still read them.
        if let Some(thread) = self.thread.take() {
            if self.ours() {
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
        // An earlier batch read ahead and never asked for: stopped and dropped.
        let previous = self.slot().take();
        if let Some(previous) = previous {
            previous.cancel(py);
        }
        let bytes = next.as_bytes();
        let text = Text {
            ptr: bytes.as_ptr(),
            len: bytes.len(),
        };
        let job = Arc::new(Job::new(text, Arc::clone(plan), int_limit));
        let worker = Arc::clone(&job);
        let thread = std::thread::Builder::new()
            .name("packflow-read-ahead".into())
            .spawn(move || worker.work());
        if let Ok(thread) = thread {
            *self.slot() = Some(Pending {
                data: next.clone().unbind(),
                first_line: next_first_line,
                int_limit,
                job,
                thread: Some(thread),
                pid: std::process::id(),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_end_past_newlines_and_cover_the_batch() {
        for (data, size) in [
            (&b""[..], 4),
            (b"a\n", 4),
            (b"aaaa\nbb\ncccccc\nd\n", 3),
            (b"aaaa\nbb\ncccccc\nd", 3),
            (b"no newline at all, long", 3),
            (b"\n\n\n\n\n\n", 1),
        ] {
            let pieces = cut_at_lines(data, size);
            assert_eq!(pieces.first().map(|p| p.0), Some(0));
            assert_eq!(pieces.last().map(|p| p.1), Some(data.len()));
            for pair in pieces.windows(2) {
                assert_eq!(pair[0].1, pair[1].0);
                assert_eq!(data[pair[0].1 - 1], b'\n', "{data:?}");
                assert!(pair[0].1 - pair[0].0 > size);
            }
        }
        assert_eq!(cut_at_lines(b"aaaa\nbb\ncccccc\nd\n", 3).len(), 3);
    }
}
