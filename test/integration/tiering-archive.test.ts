// Warm → cold with the real daemon as a child process (file:// warm and cold stores, and
// S3 ones on the versitygw server of the services harness), and SIGKILLs in the middle
// of archiving. Camera frames are dropped into a folder
// (mtime 5 minutes back, so compaction makes L1 files at once); with
// `warm_retention_days: 0` every committed object is due for cold at once.
//   (a) the daemon freezes at `tiering.after-cold-put` (an object copied to cold and
//       verified, still in warm) and is SIGKILLed: the object is in both stores and the
//       tier map still says committed;
//   (b) restarted, it freezes at `tiering.after-warm-delete` (gone from warm, not yet
//       marked archived) and is SIGKILLed;
//   (c) restarted clean, it archives everything.
// Then: cold holds exactly one object per tier-map row, with the right bytes; warm holds
// none of them; every row is archived; no frame is lost from the hot tier; no temp file.
import Database from 'better-sqlite3';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, utimesSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { storeSchema } from '../../config/tiering-schema.ts';
import { FileObjectStore } from '../../tiering/stores/file-store.ts';
import type { ObjectStore } from '../../tiering/stores/object-store.ts';
import { S3ObjectStore } from '../../tiering/stores/s3-store.ts';
import { startS3Server, type S3Server } from '../services/s3-server.ts';
import type { ChildDaemon } from '../support/child-daemon.ts';
import { killHard, startFaultDaemon } from '../support/fault-scenario.ts';
import { auditStateDir, failpointEnv, until, waitForFailpoint } from '../support/failpoint.ts';
import { freePort } from '../support/free-port.ts';
import { listKeys, readAll } from '../support/object-store-contract.ts';
import { framesTieringConfig, withoutCatalogKeys } from '../support/tiering-daemon-config.ts';

const FRAME_BYTES = 64 * 1024;

/** A store the daemon writes to (its YAML and env) and the test's own view of it. */
interface Store {
  yaml: string;
  env: NodeJS.ProcessEnv;
  store: ObjectStore;
  /** Upload temp files left behind (file:// only; S3 puts are atomic). */
  leftovers(): string[];
}

function fileStore(dir: string): Store {
  return { yaml: `{ url: "${pathToFileURL(dir).href}" }`, env: {}, store: new FileObjectStore(pathToFileURL(dir).href), leftovers: () => readdirSync(join(dir, '.tmp')) };
}

function s3Store(server: S3Server, bucket: string): Store {
  const base = { url: `s3://${bucket}/plants`, endpoint: server.endpoint, region: server.region, force_path_style: true };
  return {
    yaml: `{ url: "${base.url}", endpoint: "${base.endpoint}", region: ${base.region}, force_path_style: true, credentials: { access_key_id: "\${env:LAKESIDE_TEST_S3_KEY}", secret_access_key: "\${env:LAKESIDE_TEST_S3_SECRET}" } }`,
    env: { LAKESIDE_TEST_S3_KEY: server.accessKeyId, LAKESIDE_TEST_S3_SECRET: server.secretAccessKey },
    store: new S3ObjectStore({ ...storeSchema.parse(base), credentials: { access_key_id: server.accessKeyId, secret_access_key: server.secretAccessKey } }),
    leftovers: () => [],
  };
}

function config(o: { stateDir: string; dropDir: string; warm: string; cold: string; apiPort: number }): string {
  return `${framesTieringConfig({ plant: 'archplant', stateDir: o.stateDir, dropDir: o.dropDir, apiPort: o.apiPort })}  warm: ${o.warm}
  cold: ${o.cold}
  warm_retention_days: 0
  wait_for_hour_merge: false
  archive_interval_ms: 300
  scan_interval_ms: 200
  eviction_interval_ms: 1000
  retry_initial_ms: 100
  retry_max_ms: 1000
`;
}

interface TierRow {
  kind: string;
  local_path: string;
  object_key: string;
  sha256: string;
  state: string;
}

function readDb<T>(stateDir: string, read: (db: Database.Database) => T, empty: T): T {
  if (!existsSync(join(stateDir, 'landing.db'))) return empty;
  const db = new Database(join(stateDir, 'landing.db'), { readonly: true, fileMustExist: true });
  try {
    return db.prepare(`SELECT 1 FROM sqlite_master WHERE name = 'tier_files'`).get() ? read(db) : empty;
  } finally {
    db.close();
  }
}

const tierRows = (stateDir: string): TierRow[] => readDb(stateDir, (db) => db.prepare('SELECT kind, local_path, object_key, sha256, state FROM tier_files ORDER BY id').all() as TierRow[], []);

