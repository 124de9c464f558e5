/**
 * Status back to the centre: every `policy.status.interval_seconds` the agent writes
 * `status/<plant>.json` under `policy.status.url` (`file:` directory or
 * `s3://bucket[/prefix]`); `lakeside fleet status` reads them all back.
 *
 * Key scheme: one object per plant, `<root>/status/<plant>.json`, overwritten by each
 * write (a plain put, the one place lakeside overwrites an object: the report is a
 * snapshot, not data). A file root gets it atomically (temp + rename); S3 replaces an
 * object atomically by itself. A reader sees the previous report or the next, whole.
 *
 * Content (`PlantStatus`): plant, agent_id, time, the policy applied and refused, disk
 * use, per dataset the lag to warm (age of the oldest data not yet uploaded) and to
 * the catalog (oldest uploaded, not committed), the oldest uncommitted data, open
 * alerts. Ages are by event time, the same clock the retentions use.
 *
 * A failed write is logged (POLICY_STATUS_FAILED) and tried again next interval; it
 * never touches the agent's data path.
 */
import Database from 'better-sqlite3';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { GetObjectCommand, ListObjectsV2Command, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { writeFileDurably } from '../../agent/fs-durable.ts';
import { onceStop, type Component } from '../../agent/lifecycle.ts';
import type { AgentPolicyConfig } from '../../config/policy-schema.ts';
import { Periodic } from '../../tiering/periodic.ts';
import { joinKey } from '../../tiering/stores/object-store.ts';
import { parseS3Url, s3ClientConfig } from '../../tiering/stores/s3-store.ts';
import { loadedStoreConfig, type PolicyStoreSettings } from './fetch.ts';
import type { PolicyLogger, PolicyStatus } from './policy-agent.ts';

export interface DatasetLag {
  dataset: string;
  /** Seconds since the newest event of the oldest file not yet uploaded (0: nothing waits). */
  lag_to_warm_seconds: number;
  /** Seconds since the newest event of the oldest file uploaded, not yet committed (0: none). */
  lag_to_catalog_seconds: number;
  oldest_uncommitted_at: string | null;
  not_uploaded_files: number;
  not_uploaded_bytes: number;
  uncommitted_files: number;
}

export interface PlantStatus {
  plant: string;
  agent_id: string;
  time: string;
  /** How often this agent writes its report (a reader calls it stale after a few missed ones). */
  interval_seconds: number | null;
  policy: {
    applied_version: number | null;
    applied_at: string | null;
    expires_at: string | null;
    refused: { version: number | null; code: string; reason: string; at: string } | null;
    last_fetch_at: string | null;
    last_fetch_error: string | null;
  };
  disk: { used_bytes: number | null; size_bytes: number | null; used_percent: number | null; watermark: string };
  datasets: DatasetLag[];
  oldest_uncommitted_at: string | null;
  alerts: unknown[];
}

/** What the daemon's /v1/status knows that the report needs. */
export interface AgentSnapshot {
  disk: { size_bytes: number | null; free_bytes: number | null; watermark: string };
  alerts: unknown[];
}

/** Per dataset (blobs as `(blobs)`), from the tier map: what is not uploaded and what is not committed. */
export function datasetLags(db: Database.Database, nowMs: number): DatasetLag[] {
  const has = db.prepare(`SELECT 1 FROM sqlite_master WHERE name = 'tier_files'`).get();
  if (!has) return [];
  const rows = db
    .prepare(
      `SELECT coalesce(dataset, '(blobs)') AS dataset, state, count(*) AS files, coalesce(sum(size_bytes), 0) AS bytes, min(event_time_us) AS oldest
       FROM tier_files WHERE (state = 'local' AND local_state = 'present') OR state = 'uploaded' GROUP BY 1, 2`,
    )
    .all() as { dataset: string; state: 'local' | 'uploaded'; files: number; bytes: number; oldest: number }[];
  const lags = new Map<string, DatasetLag & { oldestUs: number | null }>();
  const age = (us: number): number => Math.max(0, Math.round(nowMs / 1000 - us / 1e6));
  for (const r of rows) {
    let lag = lags.get(r.dataset);
    if (!lag) {
      lag = { dataset: r.dataset, lag_to_warm_seconds: 0, lag_to_catalog_seconds: 0, oldest_uncommitted_at: null, not_uploaded_files: 0, not_uploaded_bytes: 0, uncommitted_files: 0, oldestUs: null };
      lags.set(r.dataset, lag);
    }
    if (r.state === 'local') {
      lag.lag_to_warm_seconds = age(r.oldest);
      lag.not_uploaded_files = r.files;
      lag.not_uploaded_bytes = r.bytes;
    } else lag.lag_to_catalog_seconds = age(r.oldest);
    lag.uncommitted_files += r.files;
    lag.oldestUs = Math.min(lag.oldestUs ?? Infinity, r.oldest);
  }
  return [...lags.values()]
    .sort((a, b) => a.dataset.localeCompare(b.dataset))
    .map(({ oldestUs, ...lag }) => ({ ...lag, oldest_uncommitted_at: oldestUs === null ? null : new Date(oldestUs / 1000).toISOString() }));
}

export function buildPlantStatus(input: { plant: string; agentId: string; nowMs: number; intervalSeconds?: number; policy: PolicyStatus | null; snapshot: AgentSnapshot; datasets: DatasetLag[] }): PlantStatus {
  const { policy, snapshot } = input;
  const size = snapshot.disk.size_bytes;
  const used = size !== null && snapshot.disk.free_bytes !== null ? size - snapshot.disk.free_bytes : null;
  const oldest = input.datasets.map((d) => d.oldest_uncommitted_at).filter((t): t is string => t !== null).sort()[0] ?? null;
  return {
    plant: input.plant,
    agent_id: input.agentId,
    time: new Date(input.nowMs).toISOString(),
    interval_seconds: input.intervalSeconds ?? null,
    policy: {
      applied_version: policy?.applied?.version ?? null,
      applied_at: policy?.applied?.applied_at ?? null,
      expires_at: policy?.applied?.expires_at ?? null,
      refused: policy?.refused ?? null,
      last_fetch_at: policy?.last_fetch?.at ?? null,
      last_fetch_error: policy?.last_fetch?.error ?? null,
    },
    disk: { used_bytes: used, size_bytes: size, used_percent: used !== null && size ? Math.round((used / size) * 1000) / 10 : null, watermark: snapshot.disk.watermark },
    datasets: input.datasets,
    oldest_uncommitted_at: oldest,
    alerts: snapshot.alerts,
  };
}

/** Where status reports live: `file:` directory or `s3://bucket[/prefix]`, each plant at `status/<plant>.json`. */
export class StatusLocation {
  readonly description: string;
  private readonly dir: string | null = null;
  private readonly s3: { client: S3Client; bucket: string; prefix: string } | null = null;

  constructor(url: string, store?: PolicyStoreSettings) {
    this.description = url;
    if (url.startsWith('file:')) {
      this.dir = url.startsWith('file://') ? fileURLToPath(url) : url.slice('file:'.length);
    } else {
      const { bucket, prefix } = parseS3Url(url);
      this.s3 = { client: new S3Client(s3ClientConfig(loadedStoreConfig(url, store))), bucket, prefix };
    }
  }

  async write(plant: string, report: PlantStatus): Promise<void> {
    const body = Buffer.from(`${JSON.stringify(report, null, 2)}\n`);
    if (this.dir !== null) return writeFileDurably(join(this.dir, 'status', `${plant}.json`), body);
    const { client, bucket, prefix } = this.s3!;
    await client.send(new PutObjectCommand({ Bucket: bucket, Key: joinKey(prefix, 'status', `${plant}.json`), Body: body, ContentType: 'application/json' }));
  }

  /** Every status report present; one that does not parse is returned as an error for its key. */
  async readAll(): Promise<{ key: string; status?: PlantStatus; error?: string }[]> {
    const out: { key: string; status?: PlantStatus; error?: string }[] = [];
    const parse = (key: string, text: string): void => {
      try {
        out.push({ key, status: JSON.parse(text) as PlantStatus });
      } catch (error) {
        out.push({ key, error: (error as Error).message });
      }
    };
    if (this.dir !== null) {
      const dir = join(this.dir, 'status');
      let names: string[] = [];
      try {
        names = (await readdir(dir)).filter((n) => n.endsWith('.json') && !n.startsWith('.')).sort();
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
      }
      for (const name of names) parse(join(dir, name), await readFile(join(dir, name), 'utf8'));
      return out;
    }
    const { client, bucket, prefix } = this.s3!;
    let token: string | undefined;
    do {
      const page = await client.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: `${joinKey(prefix, 'status')}/`, ...(token ? { ContinuationToken: token } : {}) }));
      for (const object of page.Contents ?? []) {
        if (!object.Key?.endsWith('.json')) continue;
        const response = await client.send(new GetObjectCommand({ Bucket: bucket, Key: object.Key }));
        parse(`s3://${bucket}/${object.Key}`, (await response.Body?.transformToString('utf8')) ?? '');
      }
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
    return out;
  }

  close(): void {
    this.s3?.client.destroy();
  }
}

