//! What the benchmark reads from `/proc`, and its statistics.

use anyhow::{Context as _, anyhow};

fn clk_tck() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 { t as f64 } else { 100.0 }
}

/// CPU seconds (user + system) of a process (`self` for the benchmark's own).
pub fn cpu_seconds(pid: &str) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("read /proc/{pid}/stat"))?;
    // The command name may hold spaces: fields are counted after its closing parenthesis.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .ok_or_else(|| anyhow!("unexpected /proc/{pid}/stat"))?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    // Field 3 (state) is f[0]: utime (14) is f[11], stime (15) is f[12].
    let ticks = |i: usize| -> anyhow::Result<f64> {
        Ok(f.get(i)
            .ok_or_else(|| anyhow!("short /proc/{pid}/stat"))?
            .parse::<f64>()?)
    };
    Ok((ticks(11)? + ticks(12)?) / clk_tck())
}

/// A `kB` field of `/proc/<pid>/status` in MiB (or a count for `Threads`).
pub fn status_field(pid: &str, field: &str) -> anyhow::Result<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("read /proc/{pid}/status"))?;
    let line = status
        .lines()
        .find(|l| l.starts_with(&format!("{field}:")))
        .ok_or_else(|| anyhow!("/proc/{pid}/status has no {field}"))?;
    let n: f64 = line
        .split_whitespace()
        .nth(1)
        .ok_or_else(|| anyhow!("empty {field}"))?
        .parse()?;
    Ok(if line.ends_with("kB") { n / 1024.0 } else { n })
}

/// CPU seconds every process of the machine has used since boot (`/proc/stat`: all but idle
/// and iowait), to tell how much other work competed with the benchmark.
pub fn machine_busy_cpu() -> f64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let Some(line) = stat.lines().find(|l| l.starts_with("cpu ")) else {
        return f64::NAN;
    };
    let f: Vec<f64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal (guest time is already in user)
    let busy: f64 = f
        .iter()
        .take(8)
        .enumerate()
        .filter(|(i, _)| *i != 3 && *i != 4)
        .map(|(_, v)| v)
        .sum();
    busy / clk_tck()
}

/// The benchmark process's own CPU seconds.
pub fn self_cpu() -> f64 {
    cpu_seconds("self").unwrap_or(f64::NAN)
}

/// The median; NaN for no values.
pub fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// The nearest-rank percentile `p` (0..=1) of sorted values; NaN for none.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statistics() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert!(median(&[]).is_nan());
        let sorted: Vec<f64> = (1..=200).map(f64::from).collect();
        assert_eq!(percentile(&sorted, 0.5), 100.0);
        assert_eq!(percentile(&sorted, 0.99), 198.0);
        assert!(percentile(&[], 0.5).is_nan());
    }

    #[test]
    fn own_process_is_readable() {
        assert!(cpu_seconds("self").unwrap() >= 0.0);
        assert!(status_field("self", "VmHWM").unwrap() > 0.0);
        assert!(status_field("self", "Threads").unwrap() >= 1.0);
    }
}
