//! A thread beside the event loop that reads V2 bodies and writes V2
//! answers, and never takes the GIL.
//!
//! The event loop's thread bounds a server process: it holds the GIL for
//! every request's HTTP, routing and batching. Reading a 100-row body and
//! writing its answer are a third of its time; here they run on the other
//! core while the loop goes on. A Python thread would not do: each time it
//! took the GIL back it would wait for the loop to let go of it. So the jobs
//! own copies of their input, the thread works on plain Rust data, and its
//! results wait in a list until the loop takes them (`take`), woken by a
//! byte on a socket it watches (`fileno`).

use std::collections::VecDeque;
use std::io::{ErrorKind, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread;

use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyTuple};

use super::request::{read_request, Layout, Request};
use super::value::Unsupported;
use super::{body_header, guarded, request_tuple, Answer, V2Plan, Written};

enum Job {
    /// A body and where its JSON header ends (`None`: all JSON).
    Read(Arc<Layout>, Vec<u8>, Option<usize>),
    Write(Answer),
}

enum Done {
    Read(Result<Request, Unsupported>),
    Write(Result<Written, Unsupported>),
}

#[derive(Default)]
struct State {
    jobs: VecDeque<(u64, Job)>,
    done: Vec<(u64, Done)>,
    next: u64,
    stopped: bool,
}

struct Shared {
    state: Mutex<State>,
    work: Condvar,
}

impl Shared {
    /// The state; a thread that panicked holding the lock left it whole (every
    /// change under it is one push or pop), so its poison is ignored.
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The offload thread of one event loop (see the module's comment and
/// `packflow.serving.offload`).
#[pyclass(module = "packflow._core", frozen)]
pub struct V2Offload {
    shared: Arc<Shared>,
    /// The end the loop watches: readable when results wait.
    bell: UnixStream,
}

#[pymethods]
impl V2Offload {
    #[new]
    fn new() -> PyResult<Self> {
        let (bell, ringer) = UnixStream::pair()?;
        bell.set_nonblocking(true)?;
        // A full socket means a byte is already waiting: that one wakes the loop.
        ringer.set_nonblocking(true)?;
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            work: Condvar::new(),
        });
        let worker = Arc::clone(&shared);
        thread::Builder::new()
            .name("packflow-v2-offload".into())
            .spawn(move || work(&worker, ringer))
            .map_err(|e| PyRuntimeError::new_err(format!("cannot start a thread: {e}")))?;
        Ok(V2Offload { shared, bell })
    }

    /// The descriptor that turns readable when results wait for `take`.
    fn fileno(&self) -> i32 {
        self.bell.as_raw_fd()
    }

    /// The ticket of reading `body` as `v2_read_request` would, or `None`
    /// when the caller must read it itself (as `v2_read_request` would
    /// give, or stopped).
    #[pyo3(signature = (plan, body, header_length = None))]
    fn read(&self, plan: &V2Plan, body: &[u8], header_length: Option<&[u8]>) -> Option<u64> {
        let header = body_header(body, header_length)?;
        self.queue(Job::Read(Arc::clone(&plan.layout), body.to_vec(), header))
    }

    /// The ticket of writing the answer `v2_write_answer` would write, or
    /// `None` when the caller must write it itself (as there).
    #[pyo3(signature = (lines, outputs, model_name, model_version, id, binary = None, binary_default = false))]
    #[allow(clippy::too_many_arguments)] // as v2_write_answer's
    fn write(
        &self,
        lines: &Bound<'_, PyList>,
        outputs: &Bound<'_, PyAny>,
        model_name: &Bound<'_, PyAny>,
        model_version: &Bound<'_, PyAny>,
        id: &Bound<'_, PyAny>,
        binary: Option<&Bound<'_, PyDict>>,
        binary_default: bool,
    ) -> Option<u64> {
        let answer = Answer::of(
            lines,
            outputs,
            model_name,
            model_version,
            id,
            binary,
            binary_default,
        )?;
        self.queue(Job::Write(answer))
    }

    /// The finished jobs, `(ticket, result)` each, the result what
    /// `v2_read_request` or `v2_write_answer` would have given.
    fn take<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let mut drained = [0u8; 256];
        loop {
            match (&self.bell).read(&mut drained) {
                Ok(n) if n == drained.len() => continue,
                Ok(_) => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(_) => break, // WouldBlock: nothing more to drain
            }
        }
        let done = std::mem::take(&mut self.shared.lock().done);
        let out = PyList::empty(py);
        for (ticket, result) in done {
            // A request that cannot become Python objects (no memory) is
            // `None` too: the caller's own reading then says why.
            let value = match result {
                Done::Read(Ok(request)) => match request_tuple(py, request) {
                    Ok(tuple) => tuple.into_any(),
                    Err(_) => py.None().into_bound(py),
                },
                Done::Write(Ok(written)) => match written.into_tuple(py) {
                    Ok(tuple) => tuple.into_any(),
                    Err(_) => py.None().into_bound(py),
                },
                Done::Read(Err(Unsupported)) | Done::Write(Err(Unsupported)) => {
                    py.None().into_bound(py)
                }
            };
            out.append(PyTuple::new(
                py,
                [ticket.into_pyobject(py)?.into_any(), value],
            )?)?;
        }
        Ok(out)
    }

    /// End the thread once the jobs queued are done; later jobs are refused.
    fn stop(&self) {
        self.shared.lock().stopped = true;
        self.shared.work.notify_one();
    }
}