export interface StatusReporterOptions {
  config: NonNullable<AgentPolicyConfig['status']>;
  store?: AgentPolicyConfig['store'];
  plant: string;
  agentId: string;
  dbPath: string;
  policy: () => PolicyStatus | null;
  snapshot: () => Promise<AgentSnapshot>;
  logger: PolicyLogger;
  nowMs?: () => number;
}

export class StatusReporter implements Component {
  readonly name = 'policy-status';
  private readonly options: StatusReporterOptions;
  private readonly location: StatusLocation;
  private readonly loop: Periodic;
  private readonly nowMs: () => number;

  constructor(options: StatusReporterOptions) {
    this.options = options;
    this.location = new StatusLocation(options.config.url, options.store);
    this.nowMs = options.nowMs ?? Date.now;
    this.loop = new Periodic(() => this.report(), options.config.interval_seconds * 1000, (error) =>
      options.logger.warn({ code: 'POLICY_STATUS_FAILED', to: this.location.description, err: error.message }, 'status report not written; tried again next interval'),
    );
  }

  async start(): Promise<void> {
    this.loop.start(0);
  }

  readonly stop = onceStop(async () => {
    await this.loop.stop();
    this.location.close();
  });

  /** Builds and writes one report (the loop's step; tests call it). */
  async report(): Promise<PlantStatus> {
    const o = this.options;
    const nowMs = this.nowMs();
    const db = new Database(o.dbPath, { readonly: true, fileMustExist: true });
    let datasets: DatasetLag[];
    try {
      db.pragma('busy_timeout = 5000');
      datasets = datasetLags(db, nowMs);
    } finally {
      db.close();
    }
    const status = buildPlantStatus({ plant: o.plant, agentId: o.agentId, nowMs, intervalSeconds: o.config.interval_seconds, policy: o.policy(), snapshot: await o.snapshot(), datasets });
    await this.location.write(o.plant, status);
    return status;
  }
}
