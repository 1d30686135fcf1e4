//! `config tune`: a port of PGTune (<https://pgtune.leopard.in.ua>, `le0pard/pgtune`).
//!
//! The recommendations are PGTune's, line for line: the same inputs, formulas, rounding,
//! units, parameter order and warnings. The formulas are the selectors of PGTune's
//! `src/features/configuration/configurationSlice.js` (the version with the database-size,
//! NVMe and asynchronous-I/O inputs), the printing is `formatValue` and `postgresqlConfig`
//! of `src/common/components/configurationView/index.jsx`, and the accepted inputs are those
//! of `src/common/components/configurationForm/validation.js` and
//! `src/features/configuration/constants.js`. Each function below names the PGTune
//! selector it ports.
//!
//! One upstream fix is applied that the ported source predates: PGTune issue #142
//! (`io_workers` is not recommended with `io_method = io_uring`, where it has no effect).
//!
//! PGTune computes in kB (1 kB = 1024 bytes) with JavaScript numbers; the memory values
//! here stay exact integers far below 2^53, so integer arithmetic gives the same results,
//! except for `work_mem`, whose real-valued division is reproduced in `f64`.

use serde::Serialize;

const KB: u64 = 1024;
const MIB: u64 = 1024 * KB;
const GIB: u64 = 1024 * MIB;

/// kB in a MB and in a GB (PGTune's `KB_UNIT_MAP`).
const KB_PER_MB: u64 = MIB / KB;
const KB_PER_GB: u64 = GIB / KB;

/// PGTune's `DB_VERSIONS`, newest first.
const VERSIONS: [u32; 9] = [18, 17, 16, 15, 14, 13, 12, 11, 10];

/// The smallest memory PGTune accepts (`MIN_MB_MEMORY`: 512 MB).
const MIN_MEMORY_MB: u64 = 512;
/// The largest memory PGTune accepts: `MAX_NUMERIC_VALUE` (999999) of its largest unit, GB.
const MAX_MEMORY_MB: u64 = MAX_NUMERIC_VALUE * (GIB / MIB);
/// PGTune's `MAX_NUMERIC_VALUE`, the upper bound of every numeric input.
const MAX_NUMERIC_VALUE: u64 = 999_999;
/// PGTune's smallest `connectionNum`.
const MIN_CONNECTIONS: u32 = 20;

/// PGTune's "DB Type".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Workload {
    /// Web application.
    Web,
    /// Online transaction processing system.
    Oltp,
    /// Data warehouse (also accepted as `olap`).
    #[value(alias = "olap")]
    Dw,
    /// Mixed type of application.
    Mixed,
    /// Desktop application.
    Desktop,
}

/// PGTune's "Data Storage" (`hdType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Storage {
    /// SSD storage.
    Ssd,
    /// HDD storage.
    Hdd,
    /// Network (SAN) storage.
    San,
    /// NVMe storage.
    Nvme,
}

/// PGTune's "OS Type".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Os {
    Linux,
    Windows,
    /// macOS (PGTune's "OS X").
    Mac,
}

/// PGTune's database-size input (`dbSize`): how big the database is against the memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, clap::ValueEnum, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DbSize {
    /// Smaller than the memory (`less_ram`): it fits in the OS cache.
    LessRam,
    /// One to three times the memory (`mid_ram`), PGTune's default.
    MidRam,
    /// More than three times the memory (`greater_ram`).
    GreaterRam,
}

impl DbSize {
    /// The class of a database of `db_size_bytes` on `memory_bytes` of memory; PGTune's
    /// default (`MidRam`) when the size is unknown.
    pub fn classify(db_size_bytes: Option<u64>, memory_bytes: u64) -> DbSize {
        match db_size_bytes {
            None => DbSize::MidRam,
            Some(size) if size < memory_bytes => DbSize::LessRam,
            Some(size) if size <= memory_bytes.saturating_mul(3) => DbSize::MidRam,
            Some(_) => DbSize::GreaterRam,
        }
    }
}

/// What PGTune asks for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TuneInput {
    /// "DB Type".
    pub workload: Workload,
    /// "Total Memory (RAM)": what PostgreSQL may use. PGTune takes a whole number of MB or
    /// GB, so this is counted in whole MiB (rounded down), from 512 MiB to 999999 GiB.
    pub memory_bytes: u64,
    /// "Number of CPUs" (1 to 999999); without it PGTune leaves the parallel, autovacuum
    /// worker and `io_workers` settings out.
    pub cpus: Option<u32>,
    /// "Number of Connections" (20 to 999999); without it, PGTune's default for the
    /// workload (web 200, oltp 300, dw 40, desktop 20, mixed 100).
    pub connections: Option<u32>,
    /// "Data Storage".
    pub storage: Storage,
    /// "DB version": one of [`supported_versions`].
    pub pg_version: u32,
    /// "OS Type".
    pub os: Os,
    /// The database's size, classed against the memory into PGTune's "DB size"
    /// ([`DbSize::classify`]); `None` is PGTune's default class (one to three times RAM).
    pub db_size_bytes: Option<u64>,
}

/// PGTune's output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Recommendation {
    /// `(name, value)` in PGTune's order, values as PGTune prints them (`4GB`, `7864kB`,
    /// `0.9`, `200`); settings PGTune leaves out are absent.
    pub parameters: Vec<(String, String)>,
    /// PGTune's warnings, one per warning, its comment lines joined into sentences.
    pub notes: Vec<String>,
}

/// Inputs PGTune refuses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TuneError {
    #[error(
        "total memory of {mib} MiB is below PGTune's minimum of {MIN_MEMORY_MB} MiB ({bytes} bytes given)"
    )]
    MemoryTooLow { bytes: u64, mib: u64 },
    #[error("total memory of {mib} MiB is above PGTune's maximum of {MAX_NUMERIC_VALUE} GiB")]
    MemoryTooHigh { mib: u64 },
    #[error("PostgreSQL {0} is not a version PGTune knows (it knows {versions})", versions = version_list())]
    UnsupportedVersion(u32),
    #[error("{0} CPUs is outside PGTune's range of 1 to {MAX_NUMERIC_VALUE}")]
    CpusOutOfRange(u32),
    #[error(
        "{0} connections is outside PGTune's range of {MIN_CONNECTIONS} to {MAX_NUMERIC_VALUE}"
    )]
    ConnectionsOutOfRange(u32),
}

fn version_list() -> String {
    VERSIONS
        .iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The PostgreSQL versions PGTune tunes for (`DB_VERSIONS`), newest first.
pub fn supported_versions() -> &'static [u32] {
    &VERSIONS
}

/// This machine's total memory (`MemTotal` of `/proc/meminfo`, in bytes) and CPU count
/// (`std::thread::available_parallelism`), each `None` when it cannot be read.
pub fn detect_host() -> (Option<u64>, Option<u32>) {
    let memory = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|text| parse_mem_total(&text));
    let cpus = std::thread::available_parallelism()
        .ok()
        .and_then(|n| u32::try_from(n.get()).ok());
    (memory, cpus)
}

/// `MemTotal:  16318412 kB` → bytes.
fn parse_mem_total(meminfo: &str) -> Option<u64> {
    meminfo.lines().find_map(|line| {
        let rest = line.strip_prefix("MemTotal:")?;
        let mut words = rest.split_whitespace();
        let value: u64 = words.next()?.parse().ok()?;
        match words.next() {
            Some("kB") | None => value.checked_mul(KB),
            Some(_) => None,
        }
    })
}

/// PGTune's recommendations for `input`, or why PGTune would refuse it.
pub fn recommend(input: &TuneInput) -> Result<Recommendation, TuneError> {
    let memory_mb = input.memory_bytes / MIB;
    if memory_mb < MIN_MEMORY_MB {
        return Err(TuneError::MemoryTooLow {
            bytes: input.memory_bytes,
            mib: memory_mb,
        });
    }
    if memory_mb > MAX_MEMORY_MB {
        return Err(TuneError::MemoryTooHigh { mib: memory_mb });
    }
    if !VERSIONS.contains(&input.pg_version) {
        return Err(TuneError::UnsupportedVersion(input.pg_version));
    }
    if let Some(cpus) = input.cpus
        && (cpus == 0 || u64::from(cpus) > MAX_NUMERIC_VALUE)
    {
        return Err(TuneError::CpusOutOfRange(cpus));
    }
    if let Some(connections) = input.connections
        && (connections < MIN_CONNECTIONS || u64::from(connections) > MAX_NUMERIC_VALUE)
    {
        return Err(TuneError::ConnectionsOutOfRange(connections));
    }
    let memory_bytes = memory_mb * MIB;
    let t = Tuner {
        total_kb: memory_bytes / KB,
        memory_bytes,
        workload: input.workload,
        cpus: input.cpus,
        connections: input.connections,
        storage: input.storage,
        version: input.pg_version,
        os: input.os,
        db_size: DbSize::classify(input.db_size_bytes, memory_bytes),
    };
    Ok(Recommendation {
        parameters: t.parameters(),
        notes: t.notes(),
    })
}

