/**
 * What the outbox keeps per file to build its manifest entry later, and the entry
 * itself. Taken when tiering offers the uploaded file, while it is still in the hot
 * tier: its `hot_files` row (stats, partition values) and its row-group offsets from
 * the local Parquet footer. The file may be evicted afterwards; its entry can still be
 * written (a retried commit, a replace to cold, a manifest merge).
 */
import type Database from 'better-sqlite3';
import { closeSync, openSync, readSync, fstatSync } from 'node:fs';
import { join } from 'node:path';
import type { Dataset, RowValue } from '../config/dataset.ts';
import type { FileStats } from '../agent/hot/parquet-writer.ts';
import type { TierRecord } from '../tiering/tier-map.ts';
import { dataFileFor, splitOffsetsOf, type DataFile } from './iceberg/data-file.ts';
import { plantFieldIdIn } from './iceberg/table-schema.ts';
import type { LoadedTable } from './iceberg/metadata.ts';

export interface FileEntryInput {
  fileSizeBytes: number;
  stats: FileStats;
  partitionValues: Record<string, RowValue>;
  /** Decimal strings (JSON has no bigint). */
  splitOffsets: string[] | null;
}

/** Footer bytes read from the end of a Parquet file (its metadata is at the end). */
const FOOTER_READ_BYTES = 1 << 20;

function readTail(path: string): Uint8Array {
  const fd = openSync(path, 'r');
  try {
    const size = fstatSync(fd).size;
    const length = Math.min(size, FOOTER_READ_BYTES);
    const buffer = Buffer.alloc(length);
    readSync(fd, buffer, 0, length, size - length);
    return buffer;
  } finally {
    closeSync(fd);
  }
}

/** The entry inputs of an uploaded data file, or null if its hot-tier record is gone. */
export function entryInputFor(db: Database.Database, stateDir: string, file: TierRecord): FileEntryInput | null {
  const row = db.prepare(`SELECT partition_json, stats_json FROM hot_files WHERE path = ?`).get(file.local_path) as
    | { partition_json: string; stats_json: string }
    | undefined;
  if (!row) return null;
  let splitOffsets: string[] | null = null;
  try {
    splitOffsets = splitOffsetsOf(readTail(join(stateDir, file.local_path))).map(String);
  } catch {
    splitOffsets = null; // optional metadata: a footer too large for the tail read only loses split planning hints
  }
  return {
    fileSizeBytes: file.size_bytes,
    stats: JSON.parse(row.stats_json) as FileStats,
    partitionValues: JSON.parse(row.partition_json) as Record<string, RowValue>,
    splitOffsets,
  };
}

/** The manifest entry of a file in `table` (stats keyed by the table's field ids: its `plant` id may be the catalog's own). */
export function toDataFile(dataset: Dataset, table: LoadedTable, plant: string, location: string, entryJson: string): DataFile {
  const input = JSON.parse(entryJson) as FileEntryInput;
  return dataFileFor({
    dataset,
    plant,
    path: location,
    fileSizeBytes: input.fileSizeBytes,
    stats: input.stats,
    partitionValues: input.partitionValues,
    splitOffsets: input.splitOffsets ? input.splitOffsets.map((o) => BigInt(o)) : null,
    plantFieldId: plantFieldIdIn(table.metadata.schemas.find((s) => s['schema-id'] === table.metadata['current-schema-id'])),
  });
}
