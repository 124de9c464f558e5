/**
 * Tiering benchmark against the real S3 server of the services harness (versitygw):
 *
 * (a) throughput: the uploader (HEAD-verify, If-None-Match, SHA-256 checksum and a
 *     second hash of the bytes sent, tier-map bookkeeping, concurrency 4; files already
 *     registered, as compaction leaves them) against plain @aws-sdk/client-s3 PutObject
 *     calls of the same bytes with the same concurrency, in the same run, alternated
 *     twice; the issue asks for ≥ 0.8×.
 * (b) bandwidth cap: the uploader capped at `--rate` bytes/s for 60 s (after a 5 s
 *     warm-up); bytes let through by the token bucket in the window against 60 × rate
 *     (issue: within ±5 %), and the CPU the process used meanwhile, as a share of one
 *     core (issue: ≤ 10 % at 10 MB/s).
 *
 *   node test/bench/tiering-upload.ts [--files 24] [--mib 8] [--rate 10000000] [--seconds 60]
 *
 * Prints one JSON line per measurement.
 */
import { createReadStream } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { storeSchema } from '../../config/tiering-schema.ts';
import { NO_CATALOG } from '../../tiering/catalog-handoff.ts';
import { discoverNewFiles } from '../../tiering/layout.ts';
import { S3ObjectStore } from '../../tiering/stores/s3-store.ts';
import { TokenBucket } from '../../tiering/token-bucket.ts';
import { Uploader } from '../../tiering/uploader.ts';
import { startS3Server, type S3Server } from '../services/s3-server.ts';
import { createTieringFixture, recordingLogger, type TieringFixture } from '../unit/tiering/fixture.ts';

const { values } = parseArgs({
  options: {
    files: { type: 'string', default: '24' },
    mib: { type: 'string', default: '8' },
    rate: { type: 'string', default: '10000000' },
    seconds: { type: 'string', default: '60' },
  },
});
const FILES = Number(values.files);
const BYTES = Number(values.mib) * 1024 * 1024;
const RATE = Number(values.rate);
const SECONDS = Number(values.seconds);
const CONCURRENCY = 4;

function storeFor(server: S3Server, prefix: string): S3ObjectStore {
  const config = storeSchema.parse({ url: `s3://bench/${prefix}`, endpoint: server.endpoint, region: server.region, force_path_style: true });
  return new S3ObjectStore({ ...config, credentials: { access_key_id: server.accessKeyId, secret_access_key: server.secretAccessKey } });
}

async function fixtureWith(files: number, bytes: number): Promise<TieringFixture> {
  const f = await createTieringFixture();
  for (let i = 0; i < files; i++) f.addL1('readings', { bytes, ageHours: 1 + i / 1000 });
  return f;
}

function uploaderFor(f: TieringFixture, store: S3ObjectStore, bucket: TokenBucket | null): Uploader {
  const config = f.config({ upload_concurrency: CONCURRENCY });
  return new Uploader({ db: f.db, map: f.map, store, catalog: NO_CATALOG, config, stateDir: f.stateDir, context: { plant: 'bench', agentId: 'bench' }, logger: recordingLogger().logger, bucket });
}

async function plainPuts(server: S3Server, f: TieringFixture, prefix: string): Promise<number> {
  const client = server.client();
  const paths = (f.db.prepare('SELECT path FROM hot_files WHERE level = 1 ORDER BY id').pluck().all() as string[]).map((p) => join(f.stateDir, p));
  const started = performance.now();
  let next = 0;
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (next < paths.length) {
        const i = next++;
        await client.send(new PutObjectCommand({ Bucket: 'bench', Key: `${prefix}/${i}`, Body: createReadStream(paths[i]!), ContentLength: BYTES }));
      }
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  client.destroy();
  return (paths.length * BYTES) / seconds;
}

