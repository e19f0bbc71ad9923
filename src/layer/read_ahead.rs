//! Reading a stream ahead on a thread of its own, so that making bytes and
//! using them overlap: compressing a layer while the last chunk is
//! uploaded, downloading while the last chunk is decompressed and hashed.
//!
//! - [`with_read_ahead`]: runs `consume` on a reader of what `source`
//!   yields, `source` being read in chunks by a scoped thread at most
//!   `depth` chunks ahead (memory: `depth` × 1 MiB at most).

use std::io::{self, Read};
use std::sync::mpsc::{Receiver, sync_channel};

/// Bytes read from the source at a time.
const CHUNK: usize = 1 << 20;

/// Calls `consume` with a reader of `source`'s bytes, read ahead by another
/// thread. A read error of the source reaches the consumer in order; when
/// `consume` returns early the source is no longer read.
pub fn with_read_ahead<R: Read + Send, T>(
    source: R,
    depth: usize,
    consume: impl FnOnce(&mut dyn Read) -> T,
) -> T {
    let (sender, receiver) = sync_channel::<io::Result<Vec<u8>>>(depth.max(1));
    std::thread::scope(|scope| {
        scope.spawn(move || {
            let mut source = source;
            loop {
                let mut chunk = Vec::with_capacity(CHUNK);
                match (&mut source).take(CHUNK as u64).read_to_end(&mut chunk) {
                    Ok(0) => return,
                    Ok(_) => {
                        if sender.send(Ok(chunk)).is_err() {
                            return;
                        }
                    }
                    Err(error) => {
                        // What was read before the error comes first.
                        if !chunk.is_empty() && sender.send(Ok(chunk)).is_err() {
                            return;
                        }
                        let _ = sender.send(Err(error));
                        return;
                    }
                }
            }
        });
        let mut reader = ChannelReader { receiver, current: Vec::new(), at: 0, done: false };
        let result = consume(&mut reader);
        // Dropping the receiver stops the producer at its next send.
        drop(reader);
        result
    })
}

struct ChannelReader {
    receiver: Receiver<io::Result<Vec<u8>>>,
    current: Vec<u8>,
    at: usize,
    done: bool,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.at == self.current.len() {
            if self.done {
                return Ok(0);
            }
            match self.receiver.recv() {
                Ok(Ok(chunk)) => {
                    self.current = chunk;
                    self.at = 0;
                }
                Ok(Err(error)) => {
                    self.done = true;
                    return Err(error);
                }
                // The producer finished.
                Err(_) => {
                    self.done = true;
                    return Ok(0);
                }
            }
        }
        let n = buf.len().min(self.current.len() - self.at);
        buf[..n].copy_from_slice(&self.current[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_byte_arrives_in_order() {
        let data: Vec<u8> = (0..(3 * CHUNK + 17)).map(|n| (n % 251) as u8).collect();
        let got = with_read_ahead(data.as_slice(), 2, |reader| {
            let mut out = Vec::new();
            reader.read_to_end(&mut out).unwrap();
            out
        });
        assert_eq!(got, data);
    }

    #[test]
    fn a_source_error_reaches_the_consumer_after_the_bytes_before_it() {
        struct Failing(usize);
        impl Read for Failing {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                if self.0 == 0 {
                    return Err(io::Error::other("the network went away"));
                }
                let n = buf.len().min(self.0);
                buf[..n].fill(7);
                self.0 -= n;
                Ok(n)
            }
        }
        let result = with_read_ahead(Failing(10), 1, |reader| {
            let mut out = Vec::new();
            let error = reader.read_to_end(&mut out).unwrap_err();
            (out.len(), error.to_string())
        });
        assert_eq!(result, (10, "the network went away".to_string()));
    }

    #[test]
    fn a_consumer_that_stops_early_stops_the_source() {
        let endless = io::repeat(1);
        let first = with_read_ahead(endless, 2, |reader| {
            let mut byte = [0u8; 1];
            reader.read_exact(&mut byte).unwrap();
            byte[0]
        });
        assert_eq!(first, 1);
    }
}
