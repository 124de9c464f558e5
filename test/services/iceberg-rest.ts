// The Apache Iceberg REST catalog reference fixture (`org.apache.iceberg.rest.
// RESTCatalogServer`) for integration tests: a JDBC catalog in SQLite under a temp dir,
// table metadata and data in our S3 server through S3FileIO, on a free port.
//
// Invariants:
// - One pinned Maven artifact: `org.apache.iceberg:iceberg-open-api:ICEBERG_REST_VERSION`,
//   the self-contained runnable jar (1.8.0–1.10.1 ship one, ≈200 MB). It already bundles
//   iceberg-aws and the AWS SDK (S3FileIO), so nothing else goes on the class path:
//   adding iceberg-aws-bundle beside it would only duplicate the SDK classes.
// - Configured only through `CATALOG_*` environment variables (the fixture maps
//   `__` → `-`, `_` → `.`): warehouse `s3://<bucket>/wh`, S3FileIO against our S3
//   endpoint with path-style access and the S3 server's test credentials.
// - The catalog database is a file, so restart() keeps namespaces, tables and their
//   current metadata pointers; stop() removes the temp dir unless `keepDir`. A failed
//   start, or a stop after a failed test, keeps the log in test-logs (service-logs.ts).
// - The fixture's Jetty binds every interface (it takes only a port); the port is a
//   free one picked on loopback. Ready = `GET /v1/config` answers 200.
// - Its token endpoint issues dummy tokens and checks none: no auth is tested here.
import { join } from 'node:path';
import { HeadBucketCommand } from '@aws-sdk/client-s3';
import { launchOnFreePort, managedProcess, serviceControl, serviceDir, type ManagedProcess, type ServiceControl } from './managed-process.ts';
import type { S3Server } from './s3-server.ts';
import { mavenClasspath } from './service-cache.ts';
import { startFailure } from './service-logs.ts';

export const ICEBERG_REST_VERSION = '1.10.1';

/** Resolves the fixture jar from Maven Central into the services cache; returns the class path. */
export function provisionIcebergRest(): Promise<string> {
  return mavenClasspath(`iceberg-rest-fixture-${ICEBERG_REST_VERSION}`, [
    { groupId: 'org.apache.iceberg', artifactId: 'iceberg-open-api', version: ICEBERG_REST_VERSION, exclusions: ['*:*'] },
  ]);
}

export interface IcebergRestOptions {
  /** The S3 server holding the warehouse. */
  s3: S3Server;
  /** Warehouse bucket, created on the S3 server if missing (default `warehouse`). */
  bucket?: string;
  port?: number;
  dir?: string;
  keepDir?: boolean;
  /** JVM heap cap in MiB (default 512). */
  heapMiB?: number;
  startTimeoutMs?: number;
}

export interface IcebergRest extends ServiceControl {
  /** Base URI of the REST catalog, e.g. `http://127.0.0.1:41234` (routes under `/v1/`). */
  readonly uri: string;
  readonly port: number;
  /** `s3://<bucket>/wh` */
  readonly warehouse: string;
  readonly bucket: string;
  readonly dir: string;
  readonly logFile: string;
  /**
   * Iceberg client properties for this catalog and its S3 storage, in the names the
   * Iceberg clients share (PyIceberg's `load_catalog`, Java's RESTCatalog): `uri`,
   * `warehouse`, `s3.endpoint`, `s3.access-key-id`, `s3.secret-access-key`,
   * `s3.region`, `s3.path-style-access`.
   */
  readonly clientProperties: Record<string, string>;
}

async function configAnswers(uri: string): Promise<boolean> {
  try {
    const res = await fetch(`${uri}/v1/config`, { signal: AbortSignal.timeout(2_000) });
    await res.arrayBuffer();
    return res.status === 200;
  } catch {
    return false;
  }
}

async function ensureBucket(s3: S3Server, bucket: string): Promise<void> {
  const c = s3.client();
  try {
    await c.send(new HeadBucketCommand({ Bucket: bucket }));
  } catch {
    await s3.createBucket(bucket);
  } finally {
    c.destroy();
  }
}

export async function startIcebergRest(opts: IcebergRestOptions): Promise<IcebergRest> {
  const classpath = await provisionIcebergRest();
  const { s3 } = opts;
  const bucket = opts.bucket ?? 'warehouse';
  await ensureBucket(s3, bucket);
  const warehouse = `s3://${bucket}/wh`;
  const { dir, remove } = await serviceDir('lakeside-iceberg-rest-', opts);
  const logFile = join(dir, 'iceberg-rest.log');
  let port = opts.port ?? 0;

  const env = (): NodeJS.ProcessEnv => ({
    ...process.env,
    CATALOG_REST_PORT: String(port),
    CATALOG_URI: `jdbc:sqlite:${join(dir, 'catalog.db')}`,
    CATALOG_WAREHOUSE: warehouse,
    CATALOG_IO__IMPL: 'org.apache.iceberg.aws.s3.S3FileIO',
    CATALOG_S3_ENDPOINT: s3.endpoint,
    CATALOG_S3_PATH__STYLE__ACCESS: 'true',
    CATALOG_S3_ACCESS__KEY__ID: s3.accessKeyId,
    CATALOG_S3_SECRET__ACCESS__KEY: s3.secretAccessKey,
    CATALOG_CLIENT_REGION: s3.region,
    // The AWS SDK must not go looking for an instance profile or a profile file.
    AWS_EC2_METADATA_DISABLED: 'true',
    AWS_REGION: s3.region,
  });

  let proc: ManagedProcess | undefined;
  const start = async (pinned: boolean): Promise<void> => {
    await launchOnFreePort(pinned ? port : undefined, async (p) => {
      port = p;
      const uri = `http://127.0.0.1:${port}`;
      proc = managedProcess({
        name: 'iceberg-rest',
        command: 'java',
        args: [
          `-Xmx${opts.heapMiB ?? 512}m`,
          // A test fixture on a 2-core machine: start fast rather than peak fast.
          '-XX:+UseSerialGC',
          '-XX:TieredStopAtLevel=1',
          '-cp',
          classpath,
          'org.apache.iceberg.rest.RESTCatalogServer',
        ],
        cwd: dir,
        env: env(),
        logFile,
        ready: () => configAnswers(uri),
        readyLogPattern: new RegExp(`Started ServerConnector.*:${port}\\}`),
        startTimeoutMs: opts.startTimeoutMs ?? 120_000,
        stopTimeoutMs: 15_000,
      });
      await proc.start();
    });
  };

  try {
    await start(opts.port !== undefined);
  } catch (e) {
    throw await startFailure('iceberg-rest', e, [logFile], remove);
  }
  const control = serviceControl('iceberg-rest', { current: () => proc, relaunch: () => start(true), remove, logs: [logFile] });

  return {
    get uri() {
      return `http://127.0.0.1:${port}`;
    },
    get port() {
      return port;
    },
    warehouse,
    bucket,
    dir,
    logFile,
    get pid() {
      return control.pid;
    },
    get clientProperties() {
      return {
        uri: `http://127.0.0.1:${port}`,
        warehouse,
        's3.endpoint': s3.endpoint,
        's3.access-key-id': s3.accessKeyId,
        's3.secret-access-key': s3.secretAccessKey,
        's3.region': s3.region,
        's3.path-style-access': 'true',
      };
    },
    kill: control.kill,
    restart: control.restart,
    stop: control.stop,
    get keptLogs() {
      return control.keptLogs;
    },
    logTail: control.logTail,
  };
}
