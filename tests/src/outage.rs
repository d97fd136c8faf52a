//! An outage of the emulator, on loopback: a TCP relay in front of moto that, while down,
//! cuts every open connection and drops new ones at once, as an endpoint that restarts
//! does; back up, it relays again. moto keeps its state in memory, so restarting moto
//! itself would be a new, empty AWS (which no deployment ever meets); the relay gives the
//! stack what a restart looks like from the outside, with the data still there.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

pub struct Relay {
    pub url: String,
    down: Arc<AtomicBool>,
    cut: watch::Sender<u64>,
}

impl Relay {
    /// A relay to `target` (`http://host:port`) on a free loopback port.
    pub async fn start(target: &str) -> Relay {
        let target: SocketAddr = target
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .parse()
            .expect("the emulator's address is host:port");
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let down = Arc::new(AtomicBool::new(false));
        let (cut, _) = watch::channel(0u64);
        let (d, c) = (down.clone(), cut.clone());
        tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    continue;
                };
                if d.load(Ordering::SeqCst) {
                    drop(client);
                    continue;
                }
                let mut cut = c.subscribe();
                tokio::spawn(async move {
                    let Ok(mut server) = TcpStream::connect(target).await else {
                        return;
                    };
                    let mut client = client;
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = cut.changed() => {}
                    }
                });
            }
        });
        Relay { url, down, cut }
    }

    /// Down: open connections are cut, new ones dropped.
    pub fn down(&self) {
        self.down.store(true, Ordering::SeqCst);
        self.cut.send_modify(|n| *n += 1);
    }

    pub fn up(&self) {
        self.down.store(false, Ordering::SeqCst);
    }
}
