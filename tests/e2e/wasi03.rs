//! WASI 0.3 HTTP components (`wasi:http/service`, exporting `wasi:http/handler@0.3.0`)
//! beside WASI 0.2 ones: the tests/fixtures/p3 guest, built from source with wasip3, is
//! deployed and called on a real node, and gets the same capabilities and limits.

use std::time::Duration;

use glint_e2e::{Node, guest, upstream, wait_until};
use reqwest::Method;

#[tokio::test(flavor = "multi_thread")]
async fn a_wasi_03_component_serves_with_capabilities_and_limits() {
    let (port, hits) = upstream();
    let node = Node::start();
    let admin = node.admin();
    let manifest = format!(
        "[env]\nGREETING = \"hi from 0.3\"\n[kv]\nstores = [\"data\"]\n\
         [outbound]\nallowed_hosts = [\"http://127.0.0.1:{port}\"]\n\
         [limits]\ncpu_ms = 300\nmemory_mb = 32\ntimeout_ms = 3000\n"
    );
    admin.deploy_ok("p3", &manifest, guest("p3")).await;
    // And a WASI 0.2 function on the same node, which keeps serving beside it.
    admin.deploy_hello("still 0.2").await;

    assert_eq!(
        node.call("/p3/hello").await,
        (200, "hello from WASI 0.3\n".into())
    );
    // Each version records the world it speaks, and `glint info` shows it.
    for (name, world) in [("p3", "wasi-0.3"), ("hello", "wasi-0.2")] {
        let (_, info) = admin.get(&format!("/api/v1/functions/{name}")).await;
        assert_eq!(info["versions"][0]["world"], world, "{info}");
        let (ok, out, err) = node.cli(&node.key, &["info", name]);
        assert!(ok, "{err}");
        let row = out.lines().find(|l| l.trim_start().starts_with("v1"));
        assert!(row.is_some_and(|r| r.contains(world)), "{out}");
    }
    // The request body reaches the guest; the response streams back.
    assert_eq!(
        node.send(Method::POST, "/p3/echo", b"ping pong".to_vec())
            .await,
        (200, "9 bytes: ping pong".into())
    );
    let (status, body) = node.call("/p3/stream?chunks=50").await;
    assert_eq!(status, 200);
    let want: String = (0..50).map(|i| format!("chunk {i}\n")).collect();
    assert_eq!(
        body, want,
        "every chunk, written after the response was returned"
    );

    // KV, config (the environment) and env vars.
    assert_eq!(node.call("/p3/kv/data/k").await, (404, "not found".into()));
    assert_eq!(
        node.send(Method::PUT, "/p3/kv/data/k", b"v1".to_vec())
            .await
            .0,
        204
    );
    assert_eq!(node.call("/p3/kv/data/k").await, (200, "v1".into()));
    for want in ["1\n", "2\n"] {
        assert_eq!(
            node.send(Method::POST, "/p3/kv/data/n/increment", Vec::new())
                .await,
            (200, want.into())
        );
    }
    let (status, body) = node.call("/p3/kv/other/k").await;
    assert_eq!(status, 500, "a store the manifest does not list: {body}");
    assert!(body.contains("AccessDenied"), "{body}");
    assert_eq!(
        node.call("/p3/config/GREETING").await,
        (200, "hi from 0.3".into())
    );
    assert_eq!(
        node.call("/p3/env/GREETING").await,
        (200, "hi from 0.3".into())
    );

    // Outbound: the allowed upstream is called, another host is denied before any
    // connection.
    let allowed = format!("/p3/fetch?url=http%3A%2F%2F127.0.0.1:{port}%2F");
    assert_eq!(node.call(&allowed).await, (200, "status 200".into()));
    assert_eq!(hits.load(std::sync::atomic::Ordering::SeqCst), 1);
    let (other, _) = upstream();
    let denied = format!("/p3/fetch?url=http%3A%2F%2F127.0.0.1:{other}%2F");
    let (status, body) = node.call(&denied).await;
    assert_eq!(status, 502, "{body}");
    assert!(body.contains("HttpRequestDenied"), "{body}");

    // Limits: a loop ends at the CPU limit, an allocation past memory_mb at the memory
    // limit; each ends only its own request.
    let (status, body) = node.call("/p3/loop").await;
    assert_eq!(status, 504, "{body}");
    assert!(body.contains("cpu_limit_exceeded"), "{body}");
    assert_eq!(
        node.call("/p3/alloc?mb=4").await,
        (200, "allocated 4 MiB\n".into())
    );
    let (status, body) = node.call("/p3/alloc?mb=64").await;
    assert_eq!(status, 500, "{body}");
    assert!(body.contains("memory_limit_exceeded"), "{body}");
    assert_eq!(
        node.call("/hello").await,
        (200, "still 0.2 from Glint!\n".into())
    );
    assert_eq!(
        node.call("/p3/hello").await,
        (200, "hello from WASI 0.3\n".into())
    );
}

