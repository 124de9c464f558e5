// Three days without WAN against a real S3 server (versitygw) behind the TCP fault proxy,
// on an injected clock: the real Uploader (S3ObjectStore through the proxy) and Evictor,
// files arriving every simulated hour. The unit version (test/unit/tiering/wan-outage.test.ts)
// fails puts in a stub; here the network itself goes black: requests are held in the
// proxy and time out (request_timeout_ms), as on a dead WAN link.
//   1. 4 hours with the WAN up: the files go to the bucket and are committed.
//   2. 72 hours blackholed: ingestion continues; each hour the uploader tries and times
//      out; past the high watermark only committed files are evicted (the hot window
//      shrinks); every uncommitted file stays on disk and in hot_files; the pause
//      callback fires once, at the critical watermark and not before; nothing reaches S3.
//   3. The WAN returns: one pass drains the backlog, higher priority first, oldest first
//      within a priority; the bucket then holds every file exactly once, with its bytes.
//   4. Retention frees the disk and the sources resume.
// Real time goes into the blackholed attempts (one request timeout each), so the retry
// backoff is long (36-72 h) to keep them few; nothing here waits on a timer.
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { GetObjectCommand, ListObjectsV2Command } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { storeSchema } from '../../config/tiering-schema.ts';
import { NO_CATALOG } from '../../tiering/catalog-handoff.ts';
import { Evictor, type DiskUsage } from '../../tiering/evictor.ts';
import { S3ObjectStore } from '../../tiering/stores/s3-store.ts';
import type { TierRecord } from '../../tiering/tier-map.ts';
import { Uploader } from '../../tiering/uploader.ts';
import { startS3Server, type S3Server } from '../services/s3-server.ts';
import { startFaultProxy, type FaultProxy } from '../support/tcp-fault-proxy.ts';
import { createTieringFixture, recordingLogger, type TieringFixture } from '../unit/tiering/fixture.ts';

const HOUR_MS = 3_600_000;
const FILE_BYTES = 1000;
const BUDGET = 50_000; // high 60 % = 30 kB, critical 80 % = 40 kB
const CRITICAL_BYTES = BUDGET * 0.8;
const WAN_UP_HOURS = 4;
const OUTAGE_HOURS = 72;

