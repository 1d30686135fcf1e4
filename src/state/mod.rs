//! The state: what pgdba created, per cluster, written atomically, with a lock.