/// `[scaling] reuse` keeps WASI 0.3 instances between requests, and
/// `max_concurrent_per_instance` lets one serve several at once; a fresh instance per
/// request stays the default. Limits still end a shared instance's requests.
#[tokio::test(flavor = "multi_thread")]
async fn wasi_03_instances_are_kept_and_shared_only_when_asked() {
    let node = Node::start();
    let admin = node.admin();
    let limits = "[limits]\ncpu_ms = 300\nmemory_mb = 32\ntimeout_ms = 5000\n";
    admin.deploy_ok("fresh", limits, guest("p3")).await;
    let serial = format!("[scaling]\nreuse = true\n{limits}");
    admin.deploy_ok("serial", &serial, guest("p3")).await;
    let shared = format!("[scaling]\nreuse = true\nmax_concurrent_per_instance = 8\n{limits}");
    admin.deploy_ok("shared", &shared, guest("p3")).await;

    // Fresh: nothing survives a request.
    for _ in 0..5 {
        assert_eq!(
            node.call("/fresh/count").await,
            (200, "request 1 of this instance\n".into())
        );
    }
    // Kept: an instance serves one request after another and keeps its memory.
    let mut most = 0;
    for _ in 0..8 {
        let (status, body) = node.call("/serial/count").await;
        assert_eq!(status, 200, "{body}");
        most = most.max(served(&body));
    }
    assert!(most >= 2, "no instance served a second request");

    // While a long request waits in the instance, a shared instance takes another
    // request beside it; a serial one never does.
    assert!(
        !overlaps(&node, "serial").await,
        "a serial instance served two at once"
    );
    assert!(
        overlaps(&node, "shared").await,
        "no request joined the waiting one"
    );

    // A request past a limit ends its instance, and only with an error that says so;
    // the function serves on.
    let (status, body) = node.call("/shared/loop").await;
    assert_eq!(status, 504, "{body}");
    assert!(body.contains("cpu_limit_exceeded"), "{body}");
    let (status, body) = node.call("/shared/alloc?mb=64").await;
    assert_eq!(status, 500, "{body}");
    assert!(body.contains("memory_limit_exceeded"), "{body}");
    assert_eq!(node.call("/shared/hello").await.0, 200);
    assert_eq!(node.call("/serial/hello").await.0, 200);

    // A function may ask for all a 32-bit memory holds, 4 GiB, and use more than 1 GiB.
    let big = "[limits]\nmemory_mb = 4096\n";
    admin.deploy_ok("big", big, guest("p3")).await;
    assert_eq!(
        node.call("/big/alloc?mb=1536").await,
        (200, "allocated 1536 MiB\n".into())
    );
    let (status, body) = admin
        .deploy("too-big", "[limits]\nmemory_mb = 4097\n", guest("p3"))
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"]["message"].as_str().unwrap().contains("4096"),
        "{body}"
    );

    // Concurrency is for WASI 0.3, and asks for reuse.
    let (status, body) = admin
        .deploy(
            "hello",
            "[scaling]\nreuse = true\nmax_concurrent_per_instance = 4\n",
            guest("hello"),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "not_concurrent", "{body}");
    let (status, body) = admin
        .deploy(
            "p3-alone",
            "[scaling]\nmax_concurrent_per_instance = 4\n",
            guest("p3"),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("reuse = true"),
        "{body}"
    );
}

