//! The writer thread: one thread per open file owns the turn to write, takes commits from a
//! queue, and group-commits whatever queued while it was writing.
//!
//! Callers wait for their outcome asynchronously, so a caller's timeout or a dropped future
//! stops the wait at once, also while the file is locked by another process (the thread waits
//! out the busy timeout, not the caller's worker). A commit whose caller stopped waiting may
//! still complete; its retry is safe (the store recognises events it already holds).
//!
//! Group commit: the thread takes the first waiting unit, then every unit that queued behind it
//! (up to [`MAX_GROUP`]; when the last group held several units, it waits up to half that
//! group's write time, at most [`MAX_GATHER`], for as many again), and writes them in one
//! transaction so that a conflict fails only its own unit and each caller gets its own outcome
//! (see [`commit_group`]: savepoints only when a write fails). With `synchronous=FULL` one
//! sync of the log then serves the whole group.
//!
//! With `synchronous=NORMAL`, a commit with no other commit of this store in flight skips the
//! queue when it can: it takes the connection and commits inline on its own thread, as a
//! single-unit transaction, but only if the file's write lock is free at that moment (the
//! connection's busy timeout is zero meanwhile). When another process holds the lock, nothing
//! is written and the unit goes to the queue, where the thread does the waiting. So a caller's
//! timeout still ends every wait for a lock, and a lone committer pays no thread hand-off (two
//! wake-ups, more than such a commit costs).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, TryLockError, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rusqlite::Connection;
use tokio::sync::oneshot;

use super::write::{OwnedUnit, commit_group, commit_now};
use super::{Ctx, Synchronous};
use crate::error::{Error, StorageError, StorageErrorKind};
use crate::storage::{CommitOutcome, UnitOfWork};

/// The most units one transaction takes.
const MAX_GROUP: usize = 256;

/// The longest a group waits for callers that committed together last time (half the last
/// group's write time, at most this).
const MAX_GATHER: Duration = Duration::from_micros(500);

struct Job {
    unit: OwnedUnit,
    reply: oneshot::Sender<Result<CommitOutcome, Error>>,
}

/// The handle on the writer thread; dropping it lets the thread finish its queue and exit,
/// waits for that, and closes the connection.
pub(super) struct Writer {
    queue: Option<mpsc::Sender<Job>>,
    thread: Option<JoinHandle<()>>,
    /// The connection that writes: the thread's for each group, a lone caller's for its commit.
    conn: Arc<Mutex<Connection>>,
    /// How many commits are between their start and their end (cancelled ones included).
    in_flight: AtomicUsize,
    ctx: Arc<Ctx>,
}

/// Counts a commit as in flight while it lives.
struct InFlight<'a>(&'a AtomicUsize);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Writer {
    /// Starts the thread; the connection is the writer's from now on.
    pub(super) fn start(conn: Connection, ctx: Arc<Ctx>) -> Result<Writer, Error> {
        let (queue, jobs) = mpsc::channel::<Job>();
        let conn = Arc::new(Mutex::new(conn));
        let thread = {
            let (conn, ctx) = (conn.clone(), ctx.clone());
            std::thread::Builder::new()
                .name("ventyd-sqlite-writer".to_owned())
                .spawn(move || run(&conn, &ctx, &jobs))
        }
        .map_err(|e| {
            StorageError::new(
                StorageErrorKind::Unavailable,
                format!("cannot start the writer thread of {}", ctx.label),
            )
            .caused_by(e)
        })?;
        Ok(Writer {
            queue: Some(queue),
            thread: Some(thread),
            conn,
            in_flight: AtomicUsize::new(0),
            ctx,
        })
    }

    /// Commits a unit: inline with `synchronous=NORMAL` when it is the only commit in flight
    /// and the file's lock is free, else through the queue.
    pub(super) async fn commit(&self, unit: &UnitOfWork<'_>) -> Result<CommitOutcome, Error> {
        let alone = self.in_flight.fetch_add(1, Ordering::AcqRel) == 0;
        let _in_flight = InFlight(&self.in_flight);
        if alone && let Some(outcome) = self.commit_inline(unit) {
            return outcome;
        }
        self.queue(OwnedUnit::new(unit)).await
    }

