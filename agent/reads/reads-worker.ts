/**
 * The reads worker: the on-site reads (HTTP API, latest-value cache, DuckDB query
 * engine) on a thread of their own, so ingestion on the main event loop (MQTT parsing,
 * mapping, hand-offs to the landing writer) can never delay a request.
 *
 * Invariants:
 * - Committed rows arrive straight from the landing writer on the `landed` port
 *   (landed-batch.ts), posted before the writer replies to the main thread. Every read
 *   of the cache first takes whatever is already queued on that port (synchronously),
 *   so a row acknowledged before a request was sent is in that request's answer.
 * - Health and readiness are the main thread's: it posts them whenever they change;
 *   until the first post, /readyz says "starting".
 * - Start order: engine, landing reader, then the API listens (last). On 'stop': the API
 *   closes first, then the engine, the reader and the landed port; then 'stopped'.
 * - A failure to start is posted as 'start-failed' with the error's name, message and
 *   `code` (e.g. API_EXPOSED_WITHOUT_TOKENS, EADDRINUSE), so the daemon fails as before.
 */
import { parentPort, receiveMessageOnPort, workerData } from 'node:worker_threads';
import { resolveDataset } from '../../config/dataset.ts';
import { redactConfig } from '../../config/loader.ts';
import { LandingReader, latestPort, queryPort } from '../api/adapters.ts';
import type { HealthStatus, LatestPort } from '../api/ports.ts';
import { buildApiServer, startApiServer } from '../api/server.ts';
import { BlobStore } from '../blobs/blob-store.ts';
import { failpointArmed } from '../failpoint.ts';
import { LatestCache } from '../latest/latest-cache.ts';
import { QueryEngine } from '../query/query-engine.ts';
import { decodeLanded, type LandedBatch } from './landed-batch.ts';
import { relayedLogger } from './log-relay.ts';
import type { BridgedPort, FromReadsWorker, ReadsWorkerData, SerializedError, ToReadsWorker } from './reads-protocol.ts';

const data = workerData as ReadsWorkerData;
const { config } = data;
const post = (message: FromReadsWorker): void => parentPort!.postMessage(message);
const logger = relayedLogger(data.logLevel, (line) => post({ type: 'log', line }));

const datasets = config.datasets.map(resolveDataset);
const cache = new LatestCache({ datasets, windowMinutes: config.latest.window_minutes, maxBytes: config.latest.max_bytes });
const engine = new QueryEngine({ stateDir: config.state_dir, dbPath: data.dbPath, datasets: config.datasets, query: config.query, logger });
const reader = new LandingReader(data.dbPath);

const landed = data.landed;
const takeLanded = (batch: LandedBatch): void => cache.onRows(decodeLanded(batch));
landed.on('message', takeLanded);
/** Takes every batch already queued, so a read sees all rows committed before it began. */
function drainLanded(): void {
  for (let next = receiveMessageOnPort(landed); next; next = receiveMessageOnPort(landed)) takeLanded(next.message as LandedBatch);
}

let health: HealthStatus = { ok: true, reasons: [] };
let ready: HealthStatus = { ok: false, reasons: ['starting'] };

const latest = latestPort(cache);
const freshLatest: LatestPort = {
  latest(dataset, filter) {
    drainLanded();
    return latest.latest(dataset, filter);
  },
  window(dataset, stream, minutes, limit) {
    drainLanded();
    return latest.window(dataset, stream, minutes, limit);
  },
  windowJson(dataset, stream, minutes, limit) {
    drainLanded();
    return latest.windowJson!(dataset, stream, minutes, limit);
  },
};
const datasetsPort = reader.datasetsPort(datasets, cache);

/** Calls a port that lives on the main thread (see `bridged`); answered by 'port-reply'. */
const portCalls = new Map<number, { resolve: (value: unknown) => void; reject: (error: Error) => void }>();
let nextPortCall = 1;
function callMain<T>(port: BridgedPort, arg?: string): Promise<T> {
  const id = nextPortCall++;
  return new Promise<T>((resolve, reject) => {
    portCalls.set(id, { resolve: resolve as (value: unknown) => void, reject });
    post({ type: 'port-call', id, port, ...(arg !== undefined ? { arg } : {}) });
  });
}

const app = buildApiServer({
  query: queryPort(engine, data.bridged.warm ? (range) => callMain<unknown>('warm', JSON.stringify(range)) : undefined),
  latest: freshLatest,
  datasets: {
    datasets: () => {
      drainLanded();
      return datasetsPort.datasets();
    },
  },
  blobs: reader.blobsPort(
    new BlobStore(data.blobsDir),
    data.bridged.blob ? (sha256) => callMain<string | null>('blob', sha256) : undefined,
  ),
  health: { health: () => health, ready: () => ready },
  ...(data.bridged.metrics ? { metrics: { metrics: () => callMain<{ contentType: string; body: string }>('metrics') } } : {}),
  ...(data.bridged.status ? { status: { status: () => callMain<Record<string, unknown>>('status') } } : {}),
  config: { redacted: () => redactConfig(config) },
  tokens: config.api.tokens,
  logger,
  ...(config.api.tls ? { tls: { certFile: config.api.tls.cert_file, keyFile: config.api.tls.key_file } } : {}),
});

let engineStarted: Promise<void> = Promise.resolve();

async function start(): Promise<void> {
  engineStarted = engine.start();
  await engineStarted;
  reader.open();
  const { url } = await startApiServer(app, { host: config.api.listen_host, port: data.listenPort });
  const address = app.server.address();
  post({ type: 'listening', url, port: typeof address === 'object' && address ? address.port : data.listenPort });
}

async function stop(): Promise<void> {
  await app.close();
  await engine.stop();
  reader.close();
  landed.close();
  post({ type: 'stopped' });
}

function serialize(error: unknown): SerializedError {
  const e = error instanceof Error ? error : new Error(String(error));
  const code = (e as { code?: unknown }).code;
  return { name: e.name, message: e.message, ...(typeof code === 'string' ? { code } : {}) };
}

parentPort!.on('message', (message: ToReadsWorker) => {
  switch (message.type) {
    case 'health':
      health = message.health;
      ready = message.ready;
      return;
    case 'files-changed':
      void engineStarted
        .then(() => engine.refresh())
        .catch((error: Error) => logger.warn({ err: error.message }, 'query views not refreshed'));
      return;
    case 'stop':
      void stop();
      return;
    case 'refresh':
      void engineStarted
        .then(() => engine.refreshFromRegistry())
        .then(
          () => post({ type: 'refreshed', id: message.id }),
          (error: Error) => post({ type: 'refreshed', id: message.id, error: error.message }),
        );
      return;
    case 'port-reply': {
      const call = portCalls.get(message.id);
      portCalls.delete(message.id);
      if (message.ok) call?.resolve(message.value);
      else call?.reject(Object.assign(new Error(message.error.message), { name: message.error.name, ...(message.error.code ? { code: message.error.code } : {}) }));
      return;
    }
    case 'crash':
      if (failpointArmed('reads.crash')) {
        setImmediate(() => {
          throw new Error('reads worker crash injected by the reads.crash failpoint');
        });
      }
      return;
  }
});

start().catch(async (error: unknown) => {
  await app.close().catch(() => {});
  await engine.stop().catch(() => {});
  reader.close();
  landed.close();
  post({ type: 'start-failed', error: serialize(error) });
});
