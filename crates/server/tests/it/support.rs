//! A lake in a temporary folder with an HTTP server on a free loopback port, and a minimal
//! HTTP/1.1 client (one request per connection).

use std::net::SocketAddr;
use std::time::Duration;

use base64::Engine as _;
use carelake_common::{Principal, TableName};
use carelake_ingest::{LoadRequest, Loader};
use carelake_lake::Lake;
use carelake_server::{HttpConfig, HttpServer};
use carelake_sql::Session;
use carelake_stream::{StreamConfig, StreamIngest};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub(crate) const PASSWORD: &str = "a long test password";

pub(crate) struct Served {
    pub(crate) dir: tempfile::TempDir,
    pub(crate) lake: Lake,
    pub(crate) addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

/// A response: status and body.
pub(crate) struct Reply {
    pub(crate) status: u16,
    pub(crate) body: String,
}

impl Served {
    /// A new lake with an administrator `ana`, served over HTTP.
    pub(crate) async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let lake = Lake::init(&dir.path().join("lake").to_string_lossy())
            .await
            .unwrap();
        lake.users()
            .create(
                "ana",
                PASSWORD,
                &["admin".into()],
                &Principal::local_admin(),
            )
            .await
            .unwrap();
        let mut stream = StreamConfig::new(dir.path().join("wal"));
        stream.flush_interval = Duration::from_millis(100);
        let ingest = StreamIngest::open(lake.clone(), Principal::local_admin(), stream)
            .await
            .unwrap();
        let config = HttpConfig::new("127.0.0.1:0".parse().unwrap(), dir.path().join("spool"));
        let server = HttpServer::bind(config, lake.clone(), ingest)
            .await
            .unwrap();
        let addr = server.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            server
                .run(async move {
                    let _ = stopped.await;
                })
                .await
                .unwrap();
        });
        Self {
            dir,
            lake,
            addr,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// Stops the server the way a shutdown signal does (streamed events are flushed).
    pub(crate) async fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap();
        }
    }

    /// Runs SQL as the local administrator (the lake's owner at the console).
    pub(crate) async fn admin_sql(&self, sql: &str) {
        let session = Session::open(self.lake.clone(), Principal::local_admin())
            .await
            .unwrap();
        session
            .sql(sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    /// Adds a user with roles (which must exist).
    pub(crate) async fn add_user(&self, name: &str, roles: &[&str]) {
        let roles: Vec<String> = roles.iter().map(|r| r.to_string()).collect();
        self.lake
            .users()
            .create(name, PASSWORD, &roles, &Principal::local_admin())
            .await
            .unwrap();
    }

    /// Loads a CSV into a raw table.
    pub(crate) async fn load_csv(&self, table: &str, content: &str) {
        let path = self.dir.path().join(format!("{table}.csv"));
        std::fs::write(&path, content).unwrap();
        let table: TableName = table.parse().unwrap();
        Loader::new(self.lake.clone(), Principal::local_admin())
            .load(LoadRequest::new(
                vec![path.to_string_lossy().into_owned()],
                table,
            ))
            .await
            .unwrap();
    }

    /// One request; `user` signs in with HTTP Basic.
    pub(crate) async fn request(
        &self,
        method: &str,
        path: &str,
        user: Option<&str>,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Reply {
        let mut stream = tokio::net::TcpStream::connect(self.addr).await.unwrap();
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Length: {}\r\n",
            body.len()
        );
        if let Some(user) = user {
            let token =
                base64::engine::general_purpose::STANDARD.encode(format!("{user}:{PASSWORD}"));
            head.push_str(&format!("Authorization: Basic {token}\r\n"));
        }
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str("\r\n");
        stream.write_all(head.as_bytes()).await.unwrap();
        stream.write_all(body).await.unwrap();
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).await.unwrap();
        let text = String::from_utf8_lossy(&raw).into_owned();
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("no status in {head:?}"));
        let chunked = head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked");
        Reply {
            status,
            body: if chunked {
                dechunk(body)
            } else {
                body.to_string()
            },
        }
    }

    /// `POST /api/v1/query` answering CSV.
    pub(crate) async fn query(&self, user: Option<&str>, sql: &str) -> Reply {
        self.request(
            "POST",
            "/api/v1/query",
            user,
            &[("Content-Type", "text/plain"), ("Accept", "text/csv")],
            sql.as_bytes(),
        )
        .await
    }
}

/// The body of a chunked response.
fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let Ok(size) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if size == 0 || rest.len() < size {
            break;
        }
        out.push_str(&rest[..size]);
        body = rest[size..].trim_start_matches("\r\n");
    }
    out
}
