//! A full disk, simulated without root: the child runs with a file-size limit (`RLIMIT_FSIZE`) and
//! `SIGXFSZ` ignored, so a write past the limit fails with `EFBIG` ("File too large") as a write to a full
//! file system fails with `ENOSPC`. (Mounting a tiny tmpfs needs privileges CI does not have.)
#![allow(dead_code)]

use std::os::unix::process::CommandExt;
use std::process::Command;

/// Makes `cmd` run with files limited to `bytes` each.
pub fn limit_file_size(cmd: &mut Command, bytes: u64) {
    // SAFETY: the closure runs in the forked child before exec and only calls the async-signal-safe
    // `signal` and `setrlimit`.
    unsafe {
        cmd.pre_exec(move || {
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
            let lim = libc::rlimit {
                rlim_cur: bytes as libc::rlim_t,
                rlim_max: bytes as libc::rlim_t,
            };
            if libc::setrlimit(libc::RLIMIT_FSIZE, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}
