//! The state store against a real filesystem and real processes: each test in its own temp dir.
//!
//! The lock tests start copies of this test binary (`child_process_helper`) so that the lock is
//! contended by two real processes, not two threads.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use pgdba::state::{
    ClusterState, DcsState, LockInfo, STATE_VERSION, StateError, StateStore, spec_hash,
};

// ---------------------------------------------------------------------------------------------
// helpers

fn store() -> (tempfile::TempDir, StateStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = StateStore::new(dir.path().join("state"));
    (dir, store)
}

fn sample_state(cluster: &str) -> ClusterState {
    let mut state = ClusterState::new(cluster, "local");
    state.spec_hash = Some(spec_hash(b"apiVersion: pgdba/v1"));
    state.data_dir = Some(format!("/var/lib/pgdba/{cluster}"));
    state.dcs = DcsState {
        endpoints: vec!["http://127.0.0.1:12379".into()],
        created: true,
    };
    state.members = (0..3u16)
        .map(|i| pgdba::state::Member {
            name: format!("{cluster}-{i}"),
            host: "127.0.0.1".into(),
            port: 15432 + i,
            api_url: format!("http://127.0.0.1:{}", 18008 + i),
            data_dir: format!("/var/lib/pgdba/{cluster}/{cluster}-{i}/data"),
            socket_dir: format!("/var/lib/pgdba/{cluster}/{cluster}-{i}/run"),
        })
        .collect();
    state.managed_parameters = BTreeSet::from(["max_connections".into(), "work_mem".into()]);
    state
}

/// File names in `dir`, sorted.
fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Waits for a condition, polling; never a fixed sleep.
fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn write_lock(store: &StateStore, cluster: &str, info: &LockInfo) {
    let path = store.lock_path(cluster).unwrap();
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, serde_json::to_vec_pretty(info).unwrap()).unwrap();
}

/// A lock as this process would write it, with another pid or host.
fn lock_info_like_ours(store: &StateStore, cluster: &str) -> LockInfo {
    let guard = store.lock(cluster, "probe").unwrap();
    let info = guard.info().clone();
    assert!(guard.release().unwrap());
    info
}

// ---------------------------------------------------------------------------------------------
// child processes

const CHILD_ENV: &str = "PGDBA_STATE_TEST_CHILD";
const CHILD_STATE_DIR: &str = "PGDBA_STATE_TEST_STATE_DIR";
const CHILD_SIGNAL_DIR: &str = "PGDBA_STATE_TEST_SIGNAL_DIR";
const CHILD_CLUSTER: &str = "demo";

/// Not a test of its own: when started by `spawn_lock_child`, tries to take the lock of `demo`,
/// reports `<id>.won` or `<id>.lost` in the signal dir, and if it won holds the lock until the
/// file `release` appears. Without the environment variable it does nothing.
#[test]
fn child_process_helper() {
    let Ok(id) = std::env::var(CHILD_ENV) else {
        return;
    };
    let store = StateStore::new(std::env::var(CHILD_STATE_DIR).unwrap());
    let signals = PathBuf::from(std::env::var(CHILD_SIGNAL_DIR).unwrap());
    match store.lock(CHILD_CLUSTER, "apply") {
        Ok(guard) => {
            fs::write(signals.join(format!("{id}.won")), b"").unwrap();
            wait_for("the release signal", || signals.join("release").exists());
            drop(guard);
        }
        Err(StateError::Locked { .. }) => {
            fs::write(signals.join(format!("{id}.lost")), b"").unwrap();
        }
        Err(e) => panic!("child {id}: unexpected error: {e}"),
    }
}

fn spawn_lock_child(state_dir: &Path, signals: &Path, id: usize) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "state_store::child_process_helper",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, id.to_string())
        .env(CHILD_STATE_DIR, state_dir)
        .env(CHILD_SIGNAL_DIR, signals)
        .stdout(Stdio::null())
        .spawn()
        .unwrap()
}

fn reported(signals: &Path, id: usize) -> Option<bool> {
    if signals.join(format!("{id}.won")).exists() {
        Some(true)
    } else if signals.join(format!("{id}.lost")).exists() {
        Some(false)
    } else {
        None
    }
}

// ---------------------------------------------------------------------------------------------
// load / save

#[test]
fn new_store_does_no_io_and_an_absent_state_is_none() {
    let (_tmp, store) = store();
    assert!(!store.dir().exists());
    assert_eq!(store.load("demo").unwrap(), None);
    assert_eq!(store.list().unwrap(), []);
    assert_eq!(store.read_lock("demo").unwrap(), None);
    assert!(!store.dir().exists(), "reads must not create the directory");
}