impl V2Offload {
    fn queue(&self, job: Job) -> Option<u64> {
        let mut state = self.shared.lock();
        if state.stopped {
            return None;
        }
        let ticket = state.next;
        state.next += 1;
        state.jobs.push_back((ticket, job));
        drop(state);
        self.shared.work.notify_one();
        Some(ticket)
    }
}

impl Drop for V2Offload {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The thread: each job in turn, its result beside the others, and a byte on
/// the bell when the list was empty (else the loop has one coming already).
fn work(shared: &Shared, mut ringer: UnixStream) {
    loop {
        let (ticket, job) = {
            let mut state = shared.lock();
            loop {
                if let Some(next) = state.jobs.pop_front() {
                    break next;
                }
                if state.stopped {
                    return;
                }
                state = shared.work.wait(state).unwrap_or_else(|p| p.into_inner());
            }
        };
        let done = match job {
            Job::Read(layout, body, header) => {
                Done::Read(guarded(|| read_request(&body, header, &layout)))
            }
            Job::Write(answer) => Done::Write(answer.write()),
        };
        let first = {
            let mut state = shared.lock();
            state.done.push((ticket, done));
            state.done.len() == 1
        };
        if first {
            // WouldBlock: the socket is full of bytes the loop has yet to read.
            let _ = ringer.write(&[1]);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use pyo3::types::PyBytes;

    use super::super::request::Template;
    use super::*;

    fn plan() -> V2Plan {
        V2Plan {
            layout: Arc::new(Layout {
                features: Some(vec!["a".into(), "b".into()]),
                template: Template::new(&[vec!["a"], vec!["b"]]).ok(),
                delimiter: ".".into(),
                max_rows: 100,
                cells: false,
            }),
        }
    }

    /// Waits for the bell (one byte at least), then takes what is done.
    fn rung_and_taken(offload: &V2Offload, py: Python<'_>, want: usize) -> Vec<(u64, Py<PyAny>)> {
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut got = Vec::new();
        while got.len() < want {
            assert!(Instant::now() < deadline, "no results within 10 s");
            let mut byte = [0u8; 1];
            match (&offload.bell).read(&mut byte) {
                Ok(1) => {
                    for item in offload.take(py).unwrap().iter() {
                        got.push(item.extract::<(u64, Py<PyAny>)>().unwrap());
                    }
                }
                _ => py.detach(|| thread::sleep(Duration::from_millis(1))),
            }
        }
        got
    }

    #[test]
    fn each_job_comes_back_under_its_ticket_after_the_bell() {
        Python::initialize();
        Python::attach(|py| {
            let offload = V2Offload::new().unwrap();
            let plan = plan();
            let good: &[u8] =
                br#"{"inputs":[{"name":"x","datatype":"INT64","shape":[2,2],"data":[1,2,3,4]}]}"#;
            let bad: &[u8] = br#"{"inputs":[]}"#;
            let lines = PyList::new(py, [PyBytes::new(py, br#"{"s":1}"#)]).unwrap();
            let none = py.None().into_bound(py);
            let name = "m".into_pyobject(py).unwrap().into_any();
            let t_good = offload.read(&plan, good, None).unwrap();
            let t_bad = offload.read(&plan, bad, None).unwrap();
            let t_answer = offload
                .write(&lines, &none, &name, &none, &none, None, false)
                .unwrap();
            // Refused at once, as v2_read_request refuses it.
            assert_eq!(
                offload.read(&plan, &vec![b' '; super::super::MAX_BODY + 1], None),
                None
            );
            let mut got = rung_and_taken(&offload, py, 3);
            got.sort_by_key(|(ticket, _)| *ticket);
            let tickets: Vec<u64> = got.iter().map(|(t, _)| *t).collect();
            assert_eq!(tickets, vec![t_good, t_bad, t_answer]);
            let want = request_tuple(py, read_request(good, None, &plan.layout).unwrap()).unwrap();
            assert!(got[0].1.bind(py).eq(&want).unwrap());
            assert!(got[1].1.is_none(py));
            let (answer, json_length): (Vec<u8>, Option<usize>) = got[2].1.extract(py).unwrap();
            assert_eq!(json_length, None);
            assert!(answer.starts_with(br#"{"model_name":"m","outputs":[{"name":"s""#));
            offload.stop();
            assert_eq!(offload.read(&plan, good, None), None);
        });
    }

    #[test]
    fn many_jobs_ring_once_per_empty_list_and_all_come_back() {
        Python::initialize();
        Python::attach(|py| {
            let offload = V2Offload::new().unwrap();
            let plan = plan();
            let body: &[u8] =
                br#"{"inputs":[{"name":"x","datatype":"FP64","shape":[1,2],"data":[1.5,2]}]}"#;
            let tickets: Vec<u64> = (0..500)
                .map(|_| offload.read(&plan, body, None).unwrap())
                .collect();
            let mut got: Vec<u64> = rung_and_taken(&offload, py, 500)
                .into_iter()
                .map(|(t, v)| {
                    assert!(!v.is_none(py));
                    t
                })
                .collect();
            got.sort_unstable();
            assert_eq!(got, tickets);
        });
    }
}
