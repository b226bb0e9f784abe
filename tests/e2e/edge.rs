//! The data plane under slow and greedy clients, end to end:
//! - half-open and idle keep-alive connections are closed once the header time runs
//!   out, and slow bodies hold no place among a function's running guests, so a normal
//!   request still answers;
//! - headers beyond `--max-header-bytes` get 431, and connections beyond
//!   `--max-connections` are closed at once;
//! - `max_concurrency` counts guests that run: HTTP/2 clients that reset their streams
//!   cannot start more;
//! - with every instance slot busy, a request waits in its queue instead of failing.

use std::time::{Duration, Instant};

use glint_e2e::{Node, guest, hello_manifest};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn data_addr(node: &Node) -> String {
    node.data_url.trim_start_matches("http://").to_string()
}

fn rss_kib(pid: i32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// Reads until the peer closes the connection; false if it is still open at `deadline`.
async fn closed_by_peer(stream: &mut TcpStream, deadline: Instant) -> bool {
    let mut buf = [0u8; 1024];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
            Err(_) => return false,
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn slow_clients_cannot_shut_a_function_out() {
    let node = Node::start_with_args(&["--header-read-timeout", "2s"]);
    node.admin()
        .deploy_ok(
            "hello",
            &format!(
                "{}[scaling]\nmax_concurrency = 5\nmax_queue_ms = 500\n",
                hello_manifest("Hello")
            ),
            guest("hello"),
        )
        .await;
    assert_eq!(node.call("/hello").await.0, 200);
    let addr = data_addr(&node);
    let rss_before = rss_kib(node.pid());

    // A keep-alive connection that served a request and then goes quiet.
    let mut quiet = TcpStream::connect(&addr).await.unwrap();
    quiet
        .write_all(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut head = [0u8; 12];
    quiet.read_exact(&mut head).await.unwrap();
    assert_eq!(&head, b"HTTP/1.1 200");
    // 500 connections that never finish their headers.
    let mut half_open = Vec::new();
    for _ in 0..500 {
        let mut s = TcpStream::connect(&addr).await.unwrap();
        s.write_all(b"GET /hello HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            .await
            .unwrap();
        half_open.push(s);
    }
    // 50 clients that send a body one byte a second.
    let mut slow_bodies = Vec::new();
    for _ in 0..50 {
        let mut s = TcpStream::connect(&addr).await.unwrap();
        s.write_all(b"POST /hello HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n")
            .await
            .unwrap();
        slow_bodies.push(s);
    }
    let dripping = tokio::spawn(async move {
        for _ in 0..5 {
            for s in &mut slow_bodies {
                let _ = s.write_all(b"x").await;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        slow_bodies
    });

    // A normal request still gets its answer: the slow ones hold no concurrency slot.
    let started = Instant::now();
    let (status, body) = node.call("/hello").await;
    assert_eq!((status, body.as_str()), (200, "Hello from Glint!\n"));
    eprintln!(
        "a normal request beside 550 slow clients took {:?}",
        started.elapsed()
    );

    // The half-open ones are closed once their header time (2 s here) runs out, and so
    // is the quiet keep-alive one, from the end of its response.
    let deadline = Instant::now() + Duration::from_secs(30);
    assert!(
        closed_by_peer(&mut quiet, deadline).await,
        "an idle keep-alive connection is still open"
    );
    for s in &mut half_open {
        assert!(
            closed_by_peer(s, deadline).await,
            "a connection that never sent its headers is still open"
        );
    }
    let rss_after = rss_kib(node.pid());
    assert!(
        rss_after < rss_before + 100 * 1024,
        "RSS grew from {rss_before} KiB to {rss_after} KiB"
    );
    drop(dripping.await.unwrap());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_slow_body_gets_408_and_oversized_headers_431() {
    let node = Node::start_with_args(&["--body-read-timeout", "1s"]);
    node.admin().deploy_hello("Hello").await;
    let addr = data_addr(&node);

    let mut s = TcpStream::connect(&addr).await.unwrap();
    s.write_all(b"POST /hello HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc")
        .await
        .unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(30), s.read_to_end(&mut answer)).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("body_timeout"), "{answer}");

    let mut s = TcpStream::connect(&addr).await.unwrap();
    let big = "a".repeat(70 * 1024);
    let request = format!("GET /hello HTTP/1.1\r\nHost: x\r\nX-Big: {big}\r\n\r\n");
    let _ = s.write_all(request.as_bytes()).await;
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(30), s.read_to_end(&mut answer)).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer}");
    // Headers under the limit still pass.
    let resp = glint_e2e::http_client()
        .get(format!("{}/hello", node.data_url))
        .header("x-big", "a".repeat(30 * 1024))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn connections_beyond_the_cap_are_closed_at_once() {
    let node = Node::start_with_args(&["--max-connections", "20"]);
    node.admin().deploy_hello("Hello").await;
    let addr = data_addr(&node);
    let mut open = Vec::new();
    for _ in 0..20 {
        let mut s = TcpStream::connect(&addr).await.unwrap();
        // A whole request each, so each is surely accepted and counted.
        s.write_all(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut buf = [0u8; 12];
        s.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"HTTP/1.1 200");
        open.push(s);
    }
    let mut extra = TcpStream::connect(&addr).await.unwrap();
    let _ = extra
        .write_all(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
        .await;
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), extra.read_to_end(&mut answer)).await;
    assert!(
        matches!(read, Ok(Ok(0)) | Ok(Err(_))),
        "the connection beyond the cap was served: {read:?} {:?}",
        String::from_utf8_lossy(&answer)
    );
    assert!(node.log().contains("--max-connections"), "{}", node.log());
    // Closing some makes room again.
    open.truncate(10);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(0)
            .build()
            .unwrap();
        if let Ok(resp) = client.get(format!("{}/hello", node.data_url)).send().await
            && resp.status() == 200
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no room came free after closing connections"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Log lines of `function` that contain `text`.
async fn lines_with(node: &Node, function: &str, text: &str) -> usize {
    node.admin()
        .logs(function, "")
        .await
        .iter()
        .filter(|l| l["message"].as_str().unwrap_or("").contains(text))
        .count()
}

#[tokio::test(flavor = "multi_thread")]
async fn http2_stream_resets_cannot_start_more_guests_than_the_limit() {
    let node = Node::start();
    node.admin()
        .deploy_ok(
            "misbehave",
            "[scaling]\nmax_concurrency = 2\nmax_queue_ms = 300\n[limits]\ntimeout_ms = 20000\n",
            guest("misbehave"),
        )
        .await;
    let tcp = TcpStream::connect(data_addr(&node)).await.unwrap();
    let (mut h2, connection) = h2::client::handshake(tcp).await.unwrap();
    tokio::spawn(connection);

    let mut refused = 0;
    for _ in 0..8 {
        let started_before = lines_with(&node, "misbehave", "sleeping").await;
        let request = http::Request::get(format!("{}/misbehave/sleep?ms=8000", node.data_url))
            .body(())
            .unwrap();
        h2 = h2.ready().await.unwrap();
        let (response, mut stream) = h2.send_request(request, true).unwrap();
        let mut response = Box::pin(response);
        // Either the guest starts (its first line arrives) or the node answers 503.
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Ok(Ok(resp)) =
                tokio::time::timeout(Duration::from_millis(100), response.as_mut()).await
            {
                assert_eq!(resp.status(), 503);
                refused += 1;
                break;
            }
            if lines_with(&node, "misbehave", "sleeping").await > started_before {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "neither a guest start nor an answer"
            );
        }
        // The greedy client gives up on the request at once.
        stream.send_reset(h2::Reason::CANCEL);
    }
    let started = lines_with(&node, "misbehave", "sleeping").await;
    assert_eq!(
        started, 2,
        "{started} guests ran at once under max_concurrency = 2"
    );
    assert_eq!(refused, 6);
}

#[tokio::test(flavor = "multi_thread")]
async fn with_every_instance_slot_busy_requests_wait_their_turn() {
    let node = Node::start_with_args(&["--max-instances", "2"]);
    node.admin()
        .deploy_ok(
            "misbehave",
            "[scaling]\nmax_concurrency = 10\nmax_queue_ms = 10000\n",
            guest("misbehave"),
        )
        .await;
    let calls = (0..5).map(|_| node.call("/misbehave/sleep?ms=300"));
    let answers = futures::future::join_all(calls).await;
    for (status, body) in answers {
        assert_eq!((status, body.as_str()), (200, "slept 300 ms\n"));
    }
}
