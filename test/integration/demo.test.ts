// `lakeside demo` end to end, as an operator runs it: the real binary for a bounded
// time, then the state it leaves behind. Every dataset has rows in the hot tier, every
// camera frame is a stored PNG blob, nothing was quarantined, and the printed operator
// questions, asked with `lakeside query` against the running demo's API, return rows.
// The demo's file-system Iceberg catalog (in its warm directory) is read by PyIceberg:
// every dataset's table holds exactly the rows of the files the tier map says are
// committed, with the demo's plant. The run lasts long enough for the first minute
// windows to be compacted (grace 10 s), uploaded and committed (every 5 s).
import { readdirSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import Database from 'better-sqlite3';
import { afterAll, describe, expect, it } from 'vitest';
import { DEFECT_LABELS, DEMO_LINES } from '../../agent/demo/plant-model.ts';
import { PNG_SIGNATURE } from '../../agent/demo/png.ts';
import { OPERATOR_QUESTIONS } from '../../agent/demo/questions.ts';
import { nodeBinary, REPO_ROOT, spawnDaemon } from '../support/child-daemon.ts';

import { waitFor } from '../support/wait-for.ts';
import { tierProgress } from '../support/iceberg-daemon-config.ts';
import { pyicebergLocal } from '../services/pyiceberg.ts';

const execFileAsync = promisify(execFile);
import { readHotTier } from '../support/hot-tier-reader.ts';

const DURATION_S = 110;
let dir: string | undefined;

afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('lakeside demo', () => {
  it('runs broker, agent and plant for a bounded time, exits 0 and leaves data in every dataset', async () => {
    dir = await mkdtemp(join(tmpdir(), 'lakeside-demo-'));
    const demo = spawnDaemon({ config: '', argv: ['demo', '--dir', dir, '--duration', String(DURATION_S), '--api-port', '0'] });
    // While it runs: the banner's API answers the three operator questions through `lakeside query`.
    const banner = await demo.waitForLine((l) => l.stream === 'stderr' && /HTTP API\s+http:/.test(l.raw), 60_000);
    const apiUrl = /HTTP API\s+(http:\/\/[0-9.:]+)/.exec(banner.raw)![1]!;
    for (const q of OPERATOR_QUESTIONS) {
      // Rows become queryable a seal or two after they arrive: ask until the answer has rows.
      await waitFor(async () => {
        const { stdout } = await execFileAsync(nodeBinary(), [join(REPO_ROOT, 'bin', 'lakeside.js'), 'query', '--url', apiUrl, '--format', 'json', q.sql]);
        return (JSON.parse(stdout) as { rows: unknown[][] }).rows.length > 0;
      }, `rows for "${q.question}"`, 30_000);
    }
    const exit = await demo.waitExit((DURATION_S + 60) * 1000);
    expect(exit, demo.tail(60)).toEqual({ code: 0, signal: null });
    const stderr = demo.lines.filter((l) => l.stream === 'stderr').map((l) => l.raw).join('\n');
    expect(stderr).toContain(join(dir, 'state'));
    for (const q of OPERATOR_QUESTIONS) expect(stderr).toContain(q.sql.split('\n')[0]);
    // Logs at warn: a clean run logs nothing at warn or above.
    expect(demo.logs().filter((l) => typeof l.level === 'number' && l.level >= 40), demo.output()).toEqual([]);

    const stateDir = join(dir, 'state');
    const readings = readHotTier(stateDir, 'sensor_readings');
    const col = (name: string) => readings.columns.indexOf(name);
    const streams = new Set(readings.rows.map((r) => `${r[col('line')]}/${r[col('sensor')]}`));
    const expectedStreams = DEMO_LINES.flatMap((line) => line.sensors.map((s) => `${line.name}/${s.name}`));
    expect([...streams].sort()).toEqual(expectedStreams.sort());
    // ~55 readings/s; allow for start-up and a slow CI machine.
    expect(readings.rows.length).toBeGreaterThan(DURATION_S * 20);
    const humidity = readings.rows.filter((r) => r[col('sensor')] === 'humidity').map((r) => r[col('value')] as number);
    for (const value of humidity) expect(value).toBeGreaterThan(25);

    const inspections = readHotTier(stateDir, 'inspections');
    const lines = new Set(inspections.rows.map((r) => r[inspections.columns.indexOf('line')]));
    expect([...lines].sort()).toEqual(DEMO_LINES.map((l) => l.name).sort());
    expect(inspections.rows.length).toBeGreaterThan(DURATION_S);
    // ~3 % of inspections reject a product (true defects and false positives): each such
    // row names a defect label of its line's kind and a review verdict; a pass has neither.
    const icol = (name: string) => inspections.columns.indexOf(name);
    const kindOf = new Map(DEMO_LINES.map((l) => [l.name, l.kind]));
    const rejected = inspections.rows.filter((r) => r[icol('defect_label')] !== null);
    expect(rejected.length).toBeGreaterThan(0);
    for (const r of rejected) {
      expect(DEFECT_LABELS[kindOf.get(r[icol('line')] as string)!]).toContain(r[icol('defect_label')]);
      expect(r[icol('passed')]).toBe(false);
      expect(['confirmed', 'false_positive']).toContain(r[icol('review')]);
    }
    for (const r of inspections.rows.filter((row) => row[icol('passed')] === true)) expect([r[icol('defect_label')], r[icol('review')]]).toEqual([null, null]);

    const frames = readHotTier(stateDir, 'camera_frames');
    expect(frames.rows.length).toBeGreaterThan(DURATION_S);
    const image = frames.columns.indexOf('image');
    for (const row of frames.rows) {
      const sha = row[image] as string;
      expect(sha).toMatch(/^[0-9a-f]{64}$/);
      const bytes = readFileSync(join(stateDir, 'blobs', sha.slice(0, 2), sha));
      expect(bytes.subarray(0, 8).equals(PNG_SIGNATURE)).toBe(true);
    }

    const db = new Database(join(stateDir, 'landing.db'), { readonly: true });
    try {
      const quarantined = db.prepare('SELECT reason_code, reason, coordinates FROM quarantine LIMIT 5').all();
      expect(quarantined).toEqual([]);
    } finally {
      db.close();
    }

    // The file-system catalog: PyIceberg reads each table's newest metadata version.
    const committed = tierProgress(stateDir, ['committed']).rows;
    for (const dataset of ['sensor_readings', 'inspections', 'camera_frames']) {
      const metadataDir = join(dir, 'warm', 'iceberg', 'lakeside', dataset, 'metadata');
      const versions = readdirSync(metadataDir).flatMap((name) => /^v(\d+)\.metadata\.json$/.exec(name)?.[1] ?? []).map(Number);
      const table = await pyicebergLocal<{ rows: Array<Record<string, unknown>> }>({ metadata: join(metadataDir, `v${Math.max(...versions)}.metadata.json`), scan: true });
      expect(committed[dataset], dataset).toBeGreaterThan(0);
      expect(table.rows.length, dataset).toBe(committed[dataset]);
      expect(new Set(table.rows.map((r) => r.plant))).toEqual(new Set(['demo']));
    }
  }, (DURATION_S + 180) * 1000);
});
