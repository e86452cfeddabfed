//! A TCP proxy that cuts its first connection after a number of client bytes, to test what a
//! deploy does when the network dies mid-upload. Later connections pass through untouched, or,
//! with [`CuttingProxy::first_only`], are refused: the host becomes unreachable for a new
//! connection while the first one lives on. [`CuttingProxy::passing`] cuts on demand instead.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

pub struct CuttingProxy {
    pub port: u16,
    /// Client bytes forwarded on the first connection before it was cut.
    pub forwarded: Arc<AtomicU64>,
    pub cut: Arc<AtomicBool>,
    /// Both ends of every connection passed so far, for [`CuttingProxy::cut_now`].
    open: Arc<Mutex<Vec<TcpStream>>>,
}

impl CuttingProxy {
    pub fn start(upstream: String, cut_after: u64) -> CuttingProxy {
        CuttingProxy::spawn(upstream, Some(cut_after), false)
    }

    /// Passes the first connection untouched and closes every later one at once.
    pub fn first_only(upstream: String) -> CuttingProxy {
        CuttingProxy::spawn(upstream, None, true)
    }

    /// Passes every connection untouched until [`CuttingProxy::cut_now`].
    pub fn passing(upstream: String) -> CuttingProxy {
        CuttingProxy::spawn(upstream, None, false)
    }

    /// Cuts every connection open now, as a network that dies does (the peers see the
    /// connection end); later connections pass again.
    pub fn cut_now(&self) {
        for stream in self.open.lock().unwrap().drain(..) {
            let _ = stream.shutdown(Shutdown::Both);
        }
        self.cut.store(true, Ordering::SeqCst);
    }

    fn spawn(upstream: String, cut_after: Option<u64>, refuse_later: bool) -> CuttingProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let forwarded = Arc::new(AtomicU64::new(0));
        let cut = Arc::new(AtomicBool::new(false));
        let open = Arc::new(Mutex::new(Vec::new()));
        let (f, c, o) = (Arc::clone(&forwarded), Arc::clone(&cut), Arc::clone(&open));
        std::thread::spawn(move || {
            for (index, client) in listener.incoming().enumerate() {
                let Ok(client) = client else { continue };
                if index > 0 && refuse_later {
                    drop(client);
                    continue;
                }
                let Ok(server) = TcpStream::connect(&upstream) else {
                    continue;
                };
                if let (Ok(a), Ok(b)) = (client.try_clone(), server.try_clone()) {
                    o.lock().unwrap().extend([a, b]);
                }
                let limit = if index == 0 { cut_after } else { None };
                let (f, c) = (Arc::clone(&f), Arc::clone(&c));
                std::thread::spawn(move || relay(client, server, limit, f, c));
            }
        });
        CuttingProxy {
            port,
            forwarded,
            cut,
            open,
        }
    }
}

fn relay(
    client: TcpStream,
    server: TcpStream,
    limit: Option<u64>,
    forwarded: Arc<AtomicU64>,
    cut: Arc<AtomicBool>,
) {
    let (mut client_read, mut server_write) =
        (client.try_clone().unwrap(), server.try_clone().unwrap());
    let (mut server_read, mut client_write) = (server, client);
    let back = std::thread::spawn(move || {
        let _ = std::io::copy(&mut server_read, &mut client_write);
        let _ = client_write.shutdown(Shutdown::Both);
    });
    let mut buffer = [0u8; 16 * 1024];
    let mut total = 0u64;
    loop {
        let n = match client_read.read(&mut buffer) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let n = match limit {
            Some(limit) if total + n as u64 >= limit => {
                let rest = (limit - total) as usize;
                let _ = server_write.write_all(&buffer[..rest]);
                total += rest as u64;
                cut.store(true, Ordering::SeqCst);
                break;
            }
            _ => n,
        };
        if server_write.write_all(&buffer[..n]).is_err() {
            break;
        }
        total += n as u64;
        if limit.is_some() {
            forwarded.store(total, Ordering::SeqCst);
        }
    }
    if limit.is_some() {
        forwarded.store(total, Ordering::SeqCst);
    }
    let _ = server_write.shutdown(Shutdown::Both);
    let _ = client_read.shutdown(Shutdown::Both);
    let _ = back.join();
}
