//! The spill file of one [`super::Spool`]: records the store could not take, as JSON
//! lines appended to `<dir>/<name>.spool` (fsynced per batch), and how far replay has got,
//! in `<dir>/<name>.offset` (a byte offset, fsynced after each batch the store accepted).
//!
//! Blocking file I/O: the spool calls these from `spawn_blocking`, never on a runtime
//! worker. A crash mid-append can leave a torn last line (no newline); [`SpillFile::open`]
//! cuts it off, so what is replayed is exactly what was acknowledged as durable.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

#[derive(Debug)]
pub struct SpillFile {
    data_path: PathBuf,
    data: File,
    offset_file: File,
    /// Bytes in the data file (all complete lines).
    len: u64,
    /// Where the next unreplayed record starts.
    read_pos: u64,
    /// Complete records after `read_pos`.
    unread: u64,
}

impl SpillFile {
    /// Opens (creating) `name`'s files in `dir`, dropping a torn last line.
    pub fn open(dir: &Path, name: &str) -> std::io::Result<SpillFile> {
        std::fs::create_dir_all(dir)?;
        let data_path = dir.join(format!("{name}.spool"));
        let offset_path = dir.join(format!("{name}.offset"));
        let mut data = OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .open(&data_path)?;
        let mut offset_file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&offset_path)?;
        let mut text = String::new();
        offset_file.read_to_string(&mut text)?;
        let mut read_pos: u64 = text.trim().parse().unwrap_or(0);
        // Count complete lines after the offset; cut a torn tail.
        let total = data.metadata()?.len();
        read_pos = read_pos.min(total);
        data.seek(SeekFrom::Start(read_pos))?;
        let mut reader = BufReader::new(&data);
        let (mut pos, mut unread) = (read_pos, 0u64);
        let mut line = Vec::new();
        loop {
            line.clear();
            let n = reader.read_until(b'\n', &mut line)?;
            if n == 0 || line.last() != Some(&b'\n') {
                break;
            }
            pos += n as u64;
            unread += 1;
        }
        if pos < total {
            data.set_len(pos)?;
            data.sync_all()?;
        }
        Ok(SpillFile {
            data_path,
            data,
            offset_file,
            len: pos,
            read_pos,
            unread,
        })
    }

    /// Appends `bytes` (whole JSON lines) and fsyncs: durable when this returns.
    pub fn append(&mut self, bytes: &[u8], records: u64) -> std::io::Result<()> {
        self.data.write_all(bytes)?;
        self.data.sync_data()?;
        self.len += bytes.len() as u64;
        self.unread += records;
        Ok(())
    }

    /// Up to `max` records after the replay position, and the position after them.
    pub fn read(&self, max: usize) -> std::io::Result<(Vec<Vec<u8>>, u64)> {
        let mut f = File::open(&self.data_path)?;
        f.seek(SeekFrom::Start(self.read_pos))?;
        let mut reader = BufReader::new(f.take(self.len - self.read_pos));
        let (mut pos, mut out) = (self.read_pos, Vec::new());
        while out.len() < max {
            let mut line = Vec::new();
            let n = reader.read_until(b'\n', &mut line)?;
            if n == 0 {
                break;
            }
            pos += n as u64;
            out.push(line);
        }
        Ok((out, pos))
    }

    /// The store took the `records` records up to `pos`: remember it durably. When
    /// everything is replayed, both files are emptied.
    pub fn commit(&mut self, pos: u64, records: u64) -> std::io::Result<()> {
        self.read_pos = pos;
        self.unread = self.unread.saturating_sub(records);
        if self.read_pos >= self.len {
            // Data first, then the offset: a crash between them leaves an empty file whose
            // stale offset `open` clamps to 0, so nothing is replayed twice.
            self.data.set_len(0)?;
            self.data.sync_all()?;
            self.len = 0;
            self.read_pos = 0;
            self.unread = 0;
        }
        self.offset_file.set_len(0)?;
        self.offset_file.seek(SeekFrom::Start(0))?;
        self.offset_file
            .write_all(format!("{}\n", self.read_pos).as_bytes())?;
        self.offset_file.sync_data()?;
        Ok(())
    }

    /// Records appended and not yet replayed.
    pub fn unread(&self) -> u64 {
        self.unread
    }

    /// Bytes on disk not yet replayed.
    pub fn backlog_bytes(&self) -> u64 {
        self.len - self.read_pos
    }

    pub fn path(&self) -> &Path {
        &self.data_path
    }
}
