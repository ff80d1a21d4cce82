//! Request bodies as they are read: in memory while small, then in an anonymous temp file.
//! Shared by both connection loops.

use std::io::{self, Write};

use crate::exchange::Body;

/// Read size while a large body streams into its temp file.
pub(crate) const SPILL_CHUNK: usize = 64 * 1024;

/// A request body being read: in memory up to `limit` bytes, then in an unlinked temp file.
pub(crate) struct BodyBuffer {
    pub(crate) limit: usize,
    /// The body while it is small; once spilled, only a staging area for decoded chunks.
    pub(crate) mem: Vec<u8>,
    file: Option<(std::fs::File, u64)>,
}

impl BodyBuffer {
    pub(crate) fn new(limit: usize) -> Self {
        BodyBuffer {
            limit,
            mem: Vec::new(),
            file: None,
        }
    }

    pub(crate) fn extend(&mut self, data: &[u8]) -> io::Result<()> {
        if self.file.is_none() && self.mem.len() + data.len() <= self.limit {
            self.mem.extend_from_slice(data);
            return Ok(());
        }
        self.spill()?;
        let (file, len) = self.file.as_mut().expect("spilled");
        file.write_all(data)?;
        *len += data.len() as u64;
        Ok(())
    }

    /// After bytes were appended to `mem` directly: moves them to the file if the body has
    /// spilled or has just outgrown the limit.
    pub(crate) fn settle(&mut self) -> io::Result<()> {
        if self.file.is_some() || self.mem.len() > self.limit {
            self.spill()?;
        }
        Ok(())
    }

    /// Moves what is in memory to the temp file (creating it the first time). The writes are
    /// plain blocking writes: they land in the page cache.
    fn spill(&mut self) -> io::Result<()> {
        if self.file.is_none() {
            self.file = Some((temp_file()?, 0));
        }
        let (file, len) = self.file.as_mut().expect("created above");
        if !self.mem.is_empty() {
            file.write_all(&self.mem)?;
            *len += self.mem.len() as u64;
            self.mem.clear();
            if self.mem.capacity() > SPILL_CHUNK {
                self.mem = Vec::new();
            }
        }
        Ok(())
    }

    pub(crate) fn finish(mut self) -> io::Result<Body> {
        match self.file.take() {
            None => Ok(Body::Memory(self.mem)),
            Some((mut file, len)) => {
                std::io::Seek::rewind(&mut file)?;
                Ok(Body::File { file, len })
            }
        }
    }
}

/// An anonymous file in the temp directory ($TMPDIR, else /tmp): O_TMPFILE where the file
/// system supports it, otherwise a private file unlinked at once. Either way nothing is left
/// behind, whatever happens to the process.
pub(crate) fn temp_file() -> io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);

    let dir = std::env::temp_dir();
    let mut options = std::fs::OpenOptions::new();
    options.read(true).write(true).mode(0o600);
    if let Ok(file) = options.clone().custom_flags(libc::O_TMPFILE).open(&dir) {
        return Ok(file);
    }
    loop {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let path = dir.join(format!("hyperion-body-{}-{n}", std::process::id()));
        match options.clone().create_new(true).open(&path) {
            Ok(file) => {
                std::fs::remove_file(&path)?;
                return Ok(file);
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
}