/// A request that outlives its timeout on a shared instance ends alone, with a 504 that
/// says so, while the instance keeps serving the requests beside it: each request has
/// its own deadline, not only the instance.
#[tokio::test(flavor = "multi_thread")]
async fn a_shared_instance_times_out_one_request_and_serves_the_others() {
    // One instance slot on the node, so every request shares the one instance.
    let node = Node::start_with_args(&["--max-instances", "1"]);
    let shared = "[scaling]\nreuse = true\nmax_concurrent_per_instance = 16\n\
                  [limits]\ntimeout_ms = 1000\n";
    node.admin().deploy_ok("slow", shared, guest("p3")).await;
    assert_eq!(node.call("/slow/hello").await.0, 200);

    // Requests of 400 ms start every 100 ms while the long one waits, so its instance
    // always has a recent request in flight and the instance's own backstop (which
    // runs from the latest request) keeps moving: only the long request's own deadline
    // can end it while they run.
    let mut others = tokio::task::JoinSet::new();
    let (status, body) = {
        let long = node.call("/slow/wait?ms=60000");
        let starting = async {
            for _ in 0..200 {
                others.spawn(call_owned(&node, "/slow/wait?ms=400"));
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        };
        tokio::select! {
            answer = long => answer,
            () = starting => panic!("the slow request was still running after 200 others started"),
        }
    };
    for (status, body) in others.join_all().await {
        assert_eq!(status, 200, "a request beside the slow one failed: {body}");
    }
    assert_eq!(status, 504, "{body}");
    assert!(body.contains("function_timeout"), "{body}");
    assert_eq!(
        node.call("/slow/wait?ms=0").await.0,
        200,
        "the function stopped serving after a timeout"
    );
}

/// On a node whose one instance slot a shared instance holds, requests that find it
/// full wait for room on it and are all served: none waits out the queue time for a
/// slot that cannot come free while the instance lives.
#[tokio::test(flavor = "multi_thread")]
async fn requests_wait_for_room_on_a_shared_instance_when_no_slot_is_free() {
    wait_for_room(&Node::start_with_args(&["--max-instances", "1"])).await;
}

/// The same with `--data-plane-threads 2`: the one instance is driven on one thread, and
/// requests dealt to the other thread (which has no slot for an instance of its own)
/// join it there.
#[tokio::test(flavor = "multi_thread")]
async fn requests_of_every_data_plane_thread_wait_for_room_on_a_shared_instance() {
    let node = Node::start_with_args(&["--max-instances", "1", "--data-plane-threads", "2"]);
    wait_for_room(&node).await;
}

async fn wait_for_room(node: &Node) {
    let shared = "[scaling]\nreuse = true\nmax_concurrent_per_instance = 4\nmax_queue_ms = 2000\n";
    node.admin().deploy_ok("full", shared, guest("p3")).await;

    // A long request holds the one instance (and so the node's one slot) for longer
    // than the queue time.
    let long = tokio::spawn(call_owned(node, "/full/wait?ms=8000"));
    wait_until(
        "the long request waiting in the instance",
        Duration::from_secs(10),
        || async {
            match node.call("/full/wait?ms=0").await {
                (200, body) if body.trim() == "peak 2" => Ok(()),
                other => Err(format!("{other:?}")),
            }
        },
    )
    .await;

    let instantiations = || async {
        let (_, status) = node.admin().get("/api/v1/node").await;
        status["instantiations"].as_u64()
    };
    // (A probe may have come first and had an instance of its own, gone once idle.)
    let before = instantiations().await;

    // Four times as many at once as it has room for beside the long one.
    let mut calls = tokio::task::JoinSet::new();
    for _ in 0..12 {
        calls.spawn(call_owned(node, "/full/wait?ms=100"));
    }
    for (status, body) in calls.join_all().await {
        assert_eq!(status, 200, "a request waiting for room failed: {body}");
        assert!(served(&body) <= 4, "more than four at once: {body}");
    }
    let (status, body) = long.await.unwrap();
    assert_eq!(status, 200, "{body}");
    // All of them in the long request's instance.
    assert_eq!(instantiations().await, before);
}

/// With `--data-plane-threads 2`, two open connections are served on different
/// threads, each by a shared instance of its own thread: a request never leaves its
/// connection's thread. WASI 0.2 functions are served there too.
#[tokio::test(flavor = "multi_thread")]
async fn data_plane_threads_keep_each_connection_on_instances_of_its_own_thread() {
    let node = Node::start_with_args(&["--data-plane-threads", "2"]);
    each_connection_is_served_on_its_own_thread(&node).await;
}

/// `GLINT_DATA_PLANE_THREADS` sets `--data-plane-threads` too (so a whole test run can
/// put its nodes in that mode).
#[tokio::test(flavor = "multi_thread")]
async fn data_plane_threads_come_from_the_environment_too() {
    let node = Node::start_with_env(&[("GLINT_DATA_PLANE_THREADS", "2")]);
    each_connection_is_served_on_its_own_thread(&node).await;
}

/// `--data-plane-pin`: each data-plane thread runs on a core of its own, and a
/// connection goes to the thread on the core its packets came from. A client on the
/// second core is served by the second thread although the first has as few open
/// connections (dealt by count alone, it would go to the first), and then a client on
/// the first core by the first.
#[tokio::test(flavor = "multi_thread")]
async fn pinned_data_plane_threads_serve_each_connection_on_the_core_it_came_from() {
    let cores = allowed_cores();
    if cores.len() < 2 {
        eprintln!("skipped: needs 2 cores, this process may use {cores:?}");
        return;
    }
    let node = Node::start_with_args(&["--data-plane-threads", "2", "--data-plane-pin"]);
    for (thread, core) in cores.iter().take(2).enumerate() {
        let name = format!("glint-data-{thread}");
        // The threads start with the data listener's accept loop, just after the node
        // says it is ready.
        wait_until(
            &format!("{name} pinned to core {core}"),
            Duration::from_secs(10),
            || async {
                let allowed = thread_cores(node.pid(), &name);
                if allowed.as_deref() == Some(core.to_string().as_str()) {
                    Ok(())
                } else {
                    Err(format!("{allowed:?}"))
                }
            },
        )
        .await;
    }
    let addr = node.data_url.trim_start_matches("http://").to_string();
    let mut held = Vec::new();
    for (core, open) in [(cores[1], [0, 1]), (cores[0], [1, 1])] {
        held.push(connect_from(core, addr.clone()).await);
        wait_until(
            &format!("the connection from core {core} counted on its core's thread"),
            Duration::from_secs(10),
            || async {
                let seen = data_plane_connections(&node).await;
                if seen == open {
                    Ok(())
                } else {
                    Err(format!("{seen:?}"))
                }
            },
        )
        .await;
    }
    drop(held);
}

/// `--data-plane-busy-poll`: after its connections read or write, a data-plane thread
/// polls for the window instead of sleeping, and then sleeps again; with no traffic it
/// does not poll. A node without the flag reports no such time, and one that asks for
/// it without data-plane threads is refused with what to add.
#[tokio::test(flavor = "multi_thread")]
async fn busy_polling_threads_poll_after_traffic_and_then_sleep() {
    // Whatever mode the suite runs every node in (GLINT_DATA_PLANE_*).
    let said = glint_e2e::serve_refused(
        &["--data-plane-busy-poll", "50"],
        &[
            ("GLINT_DATA_PLANE_THREADS", Some("0")),
            ("GLINT_DATA_PLANE_PIN", None),
            ("GLINT_DATA_PLANE_BUSY_POLL", None),
        ],
    );
    assert!(
        said.contains("--data-plane-busy-poll (or GLINT_DATA_PLANE_BUSY_POLL) keeps")
            && said.contains("add --data-plane-threads N"),
        "busy polling with no data-plane threads must be refused with what to add: {said}"
    );

    let plain = Node::start_with_env(&[
        ("GLINT_DATA_PLANE_THREADS", "1"),
        ("GLINT_DATA_PLANE_BUSY_POLL", "0"),
    ]);
    // Its thread is reported once the data listener has started it.
    wait_until("the data-plane thread", Duration::from_secs(10), || async {
        let open = data_plane_connections(&plain).await;
        if open == [0] {
            Ok(())
        } else {
            Err(format!("{open:?}"))
        }
    })
    .await;
    assert_eq!(
        busy_polled(&plain).await,
        None,
        "a node that does not busy-poll reports no polling time"
    );
    drop(plain);

    // The longest window (10 ms), so that each piece of traffic shows as time polled.
    let node = Node::start_with_args(&[
        "--data-plane-threads",
        "1",
        "--data-plane-busy-poll",
        "10000",
    ]);
    let admin = node.admin();
    admin.deploy_ok("hello", "", guest("hello")).await;
    let quiet = settled(&node).await;
    // The data listener has had no connection: no window has opened.
    assert_eq!(
        quiet,
        Duration::ZERO,
        "a thread that has had no traffic must not poll"
    );

    let client = reqwest::Client::new();
    for _ in 0..3 {
        let r = client
            .get(format!("{}/hello", node.data_url))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        r.text().await.unwrap();
    }
    // It polled after the traffic, and then stopped (the count settles).
    let after = settled(&node).await;
    assert!(
        after > quiet,
        "the thread should have polled after serving requests: {after:?}"
    );
}

/// The time data-plane thread 0 spent busy polling, from `/metrics`; `None` when the
/// node reports none.
async fn busy_polled(node: &Node) -> Option<Duration> {
    by_thread(node, "glint_data_plane_busy_poll_seconds_total")
        .await
        .first()
        .map(|&seconds| Duration::from_secs_f64(seconds))
}

/// The busy-polling time once it stops moving: the same in two readings in a row
/// (`wait_until` reads every 50 ms, longer than the test's 10 ms window).
async fn settled(node: &Node) -> Duration {
    let last = std::sync::Mutex::new(None);
    wait_until(
        "the data-plane thread to stop busy polling",
        Duration::from_secs(10),
        || async {
            let read = busy_polled(node).await;
            let before = last.lock().unwrap().replace(read);
            match (before, read) {
                (Some(Some(before)), Some(read)) if before == read => Ok(read),
                _ => Err(format!("{before:?} then {read:?}")),
            }
        },
    )
    .await
}

/// The cores this process may run on.
fn allowed_cores() -> Vec<usize> {
    // SAFETY: a zeroed cpu_set_t is a valid empty set; sched_getaffinity writes at most
    // its size, and CPU_ISSET reads below CPU_SETSIZE.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    let size = std::mem::size_of::<libc::cpu_set_t>();
    if unsafe { libc::sched_getaffinity(0, size, &mut set) } != 0 {
        return Vec::new();
    }
    (0..libc::CPU_SETSIZE as usize)
        .filter(|&c| unsafe { libc::CPU_ISSET(c, &set) })
        .collect()
}

/// The cores thread `name` of process `pid` may run on, as /proc lists them; `None`
/// while it has no such thread.
fn thread_cores(pid: i32, name: &str) -> Option<String> {
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let status =
            std::fs::read_to_string(task.unwrap().path().join("status")).unwrap_or_default();
        if status.lines().next() == Some(&format!("Name:\t{name}")) {
            let line = status.lines().find(|l| l.starts_with("Cpus_allowed_list:"));
            return Some(
                line.and_then(|l| l.split_whitespace().nth(1))
                    .unwrap_or("")
                    .to_string(),
            );
        }
    }
    None
}

