//! `winsignal serve`, driven as a client would: the real binary on a loopback port, plain HTTP/1.1.
//! Tokens and row scope on every endpoint, events in through the ingest path with an answer per item,
//! and live scores that equal `winsignal score` on the same data.
#![allow(clippy::unwrap_used)]

mod common;

use common::{p_wins, shift_days, winsignal, winsignal_as, winsignal_fails};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running `winsignal serve`, stopped with SIGTERM when dropped; its log goes to a file.
struct Server {
    child: Child,
    addr: String,
    log: tempfile::NamedTempFile,
}

impl Server {
    fn start(data: &Path, extra: &[&str]) -> Server {
        let log = tempfile::NamedTempFile::new().unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_winsignal"))
            .arg("--data")
            .arg(data)
            .args(["serve", "--listen", "127.0.0.1:0"])
            .args(extra)
            .env_remove("WINSIGNAL_LOG")
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log.reopen().unwrap()))
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let addr = line
            .trim()
            .strip_prefix("listening on http://")
            .unwrap_or_else(|| panic!("serve printed {line:?}"))
            .to_string();
        let server = Server { child, addr, log };
        // Ready once the workspace is loaded; /healthz answers before.
        assert_eq!(server.get("/healthz", None).0, 200);
        let started = Instant::now();
        while server.get("/readyz", None).0 != 200 {
            assert!(started.elapsed() < Duration::from_secs(120), "never ready");
            std::thread::sleep(Duration::from_millis(50));
        }
        server
    }

    /// Sends one request; the status and the body as JSON.
    fn request(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        content_type: Option<&str>,
        body: &[u8],
    ) -> (u16, Value) {
        let bearer = token.map(|t| format!("Bearer {t}"));
        let mut headers = Vec::new();
        if let Some(b) = &bearer {
            headers.push(("Authorization", b.as_str()));
        }
        if let Some(c) = content_type {
            headers.push(("Content-Type", c));
        }
        self.request_with(method, path, &headers, body)
    }

    /// Sends one request with these headers; the status and the body as JSON.
    fn request_with(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> (u16, Value) {
        let mut s = TcpStream::connect(&self.addr).unwrap();
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nContent-Length: {}\r\n",
            self.addr,
            body.len()
        );
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str("\r\n");
        s.write_all(head.as_bytes()).unwrap();
        // A server may answer (413) before reading the whole body and close: that is not an error here.
        let _ = s.write_all(body);
        let mut raw = Vec::new();
        let _ = s.read_to_end(&mut raw);
        let text = String::from_utf8(raw).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        let status: u16 = head.split(' ').nth(1).unwrap().parse().unwrap();
        let chunked = head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked");
        let body = if chunked {
            unchunk(body)
        } else {
            body.to_string()
        };
        let value = if body.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"))
        };
        (status, value)
    }

    fn get(&self, path: &str, token: Option<&str>) -> (u16, Value) {
        self.request("GET", path, token, None, b"")
    }

    fn post(&self, path: &str, token: Option<&str>, body: &Value) -> (u16, Value) {
        self.request(
            "POST",
            path,
            token,
            Some("application/json"),
            body.to_string().as_bytes(),
        )
    }

    /// A client of a server at `addr` that this test did not start (another thread's).
    fn client(addr: String) -> Client {
        Client { addr }
    }

    /// What the server logged so far.
    fn log(&self) -> String {
        std::fs::read_to_string(self.log.path()).unwrap()
    }

    /// SIGTERM, then the exit status.
    fn stop(mut self) -> std::process::ExitStatus {
        // The shell's own `kill`: no other package needed.
        let stopped = Command::new("sh")
            .args(["-c", &format!("kill -TERM {}", self.child.id())])
            .status()
            .unwrap();
        assert!(stopped.success());
        self.child.wait().unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Requests to a server that may be killed at any moment: `None` for a request without an answer.
struct Client {
    addr: String,
}

impl Client {
    fn try_post(&self, path: &str, token: &str, body: &Value) -> Option<(u16, Value)> {
        let mut s = TcpStream::connect(&self.addr).ok()?;
        let body = body.to_string();
        write!(
            s,
            "POST {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .ok()?;
        let mut raw = String::new();
        s.read_to_string(&mut raw).ok()?;
        let (head, body) = raw.split_once("\r\n\r\n")?;
        let status: u16 = head.split(' ').nth(1)?.parse().ok()?;
        Some((status, serde_json::from_str(body).ok()?))
    }
}

/// An open `GET /v1/stream`: Server-Sent Events read off a chunked HTTP/1.1 body.
struct Stream {
    reader: BufReader<TcpStream>,
    /// Body bytes read but not yet split into events.
    pending: String,
    /// Whether the server ended the stream.
    ended: bool,
}

impl Stream {
    fn open(server: &Server, token: &str) -> Stream {
        let s = TcpStream::connect(&server.addr).unwrap();
        let mut w = s.try_clone().unwrap();
        write!(
            w,
            "GET /v1/stream HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {token}\r\nAccept: text/event-stream\r\n\r\n",
            server.addr
        )
        .unwrap();
        let mut reader = BufReader::new(s);
        let mut status = String::new();
        reader.read_line(&mut status).unwrap();
        assert!(status.starts_with("HTTP/1.1 200"), "{status}");
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            if line == "\r\n" {
                break;
            }
            if line.to_ascii_lowercase().starts_with("content-type") {
                assert!(line.contains("text/event-stream"), "{line}");
            }
        }
        Stream {
            reader,
            pending: String::new(),
            ended: false,
        }
    }

    /// The next event (its name and data) within `wait`; `None` when none came. Comments are skipped.
    fn next(&mut self, wait: Duration) -> Option<(String, Value)> {
        let deadline = Instant::now() + wait;
        loop {
            if let Some(end) = self.pending.find("\n\n") {
                let block: String = self.pending.drain(..end + 2).collect();
                let (mut name, mut data) = (String::new(), String::new());
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("event:") {
                        name = v.trim().to_string();
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data.push_str(v.trim());
                    }
                }
                if name.is_empty() {
                    continue;
                }
                return Some((name, serde_json::from_str(&data).unwrap()));
            }
            let left = deadline.checked_duration_since(Instant::now())?;
            let socket = self.reader.get_ref();
            socket
                .set_read_timeout(Some(left.max(Duration::from_millis(1))))
                .unwrap();
            let mut size = String::new();
            match self.reader.read_line(&mut size) {
                Ok(0) => {
                    self.ended = true;
                    return None;
                }
                Ok(_) => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    return None
                }
                Err(e) => panic!("{e}"),
            }
            let n = usize::from_str_radix(size.trim(), 16).unwrap();
            if n == 0 {
                self.ended = true;
                return None;
            }
            let mut chunk = vec![0; n + 2];
            self.reader.read_exact(&mut chunk).unwrap();
            self.pending
                .push_str(std::str::from_utf8(&chunk[..n]).unwrap());
        }
    }
}

fn unchunk(mut body: &str) -> String {
    let mut out = String::new();
    loop {
        let (size, rest) = body.split_once("\r\n").unwrap();
        let n = usize::from_str_radix(size.trim(), 16).unwrap();
        if n == 0 {
            return out;
        }
        out.push_str(&rest[..n]);
        body = &rest[n + 2..];
    }
}

fn code(v: &Value) -> &str {
    v["error"]["code"].as_str().unwrap_or_else(|| panic!("{v}"))
}