#[test]
fn save_then_load_round_trips() {
    let (_tmp, store) = store();
    let mut state = sample_state("demo");
    store.save(&mut state).unwrap();
    assert_eq!(store.load("demo").unwrap(), Some(state.clone()));

    let text = fs::read_to_string(store.state_path("demo").unwrap()).unwrap();
    assert!(
        text.starts_with("{\n  \"version\": 1,\n  \"lineage\": "),
        "{text}"
    );
    assert!(text.ends_with("}\n"));
}

#[test]
fn save_creates_nested_directories() {
    let tmp = tempfile::tempdir().unwrap();
    let store = StateStore::new(tmp.path().join("a/b/c"));
    store.save(&mut ClusterState::new("demo", "local")).unwrap();
    assert!(store.dir().join("demo.json").is_file());
}

#[test]
fn every_save_bumps_serial_and_keeps_lineage() {
    let (_tmp, store) = store();
    let mut state = ClusterState::new("demo", "local");
    let lineage = state.lineage.clone();
    for expected in 1..=3 {
        store.save(&mut state).unwrap();
        assert_eq!(state.serial, expected);
        assert_eq!(state.lineage, lineage);
        assert_eq!(state.version, STATE_VERSION);
        assert!(chrono::DateTime::parse_from_rfc3339(&state.updated_at).is_ok());
        let on_disk = store.load("demo").unwrap().unwrap();
        assert_eq!(on_disk.serial, expected);
        assert_eq!(on_disk.lineage, lineage);
    }
}

#[test]
fn save_leaves_no_temp_file() {
    let (_tmp, store) = store();
    let mut state = sample_state("demo");
    for _ in 0..3 {
        store.save(&mut state).unwrap();
    }
    assert_eq!(entries(store.dir()), ["demo.json", "demo.json.prev"]);
}

/// Issue 19: every save keeps the state it replaces, one step back.
#[test]
fn every_save_keeps_the_previous_state() {
    let (_tmp, store) = store();
    let mut state = sample_state("demo");
    store.save(&mut state).unwrap();
    assert_eq!(store.load_previous("demo").unwrap(), None);
    let first = state.clone();
    store.save(&mut state).unwrap();
    assert_eq!(store.load_previous("demo").unwrap(), Some(first));
    assert_eq!(store.load("demo").unwrap().unwrap().serial, 2);
    assert_eq!(
        store.list().unwrap().len(),
        1,
        "the backup is not a cluster of its own"
    );
    store.remove("demo").unwrap();
    assert_eq!(entries(store.dir()), Vec::<String>::new());
}

/// A crash between writing the temp file and renaming it leaves a temp file beside the state:
/// the previous state must still load, list and be saved over.
#[test]
fn leftover_temp_file_from_a_crash_is_ignored() {
    let (_tmp, store) = store();
    let mut state = sample_state("demo");
    store.save(&mut state).unwrap();
    let leftover = store.dir().join(".demo.json.00000000deadbeef.tmp");
    fs::write(&leftover, b"{\"version\": 1, \"lineage\": \"trunc").unwrap();

    assert_eq!(store.load("demo").unwrap(), Some(state.clone()));
    let list = store.list().unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].cluster, "demo");
    store.save(&mut state).unwrap();
    assert_eq!(store.load("demo").unwrap().unwrap().serial, 2);
}

#[test]
fn corrupt_state_is_an_error_naming_the_file() {
    let (_tmp, store) = store();
    fs::create_dir_all(store.dir()).unwrap();
    let path = store.state_path("demo").unwrap();
    for content in [
        "{ not json",
        "",
        "[]",
        "{\"version\": 1}",
        "{\"version\": 0}",
    ] {
        fs::write(&path, content).unwrap();
        let err = store.load("demo").unwrap_err();
        match &err {
            StateError::Corrupt { path: p, .. } => assert_eq!(p, &path),
            other => panic!("{content:?}: expected Corrupt, got {other:?}"),
        }
        assert!(
            err.to_string().contains(&path.display().to_string()),
            "{err}"
        );
        // list reports it too, rather than hiding a damaged state.
        assert!(matches!(
            store.list().unwrap_err(),
            StateError::Corrupt { .. }
        ));
    }
}