/// An HTTP/1 connection made and used from a thread that runs only on `core`, so its
/// packets arrive there; held open until the returned stream is dropped.
async fn connect_from(core: usize, addr: String) -> std::net::TcpStream {
    tokio::task::spawn_blocking(move || {
        use std::io::{Read, Write};
        // SAFETY: as in `allowed_cores`; pid 0 is this thread, `core` is an allowed core.
        let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
        unsafe { libc::CPU_SET(core, &mut set) };
        let size = std::mem::size_of::<libc::cpu_set_t>();
        assert_eq!(
            unsafe { libc::sched_setaffinity(0, size, &set) },
            0,
            "pin to core {core}"
        );
        let mut stream = std::net::TcpStream::connect(&addr).unwrap();
        stream
            .write_all(b"GET /nowhere HTTP/1.1\r\nHost: glint\r\n\r\n")
            .unwrap();
        let mut answer = [0u8; 64];
        let n = stream.read(&mut answer).unwrap();
        assert!(
            answer[..n].starts_with(b"HTTP/1.1 404"),
            "answered {:?}",
            String::from_utf8_lossy(&answer[..n])
        );
        stream
    })
    .await
    .unwrap()
}

/// `glint_data_plane_connections` of each data-plane thread, in thread order.
async fn data_plane_connections(node: &Node) -> Vec<u64> {
    by_thread(node, "glint_data_plane_connections")
        .await
        .into_iter()
        .map(|n| n as u64)
        .collect()
}

