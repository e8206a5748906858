//! Process figures from /proc: CPU time (utime + stime) and resident memory, and the
//! open-file limit.
//!
//! CPU time comes from `/proc/PID/stat` in clock ticks; Linux exports them at USER_HZ, which
//! is 100 on every architecture it supports, so a tick is 10 ms. The counts include threads
//! that have exited. RSS is `VmRSS` from `/proc/PID/status` (it includes shared memory the
//! process has touched, such as Nchan's shared message store).

/// Clock ticks per second in /proc.
pub const TICKS_PER_SEC: f64 = 100.0;

/// CPU seconds used so far by `pid` ("self" for this process).
pub fn cpu_secs(pid: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses; fields resume after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) as f64 / TICKS_PER_SEC)
}

/// Resident memory of `pid` in KiB.
pub fn rss_kib(pid: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// CPU seconds of several processes together; `None` if any is gone.
pub fn cpu_sum(pids: &[u32]) -> Option<f64> {
    pids.iter().map(|p| cpu_secs(&p.to_string())).sum()
}

/// RSS of several processes together, in KiB.
pub fn rss_sum(pids: &[u32]) -> Option<u64> {
    pids.iter().map(|p| rss_kib(&p.to_string())).sum()
}

/// Raises the soft open-file limit to the hard one; returns the new soft limit.
pub fn raise_nofile() -> u64 {
    rlimit::increase_nofile_limit(u64::MAX).unwrap_or(1024)
}

/// CPUs this process may run on.
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process() {
        assert!(cpu_secs("self").is_some());
        assert!(rss_kib("self").unwrap() > 0);
        assert!(cpu_sum(&[std::process::id()]).is_some());
        assert!(cores() >= 1);
    }
}
