/**
 * Logging: pino JSON lines on stdout (journald keeps them). Every error a plant
 * engineer may act on carries a stable `code` (see `ErrorCode`), the same string the
 * README documents. Secrets are never logged: config is logged only through
 * `redactConfig`.
 */
import { pino, type Logger } from 'pino';

export type { Logger };

/** Stable error and event codes shared by logs, the API and the README. */
export const ErrorCode = {
  configInvalid: 'CONFIG_INVALID',
  landingDiskFull: 'LANDING_DISK_FULL',
  landingIo: 'LANDING_IO_ERROR',
  landingRecovered: 'LANDING_RECOVERED',
  landingRejected: 'LANDING_ROW_REJECTED',
  mqttConnect: 'MQTT_CONNECT_ERROR',
  kafkaConnect: 'KAFKA_CONNECT_ERROR',
  kafkaCommit: 'KAFKA_COMMIT_ERROR',
  /** A partition's log ends below this agent's landed watermark: the topic was recreated (kafka-source.ts). */
  kafkaTopicReset: 'KAFKA_TOPIC_RESET',
  folderRefused: 'FOLDER_FILE_REFUSED',
  folderError: 'FOLDER_ERROR',
  sealFailed: 'SEAL_FAILED',
  compactFailed: 'COMPACTION_FAILED',
  stateLocked: 'STATE_DIR_LOCKED',
  feedGap: 'FEED_GAP',
  feedGapCleared: 'FEED_GAP_CLEARED',
  alertDeliveryFailed: 'ALERT_DELIVERY_FAILED',
  /** The reads worker (HTTP API, latest values, SQL) died; it is restarted (agent/on-site-reads.ts). */
  readsWorkerCrashed: 'READS_WORKER_CRASHED',
  readsWorkerRestarted: 'READS_WORKER_RESTARTED',
  /** A commit's rows could not be handed to the reads worker (the commit itself stands). */
  readsLandedFailed: 'READS_LANDED_FAILED',
  /** A catalog commit did not go through (yet): the files wait in the outbox (sync/committer.ts). */
  catalog: 'CATALOG_COMMIT_ERROR',
  /** Another instance commits as this agent id: this one stops committing to that table (sync/markers.ts). */
  catalogFenced: 'CATALOG_FENCED',
} as const;

export function createLogger(level: string, destination?: NodeJS.WritableStream): Logger {
  return pino(
    { level, base: { service: 'lakeside' }, timestamp: pino.stdTimeFunctions.isoTime },
    destination ?? pino.destination({ fd: 1, sync: false }),
  );
}

/** A logger that drops everything, for tests and library use. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