/// The samples of the per-thread metric `metric` in `/metrics`, in thread order.
async fn by_thread(node: &Node, metric: &str) -> Vec<f64> {
    let mut samples: Vec<(u64, f64)> = node
        .metrics()
        .await
        .into_iter()
        .filter(|(name, _, _)| name == metric)
        .map(|(_, labels, n)| (labels["thread"].parse().unwrap(), n))
        .collect();
    samples.sort_by_key(|&(thread, _)| thread);
    samples.into_iter().map(|(_, n)| n).collect()
}

/// Two keep-alive connections, each counted by a shared instance of its own (on the
/// shared runtime, one instance counts both: 1, 3, 5 and 2, 4, 6), and a WASI 0.2
/// function served too.
async fn each_connection_is_served_on_its_own_thread(node: &Node) {
    let admin = node.admin();
    let shared = "[scaling]\nreuse = true\nmax_concurrent_per_instance = 16\n";
    admin.deploy_ok("counted", shared, guest("p3")).await;
    admin.deploy_ok("hello", "", guest("hello")).await;

    // Two clients, one connection each, both open at once. HTTP/2, so that every request
    // of a client goes over its one connection: an HTTP/1 client opens another when a
    // request starts before its last connection is back in its pool, and the node deals
    // that connection to a thread of its own choosing.
    let (first, second) = (glint_e2e::h2_client(), glint_e2e::h2_client());
    let url = format!("{}/counted/count", node.data_url);
    let count = |client: &reqwest::Client| {
        let (client, url) = (client.clone(), url.clone());
        async move {
            let resp = client.get(&url).send().await.unwrap();
            assert_eq!(resp.status(), 200);
            served(&resp.text().await.unwrap())
        }
    };
    let mut seen = (Vec::new(), Vec::new());
    for _ in 0..3 {
        seen.0.push(count(&first).await);
        seen.1.push(count(&second).await);
    }
    // Each connection's instance counted only that connection's requests.
    assert_eq!(seen, (vec![1, 2, 3], vec![1, 2, 3]));
    // And over HTTP/1.
    let resp = glint_e2e::http_client()
        .get(format!("{}/hello", node.data_url))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.text().await.unwrap().contains("Hello"));
}