async function tieringUpload(server: S3Server, f: TieringFixture, prefix: string): Promise<number> {
  const store = storeFor(server, prefix);
  const uploader = uploaderFor(f, store, null);
  // Files are registered (hashed) when compaction makes them, off the upload path.
  await discoverNewFiles(f.db, f.map, f.stateDir, { plant: 'bench', agentId: 'bench' }, Date.now() * 1000);
  const started = performance.now();
  await uploader.pass();
  const seconds = (performance.now() - started) / 1000;
  await store.close();
  if (uploader.stats.uploaded !== FILES) throw new Error(`uploaded ${uploader.stats.uploaded} of ${FILES}`);
  return (FILES * BYTES) / seconds;
}

class CountingBucket extends TokenBucket {
  readonly grants: { at: number; bytes: number }[] = [];
  override take(bytes: number): Promise<void> {
    return super.take(bytes).then(() => {
      this.grants.push({ at: performance.now(), bytes });
    });
  }
}

const server = await startS3Server({ buckets: ['bench'] });
try {
  // (a) throughput, alternated: plain, tiering, plain, tiering.
  const mb = (x: number) => Math.round((x / 1e6) * 10) / 10;
  const results: { plain: number; tiering: number }[] = [];
  for (let round = 0; round < 2; round++) {
    const a = await fixtureWith(FILES, BYTES);
    const plain = await plainPuts(server, a, `plain-${round}`);
    a.close();
    const b = await fixtureWith(FILES, BYTES);
    const tiering = await tieringUpload(server, b, `tiering-${round}`);
    b.close();
    results.push({ plain, tiering });
    console.log(JSON.stringify({ bench: 'tiering-upload', phase: 'throughput', round, files: FILES, fileMiB: BYTES / 1048576, concurrency: CONCURRENCY, plainMBps: mb(plain), tieringMBps: mb(tiering), ratio: Math.round((tiering / plain) * 100) / 100 }));
  }
  const sum = (k: 'plain' | 'tiering') => results.reduce((n, r) => n + r[k], 0);
  console.log(JSON.stringify({ bench: 'tiering-upload', phase: 'throughput-total', ratio: Math.round((sum('tiering') / sum('plain')) * 100) / 100, target: '>= 0.8' }));

  // (b) the bandwidth cap over a window, and the CPU it costs.
  const needed = Math.ceil(((SECONDS + 10) * RATE) / BYTES) + CONCURRENCY;
  const c = await fixtureWith(needed, BYTES);
  const bucket = new CountingBucket(RATE);
  const store = storeFor(server, 'capped');
  const uploader = uploaderFor(c, store, bucket);
  const running = uploader.pass();
  await new Promise((resolve) => setTimeout(resolve, 5000));
  const from = performance.now();
  const cpuBefore = process.cpuUsage();
  await new Promise((resolve) => setTimeout(resolve, SECONDS * 1000));
  const to = performance.now();
  const cpu = process.cpuUsage(cpuBefore);
  await uploader.stop();
  await running.catch(() => undefined);
  const bytes = bucket.grants.filter((g) => g.at >= from && g.at < to).reduce((n, g) => n + g.bytes, 0);
  const windowSeconds = (to - from) / 1000;
  const accuracy = bytes / (windowSeconds * RATE);
  console.log(
    JSON.stringify({
      bench: 'tiering-upload',
      phase: 'bandwidth-cap',
      capBytesPerSecond: RATE,
      windowSeconds: Math.round(windowSeconds * 10) / 10,
      achievedBytesPerSecond: Math.round(bytes / windowSeconds),
      ratioToCap: Math.round(accuracy * 1000) / 1000,
      withinFivePercent: Math.abs(accuracy - 1) <= 0.05,
      cpuShareOfOneCore: Math.round(((cpu.user + cpu.system) / 1e6 / windowSeconds) * 1000) / 1000,
    }),
  );
  await store.close();
  c.close();
} finally {
  await server.stop();
}
