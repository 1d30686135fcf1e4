//! A write that finished before a command started is always seen by it, under any load
//! (issue 16). Patroni's `GET /config` answers from the cluster view cached at its last HA
//! loop, so a saved plan checked against it could be applied after `patronictl edit-config`,
//! and a plan made right after such an edit could say "no changes". pgdba reads the DCS itself,
//! linearizably; these tests write etcd directly and run pgdba at once, many times, with the
//! CPU kept busy beside them.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use base64::Engine as _;
use serde_json::{Value, json};

use crate::support::{TestCluster, dcs_config, put_dcs_config};

const ROUNDS: usize = 50;

/// Busy threads, one per core, until dropped: the load under which the race showed.
struct CpuLoad {
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl CpuLoad {
    fn start() -> CpuLoad {
        let stop = Arc::new(AtomicBool::new(false));
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let threads = (0..cores)
            .map(|_| {
                let stop = stop.clone();
                std::thread::spawn(move || {
                    let mut x = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        x = std::hint::black_box(
                            x.wrapping_mul(6364136223846793005).wrapping_add(1),
                        );
                    }
                })
            })
            .collect();
        CpuLoad { stop, threads }
    }
}

impl Drop for CpuLoad {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// Set `postgresql.parameters.work_mem` in the DCS config key, directly in etcd.
fn write_work_mem(t: &TestCluster, value: &str) {
    let (mut config, _) = dcs_config(t);
    config["postgresql"]["parameters"]["work_mem"] = json!(value);
    put_dcs_config(t, &config);
}

fn change<'a>(plan: &'a Value, address: &str) -> Option<&'a Value> {
    plan["data"]["clusters"][0]["changes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["address"] == address)
}

#[test]
fn a_dcs_write_before_the_command_is_always_seen() {
    let t = TestCluster::new("stale", 31800);
    let params = |work_mem| [("max_connections", "100"), ("work_mem", work_mem)];
    t.write_spec(1, &params("4MB"));
    t.apply();

    // The reviewed plan: work_mem 4MB -> 8MB.
    t.write_spec(1, &params("8MB"));
    let saved = t.dir.path().join("reviewed.plan");
    let saved = saved.to_str().unwrap();
    let r = t.run(&[
        "plan",
        "-f",
        t.spec_str(),
        "--out",
        saved,
        "--format",
        "json",
    ]);
    assert_eq!(r.code, 0, "{r:?}");

    let load = CpuLoad::start();
    for round in 0..ROUNDS {
        // Item 2: a plan started right after the write shows the written value.
        let value = format!("{}MB", 16 + 2 * round);
        write_work_mem(&t, &value);
        let (code, plan) = t.plan_json();
        assert_eq!(code, 2, "round {round}: {plan:#}");
        let c = change(&plan, "pg_parameter.work_mem")
            .unwrap_or_else(|| panic!("round {round}: no work_mem change in {plan:#}"));
        assert_eq!(c["before"], json!(value), "round {round}: {c:#}");

        // Item 1: the saved plan, applied right after another write, is refused.
        let value = format!("{}MB", 17 + 2 * round);
        write_work_mem(&t, &value);
        let r = t.run(&["apply", saved, "--format", "json"]);
        assert_eq!(
            r.code, 1,
            "round {round}: the stale plan was applied: {r:?}"
        );
        let err = &r.json()["error"];
        assert_eq!(err["code"], "STALE_PLAN", "round {round}: {r:?}");
        assert!(
            err["message"]
                .as_str()
                .unwrap()
                .contains("pg_parameter.work_mem"),
            "round {round}: {err}"
        );
    }
    drop(load);

    // Issue 8, item 16: the doors other local users could use are closed. Patroni's REST API
    // refuses an unauthenticated change, and etcd an unauthenticated write.
    let patch = std::process::Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", "PATCH"])
        .arg(format!("http://127.0.0.1:{}/config", t.api_port))
        .args(["-d", r#"{"ttl": 31}"#])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&patch.stdout), "401", "{patch:?}");
    let key = base64::engine::general_purpose::STANDARD.encode(b"/service/stale/config");
    let put = crate::support::etcd_as(
        &t,
        "kv/put",
        &json!({ "key": key, "value": base64::engine::general_purpose::STANDARD.encode(b"{}") }),
        None,
    );
    assert!(
        put["error"]
            .as_str()
            .is_some_and(|e| e.contains("user name is empty")),
        "{put}"
    );
    // Reading is refused too: Patroni's keys (and the configuration) are etcd's root's.
    let range = crate::support::etcd_as(&t, "kv/range", &json!({ "key": key }), None);
    assert!(range["error"].is_string(), "{range}");

    // The spec wins again on a fresh apply, and the cluster converges.
    t.apply();
    assert_eq!(t.plan_json().0, 0);
    for (name, port) in t.members() {
        assert_eq!(t.psql(&name, port, "SHOW work_mem"), "8MB", "{name}");
    }
}