/// A kept WASI 0.3 instance sits idle (holding a pooling slot) until its version lets
/// go of it: an env change starts new instances, and the old idle ones end within
/// seconds, not at their age.
#[tokio::test(flavor = "multi_thread")]
async fn idle_wasi_03_instances_end_when_their_version_changes() {
    let node = Node::start();
    let admin = node.admin();
    let shared = "[scaling]\nreuse = true\nmax_concurrent_per_instance = 4\n";
    admin.deploy_ok("shared", shared, guest("p3")).await;
    assert_eq!(node.call("/shared/hello").await.0, 200);
    let idle = || async {
        let (_, status) = admin.get("/api/v1/node").await;
        status["instances_idle"].as_u64().ok_or(status.to_string())
    };
    wait_until(
        "the instance kept idle",
        Duration::from_secs(10),
        || async {
            match idle().await? {
                0 => Err("0 idle".to_string()),
                n => Ok(n),
            }
        },
    )
    .await;
    let (status, body) = admin
        .send(
            admin
                .request(Method::PUT, "/api/v1/functions/shared/env/MODE")
                .json(&serde_json::json!({ "value": "changed" })),
        )
        .await;
    assert!(status < 300, "{status} {body}");
    wait_until(
        "the old idle instance gone",
        Duration::from_secs(10),
        || async {
            match idle().await? {
                0 => Ok(()),
                n => Err(format!("{n} idle")),
            }
        },
    )
    .await;
    // The function serves on, from a new instance that sees the change.
    assert_eq!(node.call("/shared/env/MODE").await, (200, "changed".into()));
}

