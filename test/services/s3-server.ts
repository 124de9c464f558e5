// A real S3-compatible server for integration tests: versitygw with its posix backend, on
// a free loopback port, with generated test credentials and its data in a temp dir.
//
// Why versitygw (over s3proxy and moto): it is an actively maintained gateway whose aim
// is the full S3 API over a plain directory, and it implements exactly the parts the
// tiering code leans on: conditional writes (`If-None-Match: *` → 412 on PutObject and
// on CompleteMultipartUpload), multipart upload, and the flexible checksums (CRC32,
// CRC32C, CRC64NVME, SHA1, SHA256, including the aws-chunked trailers that
// @aws-sdk/client-s3 sends by default). A Go binary starts in milliseconds, where
// s3proxy is a JVM and moto keeps its state in memory (lost on a restart, so it cannot
// serve "the bucket survives a server restart" tests).
//
// Invariants:
// - Provisioned from the Go module proxy (`go install …@VERSITYGW_VERSION`) into the
//   services cache once; a missing `go` or a failed build throws, never skips.
// - Objects are plain files under `<dir>/data/<bucket>/<key>`, their metadata in xattrs
//   (or, when the filesystem has no user xattrs, in a sidecar folder `<dir>/meta`), so
//   everything survives restart().
// - The listener is on 127.0.0.1 only; stop() removes the temp dir unless `keepDir`.
// - A failed start, or a stop after a failed test, keeps the log in test-logs (service-logs.ts).
import { existsSync, mkdirSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { delimiter, join } from 'node:path';
import { CreateBucketCommand, ListBucketsCommand, S3Client } from '@aws-sdk/client-s3';
import { launchOnFreePort, managedProcess, serviceControl, serviceDir, type ManagedProcess, type ServiceControl } from './managed-process.ts';
import { cachedEntry, runCommand } from './service-cache.ts';
import { startFailure } from './service-logs.ts';

export const VERSITYGW_VERSION = 'v1.8.0';

export interface S3ServerOptions {
  /** Fixed port; by default a free loopback port (re-picked if taken at start). */
  port?: number;
  /** Working directory (data, metadata, log); by default a new temp dir. */
  dir?: string;
  /** Keep the working directory after stop() (default: remove it if we created it). */
  keepDir?: boolean;
  /** Buckets to create once the server is up. */
  buckets?: string[];
  region?: string;
  startTimeoutMs?: number;
}

export interface S3Server extends ServiceControl {
  /** `http://127.0.0.1:<port>`; clients must use path-style addressing. */
  readonly endpoint: string;
  readonly port: number;
  readonly region: string;
  readonly accessKeyId: string;
  readonly secretAccessKey: string;
  readonly dir: string;
  readonly logFile: string;
  /** A new @aws-sdk/client-s3 client for this server (path style, test credentials). */
  client(): S3Client;
  createBucket(name: string): Promise<void>;
}

function findGo(): string {
  for (const dir of [...(process.env.PATH ?? '').split(delimiter), '/usr/local/go/bin', '/usr/lib/go/bin']) {
    if (dir && existsSync(join(dir, 'go'))) return join(dir, 'go');
  }
  throw new Error(
    'versitygw (the S3 test server) is built with `go install`, but no `go` was found on PATH or in /usr/local/go/bin. ' +
      'Install Go 1.21 or newer (https://go.dev/dl; it fetches the toolchain versitygw asks for). Integration tests do not skip without it.',
  );
}

/** Builds versitygw once into the services cache; returns the binary's path. */
export async function provisionVersitygw(): Promise<string> {
  const dir = await cachedEntry(`versitygw-${VERSITYGW_VERSION}`, async (temp) => {
    await runCommand(findGo(), ['install', `github.com/versity/versitygw/cmd/versitygw@${VERSITYGW_VERSION}`], {
      env: { ...process.env, GOBIN: join(temp, 'bin') },
      what: `building versitygw ${VERSITYGW_VERSION} from the Go module proxy`,
    });
  });
  return join(dir, 'bin', 'versitygw');
}

async function answers(client: S3Client): Promise<boolean> {
  try {
    await client.send(new ListBucketsCommand({}));
    return true;
  } catch {
    return false;
  }
}

export async function startS3Server(opts: S3ServerOptions = {}): Promise<S3Server> {
  const bin = await provisionVersitygw();
  const { dir, remove } = await serviceDir('lakeside-s3-', opts);
  const dataDir = join(dir, 'data');
  mkdirSync(dataDir, { recursive: true });
  const logFile = join(dir, 'versitygw.log');
  const region = opts.region ?? 'us-east-1';
  const accessKeyId = `lakeside${randomBytes(6).toString('hex')}`;
  const secretAccessKey = randomBytes(20).toString('hex');
  let port = opts.port ?? 0;
  let sidecar = false;

  const makeClient = (): S3Client =>
    new S3Client({
      endpoint: `http://127.0.0.1:${port}`,
      region,
      forcePathStyle: true,
      credentials: { accessKeyId, secretAccessKey },
      maxAttempts: 1,
    });

  let proc: ManagedProcess | undefined;
  const launch = async (): Promise<void> => {
    const args = ['--port', `127.0.0.1:${port}`, '--region', region, 'posix'];
    if (sidecar) args.push('--sidecar', join(dir, 'meta'));
    args.push(dataDir);
    const probe = makeClient();
    proc = managedProcess({
      name: 'versitygw',
      command: bin,
      args,
      // Credentials through the environment, so they stay out of `ps` output.
      env: { ...process.env, ROOT_ACCESS_KEY_ID: accessKeyId, ROOT_SECRET_ACCESS_KEY: secretAccessKey },
      logFile,
      ready: () => answers(probe),
      readyLogPattern: new RegExp(`bound on host 127\\.0\\.0\\.1 and port ${port}\\b`),
      startTimeoutMs: opts.startTimeoutMs ?? 30_000,
      stopTimeoutMs: 10_000,
    });
    try {
      await proc.start();
    } finally {
      probe.destroy();
    }
  };

  const launchWithMetadataFallback = async (p: number): Promise<void> => {
    port = p;
    try {
      await launch();
    } catch (e) {
      // A filesystem without user xattrs (some tmpfs): keep metadata in a sidecar folder.
      if (sidecar || !/xattr check failed/.test((e as Error).message)) throw e;
      sidecar = true;
      mkdirSync(join(dir, 'meta'), { recursive: true });
      await launch();
    }
  };
  const start = async (pinned: boolean): Promise<void> => {
    await launchOnFreePort(pinned ? port : undefined, launchWithMetadataFallback);
  };

  try {
    await start(opts.port !== undefined);
  } catch (e) {
    throw await startFailure('versitygw', e, [logFile], remove);
  }
  const control = serviceControl('versitygw', { current: () => proc, relaunch: () => start(true), remove, logs: [logFile] });

  const createBucket = async (name: string): Promise<void> => {
    const c = makeClient();
    try {
      await c.send(new CreateBucketCommand({ Bucket: name }));
    } finally {
      c.destroy();
    }
  };
  try {
    for (const b of opts.buckets ?? []) await createBucket(b);
  } catch (e) {
    await control.stop({ keepLogs: true });
    throw new Error(`${(e as Error).message}\nversitygw: logs kept in ${control.keptLogs}`, { cause: e });
  }

  return {
    get endpoint() {
      return `http://127.0.0.1:${port}`;
    },
    get port() {
      return port;
    },
    region,
    accessKeyId,
    secretAccessKey,
    dir,
    logFile,
    get pid() {
      return control.pid;
    },
    client: makeClient,
    createBucket,
    kill: control.kill,
    restart: control.restart,
    stop: control.stop,
    get keptLogs() {
      return control.keptLogs;
    },
    logTail: control.logTail,
  };
}
