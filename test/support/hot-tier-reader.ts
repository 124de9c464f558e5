/**
 * Test helper: every row of a dataset currently in the hot tier — the rows of its
 * registered data files (hot_files L0 + L1, in id order; not rollups) plus the rows still landed (above
 * the `sealed_through` watermark: sealed rows awaiting their purge do not count) —
 * as plain values (time and longs as µs numbers, booleans as booleans). Crash tests
 * use it to prove "every acknowledged message exactly once".
 *
 * Without a `dataset`, column types come from the newest registered file's Arrow
 * schema and, for columns no file has yet, from the landed table's affinity.
 * Unregistered files on disk (orphans) are ignored, as the query engine ignores them.
 */
import * as arrow from 'apache-arrow';
import Database from 'better-sqlite3';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Dataset, DatasetColumn, RowValue } from '../../config/dataset.ts';
import { batchToRows } from '../../agent/hot/columns.ts';
import { decodeParquet, readArrowTable } from '../../agent/hot/parquet-reader.ts';
import { DATA_LEVELS_SQL, landedRowsWhere, landedTable, type HotFileRecord } from '../../agent/landing/schema.ts';

export interface HotTierContents {
  columns: string[];
  rows: RowValue[][];
  /** How many rows came from Parquet files, and from the landing table. */
  fromFiles: number;
  fromLanded: number;
  files: HotFileRecord[];
}

function typeOfArrow(type: arrow.DataType): DatasetColumn['type'] {
  if (arrow.DataType.isTimestamp(type)) return 'timestamp';
  if (arrow.DataType.isBool(type)) return 'boolean';
  if (arrow.DataType.isFloat(type)) return 'double';
  if (arrow.DataType.isInt(type)) return type.bitWidth === 64 ? 'long' : 'int';
  return 'string';
}

function inferDataset(name: string, landedColumns: { name: string; type: string }[], newest: arrow.Table | null): Dataset {
  const fromFile = new Map<string, DatasetColumn['type']>();
  for (const field of newest?.schema.fields ?? []) fromFile.set(field.name, typeOfArrow(field.type));
  const columns: DatasetColumn[] = landedColumns.map((c, i) => ({
    name: c.name,
    type: fromFile.get(c.name) ?? (i === 0 ? 'timestamp' : c.type === 'REAL' ? 'double' : c.type === 'INTEGER' ? 'long' : 'string'),
    nullable: i !== 0,
    fieldId: i + 1,
  }));
  return {
    name,
    columns,
    columnIndex: new Map(columns.map((c, i) => [c.name, i])),
    dedupeKey: null,
    streamKey: [],
    partitionBy: [],
    blobColumn: null,
    maxFutureSkewUs: 0,
    maxPastAgeUs: 0,
  };
}

export function readHotTier(stateDir: string, datasetName: string, options: { dbPath?: string; dataset?: Dataset } = {}): HotTierContents {
  const db = new Database(options.dbPath ?? join(stateDir, 'landing.db'), { readonly: true, fileMustExist: true });
  try {
    const table = landedTable(datasetName);
    const landedColumns = (db.prepare(`PRAGMA table_info("${table}")`).all() as { name: string; type: string }[]).filter((c) => c.name !== 'id');
    const files = db.prepare(`SELECT * FROM hot_files WHERE dataset = ? AND ${DATA_LEVELS_SQL} ORDER BY id`).all(datasetName) as HotFileRecord[];
    const bytes = files.map((f) => readFileSync(join(stateDir, f.path)));
    const newest = bytes.length > 0 ? readArrowTable(bytes[bytes.length - 1] as Uint8Array) : null;
    const dataset = options.dataset ?? inferDataset(datasetName, landedColumns, newest);
    const rows: RowValue[][] = [];
    // A loop, not push(...rows): a file of 100,000+ rows overflows a spread's argument limit.
    for (const file of bytes) for (const row of batchToRows(dataset, decodeParquet(dataset, file))) rows.push(row);
    const fromFiles = rows.length;
    const names = dataset.columns.map((c) => `"${c.name}"`).join(', ');
    for (const row of db.prepare(`SELECT ${names} FROM "${table}" WHERE ${landedRowsWhere(datasetName)} ORDER BY id`).raw().all() as RowValue[][]) {
      rows.push(row.map((value, c) => (dataset.columns[c]!.type === 'boolean' && value !== null ? value !== 0 : value)));
    }
    return { columns: dataset.columns.map((c) => c.name), rows, fromFiles, fromLanded: rows.length - fromFiles, files };
  } finally {
    db.close();
  }
}