#[test]
fn serve_answers_within_each_tokens_scope_and_rescores_a_deal_when_its_events_arrive() {
    let ws = tempfile::tempdir().unwrap();
    let data = ws.path().join("ws");
    winsignal(&data, &["demo", "--scale", "0.3", "--seed", "11"]);
    let scored: Value = serde_json::from_str(&winsignal(&data, &["score", "--json"])).unwrap();
    let deals = scored["deals"].as_array().unwrap();
    // A deal whose next actions name people to involve (a behaviour about people it lacks): its rep is
    // rita's; another rep with open deals is bob's.
    let target = deals
        .iter()
        .find(|d| {
            d["rep_id"].is_string()
                && d["actions"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|a| !a["targets"].as_array().unwrap().is_empty())
        })
        .expect("a deal with people to involve");
    let rita_rep = target["rep_id"].as_str().unwrap();
    let bob_rep = deals
        .iter()
        .filter_map(|d| d["rep_id"].as_str())
        .find(|r| *r != rita_rep)
        .expect("a second rep with open deals");
    let admin = winsignal(&data, &["users", "add", "ann", "--role", "revops"]);
    let rita = winsignal(
        &data,
        &[
            "users", "add", "rita", "--role", "rep", "--rep-id", rita_rep,
        ],
    );
    let bob = winsignal(
        &data,
        &["users", "add", "bob", "--role", "rep", "--rep-id", bob_rep],
    );
    let (admin, rita, bob) = (admin.trim(), rita.trim(), bob.trim());

    let server = Server::start(&data, &["--max-body", "65536"]);

    // No token, an unknown token, a revoked one: 401 on every endpoint.
    let endpoints = [
        "/v1/deals",
        &format!("/v1/deals/{}", deals[0]["opportunity_id"].as_str().unwrap()),
    ];
    for path in endpoints {
        for token in [None, Some("wst_00000000_nope")] {
            let (status, body) = server.get(path, token);
            assert_eq!((status, code(&body)), (401, "unauthorized"), "{path}");
        }
    }
    let (status, body) = server.post("/v1/events", None, &json!({"items": []}));
    assert_eq!((status, code(&body)), (401, "unauthorized"));
    let (status, body) = server.get("/v1/stream", None);
    assert_eq!((status, code(&body)), (401, "unauthorized"));

    // RevOps sees every open deal, with the scores `winsignal score` gives.
    let (status, all) = server.get("/v1/deals", Some(admin));
    assert_eq!(status, 200, "{all}");
    assert_eq!(p_wins(&all["deals"]), p_wins(&scored["deals"]));
    assert_eq!(all["model_id"], scored["model_id"]);

    // A rep sees only their own deals; another rep's deal is as absent as one that does not exist.
    let (_, mine) = server.get("/v1/deals", Some(rita));
    let mine = mine["deals"].as_array().unwrap();
    assert!(!mine.is_empty());
    assert!(mine.iter().all(|d| d["rep_id"] == rita_rep));
    let rita_count = deals.iter().filter(|d| d["rep_id"] == rita_rep).count();
    assert_eq!(mine.len(), rita_count);
    let bobs = deals.iter().find(|d| d["rep_id"] == bob_rep).unwrap();
    let bobs_id = bobs["opportunity_id"].as_str().unwrap();
    let (status, body) = server.get(&format!("/v1/deals/{bobs_id}"), Some(rita));
    assert_eq!((status, code(&body)), (404, "not_found"));
    let (status, body) = server.get(&format!("/v1/deals?rep={bob_rep}"), Some(rita));
    assert_eq!(status, 200);
    assert!(body["deals"].as_array().unwrap().is_empty());
    let (status, body) = server.get(&format!("/v1/deals/{bobs_id}"), Some(admin));
    assert_eq!(status, 200);
    assert_eq!(body["deal"]["p_win"], bobs["p_win"]);

    // Findings, scorecards and account priorities: what the CLI says, within each token's scope.
    let cli = |args: &[&str]| -> Value { serde_json::from_str(&winsignal(&data, args)).unwrap() };
    for path in [
        "/v1/findings",
        "/v1/reps",
        "/v1/accounts",
        "/v1/forecast",
        &format!("/v1/reps/{rita_rep}"),
    ] {
        let (status, body) = server.get(path, None);
        assert_eq!((status, code(&body)), (401, "unauthorized"), "{path}");
    }
    let (status, found) = server.get("/v1/findings", Some(admin));
    assert_eq!(status, 200, "{found}");
    assert_eq!(found["findings"], cli(&["discover", "--json"]));
    assert!(!found["findings"]["findings"].as_array().unwrap().is_empty());
    let (_, ritas) = server.get("/v1/findings", Some(rita));
    let adoption_groups = |v: &Value| -> Vec<String> {
        v["findings"]["details"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|d| d["reps"].as_array().unwrap())
            .map(|a| a["group"].as_str().unwrap().to_string())
            .collect()
    };
    assert!(adoption_groups(&found).iter().any(|g| g != rita_rep));
    assert!(adoption_groups(&ritas).iter().all(|g| g == rita_rep));
    assert_eq!(ritas["findings"]["findings"], found["findings"]["findings"]);
    let (status, cards) = server.get("/v1/reps", Some(admin));
    assert_eq!(status, 200, "{cards}");
    assert_eq!(cards["scorecards"], cli(&["reps", "--json"]));
    let (_, ritas) = server.get("/v1/reps", Some(rita));
    let ids: Vec<&str> = ritas["scorecards"]["reps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["rep_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [rita_rep]);
    let (status, body) = server.get(&format!("/v1/reps/{bob_rep}"), Some(rita));
    assert_eq!((status, code(&body)), (404, "not_found"));
    let (status, body) = server.get(&format!("/v1/reps/{bob_rep}"), Some(admin));
    assert_eq!(
        (status, body["card"]["rep_id"].as_str()),
        (200, Some(bob_rep))
    );
    let (status, ranked) = server.get("/v1/accounts", Some(admin));
    assert_eq!(status, 200, "{ranked}");
    assert_eq!(
        ranked["accounts"],
        cli(&["accounts", "--prioritise", "--json"])
    );
    let (status, body) = server.get("/v1/accounts", Some(rita));
    assert_eq!((status, code(&body)), (403, "forbidden"));
    let (status, body) = server.get("/v1/accounts?top=x", Some(admin));
    assert_eq!((status, code(&body)), (400, "bad_query"));
    // The forecast of the live state is `winsignal forecast --json` of the same data.
    let (status, live) = server.get("/v1/forecast?period=month&periods=2", Some(admin));
    assert_eq!(status, 200, "{live}");
    let mut batch = cli(&["forecast", "--json", "--period", "month", "--periods", "2"]);
    assert_eq!(live["model_id"], batch["model_id"]);
    let batch = batch.as_object_mut().unwrap();
    batch.remove("model_id");
    batch.remove("scenarios");
    assert_eq!(live["forecast"], Value::Object(batch.clone()));
    let (status, body) = server.get("/v1/forecast", Some(rita));
    assert_eq!((status, code(&body)), (403, "forbidden"));
    for bad in [
        "/v1/forecast?period=week",
        "/v1/forecast?periods=0",
        "/v1/forecast?x=1",
    ] {
        let (status, body) = server.get(bad, Some(admin));
        assert_eq!((status, code(&body)), (400, "bad_query"), "{bad}: {body}");
    }

    // Events on one of rita's deals, an hour before the end of the data (so only they move the
    // score): accepted, committed, the deal rescored with the factors that moved it.
    let deal_id = target["opportunity_id"].as_str().unwrap();
    let deal = mine
        .iter()
        .find(|d| d["opportunity_id"] == deal_id)
        .unwrap();
    let people: Vec<&Value> = target["actions"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|a| a["targets"].as_array().unwrap())
        .map(|t| &t["contact_id"])
        .collect();
    let as_of = deal["as_of"].as_str().unwrap();
    let when = chrono_minus_hour(as_of);
    let mut items: Vec<Value> = (0..4)
        .map(|i| {
            json!({"kind": "activities", "record": {
                "activity_id": format!("API-{i}"),
                "type": if i % 2 == 0 { "meeting" } else { "call" },
                "status": "completed",
                "direction": "outbound",
                "opportunity_id": deal_id,
                "account_id": deal["account_id"],
                "rep_id": rita_rep,
                "contact_ids": people,
                "occurred_at": when,
                "duration_s": 1800,
            }})
        })
        .collect();
    // And one that is not valid: quarantined with its reason, the others still accepted.
    items.push(json!({"kind": "activities", "record": {
        "activity_id": "API-bad", "type": "meeting", "opportunity_id": deal_id,
        "occurred_at": when, "duration_s": -5,
    }}));
    // Streams opened before: rita's and revops' see the change, bob's does not.
    let mut rita_stream = Stream::open(&server, rita);
    let mut admin_stream = Stream::open(&server, admin);
    let mut bob_stream = Stream::open(&server, bob);
    // Sent pretty-printed, each record over several lines (as read, the same records: sent again
    // compact below, they change nothing).
    let pretty = serde_json::to_string_pretty(&json!({ "items": items })).unwrap();
    let (status, answer) = server.request(
        "POST",
        "/v1/events",
        Some(rita),
        Some("application/json"),
        pretty.as_bytes(),
    );
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        (answer["accepted"].as_u64(), answer["quarantined"].as_u64()),
        (Some(4), Some(1))
    );
    let bad = &answer["items"][4];
    assert_eq!(bad["status"], "quarantined");
    assert!(bad["reasons"].to_string().contains("duration_s"), "{bad}");
    let changes = answer["score_changes"].as_array().unwrap();
    let change = changes
        .iter()
        .find(|c| c["opportunity_id"] == deal_id)
        .unwrap_or_else(|| panic!("{answer}"));
    assert_eq!(change["before"], deal["p_win"]);
    assert_ne!(change["after"], change["before"]);
    assert!(
        !change["moved_by"].as_array().unwrap().is_empty(),
        "{change}"
    );

    for stream in [&mut rita_stream, &mut admin_stream] {
        let (name, streamed) = stream
            .next(Duration::from_secs(10))
            .expect("a score change");
        assert_eq!(name, "score_change");
        assert_eq!(streamed["opportunity_id"], deal_id);
        assert_eq!(streamed["after"], change["after"]);
        assert_eq!(streamed["moved_by"], change["moved_by"]);
    }
    while let Some((name, streamed)) = bob_stream.next(Duration::from_millis(500)) {
        assert!(
            streamed["rep_id"] == bob_rep,
            "bob's stream sent {name} {streamed}"
        );
    }

    // The live score is the one `winsignal score` computes from the store as it now is.
    let (_, now) = server.get(&format!("/v1/deals/{deal_id}"), Some(rita));
    assert_eq!(now["deal"]["p_win"], change["after"]);
    let rescored: Value = serde_json::from_str(&winsignal(&data, &["score", "--json"])).unwrap();
    let (_, all_now) = server.get("/v1/deals", Some(admin));
    assert_eq!(p_wins(&all_now["deals"]), p_wins(&rescored["deals"]));
    // Whole, explanations included: the live state explains a score when it is first read (the deals
    // nothing touched, from the state at start), and gives what `winsignal score` gives.
    for batch_deal in rescored["deals"].as_array().unwrap() {
        let id = batch_deal["opportunity_id"].as_str().unwrap();
        let (status, live_deal) = server.get(&format!("/v1/deals/{id}"), Some(admin));
        assert_eq!(status, 200, "{live_deal}");
        assert_eq!(&live_deal["deal"], batch_deal, "{id}");
    }

    // Its lineage: `winsignal explain --json` of the live state, source rows included (the API's own
    // items among them: the load and line of the request that carried them).
    let (status, lineage) = server.get(&format!("/v1/deals/{deal_id}/lineage"), Some(rita));
    assert_eq!(status, 200, "{lineage}");
    let explained: Value =
        serde_json::from_str(&winsignal(&data, &["explain", deal_id, "--json"])).unwrap();
    assert_eq!(lineage, explained);
    assert!(
        lineage.to_string().contains("api:rita:"),
        "the posted events' origin"
    );
    let (status, body) = server.get(&format!("/v1/deals/{deal_id}/lineage"), Some(bob));
    assert_eq!((status, code(&body)), (404, "not_found"));

    // The deal's score history: first scored when the server started, then this change.
    let (status, h) = server.get(&format!("/v1/deals/{deal_id}/history"), Some(rita));
    assert_eq!(status, 200, "{h}");
    let h = h["history"].as_array().unwrap();
    assert_eq!(
        (h[0]["before"].clone(), h[0]["after"].clone()),
        (Value::Null, deal["p_win"].clone())
    );
    let last = h.last().unwrap();
    for field in ["before", "after", "moved_by", "position", "model_id"] {
        assert_eq!(last[field], change[field], "{field}");
    }
    let (status, body) = server.get(&format!("/v1/deals/{deal_id}/history"), Some(bob));
    assert_eq!((status, code(&body)), (404, "not_found"));

    // The same batch again changes nothing (events are idempotent by id and content).
    let (status, again) = server.post("/v1/events", Some(rita), &json!({ "items": items }));
    assert_eq!(status, 200, "{again}");
    assert!(
        again["score_changes"].as_array().unwrap().is_empty(),
        "{again}"
    );

    // Segment's HTTP Tracking API, as a Segment library sends it: the token as the write key (HTTP
    // Basic user name), a batch of messages. Read by the Segment connector: a track without `event` and
    // an alias are quarantined with the connector's reasons, the rest accepted.
    let basic = |token: &str| format!("Basic {}", base64(&format!("{token}:")));
    let batch = json!({"batch": [
        {"type": "track", "messageId": "seg-1", "userId": "u-77", "event": "Report Exported",
         "timestamp": when, "context": {"groupId": deal["account_id"]}},
        {"type": "identify", "messageId": "seg-2", "userId": "u-77",
         "traits": {"email": "u77@example.org"}, "timestamp": when},
        {"type": "track", "messageId": "seg-3", "userId": "u-77", "timestamp": when},
        {"type": "alias", "messageId": "seg-4", "userId": "u-77", "previousId": "x", "timestamp": when},
    ]});
    let segment = |auth: &str, path: &str, body: &Value| {
        server.request_with(
            "POST",
            path,
            &[
                ("Authorization", auth),
                ("Content-Type", "application/json"),
            ],
            body.to_string().as_bytes(),
        )
    };
    let (status, answer) = segment(&basic(rita), "/segment/v1/batch", &batch);
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["success"], true);
    let statuses: Vec<&str> = answer["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["status"].as_str().unwrap())
        .collect();
    assert_eq!(
        statuses,
        ["accepted", "accepted", "quarantined", "quarantined"]
    );
    assert!(
        answer["items"][3]["reasons"].to_string().contains("alias"),
        "{answer}"
    );
    // A single call without `type` takes the path's.
    let track = json!({"messageId": "seg-5", "userId": "u-77", "event": "Invite Sent",
                       "timestamp": when, "context": {"groupId": deal["account_id"]}});
    let (status, answer) = segment(&basic(rita), "/segment/v1/track", &track);
    assert_eq!(
        (status, answer["accepted"].as_u64()),
        (200, Some(1)),
        "{answer}"
    );
    assert_eq!(answer["items"][0]["kind"], "track");
    let (status, body) = segment(&basic("wst_00000000_nope"), "/segment/v1/track", &track);
    assert_eq!((status, code(&body)), (401, "unauthorized"));
    let (status, body) = segment(&basic(rita), "/segment/v1/track", &json!({"type": "page"}));
    assert_eq!((status, code(&body)), (422, "bad_shape"));
    let (status, body) = segment(&basic(rita), "/segment/v1/purchase", &track);
    assert_eq!((status, code(&body)), (404, "not_found"));

    // Bad requests: each with its code from the table.
    let raw =
        |ct: Option<&str>, body: &[u8]| server.request("POST", "/v1/events", Some(admin), ct, body);
    let (status, body) = raw(Some("application/json"), b"{\"items\": [");
    assert_eq!((status, code(&body)), (400, "bad_json"));
    let (status, body) = raw(Some("application/json"), b"{\"items\": 3}");
    assert_eq!((status, code(&body)), (422, "bad_shape"));
    // Of the wrong shape where the reading stops, and not JSON further on: not JSON.
    let (status, body) = raw(Some("application/json"), b"{\"items\": 3, \"x\": [}");
    assert_eq!((status, code(&body)), (400, "bad_json"), "{body}");
    let (status, body) = raw(
        Some("application/json"),
        br#"{"items": [{"kind": "activities", "record": ["a"]}]}"#,
    );
    assert_eq!((status, code(&body)), (422, "bad_shape"));
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("items[0].record is [\"a\"]; expected a JSON object"),
        "{body}"
    );
    // A long one is named by its start.
    let long = format!(
        r#"{{"items": [{{"kind": "activities", "record": [{}0]}}]}}"#,
        "1,".repeat(5000)
    );
    let (status, body) = raw(Some("application/json"), long.as_bytes());
    assert_eq!((status, code(&body)), (422, "bad_shape"));
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("items[0].record is [1,1,1,")
            && message.contains("…;")
            && message.len() < 200,
        "{message}"
    );
    let (status, body) = raw(
        Some("application/json"),
        br#"{"items": [{"kind": "meetings", "record": {}}]}"#,
    );
    assert_eq!((status, code(&body)), (422, "bad_shape"));
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("items[0].kind"));
    let (status, body) = raw(Some("text/plain"), b"{}");
    assert_eq!((status, code(&body)), (415, "unsupported_media_type"));
    let (status, body) = raw(Some("application/json"), &vec![b' '; 70_000]);
    assert_eq!((status, code(&body)), (413, "too_large"));
    let (status, body) = server.get("/v1/nothing", Some(admin));
    assert_eq!((status, code(&body)), (404, "not_found"));
    let (status, body) = server.get("/v1/deals?max_p_win=lots", Some(admin));
    assert_eq!((status, code(&body)), (400, "bad_query"));

    // Models, for any role; data quality (`quality --json`) for admin and revops.
    let (status, models) = server.get("/v1/models", Some(rita));
    assert_eq!(status, 200, "{models}");
    let models = models["models"].as_array().unwrap();
    let active: Vec<&Value> = models.iter().filter(|m| m["active"] == true).collect();
    assert_eq!(active.len(), 1);
    assert_eq!(active[0]["model_id"], scored["model_id"]);
    assert!(active[0]["summary"].is_object());
    let (status, body) = server.get("/v1/quality", Some(rita));
    assert_eq!((status, code(&body)), (403, "forbidden"));
    let (status, report) = server.get("/v1/quality", Some(admin));
    assert_eq!(status, 200);
    let cli: Value = serde_json::from_str(&winsignal(&data, &["quality", "--json"])).unwrap();
    assert_eq!(report["totals"], cli["totals"]);
    assert_eq!(
        report["loads"].as_array().unwrap().len(),
        cli["loads"].as_array().unwrap().len()
    );
    for path in ["/v1/models", "/v1/quality"] {
        let (status, body) = server.get(path, None);
        assert_eq!((status, code(&body)), (401, "unauthorized"), "{path}");
    }

    // Prometheus metrics, for an admin's or revops' token; routes by their pattern, not their ids.
    let (status, body) = server.get("/metrics", None);
    assert_eq!((status, code(&body)), (401, "unauthorized"));
    let (status, body) = server.get("/metrics", Some(rita));
    assert_eq!((status, code(&body)), (403, "forbidden"));
    let metrics = {
        let mut s = TcpStream::connect(&server.addr).unwrap();
        write!(
            s,
            "GET /metrics HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {admin}\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut text = String::new();
        s.read_to_string(&mut text).unwrap();
        text
    };
    assert!(metrics.starts_with("HTTP/1.1 200"), "{metrics}");
    assert!(
        metrics.contains(r#"winsignal_http_request_duration_seconds_count{route="/v1/deals/{id}",method="GET",status="404"}"#),
        "{metrics}"
    );
    assert!(!metrics.contains(&format!("/v1/deals/{deal_id}")));
    assert!(metrics.contains(&format!(
        "winsignal_active_model{{model_id=\"{}\"}} 1",
        scored["model_id"].as_str().unwrap()
    )));
    assert!(metrics.contains("winsignal_open_streams 3"), "{metrics}");
    let counter = |name: &str| -> u64 {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")))
            .unwrap_or_else(|| panic!("no {name}"))
            .parse()
            .unwrap()
    };
    // The first batch (4 + 1 bad), the same again, the Segment batch (2 + 2) and the single track.
    assert_eq!(counter("winsignal_items_accepted_total"), 4 + 4 + 2 + 1);
    assert_eq!(counter("winsignal_items_quarantined_total"), 1 + 1 + 2);
    assert!(counter("winsignal_score_changes_total") >= 1);

    // SIGTERM stops it cleanly, open streams included.
    let (_, at_stop) = server.get(&format!("/v1/deals/{deal_id}/history"), Some(rita));
    // The log: a line per request with its route pattern and status, a line per commit with its
    // user and counts; never a token.
    let log = server.log();
    assert!(
        log.contains(r#"route=/v1/deals/{id} status=404"#) && log.contains("status=401"),
        "{log}"
    );
    assert!(
        log.contains("user=rita requests=1 accepted=4 quarantined=1"),
        "{log}"
    );
    for token in [admin, rita, bob] {
        assert!(!log.contains(&token[13..]), "a token's secret in the log");
    }
    assert!(server.stop().success());
    // (What the Segment events changed is still to be read first.)
    while let Some((name, _)) = rita_stream.next(Duration::from_secs(5)) {
        assert_eq!(name, "score_change");
    }
    assert!(rita_stream.ended);

    // An event that arrives while no server runs: the next start records the change it made (what
    // moved it is not known), so the history ends at the score the deal has.
    let (_, before_stop) = {
        let server = Server::start(&data, &[]);
        let got = server.get(&format!("/v1/deals/{deal_id}/history"), Some(rita));
        assert!(server.stop().success());
        got
    };
    let n_before = before_stop["history"].as_array().unwrap().len();
    // A restart with nothing new records nothing.
    assert_eq!(before_stop, at_stop);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("activities.jsonl");
    let meeting = json!({"activity_id": "OFFLINE-1", "type": "meeting", "status": "completed",
        "opportunity_id": deal_id, "account_id": deal["account_id"], "contact_ids": people,
        "occurred_at": when, "duration_s": 3600});
    std::fs::write(&file, format!("{meeting}\n")).unwrap();
    winsignal(&data, &["ingest", file.to_str().unwrap()]);
    let server = Server::start(&data, &[]);
    let (_, after_restart) = server.get(&format!("/v1/deals/{deal_id}/history"), Some(rita));
    let (_, now) = server.get(&format!("/v1/deals/{deal_id}"), Some(rita));
    let h = after_restart["history"].as_array().unwrap();
    assert_eq!(h.len(), n_before + 1, "{after_restart}");
    let last = h.last().unwrap();
    assert_eq!(
        last["before"],
        before_stop["history"][n_before - 1]["after"]
    );
    assert_eq!(last["after"], now["deal"]["p_win"]);
    assert_eq!(last["moved_by"], json!([]));
    assert!(server.stop().success());
}

/// An RFC 3339 time (`YYYY-MM-DDTHH:MM:SS(.fff)Z`, UTC) one hour earlier, within the same month.
fn chrono_minus_hour(t: &str) -> String {
    // By hand, to keep the test free of a date crate.
    let (date, time) = t.split_once('T').unwrap();
    let hour: u32 = time[..2].parse().unwrap();
    if hour >= 1 {
        return format!("{date}T{:02}{}", hour - 1, &time[2..]);
    }
    let day: u32 = date[8..10].parse().unwrap();
    assert!(
        day > 1,
        "the end of the data is at the start of a month: {t}"
    );
    format!("{}{:02}T23{}", &date[..8], day - 1, &time[2..])
}

/// Standard base64 with padding (a Segment write key is sent as HTTP Basic credentials).
fn base64(text: &str) -> String {
    const ABC: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in text.as_bytes().chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ABC[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[test]
fn serve_without_a_model_says_so_and_still_takes_events() {
    let ws = tempfile::tempdir().unwrap();
    let data = ws.path().join("ws");
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../ingest/tests/fixtures/canonical");
    winsignal(&data, &["ingest", fixtures.to_str().unwrap()]);
    let token = winsignal(&data, &["users", "add", "ann", "--role", "admin"]);
    let token = token.trim();
    let server = Server::start(&data, &[]);
    let (_, ready) = server.get("/readyz", None);
    assert_eq!(ready["model_id"], Value::Null);
    // No model: no scores, said as such (not an error, not a made-up number).
    let (status, deals) = server.get("/v1/deals", Some(token));
    assert_eq!(status, 200);
    assert_eq!(deals["model_id"], Value::Null);
    assert_eq!(deals["deals"], json!([]));
    let (status, models) = server.get("/v1/models", Some(token));
    assert_eq!((status, models["models"].clone()), (200, json!([])));
    // Events are still taken in, with nothing to rescore.
    let item = json!({"kind": "activities", "record": {"activity_id": "NEW-1", "type": "call",
        "status": "completed", "account_id": "A1", "occurred_at": "2025-03-01T10:00:00Z"}});
    let (status, answer) = server.post("/v1/events", Some(token), &json!({ "items": [item] }));
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["accepted"], 1);
    assert_eq!(answer["score_changes"], json!([]));
    assert!(server.stop().success());
}

/// The small demo workspace (scale 0.05, seed 3) in `<dir>/ws`, a revops token for it, and
/// `winsignal score --json` of it.
fn small_workspace() -> (tempfile::TempDir, String, Value) {
    let ws = tempfile::tempdir().unwrap();
    let data = ws.path().join("ws");
    winsignal(&data, &["demo", "--scale", "0.05", "--seed", "3"]);
    let token = winsignal(&data, &["users", "add", "ann", "--role", "revops"]);
    let scored: Value = serde_json::from_str(&winsignal(&data, &["score", "--json"])).unwrap();
    (ws, token.trim().to_string(), scored)
}

/// `kill -9` of the server while a client sends events, ten times: every event the server acknowledged
/// is in the store afterwards, and the restarted server's scores equal a batch recomputation.
#[test]
fn kill_9_loses_no_acknowledged_event() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};
    use winsignal_store::StoreRead;
    let (ws, token, scored) = small_workspace();
    let data = ws.path().join("ws");
    let deal = scored["deals"][0].clone();
    let day = scored["as_of"].as_str().unwrap()[..10].to_string();
    // A webhook receiving every score change, through the kills.
    let receiver = Receiver::start();
    let secret = winsignal(
        &data,
        &[
            "webhooks",
            "add",
            "all",
            "--url",
            &format!("http://{}/all", receiver.addr),
        ],
    );
    receiver.secret("/all", secret.trim());
    let acknowledged = Arc::new(Mutex::new(Vec::<String>::new()));
    for round in 0..10u64 {
        let mut server = Server::start(&data, &[]);
        let stop = Arc::new(AtomicBool::new(false));
        let poster = {
            let (addr, token, deal, day) = (
                server.addr.clone(),
                token.clone(),
                deal.clone(),
                day.clone(),
            );
            let (stop, acknowledged) = (stop.clone(), acknowledged.clone());
            std::thread::spawn(move || {
                let probe = Server::client(addr);
                let mut i = 0;
                while !stop.load(Ordering::Relaxed) {
                    let id = format!("KILL-{round}-{i}");
                    let item = json!({"kind": "activities", "record": {
                        "activity_id": id, "type": "call", "status": "completed",
                        "opportunity_id": deal["opportunity_id"], "account_id": deal["account_id"],
                        "occurred_at": format!("{day}T00:00:00Z")}});
                    // A request cut by the kill has no answer: only a 200 acknowledges.
                    if let Some((200, _)) =
                        probe.try_post("/v1/events", &token, &json!({ "items": [item] }))
                    {
                        acknowledged.lock().unwrap().push(id);
                    }
                    i += 1;
                }
            })
        };
        // Killed at a different moment each round, mid-traffic.
        std::thread::sleep(Duration::from_millis(150 + 70 * round));
        server.child.kill().unwrap(); // SIGKILL
        server.child.wait().unwrap();
        stop.store(true, Ordering::Relaxed);
        poster.join().unwrap();
    }
    let acknowledged = acknowledged.lock().unwrap().clone();
    assert!(
        acknowledged.len() >= 10,
        "too few events got through: {}",
        acknowledged.len()
    );
    let server = Server::start(&data, &[]);
    let store = winsignal_store::EmbeddedStore::open(&data).unwrap();
    let held: std::collections::BTreeSet<String> = store
        .events(&[winsignal_core::Kind::Activities])
        .unwrap()
        .map(|e| e.unwrap().key)
        .filter(|k| k.starts_with("KILL-"))
        .collect();
    for id in &acknowledged {
        assert!(
            held.contains(id),
            "{id} was acknowledged and is not in the store"
        );
    }
    let (_, live) = server.get("/v1/deals", Some(&token));
    let batch: Value = serde_json::from_str(&winsignal(&data, &["score", "--json"])).unwrap();
    assert_eq!(p_wins(&live["deals"]), p_wins(&batch["deals"]));
    // Every score change recorded, across the ten kills, reaches the webhook at least once, signed.
    let changes = history_after(&data, 0);
    assert!(!changes.is_empty());
    wait_for(&receiver, "every change through the kills", |got| {
        changes
            .iter()
            .all(|(seq, _)| got.iter().any(|r| r.delivery == format!("all:{seq}")))
    });
    assert!(receiver.received().iter().all(|r| r.signed));
    assert!(server.stop().success());
}

/// CRM record upserts through the API: a deal closed leaves the open deals (its change says so), a new
/// deal is scored at once, and the live scores still equal a batch recomputation.
#[test]
fn crm_upserts_close_and_open_deals_live() {
    let (ws, token, scored) = small_workspace();
    let (data, token) = (ws.path().join("ws"), token.as_str());
    let open = &scored["deals"][0];
    let id = open["opportunity_id"].as_str().unwrap();
    // A rep of another deal, who will post a change of a deal that is not theirs.
    let deals = scored["deals"].as_array().unwrap();
    let other = deals
        .iter()
        .find(|d| d["rep_id"] != open["rep_id"] && d["opportunity_id"] != open["opportunity_id"])
        .expect("a deal of another rep");
    let bob_rep = deals
        .iter()
        .map(|d| &d["rep_id"])
        .find(|r| **r != other["rep_id"])
        .unwrap()
        .as_str()
        .unwrap();
    let bob = winsignal(
        &data,
        &["users", "add", "bob", "--role", "rep", "--rep-id", bob_rep],
    );
    let server = Server::start(&data, &[]);
    let day = &scored["as_of"].as_str().unwrap()[..10];
    let lost = json!({"kind": "opportunities", "record": {
        "opportunity_id": other["opportunity_id"], "account_id": other["account_id"],
        "rep_id": other["rep_id"], "amount": 1000, "created_at": "2020-01-01T00:00:00Z",
        "closed_at": format!("{day}T00:00:00Z"), "outcome": "lost", "stage": "Closed Lost"}});
    let (status, answer) = server.post("/v1/events", Some(bob.trim()), &json!({ "items": [lost] }));
    assert_eq!(
        (status, answer["accepted"].as_u64()),
        (200, Some(1)),
        "{answer}"
    );
    // The change is made and recorded, but not named to a rep who may not see the deal.
    assert_eq!(answer["score_changes"], json!([]), "{answer}");
    let other_id = other["opportunity_id"].as_str().unwrap();
    let (_, history) = server.get(&format!("/v1/deals/{other_id}/history"), Some(token));
    let last = history["history"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(last["after"], Value::Null, "{history}");
    let closed = json!({"kind": "opportunities", "record": {
        "opportunity_id": id, "account_id": open["account_id"], "rep_id": open["rep_id"],
        "amount": 1000, "created_at": "2020-01-01T00:00:00Z", "closed_at": format!("{day}T00:00:00Z"),
        "outcome": "won", "stage": "Closed Won"}});
    let new = json!({"kind": "opportunities", "record": {
        "opportunity_id": "NEW-OPP-1", "account_id": open["account_id"], "rep_id": open["rep_id"],
        "amount": 50000, "created_at": format!("{day}T00:00:00Z"), "outcome": "open",
        "stage": "Prospecting"}});
    let (status, answer) = server.post("/v1/events", Some(token), &json!({"items": [closed, new]}));
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["accepted"], 2, "{answer}");
    let change = |who: &str| {
        answer["score_changes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["opportunity_id"] == who)
            .unwrap_or_else(|| panic!("no change of {who}: {answer}"))
            .clone()
    };
    assert_eq!(
        (change(id)["before"].clone(), change(id)["after"].clone()),
        (open["p_win"].clone(), Value::Null)
    );
    assert_eq!(change("NEW-OPP-1")["before"], Value::Null);
    assert!(change("NEW-OPP-1")["after"].is_f64());
    let (status, body) = server.get(&format!("/v1/deals/{id}"), Some(token));
    assert_eq!((status, code(&body)), (404, "not_found"));
    let (status, body) = server.get("/v1/deals/NEW-OPP-1", Some(token));
    assert_eq!(status, 200, "{body}");
    let (_, live) = server.get("/v1/deals", Some(token));
    let batch: Value = serde_json::from_str(&winsignal(&data, &["score", "--json"])).unwrap();
    assert_eq!(p_wins(&live["deals"]), p_wins(&batch["deals"]));
    assert!(server.stop().success());
}

/// A webhook receiver on a loopback port, as a customer's endpoint would be: it checks each request's
/// signature with the webhook's secret, records what arrived, and can be made to fail: answer 503, or
/// be down (its port closed) for a while.
struct Receiver {
    addr: String,
    state: std::sync::Arc<ReceiverState>,
}

#[derive(Default)]
struct ReceiverState {
    received: std::sync::Mutex<Vec<Received>>,
    /// Answer this many requests with 503 before taking any.
    fail_next: std::sync::atomic::AtomicU64,
    /// Closed: the port refuses connections until opened again.
    down: std::sync::atomic::AtomicBool,
    /// Secrets by the path prefix the webhook posts to.
    secrets: std::sync::Mutex<Vec<(String, String)>>,
    stop: std::sync::atomic::AtomicBool,
}

#[derive(Debug, Clone)]
struct Received {
    method: String,
    path: String,
    delivery: String,
    authorization: Option<String>,
    /// Whether the signature was valid for the secret of its path and at most 5 minutes old.
    signed: bool,
    body: Value,
}

impl Receiver {
    fn start() -> Receiver {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let state = std::sync::Arc::new(ReceiverState::default());
        let (s, a) = (state.clone(), addr.clone());
        std::thread::spawn(move || receive(listener, &a, &s));
        Receiver { addr, state }
    }

    fn secret(&self, path_prefix: &str, secret: &str) {
        self.state
            .secrets
            .lock()
            .unwrap()
            .push((path_prefix.into(), secret.into()));
    }

    fn received(&self) -> Vec<Received> {
        self.state.received.lock().unwrap().clone()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.state
            .stop
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

fn receive(listener: std::net::TcpListener, addr: &str, state: &std::sync::Arc<ReceiverState>) {
    use std::sync::atomic::Ordering::Relaxed;
    listener.set_nonblocking(true).unwrap();
    let mut listener = Some(listener);
    while !state.stop.load(Relaxed) {
        // Down: the port is closed (connections refused), then bound again.
        if state.down.load(Relaxed) {
            listener = None;
            std::thread::sleep(Duration::from_millis(10));
            continue;
        }
        let l = match &listener {
            Some(l) => l,
            None => match std::net::TcpListener::bind(addr) {
                Ok(l) => {
                    l.set_nonblocking(true).unwrap();
                    listener.insert(l)
                }
                Err(_) => {
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                }
            },
        };
        let Ok((conn, _)) = l.accept() else {
            std::thread::sleep(Duration::from_millis(2));
            continue;
        };
        conn.set_nonblocking(false).unwrap();
        // Clients keep connections open: each is served on its own thread.
        let state = state.clone();
        std::thread::spawn(move || serve_one(conn, &state));
    }
}

/// Reads the requests of one connection and answers each.
fn serve_one(conn: TcpStream, state: &ReceiverState) {
    use hmac::Mac;
    use std::sync::atomic::Ordering::Relaxed;
    let mut reader = BufReader::new(conn.try_clone().unwrap());
    let mut conn = conn;
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
            return;
        }
        let mut parts = request_line.split_whitespace();
        let (method, path) = (
            parts.next().unwrap_or("").to_string(),
            parts.next().unwrap_or("").to_string(),
        );
        let mut headers = std::collections::BTreeMap::new();
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            let (k, v) = line.split_once(':').unwrap();
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
        let length: usize = headers
            .get("content-length")
            .map_or(0, |v| v.parse().unwrap());
        let mut body = vec![0u8; length];
        reader.read_exact(&mut body).unwrap();
        // Down: connections open before are cut, the request unanswered.
        if state.down.load(Relaxed) || state.stop.load(Relaxed) {
            return;
        }
        let failing = state
            .fail_next
            .fetch_update(Relaxed, Relaxed, |n| n.checked_sub(1))
            .is_ok();
        let status = if failing {
            "503 Service Unavailable"
        } else if path.starts_with("/gone") {
            "410 Gone"
        } else {
            "200 OK"
        };
        if !failing {
            let secret = state
                .secrets
                .lock()
                .unwrap()
                .iter()
                .find(|(prefix, _)| path.starts_with(prefix.as_str()))
                .map(|(_, s)| s.clone());
            let signed = headers.get("winsignal-signature").is_some_and(|sig| {
                let (t, v1) = sig.split_once(",v1=").unwrap();
                let t = t.strip_prefix("t=").unwrap();
                let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(
                    secret.unwrap_or_default().as_bytes(),
                )
                .unwrap();
                mac.update(format!("{t}.").as_bytes());
                mac.update(&body);
                let expected: String = mac
                    .finalize()
                    .into_bytes()
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect();
                let age = chrono_now_secs() - t.parse::<i64>().unwrap();
                expected == v1 && (0..300).contains(&age)
            });
            state.received.lock().unwrap().push(Received {
                method,
                path,
                delivery: headers
                    .get("winsignal-delivery")
                    .cloned()
                    .unwrap_or_default(),
                authorization: headers.get("authorization").cloned(),
                signed,
                body: serde_json::from_slice(&body).unwrap_or(Value::Null),
            });
        }
        let answer = format!("HTTP/1.1 {status}\r\nContent-Length: 2\r\n\r\nok");
        if conn.write_all(answer.as_bytes()).is_err() {
            return;
        }
    }
}

fn chrono_now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// The numbers of the score changes recorded after `after`, with the changes.
fn history_after(data: &Path, after: u64) -> Vec<(u64, Value)> {
    use winsignal_store::StoreRead;
    let store = winsignal_store::EmbeddedStore::open(data).unwrap();
    store
        .journal(
            "score-history",
            &winsignal_store::JournalQuery {
                key: None,
                after,
                limit: None,
            },
        )
        .unwrap()
        .into_iter()
        .map(|e| (e.seq, serde_json::from_slice(&e.body).unwrap()))
        .collect()
}

/// Waits until `done` holds of what the receiver has, or panics with `what` after 60 s.
fn wait_for(receiver: &Receiver, what: &str, done: impl Fn(&[Received]) -> bool) {
    let started = Instant::now();
    while !done(&receiver.received()) {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{what}: not delivered in 60 s; received {:?}",
            receiver
                .received()
                .iter()
                .map(|r| &r.delivery)
                .collect::<Vec<_>>()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Webhooks added while the server runs: every score change recorded after is delivered at least once,
/// signed, in each configured shape, through a receiver that answers 503 and then is down for a while;
/// a message refused for good (410) is counted, not retried; no secret reaches the log.
#[test]
fn webhooks_deliver_every_change_signed_at_least_once_through_outages() {
    use std::sync::atomic::Ordering::Relaxed;
    let (ws, token, scored) = small_workspace();
    let (data, token) = (ws.path().join("ws"), token.as_str());
    let server = Server::start(&data, &[]);
    let recorded_before = history_after(&data, 0).last().map_or(0, |(seq, _)| *seq);
    let receiver = Receiver::start();
    let r = &receiver.addr;
    let add = |args: &[&str]| winsignal(&data, &[&["webhooks", "add"][..], args].concat());
    let url = |path: &str| format!("http://{r}{path}");
    let all = add(&["all", "--url", &url("/all")]);
    let slack = add(&[
        "chat",
        "--url",
        &url("/slack/T0/B0/xyzSECRETPATH"),
        "--format",
        "slack",
        "--on",
        "change",
    ]);
    let crm = add(&[
        "crm",
        "--url",
        &url("/sf/{id}"),
        "--format",
        "salesforce",
        "--header",
        "Authorization: Bearer sf-token-123",
        "--field",
        "score=Win_Score__c",
    ]);
    let gone = add(&["gone", "--url", &url("/gone"), "--format", "dynamics"]);
    for (prefix, secret) in [
        ("/all", &all),
        ("/slack", &slack),
        ("/sf/", &crm),
        ("/gone", &gone),
    ] {
        assert!(secret.trim().starts_with("whsec_"), "{secret}");
        receiver.secret(prefix, secret.trim());
    }
    // Listed without secrets, header values or the URLs' paths.
    let listed = winsignal(&data, &["webhooks", "list", "--json"]);
    for hidden in ["whsec_", "sf-token-123", "xyzSECRETPATH"] {
        assert!(!listed.contains(hidden), "{hidden} listed: {listed}");
    }
    let listed: Value = serde_json::from_str(&listed).unwrap();
    assert_eq!(listed["webhooks"].as_array().unwrap().len(), 4);
    let failed = winsignal_fails(&data, &["webhooks", "add", "x", "--url", "ftp://h/x"]);
    assert!(failed.contains("expected http:// or https://"), "{failed}");
    let failed = winsignal_fails(
        &data,
        &[
            "webhooks",
            "add",
            "y",
            "--url",
            &url("/sf"),
            "--format",
            "salesforce",
        ],
    );
    assert!(failed.contains("{id}"), "{failed}");

    // Events on several deals, in two batches: the first while the receiver answers 503, the second
    // while it is down.
    // CRM upserts in two batches, each opening new deals (scored at once) and closing one: the first
    // while the receiver answers 503, the second while it is down.
    let day = &scored["as_of"].as_str().unwrap()[..10];
    let deals = scored["deals"].as_array().unwrap();
    let post = |closing: &Value, tag: &str| {
        let mut items: Vec<Value> = (0..3)
            .map(|i| {
                json!({"kind": "opportunities", "record": {
                "opportunity_id": format!("HOOK-{tag}-{i}"), "account_id": closing["account_id"],
                "rep_id": closing["rep_id"], "amount": 20000 + 1000 * i, "outcome": "open",
                "created_at": format!("{day}T00:00:00Z"), "stage": "Prospecting"}})
            })
            .collect();
        items.push(json!({"kind": "opportunities", "record": {
            "opportunity_id": closing["opportunity_id"], "account_id": closing["account_id"],
            "rep_id": closing["rep_id"], "amount": 1000, "created_at": "2020-01-01T00:00:00Z",
            "closed_at": format!("{day}T00:00:00Z"), "outcome": "lost", "stage": "Closed Lost"}}));
        let (status, answer) = server.post("/v1/events", Some(token), &json!({ "items": items }));
        assert_eq!(status, 200, "{answer}");
        assert_eq!(
            answer["score_changes"].as_array().unwrap().len(),
            4,
            "{answer}"
        );
    };
    receiver.state.fail_next.store(6, Relaxed);
    post(&deals[0], "a");
    std::thread::sleep(Duration::from_millis(300));
    receiver.state.down.store(true, Relaxed);
    post(&deals[1], "b");
    std::thread::sleep(Duration::from_millis(1500));
    receiver.state.down.store(false, Relaxed);

    let changes = history_after(&data, recorded_before);
    assert!(
        changes.len() >= 8,
        "too few score changes to test with: {}",
        changes.len()
    );
    let keys = |hook: &str, pick: &dyn Fn(&Value) -> bool| -> std::collections::BTreeSet<String> {
        changes
            .iter()
            .filter(|(_, c)| pick(c))
            .map(|(seq, _)| format!("{hook}:{seq}"))
            .collect()
    };
    let want_all = keys("all", &|_| true);
    let want_crm = keys("crm", &|c| !c["after"].is_null());
    let delivered = |got: &[Received], want: &std::collections::BTreeSet<String>| {
        want.iter().all(|k| got.iter().any(|r| &r.delivery == k))
    };
    wait_for(&receiver, "every change to every webhook", |got| {
        delivered(got, &want_all)
            && delivered(got, &keys("chat", &|_| true))
            && delivered(got, &want_crm)
    });
    let got = receiver.received();
    assert!(
        got.iter().all(|r| r.signed),
        "a request was not signed right: {got:?}"
    );
    // The shapes: the change itself; Block Kit; an sObject PATCH with the configured field name.
    let one = got.iter().find(|r| r.delivery.starts_with("all:")).unwrap();
    assert_eq!(
        (one.method.as_str(), one.body["type"].as_str()),
        ("POST", Some("score_change"))
    );
    assert!(one.body["data"]["opportunity_id"].is_string());
    let chat = got.iter().find(|r| r.path.starts_with("/slack")).unwrap();
    assert!(
        chat.body["blocks"]
            .as_array()
            .is_some_and(|b| !b.is_empty()),
        "{:?}",
        chat.body
    );
    let sf = got.iter().find(|r| r.path.starts_with("/sf/")).unwrap();
    assert_eq!(sf.method, "PATCH");
    assert!(sf.body["Win_Score__c"].is_number(), "{:?}", sf.body);
    assert_eq!(sf.authorization.as_deref(), Some("Bearer sf-token-123"));
    let id = sf.path.strip_prefix("/sf/").unwrap();
    assert!(changes.iter().any(|(_, c)| c["opportunity_id"] == id));
    assert!(got
        .iter()
        .filter(|r| r.path.starts_with("/all"))
        .all(|r| r.authorization.is_none()));
    // Refused for good (410): each message once, counted, the backlog drained.
    wait_for(&receiver, "every dynamics message tried", |got| {
        got.iter().filter(|r| r.path == "/gone").count() >= want_crm.len()
    });
    let started = Instant::now();
    loop {
        let listed: Value =
            serde_json::from_str(&winsignal(&data, &["webhooks", "list", "--json"])).unwrap();
        let hooks = listed["webhooks"].as_array().unwrap();
        let of = |name: &str| hooks.iter().find(|h| h["name"] == name).unwrap().clone();
        if of("gone")["backlog"] == 0 && of("all")["backlog"] == 0 {
            assert_eq!(of("gone")["refused"], json!(want_crm.len()));
            assert_eq!(of("gone")["delivered"], 0);
            assert!(of("all")["delivered"].as_u64().unwrap() >= want_all.len() as u64);
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "backlog not drained: {listed}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        got.iter().filter(|r| r.path == "/gone").count(),
        want_crm.len()
    );
    let text = metrics_text(&server, token);
    assert!(
        text.contains("winsignal_outbox_backlog{webhook=\"all\"} 0"),
        "{text}"
    );
    let retries: u64 = metric(&text, "winsignal_webhook_retries_total");
    assert!(
        retries >= 6,
        "the outage's failed attempts are counted: {retries}"
    );
    assert_eq!(
        metric(&text, "winsignal_webhook_refused_total"),
        want_crm.len() as u64
    );
    let log = server.log();
    for secret in ["whsec_", "sf-token-123", "xyzSECRETPATH"] {
        assert!(!log.contains(secret), "{secret} in the log");
    }
    assert!(log.contains("webhook delivery failed; retrying"), "{log}");
    assert!(server.stop().success());
}

/// `GET /metrics` as text.
fn metrics_text(server: &Server, token: &str) -> String {
    let mut s = TcpStream::connect(&server.addr).unwrap();
    write!(
        s,
        "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer {token}\r\n\r\n"
    )
    .unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap();
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        unchunk(body)
    } else {
        body.to_string()
    }
}

/// A metric's value (without labels) in exposition text.
fn metric(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .unwrap_or_else(|| panic!("no {name}"))
        .trim()
        .parse()
        .unwrap()
}

/// The live server against its own `/openapi.json`, checked by schemathesis (PyPI; `.ci/run` installs
/// it): generated requests to every operation but the event stream (which does not end), valid and
/// invalid, with a revops token; every answer's status, content type and body must be the documented
/// ones, no 5xx, invalid input refused with a 4xx, undocumented methods with 405. Also: every path the
/// document lists is routed (none reaches the "no such endpoint" fallback).
#[test]
fn the_api_conforms_to_its_openapi_document() {
    if std::env::var_os("WINSIGNAL_SKIP_CONFORMANCE").is_some() {
        eprintln!("skipped: WINSIGNAL_SKIP_CONFORMANCE is set");
        return;
    }
    let found = Command::new("schemathesis").arg("--version").output();
    assert!(
        found.is_ok_and(|o| o.status.success()),
        "schemathesis is needed (pip install schemathesis); set WINSIGNAL_SKIP_CONFORMANCE=1 to skip"
    );
    let (ws, token, _) = small_workspace();
    let (data, token) = (ws.path().join("ws"), token.as_str());
    let server = Server::start(&data, &[]);
    let (status, doc) = server.get("/openapi.json", None);
    assert_eq!(status, 200);
    assert_eq!(doc["openapi"], "3.1.0");
    let codes = doc["components"]["schemas"]["Error"]["properties"]["error"]["properties"]["code"]
        ["enum"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(codes, 13, "every error code of the table");
    // A path is routed when a method it does not take gets 405 (an unrouted one gets 404).
    for path in doc["paths"].as_object().unwrap().keys() {
        let concrete = path.replace("{id}", "x").replace("{call}", "track");
        let (status, body) = server.request("DELETE", &concrete, Some(token), None, b"");
        assert_eq!(
            (status, code(&body)),
            (405, "method_not_allowed"),
            "{path} is listed and not routed"
        );
    }
    let url = format!("http://{}/openapi.json", server.addr);
    let report = ws.path().join("schemathesis");
    let out = Command::new("schemathesis")
        .args([
            "run",
            &url,
            "--checks",
            "all",
            "--exclude-path",
            "/v1/stream",
        ])
        .args(["--header", &format!("Authorization: Bearer {token}")])
        .args(["--max-examples", "25", "--seed", "7", "--workers", "1"])
        .args([
            "--generation-database",
            "none",
            "--no-color",
            "--request-timeout",
            "30",
        ])
        .arg("--report-dir")
        .arg(&report)
        // Its cache of failures found goes with the workspace, not into the source tree.
        .current_dir(ws.path())
        .env("SCHEMATHESIS_HOOKS", "")
        .output()
        .unwrap();
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "schemathesis found failures:\n{text}");
    // It did test the operations (not an empty run): "952 generated, 952 passed, …".
    let generated: u64 = text
        .split_once(" generated,")
        .and_then(|(before, _)| before.rsplit(' ').next())
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no count of test cases: {text}"));
    assert!(generated >= 200, "only {generated} test cases: {text}");
    assert!(server.stop().success());
}

/// Headless Chromium driven over WebDriver (Debian's `chromium-driver`), as a person uses the dashboard.
struct Browser {
    driver: Child,
    addr: String,
    session: String,
}

/// JSON over HTTP/1.1 to `addr` (the WebDriver endpoint); the answer's `value`.
fn webdriver(addr: &str, method: &str, path: &str, body: Option<&Value>) -> Value {
    let mut s = TcpStream::connect(addr).unwrap();
    let body = body.map(Value::to_string).unwrap_or_default();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    // chromedriver may keep the connection open: read the head, then the body by its length.
    let mut reader = BufReader::new(s);
    let mut head = String::new();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        if line == "\r\n" || line.is_empty() {
            break;
        }
        head.push_str(&line);
    }
    let length: usize = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().unwrap())
        })
        .unwrap_or_else(|| panic!("no Content-Length from WebDriver: {head}"));
    let mut body = vec![0u8; length];
    reader.read_exact(&mut body).unwrap();
    let body = String::from_utf8(body).unwrap();
    let v: Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"));
    assert!(
        head.starts_with("HTTP/1.1 200"),
        "WebDriver {method} {path}: {head} {v}"
    );
    v["value"].clone()
}

