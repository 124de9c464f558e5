/**
 * The SQL that shapes what operators see: one view per dataset, the quarantine table.
 *
 * A dataset view is the union, by column name, of a typed empty SELECT with the
 * dataset's declared columns (so a dataset without files, or whose files predate a
 * new column, still has every column with its type) and `read_parquet` over the
 * dataset's registered files (L0 + L1) as absolute paths under the hot directory,
 * with `union_by_name` only when the files' column sets differ (filesShareSchema).
 * Hive partitioning is off: L1 paths hold `line=…` segments, but the column is in the
 * file. Types: time and timestamps TIMESTAMP WITH TIME ZONE (Iceberg timestamptz),
 * int INTEGER, long BIGINT, double DOUBLE, boolean BOOLEAN, string and blob VARCHAR.
 *
 * The quarantine table is a copy of the newest rows of the landing log's quarantine
 * (DuckDB cannot read SQLite offline: no sqlite extension), without the payload bytes
 * (`payload_bytes` gives their size).
 */
import type { Dataset, DatasetColumn } from '../../config/dataset.ts';
import { sqlString } from './sandbox.ts';

export function quoteIdent(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}

export function duckdbType(column: DatasetColumn): string {
  switch (column.type) {
    case 'timestamp':
      return 'TIMESTAMPTZ';
    case 'int':
      return 'INTEGER';
    case 'long':
      return 'BIGINT';
    case 'double':
      return 'DOUBLE';
    case 'boolean':
      return 'BOOLEAN';
    case 'string':
    case 'blob':
      return 'VARCHAR';
  }
}

export function emptySelect(dataset: Dataset): string {
  const columns = dataset.columns.map((c) => `CAST(NULL AS ${duckdbType(c)}) AS ${quoteIdent(c.name)}`).join(', ');
  return `SELECT ${columns} WHERE false`;
}

/** The dataset's field ids, ascending, comma-joined: the form of `DatasetFiles.dataFieldIds`. */
export function fieldIdSignature(dataset: Dataset): string {
  return dataset.columns
    .map((c) => c.fieldId)
    .sort((a, b) => a - b)
    .join(',');
}

/**
 * Whether every file can be read with the schema of the first (`union_by_name = false`):
 * all files hold exactly the dataset's current field ids (`fileFieldIds`: the distinct
 * sets over the files, from their stats; registry-reader.ts). Binding with
 * `union_by_name = true` reads every file's footer (≈ 115–150 ms at ≈ 1,700 files);
 * without it DuckDB binds on the first file and reads the others' footers as it scans.
 * Any file with other columns (schema evolution: added or dropped column) or unknown
 * stats keeps the union by name.
 */
export function filesShareSchema(dataset: Dataset, fileFieldIds: string[]): boolean {
  return fileFieldIds.length === 1 && fileFieldIds[0] === fieldIdSignature(dataset);
}

/** `absolutePaths` must lie under the sandbox's allowed directory; `sameSchema`: see filesShareSchema. */
export function datasetViewSql(dataset: Dataset, absolutePaths: string[], sameSchema = false): string {
  const empty = emptySelect(dataset);
  const body =
    absolutePaths.length === 0
      ? empty
      : `SELECT * FROM (${empty}) UNION ALL BY NAME SELECT * FROM read_parquet([${absolutePaths.map(sqlString).join(', ')}], union_by_name = ${!sameSchema}, hive_partitioning = false)`;
  return `CREATE OR REPLACE VIEW ${quoteIdent(dataset.name)} AS ${body}`;
}

export const QUARANTINE_TABLE = 'quarantine';

export const QUARANTINE_COLUMNS = ['id', 'received_at', 'source', 'coordinates', 'dataset', 'reason_code', 'reason', 'payload_bytes'] as const;

export const createQuarantineSql = `CREATE TABLE ${QUARANTINE_TABLE} (
  id BIGINT PRIMARY KEY, received_at TIMESTAMPTZ NOT NULL, source VARCHAR NOT NULL, coordinates VARCHAR NOT NULL,
  dataset VARCHAR, reason_code VARCHAR NOT NULL, reason VARCHAR NOT NULL, payload_bytes BIGINT NOT NULL)`;