/// Validated inputs, memory in kB.
struct Tuner {
    /// `selectTotalMemoryInKb`.
    total_kb: u64,
    /// `selectTotalMemoryInBytes`.
    memory_bytes: u64,
    workload: Workload,
    cpus: Option<u32>,
    connections: Option<u32>,
    storage: Storage,
    version: u32,
    os: Os,
    db_size: DbSize,
}

/// PostgreSQL's own `max_worker_processes` (PGTune's `DEFAULT_DB_SETTINGS`), used by
/// `work_mem` when PGTune sets no parallel settings.
const DEFAULT_MAX_WORKER_PROCESSES: u64 = 8;

impl Tuner {
    /// Windows before PostgreSQL 18 cannot take 2GB or more for a memory setting.
    fn windows_2gb_limit(&self) -> bool {
        self.os == Os::Windows && self.version <= 17
    }

    /// `selectMaxConnections`.
    fn max_connections(&self) -> u64 {
        match self.connections {
            Some(n) => u64::from(n),
            None => match self.workload {
                Workload::Web => 200,
                Workload::Oltp => 300,
                Workload::Dw => 40,
                Workload::Desktop => 20,
                Workload::Mixed => 100,
            },
        }
    }

    /// `selectSharedBuffers`: a quarter of memory, a sixteenth for desktops (and 512MB on
    /// Windows before PostgreSQL 10, which PGTune no longer offers).
    fn shared_buffers(&self) -> u64 {
        let value = match self.workload {
            Workload::Desktop => self.total_kb / 16,
            _ => self.total_kb / 4,
        };
        let windows_limit = 512 * MIB / KB;
        if self.version < 10 && self.os == Os::Windows {
            value.min(windows_limit)
        } else {
            value
        }
    }

    /// `selectHugePages`: `try` from 2GB of shared buffers, never on macOS.
    fn huge_pages(&self) -> &'static str {
        if self.os == Os::Mac || self.shared_buffers() < 2 * GIB / KB {
            "off"
        } else {
            "try"
        }
    }

    /// `selectEffectiveCacheSize`: three quarters of memory, a quarter for desktops.
    fn effective_cache_size(&self) -> u64 {
        match self.workload {
            Workload::Desktop => self.total_kb / 4,
            _ => self.total_kb * 3 / 4,
        }
    }

    /// `selectMaintenanceWorkMem`: a sixteenth of memory (an eighth for dw), at most 8GB,
    /// or 2GB minus 1MB on Windows before PostgreSQL 18.
    fn maintenance_work_mem(&self) -> u64 {
        let value = match self.workload {
            Workload::Dw => self.total_kb / 8,
            _ => self.total_kb / 16,
        };
        if self.windows_2gb_limit() {
            let limit = 2 * GIB / KB;
            if value >= limit {
                limit - MIB / KB
            } else {
                value
            }
        } else {
            value.min(8 * GIB / KB)
        }
    }

    /// `selectCheckpointSegments`: `(min_wal_size, max_wal_size)`.
    fn wal_sizes(&self) -> (u64, u64) {
        let (min_mb, max_mb) = match self.workload {
            Workload::Web | Workload::Mixed => (1024, 4096),
            Workload::Oltp => (2048, 8192),
            Workload::Dw => (4096, 16384),
            Workload::Desktop => (100, 2048),
        };
        (min_mb * KB_PER_MB, max_mb * KB_PER_MB)
    }

    /// `selectWalBuffers`: 3% of shared buffers, rounded up to 16MB above 14MB, between
    /// 32kB and 16MB.
    fn wal_buffers(&self) -> u64 {
        let max = 16 * MIB / KB;
        let near = 14 * MIB / KB;
        let mut value = (3 * self.shared_buffers() / 100).min(max);
        if value > near && value < max {
            value = max;
        }
        value.max(32)
    }

    /// `selectDefaultStatisticsTarget`.
    fn default_statistics_target(&self) -> u64 {
        match self.workload {
            Workload::Dw => 500,
            _ => 100,
        }
    }

    /// `selectRandomPageCost`: 1.1 when the database fits in memory, else 4 on HDD and for
    /// data warehouses, else 1.1.
    fn random_page_cost(&self) -> &'static str {
        if self.db_size == DbSize::LessRam {
            "1.1"
        } else if self.storage == Storage::Hdd || self.workload == Workload::Dw {
            "4"
        } else {
            "1.1"
        }
    }

    /// `selectEffectiveIoConcurrency`: only on Linux.
    fn effective_io_concurrency(&self) -> Option<u64> {
        (self.os == Os::Linux).then_some(match self.storage {
            Storage::Hdd => 2,
            Storage::Ssd => 200,
            Storage::San => 300,
            Storage::Nvme => 1000,
        })
    }

    /// `selectParallelSettings`: from 4 CPUs, `max_worker_processes`,
    /// `max_parallel_workers_per_gather` (half the CPUs, at most 4 except for dw),
    /// `max_parallel_workers` (10+) and `max_parallel_maintenance_workers` (11+, at most 4).
    fn parallel_settings(&self) -> Vec<(&'static str, u64)> {
        let cpus = match self.cpus {
            Some(n) if n >= 4 => u64::from(n),
            _ => return Vec::new(),
        };
        let half = cpus.div_ceil(2);
        let per_gather = if self.workload == Workload::Dw {
            half
        } else {
            half.min(4)
        };
        let mut settings = vec![
            ("max_worker_processes", cpus),
            ("max_parallel_workers_per_gather", per_gather),
        ];
        if self.version >= 10 {
            settings.push(("max_parallel_workers", cpus));
        }
        if self.version >= 11 {
            settings.push(("max_parallel_maintenance_workers", half.min(4)));
        }
        settings
    }

    /// `selectWorkMem`: (memory − shared buffers) / ((connections + worker processes) × 3),
    /// halved for dw and mixed, a sixth for desktops; +30% when the database fits in memory,
    /// −10% when it is over three times the memory; at least 4MB, and at most 2GB minus
    /// 1MB on Windows before PostgreSQL 18.
    fn work_mem(&self) -> u64 {
        let workers = match self.cpus {
            Some(n) if n >= 4 => u64::from(n),
            _ => DEFAULT_MAX_WORKER_PROCESSES,
        };
        // JavaScript's real division, floored afterwards.
        let value = (self.total_kb - self.shared_buffers()) as f64
            / ((self.max_connections() + workers) * 3) as f64;
        let mut result = match self.workload {
            Workload::Web | Workload::Oltp => value.floor(),
            Workload::Dw | Workload::Mixed => (value / 2.0).floor(),
            Workload::Desktop => (value / 6.0).floor(),
        };
        match self.db_size {
            DbSize::LessRam => result = (result * 1.3).floor(),
            DbSize::GreaterRam => result = (result * 0.9).floor(),
            DbSize::MidRam => {}
        }
        let mut result = (result as u64).max(4 * MIB / KB);
        if self.windows_2gb_limit() {
            result = result.min(2 * GIB / KB - MIB / KB);
        }
        result
    }

    /// `selectWalLevel`: desktops need no replication.
    fn wal_level(&self) -> Vec<(&'static str, &'static str)> {
        if self.workload == Workload::Desktop {
            vec![("wal_level", "minimal"), ("max_wal_senders", "0")]
        } else {
            Vec::new()
        }
    }

    /// `selectJit`: off for web, oltp and mixed from PostgreSQL 12.
    fn jit(&self) -> Option<&'static str> {
        let short_queries = matches!(
            self.workload,
            Workload::Web | Workload::Oltp | Workload::Mixed
        );
        (self.version >= 12 && short_queries).then_some("off")
    }

    /// `selectWalCompression`: `lz4` from PostgreSQL 15, `on` before.
    fn wal_compression(&self) -> Option<&'static str> {
        match self.version {
            15.. => Some("lz4"),
            10.. => Some("on"),
            _ => None,
        }
    }

    /// `selectAutovacuumMaxWorkers`: 4 from 16 CPUs, 5 from 32.
    fn autovacuum_max_workers(&self) -> Option<u64> {
        match self.cpus {
            Some(32..) => Some(5),
            Some(16..) => Some(4),
            _ => None,
        }
    }

    /// `selectAutovacuumWorkMem`: 2GB once `maintenance_work_mem` reaches 2GB (2GB minus
    /// 1MB on Windows before PostgreSQL 18, where that never happens).
    fn autovacuum_work_mem(&self) -> Option<u64> {
        let threshold = 2 * GIB / KB;
        if self.maintenance_work_mem() < threshold {
            return None;
        }
        if self.windows_2gb_limit() {
            Some(threshold.min(2 * GIB / KB - MIB / KB))
        } else {
            Some(threshold)
        }
    }

    /// `selectIoMethod`: PostgreSQL 18's asynchronous I/O, `io_uring` on Linux.
    fn io_method(&self) -> Option<&'static str> {
        if self.version < 18 {
            None
        } else if self.os == Os::Linux {
            Some("io_uring")
        } else {
            Some("worker")
        }
    }

    /// `selectIoWorkers`: a quarter of the CPUs, 4 to 32, with `io_method = worker` only
    /// (PGTune issue #142).
    fn io_workers(&self) -> Option<u64> {
        let cpus = u64::from(self.cpus?);
        if self.version < 18 || self.io_method() == Some("io_uring") {
            return None;
        }
        let value = (cpus / 4).clamp(3, 32);
        (value > 3).then_some(value)
    }

    /// `postgresqlConfig` of PGTune's configuration view: every setting in its order.
    fn parameters(&self) -> Vec<(String, String)> {
        let (min_wal, max_wal) = self.wal_sizes();
        let entries: Vec<(&str, Option<String>)> = vec![
            ("max_connections", Some(self.max_connections().to_string())),
            ("shared_buffers", Some(format_value(self.shared_buffers()))),
            (
                "effective_cache_size",
                Some(format_value(self.effective_cache_size())),
            ),
            (
                "maintenance_work_mem",
                Some(format_value(self.maintenance_work_mem())),
            ),
            // selectCheckpointCompletionTarget
            ("checkpoint_completion_target", Some("0.9".to_string())),
            ("wal_buffers", Some(format_value(self.wal_buffers()))),
            (
                "default_statistics_target",
                Some(self.default_statistics_target().to_string()),
            ),
            (
                "random_page_cost",
                Some(self.random_page_cost().to_string()),
            ),
            (
                "effective_io_concurrency",
                self.effective_io_concurrency().map(|v| v.to_string()),
            ),
            ("work_mem", Some(format_value(self.work_mem()))),
            ("huge_pages", Some(self.huge_pages().to_string())),
            ("jit", self.jit().map(str::to_string)),
            (
                "wal_compression",
                self.wal_compression().map(str::to_string),
            ),
            (
                "autovacuum_max_workers",
                self.autovacuum_max_workers().map(|v| v.to_string()),
            ),
            (
                "autovacuum_work_mem",
                self.autovacuum_work_mem().map(format_value),
            ),
            ("io_method", self.io_method().map(str::to_string)),
            ("io_workers", self.io_workers().map(|v| v.to_string())),
            ("min_wal_size", Some(format_value(min_wal))),
            ("max_wal_size", Some(format_value(max_wal))),
        ];
        let parallel = self
            .parallel_settings()
            .into_iter()
            .map(|(k, v)| (k, Some(v.to_string())));
        let wal_level = self
            .wal_level()
            .into_iter()
            .map(|(k, v)| (k, Some(v.to_string())));
        entries
            .into_iter()
            .chain(parallel)
            .chain(wal_level)
            .filter_map(|(k, v)| v.map(|v| (k.to_string(), v)))
            .collect()
    }

    /// `selectWarningInfoMessages`, one note per warning.
    fn notes(&self) -> Vec<String> {
        warnings(
            self.memory_bytes,
            self.wal_compression(),
            self.io_method(),
            self.workload,
            self.storage,
            self.db_size,
        )
        .into_iter()
        .map(|lines| sentences(&lines))
        .collect()
    }
}