impl Browser {
    /// `None` only when skipping is asked for (`WINSIGNAL_SKIP_BROWSER`).
    fn start() -> Option<Browser> {
        let found = Command::new("chromedriver").arg("--version").output();
        if !found.is_ok_and(|o| o.status.success()) {
            if std::env::var_os("WINSIGNAL_SKIP_BROWSER").is_some() {
                eprintln!("skipped: WINSIGNAL_SKIP_BROWSER is set and chromedriver is missing");
                return None;
            }
            panic!("chromedriver is needed (Debian: apt-get install chromium chromium-driver); set WINSIGNAL_SKIP_BROWSER=1 to skip");
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let addr = format!("127.0.0.1:{port}");
        let started = Instant::now();
        while TcpStream::connect(&addr).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "chromedriver did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        let mut browser = Browser {
            driver,
            addr,
            session: String::new(),
        };
        let session = webdriver(
            &browser.addr,
            "POST",
            "/session",
            Some(
                &json!({"capabilities": {"alwaysMatch": {"goog:chromeOptions": {
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"]}}}}),
            ),
        );
        browser.session = session["sessionId"].as_str().unwrap().to_string();
        Some(browser)
    }

    fn call(&self, method: &str, path: &str, body: Option<&Value>) -> Value {
        let path = format!("/session/{}{path}", self.session);
        webdriver(&self.addr, method, &path, body)
    }

    fn go(&self, url: &str) {
        self.call("POST", "/url", Some(&json!({ "url": url })));
    }

    fn element(&self, css: &str) -> String {
        let found = self.call(
            "POST",
            "/element",
            Some(&json!({"using": "css selector", "value": css})),
        );
        found["element-6066-11e4-a52e-4f735466cecf"]
            .as_str()
            .or_else(|| found["ELEMENT"].as_str())
            .unwrap_or_else(|| panic!("no element {css}: {found}"))
            .to_string()
    }

    fn type_into(&self, css: &str, text: &str) {
        let id = self.element(css);
        self.call(
            "POST",
            &format!("/element/{id}/value"),
            Some(&json!({ "text": text })),
        );
    }

    fn click(&self, css: &str) {
        let id = self.element(css);
        self.call("POST", &format!("/element/{id}/click"), Some(&json!({})));
    }

    /// The text of the first element matching `css` (`None` when there is none).
    fn text(&self, css: &str) -> Option<String> {
        let v = self.call(
            "POST",
            "/execute/sync",
            Some(&json!({"script": "const e = document.querySelector(arguments[0]); return e ? e.textContent : null;", "args": [css]})),
        );
        v.as_str().map(str::to_string)
    }

    /// Waits up to 30 s for the text of `css` to satisfy `ok`; returns it.
    /// Opens the dashboard at `base`, signs in with `token`, and waits until the header names `who`.
    fn sign_in(&self, base: &str, token: &str, who: &str) {
        self.go(&format!("{base}/"));
        self.type_into("#token", token);
        self.click("#signin-button");
        self.wait_for("#who", "signed in", |t| t.contains(who));
    }

    fn wait_for(&self, css: &str, what: &str, ok: impl Fn(&str) -> bool) -> String {
        let started = Instant::now();
        loop {
            if let Some(t) = self.text(css) {
                if ok(&t) {
                    return t;
                }
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "{what}: {css} is {:?}",
                self.text(css)
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let path = format!("/session/{}", self.session);
            let _ = std::panic::catch_unwind(|| webdriver(&self.addr, "DELETE", &path, None));
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// The dashboard end to end in headless Chromium: a wrong token is refused, the right one signs in, the
/// pipeline lists the open deals, a deal's page shows its score and factors; an event posted for that
/// deal changes the score on the open page, live, with the factor that moved it; a rep sees only their
/// deals.
#[test]
fn the_dashboard_shows_a_deals_score_change_live() {
    let Some(browser) = Browser::start() else {
        return;
    };
    let (ws, token, scored) = small_workspace();
    let (data, token) = (ws.path().join("ws"), token.as_str());
    let deal = scored["deals"][0].clone();
    let id = deal["opportunity_id"].as_str().unwrap();
    let server = Server::start(&data, &[]);
    let base = format!("http://{}", server.addr);
    // Served by the binary, with a policy that allows nothing from elsewhere.
    for path in ["/", "/assets/app.js", "/assets/app.css"] {
        let mut s = TcpStream::connect(&server.addr).unwrap();
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut raw = String::new();
        s.read_to_string(&mut raw).unwrap();
        let (head, body) = raw.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 200"), "{path}: {head}");
        assert!(
            head.to_ascii_lowercase()
                .contains("content-security-policy: default-src 'none'"),
            "{head}"
        );
        for external in [
            "src=\"http",
            "href=\"http",
            "fetch(\"http",
            "fetch(`http",
            "url(http",
            "@import",
        ] {
            assert!(
                !body.contains(external),
                "{path} loads something from elsewhere: {external}"
            );
        }
    }

    browser.go(&format!("{base}/"));
    browser.type_into("#token", "wst_00000000_wrong");
    browser.click("#signin-button");
    browser.wait_for("#signin-error", "a wrong token is refused", |t| {
        t.contains("not known")
    });
    browser.sign_in(&base, token, "ann · revops");
    browser.wait_for("#pipeline tbody", "the pipeline lists the deals", |t| {
        t.contains(id)
    });
    let shown = browser
        .text(&format!("tr[data-deal=\"{id}\"] .p-win"))
        .unwrap();
    assert_eq!(
        shown,
        format!("{}%", (deal["p_win"].as_f64().unwrap() * 100.0).round())
    );

    browser.click(&format!("tr[data-deal=\"{id}\"] a"));
    let before = browser.wait_for("#p-win", "the deal's page", |t| t.ends_with('%'));
    assert_eq!(before, shown);
    browser.wait_for("#factors", "the factors are shown", |t| t.contains("pts"));
    browser.wait_for("#history", "the score history is drawn", |_| true);

    // An event for the deal, posted as an integration would: the open page changes by itself.
    // The CRM moves the deal to another stage, an hour before the end of the data (a stage history row,
    // as an outbound message or OpportunityHistory sends it).
    let stage = if deal["stage"] == "Prospecting" {
        "Negotiation"
    } else {
        "Prospecting"
    };
    let moved = json!({"kind": "stage_history", "record": {
        "opportunity_id": id, "stage": stage,
        "entered_at": chrono_minus_hour(scored["as_of"].as_str().unwrap())}});
    let (status, answer) = server.post("/v1/events", Some(token), &json!({ "items": [moved] }));
    assert_eq!(status, 200, "{answer}");
    let change = answer["score_changes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["opportunity_id"] == id)
        .unwrap_or_else(|| panic!("the event did not change the deal's score: {answer}"))
        .clone();
    let after = format!("{}%", (change["after"].as_f64().unwrap() * 100.0).round());
    let now = browser.wait_for("#last-change", "the change arrives live", |t| {
        t.contains("Just changed")
    });
    assert!(now.contains(&after), "{now}");
    let term = change["moved_by"][0]["term"].as_str().unwrap();
    assert!(now.contains(term), "the reason is shown: {now}");
    browser.wait_for("#p-win", "the score on the page", |t| t == after);

    // A rep signs in and sees their own deals only.
    let rep = deal["rep_id"].as_str().unwrap();
    let rita = winsignal(
        &data,
        &["users", "add", "rita", "--role", "rep", "--rep-id", rep],
    );
    browser.click("#signout");
    browser.type_into("#token", rita.trim());
    browser.click("#signin-button");
    browser.wait_for("#who", "signed in as a rep", |t| t.contains("rita · rep"));
    browser.go(&format!("{base}/#/deals"));
    browser.wait_for("#pipeline tbody", "the rep's pipeline", |t| !t.is_empty());
    let reps = browser.call(
        "POST",
        "/execute/sync",
        Some(&json!({"script": "return [...document.querySelectorAll('#pipeline tbody tr td:nth-child(2)')].map(td => td.textContent);", "args": []})),
    );
    let reps: Vec<&str> = reps
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    let theirs = scored["deals"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["rep_id"] == rep && d["opportunity_id"] != id)
        .count();
    assert!(
        !reps.is_empty() && reps.iter().all(|r| *r == rep),
        "{reps:?}"
    );
    assert!(reps.len() >= theirs, "{reps:?}");
    drop(browser);
    assert!(server.stop().success());
}

/// Many clients posting at once: requests that wait for a commit are committed together, and still each
/// is answered for exactly its own items (index, kind, fate, reasons); every event is in the store once.
#[test]
fn concurrent_posts_are_each_answered_for_their_own_items() {
    use winsignal_store::StoreRead;
    let (ws, token, scored) = small_workspace();
    let data = ws.path().join("ws");
    let server = Server::start(&data, &[]);
    let deals = scored["deals"].as_array().unwrap().clone();
    let day = scored["as_of"].as_str().unwrap()[..10].to_string();
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let (addr, token, deals, day) = (
                server.addr.clone(),
                token.clone(),
                deals.clone(),
                day.clone(),
            );
            std::thread::spawn(move || {
                let client = Server::client(addr);
                for r in 0..6 {
                    // Thread t's request r: t + 1 activities, the last of them invalid on odd rounds.
                    let items: Vec<Value> = (0..=t)
                        .map(|i| {
                            let d = &deals[(t + i) % deals.len()];
                            let bad = r % 2 == 1 && i == t;
                            json!({"kind": "activities", "record": {
                                "activity_id": format!("CC-{t}-{r}-{i}"), "type": "call",
                                "status": "completed", "opportunity_id": d["opportunity_id"],
                                "account_id": d["account_id"], "occurred_at": format!("{day}T00:00:00Z"),
                                "duration_s": if bad { -1 } else { 60 }}})
                        })
                        .collect();
                    let (status, answer) = client
                        .try_post("/v1/events", &token, &json!({ "items": items }))
                        .unwrap();
                    assert_eq!(status, 200, "{answer}");
                    let got = answer["items"].as_array().unwrap();
                    assert_eq!(got.len(), t + 1, "{answer}");
                    for (i, item) in got.iter().enumerate() {
                        let bad = r % 2 == 1 && i == t;
                        assert_eq!(item["index"], i, "{answer}");
                        assert_eq!(
                            item["status"],
                            if bad { "quarantined" } else { "accepted" },
                            "{answer}"
                        );
                        assert_eq!(bad, item["reasons"].to_string().contains("duration_s"));
                    }
                    let quarantined = if r % 2 == 1 { 1 } else { 0 };
                    assert_eq!(answer["quarantined"], quarantined, "{answer}");
                    assert_eq!(answer["accepted"], t + 1 - quarantined, "{answer}");
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let store = winsignal_store::EmbeddedStore::open(&data).unwrap();
    let held: Vec<String> = store
        .events(&[winsignal_core::Kind::Activities])
        .unwrap()
        .map(|e| e.unwrap().key)
        .filter(|k| k.starts_with("CC-"))
        .collect();
    // 8 threads × 6 rounds × (t + 1) items, less the 3 invalid ones of each thread.
    let expected: usize = (0..8).map(|t| 6 * (t + 1) - 3).sum();
    let unique: std::collections::BTreeSet<&String> = held.iter().collect();
    assert_eq!((held.len(), unique.len()), (expected, expected));
    let (_, live) = server.get("/v1/deals", Some(&token));
    let batch: Value = serde_json::from_str(&winsignal(&data, &["score", "--json"])).unwrap();
    assert_eq!(p_wins(&live["deals"]), p_wins(&batch["deals"]));
    assert!(server.stop().success());
}

/// The clock's rescoring: when time moves on (here, an event dated a month after the data's end), the
/// deals nothing touched are rescored too, so every open deal's live score equals `winsignal score` on
/// the same data; a `stalled:N` webhook is sent each deal that crossed N days idle, once. With
/// `--clock wall` the scores are as of the wall clock, and equal `winsignal score --as-of` that time.
#[test]
fn the_clock_rescores_untouched_deals_and_reports_those_that_stall() {
    let (ws, token, scored) = small_workspace();
    let (data, token) = (ws.path().join("ws"), token.as_str());
    let deals = scored["deals"].as_array().unwrap();
    let touched = &deals[0];
    let idle_before: Vec<(String, f64)> = deals[1..]
        .iter()
        .map(|d| {
            (
                d["opportunity_id"].as_str().unwrap().to_string(),
                d["idle_days"].as_f64().unwrap(),
            )
        })
        .collect();
    let mut idle: Vec<f64> = idle_before.iter().map(|(_, d)| *d).collect();
    idle.sort_by(f64::total_cmp);
    // A line some deals cross when a month passes, and others are already past or stay short of.
    let days = (idle[idle.len() / 2] + 10.0).round();
    let server = Server::start(&data, &["--rescore-every", "300ms"]);
    let receiver = Receiver::start();
    let secret = winsignal(
        &data,
        &[
            "webhooks",
            "add",
            "stall",
            "--url",
            &format!("http://{}/stall", receiver.addr),
            "--on",
            &format!("stalled:{days}"),
        ],
    );
    receiver.secret("/stall", secret.trim());
    let month_later = {
        let end = scored["as_of"].as_str().unwrap();
        let (_, later) = server.post(
            "/v1/events",
            Some(token),
            &json!({"items": [{"kind": "activities", "record": {
                "activity_id": "clock-1", "type": "email", "status": "completed",
                "opportunity_id": touched["opportunity_id"], "account_id": touched["account_id"],
                "occurred_at": format!("{}T00:00:00Z", shift_days(&end[..10], 30))}}]}),
        );
        assert_eq!(later["accepted"], 1, "{later}");
        later
    };
    // The clock's pass brings every open deal to the new end of the data: live equals batch.
    let started = Instant::now();
    let batch: Value = serde_json::from_str(&winsignal(&data, &["score", "--json"])).unwrap();
    loop {
        let (_, live) = server.get("/v1/deals", Some(token));
        if p_wins(&live["deals"]) == p_wins(&batch["deals"]) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "live scores never equalled the batch ones after the clock's pass; answer {month_later}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let idle_after: std::collections::BTreeMap<String, f64> = batch["deals"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["opportunity_id"].as_str().unwrap().to_string(),
                d["idle_days"].as_f64().unwrap(),
            )
        })
        .collect();
    let mut crossing: Vec<&String> = idle_before
        .iter()
        .filter(|(id, before)| *before < days && idle_after.get(id).is_some_and(|a| *a >= days))
        .map(|(id, _)| id)
        .collect();
    crossing.sort_unstable();
    assert!(
        !crossing.is_empty() && crossing.len() < idle_before.len(),
        "the test needs deals that cross {days} days idle and deals that do not"
    );
    wait_for(&receiver, "the stalled deals", |r| {
        r.len() >= crossing.len()
    });
    // Several more passes: each deal is sent once.
    std::thread::sleep(Duration::from_millis(1500));
    let received = receiver.received();
    let mut sent: Vec<&str> = received
        .iter()
        .map(|r| r.body["data"]["opportunity_id"].as_str().unwrap())
        .collect();
    sent.sort_unstable();
    assert_eq!(sent, crossing, "sent to the stalled webhook");
    for r in &received {
        assert!(r.signed, "{r:?}");
        let change = &r.body["data"];
        assert!(change["idle_days"].as_f64().unwrap() >= days, "{change}");
        assert!(
            change["previous_idle_days"].as_f64().unwrap() < days,
            "{change}"
        );
    }
    server.stop();

    // The wall clock: scores as of now, equal to `score --as-of` that time.
    let before = chrono_now_secs() * 1000;
    let server = Server::start(&data, &["--clock", "wall", "--rescore-every", "300ms"]);
    let id = touched["opportunity_id"].as_str().unwrap();
    let (_, deal) = server.get(&format!("/v1/deals/{id}"), Some(token));
    let as_of = deal["deal"]["as_of"].as_i64().unwrap();
    assert!(as_of >= before, "as of {as_of}, before {before}: {deal}");
    let at = deal_time(as_of);
    let batch: Value =
        serde_json::from_str(&winsignal(&data, &["score", "--json", "--as-of", &at])).unwrap();
    let batch_deal = batch["deals"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["opportunity_id"] == id)
        .unwrap();
    assert_eq!(deal["deal"]["p_win"], batch_deal["p_win"], "{deal}");
    assert_eq!(deal["deal"]["idle_days"], batch_deal["idle_days"], "{deal}");
    server.stop();
}

/// Epoch milliseconds as an RFC 3339 time.
fn deal_time(ms: i64) -> String {
    let days = ms.div_euclid(86_400_000);
    let rest = ms.rem_euclid(86_400_000);
    format!(
        "{}T{:02}:{:02}:{:02}.{:03}Z",
        shift_days("1970-01-01", days),
        rest / 3_600_000,
        rest / 60_000 % 60,
        rest / 1000 % 60,
        rest % 1000
    )
}

/// The model registry over HTTP and in the dashboard: 401 without a token, 403 for a rep, 409 for the
/// trainer's own approval (the two-person rule, also in the dashboard), approval and activation by
/// another person; a rollback while clients read scores switches the served model with no failed
/// request; an activation by the CLI, in another process, is followed by the running server.
#[test]
fn the_registry_is_governed_over_the_api_and_the_dashboard_and_switches_the_live_model() {
    let (ws, ann, scored) = small_workspace();
    let data = ws.path().join("ws");
    let deal = scored["deals"][0]["opportunity_id"]
        .as_str()
        .unwrap()
        .to_string();
    let first = scored["model_id"].as_str().unwrap().to_string();
    // ann (revops) retrains on this machine: a candidate.
    let trained: Value = serde_json::from_str(&winsignal_as(
        &data,
        "ann",
        &["train", "--seed", "1", "--json"],
    ))
    .unwrap();
    let second = trained["model_id"].as_str().unwrap().to_string();
    assert_eq!(trained["registry"]["stage"], "candidate");
    let val = winsignal(&data, &["users", "add", "val", "--role", "admin"]);
    let rep = scored["deals"][0]["rep_id"].as_str().unwrap();
    let rita = winsignal(
        &data,
        &["users", "add", "rita", "--role", "rep", "--rep-id", rep],
    );
    let (ann, val, rita) = (ann.as_str(), val.trim(), rita.trim());
    let gate: Value =
        serde_json::from_str(&winsignal(&data, &["models", "gate", &second, "--json"])).unwrap();
    let server = Server::start(&data, &[]);

    let (status, list) = server.get("/v1/models", Some(rita));
    assert_eq!(status, 200, "any role reads the models");
    assert_eq!(list["active"], first.as_str());
    let approve = format!("/v1/models/{second}/approve");
    let reason = json!({"reason": "holdout checked"});
    let (status, body) = server.post(&approve, None, &reason);
    assert_eq!((status, code(&body)), (401, "unauthorized"));
    let (status, body) = server.post(&approve, Some(rita), &reason);
    assert_eq!((status, code(&body)), (403, "forbidden"));
    let (status, body) = server.post(&approve, Some(ann), &reason);
    assert_eq!((status, code(&body)), (409, "conflict"), "{body}");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("two-person rule"));
    let (status, body) = server.post(&approve, Some(val), &json!({"reason": "  "}));
    assert_eq!((status, code(&body)), (422, "bad_shape"), "{body}");
    let (status, body) = server.post("/v1/models/nosuchmodel/approve", Some(val), &reason);
    assert_eq!((status, code(&body)), (404, "not_found"), "{body}");

    // In the dashboard: ann is refused with the rule's words; val approves and activates.
    if let Some(browser) = Browser::start() {
        let base = format!("http://{}", server.addr);
        let row = format!("tr[data-model=\"{second}\"]");
        for (token, who) in [(ann, "ann · revops"), (val, "val · admin")] {
            browser.go(&format!("{base}/"));
            if token == val {
                browser.wait_for("#who", "still signed in", |t| t.contains("ann"));
                browser.click("#signout");
            }
            browser.type_into("#token", token);
            browser.click("#signin-button");
            browser.wait_for("#who", "signed in", |t| t.contains(who));
            browser.go(&format!("{base}/#/models"));
            browser.wait_for("#models tbody", "the models are listed", |t| {
                t.contains(&second[..12])
            });
            browser.type_into("#model-reason", "holdout checked");
            browser.click(&format!("{row} button.approve"));
            if token == ann {
                browser.wait_for("#models-message", "the trainer is refused", |t| {
                    t.contains("two-person rule")
                });
            } else {
                browser.wait_for(&format!("{row} td.stage"), "approved", |t| t == "approved");
            }
        }
        browser.type_into("#model-reason", "retrained on the latest quarter");
        if gate["passed"] != true {
            browser.type_into("#model-override", "seeds differ only");
        }
        browser.click(&format!("{row} button.activate"));
        browser.wait_for("#models-message", "activated and served", |t| {
            t.contains(&format!("Serving {second}"))
        });
    } else {
        let mut body = json!({"reason": "holdout checked"});
        let (status, answer) = server.post(&approve, Some(val), &body);
        assert_eq!(status, 200, "{answer}");
        body["reason"] = "retrained".into();
        if gate["passed"] != true {
            body["override_reason"] = "seeds differ only".into();
        }
        let (status, answer) =
            server.post(&format!("/v1/models/{second}/activate"), Some(val), &body);
        assert_eq!(status, 200, "{answer}");
    }
    let (_, got) = server.get(&format!("/v1/deals/{deal}"), Some(ann));
    assert_eq!(
        got["model_id"],
        second.as_str(),
        "activation switched the scores"
    );
    let (_, who) = server.get("/v1/models/active", Some(rita));
    assert_eq!(who["model_id"], second.as_str());
    assert_eq!(who["approval"]["actor"], "val");
    assert_eq!(who["activation"]["actor"], "val");

    // Rollback while four clients read the deal's score as fast as they can: every read answered 200,
    // and the served model changes once, to the first.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let readers: Vec<_> = (0..4)
        .map(|_| {
            let (addr, stop, path, token) = (
                server.addr.clone(),
                stop.clone(),
                format!("/v1/deals/{deal}"),
                ann.to_string(),
            );
            std::thread::spawn(move || {
                let mut seen: Vec<(u16, String)> = Vec::new();
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let mut s = TcpStream::connect(&addr).unwrap();
                    write!(
                        s,
                        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer {token}\r\n\r\n"
                    )
                    .unwrap();
                    let mut raw = String::new();
                    s.read_to_string(&mut raw).unwrap();
                    let (head, body) = raw.split_once("\r\n\r\n").unwrap();
                    let status: u16 = head.split(' ').nth(1).unwrap().parse().unwrap();
                    let body = if head.to_ascii_lowercase().contains("chunked") {
                        unchunk(body)
                    } else {
                        body.to_string()
                    };
                    let v: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
                    seen.push((status, v["model_id"].as_str().unwrap_or("").to_string()));
                }
                seen
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let (status, answer) = server.post(
        "/v1/models/rollback",
        Some(val),
        &json!({"reason": "win rates fell after the switch"}),
    );
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["serving"], first.as_str());
    assert_eq!(answer["transition"]["action"], "rolled_back");
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for reader in readers {
        let seen = reader.join().unwrap();
        assert!(seen.len() > 2, "the reader read: {seen:?}");
        assert!(
            seen.iter().all(|(s, _)| *s == 200),
            "a read failed: {seen:?}"
        );
        // The model served moves from the second to the first, once.
        let switches = seen.windows(2).filter(|w| w[0].1 != w[1].1).count();
        assert!(switches <= 1, "{seen:?}");
        assert_eq!(seen.last().unwrap().1, first);
    }

    // Activated from the command line, in another process: the running server follows.
    let mut activate = vec!["models", "activate", &second, "--reason", "again"];
    if gate["passed"] != true {
        activate.extend(["--override", "seeds differ only"]);
    }
    winsignal_as(&data, "val", &activate);
    let started = Instant::now();
    loop {
        let (_, got) = server.get(&format!("/v1/deals/{deal}"), Some(ann));
        if got["model_id"] == second.as_str() {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the server did not follow the registry"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(server.log().contains("switched the served model"));
    // Activation, rollback, and the activation followed from the command line.
    let text = metrics_text(&server, val);
    assert_eq!(metric(&text, "winsignal_model_switches_total"), 3, "{text}");
    assert!(text.contains(&format!(
        "winsignal_active_model{{model_id=\"{second}\"}} 1"
    )));
    assert!(server.stop().success());
}

/// The review queue: with a rule set, a score change an event makes is queued as it is recorded; the
/// item is seen within each token's scope; a rep may not decide; a reviewer's decision is recorded once,
/// with the model and the evidence, in the audit log; the dashboard's review page decides another.
#[test]
fn score_changes_that_matter_wait_in_the_review_queue_for_a_decision() {
    let (ws, ann, scored) = small_workspace();
    let (data, ann) = (ws.path().join("ws"), ann.as_str());
    let deals = scored["deals"].as_array().unwrap();
    let deal = &deals[0];
    let id = deal["opportunity_id"].as_str().unwrap();
    let rep = deal["rep_id"].as_str().unwrap();
    let other_rep = deals
        .iter()
        .filter_map(|d| d["rep_id"].as_str())
        .find(|r| *r != rep)
        .unwrap();
    winsignal(&data, &["review", "rules", "--score-change-points", "0.1"]);
    let rita = winsignal(
        &data,
        &["users", "add", "rita", "--role", "rep", "--rep-id", rep],
    );
    let otto = winsignal(
        &data,
        &[
            "users", "add", "otto", "--role", "rep", "--rep-id", other_rep,
        ],
    );
    let (rita, otto) = (rita.trim(), otto.trim());
    let server = Server::start(&data, &[]);
    let (_, empty) = server.get("/v1/review", Some(ann));
    assert_eq!(empty["items"].as_array().unwrap().len(), 0);

    // Move two deals to another stage: their scores change, and each change is queued.
    let mut items = Vec::new();
    for d in &deals[..2] {
        let stage = if d["stage"] == "Prospecting" {
            "Negotiation"
        } else {
            "Prospecting"
        };
        items.push(json!({"kind": "stage_history", "record": {
            "opportunity_id": d["opportunity_id"], "stage": stage,
            "entered_at": chrono_minus_hour(scored["as_of"].as_str().unwrap())}}));
    }
    let (status, answer) = server.post("/v1/events", Some(ann), &json!({ "items": items }));
    assert_eq!(status, 200, "{answer}");
    let moved: Vec<&Value> = answer["score_changes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| {
            let (Some(b), Some(a)) = (c["before"].as_f64(), c["after"].as_f64()) else {
                return false;
            };
            (a - b).abs() * 100.0 > 0.1
        })
        .collect();
    assert!(!moved.is_empty(), "{answer}");
    let (_, queue) = server.get("/v1/review", Some(ann));
    let queued = queue["items"].as_array().unwrap();
    assert_eq!(queued.len(), moved.len(), "{queue}");
    let item = queued
        .iter()
        .find(|i| i["change"]["opportunity_id"] == id)
        .expect("the first deal's change is queued");
    assert_eq!(item["kind"], "score_change");
    assert!(item["decision"].is_null());
    let number = item["id"].as_u64().unwrap();
    // Scope: the deal's rep sees it, another rep does not.
    let (_, mine) = server.get("/v1/review", Some(rita));
    assert!(mine["items"]
        .as_array()
        .unwrap()
        .iter()
        .all(|i| i["change"]["rep_id"] == rep));
    let (_, theirs) = server.get("/v1/review", Some(otto));
    assert!(theirs["items"]
        .as_array()
        .unwrap()
        .iter()
        .all(|i| i["change"]["opportunity_id"] != id));
    let path = format!("/v1/review/{number}");
    let body = json!({"verdict": "reject", "reason_code": "missing_context", "comment": "the champion is back"});
    let (status, b) = server.post(&path, None, &body);
    assert_eq!((status, code(&b)), (401, "unauthorized"));
    let (status, b) = server.post(&path, Some(rita), &body);
    assert_eq!((status, code(&b)), (403, "forbidden"));
    let (status, b) = server.post(
        &path,
        Some(ann),
        &json!({"verdict": "edit", "reason_code": "other"}),
    );
    assert_eq!(
        (status, code(&b)),
        (422, "bad_shape"),
        "an edit needs the corrected P(win)"
    );
    let (status, decided) = server.post(&path, Some(ann), &body);
    assert_eq!(status, 200, "{decided}");
    assert_eq!(decided["decision"]["reviewer"], "ann");
    assert_eq!(decided["decision"]["model_id"], item["change"]["model_id"]);
    assert_eq!(decided["decision"]["p_win"], item["change"]["after"]);
    let (status, b) = server.post(&path, Some(ann), &body);
    assert_eq!((status, code(&b)), (409, "conflict"), "{b}");
    let (_, waiting) = server.get("/v1/review", Some(ann));
    assert_eq!(waiting["items"].as_array().unwrap().len(), queued.len() - 1);
    let text = metrics_text(&server, ann);
    assert_eq!(
        metric(&text, "winsignal_review_waiting") as usize,
        queued.len() - 1
    );

    // The dashboard decides the other one.
    if queued.len() > 1 {
        if let Some(browser) = Browser::start() {
            let other = queued
                .iter()
                .find(|i| i["id"].as_u64() != Some(number))
                .unwrap()["id"]
                .as_u64()
                .unwrap();
            let base = format!("http://{}", server.addr);
            browser.sign_in(&base, ann, "ann");
            browser.go(&format!("{base}/#/review"));
            let row = format!("tr[data-item=\"{other}\"]");
            browser.wait_for(&format!("{row} td.decision"), "the item waits", |t| {
                t.contains("Accept")
            });
            browser.type_into("#review-comment", "looks right");
            browser.click(&format!("{row} button.accept"));
            browser.wait_for(&format!("{row} td.decision"), "decided", |t| {
                t.starts_with("accept by ann (agree)")
            });
        }
    }

    // No correction yet: rejecting leaves the model's score alone.
    let (_, before) = server.get(&format!("/v1/deals/{id}"), Some(rita));
    assert!(before["review"].is_null(), "{before}");
    // The deal moves again; its new change is edited from the command line (another process): the
    // correction is shown beside the deal's score, to the deal's rep, within the follow interval.
    let back = if deal["stage"] == "Prospecting" {
        "Prospecting"
    } else {
        "Negotiation"
    };
    let again = json!({"items": [{"kind": "stage_history", "record": {
        "opportunity_id": id, "stage": back,
        "entered_at": scored["as_of"]}}]});
    let (status, answer) = server.post("/v1/events", Some(ann), &again);
    assert_eq!(status, 200, "{answer}");
    let (_, queue) = server.get("/v1/review", Some(ann));
    let Some(fresh) = queue["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["change"]["opportunity_id"] == id)
        .and_then(|i| i["id"].as_u64())
    else {
        panic!("the deal's new change is not queued: {answer} {queue}");
    };
    winsignal_as(
        &data,
        "val",
        &[
            "review",
            "decide",
            &fresh.to_string(),
            "--edit",
            "0.3",
            "--reason-code",
            "wrong_data",
            "--comment",
            "budget frozen <b>until Q3</b>",
        ],
    );
    let started = Instant::now();
    let shown = loop {
        let (_, got) = server.get(&format!("/v1/deals/{id}"), Some(rita));
        if !got["review"].is_null() {
            break got;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "never shown: {got}"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let review = &shown["review"];
    assert_eq!(review["corrected_p_win"], 0.3, "{review}");
    assert_eq!(review["verdict"], "edit");
    assert_eq!(review["reviewer"], "local:val");
    assert_eq!(review["item"], fresh);
    assert_eq!(
        review["p_win"], shown["deal"]["p_win"],
        "the model's P(win) it corrects"
    );
    // Another rep does not see the deal, nor its correction.
    assert_eq!(server.get(&format!("/v1/deals/{id}"), Some(otto)).0, 404);
    if let Some(browser) = Browser::start() {
        let base = format!("http://{}", server.addr);
        browser.sign_in(&base, rita, "rita");
        browser.go(&format!("{base}/#/deals/{id}"));
        browser.wait_for("#review-override", "the correction beside the score", |t| {
            t.contains("Reviewed: 30%")
                && t.contains("by local:val (wrong_data)")
                && t.contains("budget frozen <b>until Q3</b>")
        });
    }
    assert!(server.stop().success());
    let audit: Value =
        serde_json::from_str(&winsignal(&data, &["audit", "list", "--json"])).unwrap();
    let decisions = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "review.decide")
        .count();
    assert!(decisions >= 1);
    let listed = winsignal(&data, &["review", "list", "--all"]);
    assert!(
        listed.contains("Reject by ann (missing_context): the champion is back"),
        "{listed}"
    );
    // The decisions count in the model's monitoring.
    let perf: Value =
        serde_json::from_str(&winsignal(&data, &["monitor", "performance", "--json"])).unwrap();
    let human = &perf["human"];
    assert_eq!(
        human["review_items"].as_u64().unwrap() as usize,
        queued.len() + 1,
        "{human}"
    );
    assert_eq!(human["rejected"], 1, "{human}");
    assert_eq!(human["edited"], 1, "{human}");
    assert_eq!(human["model_error"], 0, "{human}");
    assert_eq!(human["edits_closed"], 0, "{human}");
    // Once the edited deal has closed, the correction is scored against its outcome beside the model's
    // P(win) it corrected.
    common::close_open_deals_the_wrong_way(&data, &ws.path().join("closings"));
    let perf: Value =
        serde_json::from_str(&winsignal(&data, &["monitor", "performance", "--json"])).unwrap();
    let human = &perf["human"];
    assert_eq!(human["edits_closed"], 1, "{human}");
    // The scores the service served before the deals closed the wrong way round rank them backwards.
    let served = &perf["served"];
    assert!(served["deals"].as_u64().unwrap() >= 20, "{served}");
    assert!(served["metrics"]["auc"].as_f64().unwrap() < 0.5, "{served}");
    let (reviewer, model) = (
        human["edits_reviewer_brier"].as_f64().unwrap(),
        human["edits_model_brier"].as_f64().unwrap(),
    );
    let p = review["p_win"].as_f64().unwrap();
    assert!(
        [0.0, 1.0]
            .iter()
            .any(|y| (reviewer - (0.3 - y) * (0.3 - y)).abs() < 1e-12
                && (model - (p - y) * (p - y)).abs() < 1e-12),
        "{human}"
    );
    // The edit said the deal's data are wrong: now closed, it is left out when the model is retrained.
    let trained: Value = serde_json::from_str(&winsignal(&data, &["train", "--json"])).unwrap();
    assert_eq!(
        trained["trained_on"]["left_out_by_review"],
        json!([id]),
        "{}",
        trained["trained_on"]
    );
}

/// Reps' feedback on next actions: given on an action the deal offers, by the deal's rep; refused for
/// another rep's deal and for an action the deal does not offer; read back with the deal, and summed per
/// behaviour by `winsignal feedback`. An action marked not relevant leaves the deal's score, live at
/// once and in `winsignal score`.
#[test]
fn reps_feedback_on_actions_is_kept_with_the_deal_and_summed_per_behaviour() {
    // A demo large enough for a model with behaviours (the small one keeps stage-only rates, which
    // offer no action).
    let ws = tempfile::tempdir().unwrap();
    let data = ws.path().join("ws");
    winsignal(&data, &["demo", "--scale", "0.3", "--seed", "11"]);
    let ann = winsignal(&data, &["users", "add", "ann", "--role", "revops"]);
    let ann = ann.trim();
    let scored: Value = serde_json::from_str(&winsignal(&data, &["score", "--json"])).unwrap();
    let deals = scored["deals"].as_array().unwrap();
    let deal = deals
        .iter()
        .find(|d| d["rep_id"].is_string() && !d["actions"].as_array().unwrap().is_empty())
        .expect("a deal with a next action");
    let id = deal["opportunity_id"].as_str().unwrap();
    let rep = deal["rep_id"].as_str().unwrap();
    let other_rep = deals
        .iter()
        .filter_map(|d| d["rep_id"].as_str())
        .find(|r| *r != rep)
        .unwrap();
    let rita = winsignal(
        &data,
        &["users", "add", "rita", "--role", "rep", "--rep-id", rep],
    );
    let otto = winsignal(
        &data,
        &[
            "users", "add", "otto", "--role", "rep", "--rep-id", other_rep,
        ],
    );
    let (rita, otto) = (rita.trim(), otto.trim());
    let server = Server::start(&data, &[]);
    let (_, live) = server.get(&format!("/v1/deals/{id}"), Some(rita));
    let behaviour = live["deal"]["actions"][0]["behaviour"]
        .as_str()
        .unwrap()
        .to_string();
    let path = format!("/v1/deals/{id}/feedback");
    let body = json!({"behaviour": behaviour, "verdict": "done", "comment": "met the CFO"});
    let (status, b) = server.post(&path, None, &body);
    assert_eq!((status, code(&b)), (401, "unauthorized"));
    let (status, b) = server.post(&path, Some(otto), &body);
    assert_eq!((status, code(&b)), (404, "not_found"), "another rep's deal");
    let (status, b) = server.post(
        &path,
        Some(rita),
        &json!({"behaviour": "no_such_behaviour", "verdict": "done"}),
    );
    assert_eq!((status, code(&b)), (422, "bad_shape"), "{b}");
    assert!(b["error"]["message"].as_str().unwrap().contains(&behaviour));
    let (status, given) = server.post(&path, Some(rita), &body);
    assert_eq!(status, 200, "{given}");
    assert_eq!(given["feedback"]["user"], "rita");
    assert_eq!(given["feedback"]["model_id"], live["model_id"]);
    assert_eq!(given["feedback"]["p_win"], live["deal"]["p_win"]);
    // Done: the action is still offered (until the data show it).
    let offered = |server: &Server| -> Vec<String> {
        let (_, d) = server.get(&format!("/v1/deals/{id}"), Some(rita));
        d["deal"]["actions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["behaviour"].as_str().unwrap().to_string())
            .collect()
    };
    assert!(offered(&server).contains(&behaviour));
    let (status, _) = server.get(&path, Some(otto));
    assert_eq!(status, 404);
    // Not relevant, in the dashboard (or the API): the action leaves the deal at once.
    if let Some(browser) = Browser::start() {
        let base = format!("http://{}", server.addr);
        browser.sign_in(&base, rita, "rita · rep");
        browser.go(&format!("{base}/#/deals/{id}"));
        let card = format!("#actions [data-behaviour=\"{behaviour}\"]");
        browser.wait_for(&format!("{card} .given"), "the feedback so far", |t| {
            t.contains("done by rita")
        });
        browser.click(&format!("{card} button.not-relevant"));
        browser.wait_for("#deal-title", "the page again", |_| {
            !offered(&server).contains(&behaviour)
        });
    } else {
        let (status, b) = server.post(
            &path,
            Some(rita),
            &json!({"behaviour": behaviour, "verdict": "not_relevant", "comment": "already met"}),
        );
        assert_eq!(status, 200, "{b}");
    }
    assert!(!offered(&server).contains(&behaviour), "dismissed");
    let (status, b) = server.post(
        &path,
        Some(ann),
        &json!({"behaviour": behaviour, "verdict": "not_relevant"}),
    );
    assert_eq!(
        (status, code(&b)),
        (409, "conflict"),
        "dismissed already: {b}"
    );
    let (_, listed) = server.get(&path, Some(rita));
    let verdicts: Vec<&str> = listed["feedback"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["verdict"].as_str().unwrap())
        .collect();
    assert_eq!(verdicts, ["done", "not_relevant"]);
    // Reps judge one behaviour's action not relevant on ten deals: the next model withholds it.
    let mut offering: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for d in deals {
        for a in d["actions"].as_array().unwrap() {
            offering
                .entry(a["behaviour"].as_str().unwrap().to_string())
                .or_default()
                .push(d["opportunity_id"].as_str().unwrap().to_string());
        }
    }
    let (withheld, on) = offering
        .into_iter()
        .filter(|(b, _)| *b != behaviour)
        .max_by_key(|(_, ds)| ds.len())
        .unwrap();
    assert!(
        on.len() >= 10,
        "{withheld} is offered on {} deals",
        on.len()
    );
    for deal in &on[..10] {
        let (status, b) = server.post(
            &format!("/v1/deals/{deal}/feedback"),
            Some(ann),
            &json!({"behaviour": withheld, "verdict": "not_relevant"}),
        );
        assert_eq!(status, 200, "{b}");
    }
    // A dismissal taken back (`done` after all): the action is offered on that deal again.
    let offered_on = |deal: &str| -> bool {
        let (_, d) = server.get(&format!("/v1/deals/{deal}"), Some(ann));
        d["deal"]["actions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["behaviour"] == withheld.as_str())
    };
    assert!(!offered_on(&on[0]));
    let (status, b) = server.post(
        &format!("/v1/deals/{}/feedback", on[0]),
        Some(ann),
        &json!({"behaviour": withheld, "verdict": "done", "comment": "relevant after all"}),
    );
    assert_eq!(status, 200, "{b}");
    assert!(offered_on(&on[0]), "offered again");
    assert!(server.stop().success());
    let trained: Value =
        serde_json::from_str(&winsignal(&data, &["train", "--seed", "2", "--json"])).unwrap();
    assert_eq!(
        trained["actions_withheld"],
        json!([{"behaviour": withheld, "deals": 10, "not_relevant": 9}]),
        "{}",
        trained["actions_withheld"]
    );
    // The batch score agrees with the live one: the dismissed action is not offered.
    let again: Value = serde_json::from_str(&winsignal(&data, &["score", "--json"])).unwrap();
    let batch = again["deals"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["opportunity_id"] == id)
        .unwrap();
    assert!(batch["actions"]
        .as_array()
        .unwrap()
        .iter()
        .all(|a| a["behaviour"] != behaviour.as_str()));
    // Summed per behaviour: the deal's latest verdict counts once.
    let summary: Value = serde_json::from_str(&winsignal(&data, &["feedback", "--json"])).unwrap();
    let of = |name: &str| -> Value {
        summary["behaviours"]
            .as_array()
            .unwrap()
            .iter()
            .find(|b| b["behaviour"] == name)
            .cloned()
            .unwrap()
    };
    assert_eq!(of(&withheld)["not_relevant"].as_u64(), Some(9));
    let b = &of(&behaviour);
    assert_eq!(b["deals"].as_u64(), Some(1));
    assert_eq!(
        b["not_relevant"].as_u64(),
        Some(1),
        "the deal's latest verdict is not relevant: {summary}"
    );
    assert_eq!(b["done"].as_u64(), Some(0));
    let text = winsignal(&data, &["feedback", "--deal", id]);
    assert!(text.contains("not relevant  by rita"), "{text}");
}

/// Monitoring alerts end to end. A second model is made active; the open deals then close the wrong way
/// round for it. The service's check (`--monitor-every`) finds live AUC below the floor and records one
/// alert with the recommendation to roll back to the first model, sent signed to the webhooks with
/// `--on alert` (JSON and Slack) once however many checks run; `/metrics` carries the figures. After the
/// rollback the next check resolves the second model's alert, and that is sent too.
#[test]
fn monitoring_alerts_reach_webhooks_with_the_rollback_recommendation() {
    let (ws, token, scored) = small_workspace();
    let (data, token) = (ws.path().join("ws"), token.as_str());
    let first = scored["model_id"].as_str().unwrap().to_string();
    let as_user = |user: &str, args: &[&str]| winsignal_as(&data, user, args);
    let trained: Value =
        serde_json::from_str(&as_user("alice", &["train", "--seed", "1", "--json"])).unwrap();
    let second = trained["model_id"].as_str().unwrap().to_string();
    as_user(
        "bob",
        &["models", "approve", &second, "--reason", "checked"],
    );
    as_user(
        "carol",
        &[
            "models",
            "activate",
            &second,
            "--reason",
            "retrained",
            "--override",
            "test: whatever the gate says",
        ],
    );

    let receiver = Receiver::start();
    let url = |path: &str| format!("http://{}{path}", receiver.addr);
    let add = |args: &[&str]| winsignal(&data, &[&["webhooks", "add"][..], args].concat());
    let secret = add(&["alerts", "--url", &url("/alerts"), "--on", "alert"]);
    receiver.secret("/alerts", secret.trim());
    let secret = add(&[
        "ops",
        "--url",
        &url("/slack/T0/B0/SECRET"),
        "--format",
        "slack",
        "--on",
        "alert",
    ]);
    receiver.secret("/slack", secret.trim());
    let refused = winsignal_fails(
        &data,
        &[
            "webhooks",
            "add",
            "crm",
            "--url",
            &url("/sf/{id}"),
            "--format",
            "salesforce",
            "--on",
            "alert",
        ],
    );
    assert!(
        refused.contains("alert trigger is for json and slack"),
        "{refused}"
    );
    common::close_open_deals_the_wrong_way(&data, &ws.path().join("closings"));

    let server = Server::start(&data, &["--monitor-every", "1s"]);
    let performance = |r: &Received, state: &str, model: &str| {
        r.path == "/alerts"
            && r.body["type"] == "monitor_alert"
            && r.body["data"]["kind"] == "performance"
            && r.body["data"]["state"] == state
            && r.body["data"]["model_id"] == model
    };
    wait_for(&receiver, "the performance alert", |got| {
        got.iter().any(|r| performance(r, "firing", &second))
            && got.iter().any(|r| r.path.starts_with("/slack"))
    });
    let got = receiver.received();
    let alert = &got
        .iter()
        .find(|r| performance(r, "firing", &second))
        .unwrap()
        .body["data"];
    assert_eq!(alert["rollback_to"], first.as_str(), "{alert}");
    let live = alert["value"].as_f64().unwrap();
    let floor = alert["threshold"].as_f64().unwrap();
    assert!(live < floor, "{alert}");
    let recommendation = alert["recommendation"].as_str().unwrap();
    assert!(
        recommendation.contains("winsignal models rollback") && recommendation.contains(&first),
        "{recommendation}"
    );
    assert!(got.iter().all(|r| r.signed), "every alert is signed");
    let slack = got
        .iter()
        .find(|r| {
            r.path.starts_with("/slack")
                && r.body["text"]
                    .as_str()
                    .unwrap()
                    .contains("performance floor")
        })
        .unwrap();
    let blocks = slack.body["blocks"].to_string();
    assert!(
        blocks.contains("Recommendation") && blocks.contains(&first),
        "{blocks}"
    );

    // The figures are in /metrics, labelled with the model checked.
    let text = metrics_text(&server, token);
    let gauge = |name: &str| -> f64 {
        let prefix = format!("{name}{{model_id=\"{second}\"}} ");
        text.lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .unwrap_or_else(|| panic!("no {prefix} in {text}"))
            .parse()
            .unwrap()
    };
    assert!(gauge("winsignal_monitor_live_auc") < gauge("winsignal_monitor_auc_floor"));
    assert!(gauge("winsignal_monitor_alerts_firing") >= 1.0);
    assert!(text.contains("winsignal_monitor_feature_psi{"), "{text}");

    // The same in the API and the dashboard, for revops and admin only.
    let (status, monitor) = server.get("/v1/monitor", Some(token));
    assert_eq!(status, 200, "{monitor}");
    assert_eq!(monitor["figures"]["model_id"], second.as_str());
    assert!(monitor["firing"]
        .as_array()
        .unwrap()
        .iter()
        .any(|a| a["key"] == format!("performance:{second}")));
    assert!(!monitor["recent"].as_array().unwrap().is_empty());
    let rep = scored["deals"][0]["rep_id"].as_str().unwrap();
    let rita = winsignal(
        &data,
        &["users", "add", "rita", "--role", "rep", "--rep-id", rep],
    );
    let (status, b) = server.get("/v1/monitor", Some(rita.trim()));
    assert_eq!((status, code(&b)), (403, "forbidden"));
    assert_eq!(server.get("/v1/monitor", None).0, 401);
    if let Some(browser) = Browser::start() {
        let base = format!("http://{}", server.addr);
        browser.sign_in(&base, token, "ann");
        browser.go(&format!("{base}/#/monitor"));
        browser.wait_for("#monitor-figures", "the figures", |t| {
            t.contains("Live AUC") && t.contains(&format!("{live:.3}"))
        });
        browser.wait_for("#monitor-firing", "the alert", |t| {
            t.contains("is below the floor") && t.contains("winsignal models rollback")
        });
    }

    // Checks go on every second; the alert holds and is not sent again.
    std::thread::sleep(Duration::from_secs(3));
    let firing_sent = |got: &[Received]| {
        got.iter()
            .filter(|r| performance(r, "firing", &second))
            .map(|r| r.delivery.clone())
            .collect::<std::collections::BTreeSet<_>>()
            .len()
    };
    assert_eq!(firing_sent(&receiver.received()), 1);
    let listed: Value =
        serde_json::from_str(&winsignal(&data, &["monitor", "alerts", "--json"])).unwrap();
    assert!(listed
        .as_array()
        .unwrap()
        .iter()
        .any(|a| a["key"] == format!("performance:{second}")));

    // Rolled back as the alert recommends: the next check resolves the second model's alert.
    let (status, body) = server.post(
        "/v1/models/rollback",
        Some(token),
        &json!({"reason": "the monitoring alert"}),
    );
    assert_eq!(status, 200, "{body}");
    wait_for(&receiver, "the resolution", |got| {
        got.iter().any(|r| performance(r, "resolved", &second))
    });
    assert_eq!(firing_sent(&receiver.received()), 1);
    let log = std::fs::read_to_string(server.log.path()).unwrap();
    assert!(!log.contains("whsec_") && !log.contains("SECRET"), "{log}");
}

/// Retraining on a schedule: the service retrains the win model the given time after the last training
/// (here 2 s), recorded as by `rule:schedule`; the new model is a candidate and the served model stays
/// the active one until someone approves and activates it.
#[test]
fn scheduled_retraining_makes_a_candidate_and_the_served_model_stays() {
    let (ws, token, scored) = small_workspace();
    let (data, token) = (ws.path().join("ws"), token.as_str());
    let first = scored["model_id"].as_str().unwrap().to_string();
    // New outcomes since the demo's model was trained: retraining makes another model.
    common::close_open_deals_the_wrong_way(&data, &ws.path().join("closings"));
    let server = Server::start(&data, &["--retrain-every", "2s"]);
    let started = Instant::now();
    // A trained model is saved, then registered (who trained it): wait for both, as a reader between
    // the two commits sees the model without its trainer.
    let list = loop {
        let list: Value =
            serde_json::from_str(&winsignal(&data, &["models", "list", "--json"])).unwrap();
        let models = list["models"].as_array().unwrap();
        if models.len() == 2 && models.iter().all(|m| !m["trained_by"].is_null()) {
            break list;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "not retrained: {list}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let retrained = list["models"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["model_id"] != first.as_str())
        .unwrap();
    assert_eq!(retrained["stage"], "candidate", "{retrained}");
    assert_eq!(retrained["trained_by"], "rule:schedule", "{retrained}");
    assert_eq!(list["active"], first.as_str());
    // The served model is still the first, after the follow interval.
    std::thread::sleep(Duration::from_millis(600));
    let (status, active) = server.get("/v1/models/active", Some(token));
    assert_eq!(status, 200, "{active}");
    assert_eq!(active["model_id"], first.as_str(), "{active}");
    let (_, deals) = server.get("/v1/deals", Some(token));
    assert_eq!(deals["model_id"], first.as_str());
    let audit: Value =
        serde_json::from_str(&winsignal(&data, &["audit", "list", "--json"])).unwrap();
    assert!(audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["action"] == "model.candidate" && e["actor"] == "rule:schedule"));
    let log = std::fs::read_to_string(server.log.path()).unwrap();
    assert!(log.contains("retrained on schedule"), "{log}");
}

/// The review rule "a new finding that would change a team's coaching": with it on, the first
/// computation of the scorecards records each team's coaching focus; when a later one finds another
/// focus (here: the recorded one is set to a behaviour the data do not support, as if findings had
/// moved), the team's change waits in the queue — once, however often the scorecards are computed —
/// for the team's manager or revops, not a single rep; it is accepted or rejected, not edited.
#[test]
fn a_teams_coaching_changing_waits_for_review() {
    use std::io::Read as _;
    use winsignal_store::Store as _;
    let (ws, ann, scored) = small_workspace();
    let (data, ann) = (ws.path().join("ws"), ann.as_str());
    winsignal(&data, &["review", "rules", "--coaching-changes", "on"]);
    winsignal(&data, &["reps", "--json"]);
    let coaching = |data: &Path| -> Vec<Value> {
        let listed: Value =
            serde_json::from_str(&winsignal(data, &["review", "list", "--json"])).unwrap();
        listed["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|i| i["kind"] == "coaching_change")
            .cloned()
            .collect()
    };
    assert!(
        coaching(&data).is_empty(),
        "the first computation only records"
    );
    // As if the last computation had found another focus for one team.
    let team = {
        let store = winsignal_store::EmbeddedStore::open(&data).unwrap();
        let mut team = String::new();
        store
            .update_state("coaching-focus", "", &mut |current| {
                let mut text = String::new();
                current.unwrap().bytes.read_to_string(&mut text)?;
                // Per catalog (here the built-in one), per team.
                let mut baselines: serde_json::Map<String, Value> =
                    serde_json::from_str(&text).unwrap();
                assert_eq!(baselines.keys().collect::<Vec<_>>(), ["winsignal default"]);
                let known = baselines["winsignal default"].as_object_mut().unwrap();
                let (name, focus) = known.iter_mut().next().expect("a team");
                team = name.clone();
                *focus = json!({"behaviour": "old_focus", "title": "The old focus",
                                "expected_extra_wins": 1.5, "reps": 1});
                Ok(serde_json::to_vec(&baselines).unwrap())
            })
            .unwrap();
        team
    };
    winsignal(&data, &["reps", "--json"]);
    winsignal(&data, &["reps"]);
    let items = coaching(&data);
    assert_eq!(items.len(), 1, "{items:?}");
    let item = &items[0];
    assert_eq!(item["coaching"]["team"], team.as_str());
    assert_eq!(item["coaching"]["previous"]["behaviour"], "old_focus");
    // What the data support now: another behaviour, or (the small demo's model has no behaviour to
    // coach) nothing.
    assert_ne!(item["coaching"]["now"]["behaviour"], "old_focus", "{item}");
    let team_reps = item["coaching"]["rep_ids"].as_array().unwrap().clone();
    assert!(!team_reps.is_empty(), "{item}");
    assert!(item["change"].is_null());
    assert!(
        item["why"].as_str().unwrap().contains("The old focus ("),
        "{item}"
    );
    let number = item["id"].as_u64().unwrap();

    // A rep of another team.
    let rep = scored["deals"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|d| d["rep_id"].as_str())
        .find(|r| !team_reps.iter().any(|t| t == r))
        .unwrap();
    let rita = winsignal(
        &data,
        &["users", "add", "rita", "--role", "rep", "--rep-id", rep],
    );
    let rita = rita.trim();
    let server = Server::start(&data, &[]);
    let (_, mine) = server.get("/v1/review", Some(rita));
    assert!(
        mine["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|i| i["kind"] != "coaching_change"),
        "a single rep does not see the team's item: {mine}"
    );
    let (_, all) = server.get("/v1/review", Some(ann));
    assert!(all["items"]
        .as_array()
        .unwrap()
        .iter()
        .any(|i| i["id"].as_u64() == Some(number)));
    let path = format!("/v1/review/{number}");
    let (status, b) = server.post(
        &path,
        Some(ann),
        &json!({"verdict": "edit", "reason_code": "other", "corrected_p_win": 0.5}),
    );
    assert_eq!((status, code(&b)), (422, "bad_shape"), "{b}");
    assert!(b["error"]["message"]
        .as_str()
        .unwrap()
        .contains("accept or reject"));
    if let Some(browser) = Browser::start() {
        let base = format!("http://{}", server.addr);
        browser.sign_in(&base, ann, "ann");
        browser.go(&format!("{base}/#/review"));
        let row = format!("tr[data-item=\"{number}\"]");
        browser.wait_for(&row, "the team's item", |t| {
            t.contains(&format!("team {team}")) && t.contains("coaching focus would change")
        });
        browser.click(&format!("{row} button.accept"));
        browser.wait_for(&format!("{row} td.decision"), "decided", |t| {
            t.starts_with("accept by ann")
        });
    } else {
        let (status, b) = server.post(
            &path,
            Some(ann),
            &json!({"verdict": "accept", "reason_code": "agree"}),
        );
        assert_eq!(status, 200, "{b}");
    }
    assert!(server.stop().success());
    // Decided; the focus now recorded is the one found, so nothing more is queued.
    winsignal(&data, &["reps", "--json"]);
    let after = coaching(&data);
    assert_eq!(after.len(), 0, "{after:?}");
}
