//! Roles, databases, extensions and HBA rules as resources of a real cluster: created,
//! visible on every member with psql, restored after changes made by hand, forgotten or
//! dropped when they leave the spec, and their secrets never written anywhere.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Command;

use serde_json::Value;

use crate::support::{TestCluster, all_files};

const PARAMS: &[(&str, &str)] = &[("max_connections", "100"), ("work_mem", "4MB")];
/// Passwords of the test's roles: one from the environment, one from a file.
const APP_SECRET: &str = "app-Secret-4f9c2e71d0";
const REPORTS_SECRET: &str = "reports-Secret-8b3a55e6f2";

fn resources(extra_role: &str, extra_db: &str, prune: &str) -> String {
    format!(
        "  roles:\n\
         \x20   - {{name: readers}}\n\
         \x20   - {{name: app, login: true, in_roles: [readers], connection_limit: 20, password: {{env: PGDBA_TEST_APP_PASSWORD}}}}\n\
         \x20   - {{name: reports, login: true, valid_until: '2031-01-01', password: {{file: reports.secret}}}}\n\
         {extra_role}\
         \x20 databases:\n\
         \x20   - name: appdb\n\
         \x20     owner: app\n\
         \x20     extensions: [{{name: citext}}, {{name: pgcrypto, schema: public}}]\n\
         {extra_db}\
         \x20 hba:\n\
         \x20   - {{type: local, database: all, user: all, method: scram-sha-256}}\n\
         \x20   - {{type: host, database: appdb, user: app, address: 127.0.0.1/32, method: scram-sha-256}}\n\
         \x20   - {{type: host, database: all, user: reports, address: 127.0.0.1/32, method: scram-sha-256}}\n\
         {prune}"
    )
}

