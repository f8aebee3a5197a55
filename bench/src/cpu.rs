//! CPU time of this process, to turn rates into rates per core used.

use std::time::{Duration, Instant};

/// User + system CPU time of the whole process so far (all threads), from /proc.
pub fn process_cpu() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which may hold spaces) start after ") ".
    let rest = stat.rsplit_once(") ").map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    let clock_ticks_per_s = 100; // USER_HZ on Linux
    Duration::from_millis((ticks(11) + ticks(12)) * 1000 / clock_ticks_per_s)
}

/// Wall time and CPU time of a phase.
pub struct Phase {
    wall: Instant,
    cpu: Duration,
}

pub struct Measured {
    pub wall: Duration,
    pub cpu: Duration,
}

impl Phase {
    pub fn start() -> Phase {
        Phase { wall: Instant::now(), cpu: process_cpu() }
    }

    pub fn stop(self) -> Measured {
        Measured { wall: self.wall.elapsed(), cpu: process_cpu().saturating_sub(self.cpu) }
    }
}
