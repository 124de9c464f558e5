/**
 * The DuckDB sandbox of on-site SQL (REFERENCE §5; names checked against DuckDB 1.5.6).
 *
 * Invariants, once `sandboxStatements` has run on a fresh in-memory instance:
 * - the only files DuckDB may open are under the hot directory and the read-through
 *   cache of evicted data files (`<state_dir>/cache/data`, tiering/data-cache.ts)
 *   (`allowed_directories`; `..` escapes, symlinks pointing out, sibling prefixes such
 *   as `hot2/` are refused);
 *   nothing else: no other file, no http, no ATTACH of a file, no INSTALL/LOAD;
 * - no extension is installed or loaded behind our back (parquet, json and icu are
 *   statically linked, nothing is downloaded);
 * - nothing spills to disk (`temp_directory` empty, `max_temp_directory_size` 0): a
 *   query over the memory limit fails instead of filling the disk;
 * - the configuration is locked: every later SET/RESET fails, for every connection.
 * Order matters: `allowed_directories` and `temp_directory` can only be changed while
 * external access is still enabled, and `lock_configuration` comes last.
 *
 * Gaps the sandbox leaves (closed by statement-guard.ts): COPY … TO can still write
 * inside the allowed directories, ATTACH ':memory:' and temporary tables are allowed.
 */
import type { LakesideConfig } from '../../config/schema.ts';

export function sqlString(value: string): string {
  return `'${value.replaceAll("'", "''")}'`;
}

export function sandboxStatements(hotDir: string, query: LakesideConfig['query'], otherDirs: string[] = []): string[] {
  const dirs = [hotDir, ...otherDirs].map((d) => (d.endsWith('/') ? d : `${d}/`));
  return [
    `SET allowed_directories = [${dirs.map(sqlString).join(', ')}]`,
    `SET temp_directory = ''`,
    `SET max_temp_directory_size = '0B'`,
    `SET memory_limit = '${query.memory_limit_bytes}B'`,
    `SET threads = ${query.threads}`,
    // Hot files never change once published (atomic rename, immutable): caching their
    // footers saves re-reading every schema at each bind (union_by_name reads them all).
    `SET parquet_metadata_cache = true`,
    `SET autoinstall_known_extensions = false`,
    `SET autoload_known_extensions = false`,
    `SET allow_community_extensions = false`,
    `SET enable_external_access = false`,
    `SET lock_configuration = true`,
  ];
}