#[test]
fn newer_state_version_is_refused_naming_the_file() {
    let (_tmp, store) = store();
    let mut state = sample_state("demo");
    store.save(&mut state).unwrap();
    let path = store.state_path("demo").unwrap();
    // A future format may change anything besides the version field.
    fs::write(
        &path,
        "{\"version\": 2, \"lineage\": 17, \"shape\": \"new\"}",
    )
    .unwrap();
    let err = store.load("demo").unwrap_err();
    assert!(
        matches!(&err, StateError::UnsupportedVersion { path: p, found: 2, supported: 1 } if p == &path),
        "{err:?}"
    );
    assert!(err.to_string().contains(&path.display().to_string()));
    // And it is never overwritten by an older pgdba.
    assert!(matches!(
        store.save(&mut state).unwrap_err(),
        StateError::UnsupportedVersion { .. }
    ));
}

#[test]
fn state_file_of_another_cluster_is_refused() {
    let (_tmp, store) = store();
    store.save(&mut sample_state("other")).unwrap();
    fs::rename(
        store.state_path("other").unwrap(),
        store.state_path("demo").unwrap(),
    )
    .unwrap();
    assert!(matches!(
        store.load("demo").unwrap_err(),
        StateError::ClusterMismatch { cluster, found, .. } if cluster == "demo" && found == "other"
    ));
}

/// Terraform refuses to write a state over one of another lineage: it is another cluster.
#[test]
fn save_refuses_to_overwrite_another_lineage() {
    let (_tmp, store) = store();
    store.save(&mut sample_state("demo")).unwrap();
    let mut impostor = sample_state("demo");
    let before = impostor.clone();
    let err = store.save(&mut impostor).unwrap_err();
    assert!(matches!(err, StateError::LineageMismatch { .. }), "{err:?}");
    assert_eq!(impostor, before, "a failed save must not bump the state");
}