/// A small response leaves whole: the node takes the guest's body before it sends the
/// head, so the response has a content-length and goes out in one write, where the
/// guest's own body (written after it returned the response) would come in chunks. A
/// longer one still arrives whole, chunk by chunk.
#[tokio::test(flavor = "multi_thread")]
async fn a_small_response_is_sent_whole_with_its_length() {
    let node = Node::start();
    node.admin().deploy_ok("p3", "", guest("p3")).await;
    let mut whole = 0;
    for _ in 0..20 {
        let resp = node.get("/p3/hello").await;
        assert_eq!(resp.status(), 200);
        let length = resp.headers().get("content-length").cloned();
        let chunked = resp.headers().get("transfer-encoding").is_some();
        assert_eq!(resp.text().await.unwrap(), "hello from WASI 0.3\n");
        if length.is_some_and(|l| l == "20") && !chunked {
            whole += 1;
        }
    }
    // Gathering waits two turns of the scheduler at most, so how many go whole depends
    // on how the guest's instance and the connection share the cores (7 to 20 of 20 in
    // the debug build here); without it none would, as the guest's body has no length.
    assert!(whole >= 1, "none of 20 responses was sent whole");
    let (status, body) = node.call("/p3/stream?chunks=2000").await;
    assert_eq!(status, 200);
    assert_eq!(body.lines().count(), 2000);
    assert_eq!(body.lines().last(), Some("chunk 1999"));
}

/// A call to the node's data plane that owns what it needs, for a task of its own:
/// its status and body.
fn call_owned(node: &Node, path: &str) -> impl Future<Output = (u16, String)> + 'static {
    let (client, url) = (glint_e2e::http_client(), format!("{}{path}", node.data_url));
    async move {
        let resp = client.get(url).send().await.unwrap();
        (
            resp.status().as_u16(),
            resp.text().await.unwrap_or_default(),
        )
    }
}

/// N from "request N of this instance".
fn served(body: &str) -> u32 {
    body.split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("not a count: {body}"))
}

/// Whether a short request to `function` ran in the instance where a long one waits:
/// the long one waits 3 s, and short ones are sent one after another meanwhile (an
/// instance busy starting the long one is not offered more until the guest waits).
/// All go over one HTTP/2 connection, so that with `--data-plane-threads` they are
/// served on one thread, by that thread's instances.
async fn overlaps(node: &Node, function: &str) -> bool {
    let client = glint_e2e::h2_client();
    let call = |path: String| {
        let request = client.get(format!("{}{path}", node.data_url));
        async move {
            let resp = request.send().await.unwrap();
            (resp.status().as_u16(), resp.text().await.unwrap())
        }
    };
    let long = call(format!("/{function}/wait?ms=3000"));
    let probe = async {
        let until = std::time::Instant::now() + std::time::Duration::from_millis(2000);
        while std::time::Instant::now() < until {
            let (status, body) = call(format!("/{function}/wait?ms=0")).await;
            assert_eq!(status, 200, "{body}");
            if body.trim() != "peak 1" {
                return true;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        false
    };
    let ((status, body), joined) = tokio::join!(long, probe);
    assert_eq!(status, 200, "{body}");
    joined
}
