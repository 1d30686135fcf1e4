//! `chaos drill failover` on a real local cluster in synchronous mode: the leader killed
//! (Patroni and PostgreSQL at once) under pgdba's writer, no acknowledged commit lost, the
//! outage measured within what Patroni's timings allow, the old leader streaming again and the
//! spec planning clean; a switchover drill losing nothing; `chaos kill-node` leaving a member down until apply starts it; `chaos
//! freeze` silencing a member until `chaos thaw`; `chaos partition` refused (one loopback
//! cannot be cut); `chaos corrupt` of a replica and of the leader, detected and repaired; `chaos report` of them all; refused without the flag and on `env: production`, with nothing done.
//! Ports 31200-31299.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use serde_json::Value;

use crate::support::{TestCluster, wait_for};

const PARAMS: &[(&str, &str)] = &[("max_connections", "100")];

fn leader(t: &TestCluster) -> String {
    t.patronictl_list()
        .iter()
        .find(|m| m["Role"] == "Leader")
        .map(|m| m["Member"].as_str().unwrap().to_owned())
        .unwrap()
}

#[test]
fn a_failover_drill_in_synchronous_mode_loses_nothing_and_the_old_leader_streams_again() {
    let t = TestCluster::new("drill", 31200);
    t.write_spec(2, PARAMS);
    let text = std::fs::read_to_string(&t.spec).unwrap();
    let timing = "patroni: {ttl: 30, loop_wait: 10, retry_timeout: 10}";
    assert!(text.contains(timing), "{text}");
    std::fs::write(
        &t.spec,
        text.replace(
            timing,
            "patroni: {ttl: 20, loop_wait: 2, retry_timeout: 5, synchronous_mode: true}",
        ),
    )
    .unwrap();
    t.apply();
    wait_for("a sync standby", Duration::from_secs(60), || {
        t.patronictl_list()
            .iter()
            .any(|m| m["Role"] == "Sync Standby" && m["State"] == "streaming")
            .then_some(())
    });
    let before = leader(&t);

    // Without the flag: refused, nothing done.
    let r = t.run(&[
        "chaos",
        "drill",
        "failover",
        "-f",
        t.spec_str(),
        "--format",
        "json",
    ]);
    assert_eq!(r.code, 1, "{r:?}");
    assert_eq!(r.json()["error"]["code"], "USAGE", "{r:?}");
    assert!(
        r.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("--i-know-what-i-am-doing")
    );
    assert_eq!(leader(&t), before);

    // The drill.
    let r = t.run(&[
        "chaos",
        "drill",
        "failover",
        "-f",
        t.spec_str(),
        "--i-know-what-i-am-doing",
        "--format",
        "json",
    ]);
    assert_eq!(r.code, 0, "chaos drill failover: {r:?}");
    let d = r.json()["data"].clone();
    assert_eq!(d["old_leader"], before.as_str(), "{d:#}");
    // No pooler in this spec: one writer, over the members.
    assert!(d["via_pooler"].is_null(), "{d:#}");
    let new = d["new_leader"].as_str().unwrap().to_owned();
    assert_ne!(new, before, "{d:#}");
    assert_eq!(d["rpo_transactions"], 0, "{d:#}");
    assert!(d["commits"].as_u64().unwrap() > 50, "{d:#}");
    let rto = d["rto_ms"].as_u64().unwrap();
    let bound = d["settings"]["expected_max_failover_ms"].as_u64().unwrap();
    assert_eq!(bound, 22_000, "{d:#}");
    // Under the 30 s, and within Patroni's window plus a loop for the new sync standby.
    assert!(rto > 0 && rto < 30_000, "RTO {rto} ms: {d:#}");
    assert!(d["timeline"].as_u64().unwrap() >= 2, "{d:#}");
    assert!(
        d["rejoined_via"] == "pg_rewind" || d["rejoined_via"] == "reinit",
        "{d:#}"
    );
    assert!(d["rejoin_ms"].as_u64().is_some(), "{d:#}");

    // As a DBA sees it: three members, the old leader streaming from the new one.
    let list = t.patronictl_list();
    assert_eq!(list.len(), 3, "{list:?}");
    assert!(
        list.iter()
            .any(|m| m["Member"] == before.as_str() && m["State"] == "streaming"),
        "{list:?}"
    );
    assert_eq!(leader(&t), new);
    let (code, plan) = t.plan_json();
    assert_eq!(code, 0, "not converged after the drill: {plan:#}");
    let history = std::fs::read_to_string(t.state_dir.join("drill.history.json")).unwrap();
    assert!(history.contains("chaos drill failover"), "{history}");
    // The drill's table is gone.
    let tables = t.psql(
        &new,
        t.members().into_iter().find(|(n, _)| *n == new).unwrap().1,
        "SELECT count(*) FROM pg_tables WHERE tablename LIKE 'pgdba_drill_%'",
    );
    assert_eq!(tables, "0");

    // The planned case: a switchover under the writer loses nothing either.
    let r = t.run(&[
        "chaos",
        "drill",
        "switchover",
        "-f",
        t.spec_str(),
        "--i-know-what-i-am-doing",
        "--format",
        "json",
    ]);
    assert_eq!(r.code, 0, "chaos drill switchover: {r:?}");
    let d = r.json()["data"].clone();
    assert_eq!(d["old_leader"], new.as_str(), "{d:#}");
    assert_eq!(d["rpo_transactions"], 0, "{d:#}");
    assert!(d["write_unavailable_ms"].as_u64().is_some(), "{d:#}");
    assert!(d["rejoin_ms"].as_u64().is_some(), "{d:#}");
    let new = d["new_leader"].as_str().unwrap().to_owned();
    assert_eq!(leader(&t), new);
    let list = t.patronictl_list();

    // kill-node: a replica killed stays down; drift reports it, apply starts it again.
    let victim = list
        .iter()
        .map(|m| m["Member"].as_str().unwrap().to_owned())
        .find(|m| *m != new)
        .unwrap();
    let r = t.run(&[
        "chaos",
        "kill-node",
        "-f",
        t.spec_str(),
        "--member",
        &victim,
        "--i-know-what-i-am-doing",
        "--format",
        "json",
    ]);
    assert_eq!(r.code, 0, "chaos kill-node: {r:?}");
    assert_eq!(r.json()["data"]["member"], victim.as_str());
    let (code, plan) = t.plan_json();
    assert_eq!(
        code, 2,
        "the killed member is not planned to start: {plan:#}"
    );
    let r = t.run(&["drift", "-f", t.spec_str(), "--format", "json"]);
    assert_eq!(r.code, 2, "{r:?}");
    t.apply();
    wait_for(
        "the killed member streaming again",
        Duration::from_secs(90),
        || {
            t.patronictl_list()
                .iter()
                .any(|m| m["Member"] == victim.as_str() && m["State"] == "streaming")
                .then_some(())
        },
    );
    let (code, plan) = t.plan_json();
    assert_eq!(code, 0, "{plan:#}");

    // freeze: the member's processes stopped where they are (its REST API silent); thaw
    // resumes it, and it streams again.
    let index: u16 = victim.rsplit('-').next().unwrap().parse().unwrap();
    let api = format!("http://127.0.0.1:{}/patroni", t.api_port + index);
    let answers = || {
        std::process::Command::new("curl")
            .args(["-s", "-m", "2", "-o", "/dev/null", &api])
            .status()
            .unwrap()
            .success()
    };
    assert!(answers());
    let r = t.run(&[
        "chaos",
        "freeze",
        "-f",
        t.spec_str(),
        "--member",
        &victim,
        "--i-know-what-i-am-doing",
        "--format",
        "json",
    ]);
    assert_eq!(r.code, 0, "chaos freeze: {r:?}");
    assert!(!answers(), "a frozen member's Patroni answered");
    let r = t.run(&[
        "chaos",
        "thaw",
        "-f",
        t.spec_str(),
        "--member",
        &victim,
        "--format",
        "json",
    ]);
    assert_eq!(r.code, 0, "chaos thaw: {r:?}");
    wait_for(
        "the thawed member streaming",
        Duration::from_secs(60),
        || {
            (answers()
                && t.patronictl_list()
                    .iter()
                    .any(|m| m["Member"] == victim.as_str() && m["State"] == "streaming"))
            .then_some(())
        },
    );

    // A partition needs members with networks of their own: refused on the local provider,
    // which points at freeze; nothing done, nothing recorded.
    for args in [
        vec!["chaos", "partition", "--isolate", victim.as_str()],
        vec!["chaos", "drill", "partition"],
    ] {
        let mut args = args.clone();
        args.extend([
            "-f",
            t.spec_str(),
            "--i-know-what-i-am-doing",
            "--format",
            "json",
        ]);
        let r = t.run(&args);
        assert_eq!(r.code, 1, "{args:?}: {r:?}");
        let e = &r.json()["error"];
        assert_eq!(e["code"], "UNSUPPORTED", "{r:?}");
        assert!(
            e["message"].as_str().unwrap().contains("local provider"),
            "{r:?}"
        );
        assert!(
            e["hint"].as_str().unwrap().contains("chaos freeze"),
            "{r:?}"
        );
    }
    assert_eq!(leader(&t), new);

    // corrupt: a page of a table damaged on a replica while it is down; the read fails, the
    // checksum failure is counted, and the replica is cloned again. Then on the leader (with
    // --leader): the lead handed over first. `health check` is clean afterwards.
    let port_of = |m: &str| t.members().into_iter().find(|(n, _)| n == m).unwrap().1;
    t.psql(
        &new,
        port_of(&new),
        "CREATE TABLE victim AS SELECT g AS id, md5(g::text) AS v FROM generate_series(1, 2000) g",
    );
    let corrupt = |member: &str, extra: &[&str]| {
        let mut args = vec![
            "chaos",
            "corrupt",
            "--table",
            "victim",
            "--member",
            member,
            "-f",
            t.spec_str(),
            "--i-know-what-i-am-doing",
            "--format",
            "json",
        ];
        args.extend(extra);
        t.run(&args)
    };
    let r = corrupt(&new, &[]);
    assert_eq!(r.code, 1, "{r:?}");
    assert_eq!(r.json()["error"]["code"], "PRECHECK_FAILED", "{r:?}");
    assert_eq!(leader(&t), new);
    for (member, extra) in [
        (victim.as_str(), &[][..]),
        (new.as_str(), &["--leader"][..]),
    ] {
        let r = corrupt(member, extra);
        assert_eq!(r.code, 0, "chaos corrupt {member} {extra:?}: {r:?}");
        let d = r.json()["data"].clone();
        assert_eq!(d["detected"]["found"], true, "{d:#}");
        assert!(
            d["detected"]["read_error"]
                .as_str()
                .unwrap()
                .contains("invalid page in block 0"),
            "{d:#}"
        );
        assert!(
            d["detected"]["checksum_failures_after"].as_u64().unwrap()
                > d["detected"]["checksum_failures_before"].as_u64().unwrap(),
            "{d:#}"
        );
        assert_eq!(d["repair"]["repaired"], true, "{d:#}");
        assert_eq!(d["repair"]["rows_member"], "2000", "{d:#}");
        assert_eq!(
            t.psql(member, port_of(member), "SELECT count(*) FROM victim"),
            "2000"
        );
    }
    let new = leader(&t);
    let r = t.run(&["health", "check", "-f", t.spec_str(), "--format", "json"]);
    assert_ne!(r.code, 2, "{r:?}");
    let checksums: Vec<Value> = r.json()["data"]["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["name"] == "checksums")
        .cloned()
        .collect();
    assert_eq!(checksums.len(), 3, "{checksums:#?}");
    assert!(
        checksums
            .iter()
            .all(|c| c["status"] == "ok" && c["value"]["enabled"] == true),
        "{checksums:#?}"
    );

    // The report: every run, with its figures; markdown for a post-mortem.
    let r = t.run(&["chaos", "report", "-f", t.spec_str(), "--format", "json"]);
    assert_eq!(r.code, 0, "{r:?}");
    let runs = r.json()["data"]["runs"].as_array().unwrap().clone();
    let commands: Vec<&str> = runs
        .iter()
        .map(|h| h["command"].as_str().unwrap())
        .collect();
    assert_eq!(
        commands,
        [
            "chaos drill failover",
            "chaos drill switchover",
            "chaos kill-node",
            "chaos freeze",
            "chaos thaw",
            "chaos corrupt",
            "chaos corrupt"
        ],
        "{runs:?}"
    );
    assert_eq!(runs[0]["details"]["rpo_transactions"], 0);
    let r = t.run(&[
        "chaos",
        "report",
        "-f",
        t.spec_str(),
        "--format",
        "markdown",
    ]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.stdout.starts_with("# Chaos report: cluster drill"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains("| drill failover | ok | "),
        "{}",
        r.stdout
    );

    // env: production: refused whatever the flags, nothing done.
    let text = std::fs::read_to_string(&t.spec).unwrap();
    std::fs::write(&t.spec, text.replace("env: test", "env: production")).unwrap();
    let r = t.run(&[
        "chaos",
        "drill",
        "failover",
        "-f",
        t.spec_str(),
        "--i-know-what-i-am-doing",
        "--format",
        "json",
    ]);
    assert_eq!(r.code, 1, "{r:?}");
    assert_eq!(r.json()["error"]["code"], "PROTECTED", "{r:?}");
    assert_eq!(leader(&t), new);
}
