// Crash test of the upload path, with the real daemon as a child process, once with a
// file:// warm store and once with S3 (the versitygw server of the services harness):
//   camera frames are dropped into a folder (mtime 5 minutes back, so their 1-minute
//   windows are closed and compaction makes L1 files at once); the daemon uploads
//   blobs and L1 files to warm;
//   (a) the daemon freezes at the `tiering.after-put` failpoint (object stored in warm,
//       not yet marked uploaded) and is SIGKILLed;
//   (b) restarted with a bandwidth cap that makes uploads slow, it is SIGKILLed while
//       uploads are under way (some uploaded, some not);
//   (b2) a frame past the multipart threshold, slowed by the cap: SIGKILLed while its
//       upload is open (S3: a multipart upload with its first part sent; file://: the
//       temp file half written);
//   (c) restarted without faults, it drains.
// Then: every frame is a row in the hot tier (no lost file), every L1 file and blob is
// committed in the tier map, the warm store holds exactly one object per tier-map row
// (no duplicate, no stray object, no upload temp file or open multipart upload) whose
// bytes match the sha256.
import Database from 'better-sqlite3';
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, readdirSync, utimesSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { ListMultipartUploadsCommand } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { storeSchema } from '../../config/tiering-schema.ts';
import { FileObjectStore } from '../../tiering/stores/file-store.ts';
import type { ObjectStore } from '../../tiering/stores/object-store.ts';
import { S3ObjectStore } from '../../tiering/stores/s3-store.ts';
import { startS3Server, type S3Server } from '../services/s3-server.ts';
import { listKeys, readAll } from '../support/object-store-contract.ts';
import type { ChildDaemon } from '../support/child-daemon.ts';
import { killHard, startFaultDaemon } from '../support/fault-scenario.ts';
import { auditStateDir, failpointEnv, until, waitForFailpoint } from '../support/failpoint.ts';
import { freePort } from '../support/free-port.ts';
import { framesTieringConfig, withoutCatalogKeys } from '../support/tiering-daemon-config.ts';

const FRAME_BYTES = 256 * 1024;
/** Past the S3 store's multipart threshold (5 MiB, the smallest allowed): uploaded in parts. */
const BIG_FRAME_BYTES = 12 * 1024 * 1024;

function config(o: { stateDir: string; dropDir: string; warm: string; apiPort: number; bandwidth?: number }): string {
  return `${framesTieringConfig({ plant: 'crashplant', stateDir: o.stateDir, dropDir: o.dropDir, apiPort: o.apiPort })}  warm: ${o.warm}
  scan_interval_ms: 200
  eviction_interval_ms: 1000
  upload_concurrency: 2
  retry_initial_ms: 100
  retry_max_ms: 1000
  max_attempts: 1000
  # The frames are minutes old, in the current hour: waiting for the hour's merge would
  # hold their L1 files back until the hour closes.
  wait_for_hour_merge: false
${o.bandwidth ? `  bandwidth_bytes_per_second: ${o.bandwidth}\n` : ''}`;
}

interface TierRow {
  kind: string;
  object_key: string;
  sha256: string;
  state: string;
  set_aside_us: number | null;
}

function tierRows(stateDir: string): TierRow[] {
  const db = new Database(join(stateDir, 'landing.db'), { readonly: true, fileMustExist: true });
  try {
    const has = db.prepare(`SELECT 1 FROM sqlite_master WHERE name = 'tier_files'`).get();
    return has ? (db.prepare('SELECT kind, object_key, sha256, state, set_aside_us FROM tier_files ORDER BY id').all() as TierRow[]) : [];
  } finally {
    db.close();
  }
}

function frameRows(stateDir: string): { l1: number; registeredBlobs: number } {
  const db = new Database(join(stateDir, 'landing.db'), { readonly: true, fileMustExist: true });
  try {
    return {
      l1: db.prepare('SELECT count(*) FROM hot_files WHERE level = 1').pluck().get() as number,
      registeredBlobs: db.prepare('SELECT count(*) FROM blobs').pluck().get() as number,
    };
  } finally {
    db.close();
  }
}

