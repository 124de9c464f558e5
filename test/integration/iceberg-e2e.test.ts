// Issue 6 end to end: the real `lakeside` binary as a child daemon, MQTT rows from a
// Mosquitto broker, and PyIceberg (another implementation of the spec) as the reader.
//
// REST catalog (the Apache fixture, warehouse in versitygw S3; warm and cold are two
// buckets of the same server):
//   1. two rounds of known rows into two datasets (`sensors` partitioned by line,
//      `counters` with numeric columns), each round waited for until the tier map says
//      every data file is committed; then: both tables exist, schemas carry the
//      dataset's field ids and types plus `plant` (100000), the spec is day / plant /
//      line, a scan returns exactly the published rows (multiset of all columns) with
//      `plant` filled, every data file's partition tuple matches its rows, every snapshot
//      summary carries the markers with increasing seqs, and scanning the snapshot that
//      was current after round 1 returns exactly round 1's rows (time travel);
//   2. restarted with a cold store and `warm_retention_days: 0`: every file moves to
//      cold, PyIceberg still returns every row, every data file path is in cold, the
//      warm bucket is empty.
// File-system catalog (no `catalog` section, file:// warm directory):
//   3. PyIceberg's StaticTable on the newest metadata file returns exactly the rows.
// Services are started for real; a missing one fails the suite (never skips).
import { readdirSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { storeSchema } from '../../config/tiering-schema.ts';
import { S3ObjectStore } from '../../tiering/stores/s3-store.ts';
import { startIcebergRest, type IcebergRest } from '../services/iceberg-rest.ts';
import { startMosquitto, type Mosquitto } from '../services/mosquitto.ts';
import { pyicebergBatch, pyicebergLocal, type PyDataFile, type PyScan, type PySnapshot } from '../services/pyiceberg.ts';
import { startS3Server, type S3Server } from '../services/s3-server.ts';
import type { ChildDaemon } from '../support/child-daemon.ts';
import { startFaultDaemon } from '../support/fault-scenario.ts';
import { until } from '../support/failpoint.ts';
import {
  COUNTERS_FIELD_IDS,
  countsByDataset,
  fastTiering,
  publishRows,
  roundRows,
  s3StoreSettings,
  scannedKey,
  SENSORS_FIELD_IDS,
  tierProgress,
  writeIcebergDaemonConfig,
  type PublishedRow,
} from '../support/iceberg-daemon-config.ts';
import { listKeys } from '../support/object-store-contract.ts';

const PLANT = 'e2eplant';
const AGENT = 'agent_e2e';
const DATASETS = ['sensors', 'counters'] as const;
const DAY_MS = 86_400_000;

let broker: Mosquitto;
const daemons: ChildDaemon[] = [];
const dirs: string[] = [];
const track = (d: ChildDaemon): void => void daemons.push(d);

beforeAll(async () => {
  broker = await startMosquitto({ extraConfig: ['log_type subscribe'] });
}, 60_000);

afterAll(async () => {
  for (const d of daemons) d.kill('SIGKILL');
  await broker?.stop();
  for (const dir of dirs) await rm(dir, { recursive: true, force: true });
});

function keysOf(rows: PublishedRow[], dataset: string): string[] {
  return rows.filter((r) => r.dataset === dataset).map((r) => r.key).sort();
}

function scannedKeys(dataset: string, scan: PyScan): string[] {
  return (scan.rows ?? []).map((row) => scannedKey(dataset, row)).sort();
}

/** Waits until every published row sits in a data file in one of `states` and no data file is in another state. */
async function waitForTier(stateDir: string, rows: PublishedRow[], states: string[], what: string): Promise<void> {
  const expected = countsByDataset(rows);
  await until(
    () => {
      const p = tierProgress(stateDir, states);
      return p.otherFiles === 0 && DATASETS.every((ds) => p.rows[ds] === expected[ds]);
    },
    150_000,
    () => `${what}: expected ${JSON.stringify(expected)}, tier map: ${JSON.stringify(tierProgress(stateDir, states))}`,
    300,
  );
}

/** Error-level log lines of a daemon: a clean run has none. */
function errorsOf(daemon: ChildDaemon): Record<string, unknown>[] {
  return daemon.logs().filter((l) => typeof l.level === 'number' && l.level >= 50);
}

/** The UTC day number of a partition value (PyIceberg gives the day transform's int, or a date). */
function dayOf(value: unknown): number {
  return typeof value === 'number' ? value : Math.floor(Date.parse(String(value)) / DAY_MS);
}

/** Sum of record counts per partition tuple, from files and from published rows. */
function partitionCounts(files: PyDataFile[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const f of files) {
    const key = `${dayOf(f.partition.ts_day)}|${f.partition.plant}|${f.partition.line ?? '-'}`;
    out[key] = (out[key] ?? 0) + f.record_count;
  }
  return out;
}

function expectedPartitionCounts(rows: PublishedRow[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const r of rows) {
    const key = `${r.day}|${PLANT}|${r.line ?? '-'}`;
    out[key] = (out[key] ?? 0) + 1;
  }
  return out;
}

describe('Iceberg end to end: REST catalog on S3, then warm → cold', () => {
  let s3: S3Server;
  let rest: IcebergRest;
  beforeAll(async () => {
    s3 = await startS3Server({ buckets: ['warehouse', 'warm', 'cold'] });
    rest = await startIcebergRest({ s3 });
  }, 300_000);
  afterAll(async () => {
    await rest?.stop();
    await s3?.stop();
  });

  it('PyIceberg reads exactly the ingested rows with schema, spec, partitions, markers and time travel; after warm → cold every row from cold', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'lakeside-iceberg-e2e-'));
    dirs.push(dir);
    const stateDir = join(dir, 'state');
    const configPath = join(dir, 'lakeside.yaml');
    const warm = s3StoreSettings(s3, 'warm');
    const cold = s3StoreSettings(s3, 'cold');
    const env = { ...warm.env, ...cold.env };
    const catalog = { type: 'rest', rest: { uri: rest.uri, request_timeout_ms: 20_000 }, commit_interval_seconds: 1 };
    const clientId = 'lakeside-e2e-rest';
    await writeIcebergDaemonConfig(configPath, { plant: PLANT, agentId: AGENT, stateDir, broker, clientId, catalog, tiering: fastTiering({ warm: warm.config }) });
    const props = rest.clientProperties;
    const table = (ds: string) => `lakeside.${ds}`;

    // Round 1, all committed; the snapshot then current is the time-travel point.
    const daemon = await startFaultDaemon(configPath, env, track);
    const round1 = roundRows(1, Date.now());
    await publishRows(broker, clientId, round1);
    await waitForTier(stateDir, round1, ['committed'], 'round 1 committed');
    const afterRound1 = await pyicebergBatch<PySnapshot[][]>(props, DATASETS.map((ds) => ({ op: 'snapshots', args: { table: table(ds) } })));
    const round1Heads = afterRound1.map((snaps) => snaps.at(-1)!.snapshot_id);

    // Round 2 (new minute windows: new files, new snapshots).
    const round2 = roundRows(2, Date.now() + 60_000);
    await publishRows(broker, clientId, round2);
    const all = [...round1, ...round2];
    await waitForTier(stateDir, all, ['committed'], 'round 2 committed');
    expect(errorsOf(daemon), daemon.tail(40)).toEqual([]);

    type Batch = [string[][], Record<string, unknown>, PySnapshot[], PyDataFile[], PyScan, PyScan];
    const perTable = new Map<string, Batch>();
    for (const [i, ds] of DATASETS.entries()) {
      const t = table(ds);
      perTable.set(
        ds,
        await pyicebergBatch<Batch>(props, [
          { op: 'tables', args: { namespace: 'lakeside' } },
          { op: 'metadata', args: { table: t } },
          { op: 'snapshots', args: { table: t } },
          { op: 'files', args: { table: t } },
          { op: 'scan', args: { table: t } },
          { op: 'scan', args: { table: t, snapshot_id: round1Heads[i] } },
        ]),
      );
    }

    const expectedFields = {
      sensors: [
        { id: SENSORS_FIELD_IDS.ts, name: 'ts', type: 'timestamptz', required: true },
        { id: SENSORS_FIELD_IDS.line, name: 'line', type: 'string', required: true },
        { id: SENSORS_FIELD_IDS.sensor, name: 'sensor', type: 'string', required: true },
        { id: SENSORS_FIELD_IDS.value, name: 'value', type: 'double', required: false },
        { id: 100_000, name: 'plant', type: 'string', required: false },
      ],
      counters: [
        { id: COUNTERS_FIELD_IDS.ts, name: 'ts', type: 'timestamptz', required: true },
        { id: COUNTERS_FIELD_IDS.machine, name: 'machine', type: 'string', required: true },
        { id: COUNTERS_FIELD_IDS.count, name: 'count', type: 'long', required: true },
        { id: COUNTERS_FIELD_IDS.rate, name: 'rate', type: 'double', required: false },
        { id: 100_000, name: 'plant', type: 'string', required: false },
      ],
    };
    for (const ds of DATASETS) {
      const [tables, metadata, snapshots, files, scan, earlier] = perTable.get(ds)!;
      expect(tables.map((t) => t.join('.')).sort()).toEqual(['lakeside.counters', 'lakeside.sensors']);
      // Schema: the dataset's field ids and types, plus plant.
      const schema = metadata.schema as { fields: Array<{ id: number; name: string; type: string; required: boolean }> };
      expect(schema.fields.map((f) => ({ id: f.id, name: f.name, type: f.type, required: f.required }))).toEqual(expectedFields[ds]);
      // Spec: day(ts), identity(plant), identity(line) for the partitioned dataset.
      const spec = metadata.partition_spec as { fields: Array<{ 'source-id'?: number; source_id?: number; transform: string; name: string }> };
      const timeId = ds === 'sensors' ? SENSORS_FIELD_IDS.ts : COUNTERS_FIELD_IDS.ts;
      expect(spec.fields.map((f) => [f.name, f.transform, f['source-id'] ?? f.source_id])).toEqual([
        ['ts_day', 'day', timeId],
        ['plant', 'identity', 100_000],
        ...(ds === 'sensors' ? [['line', 'identity', SENSORS_FIELD_IDS.line]] : []),
      ]);

      // Exactly the published rows, plant projected from the partition.
      expect(scan.row_count).toBe(keysOf(all, ds).length);
      expect(scannedKeys(ds, scan)).toEqual(keysOf(all, ds));
      expect(new Set(scan.rows!.map((r) => r.plant))).toEqual(new Set([PLANT]));

      // Data files: in the warm bucket, and their partition tuples hold exactly the rows of that partition.
      for (const f of files) expect(f.file_path).toMatch(new RegExp(`^s3://warm/plants/${PLANT}/${ds}/data/`));
      expect(partitionCounts(files)).toEqual(expectedPartitionCounts(all.filter((r) => r.dataset === ds)));

      // Every snapshot carries our markers, the commit seq strictly increasing.
      expect(snapshots.length).toBeGreaterThanOrEqual(2);
      const seqs = snapshots.map((s) => {
        expect(s.summary['lakeside.agent-id']).toBe(AGENT);
        expect(s.summary['lakeside.plant']).toBe(PLANT);
        return Number(s.summary['lakeside.commit-seq']);
      });
      for (let i = 1; i < seqs.length; i++) expect(seqs[i]).toBeGreaterThan(seqs[i - 1]!);
      for (const s of snapshots) expect(s.summary['lakeside.instance']).toBeTruthy();

      // Time travel: the snapshot current after round 1 holds exactly round 1's rows.
      expect(snapshots.map((s) => s.snapshot_id)).toContain(round1Heads[DATASETS.indexOf(ds)]);
      expect(snapshots.at(-1)!.snapshot_id).not.toBe(round1Heads[DATASETS.indexOf(ds)]);
      expect(scannedKeys(ds, earlier)).toEqual(keysOf(round1, ds));
    }
    expect((await daemon.stop()).code).toBe(0);

    // Warm → cold: restarted with a cold store and no warm retention.
    await writeIcebergDaemonConfig(configPath, {
      plant: PLANT,
      agentId: AGENT,
      stateDir,
      broker,
      clientId,
      catalog,
      tiering: fastTiering({ warm: warm.config, cold: cold.config, warm_retention_days: 0, archive_interval_ms: 300 }),
    });
    const archiving = await startFaultDaemon(configPath, env, track);
    await waitForTier(stateDir, all, ['archived'], 'all archived');
    expect((await archiving.stop()).code).toBe(0);
    expect(errorsOf(archiving), archiving.tail(40)).toEqual([]);

    for (const ds of DATASETS) {
      const [files, scan] = await pyicebergBatch<[PyDataFile[], PyScan]>(props, [
        { op: 'files', args: { table: table(ds) } },
        { op: 'scan', args: { table: table(ds) } },
      ]);
      expect(files.length).toBeGreaterThan(0);
      for (const f of files) expect(f.file_path).toMatch(new RegExp(`^s3://cold/plants/${PLANT}/${ds}/data/`));
      expect(partitionCounts(files)).toEqual(expectedPartitionCounts(all.filter((r) => r.dataset === ds)));
      expect(scannedKeys(ds, scan)).toEqual(keysOf(all, ds));
    }
    const storeOf = (bucket: string) =>
      new S3ObjectStore({
        ...storeSchema.parse({ url: `s3://${bucket}/plants`, endpoint: s3.endpoint, region: s3.region, force_path_style: true }),
        credentials: { access_key_id: s3.accessKeyId, secret_access_key: s3.secretAccessKey },
      });
    const warmStore = storeOf('warm');
    const coldStore = storeOf('cold');
    try {
      expect(await listKeys(warmStore)).toEqual([]);
      const coldKeys = await listKeys(coldStore);
      for (const ds of DATASETS) expect(coldKeys.filter((k) => k.startsWith(`${PLANT}/${ds}/data/`)).length).toBeGreaterThan(0);
    } finally {
      await warmStore.close();
      await coldStore.close();
    }
  }, 600_000);
});