#[test]
fn save_refuses_to_overwrite_a_newer_serial() {
    let (_tmp, store) = store();
    let mut state = sample_state("demo");
    store.save(&mut state).unwrap();
    let mut first = store.load("demo").unwrap().unwrap();
    let mut second = first.clone();
    store.save(&mut first).unwrap();
    let err = store.save(&mut second).unwrap_err();
    assert!(
        matches!(
            err,
            StateError::SerialConflict {
                expected: 1,
                found: 2,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(second.serial, 1);
}

#[test]
fn invalid_cluster_names_never_reach_the_filesystem() {
    let (tmp, store) = store();
    for bad in ["../escape", "a/b", "", "Demo", "x.lock"] {
        let is_invalid = |r: Result<(), StateError>| matches!(r, Err(StateError::InvalidClusterName { ref name }) if name == bad);
        assert!(is_invalid(store.load(bad).map(drop)));
        assert!(is_invalid(store.save(&mut ClusterState::new(bad, "local"))));
        assert!(is_invalid(store.remove(bad)));
        assert!(is_invalid(store.lock(bad, "apply").map(drop)));
        assert!(is_invalid(store.read_lock(bad).map(drop)));
        assert!(is_invalid(store.force_unlock(bad, false).map(drop)));
        assert!(is_invalid(store.secrets(bad).map(drop)));
    }
    assert_eq!(entries(tmp.path()), Vec::<String>::new());
}

// ---------------------------------------------------------------------------------------------
// list / remove

#[test]
fn list_summarizes_each_state_and_ignores_other_files() {
    let (_tmp, store) = store();
    let mut demo = sample_state("demo");
    store.save(&mut demo).unwrap();
    store.save(&mut demo).unwrap();
    let mut alpha = ClusterState::new("alpha", "local");
    store.save(&mut alpha).unwrap();
    store.secrets("demo").unwrap();
    let _guard = store.lock("demo", "apply").unwrap();
    // A lock without a state (first apply running) is not a state.
    let _other = store.lock("beta", "apply").unwrap();
    fs::write(store.dir().join(".alpha.json.0123456789abcdef.tmp"), "{").unwrap();
    fs::write(store.dir().join("notes.txt"), "hello").unwrap();
    fs::write(store.dir().join("Bad.json"), "{").unwrap();
    fs::create_dir(store.dir().join("dir.json")).unwrap();

    let list = store.list().unwrap();
    let clusters: Vec<&str> = list.iter().map(|s| s.cluster.as_str()).collect();
    assert_eq!(clusters, ["alpha", "demo"]);

    assert_eq!(list[0].serial, 1);
    assert_eq!(list[0].lineage, alpha.lineage);
    assert_eq!(list[0].members, 0);
    assert_eq!(list[0].lock, None);

    assert_eq!(list[1].serial, 2);
    assert_eq!(list[1].lineage, demo.lineage);
    assert_eq!(list[1].updated_at, demo.updated_at);
    assert_eq!(list[1].members, 3);
    let lock = list[1].lock.as_ref().unwrap();
    assert_eq!(lock.info.pid, std::process::id());
    assert_eq!(lock.info.operation, "apply");
    assert!(!lock.stale);
}

#[test]
fn remove_deletes_state_and_secrets_only_of_that_cluster() {
    let (_tmp, store) = store();
    store.save(&mut sample_state("demo")).unwrap();
    store.save(&mut sample_state("other")).unwrap();
    store.secrets("demo").unwrap();
    store.secrets("other").unwrap();
    let guard = store.lock("demo", "destroy").unwrap();

    store.remove("demo").unwrap();
    assert_eq!(store.load("demo").unwrap(), None);
    assert_eq!(
        entries(store.dir()),
        ["demo.lock", "other.json", "other.secrets.json"]
    );
    store.remove("demo").unwrap(); // idempotent
    drop(guard);
    assert_eq!(entries(store.dir()), ["other.json", "other.secrets.json"]);
}

// ---------------------------------------------------------------------------------------------
// lock

#[test]
fn second_lock_fails_at_once_naming_the_holder() {
    let (_tmp, store) = store();
    let guard = store.lock("demo", "apply").unwrap();
    let started = Instant::now();
    let err = store.lock("demo", "destroy").unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "lock must not wait"
    );
    let StateError::Locked { cluster, holder } = &err else {
        panic!("expected Locked, got {err:?}");
    };
    assert_eq!(cluster, "demo");
    assert_eq!(**holder, *guard.info());
    let msg = err.to_string();
    let expected = format!(
        "state of cluster demo is locked by {}@{} pid {} (apply since {})",
        holder.owner,
        holder.host,
        std::process::id(),
        holder.created_at
    );
    assert_eq!(msg, expected);
    // Other clusters are independent.
    drop(store.lock("other", "apply").unwrap());
}

#[test]
fn lock_file_records_the_holder() {
    let (_tmp, store) = store();
    let guard = store.lock("demo", "apply").unwrap();
    let info = guard.info();
    assert_eq!(guard.cluster(), "demo");
    assert_eq!(guard.path(), store.lock_path("demo").unwrap());
    assert!(uuid::Uuid::parse_str(&info.id).is_ok());
    assert_eq!(info.pid, std::process::id());
    assert_eq!(info.operation, "apply");
    assert!(!info.owner.is_empty());
    assert_eq!(
        info.host,
        fs::read_to_string("/proc/sys/kernel/hostname")
            .unwrap()
            .trim()
    );
    assert!(chrono::DateTime::parse_from_rfc3339(&info.created_at).is_ok());
    let on_disk: LockInfo =
        serde_json::from_slice(&fs::read(store.lock_path("demo").unwrap()).unwrap()).unwrap();
    assert_eq!(&on_disk, info);
    let status = store.read_lock("demo").unwrap().unwrap();
    assert_eq!(&status.info, info);
    assert!(!status.stale);
    assert_eq!(entries(store.dir()), ["demo.lock"], "no temp file left");
}

#[test]
fn dropping_the_guard_releases_the_lock() {
    let (_tmp, store) = store();
    drop(store.lock("demo", "apply").unwrap());
    assert_eq!(store.read_lock("demo").unwrap(), None);
    let guard = store.lock("demo", "apply").unwrap();
    assert!(guard.release().unwrap());
    assert_eq!(entries(store.dir()), Vec::<String>::new());
}

/// A guard whose lock file was removed by force and taken by someone else must not remove the
/// new holder's lock when it is finally dropped, and knows before its next state write.
#[test]
fn guard_drop_removes_only_its_own_lock() {
    let (_tmp, store) = store();
    let first = store.lock("demo", "apply").unwrap();
    // A live holder: refused without --even-if-alive.
    assert!(matches!(
        store.force_unlock("demo", false).unwrap_err(),
        StateError::LockHeld { .. }
    ));
    let broken = store.force_unlock("demo", true).unwrap().unwrap();
    assert_eq!(&broken, first.info());
    let second = store.lock("demo", "apply").unwrap();
    assert_ne!(first.info().id, second.info().id);
    assert!(matches!(
        first.check().unwrap_err(),
        StateError::LockLost { .. }
    ));
    second.check().unwrap();

    drop(first);
    let holder = store.read_lock("demo").unwrap().unwrap();
    assert_eq!(holder.info.id, second.info().id);

    assert!(second.release().unwrap());
    assert_eq!(store.read_lock("demo").unwrap(), None);
}

/// Issue 19: deleting the lock file by hand does not let a second run in unnoticed: the holder
/// finds out before it writes the state again.
#[test]
fn a_deleted_lock_file_is_noticed_by_its_holder() {
    let (_tmp, store) = store();
    let guard = store.lock("demo", "apply").unwrap();
    guard.check().unwrap();
    // Rewriting the file does not release the kernel's lock.
    fs::write(store.lock_path("demo").unwrap(), "{}").unwrap();
    assert!(matches!(
        store.lock("demo", "apply").unwrap_err(),
        StateError::CorruptLock { .. }
    ));
    guard.check().unwrap();
    fs::remove_file(store.lock_path("demo").unwrap()).unwrap();
    let err = guard.check().unwrap_err();
    assert!(matches!(err, StateError::LockLost { .. }), "{err:?}");
    assert!(err.to_string().contains("deleted or replaced"), "{err}");
}

#[test]
fn lock_is_exclusive_across_processes() {
    let (tmp, store) = store();
    let signals = tmp.path().join("signals");
    fs::create_dir(&signals).unwrap();
    let mut child = spawn_lock_child(store.dir(), &signals, 0);
    wait_for("the child to take the lock", || {
        reported(&signals, 0).is_some()
    });
    assert_eq!(reported(&signals, 0), Some(true));

    let err = store.lock(CHILD_CLUSTER, "apply").unwrap_err();
    let StateError::Locked { holder, .. } = &err else {
        panic!("expected Locked, got {err:?}");
    };
    assert_eq!(holder.pid, child.id());
    assert_eq!(holder.operation, "apply");
    assert!(
        err.to_string()
            .contains(&format!("pid {} (apply since", child.id())),
        "{err}"
    );
    let status = store.read_lock(CHILD_CLUSTER).unwrap().unwrap();
    assert_eq!(status.info.pid, child.id());

    fs::write(signals.join("release"), b"").unwrap();
    assert!(child.wait().unwrap().success());
    assert_eq!(store.read_lock(CHILD_CLUSTER).unwrap(), None);
    drop(store.lock(CHILD_CLUSTER, "apply").unwrap());
}

#[test]
fn exactly_one_of_several_racing_processes_gets_the_lock() {
    const CHILDREN: usize = 6;
    let (tmp, store) = store();
    let signals = tmp.path().join("signals");
    fs::create_dir(&signals).unwrap();
    let mut children: Vec<Child> = (0..CHILDREN)
        .map(|id| spawn_lock_child(store.dir(), &signals, id))
        .collect();
    wait_for("every child to report", || {
        (0..CHILDREN).all(|id| reported(&signals, id).is_some())
    });
    let winners = (0..CHILDREN)
        .filter(|&id| reported(&signals, id) == Some(true))
        .count();
    assert_eq!(winners, 1);

    fs::write(signals.join("release"), b"").unwrap();
    for child in &mut children {
        assert!(child.wait().unwrap().success());
    }
    assert_eq!(entries(store.dir()), Vec::<String>::new());
}

/// Issue 19: a holder killed with SIGKILL cannot clean up, but the kernel releases its lock at
/// once: the next run takes it, with no `unlock --force`.
#[test]
fn a_killed_holder_releases_its_lock_at_once() {
    let (tmp, store) = store();
    let signals = tmp.path().join("signals");
    fs::create_dir(&signals).unwrap();
    let mut child = spawn_lock_child(store.dir(), &signals, 0);
    wait_for("the child to take the lock", || {
        reported(&signals, 0) == Some(true)
    });
    child.kill().unwrap();
    child.wait().unwrap();

    // Its file is left behind, with its pid, but no one holds it.
    let left: LockInfo =
        serde_json::from_slice(&fs::read(store.lock_path(CHILD_CLUSTER).unwrap()).unwrap())
            .unwrap();
    assert_eq!(left.pid, child.id());
    assert_eq!(store.read_lock(CHILD_CLUSTER).unwrap(), None);
    let guard = store.lock(CHILD_CLUSTER, "apply").unwrap();
    assert_eq!(guard.info().pid, std::process::id());
}

/// A lock file nobody holds, whatever pid or host it names, is no lock.
#[test]
fn a_lock_file_nobody_holds_is_no_lock() {
    let (_tmp, store) = store();
    let mut info = lock_info_like_ours(&store, "demo");
    info.pid = 1;
    info.host = format!("not-{}", info.host);
    write_lock(&store, "demo", &info);
    assert_eq!(store.read_lock("demo").unwrap(), None);
    // Not held: unlock needs no --even-if-alive, and returns what the file said.
    assert_eq!(
        store.force_unlock("demo", false).unwrap(),
        Some(info.clone())
    );
    assert_eq!(store.force_unlock("demo", false).unwrap(), None);
    write_lock(&store, "demo", &info);
    drop(store.lock("demo", "apply").unwrap());
    assert_eq!(entries(store.dir()), Vec::<String>::new());
}

/// A lock a live process holds whose file cannot be read still counts as held: it is named
/// damaged, and only a forced unlock removes it.
#[test]
fn a_held_lock_with_a_damaged_file_blocks_until_forced() {
    let (_tmp, store) = store();
    let guard = store.lock("demo", "apply").unwrap();
    let path = store.lock_path("demo").unwrap();
    fs::write(&path, "not json").unwrap();
    let err = store.lock("demo", "apply").unwrap_err();
    assert!(
        matches!(&err, StateError::CorruptLock { path: p, .. } if p == &path),
        "{err:?}"
    );
    assert!(matches!(
        store.read_lock("demo").unwrap_err(),
        StateError::CorruptLock { .. }
    ));
    assert_eq!(store.force_unlock("demo", true).unwrap(), None);
    assert!(!path.exists());
    drop(guard);
    drop(store.lock("demo", "apply").unwrap());
}

// ---------------------------------------------------------------------------------------------
// secrets

#[test]
fn secrets_file_is_private_and_stable() {
    let (_tmp, store) = store();
    let first = store.secrets("demo").unwrap();
    let path = store.secrets_path("demo").unwrap();
    let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "mode {mode:o}");

    let again = store.secrets("demo").unwrap();
    let other_store = StateStore::new(store.dir());
    assert_eq!(again, first);
    assert_eq!(other_store.secrets("demo").unwrap(), first);
    assert_ne!(store.secrets("other").unwrap(), first);

    for p in [
        &first.superuser_password,
        &first.replication_password,
        &first.rewind_password,
    ] {
        assert_eq!(p.len(), 32);
        assert!(p.chars().all(|c| c.is_ascii_alphanumeric()));
    }
    let on_disk: serde_json::Value = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
    assert_eq!(on_disk["superuser_password"], first.superuser_password);
    assert_eq!(on_disk["replication_password"], first.replication_password);
    assert_eq!(on_disk["rewind_password"], first.rewind_password);
    assert_eq!(
        entries(store.dir()),
        ["demo.secrets.json", "other.secrets.json"]
    );
}

#[test]
fn secrets_never_appear_in_the_state_or_in_debug() {
    let (_tmp, store) = store();
    let secrets = store.secrets("demo").unwrap();
    let mut state = sample_state("demo");
    store.save(&mut state).unwrap();
    let state_text = fs::read_to_string(store.state_path("demo").unwrap()).unwrap();
    let debug = format!("{secrets:?} {secrets:#?} {:?}", Some(&secrets));
    assert_eq!(format!("{secrets:?}"), "(sensitive)");
    for p in [
        &secrets.superuser_password,
        &secrets.replication_password,
        &secrets.rewind_password,
    ] {
        assert!(!state_text.contains(p.as_str()));
        assert!(!debug.contains(p.as_str()));
    }
}

#[test]
fn concurrent_first_calls_agree_on_the_secrets() {
    let (_tmp, store) = store();
    let all: Vec<_> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8).map(|_| s.spawn(|| store.secrets("demo"))).collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap().unwrap())
            .collect()
    });
    assert!(all.windows(2).all(|w| w[0] == w[1]));
    assert_eq!(entries(store.dir()), ["demo.secrets.json"]);
}

#[test]
fn damaged_secrets_are_an_error_not_regenerated() {
    let (_tmp, store) = store();
    fs::create_dir_all(store.dir()).unwrap();
    let path = store.secrets_path("demo").unwrap();
    fs::write(&path, "{\"superuser_password\": 1}").unwrap();
    let err = store.secrets("demo").unwrap_err();
    assert!(
        matches!(&err, StateError::CorruptSecrets { path: p, .. } if p == &path),
        "{err:?}"
    );
    assert!(err.to_string().contains(&path.display().to_string()));
    assert_eq!(
        fs::read_to_string(&path).unwrap(),
        "{\"superuser_password\": 1}"
    );
}