fn changes(plan: &Value) -> Vec<String> {
    plan["data"]["clusters"][0]["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["address"].as_str().unwrap().to_owned())
        .collect()
}

/// Log in over TCP as `user` with `password`; the answer of `SELECT current_user`.
fn login(port: u16, user: &str, db: &str, password: &str) -> Result<String, String> {
    let out = Command::new("psql")
        .args([
            "-X",
            "-A",
            "-t",
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-U",
            user,
            "-d",
            db,
            "-c",
            "SELECT current_user",
        ])
        .env("PGPASSWORD", password)
        .env("PGCONNECT_TIMEOUT", "5")
        .output()
        .unwrap();
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

#[test]
fn roles_databases_extensions_and_hba_on_a_real_cluster() {
    let t = TestCluster::new("res", 31500);
    t.envs
        .borrow_mut()
        .push(("PGDBA_TEST_APP_PASSWORD".to_owned(), APP_SECRET.to_owned()));
    std::fs::write(
        t.dir.path().join("reports.secret"),
        format!("{REPORTS_SECRET}\n"),
    )
    .unwrap();
    t.write_spec_with(1, PARAMS, &resources("", "", ""));
    let r = t.apply();
    assert_eq!(r.json()["success"], true);

    // Visible with psql on every member, as \du, \l, \dx and pg_hba_file_rules show them.
    for (name, port) in t.members() {
        assert_eq!(
            t.psql(&name, port, "SELECT rolname, rolcanlogin, rolconnlimit FROM pg_roles WHERE rolname IN ('readers','app','reports') ORDER BY 1"),
            "app|t|20\nreaders|f|-1\nreports|t|-1",
            "{name}"
        );
        assert_eq!(
            t.psql(
                &name,
                port,
                "SELECT pg_has_role('app', 'readers', 'MEMBER')"
            ),
            "t"
        );
        assert_eq!(
            t.psql(&name, port, "SELECT rolvaliduntil = '2031-01-01 00:00:00+00' FROM pg_roles WHERE rolname = 'reports'"),
            "t"
        );
        assert_eq!(
            t.psql(&name, port, "SELECT pg_get_userbyid(datdba), pg_encoding_to_char(encoding) FROM pg_database WHERE datname = 'appdb'"),
            "app|UTF8"
        );
        let hba = t.psql(&name, port, "SELECT type || ' ' || array_to_string(database, ',') || ' ' || array_to_string(user_name, ',') || ' ' || auth_method FROM pg_hba_file_rules ORDER BY line_number");
        assert!(
            hba.ends_with("host appdb app scram-sha-256\nhost all reports scram-sha-256"),
            "{name}: {hba}"
        );
        assert_eq!(
            t.psql(
                &name,
                port,
                "SELECT count(*) FROM pg_hba_file_rules WHERE error IS NOT NULL"
            ),
            "0"
        );
    }
    let (leader, leader_port) = t.members()[0].clone();
    let dx = Command::new("runuser")
        .args(["-u", "postgres", "--", "psql", "-X", "-A", "-t", "-h"])
        .arg(t.socket_dir(&leader))
        .args([
            "-p",
            &leader_port.to_string(),
            "-d",
            "appdb",
            "-c",
            "SELECT extname, extnamespace::regnamespace FROM pg_extension ORDER BY 1",
        ])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&dx.stdout).trim(),
        "citext|public\npgcrypto|public\nplpgsql|pg_catalog"
    );
    // The secrets are the roles' passwords.
    for (_, port) in t.members() {
        assert_eq!(login(port, "app", "appdb", APP_SECRET).unwrap(), "app");
        assert_eq!(
            login(port, "reports", "postgres", REPORTS_SECRET).unwrap(),
            "reports"
        );
        assert!(login(port, "app", "appdb", "wrong").is_err());
    }
    assert_eq!(t.plan_json().0, 0, "converged");

    // Changes made by hand: plan shows each, apply restores them.
    t.psql(&leader, leader_port, "ALTER ROLE app SUPERUSER");
    t.psql(
        &leader,
        leader_port,
        "ALTER ROLE reports PASSWORD 'changed-by-hand'",
    );
    let out = Command::new("runuser")
        .args(["-u", "postgres", "--", "psql", "-X", "-h"])
        .arg(t.socket_dir(&leader))
        .args([
            "-p",
            &leader_port.to_string(),
            "-d",
            "appdb",
            "-c",
            "DROP EXTENSION citext",
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    let (code, plan) = t.plan_json();
    assert_eq!(code, 2);
    assert_eq!(
        changes(&plan),
        vec!["role.app", "role.reports", "extension.appdb.citext"],
        "{plan:#}"
    );
    let reports = &plan["data"]["clusters"][0]["changes"][1];
    assert!(
        reports["reason"]
            .as_str()
            .unwrap()
            .starts_with("the stored password does not match the one in "),
        "{reports}"
    );
    assert!(
        reports["reason"]
            .as_str()
            .unwrap()
            .ends_with("(sensitive value changed)")
    );
    assert_eq!(reports["after"]["password"], "(sensitive)");
    let r = t.run(&[
        "apply",
        "-f",
        t.spec_str(),
        "--auto-approve",
        "-vv",
        "--format",
        "table",
    ]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.stderr.contains("alter_role:reports"),
        "-vv logs each action: {}",
        r.stderr
    );
    assert_eq!(
        t.psql(
            &leader,
            leader_port,
            "SELECT rolsuper FROM pg_roles WHERE rolname = 'app'"
        ),
        "f"
    );
    assert_eq!(
        login(leader_port, "reports", "postgres", REPORTS_SECRET).unwrap(),
        "reports"
    );
    assert_eq!(t.plan_json().0, 0);

    // A role and a database that leave the spec: forgotten, not dropped, without prune.
    t.write_spec_with(
        1,
        PARAMS,
        &resources("    - {name: temp}\n", "    - {name: scratch}\n", ""),
    );
    t.apply();
    assert_eq!(
        t.psql(
            &leader,
            leader_port,
            "SELECT count(*) FROM pg_database WHERE datname = 'scratch'"
        ),
        "1"
    );
    t.write_spec_with(1, PARAMS, &resources("", "", ""));
    let (code, plan) = t.plan_json();
    assert_eq!(code, 2);
    assert!(changes(&plan).is_empty(), "{plan:#}");
    assert_eq!(
        plan["data"]["clusters"][0]["forgotten"],
        serde_json::json!(["role.temp", "database.scratch"])
    );
    t.apply();
    assert_eq!(
        t.psql(
            &leader,
            leader_port,
            "SELECT count(*) FROM pg_roles WHERE rolname = 'temp'"
        ),
        "1",
        "not dropped"
    );
    assert_eq!(t.plan_json().0, 0, "forgotten: no longer managed");

    // With prune, they are dropped; the database only with --allow-data-loss.
    t.write_spec_with(
        1,
        PARAMS,
        &resources("    - {name: temp}\n", "    - {name: scratch}\n", ""),
    );
    t.apply();
    t.write_spec_with(
        1,
        PARAMS,
        &resources("", "", "  prune: {roles: true, databases: true}\n"),
    );
    let (code, plan) = t.plan_json();
    assert_eq!(code, 2);
    assert_eq!(changes(&plan), vec!["role.temp", "database.scratch"]);
    let loss = plan["data"]["clusters"][0]["changes"][1]["data_loss"]
        .as_str()
        .unwrap();
    assert!(
        loss.starts_with("database scratch and everything in it"),
        "{loss}"
    );
    let r = t.run(&[
        "apply",
        "-f",
        t.spec_str(),
        "--auto-approve",
        "--format",
        "json",
    ]);
    assert_eq!(r.code, 1);
    assert_eq!(r.json()["error"]["code"], "DATA_LOSS");
    assert_eq!(
        t.psql(
            &leader,
            leader_port,
            "SELECT count(*) FROM pg_database WHERE datname = 'scratch'"
        ),
        "1",
        "nothing was done"
    );
    let r = t.run(&[
        "apply",
        "-f",
        t.spec_str(),
        "--auto-approve",
        "--allow-data-loss",
        "-vv",
        "--format",
        "json",
    ]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(
        t.psql(
            &leader,
            leader_port,
            "SELECT count(*) FROM pg_database WHERE datname = 'scratch'"
        ),
        "0"
    );
    assert_eq!(
        t.psql(
            &leader,
            leader_port,
            "SELECT count(*) FROM pg_roles WHERE rolname = 'temp'"
        ),
        "0"
    );
    assert_eq!(t.plan_json().0, 0);

    // Issue 17: an extension that leaves the spec is protected like a database: forgotten
    // without prune; with prune, a data loss when columns use its types.
    let psql_appdb = |sql: &str| {
        let out = Command::new("runuser")
            .args(["-u", "postgres", "--", "psql", "-X", "-A", "-t", "-h"])
            .arg(t.socket_dir(&leader))
            .args(["-p", &leader_port.to_string(), "-d", "appdb", "-c", sql])
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    };
    psql_appdb("CREATE TABLE emails (address citext)");
    let without_citext = resources("", "", "").replace("{name: citext}, ", "");
    t.write_spec_with(1, PARAMS, &without_citext);
    let (code, plan) = t.plan_json();
    assert_eq!(code, 2);
    assert!(changes(&plan).is_empty(), "{plan:#}");
    assert_eq!(
        plan["data"]["clusters"][0]["forgotten"],
        serde_json::json!(["extension.appdb.citext"])
    );
    let pruned = resources("", "", "  prune: {extensions: true}\n").replace("{name: citext}, ", "");
    t.write_spec_with(1, PARAMS, &pruned);
    let (code, plan) = t.plan_json();
    assert_eq!(code, 2);
    assert_eq!(changes(&plan), vec!["extension.appdb.citext"]);
    let loss = plan["data"]["clusters"][0]["changes"][0]["data_loss"]
        .as_str()
        .unwrap();
    assert!(loss.contains("1 table column of its types"), "{loss}");
    let r = t.run(&[
        "apply",
        "-f",
        t.spec_str(),
        "--auto-approve",
        "--format",
        "json",
    ]);
    assert_eq!(r.json()["error"]["code"], "DATA_LOSS", "{r:?}");
    let r = t.run(&[
        "apply",
        "-f",
        t.spec_str(),
        "--auto-approve",
        "--allow-data-loss",
        "--format",
        "json",
    ]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(
        psql_appdb("SELECT count(*) FROM pg_extension WHERE extname = 'citext'"),
        "0"
    );
    assert_eq!(
        psql_appdb(
            "SELECT count(*) FROM pg_attribute WHERE attrelid = 'emails'::regclass AND attnum > 0 AND NOT attisdropped"
        ),
        "0",
        "the citext column went with the extension"
    );
    assert_eq!(t.plan_json().0, 0);

    // A role that owns objects: the plan says DROP ROLE will fail, and why, before apply.
    t.write_spec_with(
        1,
        PARAMS,
        &resources("    - {name: temp}\n", "", "").replace("{name: citext}, ", ""),
    );
    t.apply();
    t.psql(&leader, leader_port, "CREATE TABLE owned_by_temp (id int)");
    t.psql(
        &leader,
        leader_port,
        "ALTER TABLE owned_by_temp OWNER TO temp",
    );
    t.write_spec_with(
        1,
        PARAMS,
        &resources("", "", "  prune: {roles: true}\n").replace("{name: citext}, ", ""),
    );
    let (code, plan) = t.plan_json();
    assert_eq!(code, 2);
    let temp = &plan["data"]["clusters"][0]["changes"][0];
    assert_eq!(temp["address"], "role.temp", "{plan:#}");
    let warning = temp["warning"].as_str().unwrap();
    assert!(
        warning.contains("DROP ROLE temp will fail: it owns 1 object"),
        "{warning}"
    );
    t.psql(&leader, leader_port, "DROP TABLE owned_by_temp");
    let (_, plan) = t.plan_json();
    assert!(
        plan["data"]["clusters"][0]["changes"][0]["warning"].is_null(),
        "{plan:#}"
    );
    t.apply();
    assert_eq!(t.plan_json().0, 0);

    // The password checks that matched are remembered (0600, HMACs only), so later plans do
    // not pay 4096 PBKDF2 rounds per role again.
    let memo = t.state_dir.join("res.scram-memo.json");
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&memo).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600);
    let entries: Value = serde_json::from_slice(&std::fs::read(&memo).unwrap()).unwrap();
    assert!(
        !entries["matched"].as_array().unwrap().is_empty(),
        "{entries}"
    );

    // No secret in any file under the state dir or beside it, any saved plan, any output.
    let saved = t.dir.path().join("res.plan");
    let r = t.run(&[
        "plan",
        "-f",
        t.spec_str(),
        "--out",
        saved.to_str().unwrap(),
        "-vv",
        "--format",
        "table",
    ]);
    assert_eq!(r.code, 0);
    let r = t.run(&["plan", "-f", t.spec_str(), "-vv", "--format", "json"]);
    assert_eq!(r.code, 0);
    let r = t.run(&["state", "show", "res", "-vv", "--format", "yaml"]);
    assert_eq!(r.code, 0);
    let transcript = t.transcript.borrow().clone();
    for secret in [APP_SECRET, REPORTS_SECRET] {
        assert!(
            !transcript.contains(secret),
            "a role's secret appears in pgdba's output"
        );
        for f in all_files(&t.state_dir).into_iter().chain([saved.clone()]) {
            let bytes = std::fs::read(&f).unwrap();
            assert!(
                !String::from_utf8_lossy(&bytes).contains(secret),
                "a role's secret appears in {}",
                f.display()
            );
        }
        for f in all_files(&t.data_dir()) {
            let name = f.display().to_string();
            if crate::support::is_pg_binary(&f) {
                continue;
            }
            let bytes = std::fs::read(&f).unwrap_or_default();
            assert!(
                !String::from_utf8_lossy(&bytes).contains(secret),
                "a role's secret appears in {name}"
            );
        }
    }
}
