import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import { applyPragmas } from '../../../agent/landing/schema.ts';
import { discoverNewFiles } from '../../../tiering/layout.ts';
import { TierMap } from '../../../tiering/tier-map.ts';
import { createTieringFixture, type TieringFixture } from './fixture.ts';

const CONTEXT = { plant: 'ulm', agentId: 'ulm-a' };

describe('tier map', () => {
  let f: TieringFixture;
  afterEach(() => f?.close());

  it('registers L1 files and blobs once, with size, sha256 and deterministic keys', async () => {
    f = await createTieringFixture();
    const l1 = f.addL1('inspections', { bytes: 1234 });
    const blob = f.addBlob({ bytes: 777 });
    f.db.prepare(`INSERT INTO hot_files (dataset, level, path, window_start_us, partition_json, min_ts_us, max_ts_us, record_count, file_size_bytes, stats_json, created_at_us)
      VALUES ('readings', 0, 'hot/readings/L0/x/1-2.parquet', 0, '{}', 0, 0, 1, 1, '{}', 0)`).run();
    expect(await discoverNewFiles(f.db, f.map, f.stateDir, CONTEXT, 1)).toBe(2);
    expect(await discoverNewFiles(f.db, f.map, f.stateDir, CONTEXT, 2)).toBe(0);
    const rows = f.map.all();
    expect(rows.map((r) => [r.kind, r.state, r.local_state, r.size_bytes])).toEqual([
      ['data', 'local', 'present', 1234],
      ['blob', 'local', 'present', 777],
    ]);
    const data = rows[0]!;
    expect(data.local_path).toBe(l1.path);
    // hot/inspections/L1/<window>/line=l1/1-1-p0-0.parquet → ulm/inspections/data/<window>/line=l1/ulm-a-1-1-p0-0.parquet
    expect(data.object_key).toBe(l1.path.replace('hot/inspections/L1/', 'ulm/inspections/data/').replace(/\/([^/]+)$/, '/ulm-a-$1'));
    expect(data.sha256).toMatch(/^[0-9a-f]{64}$/);
    expect(rows[1]!.object_key).toBe(`ulm/blobs/${blob.sha256.slice(0, 2)}/${blob.sha256}`);
    expect(rows[1]!.sha256).toBe(blob.sha256);
  });

  it('moves forward only; every transition repeated is a no-op', async () => {
    f = await createTieringFixture();
    f.addL1('inspections');
    await discoverNewFiles(f.db, f.map, f.stateDir, CONTEXT, 1);
    const id = f.map.all()[0]!.id;
    expect(f.map.markCommitted([id], 2)).toBe(0); // not uploaded yet
    expect(f.map.markArchived(id, 2)).toBe(false);
    expect(f.map.markUploaded(id, 3)).toBe(true);
    expect(f.map.markUploaded(id, 4)).toBe(false);
    expect(f.map.markCommitted([id], 5)).toBe(1);
    expect(f.map.markCommitted([id], 6)).toBe(0);
    expect(f.map.markUploaded(id, 7)).toBe(false); // never backwards
    expect(f.map.markArchived(id, 8)).toBe(true);
    expect(f.map.markArchived(id, 9)).toBe(false);
    expect(f.map.markExpired(id, 10)).toBe(true);
    expect(f.map.markExpired(id, 11)).toBe(false);
    expect(f.map.get(id)).toMatchObject({ state: 'expired', uploaded_us: 3, committed_us: 5, archived_us: 8, expired_us: 10 });
  });

  it('a transition committed before a crash is there after it; repeating it changes nothing', async () => {
    f = await createTieringFixture();
    f.addL1('inspections');
    await discoverNewFiles(f.db, f.map, f.stateDir, CONTEXT, 1);
    const id = f.map.all()[0]!.id;
    f.map.markUploaded(id, 100);
    // A crash: the connection is gone without a close (no checkpoint), a new process opens the file.
    const crashed = f.db;
    const reopened = new Database(f.dbPath);
    applyPragmas(reopened);
    const map = new TierMap(reopened);
    expect(map.get(id)).toMatchObject({ state: 'uploaded', uploaded_us: 100 });
    // The process that crashed did not know whether its update landed: it repeats it.
    expect(map.markUploaded(id, 200)).toBe(false);
    expect(map.get(id)!.uploaded_us).toBe(100);
    expect(map.markCommitted([id], 300)).toBe(1);
    reopened.close();
    crashed.close();
  });

  it('a transaction cut short leaves the previous state', async () => {
    f = await createTieringFixture();
    f.addL1('inspections');
    await discoverNewFiles(f.db, f.map, f.stateDir, CONTEXT, 1);
    const id = f.map.all()[0]!.id;
    f.map.markUploaded(id, 1);
    expect(() =>
      f.db.transaction(() => {
        f.map.markCommitted([id], 2);
        throw new Error('power cut');
      })(),
    ).toThrow('power cut');
    expect(f.map.get(id)!.state).toBe('uploaded');
  });

  it('counts failures, schedules the next attempt, sets aside and lets an operator retry', async () => {
    f = await createTieringFixture();
    f.addL1('inspections');
    await discoverNewFiles(f.db, f.map, f.stateDir, CONTEXT, 1);
    const id = f.map.all()[0]!.id;
    f.map.recordFailure(id, 'S3_InternalError: boom', 5_000, false, 1_000);
    expect(f.map.get(id)).toMatchObject({ attempts: 1, next_attempt_us: 5_000, last_error: 'S3_InternalError: boom', set_aside_us: null });
    f.map.recordFailure(id, 'S3_InternalError: boom again', 9_000, true, 2_000);
    expect(f.map.setAside().map((r) => r.id)).toEqual([id]);
    expect(f.map.retrySetAside(id)).toBe(true);
    expect(f.map.get(id)).toMatchObject({ attempts: 0, set_aside_us: null });
  });
});