/** Where the daemon uploads, and the test's own view of it. */
interface Warm {
  /** The `tiering.warm` YAML mapping. */
  yaml: string;
  env: NodeJS.ProcessEnv;
  store: ObjectStore;
  /** Upload leftovers: temp files (file://) or open multipart uploads (S3). */
  leftovers(): Promise<string[]>;
}

async function fileWarm(dir: string): Promise<Warm> {
  const warmDir = join(dir, 'warm');
  const store = new FileObjectStore(warmDir);
  return {
    yaml: `{ url: "${pathToFileURL(warmDir).href}" }`,
    env: {},
    store,
    leftovers: async () => readdirSync(join(warmDir, '.tmp')),
  };
}

async function s3Warm(server: S3Server): Promise<Warm> {
  const base = { url: 's3://warm/plants', endpoint: server.endpoint, region: server.region, force_path_style: true, multipart_threshold_bytes: 5 * 1024 * 1024 };
  const store = new S3ObjectStore({ ...storeSchema.parse(base), credentials: { access_key_id: server.accessKeyId, secret_access_key: server.secretAccessKey } });
  return {
    // Keys as secret references, as a real config has them.
    yaml: `{ url: "${base.url}", endpoint: "${base.endpoint}", region: ${base.region}, force_path_style: true, multipart_threshold_bytes: ${base.multipart_threshold_bytes}, credentials: { access_key_id: "\${env:LAKESIDE_TEST_S3_KEY}", secret_access_key: "\${env:LAKESIDE_TEST_S3_SECRET}" } }`,
    env: { LAKESIDE_TEST_S3_KEY: server.accessKeyId, LAKESIDE_TEST_S3_SECRET: server.secretAccessKey },
    store,
    leftovers: async () => {
      const client = server.client();
      try {
        return ((await client.send(new ListMultipartUploadsCommand({ Bucket: 'warm' }))).Uploads ?? []).map((u) => u.Key ?? '');
      } finally {
        client.destroy();
      }
    },
  };
}

