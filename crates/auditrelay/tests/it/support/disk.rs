//! A real, small filesystem for storage-fault tests: a tmpfs mounted on a fresh directory,
//! which a filler file brings to the edge of full and deleting it frees again.
//!
//! Mounting needs root (CI runs as root). Elsewhere [`SmallDisk::mount`] returns `None` after
//! printing why, and the test skips; under `CI=true` it fails instead.

use std::path::{Path, PathBuf};
use std::process::Command;

use tempfile::TempDir;

pub struct SmallDisk {
    mount_point: PathBuf,
    _dir: TempDir,
}

impl SmallDisk {
    /// Mounts a tmpfs of `mib` MiB; `None` (test skipped) where this machine cannot.
    pub fn mount(mib: u32) -> Option<Self> {
        let dir = tempfile::tempdir().expect("temp dir");
        let mount_point = dir.path().join("disk");
        std::fs::create_dir(&mount_point).unwrap();
        let mounted = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={mib}m,mode=0700"),
                "tmpfs",
            ])
            .arg(&mount_point)
            .output();
        match mounted {
            Ok(out) if out.status.success() => Some(Self {
                mount_point,
                _dir: dir,
            }),
            other => {
                let why = match other {
                    Ok(out) => String::from_utf8_lossy(&out.stderr).trim().to_owned(),
                    Err(e) => e.to_string(),
                };
                let reason = format!("cannot mount a small tmpfs here ({why}); it needs root");
                super::skip_unless_ci(&format!("storage-fault test: {reason}"));
                None
            }
        }
    }

    pub fn path(&self) -> &Path {
        &self.mount_point
    }

    /// Bytes still free.
    pub fn available(&self) -> u64 {
        let out = Command::new("df")
            .args(["--output=avail", "-B1"])
            .arg(&self.mount_point)
            .output()
            .expect("df runs");
        let text = String::from_utf8(out.stdout).unwrap();
        text.lines()
            .nth(1)
            .and_then(|l| l.trim().parse().ok())
            .expect("df prints the free bytes")
    }

    /// Fills the disk until only `leave` bytes are free (0: until the filesystem refuses
    /// another byte), with a filler file of its own each time.
    pub fn fill_leaving(&self, leave: u64) {
        let size = self.available().saturating_sub(leave);
        let fillers = std::fs::read_dir(&self.mount_point).unwrap().count();
        let path = self.mount_point.join(format!("filler-{fillers}"));
        let mut file = std::fs::File::create(path).unwrap();
        // tmpfs allocates on write, so the filler is written, not merely sized.
        let chunk = vec![0u8; 64 << 10];
        let mut left = size;
        while left > 0 {
            let n = left.min(chunk.len() as u64) as usize;
            match std::io::Write::write(&mut file, &chunk[..n]) {
                Ok(0) | Err(_) => break,
                Ok(written) => left -= written as u64,
            }
        }
    }

    /// Deletes every filler: the space is free again.
    pub fn free(&self) {
        for entry in std::fs::read_dir(&self.mount_point).unwrap() {
            let path = entry.unwrap().path();
            if path
                .file_name()
                .unwrap()
                .to_str()
                .unwrap()
                .starts_with("filler-")
            {
                std::fs::remove_file(path).unwrap();
            }
        }
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        // Lazily: a server the test killed may still be closing its files.
        let _ = Command::new("umount")
            .arg("-l")
            .arg(&self.mount_point)
            .status();
    }
}
