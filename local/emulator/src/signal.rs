//! Sending a Unix signal to a process the local host started, for the reliability runs'
//! faults: SIGKILL for a function process, SIGSTOP and SIGCONT for the emulator.

/// Sends `which` (`-KILL`, `-STOP`, `-CONT`) to `pid` with kill(1): no unsafe code and
/// no libc binding for a learner to follow, at the cost of a process per signal, which
/// a fault injected a few times a run can afford.
pub fn send(which: &str, pid: u32) -> std::io::Result<()> {
    let status = std::process::Command::new("kill")
        .args([which, &pid.to_string()])
        .status()?;
    if status.success() {
        Ok(())
    } else {
        Err(std::io::Error::other(format!(
            "kill {which} {pid}: {status}"
        )))
    }
}
