//! The integration tests: one binary, a module per topic (ripgrep's layout), each test in its
//! own temp dir. `local_cluster` starts real etcd, Patroni and PostgreSQL processes; the others
//! need no server.

mod cli;
mod docker_cluster;
mod local_backup;
mod local_backup_s3;
mod local_cluster;
mod local_dba;
mod local_drift;
mod local_faults;
mod local_pooler;
mod local_resources;
mod local_stale;
mod local_sync;
mod ops_adopt;
mod ops_backup;
mod ops_chaos;
mod ops_config;
mod ops_health;
mod ops_leader;
mod ops_logical;
mod ops_query;
mod ops_replica;
mod ops_restore;
mod plan_golden;
mod spec_fuzz;
mod spec_kdl;
mod spec_load;
mod spec_schema;
mod ssh_cluster;
mod state_store;
mod support;