describe.each(['file', 's3'] as const)('tiering crash (%s warm store): SIGKILL during upload loses no file and makes no duplicate object', (kind) => {
  let dir: string;
  let server: S3Server | undefined;
  const daemons: ChildDaemon[] = [];
  beforeAll(async () => {
    if (kind === 's3') server = await startS3Server({ buckets: ['warm'] });
  }, 120_000);
  afterAll(async () => {
    for (const d of daemons) d.kill('SIGKILL');
    await server?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('survives a kill at the failpoint and a kill mid-upload, then drains exactly once', async () => {
    dir = await mkdtemp(join(tmpdir(), 'lakeside-tiering-crash-'));
    const stateDir = join(dir, 'state');
    const dropDir = join(dir, 'drop');
    const warm = kind === 's3' ? await s3Warm(server!) : await fileWarm(dir);
    const configPath = join(dir, 'lakeside.yaml');
    const apiPort = await freePort();
    const track = (d: ChildDaemon) => daemons.push(d);
    const shas = new Set<string>();
    const drop = (line: string, n: number, start: number, size = FRAME_BYTES) => {
      const past = (Date.now() - 5 * 60_000) / 1000;
      for (let i = start; i < start + n; i++) {
        const bytes = randomBytes(size);
        shas.add(createHash('sha256').update(bytes).digest('hex'));
        mkdirSync(join(dropDir, line), { recursive: true });
        const path = join(dropDir, line, `f${i}.bin`);
        writeFileSync(path, bytes);
        utimesSync(path, past, past);
      }
    };
    mkdirSync(dropDir, { recursive: true });
    drop('l1', 10, 0);
    drop('l2', 10, 0);

    // (a) Frozen right after the first object is stored, then killed.
    writeFileSync(configPath, config({ stateDir, dropDir, warm: warm.yaml, apiPort }));
    const first = await startFaultDaemon(configPath, { ...failpointEnv('tiering.after-put'), ...warm.env }, track);
    const { files } = await waitForFailpoint(first, 'tiering.after-put', 60_000);
    expect(files).toHaveLength(1);
    await killHard(first);
    expect(tierRows(stateDir).filter((r) => r.state !== 'local')).toEqual([]);

    // (b) Slow uploads (≈ 1 frame/s), killed once some but not all are uploaded.
    drop('l1', 6, 10);
    writeFileSync(configPath, config({ stateDir, dropDir, warm: warm.yaml, apiPort, bandwidth: FRAME_BYTES }));
    const second = await startFaultDaemon(configPath, warm.env, track);
    await until(() => tierRows(stateDir).filter((r) => r.state !== 'local').length >= 3, 60_000, 'some uploads during the slow run');
    const midway = tierRows(stateDir);
    expect(midway.some((r) => r.state === 'local')).toBe(true);
    await killHard(second);

    // (b2) The big frame's upload is open (parts on the server, or the temp file) when the daemon dies.
    drop('l2', 1, 100, BIG_FRAME_BYTES);
    writeFileSync(configPath, config({ stateDir, dropDir, warm: warm.yaml, apiPort, bandwidth: 1024 * 1024 }));
    const big = await startFaultDaemon(configPath, warm.env, track);
    await until(async () => (await warm.leftovers()).length > 0, 90_000, 'the big frame upload under way');
    await killHard(big);
    expect(await warm.leftovers()).not.toEqual([]); // the kill left it open: (c) must clean it up

    // (c) Restarted clean: everything drains.
    writeFileSync(configPath, config({ stateDir, dropDir, warm: warm.yaml, apiPort }));
    const third = await startFaultDaemon(configPath, warm.env, track);
    await until(() => readdirSync(dropDir, { recursive: true }).filter((p) => String(p).endsWith('.bin')).length === 0, 60_000, 'drop folder emptied');
    await until(
      () => {
        const rows = tierRows(stateDir);
        const { l1, registeredBlobs } = frameRows(stateDir);
        return registeredBlobs === shas.size && l1 > 0 && rows.length === l1 + registeredBlobs && rows.every((r) => r.state === 'committed');
      },
      120_000,
      () => `all committed; tier rows: ${JSON.stringify(tierRows(stateDir).map((r) => r.state))}`,
    );
    expect((await third.stop()).code).toBe(0);

    const rows = tierRows(stateDir);
    // No lost file: every dropped frame is a blob of the hot tier, and in warm.
    expect(new Set(rows.filter((r) => r.kind === 'blob').map((r) => r.sha256))).toEqual(shas);
    expect(rows.every((r) => r.set_aside_us === null)).toBe(true);
    // No duplicate and no stray object: warm holds exactly the tier map's keys, and the temp area is empty.
    const objects = withoutCatalogKeys(await listKeys(warm.store));
    expect(objects.sort()).toEqual(rows.map((r) => r.object_key).sort());
    expect(await warm.leftovers()).toEqual([]);
    for (const row of rows) {
      expect(createHash('sha256').update(await readAll(await warm.store.get(row.object_key))).digest('hex')).toBe(row.sha256);
    }
    await warm.store.close();
    expect(rows.every((r) => r.object_key.startsWith('crashplant/'))).toBe(true);
    expect(rows.filter((r) => r.kind === 'data').every((r) => /^crashplant\/frames\/data\/\d{8}T\d{4}Z\/line=l[12]\/agent_a-/.test(r.object_key))).toBe(true);
    const audit = auditStateDir(stateDir);
    expect(audit.tempFiles).toEqual([]);
    expect(audit.unregisteredParquet).toEqual([]);
    expect(audit.missingParquet).toEqual([]);
    expect(audit.missingBlobs).toEqual([]);
  });
});