/// `selectWarningInfoMessages`: PGTune's warning comments, each warning as its lines.
fn warnings(
    memory_bytes: u64,
    wal_compression: Option<&str>,
    io_method: Option<&str>,
    workload: Workload,
    storage: Storage,
    db_size: DbSize,
) -> Vec<Vec<String>> {
    let mut out: Vec<Vec<String>> = Vec::new();
    let lines = |l: &[&str]| l.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    if memory_bytes < 256 * MIB {
        // Unreachable through `recommend`, which refuses less than 512 MiB as PGTune does.
        out.push(lines(&[
            "this tool not being optimal",
            "for low memory systems",
        ]));
    } else if memory_bytes > 100 * GIB {
        out.push(lines(&[
            "this tool not being optimal",
            "for very high memory systems",
        ]));
    }
    if wal_compression == Some("lz4") {
        out.push(lines(&[
            "wal_compression = lz4 requires PostgreSQL",
            "to be compiled with --with-lz4",
        ]));
    }
    if io_method == Some("io_uring") {
        out.push(lines(&[
            "io_method = io_uring requires PostgreSQL",
            "to be compiled with --with-liburing",
        ]));
    }
    if workload == Workload::Dw && storage != Storage::Hdd && db_size != DbSize::LessRam {
        let drive = match storage {
            Storage::Nvme => "NVMe drives",
            Storage::San => "SAN storage",
            Storage::Ssd | Storage::Hdd => "SSDs",
        };
        out.push(vec![
            format!("Cost parameters for Data Warehouses on {drive} are left at defaults"),
            "to avoid catastrophic index scan selections".to_string(),
            "Monitor query planner behavior and adjust random_page_cost if necessary".to_string(),
        ]);
    }
    out
}

/// A warning's comment lines as one text: a line starting with a capital starts a new
/// sentence, the others continue the previous line.
fn sentences(lines: &[String]) -> String {
    let mut text = String::new();
    for line in lines {
        if !text.is_empty() {
            let new_sentence = line.chars().next().is_some_and(char::is_uppercase);
            text.push_str(if new_sentence { ". " } else { " " });
        }
        text.push_str(line);
    }
    text
}

