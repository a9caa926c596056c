//! At most BOTTLE_E2E_JOBS bottles at once, and at most `Engine::max_bottles` of one engine.

use std::sync::{Condvar, Mutex};

use crate::e2e::Engine;

/// Bottles in use: in all, and per engine (by name).
#[derive(Default)]
struct Slots {
    used: usize,
    per_engine: Vec<(&'static str, usize)>,
}

impl Slots {
    fn engine(&mut self, name: &'static str) -> &mut usize {
        let at = match self.per_engine.iter().position(|(n, _)| *n == name) {
            Some(at) => at,
            None => {
                self.per_engine.push((name, 0));
                self.per_engine.len() - 1
            }
        };
        &mut self.per_engine[at].1
    }
}

static SLOTS: (Mutex<Slots>, Condvar) = (
    Mutex::new(Slots {
        used: 0,
        per_engine: Vec::new(),
    }),
    Condvar::new(),
);

fn max_jobs() -> usize {
    std::env::var("BOTTLE_E2E_JOBS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or(3)
}

/// One of the slots; released on drop.
pub(super) struct Permit {
    engine: &'static str,
}

impl Permit {
    pub(super) fn acquire(engine: &'static Engine) -> Permit {
        let (lock, cvar) = &SLOTS;
        let mut slots = lock.lock().unwrap_or_else(|p| p.into_inner());
        while slots.used >= max_jobs() || *slots.engine(engine.name) >= engine.max_bottles {
            slots = cvar.wait(slots).unwrap_or_else(|p| p.into_inner());
        }
        slots.used += 1;
        *slots.engine(engine.name) += 1;
        Permit {
            engine: engine.name,
        }
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        let (lock, cvar) = &SLOTS;
        let mut slots = lock.lock().unwrap_or_else(|p| p.into_inner());
        slots.used -= 1;
        *slots.engine(self.engine) -= 1;
        // Every waiter: the one a slot fits may not be the first in line.
        cvar.notify_all();
    }
}