    /// Commits `unit` inline, on the caller's thread, when that holds up the caller's other
    /// tasks no longer than a hand-off to the thread would and waits for no lock; `None` when it
    /// cannot (nothing was written).
    ///
    /// With `synchronous=NORMAL` a commit takes about as long as handing it to the thread and
    /// back would (tens of microseconds, no sync of the log), like any short piece of work
    /// between two awaits. A sync of the log (`FULL`) is many times longer, so those commits go
    /// to the queue: the runtime stays free meanwhile, and other commits join the group. (Not
    /// `block_in_place`: it panics inside a `LocalSet`, and nothing tells beforehand.)
    fn commit_inline(&self, unit: &UnitOfWork<'_>) -> Option<Result<CommitOutcome, Error>> {
        if self.ctx.options.synchronous != Synchronous::Normal {
            return None;
        }
        let mut conn = match self.conn.try_lock() {
            Ok(conn) => conn,
            Err(TryLockError::Poisoned(conn)) => conn.into_inner(),
            // The thread is still writing a unit whose caller stopped waiting.
            Err(TryLockError::WouldBlock) => return None,
        };
        let timeout = self.ctx.options.busy_timeout;
        if let Err(e) = conn.busy_timeout(Duration::ZERO) {
            return Some(Err(self.ctx.error("cannot set the busy timeout", e)));
        }
        let outcome = commit_now(&mut conn, &self.ctx, unit);
        if let Err(e) = conn.busy_timeout(timeout) {
            // The thread would not wait for the lock any more: say so rather than go on.
            return Some(Err(self.ctx.error("cannot set the busy timeout", e)));
        }
        outcome
    }

    /// Queues a unit and waits for its outcome.
    async fn queue(&self, unit: OwnedUnit) -> Result<CommitOutcome, Error> {
        let (reply, outcome) = oneshot::channel();
        let stopped = || {
            StorageError::new(
                StorageErrorKind::OutcomeUnknown,
                format!(
                    "the writer thread of {} stopped before answering",
                    self.ctx.label
                ),
            )
        };
        self.queue
            .as_ref()
            .ok_or_else(stopped)?
            .send(Job { unit, reply })
            .map_err(|_| stopped())?;
        outcome.await.map_err(|_| stopped())?
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        drop(self.queue.take());
        if let Some(thread) = self.thread.take() {
            // The connection closes when the last handle on it goes, after the thread's: closing
            // checkpoints the log into the file, so that a store dropped and opened again finds
            // the file closed.
            let _ = thread.join();
        }
    }
}

fn lock(conn: &Mutex<Connection>) -> MutexGuard<'_, Connection> {
    // A panic while the connection was held rolled its transaction back (the transaction guard
    // rolls back when it is dropped open), so the connection is fine to use.
    conn.lock().unwrap_or_else(PoisonError::into_inner)
}

fn run(conn: &Mutex<Connection>, ctx: &Ctx, jobs: &mpsc::Receiver<Job>) {
    // How many units the last group held and how long it took to write: when callers were
    // committing together, the next group waits a moment for them (callers re-queue right after
    // their answer, one by one; without the wait, groups alternate between one unit and all the
    // others, and each pays a sync of its own).
    let mut last_size = 1;
    let mut last_took = Duration::ZERO;
    while let Ok(first) = jobs.recv() {
        let mut group = vec![first];
        let gather_until = Instant::now() + (last_took / 2).min(MAX_GATHER);
        while group.len() < MAX_GROUP {
            match jobs.try_recv() {
                Ok(job) => group.push(job),
                // Waiting blocks rather than spins: on a machine with few cores a spinning
                // thread takes the time the callers need to queue.
                Err(mpsc::TryRecvError::Empty) if group.len() < last_size => {
                    let left = gather_until.saturating_duration_since(Instant::now());
                    match jobs.recv_timeout(left) {
                        Ok(job) => group.push(job),
                        Err(_) => break,
                    }
                }
                Err(_) => break,
            }
        }
        let started = Instant::now();
        // A caller that stopped waiting still has its unit written: it may have been sent
        // before the caller gave up, and the caller cannot know.
        let units: Vec<_> = group.iter().map(|job| job.unit.unit()).collect();
        let results = commit_group(&mut lock(conn), ctx, &units);
        drop(units);
        last_size = group.len();
        last_took = started.elapsed();
        for (job, result) in group.into_iter().zip(results) {
            let _ = job.reply.send(result);
        }
    }
}
