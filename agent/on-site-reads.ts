/**
 * On-site reads as one component: the DuckDB query engine over the hot tier, the
 * latest-value cache fed at commit, and the HTTP API in front of both.
 *
 * Invariants:
 * - Reads never hold up ingestion: the cache takes rows after their commit ('landed'),
 *   the engine refreshes its views after each seal ('files-changed'), both off the
 *   landing log's path.
 * - start() after the landing log and the sealer (the engine reads `hot_files`);
 *   the API listens last, once everything behind it answers. stop() closes the API
 *   first, then the engine.
 */
import type { LoadedConfig } from '../config/loader.ts';
import { redactConfig } from '../config/loader.ts';
import { buildApiServer, startApiServer } from './api/server.ts';
import { LandingReader, latestPort, queryPort } from './api/adapters.ts';
import type { HealthPort } from './api/ports.ts';
import type { BlobStore } from './blobs/blob-store.ts';
import type { Sealer } from './hot/sealer.ts';
import type { LandingLog } from './landing/landing-log.ts';
import { LatestCache } from './latest/latest-cache.ts';
import { onceStop, type Component } from './lifecycle.ts';
import type { Logger } from './log.ts';
import { QueryEngine } from './query/query-engine.ts';

export interface OnSiteReadsOptions {
  loaded: LoadedConfig;
  dbPath: string;
  landing: LandingLog;
  sealer: Sealer;
  blobs: BlobStore;
  health: HealthPort;
  /** Evicted blobs fetched back from warm/cold (tiering's read cache). */
  fetchEvictedBlob?: (sha256: string) => Promise<string | null>;
  logger: Logger;
}

export class OnSiteReads implements Component {
  readonly name = 'on-site-reads';
  readonly engine: QueryEngine;
  readonly cache: LatestCache;
  /** The API's address once listening, e.g. http://127.0.0.1:7070. */
  url: string | null = null;
  private readonly reader: LandingReader;
  private readonly app: ReturnType<typeof buildApiServer>;
  private readonly options: OnSiteReadsOptions;

  constructor(options: OnSiteReadsOptions) {
    this.options = options;
    const { loaded, dbPath, logger } = options;
    const { config } = loaded;
    this.engine = new QueryEngine({ stateDir: config.state_dir, dbPath, datasets: config.datasets, query: config.query, logger });
    this.cache = new LatestCache({ datasets: loaded.datasets, windowMinutes: config.latest.window_minutes, maxBytes: config.latest.max_bytes });
    this.reader = new LandingReader(dbPath);
    this.app = buildApiServer({
      query: queryPort(this.engine),
      latest: latestPort(this.cache),
      datasets: this.reader.datasetsPort(loaded.datasets, this.cache),
      blobs: this.reader.blobsPort(options.blobs, options.fetchEvictedBlob),
      health: options.health,
      config: { redacted: () => redactConfig(config) },
      tokens: config.api.tokens,
      logger,
      ...(config.api.tls ? { tls: { certFile: config.api.tls.cert_file, keyFile: config.api.tls.key_file } } : {}),
    });
  }

  async start(): Promise<void> {
    const { config } = this.options.loaded;
    this.options.landing.on('landed', (rows) => this.cache.onRows(rows));
    await this.engine.start();
    this.options.sealer.on('files-changed', (change) => {
      this.engine.refresh(change).catch((error: Error) => this.options.logger.warn({ err: error.message }, 'query views not refreshed'));
    });
    this.reader.open();
    const { url } = await startApiServer(this.app, { host: config.api.listen_host, port: config.api.listen_port });
    this.url = url;
    this.options.logger.info({ url }, 'API listening');
  }

  readonly stop = onceStop(async () => {
    await this.app.close();
    await this.engine.stop();
    this.reader.close();
  });
}