/// PGTune's `formatValue`: kB in the largest unit (GB, MB, kB) that loses nothing.
fn format_value(kb: u64) -> String {
    if kb.is_multiple_of(KB_PER_GB) {
        format!("{}GB", kb / KB_PER_GB)
    } else if kb.is_multiple_of(KB_PER_MB) {
        format!("{}MB", kb / KB_PER_MB)
    } else {
        format!("{kb}kB")
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    struct Case {
        name: &'static str,
        input: TuneInput,
        params: &'static [(&'static str, &'static str)],
        notes: &'static [&'static str],
    }

    /// Expected values produced by running PGTune's own selectors (configurationSlice.js)
    /// and configuration view (`formatValue`, `postgresqlConfig`) under Node for the same
    /// inputs (memory given to PGTune in whole GB, or MB), with issue #142 applied.
    fn cases() -> Vec<Case> {
        vec![
            Case {
                name: "web_4gb_linux_pg17_defaults",
                input: TuneInput {
                    workload: Workload::Web,
                    memory_bytes: 4 * GIB,
                    cpus: None,
                    connections: None,
                    storage: Storage::Ssd,
                    pg_version: 17,
                    os: Os::Linux,
                    db_size_bytes: None,
                },
                params: &[
                    ("max_connections", "200"),
                    ("shared_buffers", "1GB"),
                    ("effective_cache_size", "3GB"),
                    ("maintenance_work_mem", "256MB"),
                    ("checkpoint_completion_target", "0.9"),
                    ("wal_buffers", "16MB"),
                    ("default_statistics_target", "100"),
                    ("random_page_cost", "1.1"),
                    ("effective_io_concurrency", "200"),
                    ("work_mem", "5041kB"),
                    ("huge_pages", "off"),
                    ("jit", "off"),
                    ("wal_compression", "lz4"),
                    ("min_wal_size", "1GB"),
                    ("max_wal_size", "4GB"),
                ],
                notes: &[
                    "wal_compression = lz4 requires PostgreSQL to be compiled with --with-lz4",
                ],
            },
            Case {
                name: "web_16gb_4cpu_pg16",
                input: TuneInput {
                    workload: Workload::Web,
                    memory_bytes: 16 * GIB,
                    cpus: Some(4),
                    connections: None,
                    storage: Storage::Ssd,
                    pg_version: 16,
                    os: Os::Linux,
                    db_size_bytes: None,
                },
                params: &[
                    ("max_connections", "200"),
                    ("shared_buffers", "4GB"),
                    ("effective_cache_size", "12GB"),
                    ("maintenance_work_mem", "1GB"),
                    ("checkpoint_completion_target", "0.9"),
                    ("wal_buffers", "16MB"),
                    ("default_statistics_target", "100"),
                    ("random_page_cost", "1.1"),
                    ("effective_io_concurrency", "200"),
                    ("work_mem", "20560kB"),
                    ("huge_pages", "try"),
                    ("jit", "off"),
                    ("wal_compression", "lz4"),
                    ("min_wal_size", "1GB"),
                    ("max_wal_size", "4GB"),
                    ("max_worker_processes", "4"),
                    ("max_parallel_workers_per_gather", "2"),
                    ("max_parallel_workers", "4"),
                    ("max_parallel_maintenance_workers", "2"),
                ],
                notes: &[
                    "wal_compression = lz4 requires PostgreSQL to be compiled with --with-lz4",
                ],
            },
            Case {
                name: "oltp_64gb_16cpu_500conn_pg17",
                input: TuneInput {
                    workload: Workload::Oltp,
                    memory_bytes: 64 * GIB,
                    cpus: Some(16),
                    connections: Some(500),
                    storage: Storage::Ssd,
                    pg_version: 17,
                    os: Os::Linux,
                    db_size_bytes: Some(128 * GIB),
                },
                params: &[
                    ("max_connections", "500"),
                    ("shared_buffers", "16GB"),
                    ("effective_cache_size", "48GB"),
                    ("maintenance_work_mem", "4GB"),
                    ("checkpoint_completion_target", "0.9"),
                    ("wal_buffers", "16MB"),
                    ("default_statistics_target", "100"),
                    ("random_page_cost", "1.1"),
                    ("effective_io_concurrency", "200"),
                    ("work_mem", "32513kB"),
                    ("huge_pages", "try"),
                    ("jit", "off"),
                    ("wal_compression", "lz4"),
                    ("autovacuum_max_workers", "4"),
                    ("autovacuum_work_mem", "2GB"),
                    ("min_wal_size", "2GB"),
                    ("max_wal_size", "8GB"),
                    ("max_worker_processes", "16"),
                    ("max_parallel_workers_per_gather", "4"),
                    ("max_parallel_workers", "16"),
                    ("max_parallel_maintenance_workers", "4"),
                ],
                notes: &[
                    "wal_compression = lz4 requires PostgreSQL to be compiled with --with-lz4",
                ],
            },
            Case {
                name: "oltp_1gb_2cpu_hdd_pg15",
                input: TuneInput {
                    workload: Workload::Oltp,
                    memory_bytes: GIB,
                    cpus: Some(2),
                    connections: None,
                    storage: Storage::Hdd,
                    pg_version: 15,
                    os: Os::Linux,
                    db_size_bytes: None,
                },
                params: &[
                    ("max_connections", "300"),
                    ("shared_buffers", "256MB"),
                    ("effective_cache_size", "768MB"),
                    ("maintenance_work_mem", "64MB"),
                    ("checkpoint_completion_target", "0.9"),
                    ("wal_buffers", "7864kB"),
                    ("default_statistics_target", "100"),
                    ("random_page_cost", "4"),
                    ("effective_io_concurrency", "2"),
                    ("work_mem", "4MB"),
                    ("huge_pages", "off"),
                    ("jit", "off"),
                    ("wal_compression", "lz4"),
                    ("min_wal_size", "2GB"),
                    ("max_wal_size", "8GB"),
                ],
                notes: &[
                    "wal_compression = lz4 requires PostgreSQL to be compiled with --with-lz4",
                ],
            },
            Case {
                name: "dw_256gb_64cpu_san_pg17",
                input: TuneInput {
                    workload: Workload::Dw,
                    memory_bytes: 256 * GIB,
                    cpus: Some(64),
                    connections: None,
                    storage: Storage::San,
                    pg_version: 17,
                    os: Os::Linux,
                    db_size_bytes: None,
                },
                params: &[
                    ("max_connections", "40"),
                    ("shared_buffers", "64GB"),
                    ("effective_cache_size", "192GB"),
                    ("maintenance_work_mem", "8GB"),
                    ("checkpoint_completion_target", "0.9"),
                    ("wal_buffers", "16MB"),
                    ("default_statistics_target", "500"),
                    ("random_page_cost", "4"),
                    ("effective_io_concurrency", "300"),
                    ("work_mem", "322638kB"),
                    ("huge_pages", "try"),
                    ("wal_compression", "lz4"),
                    ("autovacuum_max_workers", "5"),
                    ("autovacuum_work_mem", "2GB"),
                    ("min_wal_size", "4GB"),
                    ("max_wal_size", "16GB"),
                    ("max_worker_processes", "64"),
                    ("max_parallel_workers_per_gather", "32"),
                    ("max_parallel_workers", "64"),
                    ("max_parallel_maintenance_workers", "4"),
                ],
                notes: &[
                    "this tool not being optimal for very high memory systems",
                    "wal_compression = lz4 requires PostgreSQL to be compiled with --with-lz4",
                    "Cost parameters for Data Warehouses on SAN storage are left at defaults to avoid catastrophic index scan selections. Monitor query planner behavior and adjust random_page_cost if necessary",
                ],
            },
            Case {
                name: "dw_16gb_8cpu_100conn_hdd_pg15",
                input: TuneInput {
                    workload: Workload::Dw,
                    memory_bytes: 16 * GIB,
                    cpus: Some(8),
                    connections: Some(100),
                    storage: Storage::Hdd,
                    pg_version: 15,
                    os: Os::Linux,
                    db_size_bytes: None,
                },
                params: &[
                    ("max_connections", "100"),
                    ("shared_buffers", "4GB"),
                    ("effective_cache_size", "12GB"),
                    ("maintenance_work_mem", "2GB"),
                    ("checkpoint_completion_target", "0.9"),
                    ("wal_buffers", "16MB"),
                    ("default_statistics_target", "500"),
                    ("random_page_cost", "4"),
                    ("effective_io_concurrency", "2"),
                    ("work_mem", "19418kB"),
                    ("huge_pages", "try"),
                    ("wal_compression", "lz4"),
                    ("autovacuum_work_mem", "2GB"),
                    ("min_wal_size", "4GB"),
                    ("max_wal_size", "16GB"),
                    ("max_worker_processes", "8"),
                    ("max_parallel_workers_per_gather", "4"),
                    ("max_parallel_workers", "8"),
                    ("max_parallel_maintenance_workers", "4"),
                ],
                notes: &[
                    "wal_compression = lz4 requires PostgreSQL to be compiled with --with-lz4",
                ],
            },
            Case {
                name: "dw_64gb_16cpu_ssd_db_fits_in_ram_pg16",
                input: TuneInput {
                    workload: Workload::Dw,
                    memory_bytes: 64 * GIB,
                    cpus: Some(16),
                    connections: None,
                    storage: Storage::Ssd,
                    pg_version: 16,
                    os: Os::Linux,
                    db_size_bytes: Some(10 * GIB),
                },
                params: &[
                    ("max_connections", "40"),
                    ("shared_buffers", "16GB"),
                    ("effective_cache_size", "48GB"),
                    ("maintenance_work_mem", "8GB"),
                    ("checkpoint_completion_target", "0.9"),
                    ("wal_buffers", "16MB"),
                    ("default_statistics_target", "500"),
                    ("random_page_cost", "1.1"),
                    ("effective_io_concurrency", "200"),
                    ("work_mem", "194734kB"),
                    ("huge_pages", "try"),
                    ("wal_compression", "lz4"),
                    ("autovacuum_max_workers", "4"),
                    ("autovacuum_work_mem", "2GB"),
                    ("min_wal_size", "4GB"),
                    ("max_wal_size", "16GB"),
                    ("max_worker_processes", "16"),
                    ("max_parallel_workers_per_gather", "8"),
                    ("max_parallel_workers", "16"),
                    ("max_parallel_maintenance_workers", "4"),
                ],
                notes: &[
                    "wal_compression = lz4 requires PostgreSQL to be compiled with --with-lz4",
                ],
            },
            Case {
                name: "mixed_16gb_8cpu_san_pg16",
                input: TuneInput {
                    workload: Workload::Mixed,
                    memory_bytes: 16 * GIB,
                    cpus: Some(8),
                    connections: None,
                    storage: Storage::San,
                    pg_version: 16,
                    os: Os::Linux,
                    db_size_bytes: None,
                },
                params: &[
                    ("max_connections", "100"),
                    ("shared_buffers", "4GB"),
                    ("effective_cache_size", "12GB"),
                    ("maintenance_work_mem", "1GB"),
                    ("checkpoint_completion_target", "0.9"),
                    ("wal_buffers", "16MB"),
                    ("default_statistics_target", "100"),
                    ("random_page_cost", "1.1"),
                    ("effective_io_concurrency", "300"),
                    ("work_mem", "19418kB"),
                    ("huge_pages", "try"),
                    ("jit", "off"),
                    ("wal_compression", "lz4"),
                    ("min_wal_size", "1GB"),
                    ("max_wal_size", "4GB"),
                    ("max_worker_processes", "8"),
                    ("max_parallel_workers_per_gather", "4"),
                    ("max_parallel_workers", "8"),
                    ("max_parallel_maintenance_workers", "4"),
                ],
                notes: &[
                    "wal_compression = lz4 requires PostgreSQL to be compiled with --with-lz4",
                ],
            },
            Case {
                name: "mixed_4gb_300conn_hdd_db_over_3x_ram_pg15",
                input: TuneInput {
                    workload: Workload::Mixed,
                    memory_bytes: 4 * GIB,
                    cpus: None,
                    connections: Some(300),
                    storage: Storage::Hdd,
                    pg_version: 15,
                    os: Os::Linux,
                    db_size_bytes: Some(100 * GIB),
                },
                params: &[
                    ("max_connections", "300"),
                    ("shared_buffers", "1GB"),
                    ("effective_cache_size", "3GB"),
                    ("maintenance_work_mem", "256MB"),
                    ("checkpoint_completion_target", "0.9"),
                    ("wal_buffers", "16MB"),
                    ("default_statistics_target", "100"),
                    ("random_page_cost", "4"),
                    ("effective_io_concurrency", "2"),
                    ("work_mem", "4MB"),
                    ("huge_pages", "off"),
                    ("jit", "off"),
                    ("wal_compression", "lz4"),
                    ("min_wal_size", "1GB"),
                    ("max_wal_size", "4GB"),
                ],
                notes: &[
                    "wal_compression = lz4 requires PostgreSQL to be compiled with --with-lz4",
                ],
            },
            Case {
                name: "desktop_4gb_2cpu_ssd_pg17",
                input: TuneInput {
                    workload: Workload::Desktop,
                    memory_bytes: 4 * GIB,
                    cpus: Some(2),
                    connections: None,
                    storage: Storage::Ssd,
                    pg_version: 17,
                    os: Os::Linux,
                    db_size_bytes: None,
                },
                params: &[
                    ("max_connections", "20"),
                    ("shared_buffers", "256MB"),
                    ("effective_cache_size", "1GB"),
                    ("maintenance_work_mem", "256MB"),
                    ("checkpoint_completion_target", "0.9"),
                    ("wal_buffers", "7864kB"),
                    ("default_statistics_target", "100"),
                    ("random_page_cost", "1.1"),
                    ("effective_io_concurrency", "200"),
                    ("work_mem", "7801kB"),
                    ("huge_pages", "off"),
                    ("wal_compression", "lz4"),
                    ("min_wal_size", "100MB"),
                    ("max_wal_size", "2GB"),
                    ("wal_level", "minimal"),
                    ("max_wal_senders", "0"),
                ],
                notes: &[
                    "wal_compression = lz4 requires PostgreSQL to be compiled with --with-lz4",
                ],
            },
            Case {
                name: "desktop_1gb_hdd_pg16",
                input: TuneInput {
                    workload: Workload::Desktop,
                    memory_bytes: GIB,
                    cpus: None,
                    connections: None,
                    storage: Storage::Hdd,
                    pg_version: 16,
                    os: Os::Linux,
                    db_size_bytes: None,
                },
                params: &[
                    ("max_connections", "20"),
                    ("shared_buffers", "64MB"),
                    ("effective_cache_size", "256MB"),
                    ("maintenance_work_mem", "64MB"),
                    ("checkpoint_completion_target", "0.9"),
                    ("wal_buffers", "1966kB"),
                    ("default_statistics_target", "100"),
                    ("random_page_cost", "4"),
                    ("effective_io_concurrency", "2"),
                    ("work_mem", "4MB"),
                    ("huge_pages", "off"),
                    ("wal_compression", "lz4"),
                    ("min_wal_size", "100MB"),
                    ("max_wal_size", "2GB"),
                    ("wal_level", "minimal"),
                    ("max_wal_senders", "0"),
                ],
                notes: &[
                    "wal_compression = lz4 requires PostgreSQL to be compiled with --with-lz4",
                ],
            },
            Case {
                name: "web_256gb_32cpu_20conn_windows_pg17",
                input: TuneInput {
                    workload: Workload::Web,
                    memory_bytes: 256 * GIB,
                    cpus: Some(32),
                    connections: Some(20),
                    storage: Storage::Ssd,
                    pg_version: 17,
                    os: Os::Windows,
                    db_size_bytes: None,
                },
                params: &[
                    ("max_connections", "20"),
                    ("shared_buffers", "64GB"),
                    ("effective_cache_size", "192GB"),
                    ("maintenance_work_mem", "2047MB"),
                    ("checkpoint_completion_target", "0.9"),
                    ("wal_buffers", "16MB"),
                    ("default_statistics_target", "100"),
                    ("random_page_cost", "1.1"),
                    ("work_mem", "1290555kB"),
                    ("huge_pages", "try"),
                    ("jit", "off"),
                    ("wal_compression", "lz4"),
                    ("autovacuum_max_workers", "5"),
                    ("min_wal_size", "1GB"),
                    ("max_wal_size", "4GB"),
                    ("max_worker_processes", "32"),
                    ("max_parallel_workers_per_gather", "4"),
                    ("max_parallel_workers", "32"),
                    ("max_parallel_maintenance_workers", "4"),
                ],
                notes: &[
                    "this tool not being optimal for very high memory systems",
                    "wal_compression = lz4 requires PostgreSQL to be compiled with --with-lz4",
                ],
            },
            Case {
                name: "web_256gb_4cpu_20conn_windows_pg17_work_mem_cap",
                input: TuneInput {
                    workload: Workload::Web,
                    memory_bytes: 256 * GIB,
                    cpus: Some(4),
                    connections: Some(20),
                    storage: Storage::Ssd,
                    pg_version: 17,
                    os: Os::Windows,
                    db_size_bytes: None,
                },
                params: &[
                    ("max_connections", "20"),
                    ("shared_buffers", "64GB"),
                    ("effective_cache_size", "192GB"),
                    ("maintenance_work_mem", "2047MB"),
                    ("checkpoint_completion_target", "0.9"),
                    ("wal_buffers", "16MB"),
                    ("default_statistics_target", "100"),
                    ("random_page_cost", "1.1"),
                    ("work_mem", "2047MB"),
                    ("huge_pages", "try"),
                    ("jit", "off"),
                    ("wal_compression", "lz4"),
                    ("min_wal_size", "1GB"),
                    ("max_wal_size", "4GB"),
                    ("max_worker_processes", "4"),
                    ("max_parallel_workers_per_gather", "2"),
                    ("max_parallel_workers", "4"),
                    ("max_parallel_maintenance_workers", "2"),
                ],
                notes: &[
                    "this tool not being optimal for very high memory systems",
                    "wal_compression = lz4 requires PostgreSQL to be compiled with --with-lz4",
                ],
            },
            Case {
                name: "oltp_64gb_8cpu_windows_pg16",
                input: TuneInput {
                    workload: Workload::Oltp,
                    memory_bytes: 64 * GIB,
                    cpus: Some(8),
                    connections: None,
                    storage: Storage::Ssd,
                    pg_version: 16,
                    os: Os::Windows,
                    db_size_bytes: None,
                },
                params: &[
                    ("max_connections", "300"),
                    ("shared_buffers", "16GB"),
                    ("effective_cache_size", "48GB"),
                    ("maintenance_work_mem", "2047MB"),
                    ("checkpoint_completion_target", "0.9"),
                    ("wal_buffers", "16MB"),
                    ("default_statistics_target", "100"),
                    ("random_page_cost", "1.1"),
                    ("work_mem", "54471kB"),
                    ("huge_pages", "try"),
                    ("jit", "off"),
                    ("wal_compression", "lz4"),
                    ("min_wal_size", "2GB"),
                    ("max_wal_size", "8GB"),
                    ("max_worker_processes", "8"),
                    ("max_parallel_workers_per_gather", "4"),
                    ("max_parallel_workers", "8"),
                    ("max_parallel_maintenance_workers", "4"),
                ],
                notes: &[
                    "wal_compression = lz4 requires PostgreSQL to be compiled with --with-lz4",
                ],
            },
            Case {
                name: "desktop_256gb_16cpu_hdd_windows_pg15",
                input: TuneInput {
                    workload: Workload::Desktop,
                    memory_bytes: 256 * GIB,
                    cpus: Some(16),
                    connections: None,
                    storage: Storage::Hdd,
                    pg_version: 15,
                    os: Os::Windows,
                    db_size_bytes: None,
                },
                params: &[
                    ("max_connections", "20"),
                    ("shared_buffers", "16GB"),
                    ("effective_cache_size", "64GB"),
                    ("maintenance_work_mem", "2047MB"),
                    ("checkpoint_completion_target", "0.9"),
                    ("wal_buffers", "16MB"),
                    ("default_statistics_target", "100"),
                    ("random_page_cost", "4"),
                    ("work_mem", "388361kB"),
                    ("huge_pages", "try"),
                    ("wal_compression", "lz4"),
                    ("autovacuum_max_workers", "4"),
                    ("min_wal_size", "100MB"),
                    ("max_wal_size", "2GB"),
                    ("max_worker_processes", "16"),
                    ("max_parallel_workers_per_gather", "4"),
                    ("max_parallel_workers", "16"),
                    ("max_parallel_maintenance_workers", "4"),
                    ("wal_level", "minimal"),
                    ("max_wal_senders", "0"),
                ],
                notes: &[
                    "this tool not being optimal for very high memory systems",
                    "wal_compression = lz4 requires PostgreSQL to be compiled with --with-lz4",
                ],
            },
            Case {
                name: "web_128gb_16cpu_mac_pg15",
                input: TuneInput {
                    workload: Workload::Web,
                    memory_bytes: 128 * GIB,
                    cpus: Some(16),
                    connections: None,
                    storage: Storage::Ssd,
                    pg_version: 15,
                    os: Os::Mac,
                    db_size_bytes: None,
                },
                params: &[
                    ("max_connections", "200"),
                    ("shared_buffers", "32GB"),
                    ("effective_cache_size", "96GB"),
                    ("maintenance_work_mem", "8GB"),
                    ("checkpoint_completion_target", "0.9"),
                    ("wal_buffers", "16MB"),
                    ("default_statistics_target", "100"),
                    ("random_page_cost", "1.1"),
                    ("work_mem", "155344kB"),
                    ("huge_pages", "off"),
                    ("jit", "off"),
                    ("wal_compression", "lz4"),
                    ("autovacuum_max_workers", "4"),
                    ("autovacuum_work_mem", "2GB"),
                    ("min_wal_size", "1GB"),
                    ("max_wal_size", "4GB"),
                    ("max_worker_processes", "16"),
                    ("max_parallel_workers_per_gather", "4"),
                    ("max_parallel_workers", "16"),
                    ("max_parallel_maintenance_workers", "4"),
                ],
                notes: &[
                    "this tool not being optimal for very high memory systems",
                    "wal_compression = lz4 requires PostgreSQL to be compiled with --with-lz4",
                ],
            },
            Case {
                name: "dw_8gb_4cpu_hdd_mac_pg17",
                input: TuneInput {
                    workload: Workload::Dw,
                    memory_bytes: 8 * GIB,
                    cpus: Some(4),
                    connections: None,
                    storage: Storage::Hdd,
                    pg_version: 17,
                    os: Os::Mac,
                    db_size_bytes: None,
                },
                params: &[
                    ("max_connections", "40"),
                    ("shared_buffers", "2GB"),
                    ("effective_cache_size", "6GB"),
                    ("maintenance_work_mem", "1GB"),
                    ("checkpoint_completion_target", "0.9"),
                    ("wal_buffers", "16MB"),
                    ("default_statistics_target", "500"),
                    ("random_page_cost", "4"),
                    ("work_mem", "23831kB"),
                    ("huge_pages", "off"),
                    ("wal_compression", "lz4"),
                    ("min_wal_size", "4GB"),
                    ("max_wal_size", "16GB"),
                    ("max_worker_processes", "4"),
                    ("max_parallel_workers_per_gather", "2"),
                    ("max_parallel_workers", "4"),
                    ("max_parallel_maintenance_workers", "2"),
                ],
                notes: &[
                    "wal_compression = lz4 requires PostgreSQL to be compiled with --with-lz4",
                ],
            },
            Case {
                name: "web_64gb_64cpu_nvme_linux_pg18",
                input: TuneInput {
                    workload: Workload::Web,
                    memory_bytes: 64 * GIB,
                    cpus: Some(64),
                    connections: None,
                    storage: Storage::Nvme,
                    pg_version: 18,
                    os: Os::Linux,
                    db_size_bytes: None,
                },
                params: &[
                    ("max_connections", "200"),
                    ("shared_buffers", "16GB"),
                    ("effective_cache_size", "48GB"),
                    ("maintenance_work_mem", "4GB"),
                    ("checkpoint_completion_target", "0.9"),
                    ("wal_buffers", "16MB"),
                    ("default_statistics_target", "100"),
                    ("random_page_cost", "1.1"),
                    ("effective_io_concurrency", "1000"),
                    ("work_mem", "63550kB"),
                    ("huge_pages", "try"),
                    ("jit", "off"),
                    ("wal_compression", "lz4"),
                    ("autovacuum_max_workers", "5"),
                    ("autovacuum_work_mem", "2GB"),
                    ("io_method", "io_uring"),
                    ("min_wal_size", "1GB"),
                    ("max_wal_size", "4GB"),
                    ("max_worker_processes", "64"),
                    ("max_parallel_workers_per_gather", "4"),
                    ("max_parallel_workers", "64"),
                    ("max_parallel_maintenance_workers", "4"),
                ],
                notes: &[
                    "wal_compression = lz4 requires PostgreSQL to be compiled with --with-lz4",
                    "io_method = io_uring requires PostgreSQL to be compiled with --with-liburing",
                ],
            },
            Case {
                name: "dw_64gb_16cpu_nvme_linux_pg18",
                input: TuneInput {
                    workload: Workload::Dw,
                    memory_bytes: 64 * GIB,
                    cpus: Some(16),
                    connections: None,
                    storage: Storage::Nvme,
                    pg_version: 18,
                    os: Os::Linux,
                    db_size_bytes: None,
                },
                params: &[
                    ("max_connections", "40"),
                    ("shared_buffers", "16GB"),
                    ("effective_cache_size", "48GB"),
                    ("maintenance_work_mem", "8GB"),
                    ("checkpoint_completion_target", "0.9"),
                    ("wal_buffers", "16MB"),
                    ("default_statistics_target", "500"),
                    ("random_page_cost", "4"),
                    ("effective_io_concurrency", "1000"),
                    ("work_mem", "149796kB"),
                    ("huge_pages", "try"),
                    ("wal_compression", "lz4"),
                    ("autovacuum_max_workers", "4"),
                    ("autovacuum_work_mem", "2GB"),
                    ("io_method", "io_uring"),
                    ("min_wal_size", "4GB"),
                    ("max_wal_size", "16GB"),
                    ("max_worker_processes", "16"),
                    ("max_parallel_workers_per_gather", "8"),
                    ("max_parallel_workers", "16"),
                    ("max_parallel_maintenance_workers", "4"),
                ],
                notes: &[
                    "wal_compression = lz4 requires PostgreSQL to be compiled with --with-lz4",
                    "io_method = io_uring requires PostgreSQL to be compiled with --with-liburing",
                    "Cost parameters for Data Warehouses on NVMe drives are left at defaults to avoid catastrophic index scan selections. Monitor query planner behavior and adjust random_page_cost if necessary",
                ],
            },
            Case {
                name: "oltp_256gb_64cpu_20conn_windows_pg18",
                input: TuneInput {
                    workload: Workload::Oltp,
                    memory_bytes: 256 * GIB,
                    cpus: Some(64),
                    connections: Some(20),
                    storage: Storage::Ssd,
                    pg_version: 18,
                    os: Os::Windows,
                    db_size_bytes: None,
                },
                params: &[
                    ("max_connections", "20"),
                    ("shared_buffers", "64GB"),
                    ("effective_cache_size", "192GB"),
                    ("maintenance_work_mem", "8GB"),
                    ("checkpoint_completion_target", "0.9"),
                    ("wal_buffers", "16MB"),
                    ("default_statistics_target", "100"),
                    ("random_page_cost", "1.1"),
                    ("work_mem", "798915kB"),
                    ("huge_pages", "try"),
                    ("jit", "off"),
                    ("wal_compression", "lz4"),
                    ("autovacuum_max_workers", "5"),
                    ("autovacuum_work_mem", "2GB"),
                    ("io_method", "worker"),
                    ("io_workers", "16"),
                    ("min_wal_size", "2GB"),
                    ("max_wal_size", "8GB"),
                    ("max_worker_processes", "64"),
                    ("max_parallel_workers_per_gather", "4"),
                    ("max_parallel_workers", "64"),
                    ("max_parallel_maintenance_workers", "4"),
                ],
                notes: &[
                    "this tool not being optimal for very high memory systems",
                    "wal_compression = lz4 requires PostgreSQL to be compiled with --with-lz4",
                ],
            },
            Case {
                name: "desktop_8gb_hdd_windows_pg18",
                input: TuneInput {
                    workload: Workload::Desktop,
                    memory_bytes: 8 * GIB,
                    cpus: None,
                    connections: None,
                    storage: Storage::Hdd,
                    pg_version: 18,
                    os: Os::Windows,
                    db_size_bytes: None,
                },
                params: &[
                    ("max_connections", "20"),
                    ("shared_buffers", "512MB"),
                    ("effective_cache_size", "2GB"),
                    ("maintenance_work_mem", "512MB"),
                    ("checkpoint_completion_target", "0.9"),
                    ("wal_buffers", "16MB"),
                    ("default_statistics_target", "100"),
                    ("random_page_cost", "4"),
                    ("work_mem", "15603kB"),
                    ("huge_pages", "off"),
                    ("wal_compression", "lz4"),
                    ("io_method", "worker"),
                    ("min_wal_size", "100MB"),
                    ("max_wal_size", "2GB"),
                    ("wal_level", "minimal"),
                    ("max_wal_senders", "0"),
                ],
                notes: &[
                    "wal_compression = lz4 requires PostgreSQL to be compiled with --with-lz4",
                ],
            },
            Case {
                name: "web_4gb_4cpu_pg14",
                input: TuneInput {
                    workload: Workload::Web,
                    memory_bytes: 4 * GIB,
                    cpus: Some(4),
                    connections: None,
                    storage: Storage::Ssd,
                    pg_version: 14,
                    os: Os::Linux,
                    db_size_bytes: None,
                },
                params: &[
                    ("max_connections", "200"),
                    ("shared_buffers", "1GB"),
                    ("effective_cache_size", "3GB"),
                    ("maintenance_work_mem", "256MB"),
                    ("checkpoint_completion_target", "0.9"),
                    ("wal_buffers", "16MB"),
                    ("default_statistics_target", "100"),
                    ("random_page_cost", "1.1"),
                    ("effective_io_concurrency", "200"),
                    ("work_mem", "5140kB"),
                    ("huge_pages", "off"),
                    ("jit", "off"),
                    ("wal_compression", "on"),
                    ("min_wal_size", "1GB"),
                    ("max_wal_size", "4GB"),
                    ("max_worker_processes", "4"),
                    ("max_parallel_workers_per_gather", "2"),
                    ("max_parallel_workers", "4"),
                    ("max_parallel_maintenance_workers", "2"),
                ],
                notes: &[],
            },
            Case {
                name: "web_2gb_4cpu_pg11",
                input: TuneInput {
                    workload: Workload::Web,
                    memory_bytes: 2 * GIB,
                    cpus: Some(4),
                    connections: None,
                    storage: Storage::Ssd,
                    pg_version: 11,
                    os: Os::Linux,
                    db_size_bytes: None,
                },
                params: &[
                    ("max_connections", "200"),
                    ("shared_buffers", "512MB"),
                    ("effective_cache_size", "1536MB"),
                    ("maintenance_work_mem", "128MB"),
                    ("checkpoint_completion_target", "0.9"),
                    ("wal_buffers", "16MB"),
                    ("default_statistics_target", "100"),
                    ("random_page_cost", "1.1"),
                    ("effective_io_concurrency", "200"),
                    ("work_mem", "4MB"),
                    ("huge_pages", "off"),
                    ("wal_compression", "on"),
                    ("min_wal_size", "1GB"),
                    ("max_wal_size", "4GB"),
                    ("max_worker_processes", "4"),
                    ("max_parallel_workers_per_gather", "2"),
                    ("max_parallel_workers", "4"),
                    ("max_parallel_maintenance_workers", "2"),
                ],
                notes: &[],
            },
            Case {
                name: "web_8gb_4cpu_pg10",
                input: TuneInput {
                    workload: Workload::Web,
                    memory_bytes: 8 * GIB,
                    cpus: Some(4),
                    connections: None,
                    storage: Storage::Ssd,
                    pg_version: 10,
                    os: Os::Linux,
                    db_size_bytes: None,
                },
                params: &[
                    ("max_connections", "200"),
                    ("shared_buffers", "2GB"),
                    ("effective_cache_size", "6GB"),
                    ("maintenance_work_mem", "512MB"),
                    ("checkpoint_completion_target", "0.9"),
                    ("wal_buffers", "16MB"),
                    ("default_statistics_target", "100"),
                    ("random_page_cost", "1.1"),
                    ("effective_io_concurrency", "200"),
                    ("work_mem", "10280kB"),
                    ("huge_pages", "try"),
                    ("wal_compression", "on"),
                    ("min_wal_size", "1GB"),
                    ("max_wal_size", "4GB"),
                    ("max_worker_processes", "4"),
                    ("max_parallel_workers_per_gather", "2"),
                    ("max_parallel_workers", "4"),
                ],
                notes: &[],
            },
            Case {
                name: "mixed_512mb_minimum_pg17",
                input: TuneInput {
                    workload: Workload::Mixed,
                    memory_bytes: 512 * MIB,
                    cpus: None,
                    connections: None,
                    storage: Storage::Ssd,
                    pg_version: 17,
                    os: Os::Linux,
                    db_size_bytes: None,
                },
                params: &[
                    ("max_connections", "100"),
                    ("shared_buffers", "128MB"),
                    ("effective_cache_size", "384MB"),
                    ("maintenance_work_mem", "32MB"),
                    ("checkpoint_completion_target", "0.9"),
                    ("wal_buffers", "3932kB"),
                    ("default_statistics_target", "100"),
                    ("random_page_cost", "1.1"),
                    ("effective_io_concurrency", "200"),
                    ("work_mem", "4MB"),
                    ("huge_pages", "off"),
                    ("jit", "off"),
                    ("wal_compression", "lz4"),
                    ("min_wal_size", "1GB"),
                    ("max_wal_size", "4GB"),
                ],
                notes: &[
                    "wal_compression = lz4 requires PostgreSQL to be compiled with --with-lz4",
                ],
            },
            Case {
                name: "oltp_3000mb_4cpu_50conn_db_fits_in_ram_pg17",
                input: TuneInput {
                    workload: Workload::Oltp,
                    memory_bytes: 3000 * MIB,
                    cpus: Some(4),
                    connections: Some(50),
                    storage: Storage::Ssd,
                    pg_version: 17,
                    os: Os::Linux,
                    db_size_bytes: Some(GIB),
                },
                params: &[
                    ("max_connections", "50"),
                    ("shared_buffers", "750MB"),
                    ("effective_cache_size", "2250MB"),
                    ("maintenance_work_mem", "192000kB"),
                    ("checkpoint_completion_target", "0.9"),
                    ("wal_buffers", "16MB"),
                    ("default_statistics_target", "100"),
                    ("random_page_cost", "1.1"),
                    ("effective_io_concurrency", "200"),
                    ("work_mem", "18488kB"),
                    ("huge_pages", "off"),
                    ("jit", "off"),
                    ("wal_compression", "lz4"),
                    ("min_wal_size", "2GB"),
                    ("max_wal_size", "8GB"),
                    ("max_worker_processes", "4"),
                    ("max_parallel_workers_per_gather", "2"),
                    ("max_parallel_workers", "4"),
                    ("max_parallel_maintenance_workers", "2"),
                ],
                notes: &[
                    "wal_compression = lz4 requires PostgreSQL to be compiled with --with-lz4",
                ],
            },
            Case {
                name: "web_32gb_16cpu_200conn_db_over_3x_ram_pg16",
                input: TuneInput {
                    workload: Workload::Web,
                    memory_bytes: 32 * GIB,
                    cpus: Some(16),
                    connections: Some(200),
                    storage: Storage::Ssd,
                    pg_version: 16,
                    os: Os::Linux,
                    db_size_bytes: Some(97 * GIB),
                },
                params: &[
                    ("max_connections", "200"),
                    ("shared_buffers", "8GB"),
                    ("effective_cache_size", "24GB"),
                    ("maintenance_work_mem", "2GB"),
                    ("checkpoint_completion_target", "0.9"),
                    ("wal_buffers", "16MB"),
                    ("default_statistics_target", "100"),
                    ("random_page_cost", "1.1"),
                    ("effective_io_concurrency", "200"),
                    ("work_mem", "34952kB"),
                    ("huge_pages", "try"),
                    ("jit", "off"),
                    ("wal_compression", "lz4"),
                    ("autovacuum_max_workers", "4"),
                    ("autovacuum_work_mem", "2GB"),
                    ("min_wal_size", "1GB"),
                    ("max_wal_size", "4GB"),
                    ("max_worker_processes", "16"),
                    ("max_parallel_workers_per_gather", "4"),
                    ("max_parallel_workers", "16"),
                    ("max_parallel_maintenance_workers", "4"),
                ],
                notes: &[
                    "wal_compression = lz4 requires PostgreSQL to be compiled with --with-lz4",
                ],
            },
            Case {
                name: "dw_4gb_2cpu_ssd_pg16",
                input: TuneInput {
                    workload: Workload::Dw,
                    memory_bytes: 4 * GIB,
                    cpus: Some(2),
                    connections: None,
                    storage: Storage::Ssd,
                    pg_version: 16,
                    os: Os::Linux,
                    db_size_bytes: None,
                },
                params: &[
                    ("max_connections", "40"),
                    ("shared_buffers", "1GB"),
                    ("effective_cache_size", "3GB"),
                    ("maintenance_work_mem", "512MB"),
                    ("checkpoint_completion_target", "0.9"),
                    ("wal_buffers", "16MB"),
                    ("default_statistics_target", "500"),
                    ("random_page_cost", "4"),
                    ("effective_io_concurrency", "200"),
                    ("work_mem", "10922kB"),
                    ("huge_pages", "off"),
                    ("wal_compression", "lz4"),
                    ("min_wal_size", "4GB"),
                    ("max_wal_size", "16GB"),
                ],
                notes: &[
                    "wal_compression = lz4 requires PostgreSQL to be compiled with --with-lz4",
                    "Cost parameters for Data Warehouses on SSDs are left at defaults to avoid catastrophic index scan selections. Monitor query planner behavior and adjust random_page_cost if necessary",
                ],
            },
            Case {
                name: "dw_32gb_12cpu_nvme_pg17",
                input: TuneInput {
                    workload: Workload::Dw,
                    memory_bytes: 32 * GIB,
                    cpus: Some(12),
                    connections: None,
                    storage: Storage::Nvme,
                    pg_version: 17,
                    os: Os::Linux,
                    db_size_bytes: Some(96 * GIB),
                },
                params: &[
                    ("max_connections", "40"),
                    ("shared_buffers", "8GB"),
                    ("effective_cache_size", "24GB"),
                    ("maintenance_work_mem", "4GB"),
                    ("checkpoint_completion_target", "0.9"),
                    ("wal_buffers", "16MB"),
                    ("default_statistics_target", "500"),
                    ("random_page_cost", "4"),
                    ("effective_io_concurrency", "1000"),
                    ("work_mem", "80659kB"),
                    ("huge_pages", "try"),
                    ("wal_compression", "lz4"),
                    ("autovacuum_work_mem", "2GB"),
                    ("min_wal_size", "4GB"),
                    ("max_wal_size", "16GB"),
                    ("max_worker_processes", "12"),
                    ("max_parallel_workers_per_gather", "6"),
                    ("max_parallel_workers", "12"),
                    ("max_parallel_maintenance_workers", "4"),
                ],
                notes: &[
                    "wal_compression = lz4 requires PostgreSQL to be compiled with --with-lz4",
                    "Cost parameters for Data Warehouses on NVMe drives are left at defaults to avoid catastrophic index scan selections. Monitor query planner behavior and adjust random_page_cost if necessary",
                ],
            },
            Case {
                name: "mixed_1024gb_96cpu_1000conn_san_pg17",
                input: TuneInput {
                    workload: Workload::Mixed,
                    memory_bytes: 1024 * GIB,
                    cpus: Some(96),
                    connections: Some(1000),
                    storage: Storage::San,
                    pg_version: 17,
                    os: Os::Linux,
                    db_size_bytes: None,
                },
                params: &[
                    ("max_connections", "1000"),
                    ("shared_buffers", "256GB"),
                    ("effective_cache_size", "768GB"),
                    ("maintenance_work_mem", "8GB"),
                    ("checkpoint_completion_target", "0.9"),
                    ("wal_buffers", "16MB"),
                    ("default_statistics_target", "100"),
                    ("random_page_cost", "1.1"),
                    ("effective_io_concurrency", "300"),
                    ("work_mem", "122461kB"),
                    ("huge_pages", "try"),
                    ("jit", "off"),
                    ("wal_compression", "lz4"),
                    ("autovacuum_max_workers", "5"),
                    ("autovacuum_work_mem", "2GB"),
                    ("min_wal_size", "1GB"),
                    ("max_wal_size", "4GB"),
                    ("max_worker_processes", "96"),
                    ("max_parallel_workers_per_gather", "4"),
                    ("max_parallel_workers", "96"),
                    ("max_parallel_maintenance_workers", "4"),
                ],
                notes: &[
                    "this tool not being optimal for very high memory systems",
                    "wal_compression = lz4 requires PostgreSQL to be compiled with --with-lz4",
                ],
            },
            Case {
                name: "web_meminfo_16318412kb_8cpu_pg17_truncated_to_15935mb",
                input: TuneInput {
                    workload: Workload::Web,
                    memory_bytes: 16_318_412 * 1024,
                    cpus: Some(8),
                    connections: None,
                    storage: Storage::Ssd,
                    pg_version: 17,
                    os: Os::Linux,
                    db_size_bytes: None,
                },
                params: &[
                    ("max_connections", "200"),
                    ("shared_buffers", "4079360kB"),
                    ("effective_cache_size", "12238080kB"),
                    ("maintenance_work_mem", "1019840kB"),
                    ("checkpoint_completion_target", "0.9"),
                    ("wal_buffers", "16MB"),
                    ("default_statistics_target", "100"),
                    ("random_page_cost", "1.1"),
                    ("effective_io_concurrency", "200"),
                    ("work_mem", "19612kB"),
                    ("huge_pages", "try"),
                    ("jit", "off"),
                    ("wal_compression", "lz4"),
                    ("min_wal_size", "1GB"),
                    ("max_wal_size", "4GB"),
                    ("max_worker_processes", "8"),
                    ("max_parallel_workers_per_gather", "4"),
                    ("max_parallel_workers", "8"),
                    ("max_parallel_maintenance_workers", "4"),
                ],
                notes: &[
                    "wal_compression = lz4 requires PostgreSQL to be compiled with --with-lz4",
                ],
            },
        ]
    }

    #[test]
    fn matches_pgtune_for_every_case() {
        let cases = cases();
        assert!(cases.len() >= 20);
        for case in cases {
            let got =
                recommend(&case.input).unwrap_or_else(|e| panic!("{}: refused: {e}", case.name));
            let params: Vec<(&str, &str)> = got
                .parameters
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            assert_eq!(params, case.params, "{}: parameters", case.name);
            assert_eq!(got.notes, case.notes, "{}: notes", case.name);
        }
    }

    fn base() -> TuneInput {
        TuneInput {
            workload: Workload::Web,
            memory_bytes: 4 * GIB,
            cpus: None,
            connections: None,
            storage: Storage::Ssd,
            pg_version: 17,
            os: Os::Linux,
            db_size_bytes: None,
        }
    }

    #[test]
    fn refuses_what_pgtune_refuses() {
        let low = TuneInput {
            memory_bytes: 512 * MIB - 1,
            ..base()
        };
        assert_eq!(
            recommend(&low),
            Err(TuneError::MemoryTooLow {
                bytes: 512 * MIB - 1,
                mib: 511
            })
        );
        let high = TuneInput {
            memory_bytes: 999_999 * GIB + MIB,
            ..base()
        };
        assert_eq!(
            recommend(&high),
            Err(TuneError::MemoryTooHigh {
                mib: 999_999 * 1024 + 1
            })
        );
        for version in [9, 19, 0] {
            let input = TuneInput {
                pg_version: version,
                ..base()
            };
            assert_eq!(
                recommend(&input),
                Err(TuneError::UnsupportedVersion(version))
            );
        }
        for cpus in [0, 1_000_000] {
            let input = TuneInput {
                cpus: Some(cpus),
                ..base()
            };
            assert_eq!(recommend(&input), Err(TuneError::CpusOutOfRange(cpus)));
        }
        for connections in [0, 19, 1_000_000] {
            let input = TuneInput {
                connections: Some(connections),
                ..base()
            };
            assert_eq!(
                recommend(&input),
                Err(TuneError::ConnectionsOutOfRange(connections))
            );
        }
    }

    #[test]
    fn accepts_pgtune_bounds() {
        let edges = [
            TuneInput {
                memory_bytes: 512 * MIB,
                ..base()
            },
            TuneInput {
                memory_bytes: 999_999 * GIB,
                ..base()
            },
            TuneInput {
                cpus: Some(1),
                connections: Some(20),
                ..base()
            },
            TuneInput {
                cpus: Some(999_999),
                connections: Some(999_999),
                ..base()
            },
        ];
        for input in edges {
            assert!(recommend(&input).is_ok(), "{input:?}");
        }
        for &version in supported_versions() {
            let input = TuneInput {
                pg_version: version,
                ..base()
            };
            assert!(recommend(&input).is_ok(), "{version}");
        }
    }

    #[test]
    fn error_messages_name_the_limits() {
        assert_eq!(
            TuneError::UnsupportedVersion(9).to_string(),
            "PostgreSQL 9 is not a version PGTune knows (it knows 18, 17, 16, 15, 14, 13, 12, 11, 10)"
        );
        assert_eq!(
            TuneError::ConnectionsOutOfRange(5).to_string(),
            "5 connections is outside PGTune's range of 20 to 999999"
        );
    }

    #[test]
    fn versions_are_pgtunes() {
        assert_eq!(supported_versions(), &[18, 17, 16, 15, 14, 13, 12, 11, 10]);
    }

    #[test]
    fn memory_is_counted_in_whole_mib() {
        let exact = recommend(&TuneInput {
            memory_bytes: 3000 * MIB,
            ..base()
        })
        .unwrap();
        let ragged = recommend(&TuneInput {
            memory_bytes: 3000 * MIB + MIB - 1,
            ..base()
        })
        .unwrap();
        assert_eq!(exact, ragged);
    }

    #[test]
    fn db_size_classes() {
        let ram = 8 * GIB;
        assert_eq!(DbSize::classify(None, ram), DbSize::MidRam);
        assert_eq!(DbSize::classify(Some(ram - 1), ram), DbSize::LessRam);
        assert_eq!(DbSize::classify(Some(ram), ram), DbSize::MidRam);
        assert_eq!(DbSize::classify(Some(3 * ram), ram), DbSize::MidRam);
        assert_eq!(DbSize::classify(Some(3 * ram + 1), ram), DbSize::GreaterRam);
    }

    #[test]
    fn low_memory_warning_text() {
        // PGTune's own test: 128 MB, PostgreSQL 14 (no lz4), Linux.
        let notes = warnings(
            128 * MIB,
            Some("on"),
            None,
            Workload::Web,
            Storage::Ssd,
            DbSize::MidRam,
        );
        let notes: Vec<String> = notes.iter().map(|l| sentences(l)).collect();
        assert_eq!(
            notes,
            ["this tool not being optimal for low memory systems"]
        );
    }

    #[test]
    fn format_value_picks_the_largest_exact_unit() {
        assert_eq!(format_value(1_048_576), "1GB");
        assert_eq!(format_value(262_144), "256MB");
        assert_eq!(format_value(2_096_128), "2047MB");
        assert_eq!(format_value(149_796), "149796kB");
        assert_eq!(format_value(32), "32kB");
    }

    #[test]
    fn parses_names_like_the_cli() {
        use clap::ValueEnum;
        assert_eq!(Workload::from_str("olap", true), Ok(Workload::Dw));
        assert_eq!(Workload::from_str("dw", true), Ok(Workload::Dw));
        assert_eq!(Workload::from_str("desktop", true), Ok(Workload::Desktop));
        assert_eq!(Storage::from_str("san", true), Ok(Storage::San));
        assert_eq!(Os::from_str("mac", true), Ok(Os::Mac));
        assert!(Workload::from_str("analytics", true).is_err());
        assert_eq!(serde_json::to_string(&Workload::Oltp).unwrap(), "\"oltp\"");
        assert_eq!(serde_json::to_string(&Storage::Nvme).unwrap(), "\"nvme\"");
        assert_eq!(serde_json::to_string(&Os::Windows).unwrap(), "\"windows\"");
        assert_eq!(
            serde_json::to_string(&DbSize::GreaterRam).unwrap(),
            "\"greater_ram\""
        );
    }

    #[test]
    fn reads_mem_total() {
        let meminfo = "MemTotal:       16318412 kB\nMemFree:         1234 kB\n";
        assert_eq!(parse_mem_total(meminfo), Some(16_318_412 * 1024));
        assert_eq!(parse_mem_total("MemFree: 1 kB\n"), None);
        assert_eq!(parse_mem_total("MemTotal: x kB\n"), None);
    }

    #[test]
    fn detects_this_host() {
        let (memory, cpus) = detect_host();
        assert!(cpus.is_some_and(|n| n >= 1));
        if std::path::Path::new("/proc/meminfo").exists() {
            assert!(memory.is_some_and(|m| m > 0));
        }
    }
}
