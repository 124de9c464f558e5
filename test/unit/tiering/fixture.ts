/**
 * Set-up for the tiering unit tests: a state dir with a landing database, L1 files and
 * blobs registered as the sealer and the landing writer register them (the bytes need
 * not be Parquet: tiering never parses them), a file:// warm store, a fake clock.
 */
import Database from 'better-sqlite3';
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { resolveDataset } from '../../../config/dataset.ts';
import { datasetSchema } from '../../../config/schema.ts';
import { tieringSchema, type TieringConfig } from '../../../config/tiering-schema.ts';
import { applyPragmas, ensureSchema, HOT_LEVEL, type HotFileRecord } from '../../../agent/landing/schema.ts';
import { l1Path } from '../../../agent/hot/paths.ts';
import { insertHotFiles } from '../../../agent/hot/registry.ts';
import { FileObjectStore } from '../../../tiering/stores/file-store.ts';
import { ensureTierSchema, TierMap } from '../../../tiering/tier-map.ts';

export const HOUR_US = 3_600_000_000;
/** 2026-11-21T14:00Z: "now" of the fake clock unless a test moves it. */
export const NOW_MS = Date.UTC(2026, 10, 21, 14, 0);

export const DATASETS = ['inspections', 'readings', 'frames'].map((name) =>
  resolveDataset(
    datasetSchema.parse({
      name,
      time_column: 'ts',
      columns: [{ name: 'line', type: 'string', nullable: false }, name === 'frames' ? { name: 'image', type: 'blob' } : { name: 'value', type: 'double' }],
      partition_by: ['line'],
    }),
  ),
);

export interface LogRecord {
  level: 'info' | 'warn' | 'error';
  obj: Record<string, unknown>;
  msg: string | undefined;
}

export function recordingLogger(): { logger: { info: (o: object, m?: string) => void; warn: (o: object, m?: string) => void; error: (o: object, m?: string) => void }; records: LogRecord[] } {
  const records: LogRecord[] = [];
  const at = (level: LogRecord['level']) => (obj: object, msg?: string) => records.push({ level, obj: obj as Record<string, unknown>, msg });
  return { logger: { info: at('info'), warn: at('warn'), error: at('error') }, records };
}

export interface TieringFixture {
  stateDir: string;
  dbPath: string;
  db: Database.Database;
  map: TierMap;
  warmDir: string;
  warm: FileObjectStore;
  clock: { ms: number };
  nowMs: () => number;
  /** Writes and registers an L1 file of `bytes` random bytes whose newest event is `ageHours` before now. */
  addL1(dataset: string, options?: { bytes?: number; ageHours?: number; line?: string }): HotFileRecord;
  /** Writes a blob file and its `blobs` row, first seen `ageHours` before now. */
  addBlob(options?: { bytes?: number; ageHours?: number }): { sha256: string; path: string };
  config(patch?: Record<string, unknown>): TieringConfig;
  close(): void;
}

export async function createTieringFixture(): Promise<TieringFixture> {
  const stateDir = mkdtempSync(join(tmpdir(), 'lakeside-tiering-'));
  const dbPath = join(stateDir, 'landing.db');
  const db = new Database(dbPath);
  applyPragmas(db);
  ensureSchema(db, DATASETS);
  ensureTierSchema(db);
  const warmDir = mkdtempSync(join(tmpdir(), 'lakeside-warm-'));
  const warm = new FileObjectStore(pathToFileURL(warmDir).href);
  await warm.start();
  const clock = { ms: NOW_MS };
  let seq = 0;
  return {
    stateDir,
    dbPath,
    db,
    map: new TierMap(db),
    warmDir,
    warm,
    clock,
    nowMs: () => clock.ms,
    addL1(dataset, options = {}) {
      seq++;
      const maxTs = clock.ms * 1000 - (options.ageHours ?? 1) * HOUR_US;
      const window = Math.floor(maxTs / 600_000_000) * 600_000_000;
      const path = l1Path(dataset, window, { line: options.line ?? 'l1' }, seq, seq, 0, 0);
      const bytes = randomBytes(options.bytes ?? 1000);
      mkdirSync(dirname(join(stateDir, path)), { recursive: true });
      writeFileSync(join(stateDir, path), bytes);
      const [record] = insertHotFiles(db, [
        {
          dataset,
          level: HOT_LEVEL.L1,
          path,
          window_start_us: window,
          partition_json: JSON.stringify({ line: options.line ?? 'l1' }),
          min_ts_us: window,
          max_ts_us: maxTs,
          record_count: 10,
          file_size_bytes: bytes.length,
          stats_json: '{}',
          created_at_us: clock.ms * 1000,
        },
      ]);
      return record!;
    },
    addBlob(options = {}) {
      const bytes = randomBytes(options.bytes ?? 2000);
      const sha256 = createHash('sha256').update(bytes).digest('hex');
      const path = join(stateDir, 'blobs', sha256.slice(0, 2), sha256);
      mkdirSync(dirname(path), { recursive: true });
      writeFileSync(path, bytes);
      db.prepare('INSERT INTO blobs (sha256, size_bytes, content_type, first_seen_us) VALUES (?, ?, ?, ?)').run(
        sha256,
        bytes.length,
        'image/png',
        clock.ms * 1000 - (options.ageHours ?? 1) * HOUR_US,
      );
      return { sha256, path };
    },
    config(patch = {}) {
      return tieringSchema.parse({ warm: { url: pathToFileURL(warmDir).href }, retry_initial_ms: 1000, retry_max_ms: 1000, ...patch });
    },
    close() {
      if (db.open) db.close();
    },
  };
}

/** A lakeside config (YAML) for a CLI run on the fixture's state dir: its datasets and its file:// warm store. */
export function fixtureConfigYaml(fx: TieringFixture, options: { agentId?: string } = {}): string {
  const dataset = (name: string, second: string) =>
    `  - name: ${name}\n    time_column: ts\n    columns:\n      - { name: line, type: string, nullable: false }\n      - ${second}\n    partition_by: [line]\n`;
  return `plant: ulm
${options.agentId ? `agent_id: ${options.agentId}\n` : ''}state_dir: ${fx.stateDir}
tiering:
  warm: { url: ${pathToFileURL(fx.warmDir).href} }
datasets:
${dataset('inspections', '{ name: value, type: double }')}${dataset('readings', '{ name: value, type: double }')}${dataset('frames', '{ name: image, type: blob }')}`;
}