describe.each(['file', 's3'] as const)('tiering archive (%s stores): SIGKILL during warm → cold loses nothing and makes no duplicate', (kind) => {
  let dir: string;
  let server: S3Server | undefined;
  const daemons: ChildDaemon[] = [];
  beforeAll(async () => {
    if (kind === 's3') server = await startS3Server({ buckets: ['warm', 'cold'] });
  }, 120_000);
  afterAll(async () => {
    for (const d of daemons) d.kill('SIGKILL');
    await server?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('killed after the cold put and after the warm delete, restarted: every object in cold exactly once, warm emptied', async () => {
    dir = await mkdtemp(join(tmpdir(), 'lakeside-tiering-archive-'));
    const stateDir = join(dir, 'state');
    const dropDir = join(dir, 'drop');
    const warmStore = kind === 's3' ? s3Store(server!, 'warm') : fileStore(join(dir, 'warm'));
    const coldStore = kind === 's3' ? s3Store(server!, 'cold') : fileStore(join(dir, 'cold'));
    const env = { ...warmStore.env, ...coldStore.env };
    const configPath = join(dir, 'lakeside.yaml');
    writeFileSync(configPath, config({ stateDir, dropDir, warm: warmStore.yaml, cold: coldStore.yaml, apiPort: await freePort() }));
    const track = (d: ChildDaemon) => daemons.push(d);
    const shas = new Set<string>();
    const past = (Date.now() - 5 * 60_000) / 1000;
    for (const line of ['l1', 'l2']) {
      mkdirSync(join(dropDir, line), { recursive: true });
      for (let i = 0; i < 6; i++) {
        const bytes = randomBytes(FRAME_BYTES);
        shas.add(createHash('sha256').update(bytes).digest('hex'));
        writeFileSync(join(dropDir, line, `f${i}.bin`), bytes);
        utimesSync(join(dropDir, line, `f${i}.bin`), past, past);
      }
    }
    const warm = warmStore.store;
    const cold = coldStore.store;

    // (a) Frozen once the first object is in cold (verified) and still in warm.
    const first = await startFaultDaemon(configPath, { ...failpointEnv('tiering.after-cold-put'), ...env }, track);
    const a = await waitForFailpoint(first, 'tiering.after-cold-put', 90_000);
    await killHard(first);
    const rowA = tierRows(stateDir).find((r) => r.local_path === a.files[0])!;
    expect(rowA.state).toBe('committed');
    expect(await listKeys(cold)).toEqual([rowA.object_key]);
    expect(withoutCatalogKeys(await listKeys(warm))).toContain(rowA.object_key);

    // (b) Restarted: frozen once an object is gone from warm, not yet marked archived.
    const second = await startFaultDaemon(configPath, { ...failpointEnv('tiering.after-warm-delete'), ...env }, track);
    const b = await waitForFailpoint(second, 'tiering.after-warm-delete', 90_000);
    await killHard(second);
    const rowB = tierRows(stateDir).find((r) => r.local_path === b.files[0])!;
    expect(rowB.state).toBe('committed');
    expect(withoutCatalogKeys(await listKeys(warm))).not.toContain(rowB.object_key);
    expect(await listKeys(cold)).toContain(rowB.object_key);

    // (c) Restarted clean: every frame ingested, every file uploaded, then archived.
    const third = await startFaultDaemon(configPath, env, track);
    await until(() => readdirSync(dropDir, { recursive: true }).filter((p) => String(p).endsWith('.bin')).length === 0, 60_000, 'drop folder emptied');
    await until(
      () => {
        const rows = tierRows(stateDir);
        const blobs = rows.filter((r) => r.kind === 'blob').length;
        return blobs === shas.size && rows.some((r) => r.kind === 'data') && rows.every((r) => r.state === 'archived');
      },
      120_000,
      () => `all archived; tier rows: ${JSON.stringify(tierRows(stateDir).map((r) => `${r.kind}:${r.state}`))}`,
    );
    expect((await third.stop()).code).toBe(0);

    const rows = tierRows(stateDir);
    expect(new Set(rows.filter((r) => r.kind === 'blob').map((r) => r.sha256))).toEqual(shas);
    // Cold holds exactly the tier map's keys (one object each, the right bytes); warm holds none of them.
    expect((await listKeys(cold)).sort()).toEqual(rows.map((r) => r.object_key).sort());
    expect(withoutCatalogKeys(await listKeys(warm))).toEqual([]);
    for (const row of rows) expect(createHash('sha256').update(await readAll(await cold.get(row.object_key))).digest('hex')).toBe(row.sha256);
    expect(coldStore.leftovers()).toEqual([]);
    expect(warmStore.leftovers()).toEqual([]);
    // Nothing lost locally (archiving never touches the hot tier), no temp file left.
    const audit = auditStateDir(stateDir);
    expect(audit.tempFiles).toEqual([]);
    expect(audit.missingParquet).toEqual([]);
    expect(audit.missingBlobs).toEqual([]);
    const rowsInHot = readDb(stateDir, (db) => db.prepare(`SELECT coalesce(sum(record_count), 0) FROM hot_files WHERE dataset = 'frames' AND level IN (0, 1)`).pluck().get() as number, 0);
    expect(rowsInHot).toBe(shas.size);
    await warm.close();
    await cold.close();
  }, 300_000);
});