describe('Iceberg end to end: the file-system catalog in a file:// warm directory', () => {
  it('PyIceberg StaticTable on the newest metadata file returns exactly the ingested rows', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'lakeside-iceberg-e2e-fs-'));
    dirs.push(dir);
    const stateDir = join(dir, 'state');
    const warmDir = join(dir, 'warm');
    const configPath = join(dir, 'lakeside.yaml');
    const clientId = 'lakeside-e2e-fs';
    await writeIcebergDaemonConfig(configPath, { plant: PLANT, agentId: AGENT, stateDir, broker, clientId, tiering: fastTiering({ warm: { url: pathToFileURL(warmDir).href } }) });
    const daemon = await startFaultDaemon(configPath, {}, track);
    const rows = roundRows(1, Date.now());
    await publishRows(broker, clientId, rows);
    // No catalog section: the file-system catalog is the default, so "committed" means a metadata version was written.
    await waitForTier(stateDir, rows, ['committed'], 'committed to the file-system catalog');
    expect((await daemon.stop()).code).toBe(0);

    for (const ds of DATASETS) {
      const metadataDir = join(warmDir, 'iceberg', 'lakeside', ds, 'metadata');
      const versions = readdirSync(metadataDir)
        .map((name) => /^v(\d+)\.metadata\.json$/.exec(name))
        .filter((m) => m !== null)
        .map((m) => Number(m[1]));
      expect(versions.length).toBeGreaterThan(1);
      const newest = join(metadataDir, `v${Math.max(...versions)}.metadata.json`);
      const read = await pyicebergLocal<{ rows: Array<Record<string, unknown>>; manifests: Array<{ entries: Array<{ file_path: string }> }> }>({ metadata: newest, scan: true });
      expect(read.rows.map((row) => scannedKey(ds, row)).sort()).toEqual(keysOf(rows, ds));
      expect(new Set(read.rows.map((r) => r.plant))).toEqual(new Set([PLANT]));
      for (const m of read.manifests) for (const e of m.entries) expect(e.file_path.startsWith(pathToFileURL(warmDir).href)).toBe(true);
    }
  }, 300_000);
});
