// `lakeside verify` on real state: files sealed by the real seal code, then real
// damage (a deleted hot file, a temp file, an unregistered Parquet file, an orphan
// blob, corrupt bytes in a copy of landing.db, tier-map files missing or left over).
// verify finds each; --repair fixes what it safely can, says what it cannot, and never
// touches a corrupt database.
import { createHash } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, unlinkSync, writeFileSync, writeSync, closeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import { awaitPurges } from '../../../agent/hot/purge.ts';
import { sealDataset } from '../../../agent/hot/seal.ts';
import { landedTable, type HotFileRecord } from '../../../agent/landing/schema.ts';
import { verifyState } from '../../../agent/ops/verify.ts';
import { formatVerify } from '../../../agent/cli/ops-commands.ts';
import { PLAIN } from '../../../agent/cli/style.ts';
import { discoverNewFiles } from '../../../tiering/layout.ts';
import { createFixture, sealOptions, sensorRows, T0, type Fixture } from '../hot/fixture.ts';
import { createTieringFixture, type TieringFixture } from '../tiering/fixture.ts';

const fixtures: (Fixture | TieringFixture)[] = [];
afterEach(() => {
  for (const fx of fixtures.splice(0)) fx.close();
});

function sealedState(batches: number[]): { fx: Fixture; files: HotFileRecord[] } {
  const fx = createFixture();
  fixtures.push(fx);
  const [sensors] = fx.datasets;
  batches.forEach((n, i) => {
    fx.land(sensors!, sensorRows(n, T0 + i * 1_000_000, 1000, `b${i}-`));
    sealDataset(fx.db, sensors!, fx.stateDir, sealOptions);
  });
  expect(awaitPurges().done).toBe(true);
  const files = fx.db.prepare('SELECT * FROM hot_files ORDER BY id').all() as HotFileRecord[];
  expect(files.length).toBe(batches.length);
  return { fx, files };
}

const kinds = (report: Awaited<ReturnType<typeof verifyState>>) => report.findings.map((f) => f.kind).sort();

