/** Shared set-up for the hot-tier tests: a temp state dir, a landing DB, datasets, landed rows. */
import Database from 'better-sqlite3';
import { mkdtempSync, rmSync } from 'node:fs';
import { awaitPurges } from '../../../agent/hot/purge.ts';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { resolveDataset, type Dataset, type RowValue } from '../../../config/dataset.ts';
import { datasetSchema, type DatasetConfig } from '../../../config/schema.ts';
import { sensorsConfig } from '../../support/sensor-dataset.ts';
import { applyPragmas, ensureSchema, landedRowsWhere, landedTable } from '../../../agent/landing/schema.ts';

export { sensorsConfig };

export const allTypesConfig: DatasetConfig = datasetSchema.parse({
  name: 'all_types',
  time_column: 'ts',
  time_field_id: 10,
  columns: [
    { name: 'i', type: 'int', field_id: 20 },
    { name: 'l', type: 'long' },
    { name: 'd', type: 'double' },
    { name: 'b', type: 'boolean' },
    { name: 's', type: 'string' },
    { name: 'at', type: 'timestamp' },
    { name: 'image', type: 'blob' },
  ],
});

/** 2026-11-21T14:40Z, a window boundary for 10-minute windows. */
export const T0 = Date.UTC(2026, 10, 21, 14, 40) * 1000;
export const MINUTE = 60_000_000;

export interface Fixture {
  stateDir: string;
  dbPath: string;
  db: Database.Database;
  datasets: Dataset[];
  land(dataset: Dataset, rows: RowValue[][]): void;
  landedCount(dataset: Dataset): number;
  close(): void;
}

export function createFixture(configs: DatasetConfig[] = [sensorsConfig]): Fixture {
  const stateDir = mkdtempSync(join(tmpdir(), 'lakeside-hot-'));
  const dbPath = join(stateDir, 'landing.db');
  const db = new Database(dbPath);
  applyPragmas(db);
  const datasets = configs.map(resolveDataset);
  ensureSchema(db, datasets);
  return {
    stateDir,
    dbPath,
    db,
    datasets,
    land(dataset, rows) {
      const names = dataset.columns.map((c) => `"${c.name}"`).join(', ');
      const marks = dataset.columns.map(() => '?').join(', ');
      const insert = db.prepare(`INSERT INTO "${landedTable(dataset.name)}" (${names}) VALUES (${marks})`);
      db.transaction(() => {
        for (const row of rows) insert.run(row.map((v) => (typeof v === 'boolean' ? (v ? 1 : 0) : v)));
      })();
    },
    landedCount(dataset) {
      return db.prepare(`SELECT count(*) FROM "${landedTable(dataset.name)}" WHERE ${landedRowsWhere(dataset.name)}`).pluck().get() as number;
    },
    close() {
      // The background purge may still hold the database open: let it finish first.
      awaitPurges();
      db.close();
      rmSync(stateDir, { recursive: true, force: true });
    },
  };
}

/** `n` sensor rows starting at `startUs`, `stepUs` apart, over 3 lines, in a shuffled (deterministic) order. */
export function sensorRows(n: number, startUs: number, stepUs: number, tag = 'r'): RowValue[][] {
  const rows: RowValue[][] = [];
  for (let i = 0; i < n; i++) rows.push([startUs + i * stepUs, `line_${i % 3}`, `${tag}${i}`, i % 7 === 0 ? null : i / 4, i % 2 ? 'bar' : '°C']);
  // Deterministic shuffle so files are not already in time order.
  for (let i = rows.length - 1; i > 0; i--) {
    const j = (i * 7919) % (i + 1);
    [rows[i], rows[j]] = [rows[j]!, rows[i]!];
  }
  return rows;
}

export const sealOptions = { compactionWindowMinutes: 10, rowGroupRows: 1000, sealMaxRows: 100_000 };
export const compactOptions = { compactionWindowMinutes: 10, compactionGraceSeconds: 60, rowGroupRows: 1000, l1MaxRows: 100_000 };

/** A clock far enough ahead that every test window is closed and every file past its grace. */
export const LATER = Math.max(T0 + 24 * 60 * MINUTE, Date.now() * 1000 + 24 * 60 * MINUTE);

export function sortRows(rows: RowValue[][]): RowValue[][] {
  return [...rows].sort((a, b) => (JSON.stringify(a) < JSON.stringify(b) ? -1 : 1));
}
