//! The block, the unit both cache tiers hold: the block cache in memory (`cache.rs`) and the
//! disk cache below it (`disk_cache/`) index data by key, ETag and block number. It sits below
//! both so that neither imports the other for it.

/// Cache granularity: what one random read fetches at least. 64 KiB doubled random 4 KiB
/// reads/s over 256 KiB blocks in scripts/bench-read.sh (less to move per miss) and left
/// sequential reads unchanged (they fetch many blocks per GET; bookkeeping is per block but
/// small next to copying 64 KiB).
pub const BLOCK_SIZE: u64 = 64 * 1024;