describe('verify', () => {
  it('is quiet on a consistent state', async () => {
    const { fx } = sealedState([100]);
    const report = await verifyState(fx.stateDir);
    expect(report.findings).toEqual([]);
    expect(report.checked.hotFiles).toBe(1);
  });

  it('finds a deleted hot file and leftovers; --repair removes the leftovers and says the lost file cannot be fixed', async () => {
    const { fx, files } = sealedState([200, 100]);
    const lost = files[0]!;
    unlinkSync(join(fx.stateDir, lost.path));
    const kept = join(fx.stateDir, files[1]!.path);
    writeFileSync(join(kept, '..', '.tmp-abc-123.parquet'), 'half a file');
    copyFileSync(kept, join(kept, '..', '999-1000.parquet'));
    const sha = createHash('sha256').update('orphan').digest('hex');
    mkdirSync(join(fx.stateDir, 'blobs', sha.slice(0, 2)), { recursive: true });
    writeFileSync(join(fx.stateDir, 'blobs', sha.slice(0, 2), sha), 'orphan');

    const found = await verifyState(fx.stateDir);
    expect(kinds(found)).toEqual(['blob_unreferenced', 'hot_file_missing', 'hot_file_unregistered', 'temp_file']);
    expect(found.findings.every((f) => f.repaired === null)).toBe(true);
    expect(found.findings.find((f) => f.kind === 'hot_file_missing')).toMatchObject({ path: lost.path, cannotRepair: expect.stringMatching(/200 rows are nowhere else/) });
    expect(existsSync(join(kept, '..', '999-1000.parquet'))).toBe(true); // looking changes nothing

    const repaired = await verifyState(fx.stateDir, { repair: true });
    expect(repaired.findings.filter((f) => f.repaired).map((f) => f.kind).sort()).toEqual(['blob_unreferenced', 'hot_file_unregistered', 'temp_file']);
    const missing = repaired.findings.find((f) => f.kind === 'hot_file_missing')!;
    expect(missing.repaired).toBeNull();
    expect(existsSync(join(kept, '..', '999-1000.parquet'))).toBe(false);
    expect(existsSync(kept)).toBe(true);
    expect(fx.db.prepare('SELECT count(*) FROM hot_files').pluck().get()).toBe(2); // the lost file stays registered: the loss is not hidden
    const { text, unresolved } = formatVerify(repaired, true, PLAIN);
    expect(unresolved).toBe(1);
    expect(text).toMatch(/CANNOT FIX hot_file_missing/);
    expect(text).toMatch(/fixed {2}temp_file/);

    expect(kinds(await verifyState(fx.stateDir))).toEqual(['hot_file_missing']);
  });

  it('unregisters a missing L0 file when its rows are still in the landing table, so the next seal rewrites them', async () => {
    const { fx, files } = sealedState([150]);
    const [sensors] = fx.datasets;
    const file = files[0]!;
    // The purge was cut short: the sealed rows are still in the table (same ids).
    const rows = sensorRows(150, T0, 1000, 'b0-');
    const names = sensors!.columns.map((c) => `"${c.name}"`).join(', ');
    const insert = fx.db.prepare(`INSERT INTO "${landedTable('sensors')}" (id, ${names}) VALUES (?, ${sensors!.columns.map(() => '?').join(', ')})`);
    fx.db.transaction(() => rows.forEach((row, i) => insert.run(i + 1, ...row)))();
    unlinkSync(join(fx.stateDir, file.path));

    const report = await verifyState(fx.stateDir, { repair: true });
    expect(report.findings).toHaveLength(1);
    expect(report.findings[0]).toMatchObject({ kind: 'hot_file_missing', repaired: expect.stringMatching(/150 rows are still in the landing table/) });
    expect(fx.landedCount(sensors!)).toBe(150);
    const resealed = sealDataset(fx.db, sensors!, fx.stateDir, sealOptions);
    expect(resealed.rows).toBe(150);
    expect(awaitPurges().done).toBe(true);
    expect((await verifyState(fx.stateDir)).findings).toEqual([]);
  });

  it('finds a corrupted SQLite page in a copy of landing.db and leaves it untouched under --repair', async () => {
    const { fx } = sealedState([300, 300]);
    const copy = mkdtempSync(join(tmpdir(), 'lakeside-corrupt-'));
    try {
      fx.db.pragma('wal_checkpoint(TRUNCATE)');
      copyFileSync(fx.dbPath, join(copy, 'landing.db'));
      mkdirSync(join(copy, 'hot'));
      const probe = new Database(join(copy, 'landing.db'), { readonly: true });
      const pageSize = probe.pragma('page_size', { simple: true }) as number;
      const root = probe.prepare(`SELECT rootpage FROM sqlite_master WHERE name = ?`).pluck().get(landedTable('sensors')) as number;
      probe.close();
      // Garbage over the b-tree page header and cell pointers of the landed table's root page.
      const fd = openSync(join(copy, 'landing.db'), 'r+');
      writeSync(fd, Buffer.alloc(64, 0xa5), 0, 64, (root - 1) * pageSize + (root === 1 ? 100 : 0));
      closeSync(fd);
      const before = createHash('sha256').update(readFileSync(join(copy, 'landing.db'))).digest('hex');

      const report = await verifyState(copy, { repair: true });
      expect(report.findings).toHaveLength(1);
      expect(report.findings[0]).toMatchObject({ kind: 'sqlite_corrupt', repaired: null, cannotRepair: expect.stringMatching(/\.recover/) });
      expect(createHash('sha256').update(readFileSync(join(copy, 'landing.db'))).digest('hex')).toBe(before);
      expect(formatVerify(report, true, PLAIN).text).toMatch(/CANNOT FIX sqlite_corrupt landing.db: /);
    } finally {
      rmSync(copy, { recursive: true, force: true });
    }
  });

  it('checks the tier map against the disk: repairs a missing committed file, cannot repair a missing uncommitted one, reports leftovers as info', async () => {
    const f = await createTieringFixture();
    fixtures.push(f);
    const committed = f.addL1('inspections', { ageHours: 3 });
    const uncommitted = f.addL1('readings', { ageHours: 3 });
    const evicted = f.addL1('inspections', { ageHours: 30 });
    const blob = f.addBlob();
    expect(await discoverNewFiles(f.db, f.map, f.stateDir, { plant: 'ulm', agentId: 'ulm' }, f.clock.ms * 1000)).toBe(4);
    const tier = (path: string) => f.map.byPath(path)!;
    const blobPath = `blobs/${blob.sha256.slice(0, 2)}/${blob.sha256}`;
    for (const path of [committed.path, evicted.path, blobPath]) {
      f.map.markUploaded(tier(path).id, f.clock.ms * 1000);
      f.map.markCommitted([tier(path).id], f.clock.ms * 1000);
    }
    // Evicted as the evictor does it, except that the data file's unlink never happened (a leftover).
    f.db.prepare(`UPDATE tier_files SET local_state = 'evicted' WHERE local_path IN (?, ?)`).run(evicted.path, blobPath);
    f.db.prepare('DELETE FROM hot_files WHERE path = ?').run(evicted.path);
    unlinkSync(blob.path);
    // The damage: a committed and an uncommitted file deleted behind lakeside's back.
    unlinkSync(join(f.stateDir, committed.path));
    unlinkSync(join(f.stateDir, uncommitted.path));

    const found = await verifyState(f.stateDir);
    // Tiered files are checked once, in the tier map: no hot_file_missing, no blob_missing for the evicted blob, no unregistered Parquet for the leftover.
    expect(kinds(found)).toEqual(['tier_file_leftover', 'tier_file_missing', 'tier_file_missing']);
    expect(found.checked.tierFiles).toBe(4);
    expect(found.findings.find((x) => x.path === committed.path)).toMatchObject({ kind: 'tier_file_missing', repaired: null });
    expect(found.findings.find((x) => x.kind === 'tier_file_leftover')).toMatchObject({ path: evicted.path, info: true });
    const plain = formatVerify(found, false, PLAIN);
    expect(plain.unresolved).toBe(2); // the leftover is harmless
    expect(plain.text).toMatch(/info {3}tier_file_leftover/);

    const repaired = await verifyState(f.stateDir, { repair: true });
    const fixedMissing = repaired.findings.find((x) => x.path === committed.path)!;
    expect(fixedMissing.repaired).toMatch(/marked evicted and unregistered from the hot tier: the warm store holds it at /);
    expect(tier(committed.path).local_state).toBe('evicted');
    expect(f.db.prepare('SELECT count(*) FROM hot_files WHERE path = ?').pluck().get(committed.path)).toBe(0);
    const lost = repaired.findings.find((x) => x.path === uncommitted.path)!;
    expect(lost).toMatchObject({ kind: 'tier_file_missing', repaired: null, cannotRepair: expect.stringMatching(/its rows are lost on this machine and not uploaded/) });
    expect(tier(uncommitted.path)).toMatchObject({ state: 'local', local_state: 'present' }); // the loss is not hidden
    expect(f.db.prepare('SELECT count(*) FROM hot_files WHERE path = ?').pluck().get(uncommitted.path)).toBe(1);
    expect(repaired.findings.find((x) => x.kind === 'tier_file_leftover')!.repaired).toMatch(/deleted/);
    expect(existsSync(join(f.stateDir, evicted.path))).toBe(false);
    const { text, unresolved } = formatVerify(repaired, true, PLAIN);
    expect(unresolved).toBe(1);
    expect(text).toMatch(/CANNOT FIX tier_file_missing/);

    const after = await verifyState(f.stateDir);
    expect(after.findings.map((x) => [x.kind, x.path])).toEqual([['tier_file_missing', uncommitted.path]]);
  });
});