describe('a three-day WAN outage in front of a real S3 server (injected clock)', () => {
  let server: S3Server;
  let proxy: FaultProxy;
  let f: TieringFixture;
  let store: S3ObjectStore | undefined;
  beforeAll(async () => {
    server = await startS3Server({ buckets: ['warm'] });
    proxy = await startFaultProxy({ target: { host: '127.0.0.1', port: server.port } });
  }, 120_000);
  afterAll(async () => {
    await store?.close();
    f?.close();
    await proxy?.close();
    await server?.stop();
  });

  /** The bucket as the server holds it (around the proxy): key → sha256 of the bytes. */
  async function bucketContents(): Promise<Map<string, string>> {
    const client = server.client();
    try {
      const keys: string[] = [];
      let token: string | undefined;
      do {
        const page = await client.send(new ListObjectsV2Command({ Bucket: 'warm', ...(token ? { ContinuationToken: token } : {}) }));
        keys.push(...(page.Contents ?? []).map((o) => o.Key!));
        token = page.IsTruncated ? page.NextContinuationToken : undefined;
      } while (token);
      const out = new Map<string, string>();
      for (const key of keys) {
        const body = await client.send(new GetObjectCommand({ Bucket: 'warm', Key: key }));
        out.set(key, createHash('sha256').update(await body.Body!.transformToByteArray()).digest('hex'));
      }
      return out;
    } finally {
      client.destroy();
    }
  }

  it('keeps everything uncommitted, pauses only at critical, drains by priority when the WAN returns, then frees the disk', async () => {
    f = await createTieringFixture();
    const storeConfig = storeSchema.parse({ url: 's3://warm', endpoint: proxy.url('http'), region: server.region, force_path_style: true, request_timeout_ms: 500 });
    store = new S3ObjectStore({ ...storeConfig, credentials: { access_key_id: server.accessKeyId, secret_access_key: server.secretAccessKey } });
    const config = f.config({
      upload_concurrency: 1,
      max_attempts: 1_000_000,
      retry_initial_ms: 72 * HOUR_MS,
      retry_max_ms: 72 * HOUR_MS,
      hot_retention_hours: 24,
      disk_budget: { max_bytes: BUDGET, high_watermark_percent: 60, critical_watermark_percent: 80 },
      datasets: { inspections: { priority: 10 }, readings: { priority: 1 } },
    });
    const log = recordingLogger();
    // Once the WAN is back the uploader's clock ticks 1 ms per reading, so each file's
    // uploaded_us tells the order the objects landed in (hours are unaffected).
    let ticking = false;
    const uploaderNow = (): number => (ticking ? ++f.clock.ms : f.clock.ms);
    const uploader = new Uploader({ db: f.db, map: f.map, store, catalog: NO_CATALOG, config, stateDir: f.stateDir, context: { plant: 'p', agentId: 'a' }, logger: log.logger, nowMs: uploaderNow });
    // Disk usage: the bytes of the files still on local disk (what the budget counts of them).
    const measure = async (): Promise<DiskUsage> => ({
      usedBytes: f.db.prepare(`SELECT coalesce(sum(file_size_bytes), 0) FROM hot_files`).pluck().get() as number,
      budgetBytes: BUDGET,
    });
    const pressure: { critical: boolean; usedBytes: number }[] = [];
    const evictor = new Evictor({
      db: f.db,
      map: f.map,
      config,
      stateDir: f.stateDir,
      logger: log.logger,
      measure,
      beforeUnlink: async () => {},
      onPressure: (critical) => pressure.push({ critical, usedBytes: f.db.prepare(`SELECT coalesce(sum(file_size_bytes), 0) FROM hot_files`).pluck().get() as number }),
      nowMs: f.nowMs,
    });

    /** The sha256 of each file's bytes as written (the test's own record, not the tier map's). */
    const written = new Map<string, string>();
    const arrive = (): void => {
      for (const dataset of ['inspections', 'readings']) {
        const record = f.addL1(dataset, { bytes: FILE_BYTES, ageHours: 0 });
        written.set(record.path, createHash('sha256').update(readFileSync(join(f.stateDir, record.path))).digest('hex'));
      }
    };
    const rows = (): TierRecord[] => f.map.all();
    const hotPaths = (): Set<string> => new Set(f.db.prepare('SELECT path FROM hot_files').pluck().all() as string[]);
    /** Nothing uncommitted left the disk; whatever did was committed. */
    const checkNothingUncommittedLost = (): void => {
      const hot = hotPaths();
      for (const r of rows()) {
        if (r.state === 'committed') continue;
        expect(r.local_state, r.local_path).toBe('present');
        expect(existsSync(join(f.stateDir, r.local_path)), r.local_path).toBe(true);
        expect(hot.has(r.local_path), r.local_path).toBe(true);
      }
      for (const r of rows().filter((r) => r.local_state !== 'present')) expect(r.state).toBe('committed');
    };

    // 1. The WAN is up: every hour's files reach the bucket and are committed.
    for (let hour = 0; hour < WAN_UP_HOURS; hour++) {
      arrive();
      await uploader.pass();
      await evictor.pass();
      f.clock.ms += HOUR_MS;
    }
    const before = rows();
    expect(before).toHaveLength(2 * WAN_UP_HOURS);
    expect(before.every((r) => r.state === 'committed')).toBe(true);
    expect([...(await bucketContents()).keys()].sort()).toEqual(before.map((r) => r.object_key).sort());

    // 2. The WAN goes black for 72 hours.
    proxy.setFault({ kind: 'blackhole' });
    const downstreamBefore = proxy.stats().bytesDownstream;
    const acceptedBefore = proxy.stats().accepted;
    let outageFiles = 0;
    let hoursPastHigh = 0;
    for (let hour = 0; hour < OUTAGE_HOURS; hour++) {
      if (!evictor.isCritical) {
        arrive();
        outageFiles += 2;
      }
      await uploader.pass();
      // Every file that was due (new, or its retry) was tried, timed out and waits for its next attempt.
      const uncommitted = rows().filter((r) => r.state !== 'committed');
      expect(uncommitted.filter((r) => r.state !== 'local' || r.attempts === 0 || r.next_attempt_us <= f.clock.ms * 1000)).toEqual([]);
      const report = await evictor.pass();
      checkNothingUncommittedLost();
      // The sources are paused exactly while usage is at the critical watermark.
      expect(pressure.at(-1)?.critical ?? false).toBe(report.usedBytes >= CRITICAL_BYTES);
      if (report.usedBytes > BUDGET * 0.6 && report.usedBytes < CRITICAL_BYTES) hoursPastHigh++;
      f.clock.ms += HOUR_MS;
    }
    // Ingestion went on until critical: 40 kB on disk, all of it uncommitted.
    expect(outageFiles).toBe(40);
    expect(rows().filter((r) => r.state === 'local')).toHaveLength(outageFiles);
    expect((await measure()).usedBytes).toBe(CRITICAL_BYTES);
    // The hot window shrank over the committed files only (and all of them went for space).
    expect(log.records.some((r) => r.obj.code === 'HOT_WINDOW_SHRUNK')).toBe(true);
    expect(rows().filter((r) => r.local_state === 'evicted').map((r) => r.id)).toEqual(before.map((r) => r.id));
    // Paused once, at critical, never above high alone.
    expect(hoursPastHigh).toBeGreaterThan(0);
    expect(pressure).toEqual([{ critical: true, usedBytes: CRITICAL_BYTES }]);
    // The outage was real: connections were made, nothing came back, uploads timed out, none set aside.
    expect(proxy.stats().accepted).toBeGreaterThan(acceptedBefore);
    expect(proxy.stats().bytesDownstream).toBe(downstreamBefore);
    expect(log.records.some((r) => r.obj.code === 'UPLOAD_FAILED' && /Timeout|timed out|socket/i.test(String(r.obj.err)))).toBe(true);
    expect(log.records.some((r) => r.obj.code === 'UPLOAD_SET_ASIDE')).toBe(false);
    expect([...(await bucketContents()).keys()].sort()).toEqual(before.map((r) => r.object_key).sort());

    // 3. The WAN returns (stalled connections die with the outage), past every backoff.
    proxy.dropAll();
    proxy.setFault({ kind: 'pass' });
    f.clock.ms += 72 * HOUR_MS;
    ticking = true;
    await uploader.pass();
    ticking = false;
    const drained = rows()
      .filter((r) => !before.some((b) => b.id === r.id))
      .sort((a, b) => a.uploaded_us! - b.uploaded_us!);
    expect(drained.map((r) => r.state)).toEqual(drained.map(() => 'committed'));
    expect(new Set(drained.map((r) => r.uploaded_us)).size).toBe(drained.length);
    expect(drained.map((r) => r.dataset)).toEqual([...Array(outageFiles / 2).fill('inspections'), ...Array(outageFiles / 2).fill('readings')]);
    for (let i = 1; i < drained.length; i++) {
      if (drained[i]!.dataset === drained[i - 1]!.dataset) expect(drained[i]!.event_time_us).toBeGreaterThan(drained[i - 1]!.event_time_us);
    }
    // Every file in the bucket exactly once, with the bytes that were written.
    const bucket = await bucketContents();
    const all = rows();
    expect([...bucket.keys()].sort()).toEqual(all.map((r) => r.object_key).sort());
    for (const r of all) {
      expect(bucket.get(r.object_key), r.object_key).toBe(written.get(r.local_path));
      expect(r.sha256).toBe(written.get(r.local_path));
    }

    // 4. Retention (24 h) frees the disk; the sources resume.
    const report = await evictor.pass();
    expect(report.retention).toBe(outageFiles);
    expect((await measure()).usedBytes).toBe(0);
    for (const r of rows()) expect(existsSync(join(f.stateDir, r.local_path))).toBe(false);
    expect(pressure.map((p) => p.critical)).toEqual([true, false]);
  });
});
